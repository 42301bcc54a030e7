"""``shell``: a shell script's life: ``/bin/sh`` runs many small commands, each a fork and an exec
of a small binary that grows its heap, reads an input file, writes an output file and exits.

Binaries are installed images of the period, dynamically linked against glibc 2.2.5 (ld.so and
libc mapped from 0x40000000; text and data in the page cache -- preloaded, as on a box that has
run them before -- shared by every exec of them; data copied on write; bss, heap and stack
anonymous); after each fork both sides make the stores libc and the return path made
(``mmframe.usr.after_fork``).  The sizes are those of a 2002 distribution,
rounded: bash 2.05 about 560 KiB of text, coreutils and grep 8-80 KiB.  The shell forks with
``fork(fn)`` (the child runs the exec at once, as a shell's child does) and waits for each command,
or keeps ``jobs`` commands running at once.
"""

from __future__ import annotations

from typing import Any, Mapping

from mmframe.fs import Image
from mmframe.options import Option
from mmframe.scenario import Figure, Plot, Scenario, ScenarioContext
from mmframe.usr import (GLIBC_2002, MAP_ANONYMOUS, MAP_PRIVATE, O_CREAT, O_RDONLY, O_TRUNC, O_WRONLY, PAGE_SIZE,
                         PROT_READ, PROT_WRITE, after_fork, brk, close, execve, exit, fork, mmap, open, pread, pwrite,
                         touch, wait)

SH = ("/bin/sh", 140, 5, 6)  # path, text, data, bss pages
COMMANDS = (("/bin/cat", 4, 1, 1, 2), ("/bin/grep", 20, 2, 2, 8), ("/bin/sed", 12, 1, 2, 4),
            ("/bin/ls", 16, 2, 2, 6), ("/bin/true", 2, 1, 1, 0))  # path, text, data, bss, heap pages
INPUT = "/etc/input"
INPUT_PAGES = 8


def command(ctx: Any, n: int, heap: int) -> Any:
    """A small command: malloc ``heap`` pages, read the input, write its output, exit."""
    if heap:
        b = yield brk(0)
        yield brk(b + heap * PAGE_SIZE)
        yield touch(b, heap * PAGE_SIZE, True)
        fd = yield open(INPUT, O_RDONLY)
        buf = yield mmap(0, INPUT_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        yield pread(fd, buf, INPUT_PAGES * PAGE_SIZE, 0)
        yield close(fd)
        out = yield open(f"/tmp/out{n % 16}", O_WRONLY | O_CREAT | O_TRUNC)
        yield pwrite(out, buf, heap * PAGE_SIZE // 2 or PAGE_SIZE, 0)
        yield close(out)
    yield exit(0)


def _child(ctx: Any, path: str, n: int, heap: int) -> Any:
    yield from after_fork(ctx, 0)  # the child's return from fork, then the exec
    yield execve(path, n, heap)


def shell(ctx: Any, commands: int, jobs: int) -> Any:
    """The script: ``commands`` commands, ``jobs`` at a time."""
    b = yield brk(0)
    yield brk(b + 16 * PAGE_SIZE)  # variables, the parsed script
    yield touch(b, 16 * PAGE_SIZE, True)
    running = 0
    for n in range(commands):
        path, *_sizes, heap = COMMANDS[n % len(COMMANDS)]
        pid = yield fork(_child, path, n, heap)
        yield from after_fork(ctx, pid)
        running += 1
        if running == jobs:
            yield wait()
            running -= 1
    for _ in range(running):
        yield wait()


def _login(ctx: Any, commands: int, jobs: int) -> Any:
    yield execve(SH[0], commands, jobs)


def run(ctx: ScenarioContext) -> Mapping[str, Any]:
    m = ctx.machine()
    p = ctx.params
    fs = m.fs
    fs.install(SH[0], Image(shell, *SH[1:], libs=GLIBC_2002))
    for path, text, data, bss, _heap in COMMANDS:
        fs.install(path, Image(command, text, data, bss, libs=GLIBC_2002))
    fs.populate(INPUT, [1000 + i for i in range(INPUT_PAGES)], writable=False)
    for lib in GLIBC_2002:
        fs.shared_lib(lib)
    for path in (SH[0], *(c[0] for c in COMMANDS), INPUT, *(lib.path for lib in GLIBC_2002)):
        fs.preload(fs.inodes[path])  # hot: a script's binaries and libraries are cached
    r = m.run(_login, p["commands"], p["jobs"])
    n = p["commands"]
    counts = r.counts
    binaries = sum(len(list(fs.inodes[path].mapping.page_tree.items())) for path, *_ in (SH, *COMMANDS))
    figures = {
        "per_command_us": r.sim_ns / 1e3 / n,
        "faults": counts.get("page_fault", 0) / n,
        "cow_copies": counts.get("copy_page", 0) / n,
        "cleared": counts.get("clear_page", 0) / n,
        "binary_pages": binaries,
        "cache_pages": len(m.mm.page_cache),
        "failed": sum(1 for t in r.tasks.values() if t.status != 0),
    }
    figures.update(m.close())
    return figures


SCENARIO = Scenario(
    name="shell",
    help="a shell script: /bin/sh forks and execs many small commands (binaries from the page cache)",
    run=run,
    options=(
        Option("commands", "int", 200, "commands the script runs", minimum=1, maximum=100_000),
        Option("jobs", "int", 1, "commands running at once (1: each waited for, as a script does)",
               minimum=1, maximum=256),
    ),
    figures=(
        Figure("per_command_us", "simulated time per command", "us", "time"),
        Figure("faults", "page faults per command", "", "count"),
        Figure("cow_copies", "pages copied per command (COW, read, write)", "", "count"),
        Figure("cleared", "pages cleared per command", "", "count"),
        Figure("binary_pages", "page-cache pages of the binaries", "", "count"),
        Figure("cache_pages", "page-cache pages in all", "", "count"),
        Figure("failed", "commands that did not exit 0", "", "count"),
    ),
    plot=Plot(("per_command_us", "faults")),
    models="a shell script's fork+exec of small binaries whose text and data come from the page cache: "
           "the small-process case shared page tables had to not slow down",
    sources=("McCracken, LKML 20 Dec 2002: 'Almost every parent or child will touch three pages after fork' "
             "(the small-process worst case)",
             "lmbench 'sh proc' on 2.5.54 and 2.5.54-mm2, 790 MHz P-III (LKML, January 2003)",
             "binary sizes: a 2002 distribution's bash 2.05, coreutils and grep, rounded"),
)

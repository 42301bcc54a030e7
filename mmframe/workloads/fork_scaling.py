"""``fork-scaling``: fork, fork+exit and fork+exec+exit of a task with 4 MiB to 2 GiB resident.

McCracken's test of October 2002 (LKML, "shared page tables timing", 2.5.41): the parent maps a
shared memory object and touches every page before the test; then it forks a child that exits at
once, and waits.  Simulated fork time is what the parent is charged for the fork call; fork+exit
adds the child's exit and the parent's wait (everything charged from the fork to the wait's return);
fork+exec+exit has the child exec a program that exits at once: exec builds a new address space,
maps the binary's text and data from the page cache (warm: a first exec before the measurement
reads it in, as the repeated runs of the period's tests had it), runs its first faults and pays
the exec cost fitted to lmbench (see docs/files.md).
His figures for 40 MB (2.5.41, and 2.5.41-mm2 with shared page tables for a pt_shared column;
unknown machine: its 400 KiB fork took 1.7 ms) are printed beside the model's, with the ratio; the
model's cost table is a 790 MHz P-III's.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from mmframe.options import Option
from mmframe.scenario import Axis, Figure, OptionProblem, Plot, Reference, Scenario, ScenarioContext
from mmframe.units import format_size
from mmframe.usr import (MAP_ANONYMOUS, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE, TASK_UNMAPPED_BASE, after_fork,
                         execve, exit, fork, mmap, program, sched_yield, touch, wait)

MCCRACKEN_40MB = {"fork": 28.4, "fork_exit": 44.2, "fork_exec_exit": 49.3}  # ms, 2.5.41
MCCRACKEN_40MB_SHARED = {"fork": 3.4, "fork_exit": 4.1, "fork_exec_exit": 10.7}  # ms, 2.5.41-mm2 shared
SEED_LARGE = 20  # the seed: with shared page tables, "almost 20" times faster fork for very large processes
SIZES = ("4MiB", "40MiB", "256MiB", "1GiB", "2GiB")
LOW_BASE = 0x1000_0000  # a hint below ld.so, where big programs of the period put what did not fit above


@program(text_pages=2, data_pages=1, bss_pages=1)
def fork_test(ctx: Any, size: int) -> Any:
    """McCracken's test program, dynamically linked as every program of 2002 was (ld.so and libc
    from 0x40000000, so the shared object it maps lands right after libc, in libc's PTE page)."""
    pid = yield fork(_exec_quit)  # warm-up, while small: the binary is cached, as in a loop of runs
    yield from after_fork(ctx, pid)
    yield wait(pid)
    for base, length in (yield from _map_resident(size)):
        yield touch(base, length, True)
    yield sched_yield()  # a fresh time slice: the fork and the parent's stores after it run before the child
    yield ("mark", "before")
    pid = yield fork(_quit)
    yield ("mark", "lowmem")  # page tables and pte_chains just after the fork
    yield from after_fork(ctx, pid)  # the return path: the timing call's stack, the pid stored
    yield ("mark", "forked")
    yield wait(pid)
    yield ("mark", "reaped")
    pid = yield fork(_exec_quit)
    yield from after_fork(ctx, pid)
    yield wait(pid)
    yield ("mark", "exec_reaped")


def _map_resident(size: int) -> Any:
    """The shared object, as one mapping where it fits: ``mmap`` places it after libc.  Above
    TASK_UNMAPPED_BASE a dynamically linked i386 process had just under 2 GiB in one piece (libc's
    end to the stack), so a larger object is mapped in two: 768 MiB at a hint below ld.so, the
    rest after libc.  Returns the pieces."""
    prot, flags = PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS
    base = yield mmap(0, size, prot, flags)
    if base >= 0:
        return [(base, size)]
    low = min(size, TASK_UNMAPPED_BASE - LOW_BASE)
    a = yield mmap(LOW_BASE, low, prot, flags)
    b = yield mmap(0, size - low, prot, flags)
    return [(a, low), (b, size - low)]


def _login(ctx: Any, size: int) -> Any:
    yield execve(fork_test, size)


def _quit(ctx: Any) -> Any:
    yield from after_fork(ctx, 0)  # the child's return from fork: stack, libc's data, the program's data
    yield exit(0)


@program(text_pages=1, data_pages=1, bss_pages=0)
def tiny(ctx: Any) -> Any:
    """"a very small executable, which just exits" (dynamically linked)."""
    yield exit(0)


def _exec_quit(ctx: Any) -> Any:
    yield from after_fork(ctx, 0)
    yield execve(tiny)


def fork_program(ctx: Any, size: int) -> Any:
    """The measured program, started in its image (kept under this name for callers)."""
    yield from _login(ctx, size)


def measure(ctx: ScenarioContext, size: int, memory: int | None = None) -> dict[str, float]:
    """Simulated ms of fork, fork+exit and fork+exec+exit for ``size`` resident, with lowmem
    figures just after the fork; for each time, the share of it (%) charged by fitted cost entries.
    A figure whose marks were not reached (the task was killed) is left out."""
    if memory is None:
        m = ctx.machine()
    else:
        m = ctx.machine(memory=memory, pae=ctx.config.machine.pae or memory > (4 << 30))
    ns = m.costs.ns
    fitted = [e.kind == "fitted" for e in m.costs.entries]
    marks: dict[str, tuple[float, float, float, float]] = {}
    lowmem: dict[str, int] = {}

    def total(task: str | None) -> tuple[float, float]:
        t = f = 0.0
        for n, c in m.acct.totals(task=task).items():
            i = m.costs.id[n]
            t += c * ns[i]
            if fitted[i]:
                f += c * ns[i]
        return t, f

    def mark(task: Any, name: str) -> int:
        (t_task, f_task), (t_all, f_all) = total(task.lineage), total(None)
        marks[name] = (t_task, t_all, f_task, f_all)
        if name == "lowmem":
            info = m.meminfo()
            lowmem["page_tables"], lowmem["pte_chains"] = info["PageTables"], info["mmframe.PteChainBytes"] >> 10
        return 0

    m.sched.handlers["mark"] = mark
    t0 = time.perf_counter()
    m.run(fork_program, size)
    wall = time.perf_counter() - t0
    m.close()
    out: dict[str, float] = {"sim_wall": wall, **lowmem}
    for key, a, b, col in (("fork", "before", "forked", 0), ("fork_exit", "before", "reaped", 1),
                           ("fork_exec_exit", "reaped", "exec_reaped", 1)):
        if a not in marks or b not in marks:
            continue
        t = marks[b][col] - marks[a][col]
        out[key] = t / 1e6
        out[key + "_fitted"] = 100 * (marks[b][col + 2] - marks[a][col + 2]) / t if t else 0.0
    if size >= 256 << 20:
        out["seed"] = SEED_LARGE
    return out


def run(ctx: ScenarioContext) -> Mapping[str, Any]:
    p = ctx.params
    sizes = list(dict.fromkeys(p["sizes"]))
    figures: dict[str, dict[int, float]] = {f.key: {} for f in FIGURES}
    done, total = 0, sum(sizes)
    for size in sizes:
        for key, value in measure(ctx, size, p["memory"]).items():
            figures[key][size] = value
        done += size
        ctx.report(done, total)
    return figures


def check(params: Mapping[str, Any], machine: Any) -> None:
    if not params["sizes"]:
        raise OptionProblem("sizes", "needs at least one size", "a list like [\"4MiB\", \"40MiB\"]")
    for size in params["sizes"]:
        if size >= params["memory"]:
            raise OptionProblem("sizes", f"{format_size(size)} resident does not fit in the scenario's "
                                f"memory ({format_size(params['memory'])})",
                                "sizes below the scenario's memory option (raise memory, up to 64GiB)")
        if size < PAGE_SIZE:
            raise OptionProblem("sizes", f"{size} bytes is less than a page", "sizes of 4KiB or more")


FIGURES = (
    Figure("fork", "fork", "ms", "time", "size"),
    Figure("fork_fitted", "fork: share from fitted cost entries", "%", "ratio", "size"),
    Figure("fork_exit", "fork+exit", "ms", "time", "size"),
    Figure("fork_exit_fitted", "fork+exit: share from fitted cost entries", "%", "ratio", "size"),
    Figure("fork_exec_exit", "fork+exec+exit", "ms", "time", "size"),
    Figure("fork_exec_exit_fitted", "fork+exec+exit: share from fitted cost entries", "%", "ratio", "size"),
    # the seed's "almost 20x" for very large processes, beside the sizes it speaks of (compare it
    # with the mainline/pt_shared ratio of the fork row)
    Figure("seed", "the seed: sharing's fork speed-up, very large processes ('almost 20x')", "x", "ratio", "size"),
    Figure("page_tables", "PageTables", "kB", "memory", "size"),  # meminfo's, just after the fork
    Figure("pte_chains", "pte_chains", "kB", "memory", "size"),  # pte_chain slab bytes, just after the fork
    Figure("sim_wall", "simulator wall time", "s", "host", "size"),
)
MCCRACKEN = "McCracken, 'shared page tables timing', LKML, October 2002: 2.5.41"
REFERENCES = tuple(
    Reference(key, value, MCCRACKEN + ("-mm2 with shared page tables" if shared else ""), at=40 << 20,
              requires=("pt_shared",) if shared else (), excludes=() if shared else ("pt_shared",))
    for shared, table in ((False, MCCRACKEN_40MB), (True, MCCRACKEN_40MB_SHARED)) for key, value in table.items())


SCENARIO = Scenario(
    name="fork-scaling",
    help="fork, fork+exit and fork+exec+exit of a task with 4 MiB to 2 GiB of touched shared memory "
         "(McCracken's 2002 test)",
    run=run,
    options=(
        Option("sizes", "list[size]", list(SIZES), "resident sizes to fork"),
        Option("memory", "size", "4GiB", "machine memory for this scenario (PAE is turned on above 4 GiB)",
               minimum=16 << 20, maximum=64 << 30),
    ),
    figures=FIGURES,
    axes=(Axis("size", "resident", "B", log=True),),
    plot=Plot(("fork", "fork_exit", "fork_exec_exit", "page_tables")),
    references=REFERENCES,
    check=check,
    models="fork's copy of page tables and rmap pte_chains for a large resident task, with and without "
           "shared page tables; exit's teardown; exec of a small binary from the page cache",
    sources=("McCracken, 'shared page tables timing', LKML, October 2002: 2.5.41 and 2.5.41-mm2, a 40 MB "
             "process (printed as model/published ratios, never fitted)",
             "the patch: '[PATCH 2.5.41-mm1] new snapshot of shared page tables', linux-mm, 9 Oct 2002, "
             "Message-ID 228900000.1034197657@baldur.austin.ibm.com",
             "lmbench 'fork proc'/'exec proc' on 2.5.54-mm2, 790 MHz P-III (the cost table's anchors)"),
)

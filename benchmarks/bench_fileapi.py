"""The process and file API of issue 19: buffered I/O at byte granularity beside whole pages (the
content model's two representations), read/write through the file position, mremap moving a
populated mapping, and mlock faulting a range in; wall-clock rates, mainline.

Run: python benchmarks/bench_fileapi.py
No targets in issue 19; whole-page pwrite/pread is the baseline the byte-granular rows compare to.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import table  # noqa: E402

from mmframe.config import load_config  # noqa: E402
from mmframe.machine import Machine  # noqa: E402
from mmframe.usr import (MAP_ANONYMOUS, MAP_PRIVATE, O_CREAT, O_RDWR, PAGE_SIZE, PROT_READ, PROT_WRITE,  # noqa: E402
                         MREMAP_MAYMOVE, lseek, mlock, mmap, mremap, open, pread, pwrite, read, store, touch, write)

N = 4000
P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE


def machine() -> Machine:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=[])
    return Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=256 << 20, debug_vm="off")))


def rate(prog, n: int) -> float:
    m = machine()
    t = time.perf_counter()
    m.run(prog)
    return n / (time.perf_counter() - t)


def whole_pages(ctx):
    fd = yield open("/w", O_RDWR | O_CREAT)
    buf = yield mmap(0, P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    yield write(buf, 7)
    for i in range(N):
        yield pwrite(fd, buf, P, i * P)
    for i in range(N):
        yield pread(fd, buf, P, i * P)


def small_chunks(ctx):
    fd = yield open("/s", O_RDWR | O_CREAT)
    buf = yield mmap(0, P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    yield store(buf, b"x" * 100)
    for i in range(N):
        yield pwrite(fd, buf, 100, i * 100)  # 40 writes a page, each a partial page
    for i in range(N):
        yield pread(fd, buf + 7, 100, i * 100)


def positioned(ctx):
    fd = yield open("/p", O_RDWR | O_CREAT)
    buf = yield mmap(0, P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    for _ in range(N):
        yield write(fd, buf, 512)  # a sector at a time
    yield lseek(fd, 0, 0)
    for _ in range(N):
        yield read(fd, buf, 512)


def remap(ctx):
    a = yield mmap(0, 256 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    yield touch(a, 256 * P, True)
    for _ in range(N // 256):
        a = yield mremap(a, 256 * P, 257 * P, MREMAP_MAYMOVE)  # in place, or a move of every entry
        a = yield mremap(a, 257 * P, 256 * P)


def locking(ctx):
    a = yield mmap(0, N * P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    yield mlock(a, N * P)


def main() -> None:
    whole = rate(whole_pages, 2 * N)
    rows = [("pwrite+pread, whole pages", f"{whole:,.0f} calls/s", "1.00"),
            ("pwrite+pread, 100 bytes", f"{(r := rate(small_chunks, 2 * N)):,.0f} calls/s", f"{r / whole:.2f}"),
            ("write+read, 512 bytes at the position", f"{(r := rate(positioned, 2 * N)):,.0f} calls/s",
             f"{r / whole:.2f}"),
            ("mremap grow+shrink of 256 pages", f"{rate(remap, 2 * (N // 256)):,.0f} calls/s", "-"),
            ("mlock faulting pages in", f"{rate(locking, N):,.0f} pages/s", "-")]
    print(table(("case", "rate", "vs whole pages"), rows))


if __name__ == "__main__":
    main()

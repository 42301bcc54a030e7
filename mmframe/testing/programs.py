"""Generated programs for differential tests: hypothesis strategies for operation lists and the
simulated programs that run them (``mmframe.usr`` calls), shared by the project's tests and the
plugin kit's harness (:mod:`mmframe.testing.harness`).

A program is a list of operations, each a tuple ``(name, *args)``; :func:`do` turns one into a
system call.  The base vocabulary (:data:`CALL`, :data:`ALL_CALLS`) works in a 40-page window of a
process that :func:`_everything` sets up (two files, the window mapped, a heap); fork and spawn nest
lists.  :func:`register` adds operations (a strategy and how to run it), so new calls (direct and
async I/O, swap) join the generator without a second copy; :data:`PTE_CALLS` is the first such
set: whole-PTE-page operations in a region aligned to PTE pages.
"""

from __future__ import annotations

from typing import Any, Callable

from hypothesis import strategies as st

from mmframe import usr
from mmframe.usr import (MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, O_CREAT, O_RDWR, PAGE_SIZE, PROT_NONE,
                         PROT_READ, PROT_WRITE, SimSignal, brk, execve, fork, fsync, ftruncate, mmap, mprotect, msync,
                         munmap, open, pread, pwrite, read, shmat, shmctl, shmdt, shmget, touch, wait, write)
from mmframe.usr import IPC_CREAT, IPC_RMID

P = PAGE_SIZE
RW = PROT_READ | PROT_WRITE


def anon(length: int, shared: bool = False, prot: int = RW, addr: int = 0, fixed: bool = False) -> tuple:
    """An anonymous ``mmap`` call (private unless ``shared``; at ``addr`` exactly when ``fixed``)."""
    flags = (MAP_SHARED if shared else MAP_PRIVATE) | MAP_ANONYMOUS | (MAP_FIXED if fixed else 0)
    return mmap(addr, length, prot, flags)


WINDOW, PAGES = 0x1000_0000, 40
_PROTS = st.sampled_from([PROT_NONE, PROT_READ, RW])
_PG = st.integers(0, PAGES - 1)
_N = st.integers(1, 24)
_MEMORY_AND_FILE_CALLS = (
    st.tuples(st.just("anon"), _PG, _N, _PROTS, st.booleans()),
    st.tuples(st.just("file"), _PG, _N, _PROTS, st.booleans(), st.integers(0, 1), st.integers(0, 6)),
    st.tuples(st.just("munmap"), _PG, _N),
    st.tuples(st.just("mprotect"), _PG, _N, _PROTS),
    st.tuples(st.just("msync"), _PG, _N),
    st.tuples(st.just("write"), _PG, st.integers(1, 99)),
    st.tuples(st.just("read"), _PG),
    st.tuples(st.just("touch"), _PG, _N, st.booleans()),
    st.tuples(st.just("pwrite"), st.integers(0, 1), _PG, st.integers(1, 3), st.integers(0, 10)),
    st.tuples(st.just("pread"), st.integers(0, 1), _PG, st.integers(1, 3), st.integers(0, 10)),
    st.tuples(st.just("ftruncate"), st.integers(0, 1), st.integers(0, 12 * P)),
    st.tuples(st.just("fsync"), st.integers(0, 1)),
)
CALL = st.one_of(
    *_MEMORY_AND_FILE_CALLS,
    st.tuples(st.just("brk"), st.integers(-4, 12)),
    st.tuples(st.just("shmget"), st.integers(1, 3), st.integers(1, 6)),
    st.tuples(st.just("shmat"), st.integers(0, 2), _PG, st.booleans()),
    st.tuples(st.just("shmdt"), _PG),
    st.tuples(st.just("rmid"), st.integers(0, 2)),
    st.tuples(st.just("stack"), st.integers(0, 24), st.booleans()),  # below the stack: it grows
)
ALL_CALLS = st.lists(st.one_of(CALL, st.tuples(st.just("fork"), st.lists(CALL, max_size=8), st.booleans()),
                               st.tuples(st.just("spawn"), st.lists(CALL, max_size=8))), max_size=22)


# Operations added by register(): name -> (strategy, handler(args, fds, shmids, b0) -> a call).
EXTRA: dict[str, tuple[Any, Callable[..., Any]]] = {}


def register(name: str, strategy: Any, handler: Callable[..., Any]) -> None:
    """Add an operation: ``strategy`` draws ``(name, *args)`` tuples, ``handler(args, fds, shmids, b0)``
    returns the system call to make (a ``mmframe.usr`` call tuple)."""
    EXTRA[name] = (strategy, handler)


def program_strategy(max_size: int = 22, child_size: int = 8, names: tuple[str, ...] | None = None,
                     min_size: int = 0) -> Any:
    """Programs over the base calls plus the registered ones (``names``: which; default all), with
    forks (a child running a list, waited for, then exec or not), spawns (a forked child running
    alongside) and clones (a thread sharing the address space, running alongside)."""
    extra = [EXTRA[n][0] for n in (EXTRA if names is None else names)]
    call = st.one_of(CALL, *extra)
    return st.lists(st.one_of(call, st.tuples(st.just("fork"), st.lists(call, max_size=child_size), st.booleans()),
                              st.tuples(st.just("spawn"), st.lists(call, max_size=child_size)),
                              st.tuples(st.just("clone"), st.lists(call, max_size=child_size))),
                    min_size=min_size, max_size=max_size)


def do(op, fds, shmids, b0):
    """The system call of one operation."""
    return _do(op, fds, shmids, b0)


def _do(op, fds, shmids, b0):
    name, *a = op
    if name in EXTRA:
        return EXTRA[name][1](a, fds, shmids, b0)
    if name in ("anon", "file", "munmap", "mprotect", "msync", "write", "read", "touch", "shmdt"):
        addr = WINDOW + a[0] * P
    if name == "anon":
        return anon(a[1] * P, shared=a[3], prot=a[2], addr=addr, fixed=True)
    if name == "file":
        return mmap(addr, a[1] * P, a[2], (MAP_SHARED if a[3] else MAP_PRIVATE) | MAP_FIXED, fds[a[4]], a[5] * P)
    if name == "munmap":
        return munmap(addr, a[1] * P)
    if name == "mprotect":
        return mprotect(addr, a[1] * P, a[2])
    if name == "stack":
        addr = 0xC000_0000 - (a[0] + 1) * P + 8
        return write(addr, 5) if a[1] else read(addr)
    if name == "brk":
        return brk(b0 + a[0] * P)
    if name == "msync":
        return msync(addr, a[1] * P)
    if name == "write":
        return write(addr, a[1])
    if name == "read":
        return read(addr)
    if name == "touch":
        return touch(addr, a[1] * P, a[2])
    if name == "pwrite":
        return pwrite(fds[a[0]], WINDOW + a[1] * P, a[2] * P, a[3] * P)
    if name == "pread":
        return pread(fds[a[0]], WINDOW + a[1] * P, a[2] * P, a[3] * P)
    if name == "ftruncate":
        return ftruncate(fds[a[0]], a[1])
    if name == "fsync":
        return fsync(fds[a[0]])
    if name == "shmget":
        return shmget(a[0], a[1] * P, IPC_CREAT)
    if name == "shmat":
        return usr.shmat(shmids[a[0] % len(shmids)] if shmids else -1, WINDOW + a[1] * P,
                         usr.SHM_REMAP if a[2] else 0)
    if name == "shmdt":
        return shmdt(addr)
    return shmctl(shmids[a[0] % len(shmids)] if shmids else -1, IPC_RMID)


def _ops(ops, fds, shmids, b0):
    for op in ops:
        if op[0] == "fork":
            pid = yield fork(_forked, op[1], fds, list(shmids), b0, op[2])
            yield wait(pid)
            continue
        if op[0] == "spawn":  # a child that runs alongside; reaped at the end
            yield fork(_forked, op[1], fds, list(shmids), b0, False)
            continue
        if op[0] == "clone":  # a thread: the same mm and files, running alongside; reaped at the end
            yield usr.clone(_cloned, op[1], fds, list(shmids), b0)
            continue
        try:
            r = yield _do(op, fds, shmids, b0)
        except SimSignal:
            continue
        if op[0] == "shmget" and r >= 0:
            shmids.append(r)


def _forked(ctx, ops, fds, shmids, b0, then_exec):
    yield from _ops(ops, fds, shmids, b0)
    for page in range(0, PAGES, 5):
        try:
            yield read(WINDOW + page * P)
        except SimSignal:
            pass
    if then_exec:
        yield execve(_exec_target, fds, shmids)


def _cloned(ctx, ops, fds, shmids, b0):
    yield from _ops(ops, fds, shmids, b0)


def _exec_target(ctx, fds, shmids):
    """A new image: the descriptors survive exec, the old mappings and attachments do not."""
    buf = yield anon(4 * P)
    yield pread(fds[0], buf, 4 * P, 0)
    for i in range(4):
        yield read(buf + i * P)
    for sid in shmids[:1]:
        at = yield shmat(sid)
        if at > 0:
            yield write(at, 5)
    yield write(buf, 7)
    yield pwrite(fds[1], buf, P, 0)


def _exec_everything(ctx, ops, ptp_region=False):
    yield execve(_everything, ops, ptp_region)  # an image: text, data, bss, heap and a growing stack


def run_program(ctx, ops):
    """The harness's program: :func:`_everything` with the PTE-page region, run from an exec."""
    yield from _exec_everything(ctx, ops, True)


# --- PTE-page operations: biased to the boundaries of a page-table page ---------------------------
# A region of two PTE pages of the non-PAE layout (1,024 PTEs, 4 MiB each; with PAE each is two
# 512-entry PTE pages), aligned to 4 MiB: whole-PTE-page munmap/mprotect/remap, mmaps into a range a
# fork may have shared (pt_shared), touches at the entries either side of each boundary.
PTP_BASE, PTP_PAGES = 0x3000_0000, 1024
_EDGE = st.one_of(st.sampled_from([0, 1, 255, 256, 511, 512, 513, 1022, 1023]), st.integers(0, PTP_PAGES - 1))
_PTP = st.integers(0, 1)


def _ptp_addr(ptp: int, page: int = 0) -> int:
    return PTP_BASE + (ptp * PTP_PAGES + page) * P


register("ptp_touch", st.tuples(st.just("ptp_touch"), _PTP, _EDGE, st.integers(1, 4), st.booleans()),
         lambda a, *_: touch(_ptp_addr(a[0], a[1]), a[2] * P, a[3]))
register("ptp_write", st.tuples(st.just("ptp_write"), _PTP, _EDGE, st.integers(1, 99)),
         lambda a, *_: write(_ptp_addr(a[0], a[1]), a[2]))
register("ptp_munmap", st.tuples(st.just("ptp_munmap"), _PTP, st.sampled_from([1, 2])),
         lambda a, *_: munmap(_ptp_addr(a[0]), a[1] * PTP_PAGES * P))
register("ptp_mprotect", st.tuples(st.just("ptp_mprotect"), _PTP, st.sampled_from([PROT_NONE, PROT_READ, RW])),
         lambda a, *_: mprotect(_ptp_addr(a[0]), PTP_PAGES * P, a[1]))
register("ptp_map", st.tuples(st.just("ptp_map"), _PTP, st.booleans()),
         lambda a, *_: anon(PTP_PAGES * P, shared=a[1], addr=_ptp_addr(a[0]), fixed=True))
register("ptp_map_into", st.tuples(st.just("ptp_map_into"), _PTP, _EDGE, st.integers(1, 8), st.booleans()),
         lambda a, *_: anon(a[2] * P, shared=a[3], addr=_ptp_addr(a[0], a[1]), fixed=True))
register("ptp_shmat", st.tuples(st.just("ptp_shmat"), st.integers(0, 2), _PTP, _EDGE),
         lambda a, fds, shmids, b0: shmat(shmids[a[0] % len(shmids)] if shmids else -1, _ptp_addr(a[1], a[2]),
                                          usr.SHM_REMAP))


@usr.program(stack_pages=2)
def _everything(ctx, ops, ptp_region=False):
    fds = [(yield open("/a", O_RDWR | O_CREAT)), (yield open("/b", O_RDWR | O_CREAT))]
    yield ftruncate(fds[0], 6 * P + 100)
    yield anon(PAGES * P, addr=WINDOW, fixed=True)  # start mapped, so most calls succeed
    if ptp_region:  # two whole PTE pages mapped, their edges populated (fork after populating)
        yield anon(PTP_PAGES * 2 * P, addr=PTP_BASE, fixed=True)
        yield touch(PTP_BASE + (PTP_PAGES - 8) * P, 16 * P, True)
    b0 = yield brk(0)
    yield from _ops(ops, fds, [], b0)
    for page in range(PAGES):
        try:
            yield read(WINDOW + page * P)
        except SimSignal:
            pass
    while (yield wait()) != -usr.ECHILD:
        pass
    buf = yield anon(16 * P)
    for fd in fds:  # what the files hold at the end
        yield pread(fd, buf, 16 * P, 0)
        for i in range(16):
            yield read(buf + i * P)

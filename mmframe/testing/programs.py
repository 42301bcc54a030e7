"""Generated programs for differential tests: hypothesis strategies for operation lists and the
simulated programs that run them (``mmframe.usr`` calls), shared by the project's tests and the
plugin kit's harness (:mod:`mmframe.testing.harness`).

A program is a list of operations, each a tuple ``(name, *args)``; :func:`do` turns one into a
system call and :func:`run_ops` runs a list (fork, spawn and clone nest lists).  The base vocabulary
(:data:`MEMORY_AND_FILE_CALLS` and :data:`BRK_SHM_STACK_CALLS`, drawn by :data:`CALL` and
:data:`ALL_CALLS`) works in a 40-page window (:data:`WINDOW`, :data:`PAGES`) of a process that
:func:`_everything` sets up (two files, the window mapped, a heap).  :func:`register` adds operations
(a strategy and how to run it), so new calls (direct and async I/O, swap) join the generator without
a second copy; the ``ptp_*`` operations are the first such set: whole-PTE-page operations in a
region aligned to PTE pages.  A test with operations of its own that the generator must not draw
passes them to :func:`run_ops` as a table (``own``) and keeps the kit's dispatch and runner for the
rest.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

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
#: The base operations on memory and files (what an oracle of mappings and files models: no brk,
#: SysV shm or stack growth): strategies of ``(name, *args)`` tuples that :func:`do` runs.
MEMORY_AND_FILE_CALLS = (
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
#: The rest of the base: brk (relative to the break at the start), SysV shm, a fault below the stack.
BRK_SHM_STACK_CALLS = (
    st.tuples(st.just("brk"), st.integers(-4, 12)),
    st.tuples(st.just("shmget"), st.integers(1, 3), st.integers(1, 6)),
    st.tuples(st.just("shmat"), st.integers(0, 2), _PG, st.booleans()),
    st.tuples(st.just("shmdt"), _PG),
    st.tuples(st.just("rmid"), st.integers(0, 2)),
    st.tuples(st.just("stack"), st.integers(0, 24), st.booleans()),  # below the stack: it grows
)
CALL = st.one_of(*MEMORY_AND_FILE_CALLS, *BRK_SHM_STACK_CALLS)
ALL_CALLS = st.lists(st.one_of(CALL, st.tuples(st.just("fork"), st.lists(CALL, max_size=8), st.booleans()),
                               st.tuples(st.just("spawn"), st.lists(CALL, max_size=8))), max_size=22)


#: How an operation runs: ``handler(args, fds, shmids, b0)`` -> a ``mmframe.usr`` call, or a generator
#: of calls (a compound operation).
Handler = Callable[..., Any]
# Operations added by register(): name -> (strategy, handler).
EXTRA: dict[str, tuple[Any, Handler]] = {}


def register(name: str, strategy: Any, handler: Handler) -> None:
    """Add an operation: ``strategy`` draws ``(name, *args)`` tuples, ``handler(args, fds, shmids, b0)``
    returns the system call to make (a ``mmframe.usr`` call tuple) or, for a compound operation, a
    generator that yields several calls and receives their results (it catches the ``SimSignal``
    its own calls may raise)."""
    EXTRA[name] = (strategy, handler)


def _same(op: Any) -> Any:
    return op


def program_strategy(max_size: int = 22, child_size: int = 8, names: tuple[str, ...] | None = None,
                     min_size: int = 0) -> Any:
    """Programs over the base calls plus the registered ones (``names``: which; default all), with
    forks (a child running a list, waited for, then exec or not), spawns (a forked child running
    alongside) and clones (a thread sharing the address space, running alongside).  The default
    leaves out :data:`SWAP_CALLS` (memory pressure: for a machine with swap, :data:`SWAP_MACHINE`).
    A name given more than once is drawn that much more often (each base call and each name is
    one branch, drawn uniformly)."""
    names = tuple(n for n in EXTRA if n not in SWAP_CALLS) if names is None else names
    extra = [EXTRA[n][0].map(_same) for n in names]  # distinct objects: one_of keeps repeated names
    call = st.one_of(CALL, *extra)
    return st.lists(st.one_of(call, st.tuples(st.just("fork"), st.lists(call, max_size=child_size), st.booleans()),
                              st.tuples(st.just("spawn"), st.lists(call, max_size=child_size)),
                              st.tuples(st.just("clone"), st.lists(call, max_size=child_size))),
                    min_size=min_size, max_size=max_size)


def do(op: tuple, fds: list[int], shmids: list[int], b0: int, own: Mapping[str, Handler] | None = None) -> Any:
    """The system call of one operation (or, for a compound one, the generator of its calls):
    ``own`` first (a table of the caller's operations, see :func:`run_ops`), then the registered
    operations, then the base vocabulary; an unknown name is a ValueError."""
    return _do(op, fds, shmids, b0, own)


def _do(op, fds, shmids, b0, own=None):
    name, *a = op
    if own and name in own:
        return own[name](a, fds, shmids, b0)
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
    if name == "rmid":
        return shmctl(shmids[a[0] % len(shmids)] if shmids else -1, IPC_RMID)
    raise ValueError(f"mmframe.testing.programs: no operation {name!r} (not in the base vocabulary, "
                     f"not registered, not in the caller's own table)")


def run_ops(ops: list, fds: list[int], shmids: list[int], b0: int, own: Mapping[str, Handler] | None = None):
    """Run a list of operations in the calling simulated process (``yield from run_ops(...)``):
    ``("fork", ops, then_exec)`` forks a child that runs ``ops``, reads the window and execs a
    new image or not, and waits for it; ``("spawn", ops)`` forks one running alongside and
    ``("clone", ops)`` a thread (both reaped by the caller); any other operation is :func:`do`'s,
    a signal it raises ending that operation only (a compound one catches its own).  ``fds``:
    the descriptors the operations index; ``shmids`` collects the ids ``shmget`` returns; ``b0``:
    the break at the start.  ``own`` maps names to handlers (as :func:`register` takes them)
    looked up first, in children too: a test's operations, never drawn by
    :func:`program_strategy` and shadowing a registered operation of the same name."""
    return _ops(ops, fds, shmids, b0, own)


def _ops(ops, fds, shmids, b0, own=None):
    for op in ops:
        if op[0] == "fork":
            pid = yield fork(_forked, op[1], list(fds), list(shmids), b0, op[2], own)
            yield wait(pid)
            continue
        if op[0] == "spawn":  # a child that runs alongside; reaped at the end
            yield fork(_forked, op[1], list(fds), list(shmids), b0, False, own)
            continue
        if op[0] == "clone":  # a thread: the same mm and files, running alongside; reaped at the end
            yield usr.clone(_cloned, op[1], list(fds), list(shmids), b0, own)
            continue
        call = _do(op, fds, shmids, b0, own)
        if not isinstance(call, tuple):  # a compound operation: its own calls
            yield from call
            continue
        try:
            r = yield call
        except SimSignal:
            continue
        if op[0] == "shmget" and r >= 0:
            shmids.append(r)


def _forked(ctx, ops, fds, shmids, b0, then_exec, own=None):
    yield from _ops(ops, fds, shmids, b0, own)
    for page in range(0, PAGES, 5):
        try:
            yield read(WINDOW + page * P)
        except SimSignal:
            pass
    if then_exec:
        yield execve(_exec_target, fds, shmids)


def _cloned(ctx, ops, fds, shmids, b0, own=None):
    yield from _ops(ops, fds, shmids, b0, own)


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


# --- the file API, the mapping calls, direct and async I/O, swap (issue 19's calls, 2.5.49's) --------
# Descriptors of the program (set up by _everything): 0 and 1 buffered /a and /b, 2 /a opened
# O_DIRECT, 3 /dev/zero.  SCRATCH is a page no generated operation maps over: the byte a pipe carries.
SCRATCH = 0x2000_0000
PATHS = ("/a", "/b", "/c", "/tmp/d", "/tmp")
_F = st.integers(0, 1)
_BOFF = st.one_of(st.sampled_from([0, 1, 511, 512, 4095]), st.integers(0, P - 1))
_COUNT = st.one_of(st.sampled_from([0, 1, 512, P, P + 1, 2 * P]), st.integers(0, 3 * P))
_FOFF = st.one_of(st.sampled_from([0, 1, P - 1, P, 6 * P + 100, 12 * P]), st.integers(0, 16 * P))
_PATH = st.integers(0, len(PATHS) - 1)
_ADVICE = st.sampled_from([usr.MADV_NORMAL, usr.MADV_RANDOM, usr.MADV_SEQUENTIAL, usr.MADV_WILLNEED,
                           usr.MADV_DONTNEED])


def _buf(pg: int, boff: int = 0) -> int:
    return WINDOW + pg * P + boff


def _reopen(a, fds, shmids, b0):
    """close a descriptor and open a path in its place (O_TRUNC or not): unlinked files live on."""
    yield usr.close(fds[a[0]])
    fd = yield open(PATHS[a[1]], O_RDWR | O_CREAT | (usr.O_TRUNC if a[2] else 0))
    if fd >= 0:
        fds[a[0]] = fd


def _pipe(a, fds, shmids, b0):
    """A pipe within the task or from a child (written, waited for, then read): never blocks for
    ever; ``broken``: the read end closed first, so the write is EPIPE with SIGPIPE; ``nonblock``:
    the read end O_NONBLOCK (fcntl) and read while empty."""
    nw, nr, pg, child, broken, nonblock = a
    p = yield usr.pipe()
    if not isinstance(p, tuple):
        return
    r, w = p
    if nonblock:  # fcntl(F_SETFL, O_NONBLOCK): a read of the empty pipe is EAGAIN, not a wait
        yield usr.fcntl(r, usr.F_SETFL, usr.O_NONBLOCK)
        yield read(r, _buf(pg), 1)
    if broken:
        yield usr.close(r)
        try:
            yield write(w, _buf(pg), nw)
        except SimSignal:
            pass
        yield usr.close(w)
        return
    if child:
        pid = yield fork(_pipe_writer, r, w, _buf(pg), nw)
        yield wait(pid)
    else:
        yield write(w, _buf(pg), nw)
    yield usr.close(w)
    yield read(r, _buf((pg + 7) % PAGES), nr)  # at most what is there (end of file once empty)
    yield usr.close(r)


def _pipe_writer(ctx, r, w, buf, n):
    yield usr.close(r)
    yield write(w, buf, n)


def _aio(a, fds, shmids, b0):
    """io_setup, io_submit of up to three iocbs (buffered or O_DIRECT, reads and writes), wait for
    every one submitted, io_destroy.  Events carry the cookie: which iocb and its result."""
    ctx_id = yield usr.io_setup(4)
    if ctx_id < 0:
        return
    iocbs = [(usr.iocb_pwrite if w else usr.iocb_pread)(fds[f], _buf(pg, sect * 512), nsect * 512, off * 512, i)
             for i, (w, f, pg, sect, nsect, off) in enumerate(a[0])]
    n = yield usr.io_submit(ctx_id, iocbs)
    if n > 0:
        yield usr.io_getevents(ctx_id, n, 4)
    yield usr.io_destroy(ctx_id)


_EDGES = (0, 1, 511, 512, 1022, 1023)


def _peek(pages):
    """Read each PTE-page-region page (a signal is a result too: it is in the call log)."""
    for ptp, page in pages:
        try:
            yield read(_ptp_addr(ptp, page))
        except SimSignal:
            pass


def _region_pages(page: int, n: int):
    near = {page - 1, page, page + n - 1, page + n, *_EDGES}
    return [(ptp, q) for ptp in (0, 1) for q in sorted(near) if 0 <= q < PTP_PAGES]


_SHARED_KINDS = ("munmap", "munmap_pte", "mprotect", "mprotect_pte", "write", "map_into", "mremap", "dontneed",
                 "balloon")


def _shared_op(a, fds, shmids, b0):
    """Fork after populating, with the child held alive on a pipe while the parent changes the
    region (so pt_shared's tables are shared during the change): a partial or whole-PTE-page
    munmap or mprotect, a write, an mmap into the range, an mremap out of it, MADV_DONTNEED, or
    memory pressure (a balloon: swap under sharing).  Then both sides read the pages around the
    change and the edges, the parent first; the child writes and reads back after."""
    ptp, kind, page, n, tag = a
    p = yield usr.pipe()
    if not isinstance(p, tuple):
        return
    r, w = p
    pages = _region_pages(page, n)
    pid = yield fork(_held_child, r, w, pages, ptp, page, tag)
    addr = _ptp_addr(ptp, page)
    try:
        if kind == "munmap":
            yield munmap(addr, n * P)
        elif kind == "munmap_pte":
            yield munmap(_ptp_addr(ptp), PTP_PAGES * P)
        elif kind == "mprotect":
            yield mprotect(addr, n * P, PROT_READ)
        elif kind == "mprotect_pte":
            yield mprotect(_ptp_addr(ptp), PTP_PAGES * P, PROT_READ)
        elif kind == "write":
            yield write(addr, tag)
        elif kind == "map_into":
            yield anon(n * P, addr=addr, fixed=True)
        elif kind == "mremap":
            yield usr.mremap(addr, n * P, n * P, usr.MREMAP_MAYMOVE | usr.MREMAP_FIXED, _ptp_addr(1 - ptp, page))
        elif kind == "dontneed":
            yield usr.madvise(addr, n * P, usr.MADV_DONTNEED)
        else:
            yield from _balloon((n,))
    except SimSignal:
        pass
    yield from _peek(pages)
    yield write(w, SCRATCH, 1)
    yield wait(pid)
    yield usr.close(r)
    yield usr.close(w)


def _held_child(ctx, r, w, pages, ptp, page, tag):
    yield usr.close(w)
    yield read(r, SCRATCH, 1)  # held here until the parent has made its change
    yield from _peek(pages)
    try:  # a write on the child's side too, read back
        yield write(_ptp_addr(ptp, page), tag + 1)
        yield read(_ptp_addr(ptp, page))
    except SimSignal:
        pass


BALLOON, BALLOON_PAGES = 0x6000_0000, 3584  # 14 MiB: more than the swap profile's 16 MiB machine has free


def _balloon(a, *_):
    """Memory pressure: map, dirty and unmap ``BALLOON_PAGES + 256 * a[0]`` pages (reclaim swaps what
    the program had out; later accesses swap it in)."""
    n = BALLOON_PAGES + 256 * a[0]
    at = yield anon(n * P, addr=BALLOON, fixed=True)
    if at == BALLOON:
        yield touch(BALLOON, n * P, True)
        yield munmap(BALLOON, n * P)


FILE_CALLS = ("f_write", "f_read", "f_lseek", "f_pwrite", "f_pread", "f_writev", "f_readv", "f_sync", "f_stat",
              "f_fstat", "f_unlink", "f_rename", "f_reopen", "f_zero_read", "f_zero_map", "f_pipe", "f_ftruncate",
              "f_fcntl")
register("f_write", st.tuples(st.just("f_write"), _F, _PG, _BOFF, _COUNT),
         lambda a, fds, *_: write(fds[a[0]], _buf(a[1], a[2]), a[3]))
register("f_read", st.tuples(st.just("f_read"), _F, _PG, _BOFF, _COUNT),
         lambda a, fds, *_: read(fds[a[0]], _buf(a[1], a[2]), a[3]))
register("f_lseek", st.tuples(st.just("f_lseek"), _F, st.one_of(_FOFF, st.integers(-2 * P, 0)), st.integers(0, 2)),
         lambda a, fds, *_: usr.lseek(fds[a[0]], a[1], a[2]))
register("f_pwrite", st.tuples(st.just("f_pwrite"), _F, _PG, _BOFF, _COUNT, _FOFF),
         lambda a, fds, *_: pwrite(fds[a[0]], _buf(a[1], a[2]), a[3], a[4]))
register("f_pread", st.tuples(st.just("f_pread"), _F, _PG, _BOFF, _COUNT, _FOFF),
         lambda a, fds, *_: pread(fds[a[0]], _buf(a[1], a[2]), a[3], a[4]))
_IOV = st.lists(st.tuples(_PG, _BOFF, _COUNT), min_size=1, max_size=3)
register("f_writev", st.tuples(st.just("f_writev"), _F, _IOV),
         lambda a, fds, *_: usr.writev(fds[a[0]], [(_buf(pg, o), n) for pg, o, n in a[1]]))
register("f_readv", st.tuples(st.just("f_readv"), _F, _IOV),
         lambda a, fds, *_: usr.readv(fds[a[0]], [(_buf(pg, o), n) for pg, o, n in a[1]]))
register("f_sync", st.tuples(st.just("f_sync")), lambda a, *_: usr.sync())
register("f_ftruncate", st.tuples(st.just("f_ftruncate"), _F, _FOFF), lambda a, fds, *_: ftruncate(fds[a[0]], a[1]))
register("f_stat", st.tuples(st.just("f_stat"), _PATH), lambda a, *_: usr.stat(PATHS[a[0]]))
register("f_fstat", st.tuples(st.just("f_fstat"), st.integers(0, 3)), lambda a, fds, *_: usr.fstat(fds[a[0]]))
register("f_unlink", st.tuples(st.just("f_unlink"), _PATH), lambda a, *_: usr.unlink(PATHS[a[0]]))
register("f_rename", st.tuples(st.just("f_rename"), _PATH, _PATH),
         lambda a, *_: usr.rename(PATHS[a[0]], PATHS[a[1]]))
register("f_reopen", st.tuples(st.just("f_reopen"), _F, st.integers(0, 3), st.booleans()), _reopen)
register("f_zero_read", st.tuples(st.just("f_zero_read"), _PG, _BOFF, _COUNT),
         lambda a, fds, *_: read(fds[3], _buf(a[0], a[1]), a[2]))
register("f_zero_map", st.tuples(st.just("f_zero_map"), _PG, _N, st.booleans()),
         lambda a, fds, *_: mmap(_buf(a[0]), a[1] * P, RW, (MAP_SHARED if a[2] else MAP_PRIVATE) | MAP_FIXED, fds[3], 0))
register("f_pipe", st.tuples(st.just("f_pipe"), st.one_of(st.sampled_from([0, 1, usr.PIPE_BUF]),
                                                           st.integers(0, usr.PIPE_BUF)),
                             st.integers(0, usr.PIPE_BUF), _PG, st.booleans(), st.booleans(), st.booleans()), _pipe)
register("f_fcntl", st.tuples(st.just("f_fcntl"), st.integers(0, 3), st.sampled_from([usr.F_GETFL, usr.F_SETFL]),
                              st.sampled_from([0, usr.O_APPEND, usr.O_NONBLOCK, usr.O_APPEND | usr.O_NONBLOCK])),
         lambda a, fds, *_: usr.fcntl(fds[a[0]], a[1], a[2]))

MM_CALLS = ("mremap", "mlock", "munlock", "mlockall", "madvise", "mincore", "populate", "ptp_mremap", "ptp_madvise")
_MREMAP_FLAGS = st.sampled_from([0, usr.MREMAP_MAYMOVE, usr.MREMAP_MAYMOVE | usr.MREMAP_FIXED])
register("mremap", st.tuples(st.just("mremap"), _PG, _N, _N, _MREMAP_FLAGS, _PG),
         lambda a, *_: usr.mremap(_buf(a[0]), a[1] * P, a[2] * P, a[3], _buf(a[4])))
register("mlock", st.tuples(st.just("mlock"), _PG, _N), lambda a, *_: usr.mlock(_buf(a[0]), a[1] * P))
register("munlock", st.tuples(st.just("munlock"), _PG, _N), lambda a, *_: usr.munlock(_buf(a[0]), a[1] * P))
register("mlockall", st.tuples(st.just("mlockall"), st.sampled_from([0, usr.MCL_CURRENT, usr.MCL_FUTURE])),
         lambda a, *_: usr.mlockall(a[0]) if a[0] else usr.munlockall())
register("madvise", st.tuples(st.just("madvise"), _PG, _N, _ADVICE, st.sampled_from([0, 0, 0, 1])),
         lambda a, *_: usr.madvise(_buf(a[0]) + a[3], a[1] * P, a[2]))
register("mincore", st.tuples(st.just("mincore"), _PG, _N), lambda a, *_: usr.mincore(_buf(a[0]), a[1] * P))
register("populate", st.tuples(st.just("populate"), _PG, _N, st.booleans(), st.integers(-1, 1)),
         lambda a, fds, *_: mmap(_buf(a[0]), a[1] * P, RW, (MAP_SHARED if a[2] else MAP_PRIVATE) | MAP_FIXED
                                 | usr.MAP_POPULATE | (MAP_ANONYMOUS if a[3] < 0 else 0), fds[a[3]] if a[3] >= 0 else -1, 0))
register("ptp_mremap", st.tuples(st.just("ptp_mremap"), _PTP, _EDGE, st.integers(1, 8), _PTP, _EDGE),
         lambda a, *_: usr.mremap(_ptp_addr(a[0], a[1]), a[2] * P, a[2] * P, usr.MREMAP_MAYMOVE | usr.MREMAP_FIXED,
                                  _ptp_addr(a[3], a[4])))
register("ptp_madvise", st.tuples(st.just("ptp_madvise"), _PTP, _EDGE, st.integers(1, 8), _ADVICE),
         lambda a, *_: usr.madvise(_ptp_addr(a[0], a[1]), a[2] * P, a[3]))

IO_CALLS = ("dio_pread", "dio_pwrite", "aio")
_SECT, _NSECT, _OFFS = st.sampled_from([0, 0, 0, 1, 7]), st.integers(1, 24), st.integers(0, 100)
_MIS = st.sampled_from([0, 0, 0, 0, 1])  # sometimes misaligned: EINVAL before anything is done
register("dio_pread", st.tuples(st.just("dio_pread"), _PG, _SECT, _NSECT, _OFFS, _MIS),
         lambda a, fds, *_: pread(fds[2], _buf(a[0], a[1] * 512 + a[4]), a[2] * 512, a[3] * 512))
register("dio_pwrite", st.tuples(st.just("dio_pwrite"), _PG, _SECT, _NSECT, _OFFS, _MIS),
         lambda a, fds, *_: pwrite(fds[2], _buf(a[0], a[1] * 512 + a[4]), a[2] * 512, a[3] * 512))
register("aio", st.tuples(st.just("aio"), st.lists(st.tuples(st.booleans(), st.integers(0, 2), _PG, _SECT, _NSECT,
                                                             _OFFS), min_size=1, max_size=3)), _aio)

SHARE_CALLS = ("shared_op",)
_KINDS = st.sampled_from(_SHARED_KINDS[:-1])
register("shared_op", st.tuples(st.just("shared_op"), _PTP, _KINDS, _EDGE, st.integers(1, 8), st.integers(1, 99)),
         _shared_op)
register("shared_swap", st.tuples(st.just("shared_swap"), _PTP, st.just("balloon"), _EDGE, st.integers(0, 3),
                                  st.integers(1, 99)), _shared_op)
register("balloon", st.tuples(st.just("balloon"), st.integers(0, 3)), _balloon)
SWAP_CALLS = ("balloon", "shared_swap")
#: The harness's machine keys for programs with :data:`SWAP_CALLS`: 64 MiB of swap on the 16 MiB
#: machine, so a balloon (16-40 MiB) swaps the program's pages out and nothing is exhausted.
SWAP_MACHINE = {"vm": {"swap": 64 << 20}}


def sharing_program_strategy(max_size: int = 10, child_size: int = 4, min_size: int = 3) -> Any:
    """Programs biased to the cases of shared page tables: :func:`_shared_op` (a fork held alive
    while the parent changes part or all of a PTE page of the shared range) drawn about half the
    time, the other PTE-page operations and a few memory calls between."""
    names = ("shared_op",) * 12 + tuple(n for n in EXTRA if n.startswith("ptp_")) + ("mremap", "madvise", "mlock")
    return program_strategy(max_size=max_size, child_size=child_size, names=names, min_size=min_size)


def swap_program_strategy(max_size: int = 8, child_size: int = 4) -> Any:
    """Programs for the swap machine: each starts with swap under sharing (a balloon while a fork
    holds the populated range), then every call, another balloon among them, without those whose
    result reclaim's choices decide (``mincore``: page-cache residency) or that could pin more
    than the machine holds (``mlockall``)."""
    names = tuple(n for n in EXTRA if n not in ("mincore", "mlockall") and n not in SWAP_CALLS) + SWAP_CALLS
    rest = program_strategy(max_size=max_size, child_size=child_size, names=names, min_size=2)
    return st.tuples(EXTRA["shared_swap"][0], rest).map(lambda fr: [fr[0], *fr[1]])


def _pressure(ops) -> bool:
    """Whether a program (or a child's list) applies memory pressure."""
    return any(op[0] in SWAP_CALLS or op[0] in ("fork", "spawn", "clone") and _pressure(op[1]) for op in ops)


@usr.program(stack_pages=2)
def _everything(ctx, ops, ptp_region=False):
    fds = [(yield open("/a", O_RDWR | O_CREAT)), (yield open("/b", O_RDWR | O_CREAT))]
    fds += [(yield open("/a", O_RDWR | usr.O_DIRECT)), (yield open("/dev/zero", O_RDWR))]
    yield ftruncate(fds[0], 6 * P + 100)
    yield anon(PAGES * P, addr=WINDOW, fixed=True)  # start mapped, so most calls succeed
    yield anon(P, addr=SCRATCH, fixed=True)
    if ptp_region:  # two whole PTE pages mapped, their edges populated (fork after populating)
        yield anon(PTP_PAGES * 2 * P, addr=PTP_BASE, fixed=True)
        yield touch(PTP_BASE + (PTP_PAGES - 8) * P, 16 * P, True)
        for i, page in enumerate((PTP_PAGES - 2, PTP_PAGES - 1, PTP_PAGES, PTP_PAGES + 1)):
            yield write(PTP_BASE + page * P, 1000 + i)  # data either side of the boundary (to swap)
    b0 = yield brk(0)
    yield from _ops(ops, fds, [], b0)
    for page in range(PAGES):  # what memory holds at the end, byte for byte
        try:
            yield usr.load(WINDOW + page * P, P)
        except SimSignal:
            pass
    while (yield wait()) != -usr.ECHILD:
        pass
    if _pressure(ops):  # reclaim may have written some dirty file pages early: sync, so the disk holds
        yield usr.sync()  # what the program wrote whatever reclaim chose (and no page is left dirty)
    buf = yield anon(16 * P)
    for fd in fds[:2]:  # what the files hold at the end, byte for byte
        yield pread(fd, buf, 16 * P, 0)
        yield usr.load(buf, 16 * P)

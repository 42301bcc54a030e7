"""Direct I/O (O_DIRECT pread/pwrite) and AIO, with the debug_vm checker after every call:
alignment (fs block, then the 512-byte sector, else -EINVAL with nothing changed), sector-granular
content, zero-copy bios on pinned user pages (bounced only above the bounce pfn), page-cache
coherence, copy-on-write broken by a direct read, in-flight I/O across fork, munmap and exit, the
AIO calls and their errnos, the user-page mapping hook; and generated programs (the address-space
generators of tests/test_address_space.py plus direct and async I/O) giving the same results under
every policy set and elevator, with and without the asynchronous option."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import active_policies, examples
from tests.test_address_space import CALL, WINDOW, PAGES, _ops
from tests.test_memory import RW, MiB, anon

from mmframe import usr
from mmframe.config import load_config
from mmframe.differential import compare_results
from mmframe.machine import Machine
from mmframe.mm.fault import ZERO_PFN
from mmframe.mm.vma import VM_IO
from mmframe.mm.gup import get_user_pages, make_pages_present, put_user_pages
from mmframe.usr import (EAGAIN, EBADF, EFAULT, EINVAL, O_CREAT, O_DIRECT, O_RDONLY, O_RDWR, PAGE_SIZE, PROT_READ,
                         MAP_PRIVATE, MAP_SHARED, SimSignal, exit, fork, io_cancel, io_destroy, io_getevents,
                         io_setup, io_submit, iocb_pread, iocb_pwrite, Iocb, mmap, munmap, open, pread, pwrite, read,
                         wait, write)

P = PAGE_SIZE
S = 512
ELEVATORS = ("deadline", "noop", "linus")
BOX: dict = {}  # what a program hands back (its return value would be only an exit status)


def dmachine(memory: int = 64 * MiB, policies=None, elevator: str | None = None, aio_dio: bool = False,
             debug: str = "syscall", **kw) -> Machine:
    pols = active_policies() if policies is None else policies
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(pols))
    disks = cfg.disks
    if elevator is not None:
        disks = tuple(attrs.evolve(d, elevator=elevator, elevator_options={}) for d in disks)
    return Machine(attrs.evolve(cfg, disks=disks, machine=attrs.evolve(cfg.machine, memory=memory, debug_vm=debug,
                                                                       aio_dio=aio_dio, **kw)))


def _no_leaks(m: Machine) -> None:
    """Every direct I/O completed once and released its pins; the checker is satisfied."""
    st_ = m.fs.dio.stats
    assert st_["in_flight"] == 0 and st_["completed"] == st_["bios"]
    assert not m.mm.pins
    m.mm.check()


# --- alignment -------------------------------------------------------------------------------------

def test_misaligned_offset_length_or_buffer_is_einval_and_changes_nothing():
    def prog(ctx):
        fd = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        buf = yield anon(4 * P)
        yield write(buf, 11)
        yield write(buf + P, 12)
        out = [(yield pwrite(fd, buf, 2 * P, 0))]
        for a, n, off in ((buf, P, 100), (buf, 700, 0), (buf + 8, P, 0), (buf, S, S + 1), (buf + 1, 1, 1)):
            out.append((yield pwrite(fd, a, n, off)))
            out.append((yield pread(fd, buf + 2 * P if a == buf else a + 2 * P, n, off)))
        out += [(yield read(buf + 2 * P)), (yield read(buf + 3 * P))]  # nothing was read in
        BOX['r'] = out

    m = dmachine()
    r = m.run(prog)
    out = BOX['r']
    assert out[0] == 2 * P
    assert out[1:11] == [-EINVAL] * 10
    assert out[11:] == [0, 0]
    assert r.disk["/f"][0] == 2 * P  # size unchanged
    assert [b[1] for b in r.disk["/f"][1]] == [11, 12]
    assert m.fs.dio.stats["requests"] == 1
    _no_leaks(m)


def test_sector_alignment_falls_back_from_the_fs_block_as_2_5_45():
    def prog(ctx):
        fd = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        buf = yield anon(4 * P)
        yield write(buf, 7)
        yield pwrite(fd, buf, P, 0)          # the whole block: tag 7
        yield write(buf + P, 9)
        n = yield pwrite(fd, buf + P + S, S, 3 * S)  # one sector of tag 9 at sector 3
        got = yield pread(fd, buf + 2 * P, P, 0)      # read back the block directly
        words = []
        for off in (0, 2 * S, 3 * S, 3 * S + 504, 4 * S, P - 8):
            words.append((yield read(buf + 2 * P + off)))
        BOX['r'] = n, got, words

    m = dmachine()
    m.run(prog)
    n, got, words = BOX['r']
    assert (n, got) == (S, P)
    assert words == [7, 7, 9, 9, 7, 7]  # exactly that sector; the rest of the page unchanged
    _no_leaks(m)


def test_a_one_sector_read_into_the_middle_of_a_page_leaves_the_rest():
    def prog(ctx):
        fd = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        buf = yield anon(2 * P)
        yield write(buf, 5)
        yield pwrite(fd, buf, P, 0)
        yield write(buf + P, 3)
        yield pread(fd, buf + P + 5 * S, S, 0)
        out = []
        for off in (0, 4 * S, 5 * S, 6 * S):
            out.append((yield read(buf + P + off)))
        BOX['r'] = out

    dmachine().run(prog)
    assert BOX['r'] == [3, 3, 5, 3]


# --- coherence with the page cache --------------------------------------------------------------

def test_data_written_directly_reads_back_directly_and_through_the_page_cache():
    def prog(ctx):
        d = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        b = yield open("/f", O_RDWR)
        buf = yield anon(8 * P)
        for i in range(3):
            yield write(buf + i * P, 40 + i)
        yield pwrite(d, buf, 3 * P, 0)
        yield pread(b, buf + 4 * P, P, 0)            # page 0 is now cached (tag 40)
        yield write(buf, 50)
        yield pwrite(d, buf, P, 0)                   # invalidates it
        yield pwrite(d, buf + 2 * P, S, S)           # a sector of tag 42 into block 0
        yield pread(b, buf + 4 * P, 3 * P, 0)        # through the cache
        c = [(yield read(buf + 4 * P)), (yield read(buf + 4 * P + S)), (yield read(buf + 5 * P)),
             (yield read(buf + 6 * P))]
        yield pread(d, buf + 4 * P, 3 * P, 0)        # directly
        dd = [(yield read(buf + 4 * P)), (yield read(buf + 4 * P + S)), (yield read(buf + 5 * P)),
              (yield read(buf + 6 * P))]
        BOX['r'] = c, dd

    m = dmachine()
    c, dd = (m.run(prog), BOX['r'])[1]
    assert c == dd == [50, 42, 41, 42]
    assert m.fs.dio.stats["invalidated"] == 1
    _no_leaks(m)


def test_a_direct_read_sees_what_buffered_writes_left_dirty_in_the_cache():
    def prog(ctx):
        d = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        b = yield open("/f", O_RDWR)
        buf = yield anon(4 * P)
        yield write(buf, 77)
        yield pwrite(b, buf, P, 0)                   # dirty in the cache only
        yield pread(d, buf + P, P, 0)                # filemap_fdatawrite + wait first
        BOX['r'] = (yield read(buf + P))

    m = dmachine()
    assert (m.run(prog), BOX['r'])[1] == 77


def test_a_direct_write_updates_a_cached_page_that_is_mapped():
    def prog(ctx):
        d = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        buf = yield anon(2 * P)
        yield write(buf, 1)
        yield pwrite(d, buf, P, 0)
        m = yield mmap(0, P, PROT_READ, MAP_SHARED, d, 0)
        before = yield read(m)
        yield write(buf, 2)
        yield pwrite(d, buf, P, 0)
        BOX['r'] = before, (yield read(m))

    assert (dmachine().run(prog), BOX['r'])[1] == (1, 2)


def test_new_blocks_are_zeroed_around_a_partial_direct_write():
    def prog(ctx):
        d = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        buf = yield anon(4 * P)
        yield write(buf, 9)
        yield pwrite(d, buf, P, 0)
        yield usr.ftruncate(d, 0)                   # the block is free again, its sectors still 9
        yield write(buf + P, 5)
        n = yield pwrite(d, buf + P, S, S)           # a new block: the rest written from the ZERO_PAGE
        yield write(buf + 2 * P, 1)
        got = yield pread(d, buf + 2 * P, P, 0)
        out = [n, got]
        for off in (0, S, 2 * S, P - 8):
            out.append((yield read(buf + 2 * P + off)))
        BOX['r'] = out

    m = dmachine()
    assert (m.run(prog), BOX['r'])[1] == [S, P, 0, 5, 0, 0]
    _no_leaks(m)


# --- zero copy, pins, bounce -----------------------------------------------------------------------

def test_bios_are_built_on_the_user_pages_and_pins_are_released():
    m = dmachine()
    seen = []
    orig = m.block.submit_bio

    def spy(dev, bio):
        seen.append([pfn for pfn, _, _ in bio.vecs])
        orig(dev, bio)
    m.block.submit_bio = spy
    m.fs.blk = m.block

    def prog(ctx):
        fd = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        buf = yield anon(4 * P)
        yield usr.touch(buf, 4 * P, True)
        BOX['r'] = (yield pwrite(fd, buf, 4 * P, 0))

    m.run(prog)
    assert BOX['r'] == 4 * P
    assert seen and all(len(v) for v in seen)
    assert m.fs.dio.stats["pages_pinned"] == 4
    _no_leaks(m)


def test_highmem_user_pages_are_bounced_and_only_they():
    m = dmachine(memory=1536 * MiB, debug="exit")

    def prog(ctx):
        fd = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        buf = yield anon(4 * P)
        for i in range(4):
            yield write(buf + i * P, 600 + i)
        yield pwrite(fd, buf, 4 * P, 0)
        yield write(buf + P, 9)
        yield pread(fd, buf + P + S, S, 2 * P)       # a partial segment of a bounced page
        BOX['r'] = [(yield read(buf + P)), (yield read(buf + P + S))]

    m.run(prog)
    assert BOX['r'] == [9, 602]
    q = m.block.device().queue
    assert q.stats["bounced_pages"] == 5  # four written, one read: the user pages are GFP_HIGHUSER
    _no_leaks(m)


# --- copy-on-write, fork, munmap, exit -----------------------------------------------------------

def test_a_direct_read_into_a_copy_on_write_page_breaks_the_sharing_first():
    def prog(ctx):
        fd = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        buf = yield anon(2 * P)
        yield write(buf + P, 5)
        yield pwrite(fd, buf + P, P, 0)
        yield write(buf, 1)
        pid = yield fork()
        if pid == 0:
            yield usr.sleep(10_000_000)
            v = yield read(buf)
            yield exit(v)
        yield pread(fd, buf, P, 0)                   # into the shared page: the parent gets a copy
        v = yield read(buf)
        _, status = yield wait(pid)
        BOX['r'] = v, status >> 8

    for pols in ((), ("pt_shared",)):
        m = dmachine(policies=pols)
        assert (m.run(prog), BOX['r'])[1] == (5, 1)
        _no_leaks(m)


def _inflight(ctx, what):
    fd = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
    buf = yield anon(8 * P)
    for i in range(8):
        yield write(buf + i * P, 30 + i)
    yield pwrite(fd, buf, 8 * P, 0)
    c = yield io_setup(8)
    for i in range(8):
        yield write(buf + i * P, 0)
    n = yield io_submit(c, [iocb_pread(fd, buf, 8 * P, 0, "r")])
    if what == "exit":
        yield exit(3)
    if what == "munmap":
        yield munmap(buf, 8 * P)
        ev = yield io_getevents(c, 1, 1)
        BOX['r'] = n, ev
        return
    pid = yield fork()
    if pid == 0:
        yield usr.sleep(50_000_000)                  # after the I/O: the child sees the shared page
        v = yield read(buf)
        yield exit(v)
    yield write(buf, 99)                             # the writer gets a copy (the page is pinned)
    ev = yield io_getevents(c, 1, 1)
    _, status = yield wait(pid)
    BOX['r'] = n, ev, (yield read(buf)), (yield read(buf + P)), status >> 8


@pytest.mark.parametrize("aio_dio", [False, True])
@pytest.mark.parametrize("what", ["fork", "munmap", "exit"])
def test_in_flight_direct_io_across_fork_munmap_and_exit_completes_once_and_leaks_nothing(what, aio_dio):
    m = dmachine(aio_dio=aio_dio, policies=())
    r = m.run(_inflight, what)
    assert m.aio.stats["completed"] == m.aio.stats["submitted"] == 1
    log = [e for e in m.block.log if e[1] == 0]
    assert len(log) == len(set(map(id, log)))
    _no_leaks(m)
    if what == "munmap":
        n, ev = BOX['r']
        assert n == 1 and [e[2] for e in ev] == [8 * P]
    elif what == "exit":
        assert r.tasks["1"].status == 3 << 8
        assert m.aio.stats["events_dropped"] == (1 if aio_dio else 0)
    else:
        n, ev, v0, v1, child = BOX['r']
        assert n == 1 and [e[2] for e in ev] == [8 * P]
        assert v0 == 99 and v1 == 31
        # async: the read lands in the page the child still maps (2.5's COW-by-count rule); sync:
        # io_submit returned after the read, so the fork shares the data already read
        assert child == 30


# --- AIO ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("aio_dio", [False, True])
def test_io_getevents_returns_every_completion_once(aio_dio):
    def prog(ctx, n):
        fd = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        buf = yield anon(2 * n * P)
        for i in range(n):
            yield write(buf + i * P, 500 + i)
        c = yield io_setup(n)
        sub = yield io_submit(c, [iocb_pwrite(fd, buf + i * P, P, ((i * 7) % n) * P, i) for i in range(n)])
        got = []
        while len(got) < n:
            got += (yield io_getevents(c, 1, 3))
        sub2 = yield io_submit(c, [iocb_pread(fd, buf + (n + i) * P, P, ((i * 7) % n) * P, n + i) for i in range(n)])
        while len(got) < 2 * n:
            got += (yield io_getevents(c, 2 if len(got) < 2 * n - 1 else 1, n))
        vals = []
        for i in range(n):
            vals.append((yield read(buf + (n + i) * P)))
        more = yield io_getevents(c, 0, 4)
        BOX['r'] = sub, sub2, sorted(e[0] for e in got), [e[2] for e in got], vals, more

    n = 12
    m = dmachine(aio_dio=aio_dio)
    sub, sub2, datas, res, vals, more = (m.run(prog, n), BOX['r'])[1]
    assert (sub, sub2) == (n, n)
    assert datas == list(range(2 * n)) and res == [P] * (2 * n) and more == []
    assert vals == [500 + i for i in range(n)]
    assert m.aio.stats["async"] == (2 * n if aio_dio else 0)
    _no_leaks(m)


def test_aio_errnos_as_2_5_49():
    def prog(ctx):
        fd = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        ro = yield open("/f", O_RDONLY)
        buf = yield anon(4 * P)
        out = [(yield io_setup(0)), (yield io_setup(-1)), (yield io_setup(1 << 17))]
        c = yield io_setup(2)
        out += [(yield io_submit(c + 100, [iocb_pread(fd, buf, P, 0)])),
                (yield io_submit(c, [iocb_pread(77, buf, P, 0)])),
                (yield io_submit(c, [iocb_pwrite(ro, buf, P, 0)])),
                (yield io_submit(c, [Iocb(9, fd, buf, P, 0)])),
                (yield io_submit(c, ["junk"])),
                (yield io_submit(c, [])),
                (yield io_getevents(c, 2, 1)),
                (yield io_getevents(c + 100, 0, 1)),
                (yield io_cancel(c, iocb_pread(fd, buf, P, 0))),
                (yield io_destroy(c + 100))]
        # a misaligned direct iocb is queued; its event carries -EINVAL
        out.append((yield io_submit(c, [iocb_pread(fd, buf + 1, P, 0, "bad"), iocb_pread(fd, buf, P, 0, "ok")])))
        out.append((yield io_submit(c, [iocb_pread(fd, buf, P, 0)])))  # the ring is full: -EAGAIN
        ev = yield io_getevents(c, 2, 2)
        out.append(sorted((e[0], e[2]) for e in ev))
        out.append((yield io_destroy(c)))
        out.append((yield io_getevents(c, 0, 1)))
        BOX['r'] = out

    for aio_dio in (False, True):
        out = (dmachine(aio_dio=aio_dio).run(prog), BOX['r'])[1]
        assert out == [-EINVAL, -EINVAL, -EAGAIN, -EINVAL, -EBADF, -EBADF, -EINVAL, -EFAULT, 0, -EINVAL,
                       -EINVAL, -EINVAL, -EINVAL, 2, -EAGAIN, [("bad", -EINVAL), ("ok", 0)], 0, -EINVAL]


def test_io_cancel_of_an_iocb_in_flight_is_eagain_and_destroy_waits():
    def prog(ctx):
        fd = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        buf = yield anon(16 * P)
        c = yield io_setup(4)
        cb = iocb_pwrite(fd, buf, 16 * P, 0)
        yield io_submit(c, [cb])
        BOX['r'] = (yield io_cancel(c, cb)), (yield io_destroy(c))

    m = dmachine(aio_dio=True)
    assert (m.run(prog), BOX['r'])[1] == (-EAGAIN, 0)
    _no_leaks(m)


def test_io_getevents_timeout_returns_what_is_there():
    def prog(ctx):
        c = yield io_setup(4)
        BOX['r'] = (yield io_getevents(c, 1, 4, 1_000_000)), (yield io_getevents(c, 1, 4, 0))

    assert (dmachine().run(prog), BOX['r'])[1] == ([], [])


# --- get_user_pages and the user-page mapping hook ----------------------------------------------

def test_get_user_pages_directly():
    m = dmachine(debug="off")
    out = {}

    def prog(ctx):
        a = yield anon(4 * P)
        ro = yield anon(P, prot=PROT_READ)
        yield write(a + P, 3)
        yield usr.sleep(1)
        yield usr.getpid()
        out["a"], out["ro"] = a, ro

    # run until the program has mapped, then inspect through a hook-free call in its context
    def probe(ctx):
        yield from prog(ctx)
        task = m.sched.current
        vm, mm = m.mm, task.mm
        pages = get_user_pages(vm, mm, out["a"], 4, True)
        out["pages"] = pages
        out["pins"] = dict(vm.pins)
        put_user_pages(vm, pages)
        out["after"] = dict(vm.pins)
        out["hole"] = get_user_pages(vm, mm, out["a"] + 8 * P, 1, False)
        out["rw_on_ro"] = get_user_pages(vm, mm, out["ro"], 1, True)
        out["ro_read"] = get_user_pages(vm, mm, out["ro"], 1, False)
        out["partial"] = get_user_pages(vm, mm, out["a"] + 3 * P, 3, False)
        put_user_pages(vm, out["partial"])
        out["present"] = make_pages_present(vm, mm, out["a"], out["a"] + 2 * P, False)
        vma = mm.vmas.find(out["a"])
        old = vma.flags
        vma.set_flags(old | VM_IO)  # an ioremap-like area: get_user_pages refuses it
        out["vm_io"] = get_user_pages(vm, mm, out["a"], 1, False)
        vma.set_flags(old)
        yield usr.getpid()

    m.run(probe)
    assert len(out["pages"]) == 4 and len(set(out["pages"])) == 4
    assert all(out["pins"].get(p) == 1 for p in out["pages"]) and out["after"] == {}
    assert out["hole"] == -EFAULT and out["rw_on_ro"] == -EFAULT
    assert out["ro_read"] == [ZERO_PFN]  # the ZERO_PAGE, without a reference
    assert len(out["partial"]) == 2 and out["partial"][1] == ZERO_PFN  # a+3P, the read-only page, a hole
    assert out["present"] == 0
    assert out["vm_io"] == -EFAULT


def test_the_user_page_mapping_hook_replaces_get_user_pages(install_plugin, isolated):
    install_plugin("gupspy", """
        from mmframe.facade import hookimpl
        CALLS = []

        @hookimpl
        def mmframe_get_user_pages(vm, mm, start, nr_pages, write, force):
            CALLS.append((start, nr_pages, write))
            return vm.get_user_pages(mm, start, nr_pages, write, force)
    """)
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=["gupspy"])
    m = Machine(cfg)

    def prog(ctx):
        fd = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
        buf = yield anon(3 * P)
        yield write(buf, 4)
        yield pwrite(fd, buf, 2 * P, 0)
        yield pread(fd, buf + 2 * P, S, 0)
        BOX['r'] = (yield read(buf + 2 * P))

    m.run(prog)
    assert BOX['r'] == 4
    mod = next(v for k, v in __import__("sys").modules.items() if k.startswith("mmtest_gupspy"))
    assert [(n, w) for _, n, w in mod.CALLS] == [(2, False), (1, True)]


# --- generated programs: direct and async I/O under every policy set and elevator ----------------

AIOBUF = WINDOW + (PAGES + 8) * P  # a private buffer outside the generated window (16 pages)
_DIO = st.tuples(st.just("dio"), st.booleans(), st.integers(0, PAGES - 1), st.integers(0, 7), st.integers(1, 20),
                 st.integers(0, 90), st.sampled_from([0, 0, 0, 0, 1, 512]))
_CBUF = st.tuples(st.just("cbuf"), st.booleans(), st.integers(0, PAGES - 1), st.integers(1, 3), st.integers(0, 10))
_AIO = st.tuples(st.just("aio"), st.lists(st.tuples(st.booleans(), st.integers(0, 7), st.integers(1, 16),
                                                     st.integers(0, 39)), min_size=1, max_size=4))
DIO_PROGRAM = st.lists(st.one_of(CALL, _DIO, _DIO, _CBUF, _AIO, _AIO,
                                 st.tuples(st.just("fork"), st.lists(CALL, max_size=6), st.booleans())),
                       max_size=18)


def _dio_ops(ops, fds, ctx_id):
    for op in ops:
        name = op[0]
        if name == "dio":
            _, w, pg, soff, nsect, fsect, skew = op
            addr, n, off = WINDOW + pg * P + soff * S, nsect * S, fsect * S + skew
            yield (pwrite if w else pread)(fds[2], addr, n, off)
        elif name == "cbuf":
            _, w, pg, n, off = op
            yield (pwrite if w else pread)(fds[3], WINDOW + pg * P, n * P, off * P)
        elif name == "aio":  # disjoint buffers and file ranges: the order of completion cannot matter
            cbs = [(iocb_pwrite if w else iocb_pread)(fds[2], AIOBUF + 4 * k * P + soff * S, nsect * S,
                                                      (40 * k + fsect) * S, k)
                   for k, (w, soff, nsect, fsect) in enumerate(op[1])]
            n = yield io_submit(ctx_id, cbs)
            yield io_getevents(ctx_id, n if n > 0 else 0, 8)
            for k in range(16):
                yield read(AIOBUF + k * P)
        else:
            yield from _ops([op], fds, [], 0)


@usr.program(stack_pages=2)
def _dio_program(ctx, ops):
    fds = [(yield open("/a", O_RDWR | O_CREAT)), (yield open("/b", O_RDWR | O_CREAT)),
           (yield open("/c", O_RDWR | O_CREAT | O_DIRECT)), (yield open("/c", O_RDWR))]
    yield mmap(WINDOW, PAGES * P, RW, MAP_PRIVATE | usr.MAP_ANONYMOUS | usr.MAP_FIXED)
    yield mmap(AIOBUF, 16 * P, RW, MAP_PRIVATE | usr.MAP_ANONYMOUS | usr.MAP_FIXED)
    for k in range(16):
        yield write(AIOBUF + k * P, 1000 + k)
    yield pwrite(fds[2], AIOBUF, 16 * P, 0)  # /c starts with 16 pages written directly
    c = yield io_setup(8)
    yield from _dio_ops(ops, fds, c)
    for page in range(PAGES):
        try:
            yield read(WINDOW + page * P)
        except SimSignal:
            pass
    buf = yield anon(32 * P)
    yield pread(fds[3], buf, 16 * P, 0)
    yield pread(fds[2], buf + 16 * P, 16 * P, 0)
    for i in range(32):
        yield read(buf + i * P)


def _normalised(r):
    """io_getevents results in a canonical order: the ring's order is the completion order, which
    the elevator (and the async option) decides; the set of events is what must agree."""
    tasks = {k: attrs.evolve(t, calls=tuple((c, sorted(v, key=repr) if c == "io_getevents" and isinstance(v, list)
                                             else v) for c, v in t.calls)) for k, t in r.tasks.items()}
    return attrs.evolve(r, tasks=tasks)


@settings(max_examples=examples(40), deadline=None)
@given(DIO_PROGRAM)
def test_generated_direct_and_async_io_programs_give_the_same_results_everywhere(ops):
    combos = [((), "deadline", False), (("pt_shared",), "noop", False), ((), "linus", True),
              (("pt_shared",), "deadline", True)]
    runs = [_normalised(dmachine(memory=24 * MiB, policies=p, elevator=e, aio_dio=a).run(_dio_program, ops))
            for p, e, a in combos]
    for other in runs[1:]:
        assert not compare_results(runs[0], other).differences


# --- the aio-dio scenario ----------------------------------------------------------------------

def test_the_aio_dio_scenario_runs_sync_and_async_and_reports_its_figures(config, tmp_path):
    from mmframe.scenario import run_scenario
    from mmframe.workloads.aio_dio import aio_dio_figures

    sync, asyn = (aio_dio_figures(config, a, 8192, 4, 24, 0.5) for a in (False, True))
    for f in (sync, asyn):
        assert f["requests"] == 24 and f["pages_pinned_per_req"] == 2 and f["bios_per_req"] == 1
        assert f["bounce_pages_per_req"] == 2  # the user pages of a 1 GiB machine are highmem
        assert f["mb_s"] > 0 and f["lat_p99_ms"] >= f["lat_p50_ms"] > 0 and f["cpu_us_per_req"] > 0
    path = tmp_path / "s.toml"
    path.write_text('[scenario]\nname = "aio-dio"\npolicies = [[]]\nsizes = ["4KiB"]\ndepths = ["2"]\nrequests = 8\n')
    _, cols = run_scenario(load_config(str(path), use_pyproject=False, env={}))
    figs = cols[0].figures
    assert figs["sync.4KiB.d2.requests"] == figs["async.4KiB.d2.requests"] == 8

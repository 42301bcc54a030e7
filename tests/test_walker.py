"""The page-walk plugin (issue 18): its collectors return exactly what the core's get_user_pages
returns on generated address spaces (holes, VMA boundaries, rights, VM_IO, PAE and 2-level tables,
shared PTE pages), a read walk does not unshare a shared PTE page and a write walk does, the
scatter/gather list is one entry per page with max_pfn's -ERANGE, and direct I/O gives the same
results with and without the plugin."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import examples
from tests.test_memory import MiB, anon

from mmframe import usr
from mmframe.config import load_config
from mmframe.differential import compare_results
from mmframe.machine import Machine
from mmframe.mm.vma import VM_IO
from mmframe.usr import O_CREAT, O_DIRECT, O_RDWR, PAGE_SIZE, PROT_NONE, PROT_READ, fork, open, pread, pwrite, read, wait, write
from mmframe_plugins import walker as W

P = PAGE_SIZE
BASE = 0x2000_0000
RW = usr.PROT_READ | usr.PROT_WRITE


def wmachine(policies=(), pae=False, debug="exit") -> Machine:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(policies))
    return Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=32 * MiB, pae=pae, debug_vm=debug)))


_PROT = st.sampled_from([RW, RW, PROT_READ, PROT_NONE])
SPACE = st.lists(st.tuples(st.integers(0, 60), st.integers(1, 12), _PROT, st.booleans(), st.booleans()),
                 min_size=1, max_size=6)
RANGES = st.lists(st.tuples(st.integers(0, 70), st.integers(1, 10), st.booleans(), st.booleans(), st.booleans()),
                  min_size=1, max_size=6)


def _space_program(ctx, space, ranges, mode, out):
    """Map and touch the generated areas, fork once (so pt_shared shares PTE pages), then in the
    child pin each range with the core's get_user_pages or the walk's collectors."""
    for pg, n, prot, shared, touch_it in space:
        r = yield anon(n * P, shared=shared, prot=prot, addr=BASE + pg * P, fixed=True)
        if touch_it and r > 0 and prot == RW:
            yield usr.touch(BASE + pg * P, n * P, True)
    pid = yield fork()
    if pid:
        yield wait(pid)
        return
    yield usr.getpid()
    m = ctx_machine[0]
    vm, mm = m.mm, m.sched.current.mm
    res = []
    for pg, n, w, io, sg in ranges:
        start = BASE + pg * P
        vma = mm.vmas.find(start)
        old = None
        if io and vma is not None and vma.start <= start:
            old = vma.flags
            vma.set_flags(old | VM_IO)
        if mode == "core":
            got = vm.get_user_pages(mm, start, n, w)
            res.append(got if isinstance(got, int) else list(got))
            if not isinstance(got, int):
                vm.put_user_pages(got)
        elif sg:  # the scatter/gather collector, as pages: one entry per page, no coalescing
            got = W.get_user_sgl(vm, mm, start, n * P, w)
            if isinstance(got, int):
                # the core returns a partial array where the walk's sg list fails whole: compare as the core
                core = vm.get_user_pages(mm, start, n, w)
                res.append(core if isinstance(core, int) or len(core) < n else "mismatch")
                if not isinstance(core, int):
                    vm.put_user_pages(core)
            else:
                assert all(o == 0 and ln == P for _, o, ln in got)
                res.append([p for p, _, _ in got])
                W.release_sgl(vm, got)
        else:
            got = W.get_user_pages(vm, mm, start, n, w)
            res.append(got if isinstance(got, int) else list(got))
            if not isinstance(got, int):
                vm.put_user_pages(got)
        if old is not None:
            vma.set_flags(old)
        res.append(sorted((i, p.rss) for i, p in enumerate(mm.ptp) if p is not None))
    out[mode] = res
    yield usr.getpid()


ctx_machine: list = [None]


@settings(max_examples=examples(40), deadline=None)
@given(SPACE, RANGES, st.booleans(), st.booleans())
def test_the_collectors_return_what_the_cores_get_user_pages_returns(space, ranges, pae, shared_tables):
    out: dict = {}
    pols = ("pt_shared",) if shared_tables else ()
    for mode in ("core", "walk"):
        m = wmachine(pols, pae)
        ctx_machine[0] = m
        m.run(_space_program, space, ranges, mode, out)
        assert not m.mm.pins
    assert out["core"] == out["walk"]


def test_a_read_walk_reads_through_a_shared_pte_page_and_a_write_walk_unshares_it():
    m = wmachine(("pt_shared",), debug="syscall")
    seen = {}

    def prog(ctx):
        a = yield anon(8 * P)
        yield usr.touch(a, 4 * P, True)
        pid = yield fork()
        if pid:
            yield wait(pid)
            return
        yield usr.getpid()
        vm, mm = m.mm, m.sched.current.mm
        pt = mm.ptp[a >> vm.pmd_shift]
        seen["before"] = vm.sharers(pt)
        pages = W.get_user_pages(vm, mm, a, 8, False)  # four present, four faulted in for reading
        seen["after_read"] = vm.sharers(mm.ptp[a >> vm.pmd_shift])
        vm.put_user_pages(pages)
        pages = W.get_user_pages(vm, mm, a, 1, True)
        seen["after_write"] = vm.sharers(mm.ptp[a >> vm.pmd_shift])
        vm.put_user_pages(pages)
        yield usr.getpid()

    m.run(prog)
    assert seen == {"before": 2, "after_read": 2, "after_write": 1}


def test_the_sg_list_is_one_entry_per_page_fixed_up_and_max_pfn_is_erange():
    m = wmachine(debug="off")
    seen = {}

    def prog(ctx):
        a = yield anon(4 * P)
        yield usr.touch(a, 4 * P, True)
        yield usr.getpid()
        vm, mm = m.mm, m.sched.current.mm
        sgl = W.get_user_sgl(vm, mm, a + 512, 2 * P, False)
        seen["sgl"] = [(o, ln) for _, o, ln in sgl]
        seen["pfns"] = [p for p, _, _ in sgl]
        W.release_sgl(vm, sgl)
        seen["erange"] = W.get_user_sgl(vm, mm, a, 2 * P, False, max_pfn=min(seen["pfns"]) - 1)
        seen["pins"] = dict(vm.pins)
        seen["fault"] = W.get_user_sgl(vm, mm, a + 8 * P, P, False)
        seen["present"] = W.make_pages_present(vm, mm, a, a + 4 * P, False)
        yield usr.getpid()

    m.run(prog)
    assert seen["sgl"] == [(512, P - 512), (0, P), (0, 512)]  # three pages, not coalesced
    assert seen["erange"] == -W.ERANGE and seen["pins"] == {}  # the cleaner released the pins
    assert seen["fault"] == -W.EFAULT and seen["present"] == 0


def _dio(ctx):
    fd = yield open("/f", O_CREAT | O_RDWR | O_DIRECT)
    buf = yield anon(16 * P)
    for i in range(8):
        yield write(buf + i * P, 70 + i)
    yield pwrite(fd, buf, 8 * P, 0)
    yield pwrite(fd, buf + 3 * P, 512, 5 * 512)
    pid = yield fork()
    if pid == 0:
        yield pread(fd, buf, 3 * P, P)  # into copy-on-write pages
        yield usr.exit((yield read(buf)) & 0xFF)
    yield wait(pid)
    yield pread(fd, buf + 8 * P, 8 * P, 0)
    for i in range(16):
        yield read(buf + i * P)
        yield read(buf + i * P + 5 * 512)


def test_direct_io_gives_the_same_data_with_and_without_the_walker():
    runs = []
    for pols in ((), ("walker",), ("pt_shared", "walker")):
        m = wmachine(pols, debug="syscall")
        runs.append(m.run(_dio))
        if "walker" in pols:
            assert m.plugin_state["walker"]["walks"] == 4
    for r in runs[1:]:
        assert not compare_results(runs[0], r).differences


def test_the_walker_touches_only_the_facade_at_run_time():
    from tests.test_architecture import guarded
    plain_m = wmachine(("walker",), debug="exit")
    plain = plain_m.run(_dio)
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=["walker_guarded"],
                      extra_plugins={"walker_guarded": guarded(W, "walker_guarded")})
    g_m = Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=32 * MiB, debug_vm="exit")))
    g = g_m.run(_dio)
    assert g.tasks == plain.tasks and dict(g.counts) == dict(plain.counts)


def test_the_walk_protocol_continue_done_error_then_cleaner():
    m = wmachine(debug="off")
    seen = {}

    def prog(ctx):
        a = yield anon(4 * P)
        yield usr.touch(a, 4 * P, True)
        yield usr.getpid()
        vm, mm = m.mm, m.sched.current.mm
        log = []

        def walker(w):
            log.append(w.virt - a)
            return {0: 0, P: 1}.get(w.virt - a, 0) if w.data == "stop" else (-7 if w.virt - a == P else 0)

        def cleaner(w):
            log.append("clean")

        seen["done"] = W.walk_user_pages(vm, W.PageWalk(mm, a, a + 4 * P, False, walker, cleaner, "stop"))
        seen["done_log"], log[:] = list(log), []
        seen["err"] = W.walk_user_pages(vm, W.PageWalk(mm, a, a + 4 * P, False, walker, cleaner, "err"))
        seen["err_log"], log[:] = list(log), []
        seen["all"] = W.walk_user_pages(vm, W.PageWalk(mm, a + 2 * P, a + 4 * P, False, lambda w: 0, cleaner))
        seen["io"] = W.walk_user_pages(vm, W.PageWalk(mm, a + 8 * P, a + 9 * P, False, lambda w: 0, cleaner))
        seen["io_log"] = list(log)
        yield usr.getpid()

    m.run(prog)
    assert seen["done"] == 1 and seen["done_log"] == [0, P]
    assert seen["err"] == -7 and seen["err_log"] == [0, P, "clean"]
    assert seen["all"] == 0 and seen["io"] == -W.EFAULT and seen["io_log"] == ["clean"]

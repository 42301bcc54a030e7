"""The page-table model with the debug_vm checker after every system call: copy-on-write, shared
memory, pinned pages, signals, page-table placement, bulk paths against single ones, and generated
programs against the semantic oracle."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import active_policies, elevator_layers, examples
from mmframe import usr
from mmframe.config import load_config
from mmframe.differential import compare_results
from mmframe.machine import Machine
from mmframe.mm import pgtable
from mmframe.mm.oracle import install as install_oracle
from mmframe.usr import (MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE, PROT_NONE, PROT_READ,
                         PROT_WRITE, SEGV_ACCERR, SEGV_MAPERR, SIGSEGV, SimSignal, exit, fork, mmap, mprotect,
                         munmap, read, touch, wait, write)

RW = PROT_READ | PROT_WRITE
MiB = 1 << 20


def machine(memory: int = 64 * MiB, debug: str = "syscall", policies=None, **kw) -> Machine:
    """A machine for these tests; ``policies`` defaults to the run's policy set (tests/support.py)."""
    pols = active_policies() if policies is None else policies
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(pols),
                      extra_layers=elevator_layers() if policies is None else [])
    return Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=memory, debug_vm=debug, **kw)))


def anon(length: int, shared: bool = False, prot: int = RW, addr: int = 0, fixed: bool = False) -> tuple:
    flags = (MAP_SHARED if shared else MAP_PRIVATE) | MAP_ANONYMOUS | (MAP_FIXED if fixed else 0)
    return mmap(addr, length, prot, flags)


def results(r, lineage="1"):
    return [v for _, v in r.tasks[lineage].calls]


def test_cow_isolation_both_ways_and_across_nested_forks():
    def prog(ctx):
        a = yield anon(3 * PAGE_SIZE)
        yield write(a, 10)
        yield write(a + PAGE_SIZE, 11)
        pid = yield fork()
        if pid == 0:
            yield write(a, 20)  # child's own copy
            inner = yield fork()
            if inner == 0:
                yield write(a + PAGE_SIZE, 31)
                yield exit((yield read(a)) + (yield read(a + PAGE_SIZE)))  # 20 + 31
            yield wait(inner)
            yield exit((yield read(a)) + (yield read(a + PAGE_SIZE)))  # 20 + 11
        yield write(a + PAGE_SIZE, 12)  # parent's write after fork
        _, status = yield wait(pid)
        return usr.WEXITSTATUS(status), (yield read(a)), (yield read(a + PAGE_SIZE))

    m = machine()
    r = m.run(prog)
    assert r.tasks["1.1.1"].status >> 8 == 51 and r.tasks["1.1"].status >> 8 == 31
    assert results(r)[-2:] == [10, 12]
    assert r.counts["copy_page"] >= 3  # child a, grandchild a+1, parent a+1 (then reuse where count is 1)


def test_map_shared_anonymous_memory_is_visible_across_fork():
    def prog(ctx):
        s = yield anon(2 * PAGE_SIZE, shared=True)
        yield write(s, 1)
        pid = yield fork()
        if pid == 0:
            yield write(s, 2)
            yield write(s + PAGE_SIZE, 3)  # a page the parent never touched
            yield exit(0)
        yield wait(pid)
        return (yield read(s)), (yield read(s + PAGE_SIZE))

    r = machine().run(prog)
    assert results(r)[-2:] == [2, 3]
    assert r.counts.get("copy_page", 0) == 0


@pytest.mark.parametrize("pinned", [False, True])
def test_pinned_page_is_copied_not_reused(pinned):
    # Mainline's rule (do_wp_page reuses by reference count).  Under pt_shared the last sharer's
    # unshare only makes the PMD writable, so the parent writes its page without a fault, as the
    # 2002 patch did: a pinned page is then written in place (docs/pt_shared.md).
    m = machine(policies=())
    vm = m.mm
    m.sched.handlers["pin"] = lambda task, addr: vm.pin(task.mm, addr)
    m.sched.handlers["unpin"] = lambda task, pfn: (vm.tag[pfn], vm.unpin(pfn))[0]

    def prog(ctx):
        a = yield anon(PAGE_SIZE)
        yield write(a, 7)
        pid = yield fork()
        if pid == 0:
            yield exit(0)
        yield wait(pid)  # the child's mapping is gone: the page's count is one again
        pfn = (yield ("pin", a)) if pinned else None
        yield write(a, 8)  # COW fault: reuse unless a pin holds a reference
        seen = (yield ("unpin", pfn)) if pinned else None
        return seen, (yield read(a))

    r = m.run(prog)
    assert r.counts.get("copy_page", 0) == (1 if pinned else 0)
    if pinned:
        assert results(r)[-2] == 7  # the pinned page kept what the I/O would see
    assert results(r)[-1] == 8


def test_zero_page_on_read_and_signals():
    def prog(ctx):
        a = yield anon(2 * PAGE_SIZE, prot=PROT_READ)
        out = [(yield read(a))]
        for addr, w in ((a, True), (a + 2 * PAGE_SIZE, False), (0xC000_0000, False)):
            try:
                yield (write(addr, 1) if w else read(addr))
            except SimSignal as sig:
                out.append((sig.signo, sig.code))
        yield mprotect(a, PAGE_SIZE, PROT_NONE)
        try:
            yield read(a)
        except SimSignal as sig:
            out.append((sig.signo, sig.code))
        return out

    m = machine()
    r = m.run(prog)
    assert r.tasks["1"].status is not None
    mm_reads = [v for n, v in r.tasks["1"].calls if n == "read"]
    assert mm_reads[0] == 0
    sigs = [v for n, v in r.tasks["1"].calls if isinstance(v, SimSignal)]
    assert [(s.signo, s.code) for s in sigs] == [(SIGSEGV, SEGV_ACCERR), (SIGSEGV, SEGV_MAPERR),
                                                  (SIGSEGV, SEGV_MAPERR), (SIGSEGV, SEGV_ACCERR)]
    assert r.counts.get("clear_page", 0) == 1 + 1  # the PTE page and the mm's pgd; the ZERO_PAGE needs none


def test_page_tables_come_from_lowmem_or_highmem_with_highpte():
    def prog(ctx):
        a = yield anon(16 * MiB)
        yield touch(a, 16 * MiB, True)
        info = yield ("meminfo",)
        return info

    kmaps = {}
    for highpte in (False, True):
        m = machine(memory=2048 * MiB, debug="exit", pae=True, highpte=highpte)
        seen, seen_pts = {}, []
        m.sched.handlers["meminfo"] = lambda task: seen.update(m.meminfo()) or seen_pts.extend(
            m.mm.ptpages.values()) or 0
        r = m.run(prog)
        assert not m.mm.ptpages and len(seen_pts) == 8  # all freed at exit
        assert seen["PageTables"] == (8 + 3) * 4  # 8 PTE pages of 2 MiB, 3 PMD pages (kB)
        assert seen["ReverseMaps"] == 4096
        kmaps[highpte] = r.counts.get("kmap_atomic", 0)
        assert all(pt.high == highpte for pt in seen_pts)
    assert kmaps[True] - kmaps[False] >= 4096  # a kmap_atomic of the PTE page on every fault


def test_free_pgtables_granularity_is_the_pgd_slot():
    def prog(ctx):
        a = yield anon(8 * MiB, addr=0x1000_0000, fixed=True)
        b = yield anon(PAGE_SIZE, addr=0x1100_0000, fixed=True)
        yield touch(a, 8 * MiB, True)
        yield touch(b, PAGE_SIZE, True)
        yield munmap(a, 4 * MiB)  # a whole 4 MiB PGD slot without PAE
        n = yield ("ptes",)
        return n

    for pae, expect in ((False, 2), (True, 5)):  # PAE: PTE pages go only with a whole empty GiB
        m = machine(memory=256 * MiB, pae=pae)
        m.sched.handlers["ptes"] = lambda task: len(m.mm.ptpages)
        r = m.run(prog)
        assert results(r)[-1] == expect


def test_nothing_is_left_after_every_task_exits():
    def prog(ctx):
        a = yield anon(6 * MiB)
        s = yield anon(MiB, shared=True)
        yield touch(a, 6 * MiB, True)
        yield touch(s, MiB, True)
        for _ in range(3):
            pid = yield fork()
            if pid == 0:
                yield write(a, 1)
                yield write(s, 1)
                yield exit(0)
        for _ in range(3):
            yield wait()

    m = machine(memory=128 * MiB, debug="exit")
    pa = m.pagealloc
    pa.drain_pages()
    free0 = pa.nr_free_pages()
    m.run(prog)
    pa.drain_pages()
    assert not m.mm.mms and not m.mm.ptpages and m.mm.rmap.entries() == 0 and m.mm.rmap.chains == 0
    assert pa.page_table_pages == 0 and pa.nr_free_pages() == free0
    assert all(c.objects == 0 and not c.pages for c in pa.kernel_objects.values() if c.name != "radix_tree_node")
    pool = m.mm.radix_pool  # the radix-tree mempool keeps its 512 nodes, all back in the pool
    assert pool.nodes == 0 and pool.curr_nr == pool.min_nr == pool.cache.objects == 512


def _workload(ctx):
    a = yield anon(5 * MiB)
    s = yield anon(3 * MiB, shared=True)
    yield touch(a, 5 * MiB, True)
    yield touch(s, 3 * MiB, False)
    yield touch(s + MiB, MiB, True)
    fd = yield usr.open("/w", usr.O_RDWR | usr.O_CREAT)
    yield usr.ftruncate(fd, 2 * MiB + 100)  # file mappings: cold and cached faults, SIGBUS past EOF
    f = yield mmap(0, 3 * MiB, RW, MAP_SHARED, fd, 0)
    yield touch(f, MiB, True)
    p = yield mmap(0, 3 * MiB, RW, MAP_PRIVATE, fd, 0)
    yield touch(p, 2 * MiB, False)
    try:
        yield touch(f + MiB, 2 * MiB, False)
    except SimSignal:
        pass
    pid = yield fork()
    if pid == 0:
        yield touch(a, 2 * MiB, True)
        yield mprotect(a + MiB, 2 * MiB, PROT_READ)
        yield munmap(a + 3 * MiB, MiB)
        yield exit(0)
    yield wait(pid)
    yield munmap(a, 3 * MiB)
    yield munmap(f, 3 * MiB)
    return (yield read(a + 4 * MiB))


@pytest.mark.parametrize("policies", [(), ("pt_shared",)])
def test_bulk_paths_charge_what_the_single_paths_charge(monkeypatch, policies):
    runs = {}
    for bulk_min in (1, 10**9):
        monkeypatch.setattr(pgtable, "BULK_MIN", bulk_min)
        m = machine(memory=128 * MiB, debug="exit", policies=policies)
        r = m.run(_workload)
        runs[bulk_min] = (dict(r.counts), r.tasks["1"].calls, m.meminfo())
    (c1, calls1, info1), (c2, calls2, info2) = runs[1], runs[10**9]
    assert calls1 == calls2
    # every per-entry count agrees; how the buddy lists coalesce depends on the order pages are
    # freed in (the bulk zap frees pte_chain slabs before the pages), so those two are left out
    inner = ("buddy_step", "buddy_block")
    assert {k: v for k, v in c1.items() if k not in inner} == {k: v for k, v in c2.items() if k not in inner}
    assert {k: v for k, v in info1.items() if k != "mmframe.PerCpuPages"} == \
        {k: v for k, v in info2.items() if k != "mmframe.PerCpuPages"}


# --- generated programs against the oracle ----------------------------------------------------

WINDOW = 0x1040_0000 - 24 * PAGE_SIZE  # straddles a 4 MiB (and 2 MiB) PTE-page boundary
PAGES = 48
PROTS = st.sampled_from([PROT_NONE, PROT_READ, RW])
OP = st.one_of(
    st.tuples(st.just("mmap"), st.integers(0, PAGES - 1), st.integers(1, 30), PROTS, st.booleans()),
    st.tuples(st.just("hint"), st.integers(0, PAGES * PAGE_SIZE), st.integers(1, 30), PROTS, st.booleans()),
    st.tuples(st.just("munmap"), st.integers(0, PAGES - 1), st.integers(1, 30)),
    st.tuples(st.just("mprotect"), st.integers(0, PAGES - 1), st.integers(1, 30), PROTS),
    st.tuples(st.just("write"), st.integers(0, PAGES - 1), st.integers(1, 99)),
    st.tuples(st.just("read"), st.integers(0, PAGES - 1)),
    st.tuples(st.just("touch"), st.integers(0, PAGES - 1), st.integers(1, 30), st.booleans()),
)
PROGRAM = st.lists(st.one_of(OP, st.tuples(st.just("fork"), st.lists(OP, max_size=8))), max_size=25)


def _call(op):
    name, *a = op
    addr = WINDOW + a[0] * PAGE_SIZE
    if name == "hint":  # a byte address as the hint: rounded up, used if free
        return anon(a[1] * PAGE_SIZE, shared=a[3], prot=a[2], addr=WINDOW + a[0])
    if name == "mmap":
        return anon(a[1] * PAGE_SIZE, shared=a[3], prot=a[2], addr=addr, fixed=True)
    if name == "munmap":
        return munmap(addr, a[1] * PAGE_SIZE)
    if name == "mprotect":
        return mprotect(addr, a[1] * PAGE_SIZE, a[2])
    if name == "write":
        return write(addr, a[1])
    if name == "read":
        return read(addr)
    return touch(addr, a[1] * PAGE_SIZE, a[2])


def _run_ops(ops):
    for op in ops:
        if op[0] == "fork":
            pid = yield fork(_child, op[1])
            yield wait(pid)
            continue
        try:
            yield _call(op)
        except SimSignal:
            pass
    return 0


def _child(ctx, ops):
    yield from _run_ops(ops)
    for page in range(0, PAGES, 7):  # what the child sees at the end
        try:
            yield read(WINDOW + page * PAGE_SIZE)
        except SimSignal:
            pass


def _program(ctx, ops):
    yield from _run_ops(ops)
    for page in range(PAGES):
        try:
            yield read(WINDOW + page * PAGE_SIZE)
        except SimSignal:
            pass


@settings(max_examples=examples(150), deadline=None)
@given(PROGRAM, st.booleans())
def test_generated_programs_match_the_oracle(ops, pae):
    real = machine(memory=16 * MiB, pae=pae)
    oracle = install_oracle(machine(memory=16 * MiB, debug="off"))
    a, b = real.run(_program, ops), oracle.run(_program, ops)
    assert not compare_results(a, b).differences


def test_fork_scaling_scenario_figures_follow_the_model(isolated):
    from mmframe.scenario import run_scenario
    (isolated / "run.toml").write_text('[scenario]\nname = "fork-scaling"\nsizes = ["4MiB", "40MiB"]\n'
                                       'memory = "256MiB"\n')
    scen, cols = run_scenario(load_config(isolated / "run.toml", env={}))
    f = cols[0].figures
    M4, M40 = 4 << 20, 40 << 20
    assert f["fork"][M40] > 5 * f["fork"][M4] and f["fork_exit"][M40] > f["fork"][M40]
    # two pgds and four PTE pages each: the program's, ld.so's and libc's (with the region's first
    # 2.7 MiB), the region's rest, the stack's
    assert f["page_tables"][M4] == 2 * 5 * 4
    # a chain per page once it has two mappings: the region's, and the image's present pages
    assert 10240 * 32 // 1024 < f["pte_chains"][M40] < 10240 * 32 // 1024 + 8
    ref = next(r for r in scen.references if r.figure == "fork" and r.applies(()))
    assert ref.value == 28.4 and ref.at == M40

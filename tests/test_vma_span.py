"""The one-lookup paths of mmap and munmap (issue 24): ``VMAList.span`` / ``either_side`` /
``remove_span`` against a brute-force reading of the list, munmap's page-table shortcuts, the range
flush's IPI shortcut, the slab's fits-in-a-page shortcut and the page allocator's direct core call,
each against what the long path does (written out here, not borrowed from the code)."""

from __future__ import annotations

import attrs
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support import examples
from mmframe.config import load_config
from mmframe.cpu import CPU, TLB
from mmframe.costs import Account
from mmframe.machine import Machine
from mmframe.mm.slab import KmemCache
from mmframe.mm.vma import VMA, VMAList
from mmframe.usr import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, mmap, munmap, touch

MiB = 1 << 20
RW = PROT_READ | PROT_WRITE


def machine(**kw) -> Machine:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=[])
    return Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=64 * MiB, debug_vm="syscall", **kw)))


# VMAs as page numbers: sorted, disjoint, some touching (a gap of 0 pages)
layouts = st.lists(st.tuples(st.integers(0, 3), st.integers(1, 4)), max_size=8)
ranges = st.tuples(st.integers(0, 40), st.integers(1, 10))


def build(layout: list[tuple[int, int]]) -> VMAList:
    vl, at = VMAList(), 0
    for gap, size in layout:
        at += gap
        vl.insert(VMA(at * PAGE_SIZE, (at + size) * PAGE_SIZE, 0))
        at += size
    return vl


@settings(max_examples=examples(300), deadline=None)
@given(layouts, ranges)
@example([(0, 2), (0, 2)], (2, 1))  # a VMA ending exactly where the range starts
@example([(1, 2), (3, 1)], (3, 3))  # a free range with a VMA on each side
def test_span_and_either_side_agree_with_a_scan_of_the_list(layout, rng):
    vl = build(layout)
    start, end = rng[0] * PAGE_SIZE, (rng[0] + rng[1]) * PAGE_SIZE
    meeting = [k for k, v in enumerate(vl.vmas) if v.start < end and v.end > start]
    i, j = vl.span(start, end)
    assert list(range(i, j)) == meeting
    if not meeting:  # the range is free: the VMAs either side are the neighbours
        below = [v for v in vl.vmas if v.start < start]
        above = [v for v in vl.vmas if v.start >= end]
        assert vl.either_side(i) == (below[-1] if below else None, above[0] if above else None)
    vl.find(start)  # fills mmap_cache
    before = list(vl.vmas)
    taken = vl.remove_span(i, j)
    assert taken == [before[k] for k in meeting]
    assert vl.vmas == [v for k, v in enumerate(before) if k not in meeting]
    assert vl.starts == [v.start for v in vl.vmas]
    assert vl.cache is None or vl.cache in vl.vmas


def test_munmap_zaps_a_page_table_past_an_empty_first_slot():
    """The range's first PGD slot has no page table, a later one has pages: they are zapped (and
    the slot stays: the VMA's rest keeps it)."""
    base = 0x4000_0000

    def prog(ctx):
        a = yield mmap(base, 8 * MiB, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
        yield touch(a + 5 * MiB, MiB, True)
        yield munmap(a + 2 * MiB, 5 * MiB)  # [2 MiB, 7 MiB): slot 0 empty, slot 1 populated
        return (yield ("rss",))

    m = machine()
    m.sched.handlers["rss"] = lambda task: task.mm.rss()
    r = m.run(prog)
    assert r.tasks["1"].calls[-1][1] == 0


def test_munmap_of_a_mapping_s_head_or_tail_keeps_the_rest():
    """A VMA straddling only the range's end (or only its start) is split, not taken whole."""
    P = PAGE_SIZE

    def prog(ctx):
        a = yield mmap(0, 4 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
        yield touch(a, 4 * P, True)
        yield munmap(a, P)  # the head
        yield munmap(a + 3 * P, P)  # the tail
        return (yield ("vmas",))

    m = machine()
    m.sched.handlers["vmas"] = lambda task: [(v.start, v.end) for v in task.mm.vmas]
    r = m.run(prog)
    a = r.tasks["1"].calls[0][1]
    assert r.tasks["1"].calls[-1][1] == [(a + P, a + 3 * P)]


def _tlb(ncpu: int):
    acct = Account(Machine(load_config(use_pyproject=False, env={}, cli_plugins=[])).costs)
    cpus = [CPU(i) for i in range(ncpu)]
    ids = {"tlb_flush_local": 0, "invlpg": 1, "ipi_flush": 2}
    return cpus, TLB(cpus, acct, ids)


class _MM:
    def __init__(self, mask):
        self.cpu_vm_mask = set(mask)


class _Task:
    def __init__(self, mm):
        self.mm = mm


def test_range_flush_sends_an_ipi_exactly_when_another_cpu_has_the_mm():
    for mask, other_runs_it, ipis, left in (({0}, False, 0, {0}), (set(), False, 0, set()),
                                            ({0, 1}, True, 1, {0, 1}), ({0, 1}, False, 1, {0}),
                                            ({1}, True, 1, {1}), ({1}, False, 1, set())):
        cpus, tlb = _tlb(2)
        mm = _MM(mask)
        cpus[0].active_mm = mm if 0 in mask else None
        cpus[1].current = _Task(mm if other_runs_it else _MM(()))
        tlb.flush_tlb_range(mm, cpus[0], 0, PAGE_SIZE)
        assert (tlb.counts["ipi"], mm.cpu_vm_mask) == (ipis, left), mask
        assert cpus[1].ipis_received == ipis
        assert cpus[1].tlb_flushes == (1 if ipis and other_runs_it else 0)


def test_slab_takes_a_page_exactly_when_the_objects_no_longer_fit():
    m = machine()
    c = KmemCache(m, "test", 1024)  # four a page
    held = []
    for k in range(1, 10):
        assert c.alloc() >= 0
        held.append(len(c.pages))
        assert len(c.pages) == -(-k // 4)
    assert held == [1, 1, 1, 1, 2, 2, 2, 2, 3]
    for k in range(8, -1, -1):
        c.free()
        assert len(c.pages) == -(-k // 4)
    assert c.alloc(n=0) == -1 and c.pages == []


def test_page_allocation_goes_through_the_hook_unless_the_core_alone_implements_it():
    m = machine()
    seen = []
    real_alloc, real_free = m._alloc_hook, m._free_hook
    m._alloc_hook = lambda *a: seen.append("alloc") or real_alloc(*a)
    m._free_hook = lambda *a: seen.append("free") or real_free(*a)
    assert m.core_alloc and m.core_free
    m.free_pages(m.alloc_pages(0, 0), 0)
    assert seen == []  # the core's implementation called directly
    m.core_alloc = m.core_free = False  # as when a plugin implements the hooks
    m.free_pages(m.alloc_pages(0, 0), 0)
    assert seen == ["alloc", "free"]

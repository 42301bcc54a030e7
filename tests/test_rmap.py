"""pte_chains by 2.5.49's rules, counted from first principles here, and a checker that catches a
wrong count: NRPTE for each cache line and pte_addr_t size, chains that stay after a page is left
with one mapping (2.5.49 never goes back to PageDirect while mapped), chains freed when the last
mapping goes."""

from __future__ import annotations

from array import array

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support import examples
from tests.test_memory import machine
from mmframe.mm.pgtable import PtePage
from mmframe.mm.rmap import Rmap
from mmframe import usr
from mmframe.usr import MAP_ANONYMOUS, MAP_SHARED, PAGE_SIZE, PROT_READ, PROT_WRITE, exit, fork, mmap, sleep, touch, wait

RW = PROT_READ | PROT_WRITE
MiB = 1 << 20
PAGES = 4


def _holder(ctx, base):
    yield touch(base, PAGES * PAGE_SIZE)
    yield sleep(10**9)
    yield exit(0)


def _chains(m) -> int:
    return m.pagealloc.kernel_objects["pte_chain"].objects


@pytest.mark.parametrize("l1, pae, highpte, slots", [
    (32, False, False, 7), (32, True, False, 7), (32, True, True, 3), (128, False, False, 31),
    (128, True, True, 15), (64, True, False, 15),
])
def test_chains_per_page_follow_nrpte(l1, pae, highpte, slots):
    """NRPTE = (L1_CACHE_BYTES - sizeof(void *)) / sizeof(pte_addr_t), pte_addr_t 8 bytes only with
    PAE+HIGHPTE: eight mappings of a page take ceil(8 / NRPTE) chains; one (PageDirect) none."""
    seen = []

    def prog(ctx):
        base = yield mmap(0, PAGES * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS)
        yield touch(base, PAGES * PAGE_SIZE, True)
        seen.append(_chains(m))
        pids = []
        for _ in range(7):
            pids.append((yield fork(_holder, base)))
        yield sleep(10**8)  # every child has mapped every page
        seen.append(_chains(m))
        for pid in pids:
            yield wait(pid)
        seen.append(_chains(m))

    m = machine(policies=(), memory=128 * MiB if highpte else 64 * MiB, pae=pae, highpte=highpte,
                l1_cache_bytes=l1)
    m.run(prog)
    assert seen == [0, PAGES * -(-8 // slots), PAGES]  # the last: one chain each, not PageDirect


def test_a_chain_outlives_its_second_mapping_and_is_reused():
    """2.5.49: a page left with one mapping keeps its pte_chain (no way back to PageDirect), so a
    later fork allocates none for it; the chain goes with the last mapping."""
    seen = []

    def prog(ctx):
        base = yield mmap(0, PAGES * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS)
        yield touch(base, PAGES * PAGE_SIZE, True)
        for _ in range(2):
            pid = yield fork(_holder, base)
            yield sleep(10**8)
            seen.append(_chains(m))
            yield wait(pid)
            seen.append(_chains(m))
        yield ("munmap", base, PAGES * PAGE_SIZE)
        seen.append(_chains(m))

    m = machine(policies=())
    m.run(prog)
    assert seen == [PAGES, PAGES, PAGES, PAGES, 0]


def _corrupt_after_setup(m, corrupt):
    def prog(ctx):
        base = yield mmap(0, PAGES * PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS)
        yield touch(base, PAGES * PAGE_SIZE, True)
        pid = yield fork(_holder, base)
        yield sleep(10**8)
        yield ("corrupt",)
        yield wait(pid)

    m.sched.handlers["corrupt"] = lambda task: corrupt(m) or 0
    m.run(prog)


@pytest.mark.parametrize("corrupt", [
    lambda m: m.pagealloc.kernel_objects["pte_chain"].__setattr__(
        "objects", m.pagealloc.kernel_objects["pte_chain"].objects + 1),
    lambda m: m.mm.rmap.chained.__setitem__(next(p for p, k in enumerate(m.mm.rmap.k) if k == 2), 0),
    lambda m: m.mm.rmap.chained.__setitem__(next(p for p, k in enumerate(m.mm.rmap.k) if k == 0), 1),
], ids=["extra_chain", "mapped_twice_but_direct", "unmapped_on_a_chain"])
def test_the_checker_catches_a_wrong_pte_chain_state(corrupt):
    m = machine(policies=())
    with pytest.raises(AssertionError, match="pte_chain|PageDirect"):
        _corrupt_after_setup(m, corrupt)


# --- the per-page links and the bulk forms ---------------------------------------------------------
# Operation sequences on the reverse map alone (PTE pages made here, not registered with the mm
# layer): the single forms, the bulk forms, and a model of 2.5.49's lists (a new mapping goes in
# front of its page's list; a removal keeps the others' order).  Both forms must leave the same
# entries, links, counts, chains and charges, and pteps_of must give the model's list.

NPT, NSLOT, NPFN = 3, 12, 5
RMAP_OP = st.one_of(
    st.tuples(st.just("add"), st.integers(0, NPT - 1), st.lists(st.tuples(st.integers(0, NSLOT - 1),
                                                                          st.integers(0, NPFN - 1)), max_size=8)),
    st.tuples(st.just("remove"), st.integers(0, NPT - 1), st.lists(st.integers(0, NSLOT - 1), max_size=8)),
)


def _rmap_state(m, r, before):
    chains0, totals0 = before
    totals = {k: v - totals0.get(k, 0) for k, v in m.acct.totals().items()}
    return (list(r.page), list(r.ptep), list(r.next), list(r.prev), list(r.head), list(r.free), list(r.k),
            bytes(r.chained), r.chains, _chains(m) - chains0, {k: v for k, v in totals.items() if v})


_MACHINES = {}


def _apply(m, pts, ops, bulk):
    # a fresh map on a machine kept between examples (its pte_chain cache and charges: as deltas)
    r = Rmap(m, array("i", bytes(4 * len(m.mm.rmap.k))), m.mm.nrpte, m.config.l1_cache_bytes)
    before = (_chains(m), dict(m.acct.totals()))
    pages = [m.pagealloc.first_high_pfn - 1 - p for p in range(NPFN)]  # any pfns: the map only indexes them
    model = {p: [] for p in pages}
    for op, t, args in ops:
        pt = pts[t]
        if op == "add":
            todo, seen = [], set()
            for slot, p in args:
                if pt.rid[slot] < 0 and slot not in seen:
                    seen.add(slot)
                    todo.append((slot, pages[p]))
            if bulk:
                r.page_add_rmap_bulk(np.array([p for _, p in todo], dtype=np.int64), pt,
                                     np.array([s for s, _ in todo], dtype=np.int64))
            else:
                for slot, p in todo:
                    r.page_add_rmap(p, pt, slot)
            for slot, p in todo:
                model[p].insert(0, pt.ptep(slot))
        else:
            todo = sorted({s for s in args if pt.rid[s] >= 0})
            pfns = [r.page[pt.rid[s]] for s in todo]
            if bulk:
                r.page_remove_rmap_bulk(np.array(pfns, dtype=np.int64), pt, np.array(todo, dtype=np.int64))
            else:
                for slot, p in zip(todo, pfns):
                    r.page_remove_rmap(p, pt, slot)
            for slot, p in zip(todo, pfns):
                model[p].remove(pt.ptep(slot))
        for p in pages:
            assert r.pteps_of(p) == model[p]
            assert r.k[p] == len(model[p])
    return _rmap_state(m, r, before)


@settings(max_examples=examples(150), deadline=None)
@given(ops=st.lists(RMAP_OP, max_size=14))
@example(ops=[("add", 0, [(0, 0), (1, 0), (2, 0)]), ("add", 1, [(0, 0)]), ("remove", 0, [0, 2])])
@example(ops=[("add", 0, [(s, 1) for s in range(8)]), ("remove", 0, [1, 2, 3, 5, 6]), ("add", 2, [(0, 1), (1, 1)])])
def test_bulk_forms_match_single_forms_and_the_lists(ops):
    """The same operations, singly and in bulk: equal state (entry ids, links, free stack, counts,
    chain mode, pte_chain objects) and equal charges; each page's list is the model's, newest first."""
    states = []
    for bulk in (False, True):
        m = _MACHINES.get(bulk) or _MACHINES.setdefault(bulk, machine(policies=(), debug="off"))
        geo = m.mm.geo
        pts = [PtePage(m.pagealloc.first_high_pfn - 100 - t, geo, t, False) for t in range(NPT)]
        states.append(_apply(m, pts, ops, bulk))
    assert states[0] == states[1]


@pytest.mark.parametrize("corrupt, says", [
    (lambda r, p: r.next.__setitem__(r.head[p], -1), "prev and next links disagree"),  # the list cut short
    (lambda r, p: r.prev.__setitem__(r.next[r.head[p]], -1), "next and prev links disagree"),  # a second head
    (lambda r, p: r.head.__setitem__(p, r.next[r.head[p]]), "no prev that is not"),  # the head skips an entry
    (lambda r, p: r.next.__setitem__(r.next[r.head[p]], r.head[p]), "next and prev links disagree"),  # tail loops
    (lambda r, p: (r.next.__setitem__(r.next[r.head[p]], r.next[r.head[p]]),
                   r.prev.__setitem__(r.next[r.head[p]], r.next[r.head[p]]),
                   r.next.__setitem__(r.head[p], -1)), "not reachable"),  # an entry on a cycle of its own
], ids=["cut_short", "second_head", "head_skips", "tail_loops", "detached_cycle"])
def test_the_checker_catches_broken_rmap_links(corrupt, says):
    """Each broken link is caught by the check after the system call that broke it (the links are
    checked against the mappings recomputed from the page tables, not walked)."""
    def bad(m):
        r = m.mm.rmap
        corrupt(r, next(p for p, k in enumerate(r.k) if k == 2))

    m = machine(policies=())
    with pytest.raises(AssertionError, match=says):
        _corrupt_after_setup(m, bad)


def test_reclaim_reaches_every_mapping_through_the_list():
    """page_referenced and try_to_unmap walk the page's whole list: a shm page mapped by a parent
    and two children is referenced three times, then unmapped from all three; the children read it
    back after the unmap (a refault from the shm object)."""
    seen = {}

    def child(ctx, base):
        yield touch(base, PAGE_SIZE)
        yield sleep(10**9)
        seen.setdefault("reads", []).append((yield usr.read(base)))
        yield exit(0)

    def reclaim(task):
        vm = m.mm
        pfn = int(np.flatnonzero(np.frombuffer(vm.tag, dtype=np.int64) == 77)[0])
        vs = vm.vmscan
        seen["k"] = vm.rmap.k[pfn]
        seen["referenced"] = vs.page_referenced(pfn)
        seen["again"] = vs.page_referenced(pfn)
        seen["unmap"] = vs.try_to_unmap(pfn)
        seen["k after"] = vm.rmap.k[pfn]
        seen["unmapped"] = vs.counts["unmapped_ptes"]
        seen["pages"], seen["sharers"] = vs.counts["unmapped_pages"], vs.counts["sharers_visited"]
        return 0

    def prog(ctx):
        base = yield mmap(0, PAGE_SIZE, RW, MAP_SHARED | MAP_ANONYMOUS)
        yield usr.write(base, 77)
        pids = []
        for _ in range(2):
            pids.append((yield fork(child, base)))
        yield sleep(10**8)
        yield ("reclaim",)
        for pid in pids:
            yield wait(pid)

    m = machine(policies=())
    m.sched.handlers["reclaim"] = reclaim
    m.run(prog)
    assert seen == {"k": 3, "referenced": 3, "again": 0, "unmap": 0, "k after": 0, "unmapped": 3, "pages": 1,
                    "sharers": 3, "reads": [77, 77]}

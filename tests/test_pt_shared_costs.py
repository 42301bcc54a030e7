"""Every cost the 2002 shared-page-table patch paid, counted: per PTE page shared at fork (get_page,
pte_page_lock, the mm_chain nodes, the PMD write-protected in both, the parent's TLB flush), per
unshare (a PTE page, the copy, get_page and page_add_rmap per present entry, flush_tlb_mm, the
locks) and per shared table dropped at exit (McCracken, shpte-2.5.43-mm2-4.diff, LKML Message-ID
309790000.1034982417@baldur.austin.ibm.com: share_page_range, pte_unshare, unmap_all_pages)."""

from __future__ import annotations

import attrs
import pytest

from mmframe.config import load_config
from mmframe.machine import Machine
from mmframe.usr import (MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, exit, fork, mmap,
                         touch, wait, write)

MiB = 1 << 20
BIG = 0x2000_0000  # on a PTE-page boundary
RW = PROT_READ | PROT_WRITE


def machine(policies=(), **opts) -> Machine:
    cfg = load_config(use_pyproject=False, env={}, cli_plugins=list(policies))
    cfg = attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=64 * MiB, debug_vm="syscall"))
    if opts:
        cfg = attrs.evolve(cfg, plugin_options={**cfg.plugin_options, "pt_shared": {
            **cfg.plugin_options.get("pt_shared", {}), **opts}})
    return Machine(cfg)


def _child(ctx):
    yield ("mark", "child before write")
    yield write(BIG + 5 * PAGE_SIZE, 7)  # unshares the region's first PTE page (1024 present entries)
    yield ("mark", "child after write")
    yield exit(0)


def _parent(ctx):
    yield mmap(BIG, 8 * MiB, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    yield touch(BIG, 8 * MiB, True)
    yield ("mark", "before fork")
    pid = yield fork(_child)
    yield ("mark", "after fork")
    yield wait(pid)


def run(policies=()):
    m = machine(policies)
    marks = {}

    def mark(task, name):
        tables = len([p for p in task.mm.ptp if p is not None])
        marks[name] = dict(m.acct.totals(task=task.lineage)), task.lineage, tables
        return 0

    m.sched.handlers["mark"] = mark
    r = m.run(_parent)
    figures = m.close()
    return m, marks, r, figures


def delta(marks, a, b):
    (x, _, _), (y, _, _) = marks[a], marks[b]
    return {k: y.get(k, 0) - x.get(k, 0) for k in set(x) | set(y)}


def test_fork_pays_per_shared_pte_page_and_nothing_per_entry():
    m, marks, r, figures = run(["pt_shared"])
    shared = figures["pt_shared.shared_at_fork"]
    tables = marks["before fork"][2]
    assert shared == tables >= 2
    d = delta(marks, "before fork", "after fork")
    assert d["pte_page_lock"] == shared  # pgtable_add_rmap under the PTE page's lock
    assert d["mm_chain_alloc"] == 2 * shared  # each table gets its second owner: two chain nodes
    assert d.get("pte_copy", 0) == 0 and d.get("page_add_rmap", 0) == 0  # nothing per entry
    assert d["page_ref"] >= shared  # get_page on each PTE page (and the fork's own pages)
    # the child's PMD entry and the parent's write-protect: two PMD writes per writable table
    assert d["pte_set"] >= 2 * shared - 1
    assert d["tlb_flush_local"] >= 1  # dup_mmap's flush_tlb_mm of the parent


def test_unshare_pays_the_copy_the_references_the_rmap_and_the_flush():
    m, marks, r, figures = run(["pt_shared"])
    d = delta(marks, "child before write", "child after write")
    assert d["pte_copy"] == 1024  # every present entry of the 4 MiB PTE page
    assert d["page_add_rmap"] >= 1024 and d["page_ref"] >= 1024
    assert d["pte_chain_alloc"] >= 1024 // 7  # each page now mapped twice: chains (7 slots on a P-III line)
    assert d["pte_page_lock"] == 3  # the old table (held, dropped round the allocation, retaken), the new one
    assert d["clear_page"] >= 1 and d["tlb_flush_local"] >= 1
    assert figures["pt_shared.unshares"] >= 1


def test_exit_locks_every_pte_page_it_drops_or_zaps():
    m, marks, r, figures = run(["pt_shared"])
    final = m.acct.totals(task=marks["child after write"][1])
    before, _, tables = marks["child after write"]
    assert final.get("pte_page_lock", 0) - before.get("pte_page_lock", 0) == tables
    assert final.get("mm_chain_free", 0) - before.get("mm_chain_free", 0) >= 2 * (tables - 1)


def test_mainline_pays_none_of_it():
    m, marks, r, figures = run()
    totals = m.acct.totals()
    assert not totals.get("pte_page_lock") and not totals.get("mm_chain_alloc") and not totals.get("i_mmap_visit")


def test_the_sharing_costs_cite_their_sources():
    m = machine(["pt_shared"])
    for name in ("pte_page_lock", "i_mmap_visit", "mm_chain_alloc", "mm_chain_free", "mm_chain_visit"):
        e = m.costs.entries[m.costs.id[name]]
        assert e.kind != "fitted" and e.source.strip()
    m.close()


# --- the patched handle_mm_fault's lock on the faulting PTE page, one per fault ----------------------

def _faults(ctx):
    a = yield mmap(BIG, 8 * MiB, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    yield touch(a, 6 * MiB, True)  # 1536 write faults: bulk on the touch path
    yield touch(a + 6 * MiB, MiB, False)  # 256 read faults (the ZERO_PAGE)
    for i in range(5):
        yield write(a + 7 * MiB + i * PAGE_SIZE, i)  # 5 single faults, on an existing table
    yield write(a + 6 * MiB, 9)  # a copy-on-write fault on the ZERO_PAGE
    yield exit(0)


def _fault_run(policies, bulk_min, **opts):
    from mmframe.mm import pgtable
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pgtable, "BULK_MIN", bulk_min)
        m = machine(policies, **opts)
        m.run(_faults)
    return m.acct.totals()


@pytest.mark.parametrize("opts", [{"attach_2002": False}, {}, {"attach_2005": True}],
                         ids=["relatives", "attach_2002", "attach_2005"])
def test_every_fault_takes_the_pte_page_lock_on_the_single_and_the_bulk_path(opts):
    """shpte-2.5.43-mm2's handle_mm_fault locks the faulting PTE page before it drops
    page_table_lock: one pte_page_lock per fault (no sharing here, so no other lock is taken
    before exit), charged the same by touch's bulk fill (once per run) and one fault at a time,
    whether the plugin's hook sees the fault (an empty slot, with attach sharing) or not."""
    for bulk_min in (1, 10**9):
        t = _fault_run(["pt_shared"], bulk_min, **opts)
        exit_locks = 2  # exit's walk locks each of the two PTE pages (unmap_all_pages)
        assert t["page_fault"] == 1536 + 256 + 5 + 1
        assert t["pte_page_lock"] == t["page_fault"] + exit_locks, bulk_min


def test_mainline_takes_no_pte_page_lock_on_faults():
    for bulk_min in (1, 10**9):
        t = _fault_run([], bulk_min)
        assert t["page_fault"] == 1536 + 256 + 5 + 1 and not t.get("pte_page_lock")


def test_the_fault_lock_is_the_only_change_to_pt_shared_fault_costs():
    """Without the lock, a pt_shared run of faults charges what mainline charges, count for count."""
    a, b = _fault_run([], 1), _fault_run(["pt_shared"], 1)
    b = dict(b)
    assert b.pop("pte_page_lock") == b["page_fault"] + 2
    assert a == b


def test_an_unsharing_fault_pays_its_lock_within_the_unshare():
    """The fault that unshares is charged unshare's three locks (the faulting table's among them),
    not a fourth: the per-fault lock is the one ``unshare`` counts as its caller's."""
    m, marks, r, figures = run(["pt_shared"])
    d = delta(marks, "child before write", "child after write")
    assert d["page_fault"] == 1 and d["pte_page_lock"] == 3

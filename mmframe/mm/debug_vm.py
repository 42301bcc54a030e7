"""``debug_vm``: the memory model's invariant checker (O(memory); for tests and debug runs).

* every mm's PMD entries point at the PTE pages it lists, and it is among their owners;
* a PTE page's reference count equals its owners; its ``rss`` equals its present entries that
  map pages not reserved; its rmap ids point at entries naming that page and slot;
* every page's reference count equals its mappings (distinct PTE slots) plus its other holders
  (a shared object's page cache, pins); its rmap entry count equals its mappings;
* pte_chain objects (the ``pte_chain`` slab's count) equal what 2.5.49's rules give for the
  mappings counted here, with NRPTE worked out here from the configuration: a page mapped once
  may be PageDirect or (after losing its other mappings) on one chain; one mapped twice or more is
  on ``ceil(k / NRPTE)`` chains; an unmapped page on none.  mm_chain nodes what the owner lists imply;
* the per-page links (``head``/``next``/``prev``): the entries reachable from each page's head are
  exactly the mappings of that page found in the page tables here (each once, no cycle, the
  links agreeing both ways); checked on the arrays (pointer doubling), not through ``pteps_of``;
* the allocator's conservation checker holds;
* swap: each slot's count equals the PTEs holding its entry, plus one if its page is in the swap
  cache, plus the shmem objects recording it; a swap-cache page is never mapped writable; a shmem
  index is either cached or recorded as swapped, not both;
* LRU: the pages flagged PG_lru are exactly those on the lists, each on the list PG_active names
  and in its own zone's; every page mapped or in a page cache is on the LRU, no free page is;
* with no live mm, nothing is left: no PTE page, rmap entry, object page or pin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmframe.mm.filemap import _CACHE, _DIRTY
from mmframe.mm.page import PG_active, PG_lru, PG_reserved
from mmframe.mm.pgtable import _PAGE_RW, PTE_PRESENT_MASK

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory


def check(vm: Memory) -> None:
    count = vm.count_np
    flags = vm.flags_np
    npages = len(count)
    mapped = np.zeros(npages, dtype=np.int64)
    seen: set[int] = set()
    rmap = vm.rmap
    e_page = np.frombuffer(rmap.page, dtype=np.int32)
    e_ptep = np.frombuffer(rmap.ptep, dtype=np.int64)
    swap = vm.swap
    swap_refs = np.zeros(max(swap.pages, 1), dtype=np.int64)
    writable_pfns: list[np.ndarray] = []
    live_ids: list[np.ndarray] = []  # the rmap entry of each mapped slot, and the page it maps
    live_pfns: list[np.ndarray] = []
    for mm in vm.mms.values():
        for idx, pt in enumerate(mm.ptp):
            e = mm.pmd[idx]
            if pt is None:
                assert e == 0, f"mm {mm.id}: PMD slot {idx} set with no PTE page"
                continue
            assert e >> 12 == pt.pfn, f"mm {mm.id}: PMD slot {idx} points at {e >> 12}, not {pt.pfn}"
            assert mm in pt.owners, f"mm {mm.id}: not an owner of the PTE page in slot {idx}"
            assert pt.idx == idx, f"PTE page {pt.pfn} used at slot {idx} but made for {pt.idx}"
            if e & _PAGE_RW == 0:
                assert count[pt.pfn] > 1 or vm._pte_hook is not None, \
                    f"mm {mm.id}: write-protected PMD {idx} with no sharing policy"
            seen.add(pt.pfn)
    assert seen == set(vm.ptpages), f"PTE pages in use {sorted(seen)} != registered {sorted(vm.ptpages)}"
    live = set(vm.mms.values())
    chains = sum(len(pt.owners) for pt in vm.ptpages.values() if len(pt.owners) > 1)
    assert vm.c_mm_chain.objects == chains, f"mm_chain nodes {vm.c_mm_chain.objects} but owners imply {chains}"
    for pfn, pt in vm.ptpages.items():
        assert count[pfn] == len(pt.owners) >= 1, f"PTE page {pfn}: count {count[pfn]}, owners {len(pt.owners)}"
        assert all(o in live for o in pt.owners), f"PTE page {pfn}: a dead mm among its owners"
        v = pt.np().astype(np.int64)
        pres = np.flatnonzero(v & PTE_PRESENT_MASK)
        if np.count_nonzero(v) != len(pres):  # entries that are neither empty nor present: swap entries
            sw = v[(v != 0) & ((v & PTE_PRESENT_MASK) == 0)]
            assert ((sw & 0x81) == 0).all() and (sw >> 8 < swap.pages).all(), \
                f"PTE page {pfn}: a bad swap entry {[hex(x) for x in sw[:4]]}"
            np.add.at(swap_refs, sw >> 8, 1)
        if swap.inuse:
            writable_pfns.append(v[pres][(v[pres] & _PAGE_RW) != 0] >> 12)
        pfns = v[pres] >> 12
        real = (flags[pfns] >> PG_reserved) & 1 == 0
        assert pt.rss == int(real.sum()), f"PTE page {pfn}: rss {pt.rss} but {int(real.sum())} mapped pages"
        rid = pt.np_rid()
        slots = pres[real]
        assert (rid[slots] >= 0).all(), f"PTE page {pfn}: a mapped slot without an rmap entry"
        others = np.ones(len(rid), dtype=bool)
        others[slots] = False
        assert (rid[others] == -1).all(), f"PTE page {pfn}: an rmap entry for an empty or reserved slot"
        ids = rid[slots]
        assert (e_page[ids] == pfns[real]).all(), f"PTE page {pfn}: rmap entry names another page"
        assert (e_ptep[ids] == pfn * 1024 + slots).all(), f"PTE page {pfn}: rmap entry names another pte"
        np.add.at(mapped, pfns[real], 1)
        live_ids.append(ids)
        live_pfns.append(pfns[real])
    k = np.frombuffer(rmap.k, dtype=np.int32)
    assert (k == mapped).all(), f"rmap counts disagree with page tables at pages {np.flatnonzero(k != mapped)[:8]}"
    assert rmap.entries() == int(mapped.sum()), "rmap entry table holds stale entries"
    other = np.zeros(npages, dtype=np.int64)
    _check_page_cache(vm, other)
    for pfn, n in vm.pins.items():
        other[pfn] += n
    user = (mapped > 0) | (other > 0)
    bad = np.flatnonzero(user & (count != mapped + other))
    assert not len(bad), f"page {bad[0]}: count {count[bad[0]]} != mappings {mapped[bad[0]]} + holders {other[bad[0]]}"
    _check_pte_chains(vm, mapped)
    _check_rmap_links(vm, mapped, np.concatenate(live_ids) if live_ids else np.zeros(0, np.int64),
                      np.concatenate(live_pfns) if live_pfns else np.zeros(0, np.int64))
    _check_swap(vm, swap_refs, np.concatenate(writable_pfns) if writable_pfns else np.zeros(0, np.int64))
    _check_lru(vm, user)
    vm.pa.check()
    if not vm.mms:
        assert not vm.ptpages and rmap.entries() == 0, "memory left behind after every mm went"
        # pins may outlive every mm only while the direct I/O holding them is in flight (exit with I/O)
        assert not vm.pins or vm.m.fs.dio.stats["in_flight"], "pinned pages left with no I/O in flight"
        assert all(obj.shm is not None for obj in vm.objects), "a shmem object outlived every mm"


def pte_chain_slots(l1_cache_bytes: int, pae: bool, highpte: bool) -> int:
    """2.5.49 mm/rmap.c: ``NRPTE = (L1_CACHE_BYTES - sizeof(void *)) / sizeof(pte_addr_t)``; on
    i386 a pointer is 4 bytes and ``pte_addr_t`` is ``pte_t *`` (4), ``u32`` with HIGHPTE on
    HIGHMEM4G (4) or ``u64`` with HIGHPTE on HIGHMEM64G, i.e. PAE (8)."""
    return (l1_cache_bytes - 4) // (8 if pae and highpte else 4)


def _check_pte_chains(vm: Memory, mapped: np.ndarray) -> None:
    cfg = vm.m.config
    nrpte = pte_chain_slots(cfg.l1_cache_bytes, cfg.pae, bool(cfg.highpte))
    on_chain = np.frombuffer(vm.rmap.chained, dtype=np.uint8) != 0
    bad = np.flatnonzero(on_chain & (mapped == 0))
    assert not len(bad), f"page {bad[0]}: unmapped but still on a pte_chain"
    bad = np.flatnonzero(~on_chain & (mapped >= 2))
    assert not len(bad), f"page {bad[0]}: mapped {mapped[bad[0]]} times but PageDirect"
    expect = int(((mapped[on_chain] + nrpte - 1) // nrpte).sum())
    objs = vm.m.pagealloc.kernel_objects["pte_chain"].objects
    assert objs == expect, f"pte_chain objects {objs} but the mappings imply {expect} (NRPTE {nrpte})"


def _check_rmap_links(vm: Memory, mapped: np.ndarray, ids: np.ndarray, pfns: np.ndarray) -> None:
    """``ids``/``pfns``: the entry and page of every mapping found in the page tables (each entry
    already checked to name its page and PTE).  Each page's linked list must hold exactly those."""
    rmap = vm.rmap
    head = np.frombuffer(rmap.head, dtype=np.int32).astype(np.int64)
    nxt = np.frombuffer(rmap.next, dtype=np.int32).astype(np.int64)
    prv = np.frombuffer(rmap.prev, dtype=np.int32).astype(np.int64)
    e_page = np.frombuffer(rmap.page, dtype=np.int32)
    bad = np.flatnonzero((head >= 0) != (mapped > 0))
    assert not len(bad), f"page {bad[0]}: rmap list head {head[bad[0]]} but {mapped[bad[0]]} mappings"
    hp = np.flatnonzero(head >= 0)
    assert (e_page[head[hp]] == hp).all(), "an rmap list head names an entry of another page"
    if not len(ids):
        return
    n, p = nxt[ids], prv[ids]
    on = n >= 0
    assert (e_page[n[on]] == pfns[on]).all(), "an rmap entry's next is not a mapping of the same page"
    assert (prv[n[on]] == ids[on]).all(), "rmap next and prev links disagree"
    on = p >= 0
    assert (e_page[p[on]] == pfns[on]).all(), "an rmap entry's prev is not a mapping of the same page"
    assert (nxt[p[on]] == ids[on]).all(), "rmap prev and next links disagree"
    heads = ids[p < 0]
    assert len(heads) == len(hp) and (head[pfns[p < 0]] == heads).all(), \
        "an rmap entry with no prev that is not its page's list head"
    # every mapping reaches its page's head through prev links (none is on a cycle off the list)
    up = np.arange(len(nxt), dtype=np.int64)
    up[ids] = np.where(p >= 0, p, ids)
    for _ in range(int(mapped.max(initial=1)).bit_length() + 1):
        up = up[up]
    assert (up[ids] == head[pfns]).all(), "an rmap entry not reachable from its page's list head"
    free = np.frombuffer(rmap.free, dtype=np.int64)
    assert (nxt[free] == -1).all() and (prv[free] == -1).all(), "a free rmap entry still linked"


def _check_page_cache(vm: Memory, other: np.ndarray) -> None:
    """Page-cache pages: each cached once, in the tree it claims, holding one reference; PG_cache
    and PG_dirty agree with the mapping; radix-tree nodes add up to the pool's count."""
    mappings = [o.mapping for o in vm.objects] + [i.mapping for i in vm.m.fs.live_inodes()] + [vm.swap.cache]
    nodes, seen = 0, 0
    for mapping in mappings:
        nodes += mapping.page_tree.nodes()
        for index, pfn in mapping.page_tree.items():
            seen += 1
            assert vm.page_cache.get(pfn) == (mapping, index), f"page {pfn} in a tree but not recorded there"
            other[pfn] += 1
            f = int(vm.flags_np[pfn])
            assert bool(f & _CACHE) == mapping.backed, f"page {pfn}: PG_cache wrong for its mapping"
            assert bool(f & _DIRTY) == (index in mapping.dirty), f"page {pfn}: PG_dirty and the dirty list disagree"
        assert all(mapping.page_tree.lookup(i) is not None for i in mapping.dirty), "a dirty index with no page"
    assert seen == len(vm.page_cache), f"{len(vm.page_cache)} cached pages recorded, {seen} in trees"
    assert nodes == vm.radix_pool.nodes, f"radix-tree nodes {nodes} in trees, {vm.radix_pool.nodes} allocated"
    for obj in vm.objects:
        assert obj.refs > 0, "a shmem object with no reference is still live"
    assert all(vm.count_np[p] > 0 for p in vm.zero_tail), "a zeroed tail on a free page"
    assert all(vm.count_np[p] > 0 for p in vm.fine), "bytes kept for a free page"


def _check_swap(vm: Memory, slots: np.ndarray, writable: np.ndarray) -> None:
    swap = vm.swap
    cache = swap.cache
    for offset, pfn in cache.page_tree.items():  # swapper_space is indexed by slot offset
        slots[offset] += 1
        assert vm.page_cache.get(pfn) == (cache, offset), f"swap-cache page {pfn} not recorded"
    for obj in vm.objects:
        for index, entry in obj.swap.items():
            slots[entry >> 8] += 1
            assert obj.mapping.page_tree.lookup(index) is None, f"shmem index {index} both cached and swapped"
    if swap.pages:
        sm = np.frombuffer(swap.swap_map, dtype=np.uint16).astype(np.int64)[:swap.pages]
        bad = np.flatnonzero(sm[1:] != slots[1:swap.pages]) + 1
        assert not len(bad), f"swap slot {bad[0]}: count {sm[bad[0]]} but {slots[bad[0]]} references"
        assert swap.inuse == int((sm[1:] != 0).sum()), f"swap inuse {swap.inuse} != slots used"
    else:
        assert not slots.any(), "swap entries with no swap area"
    cached = set(cache.page_tree.values())
    if cached and len(writable):
        hit = cached.intersection(writable.tolist())
        assert not hit, f"swap-cache page {min(hit)} mapped writable"


def _check_lru(vm: Memory, user: np.ndarray) -> None:
    vs = vm.vmscan
    flags = vm.flags_np
    on_lru = (flags >> PG_lru) & 1
    active = (flags >> PG_active) & 1
    listed = np.zeros(len(flags), dtype=np.int64)
    for lists, want_active in ((vs.active, 1), (vs.inactive, 0)):
        for z, lst in lists.items():
            zone = vm.pa.zone_by_idx[z]
            pf = np.fromiter(lst, dtype=np.int64, count=len(lst))
            if not len(pf):
                continue
            assert ((pf >= zone.start_pfn) & (pf < zone.end_pfn)).all(), f"a page on {zone.name}'s LRU is in another zone"
            assert (active[pf] == want_active).all(), f"PG_active disagrees with the list a page is on ({zone.name})"
            np.add.at(listed, pf, 1)
    assert listed.max(initial=0) <= 1, f"page {int(np.argmax(listed))} on the LRU twice"
    assert (listed == on_lru).all(), f"PG_lru disagrees with the lists at page {int(np.flatnonzero(listed != on_lru)[0])}"
    cached = np.zeros(len(flags), dtype=bool)
    cached[list(vm.page_cache)] = True
    need = (user | cached) & ((flags >> PG_reserved) & 1 == 0)
    missing = np.flatnonzero(need & (on_lru == 0))
    assert not len(missing), f"page {missing[0]} is in use (mapped or cached) but on no LRU list"
    stale = np.flatnonzero((on_lru == 1) & (vm.count_np == 0))
    assert not len(stale), f"free page {stale[0]} is on an LRU list"

"""Page reclaim (2.5.49 ``mm/vmscan.c``, ``mm/swap.c``'s LRU, ``mm/rmap.c``'s ``page_referenced`` and
``try_to_unmap``): LRU lists per zone, referenced-bit aging through the reverse map, unmapping,
write-back and swap-out, direct reclaim by allocations that may wait, and kswapd.

**LRU.**  Each zone has an active and an inactive list (insertion-ordered dicts of pfns: the
oldest first, so "the tail" of the kernel's lists is the front here); ``PG_lru`` and ``PG_active``
say where a page is.  User pages join the inactive list when allocated (``lru_cache_add``: anonymous
pages, page-cache, shmem and swap-cache pages) and leave it when freed.  ``mark_page_accessed``
(page-cache hits) sets ``PG_referenced`` and promotes a referenced inactive page.

**Aging.**  ``page_referenced`` tests and clears ``_PAGE_ACCESSED`` in each PTE mapping the page,
found through the reverse map, through the choke point (reason ``referenced``); the hardware sets
the bit again on the next access (:mod:`mmframe.mm.uaccess`, :mod:`mmframe.mm.touch`).
``refill_inactive_zone`` moves pages from the active list to the inactive one unless they are
mapped and referenced; ``shrink_list`` frees what it can from the inactive tail.

**Unmapping.**  ``try_to_unmap`` clears each PTE through the choke point (reason ``swap_out``),
leaving the swap entry for a swap-cache page, carries the dirty bit to the page, and flushes the
TLB entry of every mm using the PTE page (a shared PTE page: each sharer, whose VMA is checked for
``VM_LOCKED`` too); a ``VM_LOCKED`` VMA fails it (SWAP_FAIL), as does a pinned page before it starts.

**Who reclaims.**  An allocation that fails its second pass wakes kswapd (pass 1 already did) and,
if it may wait (``__GFP_WAIT``), calls ``try_to_free_pages`` itself (PF_MEMALLOC: allocations made
while reclaiming ignore the watermarks and never recurse).  ``__GFP_IO`` is needed to write a
swap-cache page, ``__GFP_FS`` to write a file or shmem page; without them dirty pages are kept.
Atomic allocations never reclaim.  kswapd is a kernel thread of the scheduler (``balance_pgdat``:
each zone below ``pages_high`` is shrunk, priority 12 down to 0), sleeping until woken.

Complexity: scanning a page costs O(its mappings) PTE visits, and so does the reverse map's lookup
(:meth:`mmframe.mm.rmap.Rmap.ptes_of`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.mm import filemap
from mmframe.mm.filemap import _CACHE, _DIRTY
from mmframe.mm.page import (DMA_END_PFN, PG_active, PG_lru, PG_referenced, ZONE_DMA, ZONE_HIGHMEM, ZONE_NORMAL,
                             __GFP_FS, __GFP_IO, GFP_KERNEL)
from mmframe.mm.oom_kill import out_of_memory
from mmframe.mm.pgtable import _PAGE_ACCESSED, _PAGE_DIRTY
from mmframe.mm.pte_change import REFERENCED, SWAP_OUT
from mmframe.mm.vma import VM_LOCKED

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory
    from mmframe.sched import Task

_LRU, _ACTIVE, _REF = 1 << PG_lru, 1 << PG_active, 1 << PG_referenced
GFP_FS_, GFP_IO_ = __GFP_FS, __GFP_IO

DEF_PRIORITY = 12  # include/linux/mmzone.h
SWAP_CLUSTER_MAX = 32  # include/linux/swap.h
SWAP_SUCCESS, SWAP_AGAIN, SWAP_FAIL = 0, 1, 2  # include/linux/rmap-locking.h / swap.h of 2.5

#: counters of :attr:`VmScan.counts` (meminfo-like figures of the run)
COUNTERS = ("pgscan", "pgsteal", "pgactivate", "pgdeactivate", "pgrotate", "pageout", "try_to_unmap",
            "unmapped_ptes", "unmapped_pages", "sharers_visited", "unmap_fail_locked", "kswapd_runs", "kswapd_wakeups",
            "allocstall", "oom_kills", "skipped_pinned", "dropped_clean")


class VmScan:
    """The reclaim state of one machine: LRU lists, counters, kswapd; see the module docstring."""

    def __init__(self, vm: Memory) -> None:
        self.vm = vm
        self.m = vm.m
        pa = vm.pa
        self.active: dict[int, dict[int, None]] = {z.idx: {} for z in pa.zones}
        self.inactive: dict[int, dict[int, None]] = {z.idx: {} for z in pa.zones}
        self.refill_counter = {z.idx: 0 for z in pa.zones}
        self.first_high = pa.first_high_pfn
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.reclaim_ns = 0.0  # simulated time spent in reclaim (direct and kswapd)
        self.kswapd: Task | None = None
        self.running = False  # PF_MEMALLOC: a reclaim is in progress
        self.oom_failures = 0
        self.oom_current = False  # the OOM victim is the allocating task (its fault path kills it)
        self.oom_victims: list[tuple[str, int]] = []
        P = vm.m.P
        self.P_lru, self.P_scan, self.P_young = P.lru_op, P.lru_scan, P.pte_test_young

    # --- LRU lists --------------------------------------------------------------------------------
    def zone_idx(self, pfn: int) -> int:
        if pfn >= self.first_high:
            return ZONE_HIGHMEM
        return ZONE_NORMAL if pfn >= DMA_END_PFN else ZONE_DMA

    def lru_cache_add(self, pfn: int) -> None:
        """A new user page joins its zone's inactive list (2.5.49 ``lru_cache_add``)."""
        vm = self.vm
        vm.flags[pfn] = (vm.flags[pfn] | _LRU) & ~(_ACTIVE | _REF)
        self.inactive[self.zone_idx(pfn)][pfn] = None
        vm.acct.charge(self.P_lru)

    def lru_del(self, pfn: int) -> None:
        """The page is being freed: off its list (``del_page_from_lru``)."""
        vm = self.vm
        f = vm.flags[pfn]
        lists = self.active if f & _ACTIVE else self.inactive
        del lists[self.zone_idx(pfn)][pfn]
        vm.flags[pfn] = f & ~(_LRU | _ACTIVE | _REF)
        vm.acct.charge(self.P_lru)

    def activate_page(self, pfn: int) -> None:
        vm = self.vm
        z = self.zone_idx(pfn)
        f = vm.flags[pfn]
        if f & _ACTIVE:
            lst = self.active[z]
            del lst[pfn]
            lst[pfn] = None
        else:
            del self.inactive[z][pfn]
            self.active[z][pfn] = None
            vm.flags[pfn] = f | _ACTIVE
            self.counts["pgactivate"] += 1
        vm.acct.charge(self.P_lru)

    def deactivate_page(self, pfn: int) -> None:
        vm = self.vm
        z = self.zone_idx(pfn)
        del self.active[z][pfn]
        self.inactive[z][pfn] = None
        vm.flags[pfn] &= ~(_ACTIVE | _REF)
        self.counts["pgdeactivate"] += 1
        vm.acct.charge(self.P_lru)

    def rotate(self, pfn: int) -> None:
        """Back to the head of the inactive list (kept: pinned, no swap, no right to write)."""
        lst = self.inactive[self.zone_idx(pfn)]
        del lst[pfn]
        lst[pfn] = None
        self.counts["pgrotate"] += 1
        self.vm.acct.charge(self.P_lru)

    def mark_page_accessed(self, pfn: int) -> None:
        """``mark_page_accessed``: inactive+referenced -> active; otherwise set referenced."""
        vm = self.vm
        f = vm.flags[pfn]
        if not f & _LRU:
            return
        if not f & _ACTIVE and f & _REF:
            self.activate_page(pfn)
            vm.flags[pfn] &= ~_REF
        else:
            vm.flags[pfn] = f | _REF

    def nr_active(self) -> int:
        return sum(len(d) for d in self.active.values())

    def nr_inactive(self) -> int:
        return sum(len(d) for d in self.inactive.values())

    # --- the reverse map's side -------------------------------------------------------------------
    def _ptes(self, pfn: int) -> list[tuple[Any, int]]:
        """The (PTE page, slot) pairs mapping ``pfn``, through the reverse map."""
        return self.vm.rmap.ptes_of(pfn, self.vm.ptpages)

    def page_referenced(self, pfn: int) -> int:
        """``page_referenced``: PG_referenced plus the PTEs whose accessed bit was set, each cleared
        (``ptep_test_and_clear_young``, through the choke point)."""
        vm = self.vm
        f = vm.flags[pfn]
        ref = 0
        if f & _REF:
            vm.flags[pfn] = f & ~_REF
            ref = 1
        ptes = self._ptes(pfn)
        vm.acct.charge(self.P_young, len(ptes))
        for pt, i in ptes:
            if pt.ptes[i] & _PAGE_ACCESSED:
                pt = vm.pte_change(pt.owners[0], pt.idx, REFERENCED, i, i + 1)
                if pt is not None:
                    pt.ptes[i] &= ~_PAGE_ACCESSED
                ref += 1
        return ref

    def try_to_unmap(self, pfn: int) -> int:
        """``try_to_unmap``: clear every PTE mapping ``pfn`` (a swap entry for a swap-cache page),
        or SWAP_FAIL if any mapping is VM_LOCKED in any mm using its PTE page."""
        vm = self.vm
        counts = self.counts
        counts["try_to_unmap"] += 1
        ptes = self._ptes(pfn)
        sh = vm.sh
        visited = 0
        for pt, i in ptes:
            addr = (pt.idx << sh) | (i << 12)
            for mm in pt.owners:
                visited += 1
                v = mm.vmas.find(addr)
                if v is not None and v.flags & VM_LOCKED:
                    counts["sharers_visited"] += visited
                    counts["unmap_fail_locked"] += 1
                    return SWAP_FAIL
        counts["sharers_visited"] += visited
        swap = vm.swap
        entry = swap.entry_of(pfn) if swap.in_swap_cache(pfn) else 0
        cpu = vm._cpu()
        flush, pte_change, remove = vm.m.tlb.flush_tlb_page, vm.pte_change, vm.rmap.page_remove_rmap
        rss_walk, put_page = vm.rss_walk, vm.put_page
        cached = vm.flags[pfn] & _CACHE
        for pt, i in ptes:
            addr = (pt.idx << sh) | (i << 12)
            owners = list(pt.owners)
            w = pte_change(owners[0], pt.idx, SWAP_OUT, i, i + 1)
            if w is not None:
                pt = w
            pte = pt.ptes[i]
            if entry:
                swap.swap_duplicate(entry)
                pt.ptes[i] = entry
            else:
                pt.ptes[i] = 0
            for mm in owners:
                flush(mm, cpu, addr)
            if pte & _PAGE_DIRTY and cached:
                filemap.set_page_dirty(vm, pfn)
            remove(pfn, pt, i)
            pt.rss -= 1
            rss_walk(pt)
            put_page(pfn)
        vm.acct.charge(vm.P_pte_clear, len(ptes))
        counts["unmapped_ptes"] += len(ptes)
        if ptes:
            counts["unmapped_pages"] += 1
        return SWAP_SUCCESS

    # --- shrinking ----------------------------------------------------------------------------------
    def shrink_list(self, pfns: list[int], gfp: int) -> int:
        """Try to free each page of ``pfns`` (taken from an inactive tail): the number freed."""
        vm = self.vm
        swap, counts, pins, count = vm.swap, self.counts, vm.pins, vm.count
        k = vm.rmap.k
        freed = 0
        for pfn in pfns:
            counts["pgscan"] += 1
            vm.acct.charge(self.P_scan)
            if pins.get(pfn):  # under I/O or held by get_user_pages: not now
                counts["skipped_pinned"] += 1
                self.rotate(pfn)
                continue
            referenced = self.page_referenced(pfn)
            if referenced and k[pfn]:
                self.activate_page(pfn)
                continue
            pc = vm.page_cache.get(pfn)
            if pc is None:  # anonymous: it needs a slot first
                if not k[pfn] or not (entry := swap.add_to_swap(pfn)):
                    self.activate_page(pfn)
                    continue
                pc = vm.page_cache[pfn]
            if k[pfn] and self.try_to_unmap(pfn) != SWAP_SUCCESS:
                self.activate_page(pfn)
                continue
            mapping, index = pc
            if count[pfn] != 1:  # someone else still holds it (a mapping made meanwhile, a pin)
                self.rotate(pfn)
                continue
            if mapping is swap.cache:
                if vm.flags[pfn] & _DIRTY:
                    if not gfp & GFP_IO_:
                        self.rotate(pfn)
                        continue
                    entry = swap.entry_of(pfn)
                    swap.swap_writepage(pfn, entry)
                    swap.clear_dirty(pfn, entry)
                    counts["pageout"] += 1
                swap.delete_from_swap_cache(pfn)
            elif mapping.backed:  # a file page: written back first if dirty
                if vm.flags[pfn] & _DIRTY:
                    if not gfp & GFP_FS_ or vm.m.fs.wb.write_one_page(pfn) < 0:
                        self.rotate(pfn)
                        continue
                    counts["pageout"] += 1
                else:
                    counts["dropped_clean"] += 1
                filemap.remove_from_page_cache(vm, mapping, index)
            else:  # shmem / SysV shm: to swap (shmem_writepage), recorded in the object
                if not gfp & GFP_FS_ or not (entry := swap.get_swap_page()):
                    self.rotate(pfn)
                    continue
                swap.swap_writepage(pfn, entry)
                counts["pageout"] += 1
                mapping.host.swap[index] = entry
                filemap.remove_from_page_cache(vm, mapping, index)
            freed += 1
        counts["pgsteal"] += freed
        return freed

    def refill_inactive_zone(self, z: int, nr: int) -> None:
        """Move up to ``nr`` pages from the active tail: mapped and referenced ones stay active."""
        active = self.active[z]
        k = self.vm.rmap.k
        for pfn in list(active)[:nr]:
            self.vm.acct.charge(self.P_scan)
            if k[pfn] and self.page_referenced(pfn):
                self.activate_page(pfn)  # to the head again
            else:
                self.deactivate_page(pfn)

    def shrink_zone(self, zone: Any, max_scan: int, gfp: int, nr_pages: int) -> int:
        """2.5.49 ``shrink_zone``: refill the inactive list in proportion, then ``shrink_cache``."""
        z = zone.idx
        nact, ninact = len(self.active[z]), len(self.inactive[z])
        ratio = nr_pages * nact // ((ninact | 1) * 2)
        self.refill_counter[z] += ratio + 1
        if self.refill_counter[z] > SWAP_CLUSTER_MAX:
            n, self.refill_counter[z] = self.refill_counter[z], 0
            self.refill_inactive_zone(z, n)
        freed = 0
        inactive = self.inactive[z]
        while max_scan > 0 and freed < nr_pages and inactive:
            batch = list(inactive)[:min(SWAP_CLUSTER_MAX, max_scan)]
            max_scan -= len(batch)
            freed += self.shrink_list(batch, gfp)
        return freed

    def shrink_caches(self, zones: list[Any], priority: int, gfp: int, nr_pages: int) -> int:
        freed = 0
        for zone in zones:
            if zone.free_pages > zone.pages_high:
                continue
            to_reclaim = max(nr_pages - freed, 1)
            max_scan = max(len(self.inactive[zone.idx]) >> priority, to_reclaim * 2)
            freed += self.shrink_zone(zone, max_scan, gfp, to_reclaim)
            if freed >= nr_pages:
                break
        return freed

    def _timed(self, fn: Any, *args: Any) -> Any:
        acct = self.vm.acct
        before = acct.ns
        prev, self.running = self.running, True
        try:
            return fn(*args)
        finally:
            self.running = prev
            self.reclaim_ns += acct.ns - before

    def try_to_free_pages(self, zones: list[Any], gfp: int, order: int) -> int:
        """Direct reclaim (2.5.49 ``try_to_free_pages``): priorities 12..0 until SWAP_CLUSTER_MAX
        pages are freed; 1 on success.  Then, with ``__GFP_FS``, ``out_of_memory``."""
        self.counts["allocstall"] += 1
        freed = self._timed(self._free_pages_loop, zones, gfp)
        if freed >= SWAP_CLUSTER_MAX:
            self.oom_failures = 0
            return 1
        if gfp & GFP_FS_:
            out_of_memory(self.vm)
        return 1 if freed else 0

    def _free_pages_loop(self, zones: list[Any], gfp: int) -> int:
        freed = 0
        for priority in range(DEF_PRIORITY, -1, -1):
            freed += self.shrink_caches(zones, priority, gfp, SWAP_CLUSTER_MAX - freed)
            if freed >= SWAP_CLUSTER_MAX:
                break
        return freed

    # --- kswapd -------------------------------------------------------------------------------------
    def wakeup_kswapd(self) -> None:
        """Pass 1 of an allocation failed: wake kswapd (made on first use, a kernel thread)."""
        t = self.kswapd
        if t is None:
            self.kswapd = self.m.sched.spawn_kthread("kswapd0", kswapd_thread)
            self.counts["kswapd_wakeups"] += 1
        elif t.state == "blocked" and t.io_result is None:
            self.counts["kswapd_wakeups"] += 1
            self.m.sched.wake(t, 0)

    def zones_need_balance(self) -> bool:
        return any(z.free_pages < z.pages_high for z in self.vm.pa.zones)

    def balance_pgdat(self) -> int:
        """kswapd's work (2.5.49 ``balance_pgdat``): every zone below ``pages_high`` is shrunk,
        priority 12 down to 0, until all are at ``pages_high``."""
        self.counts["kswapd_runs"] += 1
        freed = 0
        for priority in range(DEF_PRIORITY, -1, -1):
            ok = True
            for zone in self.vm.pa.zones:
                to_free = zone.pages_high - zone.free_pages
                if to_free <= 0:
                    continue
                ok = False
                max_scan = max(len(self.inactive[zone.idx]) >> priority, to_free * 2)
                freed += self.shrink_zone(zone, max_scan, GFP_KERNEL, to_free)
            if ok:
                break
        return freed

    def kswapd_round(self, task: Task) -> bool:
        """One round of the kswapd thread: balance; True when it should sleep until woken (False
        when the round wrote pages: it first sleeps until that I/O is done, then looks again)."""
        self._timed(self.balance_pgdat)
        return not (task.io_wait or task.io_pending)


def kswapd_thread(ctx: Any) -> Any:
    """The kswapd kernel thread's body: one ``kswapd`` round at a time, forever."""
    while True:
        yield ("kswapd",)

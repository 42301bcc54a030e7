"""Zones, the buddy allocator, watermarks and per-CPU hot/cold page lists, as 2.5.49 had them.

``__alloc_pages`` walks the zonelist of the GFP class with an incremental min (each zone adds its
``pages_low``, then ``pages_min`` on the second pass: lower-zone protection); ``__GFP_HIGH`` dips to a
quarter of min; an atomic allocation fails where a waiting one would reclaim.  There is no reclaim
in this module: an allocation whose first pass fails wakes kswapd, and one that may wait calls
direct reclaim (:mod:`mmframe.mm.vmscan`) and tries again; one that 2.5 would retry forever is
reported, after OOM_RETRIES rounds,
as a simulated out-of-memory event and fails.  Failure is always a returned ``-1``, never an exception.

Complexity: order-0 allocation and free through the per-CPU lists are O(1) amortised (a batch of
``batch`` pages moves to or from the buddy lists when a list runs low or high); buddy allocation and
free are O(MAX_ORDER).  Free-block heads live in one dict per (zone, order), so a 64 GiB machine
costs a few thousand entries, not one object per page.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmframe.mm.page import (DMA_END_PFN, LOWMEM_END_PFN, MAX_ORDER, PAGE_SHIFT, PAGE_SIZE, PG_highmem,
                             PG_reserved, ZONE_DMA, ZONE_HIGHMEM, ZONE_NAMES, ZONE_NORMAL, MemMap,
                             __GFP_COLD, __GFP_HIGH, __GFP_WAIT,
                             struct_page_bytes)

# Python mangles ``__names`` inside class bodies, so the allocator uses these aliases of the flags.
GFP_COLD_, GFP_HIGH_, GFP_WAIT_ = __GFP_COLD, __GFP_HIGH, __GFP_WAIT

OOM_RETRIES = 16  # mmframe: direct-reclaim rounds of one allocation before it fails (2.5 looped forever)
KERNEL_IMAGE_END = (4 << 20) >> PAGE_SHIFT  # bzImage text+data+bss loaded at 1 MiB: ~3 MiB (estimate)


class PerCpuPages:
    """One per-CPU page list (``struct per_cpu_pages``): LIFO, refilled/drained ``batch`` at a time."""

    __slots__ = ("list", "low", "high", "batch")

    def __init__(self, low: int, high: int, batch: int) -> None:
        self.list: list[int] = []
        self.low, self.high, self.batch = low, high, batch


class Zone:
    """One zone: its pfn range, buddy free lists, watermarks and per-CPU lists."""

    __slots__ = ("idx", "name", "start_pfn", "end_pfn", "present_pages", "free_area", "free_pages",
                 "pages_min", "pages_low", "pages_high", "pageset", "alloc_count", "fallback_count")

    def __init__(self, idx: int, start_pfn: int, end_pfn: int, ncpus: int) -> None:
        self.idx, self.name = idx, ZONE_NAMES[idx]
        self.start_pfn, self.end_pfn = start_pfn, end_pfn
        self.present_pages = end_pfn - start_pfn
        self.free_area: list[dict[int, None]] = [{} for _ in range(MAX_ORDER)]
        self.free_pages = 0
        # free_area_init_core: zone_balance_ratio 128, clamped to [20, 255]
        mask = min(max(self.present_pages // 128, 20), 255)
        self.pages_min, self.pages_low, self.pages_high = mask, 2 * mask, 3 * mask
        # 2.6.0-era sizing (the 2.5.49 constants are unconfirmed; see docs/memory.md)
        batch = max(min(self.present_pages // 1024, (256 << 10) // PAGE_SIZE) // 4, 1)
        self.pageset = [(PerCpuPages(2 * batch, 6 * batch, batch), PerCpuPages(0, 2 * batch, batch))
                        for _ in range(ncpus)]
        self.alloc_count = 0
        self.fallback_count = 0

    def pcp_pages(self) -> int:
        return sum(len(hot.list) + len(cold.list) for hot, cold in self.pageset)


class PageAllocator:
    """Physical memory of one machine: mem_map, zones, zonelists, allocation and freeing."""

    def __init__(self, memory: int, ncpus: int, pae: bool, highpte: bool, acct: Any, ids: dict[str, int]) -> None:
        self.npages = memory >> PAGE_SHIFT
        self.mem_map = MemMap(self.npages)
        self.acct = acct
        self.P_pcp, self.P_buddy, self.P_step = ids["pcp_page"], ids["buddy_block"], ids["buddy_step"]
        bounds = [(ZONE_DMA, 0, min(DMA_END_PFN, self.npages)),
                  (ZONE_NORMAL, DMA_END_PFN, min(LOWMEM_END_PFN, self.npages)),
                  (ZONE_HIGHMEM, LOWMEM_END_PFN, self.npages)]
        self.zones = [Zone(i, s, e, ncpus) for i, s, e in bounds if e > s]
        self.zone_by_idx = {z.idx: z for z in self.zones}
        self.highmem = self.zone_by_idx.get(ZONE_HIGHMEM)
        self.first_high_pfn = LOWMEM_END_PFN if self.highmem is not None else self.npages
        self.ns_pcp = acct.ns_of[self.P_pcp]
        self.zonelists = {k: [self.zone_by_idx[i] for i in order if i in self.zone_by_idx]
                          for k, order in ((ZONE_DMA, (ZONE_DMA,)), (ZONE_NORMAL, (ZONE_NORMAL, ZONE_DMA)),
                                           (ZONE_HIGHMEM, (ZONE_HIGHMEM, ZONE_NORMAL, ZONE_DMA)))}
        # indexed by gfp & (__GFP_DMA | __GFP_HIGHMEM), as the kernel's node_zonelists[gfp & GFP_ZONEMASK]
        self.zonelist_of = [self.zonelists[ZONE_NORMAL], self.zonelists[ZONE_DMA],
                            self.zonelists[ZONE_HIGHMEM], self.zonelists[ZONE_HIGHMEM]]
        self.mem_map_bytes = self.npages * struct_page_bytes(pae, highpte)
        self.events: list[tuple[str, int, int]] = []  # ("oom", gfp, order), ("kswapd", ...)
        self.kernel_objects: dict[str, Any] = {}  # slab caches by name (mm/slab.py)
        self.page_table_pages = 0
        self.blocks: dict[int, int] = {}  # live allocations of order > 0: head pfn -> order
        self.fault_inject: Any = None  # mmframe.mm.fault_inject.FaultInject when injecting
        self.plugin_state: dict[str, Any] = {}  # the machine's, for the allocation hooks
        self.reclaim: Any = None  # mmframe.mm.vmscan.VmScan, set by the memory model
        self._boot()

    # --- boot -----------------------------------------------------------------------------
    def _boot(self) -> None:
        """Reserve what the kernel holds from boot (BIOS page, ISA hole, image, mem_map at 16 MiB as
        bootmem placed it above MAX_DMA_ADDRESS) and free the rest into the buddy lists."""
        reserved = np.zeros(self.npages, dtype=bool)
        reserved[0] = True
        reserved[(640 << 10) >> PAGE_SHIFT: (1 << 20) >> PAGE_SHIFT] = True
        reserved[(1 << 20) >> PAGE_SHIFT: min(KERNEL_IMAGE_END, self.npages)] = True
        mm_pages = -(-self.mem_map_bytes // PAGE_SIZE)
        start = DMA_END_PFN if self.npages > DMA_END_PFN + mm_pages else KERNEL_IMAGE_END
        if start + mm_pages > min(self.npages, LOWMEM_END_PFN):
            raise ValueError(f"mem_map ({self.mem_map_bytes >> 20} MiB) does not fit in lowmem")
        reserved[start:start + mm_pages] = True
        self.mem_map_pages = mm_pages
        self.reserved_pages = int(reserved.sum())
        flags, count = self.mem_map.np("flags"), self.mem_map.np("count")
        flags[reserved] |= 1 << PG_reserved
        count[reserved] = 1
        if ZONE_HIGHMEM in self.zone_by_idx:
            flags[LOWMEM_END_PFN:] |= 1 << PG_highmem
        for z in self.zones:
            free = ~reserved[z.start_pfn:z.end_pfn]
            edges = np.flatnonzero(np.diff(np.concatenate(([0], free.astype(np.int8), [0]))))
            for s, e in zip(edges[::2], edges[1::2]):
                self._free_range(z, z.start_pfn + int(s), z.start_pfn + int(e))

    def _free_range(self, z: Zone, pfn: int, end: int) -> None:
        while pfn < end:
            order = MAX_ORDER - 1
            while order and ((pfn - z.start_pfn) & ((1 << order) - 1) or pfn + (1 << order) > end):
                order -= 1
            z.free_area[order][pfn] = None
            z.free_pages += 1 << order
            pfn += 1 << order

    # --- buddy ------------------------------------------------------------------------------
    def zone_of(self, pfn: int) -> Zone:
        if pfn >= LOWMEM_END_PFN and ZONE_HIGHMEM in self.zone_by_idx:
            return self.zone_by_idx[ZONE_HIGHMEM]
        return self.zone_by_idx[ZONE_NORMAL if pfn >= DMA_END_PFN else ZONE_DMA]

    def _rmqueue(self, z: Zone, order: int) -> int:
        """``__rmqueue``: the smallest free block of at least ``order``, split down by ``expand()``,
        which frees each lower half and goes on with the upper one (2.5.49), so the page returned is
        the block's last ``1 << order`` pages.  -1 if none."""
        areas = z.free_area
        for cur in range(order, MAX_ORDER):
            if areas[cur]:
                pfn = areas[cur].popitem()[0]
                while cur > order:
                    cur -= 1
                    areas[cur][pfn] = None
                    pfn += 1 << cur
                    self.acct.charge(self.P_step)
                z.free_pages -= 1 << order
                self.acct.charge(self.P_buddy)
                return pfn
        return -1

    def _rmqueue_bulk(self, z: Zone, n: int, out: list[int]) -> int:
        """``rmqueue_bulk``: ``n`` calls of ``_rmqueue(z, 0)`` in one loop, appending each page to
        ``out`` and stopping at the first failure; the same pages in the same order, the same
        buddy_block and buddy_step counts (charged once).  Returns how many it took."""
        areas = z.free_area
        a0 = areas[0]
        got = steps = 0
        while got < n:
            if a0:
                pfn = a0.popitem()[0]
            else:
                cur = 1
                while cur < MAX_ORDER and not areas[cur]:
                    cur += 1
                if cur == MAX_ORDER:
                    break
                pfn = areas[cur].popitem()[0]
                steps += cur
                while cur:  # expand(): the lower half of each split goes back, go on with the upper
                    cur -= 1
                    lower, pfn = pfn, pfn + (1 << cur)
                    areas[cur][lower] = None
            out.append(pfn)
            got += 1
        if got:
            z.free_pages -= got
            self.acct.charge(self.P_buddy, got)
            if steps:
                self.acct.charge(self.P_step, steps)
        return got

    def _free_blocks0(self, z: Zone, pfns: list[int]) -> None:
        """``_free_block(z, pfn, 0)`` for each of ``pfns`` in order (``free_pages_bulk``), the
        counts charged once."""
        areas, base = z.free_area, z.start_pfn
        top = MAX_ORDER - 1
        steps = 0
        for pfn in pfns:
            order = 0
            while order < top:
                buddy = base + ((pfn - base) ^ (1 << order))
                area = areas[order]
                if buddy not in area:
                    break
                del area[buddy]
                steps += 1
                if buddy < pfn:
                    pfn = buddy
                order += 1
            areas[order][pfn] = None
        z.free_pages += len(pfns)
        self.acct.charge(self.P_buddy, len(pfns))
        if steps:
            self.acct.charge(self.P_step, steps)

    def _free_block(self, z: Zone, pfn: int, order: int) -> None:
        """``__free_pages_bulk`` for one block: coalesce with free buddies up to MAX_ORDER-1."""
        areas, base = z.free_area, z.start_pfn
        z.free_pages += 1 << order
        while order < MAX_ORDER - 1:
            buddy = base + ((pfn - base) ^ (1 << order))
            if buddy not in areas[order]:
                break
            del areas[order][buddy]
            self.acct.charge(self.P_step)
            pfn = min(pfn, buddy)
            order += 1
        areas[order][pfn] = None
        self.acct.charge(self.P_buddy)

    # --- allocation ---------------------------------------------------------------------------
    def _buffered_rmqueue(self, z: Zone, order: int, gfp: int, cpu: int) -> int:
        if order == 0:
            pcp = z.pageset[cpu][1 if gfp & GFP_COLD_ else 0]
            lst = pcp.list
            if len(lst) <= pcp.low:
                self._rmqueue_bulk(z, pcp.batch, lst)
            if not lst:
                return -1
            pfn = lst.pop()
            acct = self.acct
            acct.row[self.P_pcp] += 1
            acct.ns += acct.ns_of[self.P_pcp]
        else:
            pfn = self._rmqueue(z, order)
            if pfn < 0:
                return -1
            self.blocks[pfn] = order
        self.mem_map.count[pfn] = 1
        z.alloc_count += 1
        return pfn

    def _zonelist_pass(self, zonelist: list[Zone], gfp: int, order: int, cpu: int, use_min: bool) -> int:
        """One walk of the zonelist with an incremental min: each zone adds its ``pages_low`` (pass
        1) or ``pages_min`` (pass 2, a quarter of it for ``__GFP_HIGH``) before being tried."""
        min_ = 1 << order
        for z in zonelist:
            min_ += (z.pages_min >> 2 if gfp & GFP_HIGH_ else z.pages_min) if use_min else z.pages_low
            if z.free_pages > min_ or z.free_pages >= z.pages_high:
                pfn = self._buffered_rmqueue(z, order, gfp, cpu)
                if pfn >= 0:
                    if z is not zonelist[0]:
                        z.fallback_count += 1
                    return pfn
        return -1

    def _alloc_pages(self, gfp: int, order: int, cpu: int, memalloc: bool = False) -> int:
        """``__alloc_pages`` (Python would mangle the kernel's name): the 2.5.49 algorithm, returning
        a pfn or -1 (see the module docstring)."""
        zonelist = self.zonelist_of[gfp & 3]
        if order == 0:  # the common case, inlined: pass 1 on the first zone from a non-low pcp list
            z = zonelist[0]
            free = z.free_pages
            if free > z.pages_low + 1 or free >= z.pages_high:
                pcp = z.pageset[cpu][(gfp >> 8) & 1]  # __GFP_COLD is 0x100
                lst = pcp.list
                if len(lst) > pcp.low:
                    pfn = lst.pop()
                    acct = self.acct
                    acct.row[self.P_pcp] += 1
                    acct.ns += self.ns_pcp
                    self.mem_map.count[pfn] = 1
                    z.alloc_count += 1
                    return pfn
        pfn = self._zonelist_pass(zonelist, gfp, order, cpu, False)  # pass 1: incremental pages_low
        if pfn >= 0:
            return pfn
        self.events.append(("kswapd", gfp, order))
        rec = self.reclaim
        if rec is not None:
            rec.wakeup_kswapd()
        pfn = self._zonelist_pass(zonelist, gfp, order, cpu, True)  # pass 2: incremental pages_min
        if pfn >= 0:
            return pfn
        if memalloc or rec is not None and rec.running:  # PF_MEMALLOC / PF_MEMDIE: ignore the watermarks
            for z in zonelist:
                pfn = self._buffered_rmqueue(z, order, gfp, cpu)
                if pfn >= 0:
                    return pfn
            return -1  # a reclaimer never recurses into reclaim
        if not gfp & GFP_WAIT_:
            return -1
        if rec is not None:  # direct reclaim, then the zonelist once more (2.5.49's "rebalance")
            rec.oom_current = False
            for _ in range(OOM_RETRIES):
                rec.try_to_free_pages(zonelist, gfp, order)
                pfn = self._zonelist_pass(zonelist, gfp, order, cpu, True)
                if pfn >= 0:
                    return pfn
                if order > 3 or rec.oom_current:
                    break
        # 2.5 loops forever for order <= 3; mmframe reports the out-of-memory event and fails.
        self.events.append(("oom", gfp, order))
        return -1

    alloc_pages = _alloc_pages  # the public name (mmframe.facade.Allocator)

    def take_pcp(self, gfp: int, n: int, cpu: int) -> list[int]:
        """Up to ``n`` order-0 pages, the first pages ``n`` calls of ``_alloc_pages(gfp, 0, cpu)``
        would return, as long as each would come from the first zone's per-CPU list on pass 1
        (refilled from the buddy lists a batch at a time, as ``_buffered_rmqueue`` does); counted and
        charged as those calls would be.  Stops where a call would take another path (a watermark,
        an empty zone, fault injection): the caller makes that call itself.  O(pages + batches)."""
        if self.fault_inject is not None or n <= 0:
            return []
        z = self.zonelist_of[gfp & 3][0]
        pcp = z.pageset[cpu][(gfp >> 8) & 1]  # __GFP_COLD is 0x100
        lst, low = pcp.list, pcp.low
        out: list[int] = []
        need = n
        while need:
            free = z.free_pages
            if not (free > z.pages_low + 1 or free >= z.pages_high):
                break  # pass 1's watermark (1 + pages_low for the first zone) fails: the slow path's
            if len(lst) > low:
                k = min(need, len(lst) - low)
                got = lst[-k:]
                del lst[-k:]
                got.reverse()  # LIFO: the last freed first
                out += got
                need -= k
                continue
            self._rmqueue_bulk(z, pcp.batch, lst)  # _buffered_rmqueue: refill, then take one
            if not lst:
                break
            out.append(lst.pop())
            need -= 1
        k = len(out)
        if k:
            count = self.mem_map.count
            for pfn in out:
                count[pfn] = 1
            z.alloc_count += k
            acct = self.acct
            acct.row[self.P_pcp] += k
            acct.ns += k * self.ns_pcp
        return out

    def pass1_sure(self, needs: list[tuple[int, int]], cpu: int) -> bool:
        """Whether ``n`` more order-0 allocations of each ``(gfp, n)`` in ``needs`` (in any
        interleaving, on ``cpu``) would all be served on pass 1 by their zonelist's first zone:
        no fault injection, and each first zone keeps more than ``pages_low + 1`` free pages even
        after giving every page asked of it plus a per-CPU refill batch.  Such allocations wake no
        kswapd, run no reclaim and cannot fail, so a caller may defer other state changes across
        them (fork's batched copy).  O(len(needs))."""
        if self.fault_inject is not None:
            return False
        per_zone: dict[int, list] = {}
        for gfp, n in needs:
            z = self.zonelist_of[gfp & 3][0]
            pcp = z.pageset[cpu][(gfp >> 8) & 1]
            got = per_zone.setdefault(id(z), [z, 0, 0])
            got[1] += n
            got[2] += pcp.batch
        return all(z.free_pages - n - batch > z.pages_low + 1 for z, n, batch in per_zone.values())

    def free_pages(self, pfn: int, order: int, cpu: int, cold: bool = False) -> None:
        """``__free_pages`` after the last reference went: order 0 to the hot or cold list."""
        self.mem_map.count[pfn] = 0
        z = self.zone_of(pfn) if pfn < self.first_high_pfn else self.highmem
        if order == 0:
            pcp = z.pageset[cpu][1 if cold else 0]
            lst = pcp.list
            if len(lst) >= pcp.high:  # free_pages_bulk of a batch, oldest first
                drained, lst[:pcp.batch] = lst[:pcp.batch], []
                for p in drained:
                    self._free_block(z, p, 0)
            lst.append(pfn)
            acct = self.acct
            acct.row[self.P_pcp] += 1
            acct.ns += self.ns_pcp
        else:
            del self.blocks[pfn]
            self._free_block(z, pfn, order)

    def free_pages_bulk(self, pfns: list[int], cpu: int) -> None:
        """``free_pages(pfn, 0, cpu)`` for each of ``pfns`` in order (order-0 pages whose last
        reference went, to the hot lists): the same lists, buddy blocks and counts, charged once
        per run of one zone.  O(pages)."""
        count = self.mem_map.count
        first_high, i, n = self.first_high_pfn, 0, len(pfns)
        acct = self.acct
        while i < n:
            pfn = pfns[i]
            z = self.zone_of(pfn) if pfn < first_high else self.highmem
            lo, hi = z.start_pfn, z.end_pfn
            j = i + 1
            while j < n and lo <= pfns[j] < hi:
                j += 1
            pcp = z.pageset[cpu][0]
            lst, high, batch = pcp.list, pcp.high, pcp.batch
            while i < j:
                if len(lst) >= high:  # free_pages_bulk of a batch, oldest first
                    drained = lst[:batch]
                    del lst[:batch]
                    self._free_blocks0(z, drained)
                k = min(j - i, max(1, high - len(lst)))
                run = pfns[i:i + k]
                for p in run:
                    count[p] = 0
                lst += run
                i += k
        acct.row[self.P_pcp] += n
        acct.ns += n * self.ns_pcp

    def drain_pages(self) -> None:
        """Return every per-CPU page to the buddy lists (``drain_local_pages`` on every CPU)."""
        for z in self.zones:
            for pair in z.pageset:
                for pcp in pair:
                    for p in pcp.list:
                        self._free_block(z, p, 0)
                    pcp.list.clear()

    # --- accounting -----------------------------------------------------------------------
    def nr_free_pages(self) -> int:
        return sum(z.free_pages for z in self.zones)

    def check(self) -> None:
        """The allocator's checker: raise AssertionError unless, per zone, buddy free + per-CPU +
        allocated = present; free blocks are aligned, disjoint and hold no referenced page; no free
        block has its buddy of the same order free too (the invariant 2.5's ``free_area`` bitmaps
        encode: one bit per buddy pair, set while exactly one of the two is free); and the
        watermarks are free_area_init_core's, recomputed here from the zone's size."""
        count = self.mem_map.np("count")
        for z in self.zones:
            wmin = min(max(z.present_pages // 128, 20), 255)
            assert (z.pages_min, z.pages_low, z.pages_high) == (wmin, 2 * wmin, 3 * wmin), \
                f"{z.name}: watermarks {(z.pages_min, z.pages_low, z.pages_high)} for {z.present_pages} pages"
            for order in range(MAX_ORDER - 1):
                area = z.free_area[order]
                for pfn in area:
                    pair = z.start_pfn + ((pfn - z.start_pfn) ^ (1 << order))
                    assert pair not in area, f"{z.name}: buddies {pfn} and {pair} of order {order} both free"
            covered = np.zeros(z.present_pages, dtype=np.int8)
            free = 0
            for order, area in enumerate(z.free_area):
                for pfn in area:
                    rel = pfn - z.start_pfn
                    assert rel % (1 << order) == 0, f"{z.name}: block {pfn} not aligned to order {order}"
                    assert 0 <= rel and rel + (1 << order) <= z.present_pages, f"{z.name}: block {pfn} outside"
                    covered[rel:rel + (1 << order)] += 1
                    free += 1 << order
            assert free == z.free_pages, f"{z.name}: free_pages {z.free_pages} but lists hold {free}"
            for pair in z.pageset:
                for pcp in pair:
                    for pfn in pcp.list:
                        covered[pfn - z.start_pfn] += 1
            assert covered.max(initial=0) <= 1, f"{z.name}: a page is free twice"
            for head, order in self.blocks.items():  # tails of live higher-order allocations
                if z.start_pfn <= head < z.end_pfn:
                    covered[head - z.start_pfn + 1:head - z.start_pfn + (1 << order)] += 1
            assert covered.max(initial=0) <= 1, f"{z.name}: a page is both free and allocated"
            zc = count[z.start_pfn:z.end_pfn]
            assert not (zc[covered == 1] != 0).any(), f"{z.name}: a free page or tail has references"
            assert (zc[covered == 0] > 0).all(), f"{z.name}: a page is neither free nor referenced (leak)"


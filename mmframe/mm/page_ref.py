"""Page references of user pages: a zeroed user page (``clear_user_highpage``), ``put_page``,
``release_pages`` (mm/swap.c) for many at once, and ``get_user_pages``-style pins."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmframe.mm import content
from mmframe.mm.page import GFP_HIGHUSER, PAGE_SHIFT, PG_active, PG_lru, PG_referenced, PG_reserved
from mmframe.mm.pgtable import PTE_PRESENT_MASK

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.mm_struct import MMStruct

_RESERVED = 1 << PG_reserved
_LRU, _ACTIVE, _REF = 1 << PG_lru, 1 << PG_active, 1 << PG_referenced


class PageRefs:
    """Part of :class:`~mmframe.mm.memory.Memory`: taking and dropping references on user pages."""

    __slots__ = ()

    def alloc_user_page(self) -> int:
        """A zeroed GFP_HIGHUSER page (clear_user_highpage), or -1."""
        pfn = self.m.alloc_pages(GFP_HIGHUSER, 0)
        if pfn >= 0:
            acct = self.acct
            row = acct.row
            row[self.P_clear] += 1
            if pfn >= self.first_high:
                row[self.P_kmap] += 1
                acct.ns += self.ns_clear_kmap
            else:
                acct.ns += self.ns_clear
            self.tag[pfn] = 0
            self.lru_cache_add(pfn)
        return pfn

    def alloc_user_run(self, n: int) -> list[int]:
        """Up to ``n`` pages as :meth:`alloc_user_page` would give them, only while they come off
        a per-CPU list (no watermark, kswapd or reclaim on the way), so a caller may set each up
        after the whole run and still leave what one call at a time would; [] when the next page
        takes another path (the caller makes that call itself) or the allocation hook is a plugin's."""
        if not self.m.core_alloc:
            return []
        run = self.pa.take_pcp(GFP_HIGHUSER, n, self.m.current_cpu())
        if run:
            self._user_run(run)
        return run

    def _user_run(self, run: list[int]) -> None:
        """clear_user_highpage and lru_cache_add of each page of a per-CPU run."""
        k = len(run)
        acct = self.acct
        acct.charge(self.P_clear, k)
        if run[0] >= self.first_high:  # one zone's list: all high or none
            acct.charge(self.P_kmap, k)
        tag = self.tag
        for pfn in run:
            tag[pfn] = 0
        self.lru_cache_add_run(run)

    def alloc_user_pages(self, n: int) -> list[int]:
        """``n`` calls of :meth:`alloc_user_page` in one: the same pages in the same order, the
        same state and counts; stops at the first failure (fewer pages returned).  Runs the
        per-CPU lists hand out are taken a run at a time (``PageAllocator.take_pcp``) when the
        allocation hook is the core's alone; every other page takes the single path."""
        m = self.m
        if not m.core_alloc:
            out = []
            for _ in range(n):
                pfn = self.alloc_user_page()
                if pfn < 0:
                    break
                out.append(pfn)
            return out
        pa, cpu = self.pa, m.current_cpu()
        out = []
        while len(out) < n:
            run = pa.take_pcp(GFP_HIGHUSER, n - len(out), cpu)
            if not run:
                pfn = self.alloc_user_page()  # another path: watermarks, kswapd, reclaim, injection
                if pfn < 0:
                    break
                out.append(pfn)
                continue
            self._user_run(run)
            out += run
        return out

    def lru_cache_add_run(self, pfns: list[int]) -> None:
        """``lru_cache_add`` of each page of ``pfns`` in order, pages of one zone (a per-CPU run)."""
        vs = self.vmscan
        bulk = getattr(vs, "lru_cache_add_bulk", None)
        if bulk is not None:
            bulk(pfns)
            return
        flags = self.flags
        for pfn in pfns:
            flags[pfn] = (flags[pfn] | _LRU) & ~(_ACTIVE | _REF)
        vs.inactive[vs.zone_idx(pfns[0])].update(dict.fromkeys(pfns))
        self.acct.charge(vs.P_lru, len(pfns))

    def page_count(self, pfn: int) -> int:
        """``page_count``: the page's references (mappings, page cache, pins)."""
        return self.count[pfn]

    def page_reserved(self, pfn: int) -> bool:
        """``PageReserved`` (the ZERO_PAGE and the kernel image)."""
        return bool(self.flags[pfn] & _RESERVED)

    def put_page(self, pfn: int) -> None:
        c = self.count[pfn] - 1
        self.count[pfn] = c
        self.acct.charge(self.P_ref)
        if c == 0:
            if self.zero_tail or self.fine:
                content.forget(self, pfn)
            if self.flags[pfn] & _LRU:
                self.vmscan.lru_del(pfn)
            self.m.free_pages(pfn, 0)

    def release_pages(self, pfns: np.ndarray) -> None:
        """``put_page`` on each, in order, freeing those whose last reference went.  When the free
        hook is the core's alone, the freed pages leave the LRU and go to the allocator a run at a
        time (``lru_del_run``, ``PageAllocator.free_pages_bulk``): the same lists, counts and order
        as one ``put_page`` each.  O(pages)."""
        self.acct.charge(self.P_ref, len(pfns))
        count = self.count_np
        unique = len(pfns) < 2 or bool((np.diff(np.sort(pfns)) != 0).all())
        if unique:
            count[pfns] -= 1
        else:
            np.subtract.at(count, pfns, 1)
        gone = pfns[count[pfns] == 0]
        if not len(gone):
            return
        if not unique:
            _, first = np.unique(gone, return_index=True)
            gone = gone[np.sort(first)]
        marks = bool(self.zero_tail or self.fine)
        if not self.m.core_free:
            free, flags = self.m.free_pages, self.flags
            for pfn in gone.tolist():
                if marks:
                    content.forget(self, pfn)
                if flags[pfn] & _LRU:
                    self.vmscan.lru_del(pfn)
                free(pfn, 0)
            return
        order = gone.tolist()
        if marks:
            for pfn in order:
                content.forget(self, pfn)
        on_lru = gone[(self.flags_np[gone] & _LRU) != 0].tolist()
        if on_lru:
            self.lru_del_run(on_lru)
        self.pa.free_pages_bulk(order, self.m.current_cpu())

    def lru_del_run(self, pfns: list[int]) -> None:
        """``del_page_from_lru`` of each page of ``pfns`` (all on an LRU list), in order."""
        vs = self.vmscan
        bulk = getattr(vs, "lru_del_bulk", None)
        if bulk is not None:
            bulk(pfns)
            return
        flags, zone_idx, active, inactive = self.flags, vs.zone_idx, vs.active, vs.inactive
        for pfn in pfns:
            f = flags[pfn]
            del (active if f & _ACTIVE else inactive)[zone_idx(pfn)][pfn]
            flags[pfn] = f & ~(_LRU | _ACTIVE | _REF)
        self.acct.charge(vs.P_lru, len(pfns))

    def pin(self, mm: MMStruct, addr: int) -> int:
        """Take a reference on the page mapped at ``addr`` (as get_user_pages for direct I/O does);
        the pfn, or -1 if nothing is mapped there.  A pinned page is copied, not reused, on COW."""
        pt = mm.ptp[addr >> self.sh]
        if pt is None:
            return -1
        pte = pt.ptes[(addr >> PAGE_SHIFT) & self.mask]
        if not pte & PTE_PRESENT_MASK or self.flags[pte >> PAGE_SHIFT] & _RESERVED:
            return -1
        pfn = pte >> PAGE_SHIFT
        self.count[pfn] += 1
        self.pins[pfn] = self.pins.get(pfn, 0) + 1
        self.acct.charge(self.P_ref)
        return pfn

    def unpin(self, pfn: int) -> None:
        n = self.pins[pfn] - 1
        if n:
            self.pins[pfn] = n
        else:
            del self.pins[pfn]
        self.put_page(pfn)

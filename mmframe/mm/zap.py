"""``zap_page_range`` (2.5.49 mm/memory.c): clear the PTEs of a range through the choke point,
dropping rmap entries and page references, a PTE page at a time (bulk on numpy views for
``BULK_MIN`` entries or more, charging what the single path would)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmframe.mm import content, filemap, pgtable, pte_change
from mmframe.mm.filemap import _CACHE
from mmframe.mm.page import PAGE_SHIFT, PG_lru, PG_reserved
from mmframe.mm.pgtable import _PAGE_DIRTY, PTE_PRESENT_MASK, PtePage
from mmframe.mm.pte_change import ZAP

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.mm_struct import MMStruct

_RESERVED = 1 << PG_reserved
_LRU = 1 << PG_lru


class Zap:
    """Part of :class:`~mmframe.mm.memory.Memory`: clearing PTEs."""

    __slots__ = ()

    def exit_zap_batch(self, mm: MMStruct) -> bool:
        """``exit_mmap``'s loop (each populated PMD slot through the choke point as ``exit``,
        :meth:`zap_pte_range` of the whole PTE page, ``pmd_drop``) over every PTE page of ``mm``
        in one numpy pass (host time only): the same entries cleared, dirty bits carried, rmap
        entries freed in the same order with the same links, pte_chain objects, references, LRU
        and page frees in the same order (each PTE page's pte_chain slab pages, then its pages
        whose last reference went, then the PTE page itself), choke-point counts and charges.
        Taken only where that is certain before anything changes, else False (nothing done): no
        ``mmframe_pte_change`` policy, the core's free path, no swap entry possible, every PTE
        page this mm's alone, no page mapped twice among the entries.  Frees allocate nothing, so
        no reclaim can run in between.  O(entries) numpy plus O(PTE pages) Python."""
        slots = [(idx, pt) for idx, pt in enumerate(mm.ptp) if pt is not None]
        npt = len(slots)
        m = self.m
        if npt < 2 or self._pte_hook is not None or self.swap.inuse or not m.core_free:
            return False
        count = self.count
        if any(count[pt.pfn] != 1 for _, pt in slots):
            return False
        P = self.geo.ptrs_per_pte
        S = np.concatenate([pt.np() for _, pt in slots])
        t = S.dtype.type
        pres = np.flatnonzero((S & t(PTE_PRESENT_MASK)) != 0)
        old = S[pres]
        pfns = (old >> t(PAGE_SHIFT)).astype(np.int64)
        fl = self.flags_np[pfns]
        dirty = pfns[((old & t(_PAGE_DIRTY)) != 0) & ((fl & _CACHE) != 0)]
        real = (fl & _RESERVED) == 0
        rp = pfns[real]
        rpos = pres[real]
        rmap = self.rmap
        if not rmap.distinct(rp):
            return False
        R = np.concatenate([pt.np_rid() for _, pt in slots])
        ids = R[rpos]
        bounds = np.searchsorted(rpos, np.arange(npt + 1, dtype=np.int64) * P)
        acct = self.acct
        # through the choke point (no policy: counted, and mapped with HIGHPTE), then cleared
        self.pte_changes[pte_change.EXIT] += npt
        high = sum(pt.high for _, pt in slots)
        if high:
            acct.charge(self.P_kmap, high)
        for _, pt in slots:
            pt.np()[:] = 0
            pt.np_rid()[:] = -1
        acct.charge(self.P_pte_clear, len(pres))
        for pfn in dirty.tolist():
            filemap.set_page_dirty(self, pfn)
        deltas = rmap.remove_distinct(rp, ids, bounds)
        cnt = self.count_np
        cnt[rp] -= 1
        acct.charge(self.P_ref, len(rp))
        gone = cnt[rp] == 0
        gone_at = np.flatnonzero(gone)
        gone_pfns = rp[gone_at]
        if len(gone_pfns):
            if self.zero_tail or self.fine:
                for pfn in gone_pfns.tolist():
                    content.forget(self, pfn)
            on_lru = gone_pfns[(self.flags_np[gone_pfns] & _LRU) != 0].tolist()
            if on_lru:
                self.lru_del_run(on_lru)
        gbounds = np.searchsorted(gone_at, bounds).tolist()
        gone_list = gone_pfns.tolist()
        free = self.pa.free_pages_bulk
        cpu = m.current_cpu()
        b = bounds.tolist()
        for j, (idx, pt) in enumerate(slots):
            pt.rss -= b[j + 1] - b[j]
            if deltas[j]:
                rmap._chains_delta(deltas[j])
            self._pmd_clear(mm, idx, pt)  # pmd_drop's last reference (count 1): the PTE page goes too
            free(gone_list[gbounds[j]:gbounds[j + 1]] + [pt.pfn], cpu)
        return True

    def zap_page_range(self, mm: MMStruct, start: int, end: int, reason: int = ZAP) -> None:
        """``zap_page_range``: clear the PTEs of ``[start, end)`` through the choke point."""
        for idx, i0, i1 in self.pmd_slots(mm, start, end):
            pt = self.pte_change(mm, idx, reason, i0, i1)
            if pt is not None:
                self.zap_pte_range(pt, i0, i1)

    def zap_pte_range(self, pt: PtePage, i0: int, i1: int) -> None:
        """Clear entries ``[i0, i1)`` of one PTE page: drop rmap entries and page references."""
        if i1 - i0 < pgtable.BULK_MIN:
            ptes, flags, acct = pt.ptes, self.flags, self.acct
            for i in range(i0, i1):
                pte = ptes[i]
                if not pte & PTE_PRESENT_MASK:
                    if pte:  # a swap entry: free_swap_and_cache
                        ptes[i] = 0
                        acct.charge(self.P_pte_clear)
                        self.swap.free_swap_and_cache(pte)
                    continue
                ptes[i] = 0
                acct.charge(self.P_pte_clear)
                pfn = pte >> PAGE_SHIFT
                if flags[pfn] & _RESERVED:
                    continue
                if pte & _PAGE_DIRTY and flags[pfn] & _CACHE:
                    filemap.set_page_dirty(self, pfn)
                self.rmap.page_remove_rmap(pfn, pt, i)
                pt.rss -= 1
                self.put_page(pfn)
            return
        v = pt.np()[i0:i1]
        if self.swap.inuse:
            sw = np.flatnonzero((v != 0) & ((v & PTE_PRESENT_MASK) == 0))
            if len(sw):  # swap entries: free_swap_and_cache each, in order
                entries = v[sw].astype(np.int64).tolist()
                v[sw] = 0
                self.acct.charge(self.P_pte_clear, len(sw))
                for e in entries:
                    self.swap.free_swap_and_cache(e)
        pres = np.flatnonzero(v & PTE_PRESENT_MASK)
        if not len(pres):
            return
        old = v[pres]
        pfns = (old >> PAGE_SHIFT).astype(np.int64)
        v[pres] = 0
        self.acct.charge(self.P_pte_clear, len(pres))
        dirty = pfns[((old & _PAGE_DIRTY) != 0) & ((self.flags_np[pfns] & _CACHE) != 0)]
        for pfn in dirty.tolist():
            filemap.set_page_dirty(self, pfn)
        real = (self.flags_np[pfns] & _RESERVED) == 0
        rp = pfns[real]
        if not len(rp):
            return
        self.rmap.page_remove_rmap_bulk(rp, pt, pres[real] + i0)
        pt.rss -= len(rp)
        self.release_pages(rp)

"""``zap_page_range`` (2.5.49 mm/memory.c): clear the PTEs of a range through the choke point,
dropping rmap entries and page references, a PTE page at a time (bulk on numpy views for
``BULK_MIN`` entries or more, charging what the single path would)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmframe.mm import filemap, pgtable
from mmframe.mm.filemap import _CACHE
from mmframe.mm.page import PAGE_SHIFT, PG_reserved
from mmframe.mm.pgtable import _PAGE_DIRTY, PTE_PRESENT_MASK, PtePage
from mmframe.mm.pte_change import ZAP

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.mm_struct import MMStruct

_RESERVED = 1 << PG_reserved


class Zap:
    """Part of :class:`~mmframe.mm.memory.Memory`: clearing PTEs."""

    __slots__ = ()

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

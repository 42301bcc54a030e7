"""Page references of user pages: a zeroed user page (``clear_user_highpage``), ``put_page``,
``release_pages`` (mm/swap.c) for many at once, and ``get_user_pages``-style pins."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmframe.mm import content
from mmframe.mm.page import GFP_HIGHUSER, PAGE_SHIFT, PG_lru, PG_reserved
from mmframe.mm.pgtable import PTE_PRESENT_MASK

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.mm_struct import MMStruct

_RESERVED = 1 << PG_reserved
_LRU = 1 << PG_lru


class PageRefs:
    """Part of :class:`~mmframe.mm.memory.Memory`: taking and dropping references on user pages."""

    __slots__ = ()

    def alloc_user_page(self) -> int:
        """A zeroed GFP_HIGHUSER page (clear_user_highpage), or -1."""
        pfn = self.m.alloc_pages(GFP_HIGHUSER, 0)
        if pfn >= 0:
            self.acct.charge(self.P_clear)
            if pfn >= self.first_high:
                self.acct.charge(self.P_kmap)
            self.tag[pfn] = 0
            self.lru_cache_add(pfn)
        return pfn

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
        """``put_page`` on each, in order, freeing those whose last reference went."""
        self.acct.charge(self.P_ref, len(pfns))
        count = self.count_np
        np.subtract.at(count, pfns, 1)
        gone = pfns[count[pfns] == 0]
        if len(gone):
            free, seen, flags = self.m.free_pages, set(), self.flags
            marks = bool(self.zero_tail or self.fine)
            for pfn in gone.tolist():
                if pfn not in seen:
                    seen.add(pfn)
                    if marks:
                        content.forget(self, pfn)
                    if flags[pfn] & _LRU:
                        self.vmscan.lru_del(pfn)
                    free(pfn, 0)

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

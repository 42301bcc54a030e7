"""The PMD level and the sharing mechanism's primitives, in one place: allocate a PTE page
(``pte_alloc_map``), share one between mms (``pmd_share``, the owners' ``mm_chain``), write-protect
or re-enable a PMD entry, drop a reference (``pmd_drop``, freeing the last), unshare (the 2002
patch's ``pte_unshare``), and walk the populated slots under a range.  Policies reach these through
:mod:`mmframe.facade`; the cost each charges is listed there."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmframe.mm import filemap
from mmframe.mm.filemap import _CACHE
from mmframe.mm.fork import copy_pte_range
from mmframe.mm.page import GFP_KERNEL, PAGE_SHIFT, __GFP_HIGHMEM
from mmframe.mm.pgtable import _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_RW, _PAGE_TABLE, PROT_BITS, PTE_PRESENT_MASK, PtePage
from mmframe.mm.pte_change import EXIT, UNSHARE

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.mm_struct import MMStruct
    from mmframe.mm.vma import VMA

GFP_PTE_HIGH = GFP_KERNEL | __GFP_HIGHMEM  # pte_alloc_one with CONFIG_HIGHPTE (no mangling here)


class PmdOps:
    """Part of :class:`~mmframe.mm.memory.Memory`: PTE pages, PMD entries and sharing them."""

    __slots__ = ()

    def pte_alloc(self, mm: MMStruct, idx: int) -> PtePage | None:
        """``pte_alloc_map``: a zeroed PTE page (highmem with HIGHPTE) installed writable in slot
        ``idx``; None when no page could be had."""
        m = self.m
        gfp = GFP_PTE_HIGH if self.highpte else GFP_KERNEL
        if m.reserving:  # a reservation site (docs/reserve.md): atomic under page_table_lock
            pfn = m.alloc_pages(m.reserve_enter("pte_alloc_map", gfp, 1), 0)
            m.reserve_exit("pte_alloc_map", 1)
        else:
            pfn = m.alloc_pages(gfp, 0)
        if pfn < 0:
            return None
        high = pfn >= self.first_high
        self.acct.charge(self.P_clear)
        if high:
            self.acct.charge(self.P_kmap)
        self.pa.page_table_pages += 1
        pt = PtePage(pfn, self.geo, idx, high)
        pt.owners.append(mm)
        self.ptpages[pfn] = pt
        mm.ptp[idx] = pt
        mm.pmd[idx] = (pfn << PAGE_SHIFT) | _PAGE_TABLE
        return pt

    def pmd_share(self, src: MMStruct, dst: MMStruct, idx: int, writable: bool) -> None:
        """Point ``dst``'s slot ``idx`` at ``src``'s PTE page: one more reference and owner."""
        pt = src.ptp[idx]
        assert pt is not None and dst.ptp[idx] is None
        self.count[pt.pfn] += 1
        self._owner_add(pt, dst)
        dst.ptp[idx] = pt
        dst.pmd[idx] = (pt.pfn << PAGE_SHIFT) | (_PAGE_TABLE if writable else _PAGE_TABLE & ~_PAGE_RW)
        self.acct.charge(self.P_ref)
        self.acct.charge(self.P_pte_set)
        self.pte_page_lock()

    def _owner_add(self, pt: PtePage, mm: MMStruct) -> None:
        """A further owner: the patch's mm_chain takes a node per owner once there are two (a
        single owner is held directly, as PageDirect does for pte_chains)."""
        n = len(pt.owners)
        pt.owners.append(mm)
        nodes = 2 if n == 1 else 1 if n > 1 else 0
        if nodes:
            if self.c_mm_chain.alloc(GFP_KERNEL, nodes) < 0:  # lowmem gone: record it, as for pte_chains
                self.pa.events.append(("oops", "mm_chain_alloc", nodes))
                self.c_mm_chain.objects += nodes
            self.acct.charge(self.P_mmc_alloc, nodes)

    def _owner_remove(self, pt: PtePage, mm: MMStruct) -> None:
        n = len(pt.owners)
        pt.owners.remove(mm)
        nodes = 2 if n == 2 else 1 if n > 2 else 0
        if nodes:
            self.c_mm_chain.free(0, nodes)
            self.acct.charge(self.P_mmc_free, nodes)

    def rss_walk(self, pt: PtePage, n: int = 1) -> None:
        """``increment_rss``: a change of a shared PTE page's resident count visits every sharer."""
        sharers = self.count[pt.pfn]
        if sharers > 1:
            self.acct.charge(self.P_mmc_visit, sharers * n)

    def pmd_set_writable(self, mm: MMStruct, idx: int, writable: bool) -> None:
        """``pmd_mkwrite`` / ``pmd_wrprotect``; flushing the TLB is the caller's business."""
        e = mm.pmd[idx]
        mm.pmd[idx] = e | _PAGE_RW if writable else e & ~_PAGE_RW
        self.acct.charge(self.P_pte_set)

    def pmd_writable(self, mm: MMStruct, idx: int) -> bool:
        return bool(mm.pmd[idx] & _PAGE_RW)

    def pmd_drop(self, mm: MMStruct, idx: int) -> None:
        """Clear ``mm``'s slot ``idx`` and drop its reference on the PTE page; the last owner's
        drop zaps what is left in it and frees it (``pte_free``).  A shared table's dirty bits are
        its first owner's (the others' views were made clean when they got it, as fork's copy
        is), so that owner's drop carries them to the pages, as its zap would have."""
        pt = mm.ptp[idx]
        assert pt is not None
        if self.count[pt.pfn] > 1:  # dereferencing a shared table: under its lock (unmap_all_pages, zap_pmd_range)
            self.pte_page_lock()
        if len(pt.owners) > 1 and pt.owners[0] is mm:
            self._clear_dirty(mm, idx, pt, to_pages=True)
        elif len(pt.owners) == 1 and any(pt.ptes):  # the last owner: its writes pass the choke point
            if self.pte_change(mm, idx, EXIT, 0, len(pt.ptes)) is pt:
                self.zap_pte_range(pt, 0, len(pt.ptes))
        if self._pmd_clear(mm, idx, pt):
            assert not any(pt.ptes), f"PTE page {pt.pfn} freed with entries left"
            self.m.free_pages(pt.pfn, 0)

    def _pmd_clear(self, mm: MMStruct, idx: int, pt: PtePage) -> bool:
        """Clear ``mm``'s slot ``idx`` and drop its reference on ``pt``; True when that was the last
        one and the caller frees the page (``pte_free``; exit's batch frees it with others)."""
        mm.ptp[idx] = None
        mm.pmd[idx] = 0
        self._owner_remove(pt, mm)
        c = self.count[pt.pfn] - 1
        self.acct.charge(self.P_ref)
        if c:
            self.count[pt.pfn] = c
            return False
        del self.ptpages[pt.pfn]
        self.pa.page_table_pages -= 1
        return True

    def _clear_dirty(self, mm: MMStruct, idx: int, pt: PtePage, to_pages: bool) -> None:
        """Clear the dirty bits of a table's file pages, a write by ``mm`` (an owner of ``pt`` in
        slot ``idx``) through the choke point as ``exit`` (pmd_drop) or ``unshare``; ``to_pages``
        carries them to the pages (``set_page_dirty``), else their owner has taken them to its copy."""
        v = pt.np()
        hit = np.flatnonzero(((v & PTE_PRESENT_MASK) != 0) & ((v & _PAGE_DIRTY) != 0))
        pfns = (v[hit] >> PAGE_SHIFT).astype(np.int64)
        cached = (self.flags_np[pfns] & _CACHE) != 0
        hit, pfns = hit[cached], pfns[cached]
        if not len(hit):
            return
        if self.pte_change(mm, idx, EXIT if to_pages else UNSHARE, 0, len(v)) is not pt:
            return  # the policy did the change itself
        v[hit] &= v.dtype.type(~_PAGE_DIRTY & (2 ** (8 * v.itemsize) - 1))
        self.acct.charge(self.P_pte_set, len(hit))
        if to_pages:
            for pfn in pfns.tolist():
                filemap.set_page_dirty(self, pfn)

    def pte_page_lock(self, n: int = 1) -> None:
        """The 2002 patch's ``pte_page_lock``/``pte_page_unlock`` (the PTE page's PG_chainlock bit
        spinlock) taken and released ``n`` times: charges ``pte_page_lock``.  Never contended under
        the deterministic schedule, so only its cost is modelled."""
        self.acct.charge(self.m.P.pte_page_lock, n)

    def i_mmap_visit(self, n: int = 1) -> None:
        """``n`` steps of a walk of an object's mappings (``pte_try_to_share``'s ``i_mmap_shared``
        list, the 2005 design's ``i_mmap`` tree): charges ``i_mmap_visit``."""
        self.acct.charge(self.m.P.i_mmap_visit, n)

    def sharers(self, pt: PtePage) -> int:
        """How many mms use this PTE page (its page count)."""
        return self.count[pt.pfn]

    def ptes_follow_vma(self, mm: MMStruct, idx: int, vma: VMA) -> bool:
        """Every present entry of ``mm``'s PTE page ``idx`` carries ``vma.page_prot`` (accessed and
        dirty aside; the write bit too for a copy-on-write mapping): mprotect at the PMD level is
        then exact.  The 2002 patch flipped the PMD without this test, so a table whose entries
        were PROT_NONE stayed unreadable after mprotect(PROT_READ) (docs/pt_shared.md).  Free:
        a kernel compares the old and new ``vm_page_prot``; here the entries are the record."""
        v = mm.ptp[idx].np()
        ign = _PAGE_ACCESSED | _PAGE_DIRTY | (_PAGE_RW if vma.cow else 0)
        mask = v.dtype.type(PROT_BITS & ~ign)
        pres = v[(v & PTE_PRESENT_MASK) != 0]
        return bool(((pres & mask) == (vma.page_prot & mask)).all())

    def flush_tlb_mm(self, mm: MMStruct) -> None:
        self.m.tlb.flush_tlb_mm(mm, self._cpu())

    def unshare(self, mm: MMStruct, idx: int) -> PtePage | None:
        """Give ``mm`` a private copy of the shared PTE page in slot ``idx`` (the 2002 patch's
        ``pte_unshare``): a new PTE page with every present entry copied, page references and
        rmap entries for each; copy-on-write entries write-protected in the copy and in the source
        (the 2002 patch did the source only when one sharer remained, which a later exit of another
        sharer makes unsafe); the PMD made writable; the mm's TLB flushed.  With a count of one only
        the PMD is made writable.  None if no page could be had."""
        self.pte_changes[UNSHARE] += 1
        old = mm.ptp[idx]
        assert old is not None
        if self.count[old.pfn] == 1:
            self.pte_page_lock()  # the caller's lock on the table
            self.pmd_set_writable(mm, idx, True)
            self.flush_tlb_mm(mm)
            return old
        # the old table locked by the caller, dropped around pte_alloc_one and taken again, the new one locked
        self.pte_page_lock(3)
        new = self.pte_alloc(mm, idx)  # on success it replaces the slot's PMD entry
        if new is None:
            return None
        first = old.owners[0] is mm  # the owner of the table's dirty bits takes them along
        self._owner_remove(old, mm)
        self.count[old.pfn] -= 1
        self.acct.charge(self.P_ref)
        copy_pte_range(self, mm, old, new, idx, wrprotect_src=True, src_owner=old.owners[0],
                       reason=UNSHARE, keep_dirty=first)
        if first:
            self._clear_dirty(old.owners[0], idx, old, to_pages=False)
        self.flush_tlb_mm(mm)
        return new

    def pmd_slots(self, mm: MMStruct, start: int, end: int):
        """The populated PMD slots under ``[start, end)``, each as ``(idx, first, end)`` entries."""
        sh = self.sh
        for idx in range(start >> sh, ((end - 1) >> sh) + 1):
            if mm.ptp[idx] is not None:
                base = idx << sh
                yield idx, (max(start, base) - base) >> PAGE_SHIFT, (min(end, base + (1 << sh)) - base) >> PAGE_SHIFT

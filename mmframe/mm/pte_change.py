"""The choke point: every write to a PTE page starts at :meth:`PteChoke.pte_change`, which names
its reason and calls the ``mmframe_pte_change`` policy hook (a sharing policy unshares there, or
does a whole-page change at the PMD level)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.mm_struct import MMStruct
    from mmframe.mm.pgtable import PtePage

#: Why a PTE page is being written (the choke point's reason argument; the hook receives the name).
#: ``swap_out`` is try_to_unmap clearing a PTE (a swap entry left for a swap-cache page);
#: ``referenced`` (contract 1.10) is page_referenced clearing an accessed bit; ``swap_in`` (1.10) is
#: do_swap_page mapping a page read back from swap (a fault); ``mremap`` (1.12) is move_page_tables
#: clearing an entry in the old range and setting it in the new.
REASONS = ("fault", "cow", "zap", "mprotect", "exit", "fork", "mmap", "swap_out", "walker", "unshare", "msync",
           "referenced", "swap_in", "mremap")
(FAULT, COW, ZAP, MPROTECT, EXIT, FORK, MMAP, SWAP_OUT, WALKER, UNSHARE, MSYNC,
 REFERENCED, SWAP_IN, MREMAP) = range(len(REASONS))


class PteChoke:
    """Part of :class:`~mmframe.mm.memory.Memory`: the choke point every PTE write passes."""

    __slots__ = ()

    def pte_change(self, mm: MMStruct, idx: int, reason: int, start: int, end: int) -> PtePage | None:
        """Every write to a PTE page starts here: count the reason, let the policy act (unshare,
        or do the change at the PMD level and return True), map the page (``kmap_atomic`` with
        HIGHPTE).  Returns the PTE page to write, or None when the policy did the change."""
        self.pte_changes[reason] += 1
        pt = mm.ptp[idx]
        # the policy's hook, for the reasons its scope names (contract 1.15): bit ``reason`` of
        # _pte_scope on any table, of _pte_shared on a shared one (-1: every reason), _pte_any their
        # union (0: no hook, or no reason the policy could act on)
        if self._pte_any >> reason & 1 and (self._pte_scope >> reason & 1 or pt is not None
                                            and self.count[pt.pfn] > 1 and self._pte_shared >> reason & 1):
            if self._pte_hook(self, mm, idx, REASONS[reason], start, end):
                return None
            pt = mm.ptp[idx]  # (the policy may have unshared it)
        if pt is not None and pt.high:
            self.acct.charge(self.P_kmap)
        return pt

    def mapping_changed(self, mm: MMStruct, start: int, end: int) -> None:
        """A VMA now covers ``[start, end)`` differently (mmap, brk, stack growth): a change to
        the PTE pages there, through the choke point (a sharing policy unshares them)."""
        if self._pte_hook is None:
            return
        for idx, i0, i1 in self.pmd_slots(mm, start, end):
            self.pte_change(mm, idx, MMAP, i0, i1)

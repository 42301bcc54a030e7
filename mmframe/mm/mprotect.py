"""mprotect's PTE pass (2.5.49 mm/mprotect.c ``change_protection``/``change_pte_range``):
``pte_modify`` every present entry of a range through the choke point.  The system call itself
(VMA splitting and flags) is in :mod:`mmframe.mm.mmap`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmframe.mm import pgtable
from mmframe.mm.pgtable import _PAGE_ACCESSED, _PAGE_DIRTY, PTE_PRESENT_MASK
from mmframe.mm.pte_change import MPROTECT

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.mm_struct import MMStruct

_PTE_CHG_MASK = ~0xFFF | _PAGE_ACCESSED | _PAGE_DIRTY  # pte_modify keeps pfn, accessed, dirty


class Mprotect:
    """Part of :class:`~mmframe.mm.memory.Memory`: changing the protection of PTEs."""

    __slots__ = ()

    def change_protection(self, mm: MMStruct, start: int, end: int, prot: int) -> None:
        """mprotect's ``change_pte_range`` over ``[start, end)``: ``pte_modify`` every present entry."""
        for idx, i0, i1 in self.pmd_slots(mm, start, end):
            pt = self.pte_change(mm, idx, MPROTECT, i0, i1)
            if pt is None:
                continue
            if i1 - i0 < pgtable.BULK_MIN:
                ptes = pt.ptes
                for i in range(i0, i1):
                    pte = ptes[i]
                    if pte & PTE_PRESENT_MASK:
                        ptes[i] = (pte & _PTE_CHG_MASK) | prot
                        self.acct.charge(self.P_pte_set)
                continue
            v = pt.np()[i0:i1]
            pres = np.flatnonzero(v & PTE_PRESENT_MASK)
            if len(pres):
                v[pres] = (v[pres] & v.dtype.type(_PTE_CHG_MASK & (2 ** (8 * v.itemsize) - 1))) | v.dtype.type(prot)
                self.acct.charge(self.P_pte_set, len(pres))

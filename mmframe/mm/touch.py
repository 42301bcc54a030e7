"""``touch``: an access to every page of a range, bulk where it can be: entries with nothing mapped
are filled a PTE page at a time on numpy views, charging exactly what one fault per entry would
(``BULK_MIN`` in :mod:`mmframe.mm.pgtable`; tests run both paths and compare), a scoped policy's
``fault_cost`` included (contract 1.15: once per run, for the run's count of faults)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmframe.mm import pgtable
from mmframe.mm.fault import ZERO_PFN, Killed
from mmframe.mm.filemap import NOPAGE_OOM, NOPAGE_SIGBUS
from mmframe.mm.page import PAGE_SHIFT, PAGE_SIZE
from mmframe.mm.pgtable import _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, PAGE_READONLY, PTE_PRESENT_MASK, TASK_SIZE
from mmframe.mm.pte_change import FAULT
from mmframe.mm.vma import VM_EXEC, VM_READ, VM_SHARED, VM_WRITE, VMA
from mmframe.usr import BUS_ADRERR, EINVAL, SIGBUS, SIGKILL, SimSignal

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.mm_struct import MMStruct
    from mmframe.sched import Task


class Touch:
    """Part of :class:`~mmframe.mm.memory.Memory`: the ``touch`` call."""

    __slots__ = ()

    def sys_touch(self, task: Task, start: int, length: int, write: bool = False) -> int:
        if length < 0:
            return -EINVAL
        mm = task.mm
        addr, end = start & ~(PAGE_SIZE - 1), start + length
        while addr < end:
            vma = mm.vmas.find(addr) if 0 <= addr < TASK_SIZE else None
            if vma is None or vma.start > addr or not vma.flags & (VM_WRITE if write else VM_READ | VM_EXEC):
                self.do_page_fault(task, addr, write)  # raises the signal, or grows the stack
                continue
            idx = addr >> self.sh
            run_end = min(end, vma.end, (idx + 1) << self.sh)
            self._touch_run(task, mm, vma, idx, addr, run_end, write)
            addr = (run_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        return 0

    def _touch_run(self, task: Task, mm: MMStruct, vma: VMA, idx: int, lo: int, hi: int, write: bool) -> None:
        """Access every page of ``[lo, hi)`` (one VMA, one PMD slot): a fault where the hardware
        would take one; entries with nothing mapped are filled a PTE page at a time."""
        base = idx << self.sh
        i0, i1 = (lo - base) >> PAGE_SHIFT, (hi - base + PAGE_SIZE - 1) >> PAGE_SHIFT
        if write and mm.ptp[idx] is not None and not mm.pmd[idx] & _PAGE_RW:
            self.do_page_fault(task, lo, True)  # a write-protected PMD: the policy's business
        pt = mm.ptp[idx]
        if pt is None:
            need = np.arange(i0, i1)
            empty = need
        else:
            seg = pt.np()[i0:i1]
            bad = (seg & _PAGE_PRESENT) == 0
            if write:
                bad |= (seg & _PAGE_RW) == 0
                seg[~bad] |= _PAGE_DIRTY | _PAGE_ACCESSED  # the MMU marks what is written dirty
            else:
                seg[~bad] |= _PAGE_ACCESSED  # and what is read young
            need = np.flatnonzero(bad) + i0
            empty = need[pt.np()[need] == 0] if len(need) else need  # (a swap entry is not empty)
        if not len(need):
            return
        private_file_write = write and vma.obj is not None and not vma.flags & VM_SHARED
        if len(empty) >= pgtable.BULK_MIN and len(empty) == len(need) and not private_file_write:
            bulk = True
            if self.fault_in_scope(mm, idx, write):  # the policy sees the first fault of the PTE page
                self.do_page_fault(task, base + (int(empty[0]) << PAGE_SHIFT), write)
                pt = mm.ptp[idx]
                empty = empty[1:]
                empty = empty[pt.np()[empty] == 0]
                # a scoped policy sees every fault in its scope (without one: the first only)
                bulk = self._fault_scope is None or not self.fault_in_scope(mm, idx, write)
            if bulk and len(empty) and (not write or mm.ptp[idx] is None or mm.pmd[idx] & _PAGE_RW):
                if not self._fault_cost:
                    self._fill_bulk(task, mm, vma, idx, empty, write)
                    return
                row = self.acct.row  # the faults the fill takes, each with the policy's fault_cost
                before = row[self.P_fault]
                try:
                    self._fill_bulk(task, mm, vma, idx, empty, write)
                finally:
                    self.charge_fault_cost(row, row[self.P_fault] - before)
                return
            need = empty
        for i in need.tolist():
            pt = mm.ptp[idx]
            if pt is not None:  # an earlier fault of this run may have filled it (an attached table)
                pte = pt.ptes[i]
                if pte & _PAGE_PRESENT and (not write or pte & _PAGE_RW and mm.pmd[idx] & _PAGE_RW):
                    pt.ptes[i] = pte | (_PAGE_DIRTY | _PAGE_ACCESSED if write else _PAGE_ACCESSED)
                    continue  # the MMU's hit: no fault
            self.do_page_fault(task, base + (i << PAGE_SHIFT), write)

    def _fill_bulk(self, task: Task, mm: MMStruct, vma: VMA, idx: int, slots: np.ndarray, write: bool) -> None:
        """Anonymous or shared-object faults on empty entries, a PTE page at a time, charging what
        one fault per entry would: the trap, the page, the PTE, the rmap entry, a kmap each."""
        n = len(slots)
        acct = self.acct
        pt = mm.ptp[idx]
        if pt is None:
            pt = self.pte_alloc(mm, idx)
            if pt is None:
                self.m.sched.kill(task, SIGKILL)
                raise Killed()
        if vma.obj is None and not write:
            acct.charge(self.P_fault, n)
            pt = self.pte_change(mm, idx, FAULT, int(slots[0]), int(slots[-1]) + 1)
            if pt.high:
                acct.charge(self.P_kmap, n - 1)
            pt.np()[slots] = (ZERO_PFN << PAGE_SHIFT) | PAGE_READONLY
            acct.charge(self.P_pte_set, n)
            return
        base = idx << self.sh
        obj = vma.obj
        if obj is not None:
            first = vma.pgoff + ((base - vma.start) >> PAGE_SHIFT)
            got, err = obj.nopage_bulk(self, (slots + first).tolist())
            pfns = np.array(got, dtype=np.int64)
            j = len(got)
            # (each page came with its mapping's reference, taken as it was found)
            acct.charge(self.P_ref, j)
        else:
            got = self.alloc_user_pages(n)  # as n alloc_user_page calls, runs at a time
            j = len(got)
            pfns, err = np.array(got, dtype=np.int64), (NOPAGE_OOM if j < n else 0)
        if err:  # fill what we have, then SIGBUS or the out-of-memory kill
            acct.charge(self.P_fault, j + 1)  # the faults taken, the last one failing
            if j:
                self._install(mm, vma, idx, slots[:j], pfns[:j], write)
            if err == NOPAGE_SIGBUS:
                raise SimSignal(SIGBUS, BUS_ADRERR, base + (int(slots[j]) << PAGE_SHIFT))
            self.m.sched.kill(task, SIGKILL)
            raise Killed()
        acct.charge(self.P_fault, n)
        self._install(mm, vma, idx, slots, pfns, write)

    def _install(self, mm: MMStruct, vma: VMA, idx: int, slots: np.ndarray, pfns: np.ndarray, write: bool) -> None:
        n = len(slots)
        pt = self.pte_change(mm, idx, FAULT, int(slots[0]), int(slots[-1]) + 1)
        if pt.high:
            self.acct.charge(self.P_kmap, n - 1)
        prot = vma.page_prot | (_PAGE_RW | _PAGE_DIRTY if write else 0)
        pt.np()[slots] = (pfns << PAGE_SHIFT) | prot
        self.acct.charge(self.P_pte_set, n)
        pt.rss += n
        self.rss_walk(pt, n)
        self.rmap.page_add_rmap_bulk(pfns, pt, slots)

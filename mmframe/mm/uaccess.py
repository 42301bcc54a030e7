"""User accesses: a load or store of one page checked by the "hardware" walk (PMD entry, PTE, the RW
bit of both) and faulting otherwise, and ``copy_to_user``/``copy_from_user`` built on them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmframe.mm import content
from mmframe.mm.page import PAGE_SHIFT, PAGE_SIZE
from mmframe.mm.pgtable import _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, TASK_SIZE
from mmframe.usr import EINVAL, SimSignal

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.sched import Task


class UserAccess:
    """Part of :class:`~mmframe.mm.memory.Memory`: loads and stores of user pages."""

    __slots__ = ()

    def sys_read(self, task: Task, addr: int) -> int:
        mm = task.mm
        for _ in range(4):
            if 0 <= addr < TASK_SIZE:
                idx = addr >> self.sh
                pt = mm.ptp[idx]
                if pt is not None:
                    pte = pt.ptes[(addr >> PAGE_SHIFT) & self.mask]
                    if pte & _PAGE_PRESENT:
                        if not pte & _PAGE_ACCESSED:  # the MMU marks the entry young
                            pt.ptes[(addr >> PAGE_SHIFT) & self.mask] = pte | _PAGE_ACCESSED
                        pfn = pte >> PAGE_SHIFT
                        if self.fine and pfn in self.fine:  # bytes written partially (direct I/O)
                            return content.load_word(self, pfn, addr & 0xFFF)
                        if self.zero_tail and addr & 0xFFF >= self.zero_tail.get(pfn, PAGE_SIZE):
                            return 0  # past end of file in the last page: zeroed by readpage
                        return self.tag[pfn]
            self.do_page_fault(task, addr, False)
        raise AssertionError(f"read fault at {addr:#x} did not make the page present")

    def sys_write(self, task: Task, addr: int, tag: int) -> int:
        if type(tag) is not int or tag >> 63 not in (0, -1):
            return -EINVAL  # a page's content tag is a 64-bit signed integer
        mm = task.mm
        for _ in range(4):
            if 0 <= addr < TASK_SIZE:
                idx = addr >> self.sh
                pt = mm.ptp[idx]
                if pt is not None and mm.pmd[idx] & _PAGE_RW:
                    i = (addr >> PAGE_SHIFT) & self.mask
                    pte = pt.ptes[i]
                    if pte & 3 == 3:  # present and writable; the MMU sets the dirty bit
                        if pte & (_PAGE_DIRTY | _PAGE_ACCESSED) != _PAGE_DIRTY | _PAGE_ACCESSED:
                            pt.ptes[i] = pte | _PAGE_DIRTY | _PAGE_ACCESSED
                        pfn = pte >> PAGE_SHIFT
                        self.tag[pfn] = tag
                        if self.zero_tail or self.fine:
                            content.forget(self, pfn)
                        return 0
            self.do_page_fault(task, addr, True)
        raise AssertionError(f"write fault at {addr:#x} did not make the page writable")

    def copy_to_user(self, task: Task, addr: int, tag: int) -> bool:
        """Store a page's tag at a user address, faulting it in; False (the syscall's -EFAULT)
        where a user access would have had a signal."""
        try:
            self.sys_write(task, addr, tag)
        except SimSignal:
            return False
        return True

    def copy_from_user(self, task: Task, addr: int) -> int | None:
        """The tag of the user page at ``addr``, or None for -EFAULT.  Read at the page's first
        byte, which a zeroed tail (past EOF, so never at offset 0) does not cover."""
        try:
            return self.sys_read(task, addr & ~(PAGE_SIZE - 1))
        except SimSignal:
            return None

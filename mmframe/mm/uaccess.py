"""User accesses: a load or store of one page checked by the "hardware" walk (PMD entry, PTE, the RW
bit of both) and faulting otherwise, and ``copy_to_user``/``copy_from_user`` built on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
                        if self.zero_tail or self.fine:  # a zeroed tail past EOF, bytes written
                            return content.load_word(self, pfn, addr & 0xFFF)
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

    def user_page(self, task: Task, addr: int, write: bool, user: bool = False) -> int:
        """The page under user address ``addr`` as the MMU reaches it, faulting as an access would
        (a store sets the PTE's dirty bit); raises the access's signal."""
        mm = task.mm
        for _ in range(4):
            if 0 <= addr < TASK_SIZE:
                idx = addr >> self.sh
                pt = mm.ptp[idx]
                if pt is not None and (not write or mm.pmd[idx] & _PAGE_RW):
                    i = (addr >> PAGE_SHIFT) & self.mask
                    pte = pt.ptes[i]
                    if write and pte & 3 == 3:
                        if not pte & _PAGE_DIRTY:
                            pt.ptes[i] = pte | _PAGE_DIRTY | _PAGE_ACCESSED
                        return pte >> PAGE_SHIFT
                    if not write and pte & _PAGE_PRESENT:
                        return pte >> PAGE_SHIFT
            self.do_page_fault(task, addr, write, user)
        raise AssertionError(f"fault at {addr:#x} did not make the page accessible")

    def sys_load(self, task: Task, addr: Any, n: Any) -> Any:
        """A program's load of ``n`` bytes at ``addr`` (``memcpy`` out of memory): bytes."""
        if type(addr) is not int or type(n) is not int or n < 0:
            return -EINVAL
        out = []
        while n > 0:
            k = min(n, PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
            out.append(content.read_bytes(self, self.user_page(task, addr, False, True), addr & (PAGE_SIZE - 1), k))
            addr, n = addr + k, n - k
        return b"".join(out)

    def sys_store(self, task: Task, addr: Any, data: Any) -> int:
        """A program's store of ``data`` (bytes) at ``addr``: 0; the bytes around are unchanged."""
        if type(addr) is not int or not isinstance(data, (bytes, bytearray)):
            return -EINVAL
        done = 0
        while done < len(data):
            a = addr + done
            k = min(len(data) - done, PAGE_SIZE - (a & (PAGE_SIZE - 1)))
            content.write_bytes(self, self.user_page(task, a, True, True), a & (PAGE_SIZE - 1),
                                bytes(data[done:done + k]))
            done += k
        return 0

    def copy_bytes_to_user(self, task: Task, addr: int, data: bytes) -> int:
        """``__copy_to_user``: store ``data`` at ``addr``; how many bytes went before a fault (the
        caller's -EFAULT or short count)."""
        done, n = 0, len(data)
        while done < n:
            a = addr + done
            k = min(n - done, PAGE_SIZE - (a & (PAGE_SIZE - 1)))
            try:
                pfn = self.user_page(task, a, True)
            except SimSignal:
                return done
            content.write_bytes(self, pfn, a & (PAGE_SIZE - 1), data[done:done + k])
            done += k
        return done

    def copy_bytes_from_user(self, task: Task, addr: int, n: int) -> bytes:
        """``__copy_from_user``: the bytes at ``addr`` up to the first fault."""
        out, done = [], 0
        while done < n:
            a = addr + done
            k = min(n - done, PAGE_SIZE - (a & (PAGE_SIZE - 1)))
            try:
                pfn = self.user_page(task, a, False)
            except SimSignal:
                break
            out.append(content.read_bytes(self, pfn, a & (PAGE_SIZE - 1), k))
            done += k
        return b"".join(out)

    def sys_setsp(self, task: Task, sp: Any) -> int:
        """Set the task's %esp (what its pushes and calls would move): faults below the stack are
        then checked against it as i386 2.5's do_page_fault does."""
        if type(sp) is not int or not 0 <= sp <= TASK_SIZE:
            return -EINVAL
        task.sp = sp
        return 0

"""``mremap`` (2.5.49 ``mm/mremap.c``): shrink, grow in place, or move a mapping.

Checks in ``do_mremap``'s order: unknown flags, an unaligned address (-EINVAL); MREMAP_FIXED needs
MREMAP_MAYMOVE, an aligned ``new_addr`` with the new range below TASK_SIZE and not overlapping the
old one (-EINVAL), and unmaps what is there.  A shrink unmaps the tail and returns.  Otherwise the
old range must lie in one VMA (-EFAULT).  A VMA ending at the old range's end grows in place if the
gap above allows; else MREMAP_MAYMOVE moves it (``move_vma``: a new VMA, or an anonymous private
neighbour extended, ``move_page_tables`` moving each PTE through the choke point with reason
``mremap``, the old range unmapped), else -ENOMEM.  As 2.5.49's code reads, a shrink with
MREMAP_FIXED to a new address goes on with the *old* length, so it fails with -EFAULT unless the
lengths are equal.  A grown shared anonymous mapping keeps its object's size: past it, SIGBUS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.mm.mmap import do_munmap, get_unmapped_area, make_pages_present, vma_merge
from mmframe.mm.page import PAGE_SHIFT, PG_reserved
from mmframe.mm.pgtable import PTE_PRESENT_MASK, TASK_SIZE
from mmframe.mm.pte_change import MREMAP
from mmframe.mm.vma import VM_LOCKED, VM_SHARED, VMA
from mmframe.usr import EFAULT, EINVAL, ENOMEM, MREMAP_FIXED, MREMAP_MAYMOVE, PAGE_SIZE

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory
    from mmframe.mm.mm_struct import MMStruct
    from mmframe.sched import Task

_RESERVED = 1 << PG_reserved


def _align(n: int) -> int:
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def sys_mremap(vm: Memory, task: Task, addr: Any, old_len: Any, new_len: Any, flags: Any = 0,
               new_addr: Any = 0) -> int:
    if any(type(x) is not int for x in (addr, old_len, new_len, flags, new_addr)) or old_len < 0 or new_len < 0:
        return -EINVAL
    if flags & ~(MREMAP_FIXED | MREMAP_MAYMOVE) or addr & (PAGE_SIZE - 1):
        return -EINVAL
    old_len, new_len = _align(old_len), _align(new_len)
    mm = task.mm
    fixed = bool(flags & MREMAP_FIXED)
    if fixed:
        if new_addr & (PAGE_SIZE - 1) or not flags & MREMAP_MAYMOVE or new_addr < 0:
            return -EINVAL
        if new_len > TASK_SIZE or new_addr > TASK_SIZE - new_len:
            return -EINVAL
        if new_addr <= addr < new_addr + new_len or addr <= new_addr < addr + old_len:
            return -EINVAL
        do_munmap(vm, task, new_addr, new_len)
    if old_len >= new_len:  # always allow a shrinking remap: that just unmaps the tail
        if old_len > new_len:
            do_munmap(vm, task, addr + new_len, old_len - new_len)
        if not fixed or new_addr == addr:
            return addr
    v = mm.vmas.find(addr)
    if v is None or v.start > addr or old_len > v.end - addr:
        return -EFAULT
    if old_len == v.end - addr and not (fixed and addr != new_addr) and (
            old_len != new_len or not flags & MREMAP_MAYMOVE):
        nxt = mm.vmas.neighbours(v.end, v.end)[1]
        max_addr = nxt.start if nxt is not None else TASK_SIZE
        if max_addr - addr >= new_len:  # grow in place
            old_end = v.end
            v.end = addr + new_len
            vm.acct.charge(vm.P_vma)
            vm.mapping_changed(mm, old_end, v.end)
            if v.flags & VM_LOCKED:
                mm.locked_vm += (new_len - old_len) >> PAGE_SHIFT
                make_pages_present(vm, mm, addr + old_len, addr + new_len)
            return addr
    if not flags & MREMAP_MAYMOVE:
        return -ENOMEM
    if not fixed:
        found = get_unmapped_area(mm, 0, new_len)
        if found is None:
            return -ENOMEM
        new_addr = found
    return move_vma(vm, task, v, addr, old_len, new_len, new_addr)


def move_vma(vm: Memory, task: Task, v: VMA, addr: int, old_len: int, new_len: int, new_addr: int) -> int:
    """A VMA for ``[new_addr, new_addr + new_len)`` (an anonymous private one merges with a
    neighbour), the PTEs moved, the old range unmapped: ``new_addr`` or -ENOMEM, nothing changed."""
    mm = task.mm
    end = new_addr + new_len
    if not _prealloc(vm, mm, new_addr, new_addr + old_len):
        return -ENOMEM
    flags, locked = v.flags, v.flags & VM_LOCKED
    if not (v.obj is None and not flags & VM_SHARED and vma_merge(vm, mm, new_addr, end, flags)):
        if not vm.vma_alloc():
            return -ENOMEM
        if v.obj is not None:
            v.obj.get()
        mm.vmas.insert(VMA(new_addr, end, flags, v.obj, v.pgoff + ((addr - v.start) >> PAGE_SHIFT)))
    vm.mapping_changed(mm, new_addr, end)
    move_page_tables(vm, mm, addr, new_addr, old_len)
    do_munmap(vm, task, addr, old_len)
    if locked:
        mm.locked_vm += new_len >> PAGE_SHIFT
        make_pages_present(vm, mm, new_addr, end)
    return new_addr


def _prealloc(vm: Memory, mm: MMStruct, start: int, end: int) -> bool:
    """The destination's PTE pages, so that moving cannot fail half way (2.5 moved back)."""
    if end <= start:
        return True
    for idx in range(start >> vm.sh, ((end - 1) >> vm.sh) + 1):
        if mm.ptp[idx] is None and vm.pte_alloc(mm, idx) is None:
            return False
    return True


def move_page_tables(vm: Memory, mm: MMStruct, old: int, new: int, length: int) -> None:
    """``move_one_page`` for each page, last first: the entry leaves its old table and enters the
    new one, each write through the choke point (reason ``mremap``), rmap and rss following."""
    sh, mask, acct = vm.sh, vm.mask, vm.acct
    for off in range(length - PAGE_SIZE, -1, -PAGE_SIZE):
        src = old + off
        idx, i = src >> sh, (src >> PAGE_SHIFT) & mask
        spt = mm.ptp[idx]
        if spt is None or not spt.ptes[i] & PTE_PRESENT_MASK:
            continue
        spt = vm.pte_change(mm, idx, MREMAP, i, i + 1)
        pte = spt.ptes[i]
        pfn = pte >> PAGE_SHIFT
        real = not vm.flags[pfn] & _RESERVED
        spt.ptes[i] = 0
        acct.charge(vm.P_pte_clear)
        if real:
            vm.rmap.page_remove_rmap(pfn, spt, i)
            spt.rss -= 1
        dst = new + off
        didx, j = dst >> sh, (dst >> PAGE_SHIFT) & mask
        if mm.ptp[didx] is None and vm.pte_alloc(mm, didx) is None:  # (preallocated: cannot fail)
            raise AssertionError("mremap: destination PTE page vanished")
        dpt = vm.pte_change(mm, didx, MREMAP, j, j + 1)
        dpt.ptes[j] = pte
        acct.charge(vm.P_pte_set)
        if real:
            dpt.rss += 1
            vm.rss_walk(dpt)
            vm.rmap.page_add_rmap(pfn, dpt, j)
    vm.m.tlb.flush_tlb_range(mm, vm._cpu(), old, old + length)

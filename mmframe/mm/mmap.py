"""The address-space system calls: ``mmap``, ``munmap``, ``mprotect`` (anonymous mappings), with
2.5.49's errno behaviour, each changing PTEs only through the choke point.

``mmap`` of length 0 returns the address unchanged ("if (!len) return addr;" in 2.5.49's
do_mmap_pgoff; today's Linux returns -EINVAL).  ``mprotect`` over a range with a hole is -ENOMEM.
After an unmap, page tables are freed only for PGD slots wholly inside the hole
(``free_pgtables``): 4 MiB without PAE, 1 GiB with PAE.  VMA merging comes with the full mapping
calls (issue 6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmframe.mm import memory as M
from mmframe.mm.pgtable import TASK_SIZE
from mmframe.mm.vma import (VM_EXEC, VM_MAYEXEC, VM_MAYREAD, VM_MAYSHARE, VM_MAYWRITE, VM_READ, VM_SHARED,
                            VM_WRITE, VMA)
from mmframe.usr import (EBADF, EINVAL, ENOMEM, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PAGE_SIZE,
                         PROT_EXEC, PROT_READ, PROT_WRITE)

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory, MMStruct
    from mmframe.sched import Task

TASK_UNMAPPED_BASE = 0x4000_0000  # PAGE_ALIGN(TASK_SIZE / 3)
_PROT_ALL = PROT_READ | PROT_WRITE | PROT_EXEC


def prot_flags(prot: int) -> int:
    return (VM_READ if prot & PROT_READ else 0) | (VM_WRITE if prot & PROT_WRITE else 0) | (
        VM_EXEC if prot & PROT_EXEC else 0)


def get_unmapped_area(mm: MMStruct, hint: int, length: int) -> int | None:
    addr = hint if hint and hint + length <= TASK_SIZE else TASK_UNMAPPED_BASE
    for v in mm.vmas.overlapping(addr, TASK_SIZE):
        if addr + length <= v.start:
            return addr
        addr = max(addr, v.end)
    return addr if addr + length <= TASK_SIZE else None


def sys_mmap(vm: Memory, task: Task, addr: int, length: int, prot: int, flags: int, fd: int = -1,
             offset: int = 0) -> int:
    mm = task.mm
    if not flags & MAP_ANONYMOUS:
        return -EBADF  # no files until the page cache lands
    if (flags & (MAP_SHARED | MAP_PRIVATE)) not in (MAP_SHARED, MAP_PRIVATE) or prot & ~_PROT_ALL:
        return -EINVAL
    if length == 0:
        return addr
    length = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    if length > TASK_SIZE or length <= 0:
        return -ENOMEM
    if flags & MAP_FIXED:
        if addr & (PAGE_SIZE - 1) or addr < 0 or addr + length > TASK_SIZE:
            return -EINVAL
        if do_munmap(vm, task, addr, length) < 0:
            return -ENOMEM
    else:
        found = get_unmapped_area(mm, addr & ~(PAGE_SIZE - 1) if addr > 0 else 0, length)
        if found is None:
            return -ENOMEM
        addr = found
    if not vm.vma_alloc():
        return -ENOMEM
    vmflags = prot_flags(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
    obj = None
    if flags & MAP_SHARED:
        vmflags |= VM_SHARED | VM_MAYSHARE
        obj = vm.new_object(length // PAGE_SIZE)
    v = VMA(addr, addr + length, vmflags, obj, 0)
    mm.vmas.insert(v)
    _tell_policy(vm, mm, addr, addr + length)
    return addr


def _tell_policy(vm: Memory, mm: MMStruct, start: int, end: int) -> None:
    """A new mapping over existing PTE pages is a change to them (a sharing policy unshares)."""
    if vm._pte_hook is None:
        return
    for idx, i0, i1 in vm.pmd_slots(mm, start, end):
        vm.pte_change(mm, idx, M.MMAP, i0, i1)


def split_vma(vm: Memory, mm: MMStruct, v: VMA, addr: int) -> bool:
    """2.5's ``split_vma``: ``v`` keeps ``[v.start, addr)``, a new VMA takes ``[addr, v.end)``.
    False, with nothing changed, when no vm_area_struct could be had."""
    if not vm.vma_alloc():
        return False
    mm.vmas.remove(v)
    upper = v.clone(addr, v.end)
    v.end = addr
    mm.vmas.insert(v)
    mm.vmas.insert(upper)
    return True


def _split_edges(vm: Memory, mm: MMStruct, start: int, end: int, wanted=lambda v: True) -> bool:
    """Split the VMAs straddling ``start`` and ``end`` (those ``wanted``); False on -ENOMEM."""
    for at in (start, end):
        v = mm.vmas.find(at)
        if v is not None and v.start < at and wanted(v) and not split_vma(vm, mm, v, at):
            return False
    return True


def do_munmap(vm: Memory, task: Task, start: int, length: int) -> int:
    mm, end = task.mm, start + length
    if not mm.vmas.overlapping(start, end):
        return 0
    if not _split_edges(vm, mm, start, end):
        return -ENOMEM
    hit = mm.vmas.overlapping(start, end)
    for v in hit:
        mm.vmas.remove(v)
    vm.zap_range(mm, hit[0].start, hit[-1].end)
    vm.m.tlb.flush_tlb_range(mm, vm._cpu(), start, end)
    for v in hit:
        vm.vma_free(v)
    free_pgtables(vm, mm, start, end)
    return 0


def free_pgtables(vm: Memory, mm: MMStruct, start: int, end: int) -> None:
    """2.5.49 ``free_pgtables``: free the page tables of PGD slots wholly inside the hole left
    between the VMAs around ``[start, end)``."""
    pgsize = 1 << vm.pgdir_shift
    first, last = start & ~(pgsize - 1), min(end + pgsize - 1, TASK_SIZE + pgsize - 1)
    prev, nxt = mm.vmas.neighbours(start, end)
    if prev is not None and prev.end > first:
        first = prev.end + pgsize - 1
    if nxt is not None and last > nxt.start:
        last = nxt.start
    lo, hi = first >> vm.pgdir_shift, last >> vm.pgdir_shift
    if hi <= lo:
        return
    step = vm.pgdir_shift - vm.sh
    for idx in range(lo << step, min(hi << step, len(mm.ptp))):
        if mm.ptp[idx] is not None:
            vm.pmd_drop(mm, idx)


def sys_munmap(vm: Memory, task: Task, addr: int, length: int) -> int:
    if addr & (PAGE_SIZE - 1) or length <= 0 or addr < 0 or addr + length > TASK_SIZE:
        return -EINVAL
    return do_munmap(vm, task, addr, (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))


def sys_mprotect(vm: Memory, task: Task, addr: int, length: int, prot: int) -> int:
    if addr & (PAGE_SIZE - 1) or prot & ~_PROT_ALL or length < 0:
        return -EINVAL
    end = addr + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
    if end == addr:
        return 0
    mm = task.mm
    hit = mm.vmas.overlapping(addr, end)
    covered = addr
    for v in hit:  # 2.5: the whole range must be mapped, else -ENOMEM
        if v.start > covered:
            return -ENOMEM
        covered = v.end
    if covered < end:
        return -ENOMEM
    newbits = prot_flags(prot)
    newflags = lambda v: (v.flags & ~(VM_READ | VM_WRITE | VM_EXEC)) | newbits  # noqa: E731
    if not _split_edges(vm, mm, addr, end, lambda v: newflags(v) != v.flags):
        return -ENOMEM
    changed = False
    for v in mm.vmas.overlapping(addr, end):
        nflags = newflags(v)
        if nflags == v.flags:  # mprotect_fixup: nothing to do, no flush
            continue
        changed = True
        v.set_flags(nflags)
        vm.change_protection(mm, v.start, v.end, v.page_prot)
    if changed:  # change_protection always ends with flush_tlb_range, upgrade or not
        vm.m.tlb.flush_tlb_range(mm, vm._cpu(), addr, end)
    return 0

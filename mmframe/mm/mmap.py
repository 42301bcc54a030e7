"""The address-space system calls: ``mmap`` (anonymous and file-backed, private and shared),
``munmap``, ``mprotect``, ``brk``, ``msync``, with 2.5.49's errno behaviour, each changing PTEs only
through the choke point; ``vma_merge`` and ``split_vma``.

``mmap`` of length 0 returns the address unchanged ("if (!len) return addr;" in 2.5.49's
do_mmap_pgoff; today's Linux returns -EINVAL).  ``mprotect`` stops at a hole with -ENOMEM, the VMAs
before it changed.  After an unmap, page tables are freed only for PGD slots wholly inside the hole
(``free_pgtables``): 4 MiB without PAE, 1 GiB with PAE.  See docs/files.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.fs import FMODE_READ, FMODE_WRITE, Inode, Node
from mmframe.mm.fault import VM_FAULT_OOM, VM_FAULT_SIGBUS
from mmframe.mm.filemap import set_page_dirty
from mmframe.mm.overcommit import VM_ACCOUNT, over_rlimit_as, vm_enough_memory, vm_unacct_memory
from mmframe.mm.pgtable import _PAGE_DIRTY, PTE_PRESENT_MASK, TASK_SIZE
from mmframe.mm.pte_change import MSYNC
from mmframe.mm.vma import (VM_EXEC, VM_LOCKED, VM_MAYEXEC, VM_MAYREAD, VM_MAYSHARE, VM_MAYWRITE, VM_READ, VM_SHARED,
                            VM_WRITE, VMA)
from mmframe.mm.page import PAGE_SHIFT
from mmframe.usr import (EACCES, EBADF, EINVAL, ENODEV, ENOMEM, EPERM, MAP_ANONYMOUS, MAP_FIXED, MAP_LOCKED,
                         MAP_POPULATE, MAP_PRIVATE, MAP_SHARED, MS_ASYNC, MS_INVALIDATE, MS_SYNC, PAGE_SIZE, PROT_EXEC,
                         PROT_READ, PROT_WRITE, S_IFCHR)


if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory
    from mmframe.mm.mm_struct import MMStruct
    from mmframe.sched import Task

ULONG_MASK = 0xFFFF_FFFF
TASK_UNMAPPED_BASE = 0x4000_0000  # PAGE_ALIGN(TASK_SIZE / 3)
MAX_MAP_COUNT = 65536
_PROT_ALL = PROT_READ | PROT_WRITE | PROT_EXEC


def prot_flags(prot: int) -> int:
    return (VM_READ if prot & PROT_READ else 0) | (VM_WRITE if prot & PROT_WRITE else 0) | (
        VM_EXEC if prot & PROT_EXEC else 0)


def get_unmapped_area(mm: MMStruct, hint: int, length: int) -> int | None:
    """i386 2.5 ``arch_get_unmapped_area``: the hint (rounded up to a page) if the range there is
    free, else the lowest gap from TASK_UNMAPPED_BASE up; None when nothing fits.  O(V)."""
    if length > TASK_SIZE:
        return None
    if hint > 0:
        hint = (hint + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        v = mm.vmas.find(hint)
        if TASK_SIZE - length >= hint and (v is None or hint + length <= v.start):
            return hint
    addr = TASK_UNMAPPED_BASE
    for v in mm.vmas.from_addr(addr):
        if v.start >= TASK_SIZE:
            break
        if addr + length <= v.start:
            return addr
        if v.end > addr:
            addr = v.end
    return addr if addr + length <= TASK_SIZE else None


def sys_mmap(vm: Memory, task: Task, addr: int, length: int, prot: int, flags: int, fd: int = -1,
             offset: int = 0) -> int:
    """``old_mmap`` + ``do_mmap_pgoff`` of 2.5.49, checks in its order: offset alignment, the fd,
    length 0 (returns ``addr``), length above TASK_SIZE, too many mappings, the placement, the
    mapping type against the file's open mode; only then is a fixed range's old mapping removed."""
    if type(addr) is not int or type(length) is not int or type(prot) is not int or type(flags) is not int \
            or type(fd) is not int or type(offset) is not int:
        return -EINVAL
    if offset & (PAGE_SIZE - 1) or offset < 0:
        return -EINVAL
    file = None
    if not flags & MAP_ANONYMOUS:
        file = vm.m.fs.fget(task, fd)
        if file is None:
            return -EBADF
        if not mappable(file):
            return -ENODEV  # no f_op->mmap: a pipe, a directory
    if prot & ~_PROT_ALL:
        return -EINVAL
    addr, length = addr & ULONG_MASK, length & ULONG_MASK  # unsigned long on i386: -1 is 0xffffffff
    if length == 0:
        return addr
    length = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)  # 2**32 where the kernel's PAGE_ALIGN wraps to 0
    if length > TASK_SIZE:
        return -EINVAL
    mm = task.mm
    if len(mm.vmas.vmas) > MAX_MAP_COUNT:  # (the list itself: VMAList.__len__ is a Python call)
        return -ENOMEM
    if flags & MAP_FIXED:
        if addr & (PAGE_SIZE - 1) or addr < 0 or addr + length > TASK_SIZE:
            return -EINVAL
    else:
        found = get_unmapped_area(mm, addr, length)
        if found is None:
            return -ENOMEM
        addr = found
    if flags & MAP_LOCKED and not capable_ipc_lock(task):
        return -EPERM
    vmflags = prot_flags(prot) | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | (VM_LOCKED if flags & MAP_LOCKED else 0)
    mtype = flags & (MAP_SHARED | MAP_PRIVATE)
    if file is not None:
        if mtype == MAP_SHARED:
            if prot & PROT_WRITE and not file.mode & FMODE_WRITE:
                return -EACCES
            vmflags |= VM_SHARED | VM_MAYSHARE
            if not file.mode & FMODE_WRITE:  # a read-only file can never be written through it
                vmflags &= ~(VM_MAYWRITE | VM_SHARED)
        elif mtype != MAP_PRIVATE:
            return -EINVAL
        if not file.mode & FMODE_READ:
            return -EACCES
    elif mtype == MAP_SHARED:
        vmflags |= VM_SHARED | VM_MAYSHARE
    elif mtype != MAP_PRIVATE:
        return -EINVAL
    if file is not None and not isinstance(file.inode, Inode):  # /dev/zero's mmap_zero
        file = None  # private: anonymous memory; shared: a shmem object (shmem_zero_setup)
    r = do_mmap(vm, task, file, addr, length, vmflags, offset >> PAGE_SHIFT)
    if r >= 0 and flags & MAP_POPULATE:
        populate(vm, task.mm, r, r + length)
    return r


def mappable(file: Any) -> bool:
    """The file has an mmap method: a regular file or a character device (/dev/zero)."""
    node = file.inode
    return isinstance(node, Inode) or isinstance(node, Node) and node.mode == S_IFCHR


def populate(vm: Memory, mm: MMStruct, start: int, end: int) -> None:
    """MAP_POPULATE (2.5.46): ``sys_remap_file_pages`` over the new mapping, which only a shared
    mapping with a populate method takes (a file, shmem); its pages are mapped as read faults
    would map them, up to the end of the object.  A private mapping is left to fault (2.5
    ignored remap_file_pages' -EINVAL there)."""
    v = mm.vmas.find(start)
    if v is None or v.obj is None or not v.flags & VM_SHARED or not v.flags & (VM_READ | VM_WRITE | VM_EXEC):
        return
    for addr in range(start, min(end, v.end), PAGE_SIZE):
        if vm._fault_hook(vm, mm, v, addr, False) in (VM_FAULT_SIGBUS, VM_FAULT_OOM):
            return


def do_mmap(vm: Memory, task: Task, file: Any, addr: int, length: int, vmflags: int, pgoff: int = 0) -> int:
    """Map page-aligned ``[addr, addr + length)``, replacing what was there; an anonymous private
    mapping merges with its neighbours (``vma_merge``).  ``file`` None with ``VM_SHARED`` makes a
    shmem object (``shmem_zero_setup``); a shmem object or open file gains a reference."""
    mm = task.mm
    end = addr + length
    i, j = mm.vmas.span(addr, end)
    if i != j:  # something is mapped there (MAP_FIXED): unmap it first
        if do_munmap(vm, task, addr, length) < 0:
            return -ENOMEM
        i = mm.vmas.span(addr, end)[0]
    vmflags |= mm.def_flags
    if over_rlimit_as(vm, mm, length):
        return -ENOMEM
    charged = 0
    if vmflags & (VM_SHARED | VM_WRITE) == VM_WRITE or file is None:  # accounted (VM_ACCOUNT)
        charged = length >> PAGE_SHIFT
        if not vm_enough_memory(vm, charged):
            return -ENOMEM
        vmflags |= VM_ACCOUNT
    if vmflags & VM_LOCKED:  # (RLIMIT_MEMLOCK is infinite: nothing refuses it)
        mm.locked_vm += length >> PAGE_SHIFT
    if file is None and not vmflags & VM_SHARED:
        prev, nxt = around = mm.vmas.either_side(i)
        if (prev is not None and prev.end == addr or nxt is not None and nxt.start == end) and \
                vma_merge(vm, mm, addr, end, vmflags, around):  # (only a VMA touching the range can merge)
            vm.mapping_changed(mm, addr, end)
            _locked(vm, mm, vmflags, addr, end)
            return addr
    if not vm.vma_alloc():
        vm_unacct_memory(vm, charged)
        return -ENOMEM
    obj = file
    if obj is not None:
        obj.get()
    elif vmflags & VM_SHARED:
        obj = vm.new_shmem_object(length // PAGE_SIZE)  # shmem_zero_setup: charged again
        if obj is None:
            vm.vma_free_struct()
            vm_unacct_memory(vm, charged)
            return -ENOMEM
    mm.vmas.insert(VMA(addr, end, vmflags, obj, pgoff))
    vm.mapping_changed(mm, addr, end)
    if vmflags & VM_LOCKED:
        make_pages_present(vm, mm, addr, end)
    return addr


def _locked(vm: Memory, mm: MMStruct, vmflags: int, addr: int, end: int) -> None:
    if vmflags & VM_LOCKED:
        make_pages_present(vm, mm, addr, end)


def capable_ipc_lock(task: Task) -> bool:
    """``capable(CAP_IPC_LOCK)``: root's (the model has no capability sets)."""
    return task.uid == 0


def make_pages_present(vm: Memory, mm: MMStruct, start: int, end: int) -> None:
    """``get_user_pages`` over ``[start, end)`` (2.5's make_pages_present, for mlock and
    VM_LOCKED mappings): each page faulted in as a write where the VMA is writable, else a read;
    it stops at the first failure (past end of file).  A PROT_NONE VMA is passed over (*departure*:
    2.5 mapped its pages inaccessible)."""
    addr = start
    while addr < end:
        v = mm.vmas.find(addr)
        if v is None or v.start > addr:
            return
        if v.flags & (VM_READ | VM_WRITE | VM_EXEC):
            write = bool(v.flags & VM_WRITE)
            stop = min(end, v.end)
            while addr < stop:
                if vm._fault_hook(vm, mm, v, addr, write) in (VM_FAULT_SIGBUS, VM_FAULT_OOM):
                    return
                addr += PAGE_SIZE
        addr = v.end


def _mergeable(v: VMA | None, flags: int) -> bool:
    """2.5's ``can_vma_merge``: anonymous (no object) with the same flags."""
    return v is not None and v.obj is None and v.flags == flags


def vma_merge(vm: Memory, mm: MMStruct, addr: int, end: int, flags: int,
              around: tuple[VMA | None, VMA | None] | None = None) -> bool:
    """2.5.49 ``vma_merge`` for a new anonymous mapping ``[addr, end)``: extend the VMA ending at
    ``addr`` (and absorb the one starting at ``end``), or the one starting at ``end``.  ``around``:
    the VMAs either side, if the caller has them (``neighbours``)."""
    prev, nxt = around if around is not None else mm.vmas.neighbours(addr, end)
    if prev is not None and prev.end == addr and _mergeable(prev, flags):
        prev.end = end
        vm.acct.charge(vm.P_vma)
        if nxt is not None and nxt.start == end and _mergeable(nxt, flags):
            mm.vmas.remove(nxt)
            prev.end = nxt.end
            vm.vma_free(nxt)
        return True
    if nxt is not None and nxt.start == end and _mergeable(nxt, flags):
        mm.vmas.remove(nxt)
        nxt.start = addr
        mm.vmas.insert(nxt)
        vm.acct.charge(vm.P_vma)
        return True
    return False


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


def _split_edges(vm: Memory, mm: MMStruct, start: int, end: int) -> bool:
    """Split the VMAs straddling ``start`` and ``end``; False on -ENOMEM."""
    for at in (start, end):
        v = mm.vmas.find(at)
        if v is not None and v.start < at and not split_vma(vm, mm, v, at):
            return False
    return True


def do_munmap(vm: Memory, task: Task, start: int, length: int) -> int:
    """2.5.49 ``do_munmap``: split the VMAs straddling the edges, take out those inside, zap their
    pages, flush the TLB, free the structs and the page tables the hole leaves.  One lookup when
    no VMA straddles an edge (the common whole-mapping munmap)."""
    if length <= 0:
        return 0  # (2.5's do_munmap: -EINVAL, which mremap ignores)
    mm, end = task.mm, start + length
    vmas = mm.vmas
    i, j = vmas.span(start, end)
    if i == j:
        return 0
    first, last = vmas.vmas[i], vmas.vmas[j - 1]
    if first.start < start or last.end > end:  # a VMA straddles an edge
        if not _split_edges(vm, mm, start, end):
            return -ENOMEM
        i, j = vmas.span(start, end)
    hit = vmas.remove_span(i, j)
    around = vmas.either_side(i)  # the hole's neighbours, for free_pgtables
    for v in hit:
        if v.flags & VM_LOCKED:
            mm.locked_vm -= (v.end - v.start) >> PAGE_SHIFT
        if v.flags & VM_ACCOUNT:
            vm_unacct_memory(vm, (v.end - v.start) >> PAGE_SHIFT)
    lo, hi = hit[0].start >> vm.sh, ((hit[-1].end - 1) >> vm.sh) + 1
    if mm.ptp[lo:hi].count(None) != hi - lo:  # a page table to zap (zap_page_range visits only those)
        vm.zap_page_range(mm, hit[0].start, hit[-1].end)
    vm.m.tlb.flush_tlb_range(mm, vm._cpu(), start, end)
    for v in hit:
        vm.vma_free(v)
    free_pgtables(vm, mm, start, end, around)
    return 0


def free_pgtables(vm: Memory, mm: MMStruct, start: int, end: int,
                  around: tuple[VMA | None, VMA | None] | None = None) -> None:
    """2.5.49 ``free_pgtables``: free the page tables of PGD slots wholly inside the hole left
    between the VMAs around ``[start, end)`` (``around``: those two, if the caller has them)."""
    shift = vm.pgdir_shift
    pgsize = 1 << shift
    first, last = start & ~(pgsize - 1), (end if end < TASK_SIZE else TASK_SIZE) + pgsize - 1
    prev, nxt = around if around is not None else mm.vmas.neighbours(start, end)
    if prev is not None and prev.end > first:
        first = prev.end + pgsize - 1
    if nxt is not None and last > nxt.start:
        last = nxt.start
    lo, hi = first >> shift, last >> shift
    if hi <= lo:
        return
    step, ptp = shift - vm.sh, mm.ptp
    lo, hi = lo << step, min(hi << step, len(ptp))
    if ptp[lo:hi].count(None) == hi - lo:  # no page table there (a scan in C)
        return
    for idx in range(lo, hi):
        if ptp[idx] is not None:
            vm.pmd_drop(mm, idx)


def sys_munmap(vm: Memory, task: Task, addr: int, length: int) -> int:
    if addr & (PAGE_SIZE - 1) or length <= 0 or addr < 0 or addr + length > TASK_SIZE:
        return -EINVAL
    return do_munmap(vm, task, addr, (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))


def sys_mprotect(vm: Memory, task: Task, addr: int, length: int, prot: int) -> int:
    """2.5.49 ``sys_mprotect``: VMA by VMA from ``addr``; a VMA that may not get the new rights
    (its ``VM_MAY*`` bits) stops it with -EACCES, a hole with -ENOMEM, leaving the VMAs before
    changed, as 2.5 did.  Changed anonymous private VMAs merge with equal neighbours."""
    if any(type(x) is not int for x in (addr, length, prot)):
        return -EINVAL
    if addr & (PAGE_SIZE - 1) or prot & ~_PROT_ALL or length < 0:
        return -EINVAL
    end = addr + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
    if end == addr:
        return 0
    if end > TASK_SIZE:
        return -ENOMEM
    mm = task.mm
    v = mm.vmas.find(addr)
    if v is None or v.start > addr:
        return -ENOMEM
    newbits = prot_flags(prot)
    err, changed, at = 0, False, addr
    while True:
        nflags = (v.flags & ~(VM_READ | VM_WRITE | VM_EXEC)) | newbits
        if nflags & ~(nflags >> 4) & 0xF:
            err = -EACCES
            break
        stop = min(end, v.end)
        if nflags != v.flags:  # mprotect_fixup: nothing to do (and no flush) when they agree
            if not _split_edges(vm, mm, at, stop):
                err = -ENOMEM
                break
            v = mm.vmas.find(at)
            v.set_flags(nflags)
            vm.change_protection(mm, v.start, v.end, v.page_prot)
            changed = True
        if stop >= end:
            break
        at = stop
        v = mm.vmas.find(at)
        if v is None or v.start != at:
            err = -ENOMEM
            break
    if changed:  # change_protection always ends with flush_tlb_range, upgrade or not
        vm.m.tlb.flush_tlb_range(mm, vm._cpu(), addr, end)
        _merge_around(vm, mm, addr, end)
    return err


def _merge_around(vm: Memory, mm: MMStruct, start: int, end: int) -> None:
    """2.5's mprotect merging: a changed anonymous private VMA joins the one before it when their
    flags now agree (``mprotect_attempt_merge``), and the last one joins the one after it."""
    prev, _ = mm.vmas.neighbours(start, start)
    run = ([prev] if prev is not None else []) + mm.vmas.overlapping(start, end)
    nxt = mm.vmas.neighbours(end, end)[1]
    if nxt is not None and nxt.start == end:
        run.append(nxt)
    keep = run[0] if run else None
    for v in run[1:]:
        if keep.end == v.start and _mergeable(keep, v.flags) and v.obj is None:
            mm.vmas.remove(v)
            keep.end = v.end
            vm.vma_free(v)
        else:
            keep = v


def sys_brk(vm: Memory, task: Task, brk: Any) -> int:
    """2.5.49 ``sys_brk``: the new break, or the old one when the change is refused (below the end
    of the code, over another mapping, out of memory).  Growth is a fresh anonymous mapping
    (zero-filled, merged with the heap); shrinking unmaps, and as in 2.5 only ``end_code`` bounds
    it, so a break set below the heap's start unmaps data and bss."""
    mm = task.mm
    if type(brk) is not int or brk < mm.end_code:
        return mm.brk
    newbrk = (brk + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    oldbrk = (mm.brk + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    if oldbrk == newbrk:
        mm.brk = brk
        return brk
    if brk <= mm.brk:
        if do_munmap(vm, task, newbrk, oldbrk - newbrk) == 0:
            mm.brk = brk
        return mm.brk
    rlim = vm.m.cfg.vm.rlimit_data
    if rlim and brk - mm.end_code > rlim:  # RLIMIT_DATA (brk - start_data; start_data = end_code here)
        return mm.brk
    if newbrk > TASK_SIZE or mm.vmas.overlapping(oldbrk, newbrk + PAGE_SIZE):
        return mm.brk
    if do_brk(vm, task, oldbrk, newbrk - oldbrk) == oldbrk:
        mm.brk = brk
    return mm.brk


def do_brk(vm: Memory, task: Task, addr: int, length: int) -> int:
    """An anonymous private read-write-exec mapping (VM_DATA_DEFAULT_FLAGS), merged if it can be."""
    flags = VM_READ | VM_WRITE | VM_EXEC | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
    return do_mmap(vm, task, None, addr, length, flags)


def sys_msync(vm: Memory, task: Task, addr: Any, length: Any, flags: Any = MS_SYNC) -> int:
    """2.5 ``msync``: ``filemap_sync`` moves the dirty bits of shared file mappings' PTEs to their
    pages (through the choke point, reason ``msync``); MS_SYNC also writes the files' dirty pages.
    -ENOMEM if part of the range is unmapped (after syncing what is mapped), as 2.5."""
    if any(type(x) is not int for x in (addr, length, flags)):
        return -EINVAL
    if addr & (PAGE_SIZE - 1) or flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or length < 0 or \
            (flags & MS_ASYNC and flags & MS_SYNC):
        return -EINVAL
    end = addr + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
    if end == addr:
        return 0
    mm = task.mm
    err, covered = 0, addr
    for v in mm.vmas.overlapping(addr, end):
        if v.start > covered:
            err = -ENOMEM
        covered = v.end
        inode = getattr(v.obj, "inode", None)
        if inode is None or not v.flags & VM_SHARED:
            continue
        lo, hi = max(addr, v.start), min(end, v.end)
        filemap_sync(vm, mm, lo, hi)
        if flags & MS_SYNC:
            r = vm.m.fs.writeback(inode)
            err = err or r
    if covered < end:
        err = -ENOMEM
    return err


def filemap_sync(vm: Memory, mm: MMStruct, start: int, end: int) -> None:
    """Clear the dirty bit of each PTE in ``[start, end)`` and mark its page dirty."""
    dirty = _PAGE_DIRTY
    for idx, i0, i1 in vm.pmd_slots(mm, start, end):
        pt = vm.pte_change(mm, idx, MSYNC, i0, i1)
        if pt is None:
            continue
        ptes = pt.ptes
        for i in range(i0, i1):
            pte = ptes[i]
            if pte & PTE_PRESENT_MASK and pte & dirty:
                ptes[i] = pte & ~dirty
                vm.acct.charge(vm.P_pte_set)
                set_page_dirty(vm, pte >> PAGE_SHIFT)
    vm.m.tlb.flush_tlb_range(mm, vm._cpu(), start, end)

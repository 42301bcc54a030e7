"""``mlock``, ``munlock``, ``mlockall``, ``munlockall`` (2.5.49 ``mm/mlock.c``) and
``make_pages_present``.

2.5.49 checks ``CAP_IPC_LOCK`` for every lock (-EPERM; unprivileged locking within RLIMIT_MEMLOCK
came in 2.6.9), and ``munlockall`` too (it is ``do_mlockall(0)``); ``munlock`` needs no privilege.
A task has the capability when its uid is 0.  RLIMIT_MEMLOCK is infinite (2.5's default), so only
"at most half of physical memory" bounds the pages locked (-ENOMEM).  Locking a range faults its
pages in (``make_pages_present``: write faults where the VMA is writable, so private file pages
are copied at once); VM_LOCKED is the flag reclaim honours.  A child does not inherit locks; it
does inherit ``MCL_FUTURE`` (``def_flags``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.mm.mmap import capable_ipc_lock, make_pages_present, split_vma
from mmframe.mm.page import PAGE_SHIFT
from mmframe.mm.vma import VM_LOCKED
from mmframe.usr import EAGAIN, EINVAL, ENOMEM, EPERM, MCL_CURRENT, MCL_FUTURE, PAGE_SIZE

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory
    from mmframe.mm.mm_struct import MMStruct
    from mmframe.sched import Task


def total_vm(mm: MMStruct) -> int:
    return sum(v.end - v.start for v in mm.vmas) >> PAGE_SHIFT


def mlock_fixup(vm: Memory, mm: MMStruct, v: Any, start: int, end: int, newflags: int) -> int:
    """Set ``newflags`` on ``[start, end)`` of ``v`` (splitting it): 0 or -EAGAIN."""
    if newflags == v.flags:
        return 0
    for at in (start, end):
        w = mm.vmas.find(at)
        if w is not None and w.start < at < w.end and not split_vma(vm, mm, w, at):
            return -EAGAIN
    mm.vmas.find(start).set_flags(newflags)
    vm.acct.charge(vm.P_vma)
    pages = (end - start) >> PAGE_SHIFT
    if newflags & VM_LOCKED:
        mm.locked_vm += pages
        make_pages_present(vm, mm, start, end)
    else:
        mm.locked_vm -= pages
    return 0


def do_mlock(vm: Memory, task: Task, start: int, length: int, on: bool) -> int:
    if on and not capable_ipc_lock(task):
        return -EPERM
    end = start + length
    if end == start:
        return 0
    mm = task.mm
    v = mm.vmas.find(start)
    if v is None or v.start > start:
        return -ENOMEM
    at = start
    while True:
        flags = v.flags | VM_LOCKED if on else v.flags & ~VM_LOCKED
        if v.end >= end:
            return mlock_fixup(vm, mm, v, at, end, flags)
        stop = v.end
        err = mlock_fixup(vm, mm, v, at, stop, flags)
        if err:
            return err
        at = stop
        v = mm.vmas.find(at)
        if v is None or v.start != at:
            return -ENOMEM


def _args(start: Any, length: Any) -> tuple[int, int] | None:
    if type(start) is not int or type(length) is not int or length < 0 or start < 0:
        return None
    length = (length + (start & (PAGE_SIZE - 1)) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    start &= ~(PAGE_SIZE - 1)
    return start, length


def sys_mlock(vm: Memory, task: Task, start: Any, length: Any) -> int:
    """``sys_mlock``: the limit (half of memory: -ENOMEM) before the capability (-EPERM); a hole
    in the range is -ENOMEM, the VMAs before it locked."""
    a = _args(start, length)
    if a is None:
        return -EINVAL
    start, length = a
    locked = (length >> PAGE_SHIFT) + task.mm.locked_vm
    if locked > vm.pa.mem_map.npages // 2:
        return -ENOMEM
    return do_mlock(vm, task, start, length, True)


def sys_munlock(vm: Memory, task: Task, start: Any, length: Any) -> int:
    a = _args(start, length)
    if a is None:
        return -EINVAL
    return do_mlock(vm, task, a[0], a[1], False)


def do_mlockall(vm: Memory, task: Task, flags: int) -> int:
    if not capable_ipc_lock(task):
        return -EPERM
    mm = task.mm
    mm.def_flags = VM_LOCKED if flags & MCL_FUTURE else 0
    for v in list(mm.vmas):
        newflags = v.flags | VM_LOCKED if flags & MCL_CURRENT else v.flags & ~VM_LOCKED
        err = mlock_fixup(vm, mm, v, v.start, v.end, newflags)
        if err:
            return err
    return 0


def sys_mlockall(vm: Memory, task: Task, flags: Any) -> int:
    if type(flags) is not int or not flags or flags & ~(MCL_CURRENT | MCL_FUTURE):
        return -EINVAL
    if total_vm(task.mm) > vm.pa.mem_map.npages // 2:
        return -ENOMEM
    return do_mlockall(vm, task, flags)


def sys_munlockall(vm: Memory, task: Task) -> int:
    return do_mlockall(vm, task, 0)

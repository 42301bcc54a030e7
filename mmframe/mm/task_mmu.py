"""``/proc/PID/maps`` as 2.5 printed it (``show_map``; fs/proc of 2.5.4x, the seq_file version):
one line per VMA, ``start-end perms offset dev inode`` and, for a file mapping, the path padded to
column 49 (``25 + sizeof(void *) * 6`` on i386).  Perms are ``r``/``w``/``x`` from VM_READ,
VM_WRITE, VM_EXEC and ``s``/``p`` from VM_MAYSHARE; the offset is ``vm_pgoff << PAGE_SHIFT``.

A mainline 2.5 interface, so it lives in the core; the later per-VMA ``smaps`` report (2.6.14) is
the walker plugin's (plugins/walker/pagewalk.py).  Departures, each because the model has no such
thing: the file system has no device numbers, so ``dev`` prints ``00:00``; a shared anonymous
mapping is 2.5's shmem file ``/dev/zero (deleted)`` (inode 0: shmem's inode numbers are not
modelled); a SysV segment is ``/SYSV<key> (deleted)`` with the segment id as inode, as
``newseg`` set ``i_ino``.  Programs read the lines with the ``proc_maps`` call (mmframe's stand-in
for reading ``/proc/self/maps``: the simulated file system has no /proc).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.mm.page import PAGE_SHIFT
from mmframe.mm.vma import VM_EXEC, VM_MAYSHARE, VM_READ, VM_WRITE

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.vma import VMA
    from mmframe.sched import Task

PATH_COLUMN = 25 + 4 * 6  # pad_len_spaces: 25 + sizeof(void *) * 6, a 4-byte pointer on i386


def vma_file(vma: VMA) -> tuple[int, str] | None:
    """``(inode number, path)`` of what ``vm_file`` would be, or None for anonymous private memory."""
    obj = vma.obj
    if obj is None:
        return None
    inode = getattr(obj, "inode", None)
    if inode is not None:
        return inode.ino, inode.path
    seg = getattr(obj, "shm", None)
    if seg is not None:
        return seg.id, f"/SYSV{seg.key & 0xFFFFFFFF:08x} (deleted)"
    return 0, "/dev/zero (deleted)"


def show_map(vma: VMA) -> str:
    """One line of ``/proc/PID/maps`` (without the newline).  O(1)."""
    f = vma.flags
    named = vma_file(vma)
    ino = named[0] if named else 0
    head = (f"{vma.start:08x}-{vma.end:08x} {'r' if f & VM_READ else '-'}{'w' if f & VM_WRITE else '-'}"
            f"{'x' if f & VM_EXEC else '-'}{'s' if f & VM_MAYSHARE else 'p'} "
            f"{(vma.pgoff << PAGE_SHIFT) & 0xFFFFFFFF:08x} 00:00 {ino} ")
    if named is None:
        return head
    return head + " " * max(PATH_COLUMN - len(head), 1) + named[1]


def proc_pid_maps(mm: Any) -> list[str]:
    """Every line of ``mm``'s maps, in address order.  O(V)."""
    return [show_map(v) for v in mm.vmas]


def sys_proc_maps(vm: Any, task: Task) -> tuple[str, ...]:
    """``proc_maps()``: the calling task's maps lines (what reading /proc/self/maps returns)."""
    return tuple(proc_pid_maps(task.mm)) if task.mm is not None else ()

"""SysV shared memory (2.5's ``ipc/shm.c``): ``shmget``, ``shmat``, ``shmdt``, ``shmctl``.

A segment is a shmem object (:class:`~mmframe.mm.vma.ShmemObject`).  Its id holds one reference
until IPC_RMID; every VMA mapping it holds one (``shm_open`` on attach, fork and split,
``shm_close`` on unmap, exit and exec), so ``shm_nattch`` is the VMA references.  A removed
segment loses its key and lives while attached; the last detach destroys it.  Ids are built as
2.5's ``ipc_buildid``: ``SEQ_MULTIPLIER * seq + index``.

Permissions are 2.5's ``ipcperms``: the owner's (uid or creator uid), else the group's, else the
others' bits of the segment's mode, root (CAP_IPC_OWNER) exempt; IPC_SET and IPC_RMID need the
owner, the creator or root (-EPERM); SHM_LOCK and SHM_UNLOCK need CAP_IPC_LOCK (root), checked
before the id.  An id whose slot now holds another segment is -EIDRM.

``shmctl(IPC_STAT)`` returns a :class:`ShmidDs` record instead of filling a user buffer, and
``IPC_SET`` takes one (only ``uid``, ``gid`` and ``mode`` are used).  The times (atime, dtime,
ctime) are not kept: they are costs, which policies change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from mmframe.mm import mmap as MM
from mmframe.mm.page import PAGE_SHIFT, PAGE_SIZE
from mmframe.mm.pgtable import TASK_SIZE
from mmframe.mm.vma import VM_MAYEXEC, VM_MAYREAD, VM_MAYSHARE, VM_MAYWRITE, VM_READ, VM_SHARED, VM_WRITE, ShmemObject
from mmframe.usr import (EACCES, EEXIST, EFAULT, EIDRM, EINVAL, ENOENT, ENOMEM, ENOSPC, EPERM, IPC_CREAT, IPC_EXCL,
                         IPC_PRIVATE, IPC_RMID, IPC_SET, IPC_STAT, SHM_LOCK, SHM_RDONLY, SHM_REMAP, SHM_RND,
                         SHM_UNLOCK)

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.machine import Machine
    from mmframe.sched import Task

SHMMIN, SHMMNI, SEQ_MULTIPLIER = 1, 4096, 32768
SHMALL = (32 << 20) // PAGE_SIZE * (SHMMNI // 16)  # pages in all segments (2.5's SHMALL)
SHMLBA = PAGE_SIZE


SHM_DEST, SHM_LOCKED = 0o1000, 0o2000  # in the mode IPC_STAT reports (linux/shm.h)


@attrs.frozen(slots=True)
class ShmidDs:
    """What IPC_STAT reports of a segment (``struct shmid64_ds`` less the times)."""

    shmid: int
    key: int
    segsz: int
    nattch: int
    dest: bool
    uid: int = 0
    gid: int = 0
    cuid: int = 0
    cgid: int = 0
    mode: int = 0o600  # the permission bits, with SHM_DEST and SHM_LOCKED
    cpid: int = 0
    lpid: int = 0


class Segment:
    __slots__ = ("id", "index", "key", "size", "obj", "removed", "uid", "gid", "cuid", "cgid", "mode", "cpid",
                 "lpid", "locked")

    def __init__(self, shmid: int, index: int, key: int, size: int, obj: ShmemObject) -> None:
        self.id, self.index, self.key, self.size, self.obj = shmid, index, key, size, obj
        self.removed = False
        self.uid = self.gid = self.cuid = self.cgid = self.cpid = self.lpid = 0
        self.mode = 0o600
        self.locked = False

    def perms(self, task: Any, flag: int) -> bool:
        """``ipcperms``: may ``task`` have the access ``flag`` asks (its 0o700/0o070/0o007 bits)?"""
        requested = (flag >> 6) | (flag >> 3) | flag
        granted = self.mode
        if task.uid in (self.cuid, self.uid):
            granted >>= 6
        elif task.gid in (self.cgid, self.gid):
            granted >>= 3
        return not (requested & ~granted & 0o7) or task.uid == 0

    def owner(self, task: Any) -> bool:
        return task.uid in (self.uid, self.cuid) or task.uid == 0

    @property
    def nattch(self) -> int:
        return self.obj.refs - (0 if self.removed else 1)


class ShmIds:
    """The machine's shm id table and its system calls."""

    def __init__(self, machine: Machine) -> None:
        self.m, self.vm = machine, machine.mm
        self.by_index: dict[int, Segment] = {}
        self.by_key: dict[int, Segment] = {}
        self.seq = 0
        self.pages = 0  # shm_tot

    def lookup(self, shmid: Any) -> Segment | None:
        if type(shmid) is not int or shmid < 0:
            return None
        seg = self.by_index.get(shmid % SEQ_MULTIPLIER)
        return seg if seg is not None and seg.id == shmid else None

    def lookup_err(self, shmid: Any) -> Segment | int:
        """``shm_lock`` + ``shm_checkid``: the segment, -EINVAL for an empty slot, -EIDRM for a
        slot another segment now holds."""
        seg = self.lookup(shmid)
        if seg is not None:
            return seg
        if type(shmid) is int and shmid >= 0 and shmid % SEQ_MULTIPLIER in self.by_index:
            return -EIDRM
        return -EINVAL

    def _newseg(self, key: int, size: int, task: Any = None, flags: int = 0o600) -> int:
        if not SHMMIN <= size <= self.m.config.shmmax:
            return -EINVAL
        npages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT
        if self.pages + npages >= SHMALL:
            return -ENOSPC
        index = next((i for i in range(SHMMNI) if i not in self.by_index), None)
        if index is None:
            return -ENOSPC
        obj = self.vm.new_shmem_object(npages)  # shmem_file_setup: charged to the committed total
        if obj is None:
            return -ENOMEM
        seg = Segment(SEQ_MULTIPLIER * self.seq + index, index, key, size, obj)
        seg.mode = flags & 0o777
        if task is not None:
            seg.uid = seg.cuid = task.uid
            seg.gid = seg.cgid = task.gid
            seg.cpid = task.pid
        self.seq = (self.seq + 1) % (0x7FFF_FFFF // SEQ_MULTIPLIER)
        obj.shm = seg
        obj.on_release = lambda _obj: self._destroy(seg)
        self.by_index[index] = seg
        if key != IPC_PRIVATE:
            self.by_key[key] = seg
        self.pages += npages
        return seg.id

    def _destroy(self, seg: Segment) -> None:
        del self.by_index[seg.index]
        if self.by_key.get(seg.key) is seg:
            del self.by_key[seg.key]
        self.pages -= seg.obj.npages

    # --- system calls ---------------------------------------------------------------------------
    def sys_shmget(self, task: Task, key: Any, size: Any, flags: Any) -> int:
        if any(type(x) is not int for x in (key, size, flags)):
            return -EINVAL
        if key == IPC_PRIVATE:
            return self._newseg(key, size, task, flags)
        seg = self.by_key.get(key)
        if seg is None:
            if not flags & IPC_CREAT:
                return -ENOENT
            return self._newseg(key, size, task, flags)
        if flags & IPC_CREAT and flags & IPC_EXCL:
            return -EEXIST
        if seg.size < size:
            return -EINVAL
        if not seg.perms(task, flags):
            return -EACCES
        return seg.id

    def sys_shmat(self, task: Task, shmid: Any, addr: Any = 0, flags: Any = 0) -> int:
        if type(addr) is not int or type(flags) is not int:
            return -EINVAL
        seg = self.lookup_err(shmid)
        if isinstance(seg, int):
            return seg
        if not seg.perms(task, 0o444 if flags & SHM_RDONLY else 0o666):
            return -EACCES
        mm = task.mm
        size = seg.obj.npages << PAGE_SHIFT
        if addr:
            if addr & (SHMLBA - 1):
                if not flags & SHM_RND:
                    return -EINVAL
                addr &= ~(SHMLBA - 1)
            if addr < 0 or addr + size > TASK_SIZE:
                return -EINVAL
            if not flags & SHM_REMAP and mm.vmas.overlapping(addr, addr + size):
                return -EINVAL
        else:
            if flags & SHM_REMAP:
                return -EINVAL
            found = MM.get_unmapped_area(mm, 0, size)
            if found is None:
                return -ENOMEM
            addr = found
        if flags & SHM_RDONLY:  # a read-only shm file: shared, but never writable
            vmflags = VM_READ | VM_MAYREAD | VM_MAYEXEC | VM_MAYSHARE
        else:
            vmflags = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC | VM_SHARED | VM_MAYSHARE
        r = MM.do_mmap(self.vm, task, seg.obj, addr, size, vmflags, 0)
        if r >= 0:
            seg.lpid = task.pid
        return r

    def sys_shmdt(self, task: Task, addr: Any) -> int:
        """Unmap every VMA of a segment attached at ``addr``; -EINVAL if there is none."""
        if type(addr) is not int:
            return -EINVAL
        mm, found = task.mm, -EINVAL
        for v in list(mm.vmas):
            shm = getattr(v.obj, "shm", None)
            if shm is not None and v.start - (v.pgoff << PAGE_SHIFT) == addr:
                shm.lpid = task.pid
                MM.do_munmap(self.vm, task, v.start, v.end - v.start)
                found = 0
        return found

    def sys_shmctl(self, task: Task, shmid: Any, cmd: Any, buf: Any = None) -> Any:
        """IPC_STAT (read permission), IPC_SET and IPC_RMID (owner, creator or root), SHM_LOCK and
        SHM_UNLOCK (root, checked before the id); other commands -EINVAL."""
        if type(cmd) is not int or type(shmid) is not int or cmd < 0 or shmid < 0:
            return -EINVAL
        if cmd in (SHM_LOCK, SHM_UNLOCK):
            if task.uid != 0:
                return -EPERM
            seg = self.lookup_err(shmid)
            if isinstance(seg, int):
                return seg
            seg.locked = cmd == SHM_LOCK  # shmem_lock: its pages stay in memory
            return 0
        if cmd not in (IPC_RMID, IPC_STAT, IPC_SET):
            return -EINVAL
        seg = self.lookup_err(shmid)
        if isinstance(seg, int):
            return seg
        if cmd == IPC_STAT:
            if not seg.perms(task, 0o444):
                return -EACCES
            mode = seg.mode | (SHM_DEST if seg.removed else 0) | (SHM_LOCKED if seg.locked else 0)
            return ShmidDs(seg.id, IPC_PRIVATE if seg.removed else seg.key, seg.size, seg.nattch, seg.removed,
                           seg.uid, seg.gid, seg.cuid, seg.cgid, mode, seg.cpid, seg.lpid)
        if not seg.owner(task):
            return -EPERM
        if cmd == IPC_SET:
            if not isinstance(buf, ShmidDs):
                return -EFAULT
            seg.uid, seg.gid = buf.uid, buf.gid
            seg.mode = seg.mode & ~0o777 | buf.mode & 0o777
            return 0
        if not seg.removed:
            seg.removed = True
            if self.by_key.get(seg.key) is seg:
                del self.by_key[seg.key]
            self.vm.put_object(seg.obj)
        return 0

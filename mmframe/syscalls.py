"""The system call table: every call a simulated program can make, the subsystem serving it, and
its handler, declared in one place and bound once when a machine is built.

To add a system call: write its handler -- a method of the subsystem (``Memory``, ``FileSystem``,
``Scheduler``, ``ShmIds``, or one the block layer adds), or a module function whose first argument
is that subsystem, as :mod:`mmframe.mm.mmap`'s are -- taking ``(subsystem, task, *args)``, then add
one line to :data:`SYSCALLS`.  The ``subsystem`` is the :class:`~mmframe.machine.Machine` attribute
holding it (``"mm"``, ``"fs"``, ``"sched"``, ``"shm"``).  Binding makes a plain bound method per call
(:func:`bind`), so dispatch costs what a method call does.  A model swapped in for a subsystem
(the oracle, :func:`mmframe.mm.oracle.install`) binds its own table over the same names.
"""

from __future__ import annotations

from types import MethodType
from typing import TYPE_CHECKING, Any, Callable, Mapping

from mmframe.aio import Aio
from mmframe.fs import FileSystem
from mmframe.mm import madvise, mlock, mmap, mremap, task_mmu
from mmframe.mm.memory import Memory
from mmframe.mm.pdflush import Pdflush
from mmframe.mm.shm import ShmIds
from mmframe.sched import Scheduler

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.machine import Machine

#: name -> (the Machine attribute serving it, handler taking that subsystem, the task, the call's arguments)
SYSCALLS: dict[str, tuple[str, Callable[..., Any]]] = {
    # processes (kernel/fork.c, kernel/exit.c, fs/exec.c, kernel/sched.c, kernel/timer.c)
    "fork": ("sched", Scheduler.sys_fork),
    "clone": ("sched", Scheduler.sys_clone),
    "execve": ("sched", Scheduler.sys_execve),
    "exit": ("sched", Scheduler.sys_exit),
    "wait": ("sched", Scheduler.sys_wait),
    "getpid": ("sched", Scheduler.sys_getpid),
    "sched_yield": ("sched", Scheduler.sys_sched_yield),
    "sleep": ("sched", Scheduler.sys_sleep),
    "signal": ("sched", Scheduler.sys_signal),
    "getuid": ("sched", Scheduler.sys_getuid),
    "setuid": ("sched", Scheduler.sys_setuid),
    "setgid": ("sched", Scheduler.sys_setgid),
    "kswapd": ("sched", Scheduler.sys_kswapd),  # the kswapd kernel thread's body (mm/vmscan.c), not a user call
    "pdflush": ("pdflush", Pdflush.round),  # a pdflush kernel thread's round (mm/pdflush.c), not a user call
    # user memory accesses (a load, a store, an access to every page of a range)
    "read": ("mm", Memory.sys_read),
    "write": ("mm", Memory.sys_write),
    "touch": ("mm", Memory.sys_touch),
    "load": ("mm", Memory.sys_load),  # memcpy out of memory: bytes
    "store": ("mm", Memory.sys_store),  # memcpy into memory
    "setsp": ("mm", Memory.sys_setsp),  # the task's %esp, for the stack-growth rule
    # the address space (mm/mmap.c, mm/mprotect.c, mm/msync.c)
    "mmap": ("mm", mmap.sys_mmap),
    "munmap": ("mm", mmap.sys_munmap),
    "mprotect": ("mm", mmap.sys_mprotect),
    "msync": ("mm", mmap.sys_msync),
    "brk": ("mm", mmap.sys_brk),
    # mm/mremap.c, mm/mlock.c, mm/madvise.c, mm/filemap.c (mincore)
    "mremap": ("mm", mremap.sys_mremap),
    "mlock": ("mm", mlock.sys_mlock),
    "munlock": ("mm", mlock.sys_munlock),
    "mlockall": ("mm", mlock.sys_mlockall),
    "munlockall": ("mm", mlock.sys_munlockall),
    "madvise": ("mm", madvise.sys_madvise),
    "mincore": ("mm", madvise.sys_mincore),
    # /proc/PID/maps (fs/proc): mmframe's call for reading /proc/self/maps
    "proc_maps": ("mm", task_mmu.sys_proc_maps),
    # files (fs/open.c, fs/read_write.c, fs/buffer.c)
    "open": ("fs", FileSystem.sys_open),
    "close": ("fs", FileSystem.sys_close),
    "pread": ("fs", FileSystem.sys_pread),
    "pwrite": ("fs", FileSystem.sys_pwrite),
    "ftruncate": ("fs", FileSystem.sys_ftruncate),
    "fsync": ("fs", FileSystem.sys_fsync),
    "fd_read": ("fs", FileSystem.sys_fd_read),  # read(fd, buf, count)
    "fd_write": ("fs", FileSystem.sys_fd_write),  # write(fd, buf, count)
    "lseek": ("fs", FileSystem.sys_lseek),
    "llseek": ("fs", FileSystem.sys_llseek),
    "readv": ("fs", FileSystem.sys_readv),
    "writev": ("fs", FileSystem.sys_writev),
    # names (fs/namei.c, fs/stat.c) and pipes (fs/pipe.c)
    "unlink": ("fs", FileSystem.sys_unlink),
    "rename": ("fs", FileSystem.sys_rename),
    "mkdir": ("fs", FileSystem.sys_mkdir),
    "stat": ("fs", FileSystem.sys_stat),
    "fstat": ("fs", FileSystem.sys_fstat),
    "pipe": ("fs", FileSystem.sys_pipe),
    "fcntl": ("fs", FileSystem.sys_fcntl),
    # asynchronous I/O (fs/aio.c)
    "io_setup": ("aio", Aio.sys_io_setup),
    "io_submit": ("aio", Aio.sys_io_submit),
    "io_getevents": ("aio", Aio.sys_io_getevents),
    "io_destroy": ("aio", Aio.sys_io_destroy),
    "io_cancel": ("aio", Aio.sys_io_cancel),
    "sync": ("fs", FileSystem.sys_sync),
    # SysV shared memory (ipc/shm.c)
    "shmget": ("shm", ShmIds.sys_shmget),
    "shmat": ("shm", ShmIds.sys_shmat),
    "shmdt": ("shm", ShmIds.sys_shmdt),
    "shmctl": ("shm", ShmIds.sys_shmctl),
}


def bind(machine: Machine, table: Mapping[str, tuple[str, Callable[..., Any]]] = SYSCALLS) -> dict[str, Callable[..., Any]]:
    """Each call's handler bound to the machine's subsystem: name -> ``handler(task, *args)``."""
    return {name: MethodType(fn, getattr(machine, owner)) for name, (owner, fn) in table.items()}

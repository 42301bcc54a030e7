"""The semantic reference model of an address space: what memory *contains*, with no page tables,
no physical pages and no costs beyond TLB accounting.

It answers the program-visible questions (which value a read returns, which access raises SIGSEGV
or SIGBUS with which si_code, what the calls return) the way 2.5.49 does for anonymous and
file-backed mappings and buffered file I/O (:class:`OracleFS`: a file is its pages' contents, with
no page cache, device or dirty state); programs compared against it use no shm, brk or exec.
The real model (:mod:`mmframe.mm.memory`) is checked against it differentially: a test swaps it into
a machine (:func:`install`) and compares what programs see.  Complexity: O(log V) per access for V mappings.
"""

from __future__ import annotations

from types import MethodType
from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedDict

from mmframe.usr import (BUS_ADRERR, EACCES, EBADF, EFAULT, EINVAL, EISDIR, EMFILE, ENOENT, ENOMEM,
                         MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, MS_ASYNC, MS_INVALIDATE, MS_SYNC,
                         O_CREAT, O_DIRECT, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY, PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE,
                         SEGV_ACCERR, SEGV_MAPERR, SIGBUS, SIGSEGV, SimSignal)

from mmframe.mm.memory import Memory

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.machine import Machine
    from mmframe.sched import Task


# The argument rules of open(2) and pread/pwrite, stated here rather than taken from mmframe.fs
# (a checker never borrows the code it checks).  open: a path is a non-empty string not naming a
# directory ("/" is one: EISDIR; a trailing "/" names nothing here: ENOENT); the access mode is
# O_RDONLY, O_WRONLY or O_RDWR (the fourth value, 3, is EINVAL); the result is what the file may be
# used for (1 read, 2 write).  pread/pwrite: integers, a count and offset not negative; a page-aligned
# buffer and offset (mmframe's rule: a page's content is one tag, so buffered I/O moves whole pages).
_ACCESS = {O_RDONLY: 1, O_WRONLY: 2, O_RDWR: 1 | 2}


def _open_rule(path: Any, flags: Any) -> int:
    if type(path) is not str or type(flags) is not int:
        return -EINVAL
    if path == "/":
        return -EISDIR
    if path == "" or path[-1] == "/":
        return -ENOENT
    return _ACCESS.get(flags & 3, -EINVAL)


def _io_rule(addr: Any, length: Any, offset: Any) -> int:
    if not all(type(x) is int for x in (addr, length, offset)):
        return -EINVAL
    if length < 0 or offset < 0 or offset % PAGE_SIZE or addr % PAGE_SIZE:
        return -EINVAL
    return 0

TASK_SIZE = 0xC000_0000
TASK_UNMAPPED_BASE = 0x4000_0000  # PAGE_ALIGN(TASK_SIZE / 3)
PAGE_SHIFT = 12


class OFile:
    """A file: its size and its pages' contents, ``index -> (tag, offset where zeroes start)``."""

    __slots__ = ("size", "pages", "writable")

    def __init__(self, writable: bool = True) -> None:
        self.size, self.pages, self.writable = 0, {}, writable

    def npages(self) -> int:
        return (self.size + PAGE_SIZE - 1) >> PAGE_SHIFT


class Area:
    """A mapping [start, end) with its protection and the object that holds its data: a shared
    one's object is keyed by page offset, a private one's is the mm's private pages by page
    number; a file mapping names its file (a private one reads it where it has no copy)."""

    __slots__ = ("start", "end", "prot", "shared", "obj", "pgoff", "file", "maywrite")

    def __init__(self, start: int, end: int, prot: int, shared: bool, obj: dict[int, Any], pgoff: int,
                 file: OFile | None = None, maywrite: bool = True) -> None:
        self.start, self.end, self.prot, self.shared, self.obj, self.pgoff = start, end, prot, shared, obj, pgoff
        self.file, self.maywrite = file, maywrite

    def clone(self, start: int, end: int) -> Area:
        return Area(start, end, self.prot, self.shared, self.obj,
                    self.pgoff + ((start - self.start) >> PAGE_SHIFT), self.file, self.maywrite)


def _content(v: Any, addr: int) -> int:
    """What a read at ``addr`` sees of a page: a tag, or a file page's tag with its zeroed tail."""
    if type(v) is tuple:
        tag, tail = v
        return 0 if tail is not None and addr & (PAGE_SIZE - 1) >= tail else tag
    return v


class OracleMM:
    """An address space: areas keyed by start; private data in ``private`` by page number."""

    __slots__ = ("areas", "private", "users", "cpu_vm_mask")

    def __init__(self) -> None:
        self.areas: SortedDict = SortedDict()
        self.private: dict[int, int] = {}
        self.users = 1
        self.cpu_vm_mask: set[int] = set()

    def find(self, addr: int) -> Area | None:
        i = self.areas.bisect_right(addr) - 1
        if i < 0:
            return None
        a = self.areas.peekitem(i)[1]
        return a if addr < a.end else None

    def overlapping(self, start: int, end: int) -> list[Area]:
        i = max(self.areas.bisect_right(start) - 1, 0)
        out = []
        for a in self.areas.values()[i:]:
            if a.start >= end:
                break
            if a.end > start:
                out.append(a)
        return out


class OracleMemory:
    """The memory subsystem interface the scheduler and syscall table use, on the oracle model."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine

    # --- lifecycle ------------------------------------------------------------------------
    def task_created(self, pid: int) -> bool:
        return True

    def task_released(self, pid: int) -> None:
        pass

    def reverse_maps(self) -> int:
        return 0

    def highmem_pte_pages(self) -> int:
        return 0

    def check(self) -> None:
        pass

    def new_mm(self) -> OracleMM:
        return OracleMM()

    def dup_mm(self, task: Task) -> OracleMM:
        old, new = task.mm, OracleMM()
        new.private = dict(old.private)
        for start, a in old.areas.items():  # areas are never mutated in place, so shared ones are shared
            new.areas[start] = a if a.shared else Area(a.start, a.end, a.prot, False, new.private, a.pgoff,
                                                        a.file, a.maywrite)
        return new

    def exit_mm(self, task: Task) -> None:
        task.mm.users -= 1
        task.mm = None

    # --- accesses -------------------------------------------------------------------------
    def _access(self, mm: OracleMM, addr: int, write: bool) -> Area:
        a = mm.find(addr)
        if a is None:
            raise SimSignal(SIGSEGV, SEGV_MAPERR, addr)
        if not (a.prot & (PROT_WRITE if write else PROT_READ | PROT_EXEC)):  # i386: exec implies read
            raise SimSignal(SIGSEGV, SEGV_ACCERR, addr)
        return a

    def _key(self, a: Area, addr: int) -> int:
        return a.pgoff + ((addr - a.start) >> PAGE_SHIFT) if a.shared else addr >> PAGE_SHIFT

    def _file_page(self, a: Area, addr: int) -> int:
        """The file page index under ``addr``; SIGBUS past the end of the file."""
        index = a.pgoff + ((addr - a.start) >> PAGE_SHIFT)
        if index >= a.file.npages():
            raise SimSignal(SIGBUS, BUS_ADRERR, addr)
        return index

    def _page(self, task: Task, addr: int, write: bool) -> tuple[Area, int, Any]:
        """The area, the key of its page in ``area.obj``, and what the page holds now."""
        mm = task.mm
        a = self._access(mm, addr, write)
        if a.file is None:
            key = self._key(a, addr)
            return a, key, a.obj.get(key, 0)
        index = self._file_page(a, addr)
        if a.shared:
            return a, index, a.file.pages.get(index, 0)
        vpn = addr >> PAGE_SHIFT
        return a, vpn, mm.private[vpn] if vpn in mm.private else a.file.pages.get(index, 0)

    def sys_read(self, task: Task, addr: int) -> int:
        return _content(self._page(task, addr, False)[2], addr)

    def sys_write(self, task: Task, addr: int, tag: int) -> int:
        if type(tag) is not int or tag >> 63 not in (0, -1):
            return -EINVAL  # a page's content tag is a 64-bit signed integer
        a, key, _ = self._page(task, addr, True)
        a.obj[key] = tag if a.file is None or not a.shared else (tag, None)
        return 0

    def sys_touch(self, task: Task, start: int, length: int, write: bool = False) -> int:
        if length < 0:
            return -EINVAL
        addr = start & ~(PAGE_SIZE - 1)
        while addr < start + length:
            a, key, now = self._page(task, addr, write)
            if write and not a.shared:  # a private page gets its own copy (zero-filled if anonymous)
                a.obj.setdefault(key, now)
            addr += PAGE_SIZE
        return 0

    copy_to_user = Memory.copy_to_user  # a store that may fault: -EFAULT instead of the signal

    copy_from_user = Memory.copy_from_user  # a load of the page's first byte that may fault

    def truncated(self, file: OFile, first: int) -> None:
        """``vmtruncate``'s zap: private copies of the file's pages from ``first`` on go."""
        for mm in {id(t.mm): t.mm for t in self.m.sched.tasks.values() if t.mm is not None}.values():
            for a in list(mm.areas.values()):
                if a.file is file and not a.shared:
                    for addr in range(a.start, a.end, PAGE_SIZE):
                        if a.pgoff + ((addr - a.start) >> PAGE_SHIFT) >= first:
                            mm.private.pop(addr >> PAGE_SHIFT, None)

    # --- mappings -------------------------------------------------------------------------
    def _unmapped_area(self, mm: OracleMM, hint: int, length: int) -> int | None:
        if hint > 0:  # the hint rounded up, if free; else the lowest gap from TASK_UNMAPPED_BASE
            hint = (hint + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
            if hint + length <= TASK_SIZE and not mm.overlapping(hint, hint + length):
                return hint
        addr = TASK_UNMAPPED_BASE
        for a in mm.overlapping(addr, TASK_SIZE):
            if addr + length <= a.start:
                return addr
            addr = max(addr, a.end)
        return addr if addr + length <= TASK_SIZE else None

    def sys_mmap(self, task: Task, addr: int, length: int, prot: int, flags: int, fd: int = -1,
                 offset: int = 0) -> int:
        mm = task.mm
        if offset & (PAGE_SIZE - 1) or offset < 0:
            return -EINVAL
        desc = None
        if not flags & MAP_ANONYMOUS:
            desc = self.m.fs.fget(task, fd)
            if desc is None:
                return -EBADF
        if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC):
            return -EINVAL
        # addr and len are unsigned longs (32 bits): a negative length is 2**32 less its size
        addr, length = addr % (1 << 32), length % (1 << 32)
        if length == 0:
            return addr  # 2.5.49 do_mmap_pgoff: "if (!len) return addr;"
        pages = -(-length // PAGE_SIZE)
        if pages * PAGE_SIZE >= 1 << 32 or pages * PAGE_SIZE > TASK_SIZE:  # PAGE_ALIGN overflowed, or too big
            return -EINVAL
        length = pages * PAGE_SIZE
        if flags & MAP_FIXED:
            if addr & (PAGE_SIZE - 1) or addr + length > TASK_SIZE:
                return -EINVAL
        else:
            found = self._unmapped_area(mm, addr, length)
            if found is None:
                return -ENOMEM
            addr = found
        mtype = flags & (MAP_SHARED | MAP_PRIVATE)
        if mtype not in (MAP_SHARED, MAP_PRIVATE):
            return -EINVAL
        shared, maywrite = mtype == MAP_SHARED, True
        if desc is not None:
            if shared and prot & PROT_WRITE and not desc.mode & 2:
                return -EACCES
            if not desc.mode & 1:
                return -EACCES
            if shared and not desc.mode & 2:
                maywrite = False  # a read-only file: shared, never writable
        self._unmap(task, addr, length)
        file = desc.inode if desc is not None else None
        if shared:
            obj = file.pages if file is not None else {}
        else:
            obj = mm.private
        mm.areas[addr] = Area(addr, addr + length, prot, shared, obj, offset >> PAGE_SHIFT, file, maywrite)
        return addr

    def _unmap(self, task: Task, start: int, length: int) -> None:
        mm, end = task.mm, start + length
        hit = mm.overlapping(start, end)
        for a in hit:
            del mm.areas[a.start]
            if a.start < start:
                mm.areas[a.start] = a.clone(a.start, start)
            if a.end > end:
                mm.areas[end] = a.clone(end, a.end)
            if not a.shared:
                for page in range(max(a.start, start) >> PAGE_SHIFT, min(a.end, end) >> PAGE_SHIFT):
                    mm.private.pop(page, None)
        if hit:
            self.m.tlb.flush_tlb_range(mm, task.cpu, start, end)

    def sys_munmap(self, task: Task, addr: int, length: int) -> int:
        if addr & (PAGE_SIZE - 1) or length <= 0 or addr + length > TASK_SIZE:
            return -EINVAL
        self._unmap(task, addr, (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
        return 0

    def sys_mprotect(self, task: Task, addr: int, length: int, prot: int) -> int:
        if addr & (PAGE_SIZE - 1) or prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC) or length < 0:
            return -EINVAL
        end = addr + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
        if end == addr:
            return 0
        if end > TASK_SIZE:
            return -ENOMEM
        mm, at, err, downgrade = task.mm, addr, 0, False
        a = mm.find(addr)
        if a is None:
            return -ENOMEM
        while True:  # 2.5: area by area; a hole stops it with -ENOMEM, the areas before changed
            if prot & PROT_WRITE and not a.maywrite:
                err = -EACCES
                break
            stop = min(end, a.end)
            if a.prot != prot:
                del mm.areas[a.start]
                if a.start < at:
                    mm.areas[a.start] = a.clone(a.start, at)
                if a.end > stop:
                    mm.areas[stop] = a.clone(stop, a.end)
                mid = a.clone(at, stop)
                downgrade |= bool(a.prot & ~prot)
                mid.prot = prot
                mm.areas[mid.start] = mid
            if stop >= end:
                break
            at = stop
            a = mm.find(at)
            if a is None:
                err = -ENOMEM
                break
        if downgrade:
            self.m.tlb.flush_tlb_range(mm, task.cpu, addr, end)
        return err

    def sys_msync(self, task: Task, addr: int, length: int, flags: int = MS_SYNC) -> int:
        """Contents are always coherent here: only the checks and the hole's -ENOMEM remain."""
        if addr & (PAGE_SIZE - 1) or flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or length < 0 or \
                (flags & MS_ASYNC and flags & MS_SYNC):
            return -EINVAL
        end = addr + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
        covered = addr
        for a in task.mm.overlapping(addr, end):
            if a.start > covered:
                return -ENOMEM
            covered = a.end
        return -ENOMEM if end > addr and covered < end else 0


class ODesc:
    """An open file description: its file and access mode (1 read, 2 write)."""

    __slots__ = ("inode", "mode")

    def __init__(self, inode: OFile, mode: int) -> None:
        self.inode, self.mode = inode, mode


class OracleFS:
    """The file calls on :class:`OFile` contents: what 2.5.49's buffered I/O lets a program see."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.files: dict[str, OFile] = {}

    def disk_state(self) -> None:
        """No device here: contents are always coherent, so there is nothing to compare."""
        return None

    def dup_files(self, parent: Task, child: Task, share: bool) -> None:
        if parent.files is not None:
            child.files = parent.files if share else dict(parent.files)

    def exit_files(self, task: Task) -> None:
        task.files = None

    def fget(self, task: Task, fd: Any, mode: int = 3) -> ODesc | None:
        f = (task.files or {}).get(fd) if type(fd) is int else None
        return f if f is not None and f.mode & mode else None

    def sys_open(self, task: Task, path: Any, flags: int = 0) -> int:
        mode = _open_rule(path, flags)
        if mode < 0:
            return mode
        f = self.files.get(path)
        if f is None:
            if not flags & O_CREAT:
                return -ENOENT
            f = self.files[path] = OFile()
        if (mode & 2 or flags & O_TRUNC) and not f.writable:
            return -EACCES
        if flags & O_DIRECT:
            return -EINVAL
        table = task.files = task.files if task.files is not None else {}
        fd = next((i for i in range(1024) if i not in table), None)
        if fd is None:
            return -EMFILE
        if flags & O_TRUNC:
            self.truncate(f, 0)
        table[fd] = ODesc(f, mode)
        return fd

    def sys_close(self, task: Task, fd: Any) -> int:
        return 0 if type(fd) is int and (task.files or {}).pop(fd, None) is not None else -EBADF

    def _check(self, task: Task, fd: Any, addr: Any, length: Any, offset: Any, mode: int) -> ODesc | int:
        f = self.fget(task, fd, mode)
        if f is None:
            return -EBADF
        return _io_rule(addr, length, offset) or f

    def sys_pread(self, task: Task, fd: Any, addr: int, length: int, offset: int) -> int:
        f = self._check(task, fd, addr, length, offset, 1)
        if isinstance(f, int):
            return f
        file, vm = f.inode, self.m.mm
        n, done = max(0, min(length, file.size - offset)), 0
        while done < n:
            v = file.pages.get((offset + done) >> PAGE_SHIFT, 0)
            if not vm.copy_to_user(task, addr + done, v[0] if type(v) is tuple else v):
                return done or -EFAULT
            done = min(n, done + PAGE_SIZE)
        return done

    def sys_pwrite(self, task: Task, fd: Any, addr: int, length: int, offset: int) -> int:
        f = self._check(task, fd, addr, length, offset, 2)
        if isinstance(f, int):
            return f
        file, vm, done = f.inode, self.m.mm, 0
        while done < length:
            index = (offset + done) >> PAGE_SHIFT
            tag = vm.copy_from_user(task, addr + done)
            if tag is None:
                return done or -EFAULT
            done = min(length, done + PAGE_SIZE)
            file.size = max(file.size, offset + done)
            tail = file.size & (PAGE_SIZE - 1) if index == file.size >> PAGE_SHIFT else 0
            file.pages[index] = (tag, tail or None)
        return done

    def truncate(self, file: OFile, size: int) -> None:
        old, file.size = file.size, size
        if size >= old:
            return
        first = (size + PAGE_SIZE - 1) >> PAGE_SHIFT
        for index in [i for i in file.pages if i >= first]:
            del file.pages[index]
        self.m.mm.truncated(file, first)
        v = file.pages.get(size >> PAGE_SHIFT)
        if size & (PAGE_SIZE - 1) and v is not None:
            tag, tail = v if type(v) is tuple else (v, None)
            file.pages[size >> PAGE_SHIFT] = (tag, min(tail or PAGE_SIZE, size & (PAGE_SIZE - 1)))

    def sys_ftruncate(self, task: Task, fd: Any, length: Any) -> int:
        f = self.fget(task, fd)
        if f is None:
            return -EBADF
        if type(length) is not int or length < 0 or not f.mode & 2:
            return -EINVAL
        self.truncate(f.inode, length)
        return 0

    def sys_fsync(self, task: Task, fd: Any) -> int:
        return 0 if self.fget(task, fd) is not None else -EBADF


#: The calls the oracle answers in place of the real model (the rest keep the machine's handlers).
ORACLE_MM_SYSCALLS = {name: ("mm", getattr(OracleMemory, "sys_" + name))
                      for name in ("mmap", "munmap", "mprotect", "msync", "read", "write", "touch")}
ORACLE_FS_SYSCALLS = {name: ("fs", getattr(OracleFS, "sys_" + name))
                      for name in ("open", "close", "pread", "pwrite", "ftruncate", "fsync")}


def install(machine: Machine, files: bool = False) -> Machine:
    """Swap the oracle in for ``machine``'s memory model (and its file system when ``files``) and
    bind the calls it answers, as :func:`mmframe.syscalls.bind` binds the machine's own."""
    machine.mm = OracleMemory(machine)
    table = dict(ORACLE_MM_SYSCALLS)
    if files:
        machine.fs = OracleFS(machine)
        table.update(ORACLE_FS_SYSCALLS)
    machine.sched.handlers.update({n: MethodType(fn, getattr(machine, owner)) for n, (owner, fn) in table.items()})
    return machine

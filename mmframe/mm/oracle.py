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

from mmframe.usr import (BUS_ADRERR, EACCES, EAGAIN, EBADF, EEXIST, EFAULT, EFBIG, EINVAL, EISDIR, EMFILE, ENODEV,
                         ENOENT, ENOMEM, ENOTDIR, ENOTEMPTY, EOVERFLOW, EPERM, EPIPE, ESPIPE, MAP_ANONYMOUS, MAP_FIXED,
                         MAP_LOCKED, MAP_PRIVATE, MAP_SHARED, MS_ASYNC, MS_INVALIDATE, MS_SYNC, O_APPEND, O_CREAT,
                         O_DIRECT, O_EXCL, O_LARGEFILE, O_NONBLOCK, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY, PAGE_SIZE,
                         PROT_EXEC, PROT_READ, PROT_WRITE, SEGV_ACCERR, SEGV_MAPERR, SIGBUS, SIGPIPE, SIGSEGV, SIGXFSZ,
                         SimSignal)

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
    if path == "":
        return -ENOENT  # (directories and trailing slashes are the names' business: sys_open)
    return _ACCESS.get(flags & 3, -EINVAL)


def _io_rule(addr: Any, length: Any, offset: Any) -> int:
    if not all(type(x) is int for x in (addr, length, offset)):
        return -EINVAL
    if length < 0 or offset < 0:  # any byte offset and buffer
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

    __slots__ = ("start", "end", "prot", "shared", "obj", "pgoff", "file", "maywrite", "locked", "anon",
                 "account", "hint")

    def __init__(self, start: int, end: int, prot: int, shared: bool, obj: dict[int, Any], pgoff: int,
                 file: OFile | None = None, maywrite: bool = True) -> None:
        self.start, self.end, self.prot, self.shared, self.obj, self.pgoff = start, end, prot, shared, obj, pgoff
        self.file, self.maywrite, self.locked = file, maywrite, False
        # what decides whether two areas are one VMA (see merge_around): MAP_ANONYMOUS private,
        # charged to the commit (VM_ACCOUNT: anonymous, or private and writable when made),
        # madvise's read hint
        self.anon, self.account, self.hint = False, False, 0

    def clone(self, start: int, end: int) -> Area:
        a = Area(start, end, self.prot, self.shared, self.obj,
                 self.pgoff + ((start - self.start) >> PAGE_SHIFT), self.file, self.maywrite)
        a.locked, a.anon, a.account, a.hint = self.locked, self.anon, self.account, self.hint
        return a

    def joins(self, b: Area) -> bool:
        """2.5.49's ``can_vma_merge`` for ``b`` right after this area: both anonymous private, and
        their flags equal (protection, VM_LOCKED, VM_ACCOUNT, the read hint)."""
        return (self.end == b.start and self.anon and b.anon and self.prot == b.prot and self.locked == b.locked
                and self.account == b.account and self.hint == b.hint)


class SharedAnon(dict):
    """The pages of a shared anonymous mapping, by page offset, and its size: past it, SIGBUS."""

    __slots__ = ("npages",)

    def __init__(self, npages: int) -> None:
        super().__init__()
        self.npages = npages


def _bytes(v: Any) -> bytes:
    """The 4096 bytes of a page value: a tag stands for its eight little-endian bytes over and over,
    a ``(tag, tail)`` pair for that with zeroes from ``tail``, ``bytes`` for themselves."""
    if type(v) is bytes:
        return v
    tag, tail = v if type(v) is tuple else (v, None)
    whole = bytes((tag >> (8 * (i % 8))) & 0xFF for i in range(8)) * (PAGE_SIZE // 8)
    return whole if tail is None else whole[:tail] + b"\0" * (PAGE_SIZE - tail)


def _content(v: Any, addr: int) -> int:
    """What a read at ``addr`` sees of a page: the signed 64-bit little-endian word holding it."""
    if type(v) is int:
        return v
    off = addr & (PAGE_SIZE - 8)
    word = int.from_bytes(_bytes(v)[off:off + 8], "little")
    return word - (1 << 64) if word >> 63 else word


def _splice(v: Any, off: int, data: bytes) -> bytes:
    b = _bytes(v)
    return b[:off] + data + b[off + len(data):]


def _chunks(addr: int, n: int):
    """``[addr, addr + n)`` cut at page boundaries: (address, length) pieces."""
    end = addr + n
    while addr < end:
        k = min(end - addr, PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
        yield addr, k
        addr += k


class OracleMM:
    """An address space: areas keyed by start; private data in ``private`` by page number."""

    __slots__ = ("areas", "private", "users", "cpu_vm_mask", "lock_future")

    def __init__(self) -> None:
        self.areas: SortedDict = SortedDict()
        self.private: dict[int, int] = {}
        self.users = 1
        self.cpu_vm_mask: set[int] = set()
        self.lock_future = False  # mlockall(MCL_FUTURE): new mappings are locked

    def find(self, addr: int) -> Area | None:
        i = self.areas.bisect_right(addr) - 1
        if i < 0:
            return None
        a = self.areas.peekitem(i)[1]
        return a if addr < a.end else None

    def merge_around(self, start: int, end: int) -> None:
        """Where 2.5.49 merges VMAs -- a new anonymous private mapping with both neighbours
        (``vma_merge``), the areas an ``mprotect`` changed with theirs, an anonymous area mremap
        moved -- adjacent areas that :meth:`Area.joins` allows become one.  Only mremap's
        one-VMA rule (-EFAULT across a boundary) can tell."""
        run = self.overlapping(max(start - 1, 0), end + 1)
        keep = run[0] if run else None
        for b in run[1:]:
            if keep.joins(b):
                del self.areas[b.start]
                self.areas[keep.start] = keep = keep.clone(keep.start, b.end)
            else:
                keep = b

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
        new.lock_future = old.lock_future  # inherited; the locks themselves are not
        for start, a in old.areas.items():  # areas are never mutated in place, so shared ones are shared
            b = Area(a.start, a.end, a.prot, a.shared, a.obj if a.shared else new.private, a.pgoff, a.file,
                     a.maywrite)
            b.anon, b.account, b.hint = a.anon, a.account, a.hint
            new.areas[start] = b
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
            if a.shared and key >= a.obj.npages:
                raise SimSignal(SIGBUS, BUS_ADRERR, addr)  # past the shmem object
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

    def sys_load(self, task: Task, addr: Any, n: Any) -> Any:
        if type(addr) is not int or type(n) is not int or n < 0:
            return -EINVAL
        return b"".join(_bytes(self._page(task, a, False)[2])[(a & (PAGE_SIZE - 1)):(a & (PAGE_SIZE - 1)) + k]
                        for a, k in _chunks(addr, n))

    def sys_store(self, task: Task, addr: Any, data: Any) -> int:
        if type(addr) is not int or not isinstance(data, (bytes, bytearray)):
            return -EINVAL
        at = 0
        for a, k in _chunks(addr, len(data)):
            self._store(task, a, bytes(data[at:at + k]))
            at += k
        return 0

    def _store(self, task: Task, a: int, data: bytes) -> None:
        area, key, now = self._page(task, a, True)
        area.obj[key] = _splice(now, a & (PAGE_SIZE - 1), data)

    def copy_bytes_to_user(self, task: Task, addr: int, data: bytes) -> int:
        at = 0
        for a, k in _chunks(addr, len(data)):
            try:
                self._store(task, a, data[at:at + k])
            except SimSignal:
                break
            at += k
        return at

    def copy_bytes_from_user(self, task: Task, addr: int, n: int) -> bytes:
        out = []
        for a, k in _chunks(addr, n):
            try:
                v = self._page(task, a, False)[2]
            except SimSignal:
                break
            out.append(_bytes(v)[a & (PAGE_SIZE - 1):(a & (PAGE_SIZE - 1)) + k])
        return b"".join(out)

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
            if desc.inode is DIRECTORY or type(desc.inode) is OPipe:
                return -ENODEV  # no mmap method
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
        if flags & MAP_LOCKED and task.uid != 0:
            return -EPERM
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
        file = desc.inode if desc is not None and desc.inode is not ZERO else None  # /dev/zero: anonymous
        if shared:
            obj = file.pages if file is not None else SharedAnon(length >> PAGE_SHIFT)
        else:
            obj = mm.private
        a = mm.areas[addr] = Area(addr, addr + length, prot, shared, obj, offset >> PAGE_SHIFT, file, maywrite)
        a.anon = not shared and desc is None
        a.account = not shared and (bool(prot & PROT_WRITE) or desc is None)  # charged: anon, private writable
        if flags & MAP_LOCKED or mm.lock_future:
            a.locked = True
        if a.anon:
            mm.merge_around(addr, addr + length)
        if a.locked:
            self._make_present(task, addr, addr + length)
        return addr

    def _unmap(self, task: Task, start: int, length: int) -> None:
        if length <= 0:
            return
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
        mm, at, err, downgrade, changed = task.mm, addr, 0, False, False
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
                changed = True
            if stop >= end:
                break
            at = stop
            a = mm.find(at)
            if a is None:
                err = -ENOMEM
                break
        if downgrade:
            self.m.tlb.flush_tlb_range(mm, task.cpu, addr, end)
        if changed:
            mm.merge_around(addr, end)
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

    # --- mremap, mlock, madvise (2.5.49's rules, stated again) -------------------------------------
    def _locked_pages(self, mm: OracleMM) -> int:
        return sum(a.end - a.start for a in mm.areas.values() if a.locked) >> PAGE_SHIFT

    def _make_present(self, task: Task, start: int, end: int) -> None:
        """Locking faults the range in: a writable area as if written (a private page gets its own
        copy), the rest as if read; PROT_NONE areas are passed over; the first page past the end of
        its object stops it all."""
        mm = task.mm
        for a in list(mm.overlapping(start, end)):
            if not a.prot:
                continue
            for addr in range(max(start, a.start), min(end, a.end), PAGE_SIZE):
                try:
                    _, key, now = self._page(task, addr, bool(a.prot & PROT_WRITE))
                except SimSignal:
                    return
                if a.prot & PROT_WRITE and not a.shared:
                    a.obj.setdefault(key, now)

    def _set_locked(self, mm: OracleMM, start: int, end: int, locked: bool) -> None:
        for a in mm.overlapping(start, end):
            if a.locked == locked:
                continue
            del mm.areas[a.start]
            for lo, hi, lk in ((a.start, start, a.locked), (max(a.start, start), min(a.end, end), locked),
                               (end, a.end, a.locked)):
                if lo < hi:
                    piece = a.clone(lo, hi)
                    piece.locked = lk
                    mm.areas[lo] = piece

    def sys_mlock(self, task: Task, start: Any, length: Any) -> int:
        return self._mlock(task, start, length, True)

    def sys_munlock(self, task: Task, start: Any, length: Any) -> int:
        return self._mlock(task, start, length, False)

    def _mlock(self, task: Task, start: Any, length: Any, on: bool) -> int:
        if type(start) is not int or type(length) is not int or start < 0 or length < 0:
            return -EINVAL
        length = (length + (start & (PAGE_SIZE - 1)) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        start &= ~(PAGE_SIZE - 1)
        mm = task.mm
        if on and (length >> PAGE_SHIFT) + self._locked_pages(mm) > self.m.config.memory // PAGE_SIZE // 2:
            return -ENOMEM
        if on and task.uid != 0:
            return -EPERM
        end = start + length
        if end == start:
            return 0
        at = start
        while at < end:  # area by area; a hole stops it, what came before stays changed
            a = mm.find(at)
            if a is None:
                return -ENOMEM
            stop = min(end, a.end)
            self._set_locked(mm, at, stop, on)
            if on:
                self._make_present(task, at, stop)
            at = stop
        return 0

    def sys_mlockall(self, task: Task, flags: Any) -> int:
        if type(flags) is not int or not flags or flags & ~3:
            return -EINVAL
        mm = task.mm
        if sum(a.end - a.start for a in mm.areas.values()) // PAGE_SIZE > self.m.config.memory // PAGE_SIZE // 2:
            return -ENOMEM
        return self._lockall(task, flags)

    def sys_munlockall(self, task: Task) -> int:
        return self._lockall(task, 0)

    def _lockall(self, task: Task, flags: int) -> int:
        if task.uid != 0:
            return -EPERM
        mm = task.mm
        mm.lock_future = bool(flags & 2)
        for a in list(mm.areas.values()):
            self._set_locked(mm, a.start, a.end, bool(flags & 1))
            if flags & 1:
                self._make_present(task, a.start, a.end)
        return 0

    def sys_madvise(self, task: Task, start: Any, length: Any, advice: Any) -> int:
        if type(start) is not int or type(length) is not int or start & (PAGE_SIZE - 1) or start < 0 or length < 0:
            return -EINVAL
        end = start + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
        mm, at, hole = task.mm, start, 0
        while at < end:
            a = next((x for x in mm.overlapping(at, end)), None)
            if a is None:
                return -ENOMEM
            if a.start > at:
                hole, at = -ENOMEM, a.start
            stop = min(end, a.end)
            if advice == 3 and a.file is None and not a.shared:
                return -EBADF  # WILLNEED: anonymous memory has no file to read ahead
            if advice == 4:  # DONTNEED: private pages go; a locked area refuses
                if a.locked:
                    return -EINVAL
                if not a.shared:
                    for page in range(at >> PAGE_SHIFT, stop >> PAGE_SHIFT):
                        mm.private.pop(page, None)
            elif advice in (0, 1, 2):  # NORMAL, RANDOM, SEQUENTIAL: the piece becomes an area of its own
                del mm.areas[a.start]
                for lo, hi in ((a.start, at), (at, stop), (stop, a.end)):
                    if lo < hi:
                        piece = mm.areas[lo] = a.clone(lo, hi)
                        if lo == at:
                            piece.hint = advice
            elif advice != 3:
                return -EINVAL
            at = stop
        return hole

    def sys_mremap(self, task: Task, addr: Any, old_len: Any, new_len: Any, flags: Any = 0, new_addr: Any = 0) -> int:
        if any(type(x) is not int for x in (addr, old_len, new_len, flags, new_addr)) or old_len < 0 or new_len < 0:
            return -EINVAL
        if flags & ~3 or addr & (PAGE_SIZE - 1):
            return -EINVAL
        old_len = (old_len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        new_len = (new_len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        fixed, may, mm = flags & 2, flags & 1, task.mm
        if fixed:
            if new_addr & (PAGE_SIZE - 1) or not may or new_addr < 0 or new_len > TASK_SIZE or \
                    new_addr > TASK_SIZE - new_len:
                return -EINVAL
            if new_addr <= addr < new_addr + new_len or addr <= new_addr < addr + old_len:
                return -EINVAL
            self._unmap(task, new_addr, new_len)
        if old_len >= new_len:
            if old_len > new_len:
                self._unmap(task, addr + new_len, old_len - new_len)
            if not fixed or new_addr == addr:
                return addr
        a = mm.find(addr)
        if a is None or old_len > a.end - addr:
            return -EFAULT
        if old_len == a.end - addr and not (fixed and new_addr != addr) and (old_len != new_len or not may):
            above = [x.start for x in mm.overlapping(a.end, TASK_SIZE)]
            if (above[0] if above else TASK_SIZE) - addr >= new_len:
                grown = a.clone(a.start, addr + new_len)
                mm.areas[a.start] = grown
                if grown.locked:
                    self._make_present(task, addr + old_len, addr + new_len)
                return addr
        if not may:
            return -ENOMEM
        if not fixed:
            new_addr = self._unmapped_area(mm, 0, new_len)
            if new_addr is None:
                return -ENOMEM
        moved = a.clone(addr, addr + old_len)
        moved.start, moved.end = new_addr, new_addr + new_len
        pages = {}
        if not a.shared:  # private pages travel with their addresses
            for i in range(old_len >> PAGE_SHIFT):
                if (addr >> PAGE_SHIFT) + i in mm.private:
                    pages[(new_addr >> PAGE_SHIFT) + i] = mm.private[(addr >> PAGE_SHIFT) + i]
        self._unmap(task, addr, old_len)
        mm.areas[new_addr] = moved
        mm.private.update(pages)
        if moved.anon:
            mm.merge_around(new_addr, new_addr + new_len)
        if moved.locked:
            self._make_present(task, new_addr, new_addr + new_len)
        return new_addr


DIRECTORY = OFile(writable=False)  # what an open directory's descriptor refers to: one block long
DIRECTORY.size = PAGE_SIZE
LFS_LIMIT = 2**31 - 1  # without O_LARGEFILE a file may not reach past 2 GiB - 1 (the LFS rule)
EXT2_LIMIT = 2**41 - 2**12  # ext2 with 4 KiB blocks: i_blocks counts 2^32 sectors, less one block


class ODesc:
    """An open file description: its file (or ZERO, DIRECTORY, an OPipe), access mode (1 read,
    2 write), flags, position, and how many descriptors refer to it."""

    __slots__ = ("inode", "mode", "flags", "pos", "refs")

    def __init__(self, inode: Any, mode: int, flags: int = 0) -> None:
        self.inode, self.mode, self.flags, self.pos, self.refs = inode, mode, flags, 0, 1


class OPipe:
    """A pipe as a program sees it: up to 4096 bytes in order; readers and writers; who waits."""

    __slots__ = ("data", "readers", "writers", "readq", "writeq")

    def __init__(self) -> None:
        self.data = b""
        self.readers = self.writers = 1
        self.readq: list[tuple[Any, int, int]] = []  # (task, buffer, count), first come first served
        self.writeq: list[list] = []  # [task, buffer, count, written so far]


ZERO = OFile(writable=True)  # what a descriptor of /dev/zero refers to


class OracleFS:
    """The file calls on :class:`OFile` contents: what 2.5.49's buffered I/O lets a program see."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.files: dict[str, OFile] = {}
        self.dirs = {"/", "/bin", "/dev", "/etc", "/tmp"}
        self.devices = {"/dev/zero"}

    def disk_state(self) -> None:
        """No device here: contents are always coherent, so there is nothing to compare."""
        return None

    def dup_files(self, parent: Task, child: Task, share: bool) -> None:
        if parent.files is not None:
            child.files = parent.files if share else dict(parent.files)
            if not share:
                for d in child.files.values():
                    d.refs += 1

    def exit_files(self, task: Task) -> None:
        table, task.files = task.files, None
        if table is not None and not any(t.files is table for t in self.m.sched.tasks.values()):
            for d in table.values():
                self._drop(d)

    def _drop(self, d: ODesc) -> None:
        """A descriptor went: the last one of a pipe end leaves the other side alone."""
        d.refs -= 1
        if d.refs or type(d.inode) is not OPipe:
            return
        p, sched = d.inode, self.m.sched
        if d.mode & 1:
            p.readers -= 1
            if not p.readers:  # writers waiting: what they wrote, else SIGPIPE / -EPIPE
                for task, _, _, done in p.writeq:
                    if done:
                        sched.wake(task, done)
                    elif SIGPIPE in task.sigign:
                        sched.wake(task, -EPIPE)
                    else:
                        sched.wake_signal(task, SimSignal(SIGPIPE))
                p.writeq.clear()
        else:
            p.writers -= 1
            if not p.writers:  # readers waiting: end of file
                for task, _, _ in p.readq:
                    sched.wake(task, 0)
                p.readq.clear()

    # --- pipes: 4096 bytes, blocking both ways, SIGPIPE without a reader -----------------------------
    def sys_pipe(self, task: Task) -> Any:
        if len(task.files or {}) + 2 > 1024:
            return -EMFILE
        p = OPipe()
        return self._install(task, ODesc(p, 1)), self._install(task, ODesc(p, 2))

    def _pipe_read(self, task: Task, p: OPipe, f: ODesc, addr: int, count: int) -> Any:
        if count == 0:
            return 0
        if p.data:
            return self._take(task, p, addr, count)
        if not p.writers:
            return 0
        if f.flags & O_NONBLOCK:
            return -EAGAIN
        p.readq.append((task, addr, count))
        return self.m.sched.block(task)

    def _take(self, task: Task, p: OPipe, addr: int, count: int) -> int:
        got = self.m.mm.copy_bytes_to_user(task, addr, p.data[:count])
        if got == 0:
            return -EFAULT
        p.data = p.data[got:]
        self._fill(p)
        return got

    def _fill(self, p: OPipe) -> None:
        """Room was made: waiting writers put their bytes in, in turn (one of 4096 bytes or fewer
        only all at once); then waiting readers take what there is."""
        while p.writeq and len(p.data) < 4096:
            w = p.writeq[0]
            task, addr, count, done = w
            room, left = 4096 - len(p.data), count - done
            if left <= 4096 and room < left:
                break
            data = self.m.mm.copy_bytes_from_user(task, addr + done, min(room, left))
            p.data += data
            w[3] = done = done + len(data)
            if done == count or len(data) < min(room, left):
                p.writeq.pop(0)
                self.m.sched.wake(task, done or -EFAULT)
        while p.readq and p.data:
            task, addr, count = p.readq.pop(0)
            self.m.sched.wake(task, self._take(task, p, addr, count))

    def _pipe_write(self, task: Task, p: OPipe, f: ODesc, addr: int, count: int) -> Any:
        if not p.readers:
            if SIGPIPE in task.sigign:
                return -EPIPE
            raise SimSignal(SIGPIPE)
        if count == 0:
            return 0
        room, done = 4096 - len(p.data), 0
        if not p.writeq and (room >= count or count > 4096 and room):
            data = self.m.mm.copy_bytes_from_user(task, addr, min(room, count))
            p.data += data
            done = len(data)
            short = done < min(room, count)
            self._fill(p)
            if short:
                return done or -EFAULT
            if done == count:
                return done
        if f.flags & O_NONBLOCK:
            return done or -EAGAIN
        p.writeq.append([task, addr, count, done])
        return self.m.sched.block(task)

    def fget(self, task: Task, fd: Any, mode: int = 3) -> ODesc | None:
        f = (task.files or {}).get(fd) if type(fd) is int else None
        return f if f is not None and f.mode & mode else None

    # --- names: a tree of directories holding files (2.5's namei, stated again) ----------------------
    def _walk(self, path: Any) -> tuple[str, int]:
        """The canonical name of ``path`` and 0, or -ENOENT / -ENOTDIR for what lies above it."""
        if not isinstance(path, str) or not path.startswith("/"):
            return "", -ENOENT
        parts = [p for p in path.split("/") if p]
        here = ""
        for p in parts[:-1]:
            here += "/" + p
            if here in self.files:
                return "", -ENOTDIR
            if here not in self.dirs:
                return "", -ENOENT
        return "/" + "/".join(parts), 0

    def sys_unlink(self, task: Task, path: Any) -> int:
        name, err = self._walk(path)
        if err:
            return err
        if name in self.dirs:
            return -EISDIR
        if path.endswith("/") and (name in self.files or name in self.devices):
            return -ENOTDIR  # a trailing slash names a directory
        if name in self.devices:
            self.devices.discard(name)
            return 0
        return 0 if self.files.pop(name, None) is not None else -ENOENT  # open ones live on in their fds

    def sys_mkdir(self, task: Task, path: Any, mode: Any = 0o755) -> int:
        name, err = self._walk(path)
        if err:
            return err
        if name in self.dirs or name in self.files:
            return -EEXIST
        self.dirs.add(name)
        return 0

    def sys_rename(self, task: Task, old: Any, new: Any) -> int:
        src, err = self._walk(old)
        if err:
            return err
        if src not in self.dirs and src not in self.files:
            return -ENOENT
        is_dir = src in self.dirs
        if not is_dir and old.endswith("/"):
            return -ENOTDIR  # a trailing slash names a directory
        dst, err = self._walk(new)
        if err:
            return err
        if not is_dir and new.endswith("/"):
            return -ENOTDIR
        if is_dir and dst.startswith(src + "/"):
            return -EINVAL
        if src == dst:
            return 0
        if dst in self.dirs:
            if not is_dir:
                return -EISDIR
            if any(n.startswith(dst + "/") for n in list(self.dirs) + list(self.files)):
                return -ENOTEMPTY
            self.dirs.discard(dst)
        elif dst in self.files:
            if is_dir:
                return -ENOTDIR
            del self.files[dst]
        if is_dir:
            for n in [n for n in self.dirs if n == src or n.startswith(src + "/")]:
                self.dirs.discard(n)
                self.dirs.add(dst + n[len(src):])
            for n in [n for n in self.files if n.startswith(src + "/")]:
                self.files[dst + n[len(src):]] = self.files.pop(n)
        else:
            self.files[dst] = self.files.pop(src)
        return 0

    def sys_open(self, task: Task, path: Any, flags: int = 0) -> int:
        mode = _open_rule(path, flags)
        if mode < 0:
            return mode
        name, err = self._walk(path)
        if err:
            return err
        if flags & O_CREAT and path.endswith("/"):
            return -EISDIR  # creating what a trailing slash says is a directory
        if name in self.dirs:
            if flags & O_CREAT and flags & O_EXCL:
                return -EEXIST  # it exists: O_EXCL answers before the directory check
            if mode & 2 or flags & (O_CREAT | O_TRUNC):
                return -EISDIR
            return self._install(task, ODesc(DIRECTORY, mode, flags))
        if name in self.devices:
            if flags & O_CREAT and flags & O_EXCL:
                return -EEXIST
            return -EINVAL if flags & O_DIRECT else self._install(task, ODesc(ZERO, mode, flags))
        f = self.files.get(name)
        if f is not None and path.endswith("/"):
            return -ENOTDIR
        if f is None:
            if not flags & O_CREAT or path.endswith("/"):
                return -ENOENT
            f = self.files[name] = OFile()
        elif flags & O_CREAT and flags & O_EXCL:
            return -EEXIST
        if (mode & 2 or flags & O_TRUNC) and not f.writable:
            return -EACCES
        if flags & O_DIRECT:
            return -EINVAL
        if len(task.files or {}) >= 1024:
            return -EMFILE
        if flags & O_TRUNC:
            self.truncate(f, 0)
        return self._install(task, ODesc(f, mode, flags))

    def _install(self, task: Task, desc: ODesc) -> int:
        table = task.files = task.files if task.files is not None else {}
        fd = next((i for i in range(1024) if i not in table), None)
        if fd is None:
            return -EMFILE
        table[fd] = desc
        return fd

    def sys_close(self, task: Task, fd: Any) -> int:
        d = (task.files or {}).pop(fd, None) if type(fd) is int else None
        if d is None:
            return -EBADF
        self._drop(d)
        return 0

    # --- reading and writing bytes --------------------------------------------------------------------
    def _read(self, task: Task, f: ODesc, addr: int, count: int, pos: int) -> int:
        """Bytes up to end of file, file page by file page into the buffer; a fault ends it."""
        file, vm = f.inode, self.m.mm
        n, done = max(0, min(count, file.size - pos)), 0
        for p, k in _chunks(pos, n):
            v = file.pages.get(p >> PAGE_SHIFT, 0)
            off = p & (PAGE_SIZE - 1)
            got = vm.copy_bytes_to_user(task, addr + done, _bytes(v)[off:off + k])
            done += got
            if got < k:
                return done or -EFAULT
        return done

    def _write(self, task: Task, f: ODesc, addr: int, count: int, pos: int) -> int:
        """The LFS and ext2 limits (SIGXFSZ, or -EFBIG when it is ignored, where nothing fits), then
        bytes file page by file page; a file page whose bytes cannot all be fetched ends it."""
        if pos + count > LFS_LIMIT and not f.flags & O_LARGEFILE:
            if pos >= LFS_LIMIT:
                return self._too_big(task)
            count = LFS_LIMIT - pos
        if pos >= EXT2_LIMIT and (count or pos > EXT2_LIMIT):
            return self._too_big(task)
        count = min(count, EXT2_LIMIT - pos)
        file, vm, done = f.inode, self.m.mm, 0
        for p, k in _chunks(pos, count):
            data = vm.copy_bytes_from_user(task, addr + done, k)
            if len(data) < k:
                return done or -EFAULT
            index = p >> PAGE_SHIFT
            page = _splice(file.pages.get(index, 0), p & (PAGE_SIZE - 1), data)
            done += k
            file.size = max(file.size, pos + done)
            if index == file.size >> PAGE_SHIFT and file.size & (PAGE_SIZE - 1):  # past EOF: zero
                t = file.size & (PAGE_SIZE - 1)
                page = page[:t] + b"\0" * (PAGE_SIZE - t)
            file.pages[index] = page
        return done

    def _too_big(self, task: Task) -> int:
        if SIGXFSZ not in task.sigign:
            raise SimSignal(SIGXFSZ)
        return -EFBIG

    def _check(self, task: Task, fd: Any, addr: Any, length: Any, offset: Any, mode: int) -> ODesc | int:
        if type(offset) is int and offset < 0:
            return -EINVAL
        f = self.fget(task, fd, mode)
        if f is None:
            return -EBADF
        if type(f.inode) is OPipe:
            return -ESPIPE  # a pipe has no positions
        return _io_rule(addr, length, offset) or f

    def sys_pread(self, task: Task, fd: Any, addr: int, length: int, offset: int) -> int:
        f = self._check(task, fd, addr, length, offset, 1)
        if isinstance(f, int):
            return f
        if f.inode is DIRECTORY:
            return -EISDIR
        if f.inode is ZERO:
            got = self.m.mm.copy_bytes_to_user(task, addr, b"\0" * length)
            return got or (-EFAULT if length else 0)
        return self._read(task, f, addr, length, offset)

    def sys_pwrite(self, task: Task, fd: Any, addr: int, length: int, offset: int) -> int:
        f = self._check(task, fd, addr, length, offset, 2)
        if isinstance(f, int):
            return f
        return length if f.inode is ZERO else self._write(task, f, addr, length, offset)

    def sys_fd_read(self, task: Task, fd: Any, addr: Any, count: Any) -> int:
        f = self.fget(task, fd, 1)
        if f is None:
            return -EBADF
        if type(addr) is not int or type(count) is not int or count < 0:
            return -EINVAL
        if f.inode is DIRECTORY:
            return -EISDIR
        if type(f.inode) is OPipe:
            return self._pipe_read(task, f.inode, f, addr, count)
        if f.inode is ZERO:
            got = self.m.mm.copy_bytes_to_user(task, addr, b"\0" * count)
            return got or (-EFAULT if count else 0)
        n = self._read(task, f, addr, count, f.pos)
        f.pos += max(n, 0)
        return n

    def sys_fd_write(self, task: Task, fd: Any, addr: Any, count: Any) -> int:
        f = self.fget(task, fd, 2)
        if f is None:
            return -EBADF
        if type(addr) is not int or type(count) is not int or count < 0:
            return -EINVAL
        if type(f.inode) is OPipe:
            return self._pipe_write(task, f.inode, f, addr, count)
        if f.inode is ZERO:
            return count
        at = f.inode.size if f.flags & O_APPEND else f.pos
        n = self._write(task, f, addr, count, at)
        if n > 0:
            f.pos = at + n
        return n

    def _vec(self, task: Task, fd: Any, iov: Any, mode: int) -> int:
        f = self.fget(task, fd, mode)
        if f is None:
            return -EBADF
        if not isinstance(iov, list) or len(iov) > 1024 or any(
                not isinstance(s, tuple) or len(s) != 2 or type(s[0]) is not int or type(s[1]) is not int or s[1] < 0
                for s in iov) or sum(s[1] for s in iov) >= 2**31:
            return -EINVAL
        one, total = self.sys_fd_read if mode == 1 else self.sys_fd_write, 0
        p = self.fget(task, fd).inode
        for addr, n in iov:
            if type(p) is OPipe and total and (not p.data if mode == 1 else p.writeq or 4096 - len(p.data) < min(n, 4096)):
                break  # a pipe's later segment does not wait
            got = one(task, fd, addr, n)
            if not isinstance(got, int):
                return got
            if got < 0:
                return total or got
            total += got
            if got < n:
                break
        return total

    def sys_readv(self, task: Task, fd: Any, iov: Any) -> int:
        return self._vec(task, fd, iov, 1)

    def sys_writev(self, task: Task, fd: Any, iov: Any) -> int:
        return self._vec(task, fd, iov, 2)

    def sys_llseek(self, task: Task, fd: Any, offset: Any, whence: Any) -> int:
        f = self.fget(task, fd)
        if f is None:
            return -EBADF
        if type(offset) is not int or whence not in (0, 1, 2):
            return -EINVAL
        if type(f.inode) is OPipe:
            return -ESPIPE
        if f.inode is ZERO:
            f.pos = 0
            return 0
        to = offset + (0, f.pos, f.inode.size)[whence]
        if to < 0 or to > EXT2_LIMIT:
            return -EINVAL
        f.pos = to
        return to

    def sys_lseek(self, task: Task, fd: Any, offset: Any, whence: Any) -> int:
        if self.fget(task, fd) is None:
            return -EBADF
        if type(offset) is int and not -2**31 <= offset < 2**31:
            return -EINVAL
        to = self.sys_llseek(task, fd, offset, whence)
        return -EOVERFLOW if to > LFS_LIMIT else to

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
            t = size & (PAGE_SIZE - 1)
            file.pages[size >> PAGE_SHIFT] = _bytes(v)[:t] + b"\0" * (PAGE_SIZE - t)

    def sys_ftruncate(self, task: Task, fd: Any, length: Any) -> int:
        f = self.fget(task, fd)
        if f is None:
            return -EBADF
        if type(length) is not int or length < 0 or not f.mode & 2 or type(f.inode) is not OFile or f.inode is ZERO:
            return -EINVAL
        if length > LFS_LIMIT and not f.flags & O_LARGEFILE:
            return -EINVAL
        if length > EXT2_LIMIT:
            return -EFBIG
        self.truncate(f.inode, length)
        return 0

    def sys_fsync(self, task: Task, fd: Any) -> int:
        f = self.fget(task, fd)
        return -EBADF if f is None else -EINVAL if f.inode in (DIRECTORY, ZERO) or type(f.inode) is OPipe else 0


#: The calls the oracle answers in place of the real model (the rest keep the machine's handlers).
ORACLE_MM_SYSCALLS = {name: ("mm", getattr(OracleMemory, "sys_" + name))
                      for name in ("mmap", "munmap", "mprotect", "msync", "read", "write", "touch", "load", "store",
                                   "mremap", "mlock", "munlock", "mlockall", "munlockall", "madvise")}
ORACLE_FS_SYSCALLS = {name: ("fs", getattr(OracleFS, "sys_" + name))
                      for name in ("open", "close", "pread", "pwrite", "ftruncate", "fsync", "fd_read", "fd_write",
                                   "lseek", "llseek", "readv", "writev", "unlink", "rename", "mkdir", "pipe")}


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

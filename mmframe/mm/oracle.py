"""The semantic reference model of an address space: what memory *contains*, with no page tables,
no physical pages and no costs beyond TLB accounting.

It answers the program-visible questions (which value a read returns, which access raises SIGSEGV
with which si_code, what mmap/munmap/mprotect return) the way 2.5.49 does for anonymous mappings;
programs compared against it use no files, shm or exec.
The real model (:mod:`mmframe.mm.memory`) is checked against it differentially: a test swaps it into
a machine (``machine.mm = OracleMemory(machine)``) and compares what programs see.  Complexity: O(log V) per access for V mappings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sortedcontainers import SortedDict

from mmframe.usr import (EBADF, EINVAL, ENOMEM, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED,
                         PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE, SEGV_ACCERR, SEGV_MAPERR, SIGSEGV,
                         SimSignal)

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.machine import Machine
    from mmframe.sched import Task

TASK_SIZE = 0xC000_0000
TASK_UNMAPPED_BASE = 0x4000_0000  # PAGE_ALIGN(TASK_SIZE / 3)
PAGE_SHIFT = 12


class Area:
    """A mapping [start, end) with its protection and the object that holds its data."""

    __slots__ = ("start", "end", "prot", "shared", "obj", "pgoff")

    def __init__(self, start: int, end: int, prot: int, shared: bool, obj: dict[int, int], pgoff: int) -> None:
        self.start, self.end, self.prot, self.shared, self.obj, self.pgoff = start, end, prot, shared, obj, pgoff

    def clone(self, start: int, end: int) -> Area:
        return Area(start, end, self.prot, self.shared, self.obj,
                    self.pgoff + ((start - self.start) >> PAGE_SHIFT))


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
        for name in ("mmap", "munmap", "mprotect", "read", "write", "touch"):
            machine.sched.handlers[name] = getattr(self, "sys_" + name)

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
            new.areas[start] = a if a.shared else Area(a.start, a.end, a.prot, False, new.private, a.pgoff)
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

    def sys_read(self, task: Task, addr: int) -> int:
        a = self._access(task.mm, addr, False)
        return a.obj.get(self._key(a, addr), 0)

    def sys_write(self, task: Task, addr: int, tag: int) -> int:
        if type(tag) is not int or tag >> 63 not in (0, -1):
            return -EINVAL  # a page's content tag is a 64-bit signed integer
        a = self._access(task.mm, addr, True)
        a.obj[self._key(a, addr)] = tag
        return 0

    def sys_touch(self, task: Task, start: int, length: int, write: bool = False) -> int:
        if length < 0:
            return -EINVAL
        addr = start & ~(PAGE_SIZE - 1)
        while addr < start + length:
            a = self._access(task.mm, addr, write)
            if write:
                a.obj.setdefault(self._key(a, addr), 0)
            addr += PAGE_SIZE
        return 0

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
        if not flags & MAP_ANONYMOUS:
            return -EBADF  # no file descriptors until files land
        if (flags & (MAP_SHARED | MAP_PRIVATE)) not in (MAP_SHARED, MAP_PRIVATE) or prot & ~(
                PROT_READ | PROT_WRITE | PROT_EXEC):
            return -EINVAL
        if length == 0:
            return addr  # 2.5.49 do_mmap_pgoff: "if (!len) return addr;"
        length = (length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        if length > TASK_SIZE or length <= 0:
            return -EINVAL
        if flags & MAP_FIXED:
            if addr & (PAGE_SIZE - 1) or addr + length > TASK_SIZE:
                return -EINVAL
            self._unmap(task, addr, length)
        else:
            found = self._unmapped_area(mm, addr, length)
            if found is None:
                return -ENOMEM
            addr = found
        shared = bool(flags & MAP_SHARED)
        mm.areas[addr] = Area(addr, addr + length, prot, shared, {} if shared else mm.private, 0)
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

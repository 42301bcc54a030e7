"""Address spaces: ``mm_struct`` and its lifecycle (``mm_alloc``/``pgd_alloc``, ``dup_mm`` for fork,
``mmput`` and ``exit_mmap`` for exit and exec), and the task's kernel objects (``task_struct``, its
kernel stack).  Kernel: kernel/fork.c, 2.5.49."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.mm.exit import exit_mmap
from mmframe.mm.fork import dup_mmap
from mmframe.mm.page import GFP_KERNEL
from mmframe.mm.pgtable import TASK_SIZE, Geometry, PtePage
from mmframe.mm.vma import VMAList

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.sched import Task

BRK_BASE = 0x0805_0000  # the heap of a task started without execve

# sizes of kernel objects (i386 2.5, estimates to the cache line; see docs/memory.md)
TASK_STRUCT_BYTES, MM_STRUCT_BYTES, VMA_BYTES = 1536, 384, 64


class MMStruct:
    """``mm_struct``: the PMD level, the PTE pages it points at, the VMAs, users and TLB mask."""

    __slots__ = ("id", "pmd", "ptp", "vmas", "users", "cpu_vm_mask", "pgd_pages", "dead", "end_code",
                 "start_brk", "brk", "start_stack", "locked_vm", "def_flags", "layout")

    def __init__(self, mm_id: int, geo: Geometry) -> None:
        self.id = mm_id
        self.pmd = [0] * geo.user_pmds
        self.ptp: list[PtePage | None] = [None] * geo.user_pmds
        self.vmas = VMAList()
        self.users = 1
        self.cpu_vm_mask: set[int] = set()
        self.pgd_pages: list[int] = []
        self.dead = False
        # an mm with no executable image (a run's first task): its "code" ends where its heap starts
        self.end_code, self.start_brk, self.brk, self.start_stack = BRK_BASE, BRK_BASE, BRK_BASE, TASK_SIZE
        self.locked_vm = 0  # pages in VM_LOCKED VMAs
        self.def_flags = 0  # VM_LOCKED after mlockall(MCL_FUTURE)
        self.layout = None  # the exec'd image's addresses (mmframe.usr.Layout), what ctx.image shows

    def rss(self) -> int:
        """Resident pages, derived from the PTE pages' counts (a shared PTE page counts in each)."""
        return sum(pt.rss for pt in self.ptp if pt is not None)

    def __repr__(self) -> str:
        return f"<mm {self.id} vmas={len(self.vmas)}>"


class MMLifecycle:
    """Part of :class:`~mmframe.mm.memory.Memory`: creating, duplicating and dropping address spaces and tasks' kernel objects."""

    __slots__ = ()

    def new_mm(self) -> MMStruct | None:
        """``mm_alloc`` + ``pgd_alloc``: None when lowmem cannot supply them."""
        if self.c_mm.alloc() < 0:
            return None
        mm = MMStruct(self.next_mm, self.geo)
        pages = []
        for _ in range(self.geo.pmd_pages or 1):
            pfn = self.m.alloc_pages(GFP_KERNEL, 0)
            if pfn < 0:
                for p in pages:
                    self.m.free_pages(p, 0)
                self.c_mm.free()
                return None
            pages.append(pfn)
            self.acct.charge(self.P_clear)
        if self.c_pgd is not None and self.c_pgd.alloc() < 0:
            for p in pages:
                self.m.free_pages(p, 0)
            self.c_mm.free()
            return None
        mm.pgd_pages = pages
        self.pa.page_table_pages += len(pages)
        self.next_mm += 1
        self.mms[mm.id] = mm
        return mm

    def _free_mm(self, mm: MMStruct) -> None:
        for p in mm.pgd_pages:
            self.m.free_pages(p, 0)
        self.pa.page_table_pages -= len(mm.pgd_pages)
        mm.pgd_pages = []
        if self.c_pgd is not None:
            self.c_pgd.free()
        self.c_mm.free()
        mm.dead = True
        del self.mms[mm.id]

    def dup_mm(self, task: Task) -> MMStruct | int:
        new = dup_mmap(self, task.mm)
        if not isinstance(new, int):
            new.layout = task.mm.layout
        return new

    def exit_mm(self, task: Task) -> None:
        mm, task.mm = task.mm, None
        self.mmput(mm)

    def mmput(self, mm: MMStruct) -> None:
        """Drop a user of ``mm``; the last one tears it down (``exit_mmap``)."""
        mm.users -= 1
        if mm.users == 0:
            exit_mmap(self, mm, self._cpu())

    def task_created(self, pid: int) -> bool:
        """``dup_task_struct``: a task_struct from its slab and an 8 KiB (order-1) kernel stack."""
        if self.c_task.alloc() < 0:
            return False
        stack = self.m.alloc_pages(GFP_KERNEL, 1)
        if stack < 0:
            self.c_task.free()
            return False
        self.kstacks[pid] = stack
        return True

    def task_released(self, pid: int) -> None:
        stack = self.kstacks.pop(pid, None)
        if stack is not None:
            self.m.free_pages(stack, 1)
            self.c_task.free()

    def _cpu(self) -> Any:
        cur = self.m.sched.current
        return cur.cpu if cur is not None else self.m.cpus[0]

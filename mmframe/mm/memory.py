"""The memory subsystem of one machine: address spaces, the page-table choke point, faults
(zero-fill, ZERO_PAGE, copy-on-write), zap, mprotect's PTE pass, and the primitives a page-table
policy uses (share a PTE page, write-protect a PMD, copy a PTE page).

Accesses are checked through the page tables first (the "hardware" walk: PMD entry, PTE, the RW
bit of both); VMAs are consulted only on a fault.  Every write to a PTE page goes through
:meth:`Memory.pte_change`, which names its reason and calls the ``mmframe_pte_change`` hook.

Single paths work an entry at a time; bulk paths (fork copy, zap, mprotect, touch) work a PTE page
at a time on numpy views and charge exactly what the single path would (``BULK_MIN`` entries or
more take the bulk path; tests run both and compare).  Complexity: a fault is O(log V) for the VMA
lookup plus O(1); fork and exit are O(PTE pages) numpy operations plus O(pages freed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mmframe.mm.page import GFP_HIGHUSER, GFP_KERNEL, PAGE_SHIFT, PAGE_SIZE, PG_reserved, __GFP_HIGHMEM
from mmframe.mm.pgtable import (_PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW, _PAGE_TABLE,
                                PAGE_READONLY, PTE_PRESENT_MASK, TASK_SIZE, Geometry, PtePage)
from mmframe.mm.rmap import Rmap, nrpte
from mmframe.mm import content, filemap
from mmframe.mm.filemap import _CACHE, NOPAGE_OOM, NOPAGE_SIGBUS
from mmframe.mm.radix_tree import NodePool, RadixTree
from mmframe.mm.vma import VM_EXEC, VM_GROWSDOWN, VM_LOCKED, VM_READ, VM_SHARED, VM_WRITE, VMA, ShmemObject, VMAList
from mmframe.usr import EINVAL, SEGV_ACCERR, SEGV_MAPERR, SIGBUS, SIGKILL, SIGSEGV, BUS_ADRERR, SimSignal

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.machine import Machine
    from mmframe.sched import Task

# handle_mm_fault results (2.5.49 include/linux/mm.h)
VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_FAULT_MINOR, VM_FAULT_MAJOR = -1, 0, 1, 2

#: Why a PTE page is being written (the choke point's reason argument).
REASONS = ("fault", "cow", "zap", "mprotect", "exit", "fork", "mmap", "swap_out", "walker", "unshare", "msync",
           "mremap")
FAULT, COW, ZAP, MPROTECT, EXIT, FORK, MMAP, SWAP_OUT, WALKER, UNSHARE, MSYNC, MREMAP = range(len(REASONS))

#: Ranges of at least this many entries take the numpy path (tests set it to compare both paths).
BULK_MIN = 24

_RESERVED = 1 << PG_reserved
GFP_PTE_HIGH = GFP_KERNEL | __GFP_HIGHMEM  # pte_alloc_one with CONFIG_HIGHPTE (no mangling here)
_PTE_CHG_MASK = ~0xFFF | _PAGE_ACCESSED | _PAGE_DIRTY  # pte_modify keeps pfn, accessed, dirty
ZERO_PFN = (1 << 20) >> PAGE_SHIFT  # empty_zero_page lives in the kernel image (reserved)

BRK_BASE = 0x0805_0000  # the heap of a task started without execve
RLIMIT_STACK = 8 << 20  # the default stack limit (ulimit -s 8192)

# sizes of kernel objects (i386 2.5, estimates to the cache line; see docs/memory.md)
TASK_STRUCT_BYTES, MM_STRUCT_BYTES, VMA_BYTES = 1536, 384, 64


class Killed(Exception):
    """The task was killed inside a system call (SIGKILL from the out-of-memory path)."""


class MMStruct:
    """``mm_struct``: the PMD level, the PTE pages it points at, the VMAs, users and TLB mask."""

    __slots__ = ("id", "pmd", "ptp", "vmas", "users", "cpu_vm_mask", "pgd_pages", "dead", "end_code",
                 "start_brk", "brk", "start_stack", "locked_vm", "def_flags")

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

    def rss(self) -> int:
        """Resident pages, derived from the PTE pages' counts (a shared PTE page counts in each)."""
        return sum(pt.rss for pt in self.ptp if pt is not None)

    def __repr__(self) -> str:
        return f"<mm {self.id} vmas={len(self.vmas)}>"


class Memory:
    """Everything behind the memory system calls of one machine."""

    def __init__(self, machine: Machine) -> None:
        m = self.m = machine
        cfg = m.config
        self.geo = geo = Geometry(cfg.pae)
        self.sh, self.mask = geo.pmd_shift, geo.ptrs_per_pte - 1
        self.pgdir_shift = 30 if cfg.pae else 22
        self.pa = pa = m.pagealloc
        mem = pa.mem_map
        self.tag, self.count, self.flags = mem.tag, mem.count, mem.flags
        self.count_np, self.flags_np = mem.np("count"), mem.np("flags")
        self.acct = m.acct
        self.highpte = bool(cfg.highpte)
        self.first_high = pa.first_high_pfn
        self.nrpte = nrpte(cfg.l1_cache_bytes, cfg.pae, self.highpte)
        self.rmap = Rmap(m, mem.rmap, self.nrpte, cfg.l1_cache_bytes)
        self.ptpages: dict[int, PtePage] = {}  # every live PTE page by pfn
        self.mms: dict[int, MMStruct] = {}
        self.next_mm = 1
        self.objects: set[ShmemObject] = set()  # live shmem objects (MAP_SHARED anonymous, SysV shm)
        self.radix_pool = NodePool(m)
        self.page_cache: dict[int, tuple[filemap.AddressSpace, int]] = {}  # pfn -> (mapping, index)
        self.zero_tail: dict[int, int] = {}  # pfn -> offset where the zeroed tail past EOF starts
        self.fine: dict[int, bytearray] = {}  # pfn -> its bytes, for pages written partially (mm/content.py)
        self.gfp_cache = GFP_HIGHUSER  # mapping_gfp_mask of regular files
        self.pins: dict[int, int] = {}  # pfn -> references held by get_user_pages-style pins
        self.pte_changes = [0] * len(REASONS)
        self.c_mm = m.kmem_cache("mm_struct", MM_STRUCT_BYTES, 32)
        self.c_vma = m.kmem_cache("vm_area_struct", VMA_BYTES, 32)
        self.c_task = m.kmem_cache("task_struct", TASK_STRUCT_BYTES, 32)
        self.c_pgd = m.kmem_cache("pae_pgd", 32, 32) if cfg.pae else None
        self.c_mm_chain = m.kmem_cache("mm_chain", 8, 8)  # owners of shared PTE pages
        self.kstacks: dict[int, int] = {}  # task pid -> kernel stack (order 1)
        P = m.P
        self.P_fault, self.P_clear, self.P_copy, self.P_kmap = P.page_fault, P.clear_page, P.copy_page, P.kmap_atomic
        self.P_pte_set, self.P_pte_clear, self.P_pte_copy, self.P_ref = P.pte_set, P.pte_clear, P.pte_copy, P.page_ref
        self.P_vma, self.P_pcl = P.vma_op, P.page_cache_lookup
        self.P_mmc_alloc, self.P_mmc_free, self.P_mmc_visit = P.mm_chain_alloc, P.mm_chain_free, P.mm_chain_visit
        self._fault_hook = m.policy("mmframe_handle_mm_fault")
        self._copy_hook = m.policy("mmframe_copy_pte_page")
        self._pte_hook = m.policy("mmframe_pte_change")
        self.fault_hook_is_core = not [o for o in m.hooks.resolved["mmframe_handle_mm_fault"].owners
                                       if o != "mmframe.core"]
        from mmframe.mm import madvise, mlock, mmap, mremap
        sched = m.sched
        for name in ("read", "write", "touch", "load", "store"):
            sched.handlers[name] = getattr(self, "sys_" + name)
        for name in ("mmap", "munmap", "mprotect", "msync", "brk"):
            sched.handlers[name] = getattr(mmap, "sys_" + name).__get__(self)
        for mod, names in ((mremap, ("mremap",)), (mlock, ("mlock", "munlock", "mlockall", "munlockall")),
                           (madvise, ("madvise", "mincore"))):
            for name in names:
                sched.handlers[name] = getattr(mod, "sys_" + name).__get__(self)
        sched.handlers["setsp"] = self.sys_setsp

    # --- address spaces -----------------------------------------------------------------------
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
        from mmframe.mm.fork import dup_mmap
        return dup_mmap(self, task.mm)

    def exit_mm(self, task: Task) -> None:
        mm, task.mm = task.mm, None
        self.mmput(mm)

    def mmput(self, mm: MMStruct) -> None:
        """Drop a user of ``mm``; the last one tears it down (``exit_mmap``)."""
        mm.users -= 1
        if mm.users == 0:
            from mmframe.mm.exit import exit_mmap
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

    # --- pages --------------------------------------------------------------------------------
    def alloc_user_page(self) -> int:
        """A zeroed GFP_HIGHUSER page (clear_user_highpage), or -1."""
        pfn = self.m.alloc_pages(GFP_HIGHUSER, 0)
        if pfn >= 0:
            self.acct.charge(self.P_clear)
            if pfn >= self.first_high:
                self.acct.charge(self.P_kmap)
            self.tag[pfn] = 0
        return pfn

    def put_page(self, pfn: int) -> None:
        c = self.count[pfn] - 1
        self.count[pfn] = c
        self.acct.charge(self.P_ref)
        if c == 0:
            if self.zero_tail or self.fine:
                content.forget(self, pfn)
            self.m.free_pages(pfn, 0)

    def pin(self, mm: MMStruct, addr: int) -> int:
        """Take a reference on the page mapped at ``addr`` (as get_user_pages for direct I/O does);
        the pfn, or -1 if nothing is mapped there.  A pinned page is copied, not reused, on COW."""
        pt = mm.ptp[addr >> self.sh]
        if pt is None:
            return -1
        pte = pt.ptes[(addr >> PAGE_SHIFT) & self.mask]
        if not pte & PTE_PRESENT_MASK or self.flags[pte >> PAGE_SHIFT] & _RESERVED:
            return -1
        pfn = pte >> PAGE_SHIFT
        self.count[pfn] += 1
        self.pins[pfn] = self.pins.get(pfn, 0) + 1
        self.acct.charge(self.P_ref)
        return pfn

    def unpin(self, pfn: int) -> None:
        n = self.pins[pfn] - 1
        if n:
            self.pins[pfn] = n
        else:
            del self.pins[pfn]
        self.put_page(pfn)

    # --- PTE pages and the PMD level (primitives a page-table policy uses) ----------------------
    def pte_alloc(self, mm: MMStruct, idx: int) -> PtePage | None:
        """``pte_alloc_map``: a zeroed PTE page (highmem with HIGHPTE) installed writable in slot
        ``idx``; None when no page could be had."""
        pfn = self.m.alloc_pages(GFP_PTE_HIGH if self.highpte else GFP_KERNEL, 0)
        if pfn < 0:
            return None
        high = pfn >= self.first_high
        self.acct.charge(self.P_clear)
        if high:
            self.acct.charge(self.P_kmap)
        self.pa.page_table_pages += 1
        pt = PtePage(pfn, self.geo, idx, high)
        pt.owners.append(mm)
        self.ptpages[pfn] = pt
        mm.ptp[idx] = pt
        mm.pmd[idx] = (pfn << PAGE_SHIFT) | _PAGE_TABLE
        return pt

    def pmd_share(self, src: MMStruct, dst: MMStruct, idx: int, writable: bool) -> None:
        """Point ``dst``'s slot ``idx`` at ``src``'s PTE page: one more reference and owner."""
        pt = src.ptp[idx]
        assert pt is not None and dst.ptp[idx] is None
        self.count[pt.pfn] += 1
        self._owner_add(pt, dst)
        dst.ptp[idx] = pt
        dst.pmd[idx] = (pt.pfn << PAGE_SHIFT) | (_PAGE_TABLE if writable else _PAGE_TABLE & ~_PAGE_RW)
        self.acct.charge(self.P_ref)
        self.acct.charge(self.P_pte_set)

    def _owner_add(self, pt: PtePage, mm: MMStruct) -> None:
        """A further owner: the patch's mm_chain takes a node per owner once there are two (a
        single owner is held directly, as PageDirect does for pte_chains)."""
        n = len(pt.owners)
        pt.owners.append(mm)
        nodes = 2 if n == 1 else 1 if n > 1 else 0
        if nodes:
            if self.c_mm_chain.alloc(GFP_KERNEL, nodes) < 0:  # lowmem gone: record it, as for pte_chains
                self.pa.events.append(("oops", "mm_chain_alloc", nodes))
                self.c_mm_chain.objects += nodes
            self.acct.charge(self.P_mmc_alloc, nodes)

    def _owner_remove(self, pt: PtePage, mm: MMStruct) -> None:
        n = len(pt.owners)
        pt.owners.remove(mm)
        nodes = 2 if n == 2 else 1 if n > 2 else 0
        if nodes:
            self.c_mm_chain.free(0, nodes)
            self.acct.charge(self.P_mmc_free, nodes)

    def rss_walk(self, pt: PtePage, n: int = 1) -> None:
        """``increment_rss``: a change of a shared PTE page's resident count visits every sharer."""
        sharers = self.count[pt.pfn]
        if sharers > 1:
            self.acct.charge(self.P_mmc_visit, sharers * n)

    def pmd_set_writable(self, mm: MMStruct, idx: int, writable: bool) -> None:
        """``pmd_mkwrite`` / ``pmd_wrprotect``; flushing the TLB is the caller's business."""
        e = mm.pmd[idx]
        mm.pmd[idx] = e | _PAGE_RW if writable else e & ~_PAGE_RW
        self.acct.charge(self.P_pte_set)

    def pmd_writable(self, mm: MMStruct, idx: int) -> bool:
        return bool(mm.pmd[idx] & _PAGE_RW)

    def pmd_drop(self, mm: MMStruct, idx: int) -> None:
        """Clear ``mm``'s slot ``idx`` and drop its reference on the PTE page; the last owner's
        drop zaps what is left in it and frees it (``pte_free``).  A shared table's dirty bits are
        its first owner's (the others' views were made clean when they got it, as fork's copy
        is), so that owner's drop carries them to the pages, as its zap would have."""
        pt = mm.ptp[idx]
        assert pt is not None
        if len(pt.owners) > 1 and pt.owners[0] is mm:
            self._clear_dirty(pt, to_pages=True)
        mm.ptp[idx] = None
        mm.pmd[idx] = 0
        self._owner_remove(pt, mm)
        c = self.count[pt.pfn] - 1
        self.acct.charge(self.P_ref)
        if c:
            self.count[pt.pfn] = c
            return
        if any(pt.ptes):
            self.zap_pte_range(pt, 0, len(pt.ptes))
        del self.ptpages[pt.pfn]
        self.pa.page_table_pages -= 1
        self.m.free_pages(pt.pfn, 0)

    def _clear_dirty(self, pt: PtePage, to_pages: bool) -> None:
        """Clear the dirty bits of a table's file pages; ``to_pages`` carries them to the pages
        (``set_page_dirty``), else their owner has taken them to its own copy."""
        v = pt.np()
        hit = np.flatnonzero(((v & PTE_PRESENT_MASK) != 0) & ((v & _PAGE_DIRTY) != 0))
        pfns = (v[hit] >> PAGE_SHIFT).astype(np.int64)
        cached = (self.flags_np[pfns] & _CACHE) != 0
        hit, pfns = hit[cached], pfns[cached]
        if not len(hit):
            return
        if pt.high:
            self.acct.charge(self.P_kmap)
        v[hit] &= v.dtype.type(~_PAGE_DIRTY & (2 ** (8 * v.itemsize) - 1))
        self.acct.charge(self.P_pte_set, len(hit))
        if to_pages:
            for pfn in pfns.tolist():
                filemap.set_page_dirty(self, pfn)

    def sharers(self, pt: PtePage) -> int:
        """How many mms use this PTE page (its page count)."""
        return self.count[pt.pfn]

    def flush_tlb_mm(self, mm: MMStruct) -> None:
        self.m.tlb.flush_tlb_mm(mm, self._cpu())

    def unshare(self, mm: MMStruct, idx: int) -> PtePage | None:
        """Give ``mm`` a private copy of the shared PTE page in slot ``idx`` (the 2002 patch's
        ``pte_unshare``): a new PTE page with every present entry copied, page references and
        rmap entries for each; copy-on-write entries write-protected in the copy and in the source
        (the 2002 patch did the source only when one sharer remained, which a later exit of another
        sharer makes unsafe); the PMD made writable; the mm's TLB flushed.  With a count of one only
        the PMD is made writable.  None if no page could be had."""
        self.pte_changes[UNSHARE] += 1
        old = mm.ptp[idx]
        assert old is not None
        if self.count[old.pfn] == 1:
            self.pmd_set_writable(mm, idx, True)
            self.flush_tlb_mm(mm)
            return old
        new = self.pte_alloc(mm, idx)  # on success it replaces the slot's PMD entry
        if new is None:
            return None
        first = old.owners[0] is mm  # the owner of the table's dirty bits takes them along
        self._owner_remove(old, mm)
        self.count[old.pfn] -= 1
        self.acct.charge(self.P_ref)
        from mmframe.mm.fork import copy_pte_range
        copy_pte_range(self, mm, old, new, idx, wrprotect_src=True, src_owner=old.owners[0],
                       reason=UNSHARE, keep_dirty=first)
        if first:
            self._clear_dirty(old, to_pages=False)
        self.flush_tlb_mm(mm)
        return new

    # --- the choke point --------------------------------------------------------------------------
    def pte_change(self, mm: MMStruct, idx: int, reason: int, start: int, end: int) -> PtePage | None:
        """Every write to a PTE page starts here: count the reason, let the policy act (unshare,
        or do the change at the PMD level and return True), map the page (``kmap_atomic`` with
        HIGHPTE).  Returns the PTE page to write, or None when the policy did the change."""
        self.pte_changes[reason] += 1
        hook = self._pte_hook
        if hook is not None and hook(self, mm, idx, REASONS[reason], start, end):
            return None
        pt = mm.ptp[idx]
        if pt is not None and pt.high:
            self.acct.charge(self.P_kmap)
        return pt

    # --- accesses (the hardware walk) ------------------------------------------------------------
    def sys_read(self, task: Task, addr: int) -> int:
        mm = task.mm
        for _ in range(4):
            if 0 <= addr < TASK_SIZE:
                idx = addr >> self.sh
                pt = mm.ptp[idx]
                if pt is not None:
                    pte = pt.ptes[(addr >> PAGE_SHIFT) & self.mask]
                    if pte & _PAGE_PRESENT:
                        pfn = pte >> PAGE_SHIFT
                        if self.zero_tail or self.fine:  # a zeroed tail past EOF, bytes written
                            return content.load_word(self, pfn, addr & 0xFFF)
                        return self.tag[pfn]
            self.do_page_fault(task, addr, False)
        raise AssertionError(f"read fault at {addr:#x} did not make the page present")

    def sys_write(self, task: Task, addr: int, tag: int) -> int:
        if type(tag) is not int or tag >> 63 not in (0, -1):
            return -EINVAL  # a page's content tag is a 64-bit signed integer
        mm = task.mm
        for _ in range(4):
            if 0 <= addr < TASK_SIZE:
                idx = addr >> self.sh
                pt = mm.ptp[idx]
                if pt is not None and mm.pmd[idx] & _PAGE_RW:
                    i = (addr >> PAGE_SHIFT) & self.mask
                    pte = pt.ptes[i]
                    if pte & 3 == 3:  # present and writable; the MMU sets the dirty bit
                        if not pte & _PAGE_DIRTY:
                            pt.ptes[i] = pte | _PAGE_DIRTY | _PAGE_ACCESSED
                        pfn = pte >> PAGE_SHIFT
                        self.tag[pfn] = tag
                        if self.zero_tail or self.fine:
                            content.forget(self, pfn)
                        return 0
            self.do_page_fault(task, addr, True)
        raise AssertionError(f"write fault at {addr:#x} did not make the page writable")

    def copy_to_user(self, task: Task, addr: int, tag: int) -> bool:
        """Store a page's tag at a user address, faulting it in; False (the syscall's -EFAULT)
        where a user access would have had a signal."""
        try:
            self.sys_write(task, addr, tag)
        except SimSignal:
            return False
        return True

    def copy_from_user(self, task: Task, addr: int) -> int | None:
        """The tag of the user page at ``addr``, or None for -EFAULT.  Read at the page's first
        byte, which a zeroed tail (past EOF, so never at offset 0) does not cover."""
        try:
            return self.sys_read(task, addr & ~(PAGE_SIZE - 1))
        except SimSignal:
            return None

    def user_page(self, task: Task, addr: int, write: bool, user: bool = False) -> int:
        """The page under user address ``addr`` as the MMU reaches it, faulting as an access would
        (a store sets the PTE's dirty bit); raises the access's signal."""
        mm = task.mm
        for _ in range(4):
            if 0 <= addr < TASK_SIZE:
                idx = addr >> self.sh
                pt = mm.ptp[idx]
                if pt is not None and (not write or mm.pmd[idx] & _PAGE_RW):
                    i = (addr >> PAGE_SHIFT) & self.mask
                    pte = pt.ptes[i]
                    if write and pte & 3 == 3:
                        if not pte & _PAGE_DIRTY:
                            pt.ptes[i] = pte | _PAGE_DIRTY | _PAGE_ACCESSED
                        return pte >> PAGE_SHIFT
                    if not write and pte & _PAGE_PRESENT:
                        return pte >> PAGE_SHIFT
            self.do_page_fault(task, addr, write, user)
        raise AssertionError(f"fault at {addr:#x} did not make the page accessible")

    def sys_load(self, task: Task, addr: Any, n: Any) -> Any:
        """A program's load of ``n`` bytes at ``addr`` (``memcpy`` out of memory): bytes."""
        if type(addr) is not int or type(n) is not int or n < 0:
            return -EINVAL
        out = []
        while n > 0:
            k = min(n, PAGE_SIZE - (addr & (PAGE_SIZE - 1)))
            out.append(content.read_bytes(self, self.user_page(task, addr, False, True), addr & (PAGE_SIZE - 1), k))
            addr, n = addr + k, n - k
        return b"".join(out)

    def sys_store(self, task: Task, addr: Any, data: Any) -> int:
        """A program's store of ``data`` (bytes) at ``addr``: 0; the bytes around are unchanged."""
        if type(addr) is not int or not isinstance(data, (bytes, bytearray)):
            return -EINVAL
        done = 0
        while done < len(data):
            a = addr + done
            k = min(len(data) - done, PAGE_SIZE - (a & (PAGE_SIZE - 1)))
            content.write_bytes(self, self.user_page(task, a, True, True), a & (PAGE_SIZE - 1),
                                bytes(data[done:done + k]))
            done += k
        return 0

    def copy_bytes_to_user(self, task: Task, addr: int, data: bytes) -> int:
        """``__copy_to_user``: store ``data`` at ``addr``; how many bytes went before a fault (the
        caller's -EFAULT or short count)."""
        done, n = 0, len(data)
        while done < n:
            a = addr + done
            k = min(n - done, PAGE_SIZE - (a & (PAGE_SIZE - 1)))
            try:
                pfn = self.user_page(task, a, True)
            except SimSignal:
                return done
            content.write_bytes(self, pfn, a & (PAGE_SIZE - 1), data[done:done + k])
            done += k
        return done

    def copy_bytes_from_user(self, task: Task, addr: int, n: int) -> bytes:
        """``__copy_from_user``: the bytes at ``addr`` up to the first fault."""
        out, done = [], 0
        while done < n:
            a = addr + done
            k = min(n - done, PAGE_SIZE - (a & (PAGE_SIZE - 1)))
            try:
                pfn = self.user_page(task, a, False)
            except SimSignal:
                break
            out.append(content.read_bytes(self, pfn, a & (PAGE_SIZE - 1), k))
            done += k
        return b"".join(out)

    def sys_setsp(self, task: Task, sp: Any) -> int:
        """Set the task's %esp (what its pushes and calls would move): faults below the stack are
        then checked against it as i386 2.5's do_page_fault does."""
        if type(sp) is not int or not 0 <= sp <= TASK_SIZE:
            return -EINVAL
        task.sp = sp
        return 0

    def do_page_fault(self, task: Task, addr: int, write: bool, user: bool = True) -> int:
        """The trap: find the VMA, check the access, hand over to ``handle_mm_fault`` (the hook).
        Below a stack VMA, a user-mode access more than 32 bytes below %esp is SIGSEGV (i386 2.5's
        "accessing the stack below %esp is always a bug"; 2.6 later allowed 65536 + 32 * 4 bytes);
        a task that never set its %esp is not checked."""
        self.acct.charge(self.P_fault)
        mm = task.mm
        if not 0 <= addr < TASK_SIZE:
            raise SimSignal(SIGSEGV, SEGV_MAPERR, addr)
        vma = mm.vmas.find(addr)
        if vma is not None and vma.start > addr and vma.flags & VM_GROWSDOWN and user and \
                task.sp is not None and addr + 32 < task.sp:
            raise SimSignal(SIGSEGV, SEGV_MAPERR, addr)
        if vma is None or vma.start > addr and not self.expand_stack(mm, vma, addr):
            raise SimSignal(SIGSEGV, SEGV_MAPERR, addr)
        if not vma.flags & (VM_WRITE if write else VM_READ | VM_EXEC):
            raise SimSignal(SIGSEGV, SEGV_ACCERR, addr)
        r = self._fault_hook(self, mm, vma, addr, write)
        if r == VM_FAULT_OOM:
            self.m.sched.kill(task, SIGKILL)
            raise Killed()
        if r == VM_FAULT_SIGBUS:
            raise SimSignal(SIGBUS, BUS_ADRERR, addr)
        return r

    def expand_stack(self, mm: MMStruct, vma: VMA, addr: int) -> bool:
        """``expand_stack``: a fault below a VM_GROWSDOWN VMA (nothing lies between, find_vma saw
        to that) grows it down to the page, within RLIMIT_STACK.  i386 2.5 also refused an access
        more than 32 bytes below %esp; the model has no stack pointer."""
        start = addr & ~(PAGE_SIZE - 1)
        if not vma.flags & VM_GROWSDOWN or vma.end - start > RLIMIT_STACK:
            return False
        old = vma.start
        mm.vmas.remove(vma)
        vma.start = start
        mm.vmas.insert(vma)
        self.acct.charge(self.P_vma)
        if vma.flags & VM_LOCKED:
            mm.locked_vm += (old - start) >> PAGE_SHIFT
        self.mapping_changed(mm, start, old)
        return True

    def mapping_changed(self, mm: MMStruct, start: int, end: int) -> None:
        """A VMA now covers ``[start, end)`` differently (mmap, brk, stack growth): a change to
        the PTE pages there, through the choke point (a sharing policy unshares them)."""
        if self._pte_hook is None:
            return
        for idx, i0, i1 in self.pmd_slots(mm, start, end):
            self.pte_change(mm, idx, MMAP, i0, i1)

    def handle_mm_fault(self, mm: MMStruct, vma: VMA, addr: int, write: bool) -> int:
        """2.5.49 ``handle_mm_fault`` / ``handle_pte_fault`` (the core's fault policy)."""
        idx = addr >> self.sh
        pt = mm.ptp[idx]
        if pt is None:
            pt = self.pte_alloc(mm, idx)
            if pt is None:
                return VM_FAULT_OOM
        i = (addr >> PAGE_SHIFT) & self.mask
        pte = pt.ptes[i]
        if not pte & PTE_PRESENT_MASK:
            if vma.obj is not None:
                return self.do_no_page(mm, vma, addr, idx, i, write)
            return self.do_anonymous_page(mm, vma, addr, idx, i, write)
        if write and not pte & _PAGE_RW:
            return self.do_wp_page(mm, vma, addr, idx, i, pte)
        if write and not mm.pmd[idx] & _PAGE_RW:
            raise AssertionError(f"write fault at {addr:#x}: PMD write-protected and no policy unshared it")
        return VM_FAULT_MINOR  # spurious: another sharer filled it, or a read of a present page

    def do_anonymous_page(self, mm: MMStruct, vma: VMA, addr: int, idx: int, i: int, write: bool) -> int:
        acct = self.acct
        if not write:
            pt = self.pte_change(mm, idx, FAULT, i, i + 1)
            pt.ptes[i] = (ZERO_PFN << PAGE_SHIFT) | PAGE_READONLY  # pte_wrprotect(ZERO_PAGE)
            acct.charge(self.P_pte_set)
            return VM_FAULT_MINOR
        pfn = self.alloc_user_page()
        if pfn < 0:
            return VM_FAULT_OOM
        self._map_page(mm, idx, i, pfn, vma.page_prot | _PAGE_RW | _PAGE_DIRTY)
        return VM_FAULT_MINOR

    def _map_page(self, mm: MMStruct, idx: int, i: int, pfn: int, prot: int) -> None:
        """A fault's new mapping of a page that is not reserved: the entry, rss, the rmap entry."""
        pt = self.pte_change(mm, idx, FAULT, i, i + 1)
        pt.ptes[i] = (pfn << PAGE_SHIFT) | prot
        self.acct.charge(self.P_pte_set)
        pt.rss += 1
        self.rss_walk(pt)
        self.rmap.add(pfn, pt, i)

    def do_no_page(self, mm: MMStruct, vma: VMA, addr: int, idx: int, i: int, write: bool) -> int:
        """A fault in a mapping with a backing object: the object's ``nopage`` (page cache, reading
        the file in; shmem zero-fill), SIGBUS past its end; a write to a private mapping gets a
        private copy at once (2.5's do_no_page), a write to a shared one maps it dirty."""
        pfn = vma.obj.nopage(self, vma.pgoff + ((addr - vma.start) >> PAGE_SHIFT))
        if pfn < 0:
            return VM_FAULT_SIGBUS if pfn == NOPAGE_SIGBUS else VM_FAULT_OOM
        prot = vma.page_prot
        if write and not vma.flags & VM_SHARED:
            new = self.m.alloc_pages(GFP_HIGHUSER, 0)
            if new < 0:
                return VM_FAULT_OOM
            self._copy_user_highpage(pfn, new)
            pfn = new
            prot |= _PAGE_RW | _PAGE_DIRTY
        else:
            self.count[pfn] += 1
            self.acct.charge(self.P_ref)
            if write:
                prot |= _PAGE_RW | _PAGE_DIRTY
        self._map_page(mm, idx, i, pfn, prot)
        return VM_FAULT_MINOR

    def _copy_user_highpage(self, old: int, new: int) -> None:
        """``copy_user_highpage``: the content (and a zeroed tail past EOF) of ``old`` into ``new``."""
        self.acct.charge(self.P_copy)
        self.acct.charge(self.P_kmap, (new >= self.first_high) + (old >= self.first_high))
        content.copy_page(self, old, new)

    def do_wp_page(self, mm: MMStruct, vma: VMA, addr: int, idx: int, i: int, pte: int) -> int:
        """Copy-on-write: reuse the page if this mapping holds its only reference, else copy it."""
        acct = self.acct
        old = pte >> PAGE_SHIFT
        reserved = self.flags[old] & _RESERVED
        if vma.flags & VM_SHARED or (not reserved and self.count[old] == 1):
            pt = self.pte_change(mm, idx, COW, i, i + 1)
            pt.ptes[i] = pte | _PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED
            acct.charge(self.P_pte_set)
            self.m.tlb.flush_tlb_page(mm, self._cpu(), addr)
            return VM_FAULT_MINOR
        new = self.m.alloc_pages(GFP_HIGHUSER, 0)
        if new < 0:
            return VM_FAULT_OOM
        # copy_cow_page: the ZERO_PAGE is cleared, not copied; highmem pages are kmapped
        if reserved:
            acct.charge(self.P_clear)
            acct.charge(self.P_kmap, new >= self.first_high)
            self.tag[new] = 0
        else:
            self._copy_user_highpage(old, new)
        pt = self.pte_change(mm, idx, COW, i, i + 1)
        if reserved:
            pt.rss += 1
        else:
            self.rmap.remove(old, pt, i)
        pt.ptes[i] = (new << PAGE_SHIFT) | vma.page_prot | _PAGE_RW | _PAGE_DIRTY
        acct.charge(self.P_pte_set)
        self.rmap.add(new, pt, i)
        self.m.tlb.flush_tlb_page(mm, self._cpu(), addr)
        if not reserved:
            self.put_page(old)
        return VM_FAULT_MINOR

    # --- touch: a range of accesses, bulk where it can be -----------------------------------------
    def sys_touch(self, task: Task, start: int, length: int, write: bool = False) -> int:
        if length < 0:
            return -EINVAL
        mm = task.mm
        addr, end = start & ~(PAGE_SIZE - 1), start + length
        while addr < end:
            vma = mm.vmas.find(addr) if 0 <= addr < TASK_SIZE else None
            if vma is None or vma.start > addr or not vma.flags & (VM_WRITE if write else VM_READ | VM_EXEC):
                self.do_page_fault(task, addr, write)  # raises the signal, or grows the stack
                continue
            idx = addr >> self.sh
            run_end = min(end, vma.end, (idx + 1) << self.sh)
            self._touch_run(task, mm, vma, idx, addr, run_end, write)
            addr = (run_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        return 0

    def _touch_run(self, task: Task, mm: MMStruct, vma: VMA, idx: int, lo: int, hi: int, write: bool) -> None:
        """Access every page of ``[lo, hi)`` (one VMA, one PMD slot): a fault where the hardware
        would take one; entries with nothing mapped are filled a PTE page at a time."""
        base = idx << self.sh
        i0, i1 = (lo - base) >> PAGE_SHIFT, (hi - base + PAGE_SIZE - 1) >> PAGE_SHIFT
        if write and mm.ptp[idx] is not None and not mm.pmd[idx] & _PAGE_RW:
            self.do_page_fault(task, lo, True)  # a write-protected PMD: the policy's business
        pt = mm.ptp[idx]
        if pt is None:
            need = np.arange(i0, i1)
            empty = need
        else:
            seg = pt.np()[i0:i1]
            bad = (seg & _PAGE_PRESENT) == 0
            if write:
                bad |= (seg & _PAGE_RW) == 0
                seg[~bad] |= _PAGE_DIRTY | _PAGE_ACCESSED  # the MMU marks what is written dirty
            need = np.flatnonzero(bad) + i0
            empty = need[(pt.np()[need] & PTE_PRESENT_MASK) == 0] if len(need) else need
        if not len(need):
            return
        private_file_write = write and vma.obj is not None and not vma.flags & VM_SHARED
        if len(empty) >= BULK_MIN and len(empty) == len(need) and not private_file_write:
            if not self.fault_hook_is_core:  # the policy sees the first fault of the PTE page
                self.do_page_fault(task, base + (int(empty[0]) << PAGE_SHIFT), write)
                pt = mm.ptp[idx]
                empty = empty[1:]
                empty = empty[(pt.np()[empty] & PTE_PRESENT_MASK) == 0]
            if len(empty) and (not write or mm.ptp[idx] is None or mm.pmd[idx] & _PAGE_RW):
                self._fill_bulk(task, mm, vma, idx, empty, write)
                return
            need = empty
        for i in need.tolist():
            self.do_page_fault(task, base + (i << PAGE_SHIFT), write)

    def _fill_bulk(self, task: Task, mm: MMStruct, vma: VMA, idx: int, slots: np.ndarray, write: bool) -> None:
        """Anonymous or shared-object faults on empty entries, a PTE page at a time, charging what
        one fault per entry would: the trap, the page, the PTE, the rmap entry, a kmap each."""
        n = len(slots)
        acct = self.acct
        pt = mm.ptp[idx]
        if pt is None:
            pt = self.pte_alloc(mm, idx)
            if pt is None:
                self.m.sched.kill(task, SIGKILL)
                raise Killed()
        if vma.obj is None and not write:
            acct.charge(self.P_fault, n)
            pt = self.pte_change(mm, idx, FAULT, int(slots[0]), int(slots[-1]) + 1)
            if pt.high:
                acct.charge(self.P_kmap, n - 1)
            pt.np()[slots] = (ZERO_PFN << PAGE_SHIFT) | PAGE_READONLY
            acct.charge(self.P_pte_set, n)
            return
        base = idx << self.sh
        obj = vma.obj
        if obj is not None:
            first = vma.pgoff + ((base - vma.start) >> PAGE_SHIFT)
            got, err = obj.nopage_bulk(self, (slots + first).tolist())
            pfns = np.array(got, dtype=np.int64)
            j = len(got)
            self.count_np[pfns] += 1  # the mappings' references (distinct pages)
            acct.charge(self.P_ref, j)
        else:
            pfns, j, err = np.empty(n, dtype=np.int64), 0, 0
            for j in range(n):
                pfn = self.alloc_user_page()
                if pfn < 0:
                    err = NOPAGE_OOM
                    break
                pfns[j] = pfn
            else:
                j = n
        if err:  # fill what we have, then SIGBUS or the out-of-memory kill
            acct.charge(self.P_fault, j + 1)  # the faults taken, the last one failing
            if j:
                self._install(mm, vma, idx, slots[:j], pfns[:j], write)
            if err == NOPAGE_SIGBUS:
                raise SimSignal(SIGBUS, BUS_ADRERR, base + (int(slots[j]) << PAGE_SHIFT))
            self.m.sched.kill(task, SIGKILL)
            raise Killed()
        acct.charge(self.P_fault, n)
        self._install(mm, vma, idx, slots, pfns, write)

    def _install(self, mm: MMStruct, vma: VMA, idx: int, slots: np.ndarray, pfns: np.ndarray, write: bool) -> None:
        n = len(slots)
        pt = self.pte_change(mm, idx, FAULT, int(slots[0]), int(slots[-1]) + 1)
        if pt.high:
            self.acct.charge(self.P_kmap, n - 1)
        prot = vma.page_prot | (_PAGE_RW | _PAGE_DIRTY if write else 0)
        pt.np()[slots] = (pfns << PAGE_SHIFT) | prot
        self.acct.charge(self.P_pte_set, n)
        pt.rss += n
        self.rss_walk(pt, n)
        self.rmap.add_bulk(pfns, pt, slots)

    # --- zap and mprotect's PTE pass ---------------------------------------------------------------
    def pmd_slots(self, mm: MMStruct, start: int, end: int):
        """The populated PMD slots under ``[start, end)``, each as ``(idx, first, end)`` entries."""
        sh = self.sh
        for idx in range(start >> sh, ((end - 1) >> sh) + 1):
            if mm.ptp[idx] is not None:
                base = idx << sh
                yield idx, (max(start, base) - base) >> PAGE_SHIFT, (min(end, base + (1 << sh)) - base) >> PAGE_SHIFT

    def zap_range(self, mm: MMStruct, start: int, end: int, reason: int = ZAP) -> None:
        """``zap_page_range``: clear the PTEs of ``[start, end)`` through the choke point."""
        for idx, i0, i1 in self.pmd_slots(mm, start, end):
            pt = self.pte_change(mm, idx, reason, i0, i1)
            if pt is not None:
                self.zap_pte_range(pt, i0, i1)

    def zap_pte_range(self, pt: PtePage, i0: int, i1: int) -> None:
        """Clear entries ``[i0, i1)`` of one PTE page: drop rmap entries and page references."""
        if i1 - i0 < BULK_MIN:
            ptes, flags, acct = pt.ptes, self.flags, self.acct
            for i in range(i0, i1):
                pte = ptes[i]
                if not pte & PTE_PRESENT_MASK:
                    continue
                ptes[i] = 0
                acct.charge(self.P_pte_clear)
                pfn = pte >> PAGE_SHIFT
                if flags[pfn] & _RESERVED:
                    continue
                if pte & _PAGE_DIRTY and flags[pfn] & _CACHE:
                    filemap.set_page_dirty(self, pfn)
                self.rmap.remove(pfn, pt, i)
                pt.rss -= 1
                self.put_page(pfn)
            return
        v = pt.np()[i0:i1]
        pres = np.flatnonzero(v & PTE_PRESENT_MASK)
        if not len(pres):
            return
        old = v[pres]
        pfns = (old >> PAGE_SHIFT).astype(np.int64)
        v[pres] = 0
        self.acct.charge(self.P_pte_clear, len(pres))
        dirty = pfns[((old & _PAGE_DIRTY) != 0) & ((self.flags_np[pfns] & _CACHE) != 0)]
        for pfn in dirty.tolist():
            filemap.set_page_dirty(self, pfn)
        real = (self.flags_np[pfns] & _RESERVED) == 0
        rp = pfns[real]
        if not len(rp):
            return
        self.rmap.remove_bulk(rp, pt, pres[real] + i0)
        pt.rss -= len(rp)
        self.release_pages(rp)

    def release_pages(self, pfns: np.ndarray) -> None:
        """``put_page`` on each, in order, freeing those whose last reference went."""
        self.acct.charge(self.P_ref, len(pfns))
        count = self.count_np
        np.subtract.at(count, pfns, 1)
        gone = pfns[count[pfns] == 0]
        if len(gone):
            free, seen, marks = self.m.free_pages, set(), bool(self.zero_tail or self.fine)
            for pfn in gone.tolist():
                if pfn not in seen:
                    seen.add(pfn)
                    if marks:
                        content.forget(self, pfn)
                    free(pfn, 0)

    def change_protection(self, mm: MMStruct, start: int, end: int, prot: int) -> None:
        """mprotect's ``change_pte_range`` over ``[start, end)``: ``pte_modify`` every present entry."""
        for idx, i0, i1 in self.pmd_slots(mm, start, end):
            pt = self.pte_change(mm, idx, MPROTECT, i0, i1)
            if pt is None:
                continue
            if i1 - i0 < BULK_MIN:
                ptes = pt.ptes
                for i in range(i0, i1):
                    pte = ptes[i]
                    if pte & PTE_PRESENT_MASK:
                        ptes[i] = (pte & _PTE_CHG_MASK) | prot
                        self.acct.charge(self.P_pte_set)
                continue
            v = pt.np()[i0:i1]
            pres = np.flatnonzero(v & PTE_PRESENT_MASK)
            if len(pres):
                v[pres] = (v[pres] & v.dtype.type(_PTE_CHG_MASK & (2 ** (8 * v.itemsize) - 1))) | v.dtype.type(prot)
                self.acct.charge(self.P_pte_set, len(pres))

    # --- objects ---------------------------------------------------------------------------------
    def new_object(self, npages: int) -> ShmemObject:
        obj = ShmemObject(npages, RadixTree(self.radix_pool))
        self.objects.add(obj)
        return obj

    def put_object(self, obj: Any) -> None:
        """Drop a reference to a mapping's object (a shmem object or an open file)."""
        obj.refs -= 1
        if obj.refs == 0:
            obj.release(self)

    def drop_object_pages(self, obj: ShmemObject) -> None:
        """The object is gone: its cache's references dropped in bulk, its tree's nodes freed."""
        tree = obj.mapping.page_tree
        pfns = np.array(tree.values(), dtype=np.int64)
        tree.clear()
        obj.mapping.dirty.clear()
        cache = self.page_cache
        for pfn in pfns.tolist():
            del cache[pfn]
        if len(pfns):
            self.release_pages(pfns)
        self.objects.discard(obj)

    def vma_free(self, vma: VMA) -> None:
        if vma.obj is not None:
            self.put_object(vma.obj)
        self.c_vma.free()
        self.acct.charge(self.P_vma)

    def vma_alloc(self) -> bool:
        self.acct.charge(self.P_vma)
        return self.c_vma.alloc() >= 0

    # --- reports ---------------------------------------------------------------------------------
    def reverse_maps(self) -> int:
        return self.rmap.entries()

    def highmem_pte_pages(self) -> int:
        """PTE pages in highmem (HIGHPTE): PageTables counts them, lowmem does not hold them."""
        return sum(pt.high for pt in self.ptpages.values())

    def check(self) -> None:
        from mmframe.mm.debug_vm import check
        check(self)

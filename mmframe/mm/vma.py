"""``vm_area_struct``: the mappings of an address space, in sorted lists keyed by start.

``find_vma`` is 2.5's: the first VMA ending above the address, through a one-entry ``mmap_cache``
first; O(log V) otherwise.  Splitting, merging and the mapping calls are in
:mod:`mmframe.mm.mmap`.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

from mmframe.mm.filemap import NOPAGE_SIGBUS, AddressSpace, shmem_getpage, shmem_getpages
from mmframe.mm.page import PAGE_SHIFT
from mmframe.mm.pgtable import PAGE_COPY, PAGE_NONE, PAGE_READONLY, PAGE_SHARED

VM_READ, VM_WRITE, VM_EXEC, VM_SHARED = 0x1, 0x2, 0x4, 0x8
VM_MAYREAD, VM_MAYWRITE, VM_MAYEXEC, VM_MAYSHARE = 0x10, 0x20, 0x40, 0x80
VM_GROWSDOWN, VM_LOCKED, VM_IO, VM_DONTCOPY, VM_RESERVED = 0x100, 0x2000, 0x4000, 0x20000, 0x80000
VM_SEQ_READ, VM_RAND_READ = 0x8000, 0x10000  # madvise hints (2.5.49 linux/mm.h)


def vm_page_prot(flags: int) -> int:
    """i386 ``protection_map``: private writable mappings are read-only until a COW fault."""
    if not flags & (VM_READ | VM_WRITE | VM_EXEC):
        return PAGE_NONE
    if flags & VM_WRITE:
        return PAGE_SHARED if flags & VM_SHARED else PAGE_COPY
    return PAGE_READONLY


class VMA:
    """One mapping ``[start, end)``: flags, the page protection they imply, backing object."""

    __slots__ = ("start", "end", "flags", "page_prot", "obj", "pgoff")

    def __init__(self, start: int, end: int, flags: int, obj: Any = None, pgoff: int = 0) -> None:
        self.start, self.end, self.flags, self.obj, self.pgoff = start, end, flags, obj, pgoff
        self.page_prot = vm_page_prot(flags)

    def set_flags(self, flags: int) -> None:
        self.flags = flags
        self.page_prot = vm_page_prot(flags)

    def clone(self, start: int, end: int) -> VMA:
        """A copy covering ``[start, end)`` of this one (the object gains a reference)."""
        v = VMA(start, end, self.flags, self.obj, self.pgoff + ((start - self.start) >> PAGE_SHIFT))
        if self.obj is not None:
            self.obj.get()
        return v

    @property
    def file_backed(self) -> bool:
        """A mapping of a file (its object is an open file), not anonymous memory, shmem or SysV shm."""
        return getattr(self.obj, "inode", None) is not None

    @property
    def cow(self) -> bool:
        """Private and may be written: copy-on-write applies (``copy_page_range``'s test)."""
        return self.flags & (VM_SHARED | VM_MAYWRITE) == VM_MAYWRITE

    def __repr__(self) -> str:
        return f"<VMA {self.start:#x}-{self.end:#x} flags={self.flags:#x}>"


class VMAList:
    """The VMAs of one mm (the kernel's list plus AVL tree), with ``mmap_cache``: two parallel
    Python lists sorted by start (the starts, the VMAs), searched with :mod:`bisect` in C.  A
    lookup is O(log V); an insert or removal moves O(V) pointers with one memmove, cheaper than a
    balanced tree's Python-level rebalancing for the few hundred VMAs a process has."""

    __slots__ = ("starts", "vmas", "cache")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.vmas: list[VMA] = []
        self.cache: VMA | None = None

    def __len__(self) -> int:
        return len(self.vmas)

    def __iter__(self):
        return iter(self.vmas)

    def find(self, addr: int) -> VMA | None:
        """``find_vma``: the first VMA with ``end > addr`` (it may start above ``addr``)."""
        c = self.cache
        if c is not None and c.start <= addr < c.end:
            return c
        i = bisect_right(self.starts, addr) - 1
        vmas = self.vmas
        if i >= 0:
            v = vmas[i]
            if addr < v.end:
                self.cache = v
                return v
        if i + 1 < len(vmas):
            return vmas[i + 1]
        return None

    def overlapping(self, start: int, end: int) -> list[VMA]:
        """The VMAs meeting ``[start, end)``, in order.  O(log V + found)."""
        i = bisect_right(self.starts, start) - 1
        out = []
        vmas = self.vmas
        for j in range(i if i > 0 else 0, len(vmas)):
            v = vmas[j]
            if v.start >= end:
                break
            if v.end > start:
                out.append(v)
        return out

    def span(self, start: int, end: int) -> tuple[int, int]:
        """``(i, j)``: ``vmas[i:j]`` are the VMAs meeting ``[start, end)`` (``end > start``); when
        none does, ``i == j`` is where a VMA for the range would go, ``vmas[i - 1]`` and
        ``vmas[i]`` the ones either side.  Two bisections, O(log V)."""
        starts = self.starts
        i = bisect_right(starts, start) - 1
        if i < 0 or self.vmas[i].end <= start:
            i += 1
        return i, bisect_left(starts, end)

    def either_side(self, i: int) -> tuple[VMA | None, VMA | None]:
        """The VMAs at ``i - 1`` and ``i``: :meth:`neighbours` of a free range whose :meth:`span`
        gave ``(i, i)``."""
        vmas = self.vmas
        return vmas[i - 1] if i > 0 else None, vmas[i] if i < len(vmas) else None

    def from_addr(self, addr: int):
        """The VMAs ending above ``addr``, in order, lazily (a gap search stops at the first fit)."""
        i = bisect_right(self.starts, addr) - 1
        vmas = self.vmas
        for j in range(i if i > 0 else 0, len(vmas)):
            v = vmas[j]
            if v.end > addr:
                yield v

    def insert(self, v: VMA) -> None:
        starts = self.starts
        i = bisect_left(starts, v.start)
        if i < len(starts) and starts[i] == v.start:  # as a mapping keyed by start: replace
            if self.cache is self.vmas[i]:
                self.cache = None
            self.vmas[i] = v
            return
        starts.insert(i, v.start)
        self.vmas.insert(i, v)

    def remove_span(self, i: int, j: int) -> list[VMA]:
        """Take out ``vmas[i:j]`` (from :meth:`span`) in one step; returns them.  O(V) memmove."""
        hit = self.vmas[i:j]
        del self.starts[i:j]
        del self.vmas[i:j]
        if self.cache in hit:
            self.cache = None
        return hit

    def remove(self, v: VMA) -> None:
        i = bisect_left(self.starts, v.start)
        if i == len(self.starts) or self.starts[i] != v.start:
            raise KeyError(v.start)
        del self.starts[i]
        del self.vmas[i]
        if self.cache is v:
            self.cache = None

    def neighbours(self, start: int, end: int) -> tuple[VMA | None, VMA | None]:
        """The VMAs just below ``start`` and from ``end`` up (for free_pgtables and merging)."""
        starts, vmas = self.starts, self.vmas
        i = bisect_left(starts, start) - 1
        prev = vmas[i] if i >= 0 else None
        j = bisect_left(starts, end)
        nxt = vmas[j] if j < len(vmas) else None
        return prev, nxt


class ShmemObject:
    """The object behind shared anonymous memory and SysV shm (2.5's shmem inode and file): a
    page cache of ``npages`` pages, zero-filled on first use, and a count of references (each VMA
    mapping it holds one; a SysV segment's id holds one until IPC_RMID)."""

    __slots__ = ("mapping", "refs", "npages", "on_release", "shm", "swap", "charged")

    def __init__(self, npages: int, tree: Any) -> None:
        self.mapping = AddressSpace(self, tree, backed=False)
        self.refs = 1
        self.npages = npages
        self.on_release: Any = None
        self.shm: Any = None  # the SysV segment, if this is one
        self.swap: dict[int, int] = {}  # index -> swap entry of a page reclaim swapped out
        self.charged = 0  # pages charged to the committed total (overcommit accounting)

    def get(self) -> None:
        self.refs += 1

    def nopage(self, vm: Any, index: int) -> int:
        """``shmem_nopage``: SIGBUS past the object's size, else the page (allocated zeroed)."""
        if index >= self.npages:
            return NOPAGE_SIGBUS
        return shmem_getpage(vm, self.mapping, index)

    def nopage_bulk(self, vm: Any, indices: list[int]) -> tuple[list[int], int]:
        """``nopage`` for many pages (a bulk fill): their pfns in order, stopping at the first
        failure, whose code is returned with them (0 when none failed), each with its mapping's
        reference taken as it was found (so reclaim for a later page cannot swap out an earlier
        one).  Charges what one ``nopage`` a page would: a lookup each, a cleared page and an
        insert for each miss."""
        return shmem_getpages(vm, self.mapping, indices, self.npages)

    def release(self, vm: Any) -> None:
        """The last reference went: the pages and the tree's nodes go back."""
        if self.on_release is not None:
            self.on_release(self)
        vm.drop_object_pages(self)

"""A slab-like accounting of kernel objects in lowmem (pte_chains, radix-tree nodes, tasks).

Each cache packs ``PAGE_SIZE // size`` objects into order-0 GFP_KERNEL pages (objects are aligned
to ``align``; the slab's own management overhead is not modelled), takes a page when every slab is
full and gives one back when its last object goes, so lowmem in kernel objects is exact to the page.
"""

from __future__ import annotations

from typing import Any

from mmframe.mm.page import GFP_KERNEL, PAGE_SIZE


class KmemCache:
    """``kmem_cache_t``: objects of one size; ``alloc`` returns a handle (the slab's pfn) or -1."""

    __slots__ = ("name", "size", "per_slab", "slabs", "partial", "objects", "machine")

    def __init__(self, machine: Any, name: str, size: int, align: int = 4) -> None:
        self.machine, self.name = machine, name
        self.size = -(-size // align) * align
        self.per_slab = PAGE_SIZE // self.size
        self.slabs: dict[int, int] = {}  # pfn -> objects in use
        self.partial: list[int] = []  # slabs with room, most recently used last
        self.objects = 0

    def alloc(self, gfp: int = GFP_KERNEL) -> int:
        """``kmem_cache_alloc``; -1 when no page could be had (the caller decides what that means)."""
        if not self.partial:
            pfn = self.machine.alloc_pages(gfp, 0)
            if pfn < 0:
                return -1
            self.slabs[pfn] = 0
            self.partial.append(pfn)
        pfn = self.partial[-1]
        self.slabs[pfn] += 1
        if self.slabs[pfn] == self.per_slab:
            self.partial.pop()
        self.objects += 1
        return pfn

    def free(self, pfn: int) -> None:
        """``kmem_cache_free`` of an object living in slab ``pfn``."""
        used = self.slabs[pfn]
        if used == self.per_slab:
            self.partial.append(pfn)
        self.objects -= 1
        if used == 1:
            del self.slabs[pfn]
            self.partial.remove(pfn)
            self.machine.free_pages(pfn, 0)
        else:
            self.slabs[pfn] = used - 1

    @property
    def bytes(self) -> int:
        return len(self.slabs) * PAGE_SIZE

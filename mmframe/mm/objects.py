"""The objects mappings hold: shmem objects (MAP_SHARED anonymous memory, SysV shm) made and
dropped with their pages, references to a mapping's object (a shmem object or an open file), and
``vm_area_struct`` allocation from its slab."""

from __future__ import annotations

from typing import Any

import numpy as np

from mmframe.mm.overcommit import vm_enough_memory, vm_unacct_memory
from mmframe.mm.radix_tree import RadixTree
from mmframe.mm.vma import VMA, ShmemObject


class Objects:
    """Part of :class:`~mmframe.mm.memory.Memory`: mapping objects and VMA structs."""

    __slots__ = ()

    def new_object(self, npages: int) -> ShmemObject:
        obj = ShmemObject(npages, RadixTree(self.radix_pool))
        self.objects.add(obj)
        return obj

    def new_shmem_object(self, npages: int) -> ShmemObject | None:
        """``shmem_file_setup``: a new object, its size charged (``vm_enough_memory``); None if refused."""
        if not vm_enough_memory(self, npages):
            return None
        obj = self.new_object(npages)
        obj.charged = npages
        return obj

    def vma_free_struct(self) -> None:
        """Give back a vm_area_struct that was never used."""
        self.c_vma.free()

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
        vm_unacct_memory(self, obj.charged)  # shmem_delete_inode
        for entry in obj.swap.values():
            self.swap.swap_free(entry)
        obj.swap.clear()
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
        acct = self.acct  # acct.charge(self.P_vma), inline (every munmap)
        acct.row[self.P_vma] += 1
        acct.ns += acct.ns_of[self.P_vma]

    def vma_alloc(self) -> bool:
        acct = self.acct  # acct.charge(self.P_vma), inline (every mmap)
        acct.row[self.P_vma] += 1
        acct.ns += acct.ns_of[self.P_vma]
        return self.c_vma.alloc() >= 0

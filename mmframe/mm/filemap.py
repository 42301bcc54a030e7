"""The page cache (2.5's ``mm/filemap.c``): an ``address_space`` per file or shmem object, its
pages indexed by a :class:`~mmframe.mm.radix_tree.RadixTree`, and the fault-time ``nopage`` of
mappings with a backing object.

The cache holds one reference per page.  A page of a regular file carries ``PG_cache`` (the model's
stand-in for a set ``page->mapping``), so zap and msync can find the file of a dirty PTE in bulk;
its ``(mapping, index)`` is in :attr:`Memory.page_cache`.  Dirty pages of a file are on its
mapping's ``dirty`` set (2.5's ``dirty_pages`` list) until written back.  Shmem pages have no
backing store until swap: marking them dirty does nothing.

The page past end of file: ``readpage`` zeroes the tail beyond ``i_size`` (block_read_full_page);
the model records the offset where zeroes start in :attr:`Memory.zero_tail`, so a read of that tail
through a mapping returns 0 until the page is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mmframe.mm.page import PAGE_SHIFT, PAGE_SIZE, PG_dirty
from mmframe.mm.radix_tree import RadixTree

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory

PG_cache = 31  # mmframe: the page belongs to a regular file's page cache (2.5 tests page->mapping)
_CACHE, _DIRTY = 1 << PG_cache, 1 << PG_dirty

NOPAGE_OOM, NOPAGE_SIGBUS = -1, -2
# pages a page-cache insert may take from the slab: a 64-bit index needs at most 6 new nodes
# (2.5.53-mm2's preload: "up to seven (on ia32) radix_tree_nodes"), which fit in 2 slab pages
RADIX_RESERVE_PAGES = 2


class AddressSpace:
    """``struct address_space``: ``page_tree`` and the dirty pages of one host (a file or a shmem
    object); ``backed`` when there is a device to write dirty pages to."""

    __slots__ = ("host", "page_tree", "dirty", "backed", "dirtied_when")

    def __init__(self, host: Any, tree: RadixTree, backed: bool) -> None:
        self.host, self.page_tree, self.backed = host, tree, backed
        self.dirty: set[int] = set()
        self.dirtied_when = 0.0  # inode->dirtied_when: when its first dirty page was dirtied (ns)


def find_get_page(vm: Memory, mapping: AddressSpace, index: int) -> int:
    """The cached page at ``index`` or -1 (the caller takes its own reference)."""
    vm.acct.charge(vm.P_pcl)
    pfn = mapping.page_tree.lookup(index)
    return -1 if pfn is None else pfn


def add_to_page_cache(vm: Memory, mapping: AddressSpace, pfn: int, index: int) -> int:
    """Insert a fresh page (its one reference becomes the cache's): 0, or -ENOMEM when the
    GFP_ATOMIC radix-tree insert gets no node (the caller frees the page)."""
    m, tree = vm.m, mapping.page_tree
    if not m.reserving:
        err = tree.insert(index, pfn)
    else:  # a reservation site (docs/reserve.md): the insert under mapping->page_lock
        saved = tree.gfp
        tree.gfp = m.reserve_enter("radix_tree_insert", saved, RADIX_RESERVE_PAGES)
        try:
            err = tree.insert(index, pfn)
        finally:
            tree.gfp = saved
            m.reserve_exit("radix_tree_insert", RADIX_RESERVE_PAGES)
    if err:
        return err
    vm.page_cache[pfn] = (mapping, index)
    if mapping.backed:
        vm.flags[pfn] |= _CACHE
    return 0


def new_cache_page(vm: Memory, mapping: AddressSpace, index: int, zeroed: bool = False) -> int:
    """``page_cache_alloc`` + ``add_to_page_cache``: a fresh page at ``index`` (cleared for
    shmem), or NOPAGE_OOM with nothing left behind when no page or radix-tree node could be had."""
    pfn = vm.alloc_user_page() if zeroed else vm.m.alloc_pages(vm.gfp_cache, 0)
    if pfn < 0:
        return NOPAGE_OOM
    if add_to_page_cache(vm, mapping, pfn, index):
        vm.put_page(pfn)
        return NOPAGE_OOM
    if not zeroed:  # (alloc_user_page put a zeroed page on the LRU already)
        vm.lru_cache_add(pfn)
    return pfn


def new_cache_page_run(vm: Memory, mapping: AddressSpace, indices: list[int]) -> list[int]:
    """:func:`new_cache_page` (not zeroed) for the leading ``indices`` whose pages a per-CPU run
    gives (``PageAllocator.take_pcp``), when the radix-tree leaf holding them all exists already
    (so no insert allocates) and no reservation site is open: the same pages, state and counts as
    one call each.  Returns the pages taken (possibly none: the caller goes on one at a time)."""
    m = vm.m
    if not indices or not m.core_alloc or m.reserving:
        return []
    leaf = mapping.page_tree.leaf(indices[0])
    if leaf is None or indices[-1] & ~63 != indices[0] & ~63:
        return []
    run = vm.pa.take_pcp(vm.gfp_cache, len(indices), m.current_cpu())
    for pfn, index in zip(run, indices):
        add_to_page_cache(vm, mapping, pfn, index)
        vm.lru_cache_add(pfn)
    return run


def remove_from_page_cache(vm: Memory, mapping: AddressSpace, index: int) -> None:
    """Drop the page at ``index`` from the cache and the cache's reference to it."""
    pfn = mapping.page_tree.delete(index)
    if pfn is None:
        return
    del vm.page_cache[pfn]
    vm.flags[pfn] &= ~(_CACHE | _DIRTY)
    mapping.dirty.discard(index)
    vm.put_page(pfn)


def set_page_dirty(vm: Memory, pfn: int) -> None:
    """A PTE's dirty bit reached the page (zap, msync) or a write(2) dirtied it."""
    if not vm.flags[pfn] & _CACHE or vm.flags[pfn] & _DIRTY:
        return
    vm.flags[pfn] |= _DIRTY
    mapping, index = vm.page_cache[pfn]
    if not mapping.dirty:  # __mark_inode_dirty: the inode joins the dirty list now
        mapping.dirtied_when = vm.m.block.now()
        wb = getattr(getattr(mapping.host, "fs", None), "wb", None)
        if wb is not None:
            wb.arm_timer()
    mapping.dirty.add(index)


def clear_page_dirty(vm: Memory, pfn: int) -> None:
    """Written back: the page is clean again."""
    vm.flags[pfn] &= ~_DIRTY
    mapping, index = vm.page_cache[pfn]
    mapping.dirty.discard(index)


def shmem_getpage(vm: Memory, mapping: AddressSpace, index: int) -> int:
    """A shmem page, allocated zeroed on first use or read back from swap: pfn, or NOPAGE_OOM."""
    pfn = find_get_page(vm, mapping, index)
    if pfn >= 0:
        return pfn
    if index in mapping.host.swap:
        return shmem_swapin(vm, mapping, index)
    return new_cache_page(vm, mapping, index, zeroed=True)


def shmem_swapin(vm: Memory, mapping: AddressSpace, index: int) -> int:
    """A shmem page swapped out by reclaim (the object records its slot, as 2.5's
    ``shmem_swp_entry``): read it back into the object's cache, freeing the slot.  pfn or NOPAGE_OOM."""
    entry = mapping.host.swap[index]
    pfn = vm.m.alloc_pages(vm.gfp_cache, 0)
    if pfn < 0:
        return NOPAGE_OOM
    if add_to_page_cache(vm, mapping, pfn, index):
        vm.put_page(pfn)
        return NOPAGE_OOM
    vm.lru_cache_add(pfn)
    vm.swap.swap_readpage(pfn, entry)
    del mapping.host.swap[index]
    vm.swap.swap_free(entry)
    return pfn


def shmem_getpages(vm: Memory, mapping: AddressSpace, indices: list[int], npages: int) -> tuple[list[int], int]:
    """:func:`shmem_getpage` for many indices, looking a leaf node up once for its 64 slots (see
    ShmemObject.nopage_bulk), each page returned with a reference for its mapping; charges what
    one shmem_getpage an index would."""
    tree, out = mapping.page_tree, []
    leaf, leaf_base, err = None, -1, 0
    swap = mapping.host.swap
    bulk = not vm.m.reserving  # no reservation site around the inserts: runs may be allocated at once
    pool: list[int] = []  # pages of a per-CPU run for the missing slots ahead in this leaf
    n, pos = len(indices), -1
    # one test for the common call (a PTE page's run of consecutive indices) instead of one a leaf
    consec = n > 1 and indices[-1] - indices[0] == n - 1 and indices == list(range(indices[0], indices[0] + n))
    pending: list[int] = []  # cached pages found, their mapping references not taken yet (see _take)
    while pos + 1 < n:
        pos += 1
        index = indices[pos]
        if index >= npages:
            err = NOPAGE_SIGBUS
            break
        if index & ~63 != leaf_base:
            leaf, leaf_base = tree.leaf(index), index & ~63
        if leaf is not None and not pool:  # consecutive indices all cached: one slice of the leaf
            k = min(64 - (index & 63), n - pos, npages - index)
            if k > 1 and (consec or indices[pos:pos + k] == list(range(index, index + k))):
                seg = leaf[(index & 63) + 1:(index & 63) + 1 + k]
                if None not in seg:
                    pending += seg  # their mappings' references: taken before anything allocates
                    out += seg
                    pos += k - 1
                    continue
        pfn = leaf[(index & 63) + 1] if leaf is not None else None
        if pfn is None:
            swapped = index in swap
            if not swapped and leaf is not None and bulk:
                if not pool:  # the slots this leaf still misses, up to a swapped one
                    want = 0
                    for ix in indices[pos:pos + 64]:
                        if ix & ~63 != leaf_base or ix >= npages or ix in swap:
                            break
                        want += leaf[(ix & 63) + 1] is None
                    _take(vm, pending)
                    pool = vm.alloc_user_run(want)
                    pool.reverse()
                if pool:  # what new_cache_page does with the page: add_to_page_cache's insert
                    pfn = pool.pop()  # into the existing leaf (no node needed)
                    leaf[(index & 63) + 1] = pfn
                    leaf[0] += 1
                    vm.page_cache[pfn] = (mapping, index)
                    if mapping.backed:
                        vm.flags[pfn] |= _CACHE
                    vm.count[pfn] += 1  # the mapping's reference, taken now (see nopage_bulk)
                    out.append(pfn)
                    continue
            _take(vm, pending)
            pfn = shmem_swapin(vm, mapping, index) if swapped else new_cache_page(vm, mapping, index, zeroed=True)
            if pfn < 0:
                err = NOPAGE_OOM
                break
            if leaf is None:
                leaf_base = -1  # the insert made the leaf: look it up again
        vm.count[pfn] += 1
        out.append(pfn)
    _take(vm, pending)
    vm.acct.charge(vm.P_pcl, len(out) + (err == NOPAGE_OOM))
    return out, err


def _take(vm: Memory, pending: list[int]) -> None:
    """The mapping references of the cached pages ``pending`` (distinct: one per index), taken in
    one numpy add and the list emptied.  Called before anything allocates (an allocation may
    reclaim, and must not see a found page without the reference it came with) and at the end."""
    if pending:
        vm.count_np[np.array(pending, dtype=np.int64)] += 1
        pending.clear()


def read_cache_page(vm: Memory, inode: Any, index: int) -> int:
    """The file page at ``index``, read in on a miss (``page_cache_read`` + ``readpage``): pfn, or
    NOPAGE_OOM when no page or radix-tree node could be had."""
    mapping = inode.mapping
    pfn = find_get_page(vm, mapping, index)
    if pfn >= 0:
        vm.vmscan.mark_page_accessed(pfn)
        if inode.fs.ra_inflight and pfn in inode.fs.ra_inflight:  # brought by readahead
            inode.fs.wait_on_page(inode, index, pfn)
        return pfn
    pfn = new_cache_page(vm, mapping, index)
    if pfn >= 0:
        inode.fs.readpage(inode, index, pfn)
    return pfn


def filemap_nopage(vm: Memory, inode: Any, index: int) -> int:
    """The page for a fault at file page ``index``: pfn, NOPAGE_SIGBUS past end of file, or
    NOPAGE_OOM."""
    if index >= (inode.size + PAGE_SIZE - 1) >> PAGE_SHIFT:
        return NOPAGE_SIGBUS
    return read_cache_page(vm, inode, index)

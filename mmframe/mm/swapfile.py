"""Swap space (2.5.49 ``mm/swapfile.c``) and the swap cache (``mm/swap_state.c``).

**The device.**  One swap area (``swap_info[0]``) on a block device with a queue of its own (the
``[vm] swap_disk`` disk, or a disk named ``swap`` made for it).  ``swap_map[offset]`` counts the
references to slot ``offset``: one per PTE holding the entry, one while the slot's page is in the
swap cache, one for a shmem object's record of a swapped-out page.  Offset 0 is the swap header
and never handed out.  ``get_swap_page`` scans from ``cluster_next`` for a free slot, as
``scan_swap_map`` did (without its 256-slot clusters: documented in docs/reclaim.md).

**Swap entries in PTEs.**  i386 2.5 (include/asm-i386/pgtable.h): a non-present PTE holding
``(type << 1) | (offset << 8)``; bit 0 (present) and bit 7 (PROTNONE) clear, so ``pte_present``
is false and the value is never 0 (offset >= 1).

**The swap cache** is a page cache (``swapper_space``) indexed by the slot's offset (2.5.49 used the
entry's value, ``offset << 8`` on i386: the same order in a shallower tree): a page is in
it between ``add_to_swap`` (reclaim gave it a slot) and being freed, and after a swap-in until the
page is freed or made private by a write (``remove_exclusive_swap_page``).  A swap-cache page is
never mapped writable, so its content equals its slot's once written; ``PG_dirty`` (on
``swapper_space.dirty``) says it has not been written yet.

Complexity: every operation is O(1) except ``get_swap_page`` (O(slots scanned)).
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

from mmframe.block.bio import PAGE_SECTORS, READ, WRITE, bio_pages
from mmframe.mm import filemap
from mmframe.mm.filemap import _DIRTY, AddressSpace
from mmframe.mm.radix_tree import RadixTree

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.mm.memory import Memory

SWAP_MAP_MAX = 0x7FFF  # 2.5.49: a count that reaches it sticks (the slot is never freed)


def swp_entry(type_: int, offset: int) -> int:
    """``swp_entry_to_pte(swp_entry(type, offset))`` of i386."""
    return (type_ << 1) | (offset << 8)


def swp_offset(pte: int) -> int:
    return pte >> 8


def is_swap_pte(pte: int) -> bool:
    """Not present (no ``_PAGE_PRESENT``/``_PAGE_PROTNONE``) and not empty."""
    return pte != 0 and not pte & 0x81


class SwapSpace:
    """``swap_info_struct`` of the one swap area, its device, and ``swapper_space``."""

    __slots__ = ("vm", "dev", "pages", "swap_map", "cluster_next", "inuse", "cache", "counts", "blk", "P")

    def __init__(self, vm: Memory, dev: Any, pages: int) -> None:
        self.vm, self.dev, self.pages = vm, dev, pages
        self.blk: Any = None  # the block layer, set when the area is attached
        self.swap_map = array("H", bytes(2 * max(pages, 1)))
        if pages:
            self.swap_map[0] = SWAP_MAP_MAX  # the header page
        self.cluster_next = 1
        self.inuse = 0  # slots with a nonzero count
        self.cache = AddressSpace(self, RadixTree(vm.radix_pool), backed=False)  # swapper_space
        self.counts = {"swap_out": 0, "swap_in": 0, "swap_cache_hits": 0, "swap_full": 0}
        self.P = vm.m.P.swap_map_op

    # --- swap_map ------------------------------------------------------------------------------
    def nr_swap_pages(self) -> int:
        """Free slots (``nr_swap_pages``)."""
        return max(self.pages - 1, 0) - self.inuse

    def get_swap_page(self) -> int:
        """A free slot with a count of one, as a PTE value; 0 when swap is full or absent."""
        n = self.pages
        if n <= 1 or self.inuse >= n - 1:
            self.counts["swap_full"] += 1
            return 0
        sm, off = self.swap_map, self.cluster_next
        while True:
            if off >= n:
                off = 1
            self.vm.acct.charge(self.P)
            if sm[off] == 0:
                sm[off] = 1
                self.inuse += 1
                self.cluster_next = off + 1
                return swp_entry(0, off)
            off += 1

    def swap_duplicate(self, entry: int) -> None:
        """One more reference to the slot (a PTE copied by fork, a PTE made by try_to_unmap)."""
        off = swp_offset(entry)
        c = self.swap_map[off]
        assert 0 < c, f"swap_duplicate of a free slot {off}"
        if c < SWAP_MAP_MAX:
            self.swap_map[off] = c + 1
        self.vm.acct.charge(self.P)

    def swap_free(self, entry: int) -> None:
        """Drop a reference; the last one frees the slot."""
        off = swp_offset(entry)
        c = self.swap_map[off]
        assert 0 < c, f"swap_free of a free slot {off}"
        if c < SWAP_MAP_MAX:
            self.swap_map[off] = c - 1
            if c == 1:
                self.inuse -= 1
        self.vm.acct.charge(self.P)

    def count(self, entry: int) -> int:
        return self.swap_map[swp_offset(entry)]

    # --- the swap cache --------------------------------------------------------------------------
    def entry_of(self, pfn: int) -> int:
        """The swap entry of a swap-cache page."""
        return swp_entry(0, self.vm.page_cache[pfn][1])

    def lookup_swap_cache(self, entry: int) -> int:
        vm = self.vm
        vm.acct.charge(vm.P_pcl)
        pfn = self.cache.page_tree.lookup(swp_offset(entry))
        return -1 if pfn is None else pfn

    def add_to_swap_cache(self, pfn: int, entry: int) -> bool:
        """Insert ``pfn`` at ``entry`` (the cache takes a page reference and a slot reference); False
        when the GFP_ATOMIC radix-tree insert fails."""
        vm = self.vm
        if filemap.add_to_page_cache(vm, self.cache, pfn, swp_offset(entry)):
            return False
        vm.count[pfn] += 1
        vm.acct.charge(vm.P_ref)
        self.swap_duplicate(entry)
        return True

    def delete_from_swap_cache(self, pfn: int) -> None:
        """Remove ``pfn`` from the swap cache: its page reference and its slot reference go."""
        vm = self.vm
        off = vm.page_cache[pfn][1]
        self.cache.dirty.discard(off)
        filemap.remove_from_page_cache(vm, self.cache, off)  # drops the page reference
        self.swap_free(swp_entry(0, off))

    def in_swap_cache(self, pfn: int) -> bool:
        pc = self.vm.page_cache.get(pfn)
        return pc is not None and pc[0] is self.cache

    def add_to_swap(self, pfn: int) -> int:
        """Give an anonymous page a slot and put it in the swap cache, dirty: the entry, or 0."""
        entry = self.get_swap_page()
        if not entry:
            return 0
        if not self.add_to_swap_cache(pfn, entry):
            self.swap_free(entry)
            return 0
        self.swap_free(entry)  # add_to_swap_cache took the cache's reference; get_swap_page's goes
        self.set_dirty(pfn, entry)
        return entry

    def set_dirty(self, pfn: int, entry: int) -> None:
        self.vm.flags[pfn] |= _DIRTY
        self.cache.dirty.add(swp_offset(entry))

    def clear_dirty(self, pfn: int, entry: int) -> None:
        self.vm.flags[pfn] &= ~_DIRTY
        self.cache.dirty.discard(swp_offset(entry))

    def free_swap_and_cache(self, entry: int) -> None:
        """A PTE holding ``entry`` went (zap, exit): drop its reference, and the cached page too
        when nothing else uses the slot or the page (2.5.49 ``free_swap_and_cache``)."""
        self.swap_free(entry)
        if self.count(entry) == 1:
            pfn = self.cache.page_tree.lookup(swp_offset(entry))
            if pfn is not None and self.vm.count[pfn] == 1:
                self.delete_from_swap_cache(pfn)

    def remove_exclusive_swap_page(self, pfn: int) -> bool:
        """A write to a swap-cache page mapped once and holding the only slot reference: take it
        out of the swap cache so it can be reused writable (2.5.49 ``remove_exclusive_swap_page``
        as ``can_share_swap_page``/do_wp_page use it)."""
        vm = self.vm
        entry = self.entry_of(pfn)
        if self.count(entry) != 1 or vm.count[pfn] != 2 or vm.pins.get(pfn):
            return False
        self.delete_from_swap_cache(pfn)
        return True

    # --- I/O -----------------------------------------------------------------------------------------
    def swap_writepage(self, pfn: int, entry: int) -> None:
        """``swap_writepage``: write the page to its slot through the swap disk's queue and wait for
        it (the device runs ahead; the task sleeps until the completion when its call returns)."""
        bio = bio_pages(WRITE, swp_offset(entry) * PAGE_SECTORS, [pfn])
        self.blk.pin_pages(bio)
        self.blk.submit_bio(self.dev, bio)
        self.blk.wait_sync(self.dev, bio)
        self.counts["swap_out"] += 1

    def swap_readpage(self, pfn: int, entry: int) -> None:
        """``swap_readpage`` into a fresh page, waiting for it."""
        bio = bio_pages(READ, swp_offset(entry) * PAGE_SECTORS, [pfn])
        self.blk.submit_bio(self.dev, bio)
        self.blk.wait_sync(self.dev, bio)
        self.counts["swap_in"] += 1

    def read_swap_cache(self, entry: int) -> int:
        """``read_swap_cache_async`` + wait: the page of ``entry`` (from the cache or read in, in
        the cache either way, with a reference for the caller), or -1 when no page could be had."""
        pfn = self.lookup_swap_cache(entry)
        vm = self.vm
        if pfn >= 0:
            self.counts["swap_cache_hits"] += 1
            vm.count[pfn] += 1
            vm.acct.charge(vm.P_ref)
            return pfn
        pfn = vm.m.alloc_pages(vm.gfp_cache, 0)
        if pfn < 0:
            return -1
        if not self.add_to_swap_cache(pfn, entry):
            vm.put_page(pfn)
            return -1
        vm.lru_cache_add(pfn)
        self.swap_readpage(pfn, entry)
        return pfn  # the allocation's reference is the caller's; the cache has its own

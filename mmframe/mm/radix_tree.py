"""2.5.49's ``lib/radix-tree.c``: the page cache index of a mapping, and the node mempool.

A tree of 64-slot nodes (``RADIX_TREE_MAP_SHIFT`` 6); a tree of height h holds indices below
64**h.  Inserting grows the height first (a new root per level), then allocates the missing nodes
on the path.  Deleting frees every node it empties on the way up and resets the height of an empty
tree (2.5.49 does not shrink a non-empty tree).  Lookup and delete are O(height).

Nodes (260 bytes: a count and 64 slots) come from the slab cache ``radix_tree_node`` through a
mempool of 512 preallocated nodes, as in 2.5.49.  A page-cache tree is ``GFP_ATOMIC``: the insert
runs under ``mapping->page_lock``.  ``mempool_alloc`` first tries the slab without sleeping, then
takes a pool element; with no ``__GFP_WAIT`` and an empty pool it fails and the insert returns
-ENOMEM (2.5.53-mm2: "If radix_tree_insert() fails to allocate GFP_ATOMIC memory, a system call
will return -ENOMEM").  A freed node refills the pool before going back to the slab.
"""

from __future__ import annotations

from typing import Any, Iterator

from mmframe.mm.page import GFP_ATOMIC, GFP_KERNEL, __GFP_IO, __GFP_WAIT
from mmframe.usr import EEXIST, ENOMEM

RADIX_TREE_MAP_SHIFT = 6
RADIX_TREE_MAP_SIZE = 1 << RADIX_TREE_MAP_SHIFT
_MASK = RADIX_TREE_MAP_SIZE - 1
RADIX_TREE_NODE_BYTES = 4 + 4 * RADIX_TREE_MAP_SIZE  # unsigned int count; void *slots[64]
RADIX_TREE_POOL = 512  # mempool_create(512, ...) in radix_tree_init
_NO_SLEEP = ~(__GFP_WAIT | __GFP_IO)  # mempool_alloc's first try may not sleep or do I/O


class NodePool:
    """``radix_tree_node_pool``: 512 nodes taken from the slab at boot, used when the slab cannot
    supply one without sleeping."""

    __slots__ = ("cache", "min_nr", "curr_nr", "nodes", "failures", "acct", "P_alloc")

    def __init__(self, machine: Any) -> None:
        self.cache = machine.kmem_cache("radix_tree_node", RADIX_TREE_NODE_BYTES, 4)
        self.min_nr = RADIX_TREE_POOL
        if self.cache.alloc(GFP_KERNEL, self.min_nr) < 0:
            raise ValueError("no lowmem for the radix-tree node mempool")
        self.curr_nr = self.min_nr
        self.nodes = 0  # nodes in trees
        self.failures = 0  # inserts that got no node
        self.acct, self.P_alloc = machine.acct, machine.P.radix_node_alloc

    def alloc(self, gfp: int) -> bool:
        """``mempool_alloc``: the slab without waiting, then the pool; False when both fail (every
        tree here is GFP_ATOMIC; a caller that could sleep would wait for a freed node instead)."""
        self.acct.charge(self.P_alloc)
        if self.cache.alloc(gfp & _NO_SLEEP, 1) >= 0:
            self.nodes += 1
            return True
        if self.curr_nr:
            self.curr_nr -= 1
            self.nodes += 1
            return True
        self.failures += 1
        return False

    def free(self) -> None:
        """``mempool_free``: refill the pool first, else back to the slab."""
        self.nodes -= 1
        if self.curr_nr < self.min_nr:
            self.curr_nr += 1
        else:
            self.cache.free()


class RadixTree:
    """``radix_tree_root``: ``height`` levels of 64-slot lists; leaves hold values (pfns)."""

    __slots__ = ("height", "rnode", "pool", "gfp")

    def __init__(self, pool: NodePool, gfp: int = GFP_ATOMIC) -> None:
        self.height = 0
        self.rnode: list | None = None  # a node is [count, slot0 .. slot63]
        self.pool, self.gfp = pool, gfp

    def _node(self) -> list | None:
        if not self.pool.alloc(self.gfp):
            return None
        return [0] + [None] * RADIX_TREE_MAP_SIZE

    @staticmethod
    def maxindex(height: int) -> int:
        return (1 << (RADIX_TREE_MAP_SHIFT * height)) - 1 if height else 0

    def insert(self, index: int, item: Any) -> int:
        """0, -EEXIST if the slot is taken, or -ENOMEM.  As in 2.5, nodes made before a failed
        allocation stay in the tree, empty, until it is cleared."""
        assert item is not None
        leaf = self.leaf(index, True)
        if leaf is None:
            return -ENOMEM
        i = (index & _MASK) + 1
        if leaf[i] is not None:
            return -EEXIST
        leaf[i] = item
        leaf[0] += 1
        return 0

    def leaf(self, index: int, create: bool = False) -> list | None:
        """The leaf node holding ``index`` (slot ``(index & 63) + 1``), made with its path when
        ``create`` (None if a node could not be had), else None when absent.  O(height)."""
        if self.rnode is None or index > self.maxindex(self.height):
            if not create or not self._extend(index):
                return None
        node, shift = self.rnode, RADIX_TREE_MAP_SHIFT * (self.height - 1)
        while shift > 0:
            i = ((index >> shift) & _MASK) + 1
            child = node[i]
            if child is None:
                if not create:
                    return None
                child = self._node()
                if child is None:
                    return None
                node[i] = child
                node[0] += 1
            node, shift = child, shift - RADIX_TREE_MAP_SHIFT
        return node

    def _extend(self, index: int) -> bool:
        height = max(self.height, 1)
        while index > self.maxindex(height):
            height += 1
        if self.rnode is None:
            root = self._node()
            if root is None:
                return False
            self.rnode, self.height = root, height
            return True
        while self.height < height:
            node = self._node()
            if node is None:
                return False
            node[1], node[0] = self.rnode, 1
            self.rnode = node
            self.height += 1
        return True

    def lookup(self, index: int) -> Any:
        leaf = self.leaf(index)
        return None if leaf is None else leaf[(index & _MASK) + 1]

    def delete(self, index: int) -> Any:
        """Remove and return the item at ``index`` (None if absent), freeing emptied nodes."""
        node = self.rnode
        if node is None or index > self.maxindex(self.height):
            return None
        path = []
        shift = RADIX_TREE_MAP_SHIFT * (self.height - 1)
        while shift > 0:
            i = ((index >> shift) & _MASK) + 1
            path.append((node, i))
            node = node[i]
            if node is None:
                return None
            shift -= RADIX_TREE_MAP_SHIFT
        i = (index & _MASK) + 1
        item = node[i]
        if item is None:
            return None
        node[i] = None
        node[0] -= 1
        while node[0] == 0:
            self.pool.free()
            if not path:
                self.rnode, self.height = None, 0
                break
            node, i = path.pop()
            node[i] = None
            node[0] -= 1
        return item

    def items(self, first: int = 0) -> Iterator[tuple[int, Any]]:
        """``radix_tree_gang_lookup`` from ``first``: (index, item) in index order."""
        if self.rnode is None:
            return
        yield from self._walk(self.rnode, self.height, 0, first)

    def _walk(self, node: list, height: int, base: int, first: int) -> Iterator[tuple[int, Any]]:
        shift = RADIX_TREE_MAP_SHIFT * (height - 1)
        for i in range(RADIX_TREE_MAP_SIZE):
            slot = node[i + 1]
            if slot is None:
                continue
            lo = base + (i << shift)
            if lo + (1 << shift) <= first:
                continue
            if height == 1:
                yield lo, slot
            else:
                yield from self._walk(slot, height - 1, lo, first)

    def _levels(self) -> list[list[list]]:
        """The tree's nodes, level by level from the root (the last level are the leaves)."""
        if self.rnode is None:
            return []
        levels = [[self.rnode]]
        for _ in range(self.height - 1):
            levels.append([c for node in levels[-1] for c in node[1:] if c is not None])
        return levels

    def nodes(self) -> int:
        """Nodes in this tree (for the checker)."""
        return sum(len(level) for level in self._levels())

    def values(self) -> list[Any]:
        """Every item, in index order."""
        levels = self._levels()
        return [x for node in levels[-1] for x in node[1:] if x is not None] if levels else []

    def clear(self) -> None:
        """Drop every item and free every node (``truncate_inode_pages`` of the whole tree, done
        by the caller item by item in 2.5; here at once)."""
        for _ in range(self.nodes()):
            self.pool.free()
        self.rnode, self.height = None, 0

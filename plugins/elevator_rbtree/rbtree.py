"""A red-black tree in the shape of the kernel's ``lib/rbtree.c`` (Andrea Arcangeli, 1999; the
generic tree the 2.5 deadline scheduler reused), written here from the algorithm, that counts the
steps each operation really takes.

Shape, as in the kernel: nodes carry ``parent``/``left``/``right`` and a colour; the caller's
descent links a new node (``rb_link_node``) and :meth:`RbTree._insert_color` rebalances it
(``rb_insert_color``: recolour while the uncle is red, else one or two rotations);
:meth:`RbTree.erase` unlinks (splicing in the successor for a node with two children) and
rebalances (``__rb_erase_color``); ``first``/``last``/``next``/``prev`` walk the links.

Keys are integers (a request's start sector).  A duplicate key does not get a second node: the
insertion reports the node already holding the key, and the caller decides -- chain the value on
that node as an *alias* (:meth:`RbTree.add_alias`, 2.5.58's deadline) or keep it out of the tree
(the 2.5.46-mm rbtree patch sent such a request straight to the dispatch list).

Counted steps (the model's primitives, never a formula): ``visits`` -- nodes whose key is read
on a descent or a walk (the insertion path, a lookup, the successor search of an erase, the links
followed by first/last/next/prev); ``rotations``; ``recolours`` -- colour stores made by the
rebalancing (what ``rb_insert_color``/``__rb_erase_color`` execute, a store of the colour a node
already has included, as the kernel executes it).  Complexity: insert, erase, find O(log n);
next/prev O(1) amortised.
"""

from __future__ import annotations

from typing import Any, Iterator

__all__ = ["RbNode", "RbTree"]


class RbNode:
    """One tree node: ``key``, the ``value`` it holds and any ``aliases`` (values with the same key)."""

    __slots__ = ("key", "value", "aliases", "left", "right", "parent", "red")

    def __init__(self, key: int, value: Any) -> None:
        self.key, self.value = key, value
        self.aliases: list[Any] | None = None
        self.left: RbNode | None = None
        self.right: RbNode | None = None
        self.parent: RbNode | None = None
        self.red = True

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"RbNode({self.key}, {'red' if self.red else 'black'})"


class RbTree:
    """A red-black tree of :class:`RbNode` keyed by int, with step counters (see module doc)."""

    __slots__ = ("root", "count", "visits", "rotations", "recolours")

    def __init__(self) -> None:
        self.root: RbNode | None = None
        self.count = 0  # nodes (values chained as aliases are not nodes)
        self.visits = 0
        self.rotations = 0
        self.recolours = 0

    def __len__(self) -> int:
        return self.count

    @property
    def steps(self) -> int:
        """All counted steps so far: visits + rotations + recolours."""
        return self.visits + self.rotations + self.recolours

    # --- insertion ---------------------------------------------------------------------------

    def insert(self, key: int, value: Any) -> tuple[RbNode, bool]:
        """Descend from the root to ``key``'s place and link a new node there, then rebalance.

        Returns ``(node, True)`` for a new node, or ``(existing, False)`` when a node already holds
        ``key`` (nothing is linked; the caller aliases or diverts the value).  Each node compared on
        the way down is one visit: the insertion path has at most 2*log2(n+1) nodes.
        """
        p = self.root
        parent = None
        visits = 0
        left = False
        while p is not None:
            visits += 1
            parent = p
            k = p.key
            if key < k:
                p = p.left
                left = True
            elif key > k:
                p = p.right
                left = False
            else:
                self.visits += visits
                return p, False
        self.visits += visits
        node = RbNode(key, value)
        node.parent = parent
        if parent is None:
            self.root = node
        elif left:
            parent.left = node
        else:
            parent.right = node
        self.count += 1
        self._insert_color(node)
        return node, True

    def add_alias(self, node: RbNode, value: Any) -> None:
        """Chain ``value`` on ``node`` (same key): no tree change."""
        if node.aliases is None:
            node.aliases = [value]
        else:
            node.aliases.append(value)

    def _rotate_left(self, node: RbNode) -> None:
        right = node.right
        assert right is not None
        node.right = right.left
        if right.left is not None:
            right.left.parent = node
        right.left = node
        parent = node.parent
        right.parent = parent
        if parent is None:
            self.root = right
        elif parent.left is node:
            parent.left = right
        else:
            parent.right = right
        node.parent = right
        self.rotations += 1

    def _rotate_right(self, node: RbNode) -> None:
        left = node.left
        assert left is not None
        node.left = left.right
        if left.right is not None:
            left.right.parent = node
        left.right = node
        parent = node.parent
        left.parent = parent
        if parent is None:
            self.root = left
        elif parent.right is node:
            parent.right = left
        else:
            parent.left = left
        node.parent = left
        self.rotations += 1

    def _insert_color(self, node: RbNode) -> None:
        """``rb_insert_color``: restore the colour rules after linking the red ``node``."""
        recolours = 0
        parent = node.parent
        while parent is not None and parent.red:
            gparent = parent.parent
            assert gparent is not None  # a red parent is never the root
            if parent is gparent.left:
                uncle = gparent.right
                if uncle is not None and uncle.red:
                    uncle.red = False
                    parent.red = False
                    gparent.red = True
                    recolours += 3
                    node = gparent
                    parent = node.parent
                    continue
                if parent.right is node:
                    self._rotate_left(parent)
                    parent, node = node, parent
                parent.red = False
                gparent.red = True
                recolours += 2
                self._rotate_right(gparent)
            else:
                uncle = gparent.left
                if uncle is not None and uncle.red:
                    uncle.red = False
                    parent.red = False
                    gparent.red = True
                    recolours += 3
                    node = gparent
                    parent = node.parent
                    continue
                if parent.left is node:
                    self._rotate_right(parent)
                    parent, node = node, parent
                parent.red = False
                gparent.red = True
                recolours += 2
                self._rotate_left(gparent)
            parent = node.parent
        root = self.root
        assert root is not None
        root.red = False
        self.recolours += recolours + 1

    # --- erase ---------------------------------------------------------------------------------

    def erase(self, node: RbNode) -> None:
        """``rb_erase``: unlink ``node`` (and its aliases with it) and rebalance.

        A node with two children is replaced by its successor, found by walking down the left
        spine of the right subtree (each node a visit).
        """
        if node.left is None:
            child = node.right
        elif node.right is None:
            child = node.left
        else:
            old = node
            node = node.right
            visits = 1
            while node.left is not None:
                node = node.left
                visits += 1
            self.visits += visits
            child = node.right
            parent = node.parent
            red = node.red
            if child is not None:
                child.parent = parent
            assert parent is not None
            if parent.left is node:
                parent.left = child
            else:
                parent.right = child
            if node.parent is old:
                parent = node
            node.parent = old.parent
            node.red = old.red
            node.right = old.right
            node.left = old.left
            op = old.parent
            if op is None:
                self.root = node
            elif op.left is old:
                op.left = node
            else:
                op.right = node
            assert old.left is not None
            old.left.parent = node
            if old.right is not None:
                old.right.parent = node
            old.left = old.right = old.parent = None
            self.count -= 1
            if not red:
                self._erase_color(child, parent)
            return
        parent = node.parent
        red = node.red
        if child is not None:
            child.parent = parent
        if parent is None:
            self.root = child
        elif parent.left is node:
            parent.left = child
        else:
            parent.right = child
        node.left = node.right = node.parent = None
        self.count -= 1
        if not red:
            self._erase_color(child, parent)

    def _erase_color(self, node: RbNode | None, parent: RbNode | None) -> None:
        """``__rb_erase_color``: a black node left ``parent``'s subtree one black short at ``node``."""
        recolours = 0
        while (node is None or not node.red) and node is not self.root:
            assert parent is not None
            if parent.left is node:
                other = parent.right
                assert other is not None  # the sibling of a short black path exists
                if other.red:
                    other.red = False
                    parent.red = True
                    recolours += 2
                    self._rotate_left(parent)
                    other = parent.right
                    assert other is not None
                ol, orr = other.left, other.right
                if (ol is None or not ol.red) and (orr is None or not orr.red):
                    other.red = True
                    recolours += 1
                    node = parent
                    parent = node.parent
                else:
                    if orr is None or not orr.red:
                        if ol is not None:
                            ol.red = False
                            recolours += 1
                        other.red = True
                        recolours += 1
                        self._rotate_right(other)
                        other = parent.right
                        assert other is not None
                    other.red = parent.red
                    parent.red = False
                    recolours += 2
                    if other.right is not None:
                        other.right.red = False
                        recolours += 1
                    self._rotate_left(parent)
                    node = self.root
                    break
            else:
                other = parent.left
                assert other is not None
                if other.red:
                    other.red = False
                    parent.red = True
                    recolours += 2
                    self._rotate_right(parent)
                    other = parent.left
                    assert other is not None
                ol, orr = other.left, other.right
                if (ol is None or not ol.red) and (orr is None or not orr.red):
                    other.red = True
                    recolours += 1
                    node = parent
                    parent = node.parent
                else:
                    if ol is None or not ol.red:
                        if orr is not None:
                            orr.red = False
                            recolours += 1
                        other.red = True
                        recolours += 1
                        self._rotate_left(other)
                        other = parent.left
                        assert other is not None
                    other.red = parent.red
                    parent.red = False
                    recolours += 2
                    if other.left is not None:
                        other.left.red = False
                        recolours += 1
                    self._rotate_right(parent)
                    node = self.root
                    break
        if node is not None:
            node.red = False
            recolours += 1
        self.recolours += recolours

    # --- lookups and walks ---------------------------------------------------------------------

    def find(self, key: int) -> RbNode | None:
        """The node holding ``key``, or None (one visit per node compared)."""
        n = self.root
        visits = 0
        while n is not None:
            visits += 1
            k = n.key
            if key < k:
                n = n.left
            elif key > k:
                n = n.right
            else:
                break
        self.visits += visits
        return n

    def lower(self, key: int) -> RbNode | None:
        """The node with the largest key strictly below ``key``, or None (one descent)."""
        n = self.root
        best = None
        visits = 0
        while n is not None:
            visits += 1
            if n.key < key:
                best = n
                n = n.right
            else:
                n = n.left
        self.visits += visits
        return best

    def higher(self, key: int) -> RbNode | None:
        """The node with the smallest key strictly above ``key``, or None (one descent)."""
        n = self.root
        best = None
        visits = 0
        while n is not None:
            visits += 1
            if n.key > key:
                best = n
                n = n.left
            else:
                n = n.right
        self.visits += visits
        return best

    def first(self) -> RbNode | None:
        """``rb_first``: the leftmost node (each node on the left spine a visit)."""
        n = self.root
        if n is None:
            return None
        visits = 1
        while n.left is not None:
            n = n.left
            visits += 1
        self.visits += visits
        return n

    def last(self) -> RbNode | None:
        """The rightmost node."""
        n = self.root
        if n is None:
            return None
        visits = 1
        while n.right is not None:
            n = n.right
            visits += 1
        self.visits += visits
        return n

    def next(self, node: RbNode) -> RbNode | None:
        """``rb_next``: the in-order successor (each link followed a visit)."""
        visits = 1
        n = node.right
        if n is not None:
            while n.left is not None:
                n = n.left
                visits += 1
            self.visits += visits
            return n
        parent = node.parent
        while parent is not None and node is parent.right:
            node = parent
            parent = node.parent
            visits += 1
        self.visits += visits
        return parent

    def prev(self, node: RbNode) -> RbNode | None:
        """``rb_prev``: the in-order predecessor."""
        visits = 1
        n = node.left
        if n is not None:
            while n.right is not None:
                n = n.right
                visits += 1
            self.visits += visits
            return n
        parent = node.parent
        while parent is not None and node is parent.left:
            node = parent
            parent = node.parent
            visits += 1
        self.visits += visits
        return parent

    def nodes(self) -> Iterator[RbNode]:
        """In-order nodes, uncounted (reports and debugging, never the modelled path)."""
        stack: list[RbNode] = []
        n = self.root
        while stack or n is not None:
            while n is not None:
                stack.append(n)
                n = n.left
            n = stack.pop()
            yield n
            n = n.right

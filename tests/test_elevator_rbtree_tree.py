"""The elevator_rbtree plugin's red-black tree: its rules after every operation, checked by a walker
that shares no code with the tree; operation sequences against a sorted model; the insertion path
bound; and the counted steps are the steps taken (a tree built in key order rotates)."""

from __future__ import annotations

import bisect
import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support import examples

from mmframe_plugins.elevator_rbtree.rbtree import RbTree


def check_rbtree(tree: RbTree) -> list[tuple[int, list]]:
    """Walk ``tree`` through its links and check the red-black rules; return in-order
    ``(key, [value, *aliases])``.  Independent of the tree's own walks and counters."""
    root = tree.root
    out: list[tuple[int, list]] = []
    if root is None:
        assert tree.count == 0
        return out
    assert root.parent is None, "root has a parent"
    assert not root.red, "root is red"

    def walk(node, lo, hi) -> int:  # returns black height (None leaves count 1)
        if node is None:
            return 1
        assert (lo is None or node.key > lo) and (hi is None or node.key < hi), "BST order broken"
        for child in (node.left, node.right):
            if child is not None:
                assert child.parent is node, f"parent pointer of {child.key} wrong"
                assert not (node.red and child.red), f"red {node.key} has a red child"
        hl = walk(node.left, lo, node.key)
        out.append((node.key, [node.value, *(node.aliases or [])]))
        hr = walk(node.right, node.key, hi)
        assert hl == hr, f"black heights differ under {node.key}: {hl} != {hr}"
        return hl + (0 if node.red else 1)

    walk(root, None, None)
    assert len(out) == tree.count, "count disagrees with the nodes"
    return out


ops = st.lists(st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 60)),
    st.tuples(st.just("erase"), st.integers(0, 60)),
    st.tuples(st.just("find"), st.integers(-2, 62)),
    st.tuples(st.just("walk"), st.integers(0, 60)),
), max_size=120)


@settings(max_examples=examples(200), deadline=None)
@given(ops)
@example([("insert", k) for k in range(40)] + [("erase", k) for k in range(0, 40, 3)])
@example([("insert", k) for k in range(40, 0, -1)] + [("erase", k) for k in range(40, 0, -2)])
def test_operations_match_a_sorted_list(seq):
    tree = RbTree()
    keys: list[int] = []           # the model: sorted distinct keys
    vals: dict[int, list] = {}
    nodes: dict[int, object] = {}
    for i, (op, k) in enumerate(seq):
        if op == "insert":
            before = tree.visits
            n = len(keys)
            node, new = tree.insert(k, i)
            path = tree.visits - before
            assert path <= 2 * math.log2(n + 1) + 1e-9, (path, n)
            if k in vals:
                assert not new and node.key == k
                tree.add_alias(node, i)
                vals[k].append(i)
            else:
                assert new
                bisect.insort(keys, k)
                vals[k] = [i]
                nodes[k] = node
        elif op == "erase":
            if k in vals:
                tree.erase(nodes.pop(k))
                keys.remove(k)
                del vals[k]
        elif op == "find":
            node = tree.find(k)
            assert (node is None) == (k not in vals)
            lo, hi = tree.lower(k), tree.higher(k)
            j = bisect.bisect_left(keys, k)
            assert (lo.key if lo else None) == (keys[j - 1] if j > 0 else None)
            j = bisect.bisect_right(keys, k)
            assert (hi.key if hi else None) == (keys[j] if j < len(keys) else None)
        else:  # walk forward and back from a node
            f, l = tree.first(), tree.last()
            assert (f.key if f else None) == (keys[0] if keys else None)
            assert (l.key if l else None) == (keys[-1] if keys else None)
            if k in nodes:
                j = keys.index(k)
                nx, pv = tree.next(nodes[k]), tree.prev(nodes[k])
                assert (nx.key if nx else None) == (keys[j + 1] if j + 1 < len(keys) else None)
                assert (pv.key if pv else None) == (keys[j - 1] if j > 0 else None)
        got = check_rbtree(tree)
        assert got == [(key, vals[key]) for key in keys]


def test_insertion_path_bound_at_depth():
    """Ascending, descending and scattered keys up to 10,000 nodes: no insertion path exceeds
    2*log2(n+1) nodes, and a full in-order walk by next() visits O(n) nodes in total."""
    for order in (range(10_000), range(10_000, 0, -1), [(i * 7919) % 10_007 for i in range(10_000)]):
        tree = RbTree()
        worst = 0.0
        for n, k in enumerate(order):
            before = tree.visits
            tree.insert(k, None)
            worst = max(worst, (tree.visits - before) / (2 * math.log2(n + 1)) if n else 0.0)
        assert worst <= 1.0
        check_rbtree(tree)
        before = tree.visits
        node = tree.first()
        while node is not None:
            node = tree.next(node)
        assert tree.visits - before <= 3 * len(tree)


def test_counted_steps_are_the_steps_taken():
    """Sorted insertion into a plain BST would be a list; the red-black tree rotates to stay
    balanced, and the counters see each rotation and recolouring it makes."""
    tree = RbTree()
    tree.insert(1, None)
    assert (tree.visits, tree.rotations, tree.recolours) == (0, 0, 1)   # root painted black
    tree.insert(2, None)
    assert (tree.visits, tree.rotations) == (1, 0)
    tree.insert(3, None)          # 1-2-3 chain: one left rotation at 1, parent black, gparent red
    assert (tree.visits, tree.rotations) == (3, 1)
    assert tree.root.key == 2 and not tree.root.red and tree.root.left.red and tree.root.right.red
    tree.insert(4, None)          # uncle red: three recolourings, no rotation
    # stores: 1 (root) + 1 (root) + 2+1 (case 3 and root) + 3+1 (uncle case and root)
    assert tree.rotations == 1 and tree.recolours == 1 + 1 + 3 + 4
    check_rbtree(tree)

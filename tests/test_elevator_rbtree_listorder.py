"""rbtree-ablation's sort structure: the list deadline's list held in a red-black tree.  Checked
against a literal linked-list model of 2.5.49's deadline_merge scan (drivers/block/deadline-iosched.c:
backward scan, bio_rq_in_between, front merges until the insertion point, the very-front rule),
operation by operation: the same decision, the same list order."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support import examples

from mmframe_plugins.elevator_rbtree.listorder import AFTER, FRONT, MERGE, TAIL, ListOrder

from test_elevator_rbtree_tree import check_rbtree


class Rq:
    __slots__ = ("sector", "n", "barrier")

    def __init__(self, sector: int, n: int, barrier: bool = False) -> None:
        self.sector, self.n, self.barrier = sector, n, barrier

    def __repr__(self) -> str:
        return f"Rq({self.sector})"


def in_between(x: int, rq: Rq, nxt: Rq | None) -> bool:
    """bio_rq_in_between (2.5.49 ll_rw_blk.c), one device."""
    if nxt is None:
        return False
    if rq.sector < x < nxt.sector:
        return True
    if nxt.sector > rq.sector:
        return False
    return x > rq.sector or x < nxt.sector


def list_scan(lst: list[Rq], x: int, n: int, merge_ok, last_sector: int):
    """The literal backward scan of deadline_merge on a Python list."""
    for i in range(len(lst) - 1, -1, -1):
        rq = lst[i]
        if in_between(x, rq, lst[i + 1] if i + 1 < len(lst) else None):
            return AFTER, rq
        if rq.barrier:
            break
        if rq.sector - n == x and merge_ok(rq):
            return MERGE, rq
    if lst and x + n < lst[0].sector and x > last_sector:
        return FRONT, None
    return TAIL, None


def check(lo: ListOrder, lst: list[Rq]) -> None:
    check_rbtree(lo.tree)
    assert list(lo) == lst
    for run in lo.runs:   # runs are strictly ascending and know their ends
        seq = [rq for rq in lst if lo._run_of(lo.node[rq]) is run]
        assert seq and seq[0] is run.first.value and seq[-1] is run.last.value and len(seq) == run.size
        assert all(p.sector < q.sector for p, q in zip(seq, seq[1:]))
    assert (lo.head() if lst else None) is (lst[0] if lst else None)


ops = st.lists(st.one_of(
    st.tuples(st.just("bio"), st.integers(0, 24), st.integers(1, 4), st.integers(0, 24), st.booleans()),
    st.tuples(st.just("after"), st.integers(0, 24), st.integers(1, 4), st.integers(0, 60)),
    st.tuples(st.just("barrier"), st.integers(0, 24), st.integers(1, 4)),
    st.tuples(st.just("remove"), st.integers(0, 60)),
    st.tuples(st.just("resector"), st.integers(0, 60), st.integers(1, 4)),
), max_size=80)


@settings(max_examples=examples(300), deadline=None)
@given(ops)
@example([("bio", 10, 1, 0, True), ("bio", 20, 1, 0, True), ("bio", 10, 1, 0, True), ("bio", 15, 1, 0, True),
          ("bio", 10, 1, 0, True), ("bio", 20, 1, 0, True)])
@example([("bio", 10, 1, 0, True), ("bio", 20, 1, 0, True), ("bio", 20, 1, 0, True)])
@example([("bio", 10, 1, 0, True), ("bio", 20, 1, 0, True), ("barrier", 5, 1), ("bio", 8, 1, 50, True),
          ("bio", 15, 1, 50, True), ("bio", 4, 1, 50, True)])
def test_same_decisions_and_order_as_the_list(seq):
    lo, lst = ListOrder(), []
    for op in seq:
        if op[0] == "bio":
            _, x, n, last, ok = op
            merge_ok = lambda rq, ok=ok: ok or rq.sector % 2 == 0
            want = list_scan(lst, x, n, merge_ok, last)
            barriers = [rq for rq in lst if rq.barrier]
            got = lo.scan(x, n, merge_ok, last, barriers[-1] if barriers else None)
            assert got == want
            kind, at = got
            if kind == MERGE:
                continue
            rq = Rq(x, n)
            if kind == AFTER:
                lst.insert(lst.index(at) + 1, rq)
                lo.link(rq, at, x)
            elif kind == FRONT:
                lst.insert(0, rq)
                lo.link(rq, None, x)
            else:
                lst.append(rq)
                lo.append(rq, x)
        elif op[0] == "after":       # a refused merge inserts next to its candidate
            _, x, n, j = op
            rq = Rq(x, n)
            if lst:
                at = lst[j % len(lst)]
                lst.insert(lst.index(at) + 1, rq)
                lo.link(rq, at, x)
            else:
                lst.append(rq)
                lo.link(rq, None, x)
        elif op[0] == "barrier":     # a barrier request goes to the tail
            rq = Rq(op[1], op[2], barrier=True)
            lst.append(rq)
            lo.append(rq, rq.sector)
        elif op[0] == "remove" and lst:
            rq = lst.pop(op[1] % len(lst))
            lo.unlink(rq)
        elif op[0] == "resector" and lst:
            rq = lst[op[1] % len(lst)]
            rq.sector = max(0, rq.sector - op[2])
            lo.resector(rq, rq.sector)
        check(lo, lst)

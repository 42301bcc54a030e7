"""The list deadline's sort list, held in a red-black tree (for ``rbtree-ablation``).

2.5.49's deadline keeps each direction's pending requests on a doubly linked list that is *almost*
sorted: ``deadline_merge`` scans it backwards from the tail for the first request ``rq`` with
``bio_rq_in_between(bio, rq, next)`` -- between two ascending neighbours, or on either side of a
wrap where the next request's sector is not above ``rq``'s -- checking each request on the way for a
front merge and stopping at the insertion point (the front merges further up are lost); with no
point found, a bio before the head and after the last dispatched sector goes to the very front,
anything else to the tail.  Failed merges insert next to their candidate.  So the list is a
sequence of strictly ascending *runs*, split wherever a later sector does not rise.

This structure makes exactly those decisions without the scan.  Every request is a tree node keyed
by ``(run label, sector)``: the tree's in-order walk *is* the list order, runs are kept strictly
ascending (a run may end at an ascending pair; what matters is that no run descends), and the
backward scan becomes, per run from the tail: the wrap test at the run's last request, the front
merge candidate found by a tree lookup of the bio's end sector, and the in-between pair found by one
descent for the bio's sector.  With r runs an insertion costs O(r log n) instead of O(n).

Counted, besides the tree's own steps: ``run_visits`` (runs examined by a scan) and ``relabels``
(keys rewritten when a run is split or the labels are renumbered: the smaller side moves).
"""

from __future__ import annotations

import bisect
from typing import Any, Callable

from mmframe_plugins.elevator_rbtree.rbtree import RbNode, RbTree

__all__ = ["ListOrder", "MERGE", "AFTER", "FRONT", "TAIL"]

SHIFT = 48                  # sectors below 2**48 (128 PiB) fit under a run label
SECTOR_MASK = (1 << SHIFT) - 1
GAP = 1 << 32               # spacing of run labels when they are (re)numbered

MERGE, AFTER, FRONT, TAIL = "merge", "after", "front", "tail"


class Run:
    """One strictly ascending run of the list: its label and end nodes."""

    __slots__ = ("label", "first", "last", "size")

    def __init__(self, label: int) -> None:
        self.label = label
        self.first: RbNode | None = None
        self.last: RbNode | None = None
        self.size = 0


class ListOrder:
    """A sort list in list order, with the 2.5.49 deadline's placement decisions (module doc).

    Requests are any objects with an int ``sector``; ``sector_of`` may read it otherwise.
    """

    __slots__ = ("tree", "runs", "by_label", "node", "run_visits", "relabels")

    def __init__(self) -> None:
        self.tree = RbTree()
        self.runs: list[Run] = []            # in list order
        self.by_label: dict[int, Run] = {}
        self.node: dict[Any, RbNode] = {}    # request -> its node
        self.run_visits = 0
        self.relabels = 0

    def __len__(self) -> int:
        return len(self.node)

    @property
    def steps(self) -> int:
        return self.tree.steps + self.run_visits + self.relabels

    # --- walking in list order -------------------------------------------------------------------

    def head(self) -> Any:
        n = self.tree.first()
        return None if n is None else n.value

    def tail(self) -> Any:
        n = self.tree.last()
        return None if n is None else n.value

    def next(self, rq: Any) -> Any:
        n = self.tree.next(self.node[rq])
        return None if n is None else n.value

    def prev(self, rq: Any) -> Any:
        n = self.tree.prev(self.node[rq])
        return None if n is None else n.value

    def __iter__(self):
        """Requests in list order, uncounted (reports and checks)."""
        return (n.value for n in self.tree.nodes())

    # --- the scan's decision -----------------------------------------------------------------------

    def scan(self, sector: int, nr_sectors: int, merge_ok: Callable[[Any], bool],
             last_sector: int, barrier: Any = None) -> tuple[str, Any]:
        """Where 2.5.49's backward scan puts a bio at ``sector`` of ``nr_sectors``: ``(MERGE, rq)``
        for a front merge into ``rq`` (``merge_ok(rq)`` said yes), ``(AFTER, rq)``, ``(FRONT, None)``
        (before the head: it ends before the head and starts after ``last_sector``) or
        ``(TAIL, None)``.  ``barrier`` is the last barrier request on the list, where the scan
        stops (after its in-between test, before its front-merge test)."""
        limit = None if barrier is None else self.node[barrier].key
        x = sector
        end = sector + nr_sectors
        runs = self.runs
        tree = self.tree
        n = len(runs)
        visits = 0
        for r in range(n - 1, -1, -1):
            R = runs[r]
            visits += 1
            a = R.last
            if limit is not None and a.key < limit:
                break
            asec = a.key & SECTOR_MASK
            if r + 1 < n:
                b = runs[r + 1].first.key & SECTOR_MASK
                if (asec < x < b) or (b <= asec and (x > asec or x < b)):
                    self.run_visits += visits
                    return AFTER, a.value
            if a.key == limit:
                break
            if asec == end and merge_ok(a.value):
                self.run_visits += visits
                return MERGE, a.value
            if R.size > 1:
                base = R.label << SHIFT
                f = tree.find(base | end)
                if f is not None and f is not a and (limit is None or f.key > limit) and merge_ok(f.value):
                    self.run_visits += visits
                    return MERGE, f.value
                p = tree.lower(base | x)
                if p is not None and p is not a and p.key >> SHIFT == R.label and (limit is None or p.key >= limit):
                    s = tree.next(p)
                    if x < s.key & SECTOR_MASK:
                        self.run_visits += visits
                        return AFTER, p.value
        self.run_visits += visits
        if n:
            head = runs[0].first.key & SECTOR_MASK
            if end < head and x > last_sector:
                return FRONT, None
        return TAIL, None

    # --- changing the list -------------------------------------------------------------------------

    def _run_of(self, node: RbNode) -> Run:
        return self.by_label[node.key >> SHIFT]

    def _index(self, run: Run) -> int:
        return bisect.bisect_left(self.runs, run.label, key=lambda R: R.label)

    def _new_run(self, index: int) -> Run:
        """A new empty run at ``index`` of ``runs``, labelled between its neighbours."""
        runs = self.runs
        lo = runs[index - 1].label if index > 0 else 0
        hi = runs[index].label if index < len(runs) else lo + 2 * GAP
        if hi - lo < 2:
            self._renumber()
            lo = runs[index - 1].label if index > 0 else 0
            hi = runs[index].label if index < len(runs) else lo + 2 * GAP
        run = Run((lo + hi) // 2)
        runs.insert(index, run)
        self.by_label[run.label] = run
        return run

    def _renumber(self) -> None:
        """Spread the run labels again (no gap left): every key rewritten, order unchanged."""
        self.by_label.clear()
        for i, run in enumerate(self.runs):
            run.label = (i + 1) * GAP
            self.by_label[run.label] = run
            node = run.first
            base = run.label << SHIFT
            for _ in range(run.size):
                node.key = base | (node.key & SECTOR_MASK)
                self.relabels += 1
                node = self.tree.next(node)

    def _link(self, run: Run, rq: Any, sector: int) -> None:
        node, new = self.tree.insert((run.label << SHIFT) | sector, rq)
        assert new, "a run holds each sector once"
        self.node[rq] = node
        if run.size == 0 or sector < run.first.key & SECTOR_MASK:
            run.first = node
        if run.size == 0 or sector > run.last.key & SECTOR_MASK:
            run.last = node
        run.size += 1

    def _split_after(self, run: Run, a: RbNode) -> int:
        """Split ``run`` after its node ``a``; the smaller side moves to a new label.  Returns the
        index of the run now holding the part after ``a``."""
        tree = self.tree
        index = self._index(run)
        # count the two sides by walking both at once: O(smaller side)
        head_n, tail_n = 1, 0
        fwd, back = tree.next(a), a
        head_done = tail_done = False
        while True:
            if not tail_done:
                if fwd is None or fwd.key >> SHIFT != run.label:
                    tail_done = True
                else:
                    tail_n += 1
                    fwd = tree.next(fwd)
            if tail_done:
                break
            if not head_done:
                p = tree.prev(back)
                if p is None or p.key >> SHIFT != run.label:
                    head_done = True
                else:
                    head_n += 1
                    back = p
            if head_done:
                break
        b = tree.next(a)
        if tail_done:  # the part after a is the smaller: move it to a new run after this one
            moved = self._new_run(index + 1)
            node, count, first, last = b, tail_n, b, run.last
            run.last, run.size = a, run.size - tail_n
            keep_index = index + 1
        else:          # the part up to a is the smaller: move it to a new run before this one
            moved = self._new_run(index)
            index += 1
            node, count, first, last = run.first, head_n, run.first, a
            run.first, run.size = b, run.size - head_n
            keep_index = index
        base = moved.label << SHIFT
        for _ in range(count):
            node.key = base | (node.key & SECTOR_MASK)
            self.relabels += 1
            node = tree.next(node)
        moved.first, moved.last, moved.size = first, last, count
        return keep_index

    def link(self, rq: Any, after: Any, sector: int) -> None:
        """Put ``rq`` (at ``sector``) into the list right after request ``after`` (``None``: at
        the front), splitting a run where the list stops ascending."""
        runs = self.runs
        if after is None:
            if runs and sector < runs[0].first.key & SECTOR_MASK:
                self._link(runs[0], rq, sector)
            else:
                self._link(self._new_run(0), rq, sector)
            return
        a = self.node[after]
        run = self._run_of(a)
        asec = a.key & SECTOR_MASK
        if a is not run.last:
            b = self.tree.next(a)
            if asec < sector < b.key & SECTOR_MASK:
                self._link(run, rq, sector)
                return
            self._split_after(run, a)
            run = self._run_of(a)
        index = self._index(run)
        if sector > asec:
            self._link(run, rq, sector)
        elif index + 1 < len(runs) and sector < runs[index + 1].first.key & SECTOR_MASK:
            self._link(runs[index + 1], rq, sector)
        else:
            self._link(self._new_run(index + 1), rq, sector)

    def append(self, rq: Any, sector: int) -> None:
        """Put ``rq`` at the tail."""
        if not self.runs:
            self.link(rq, None, sector)
        else:
            self.link(rq, self.runs[-1].last.value, sector)

    def unlink(self, rq: Any) -> None:
        """Take ``rq`` off the list."""
        node = self.node.pop(rq)
        run = self._run_of(node)
        tree = self.tree
        run.size -= 1
        if run.size == 0:
            del self.runs[self._index(run)]
            del self.by_label[run.label]
        else:
            if node is run.first:
                run.first = tree.next(node)
            if node is run.last:
                run.last = tree.prev(node)
        tree.erase(node)

    def resector(self, rq: Any, sector: int) -> None:
        """``rq`` now starts at ``sector`` (a front merge) but keeps its place in the list."""
        before = self.prev(rq)
        self.unlink(rq)
        self.link(rq, before, sector)

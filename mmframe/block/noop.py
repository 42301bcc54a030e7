"""``elevator_noop`` of 2.5.49 (``drivers/block/elevator.c``): "always merges, always inserts new
request at tail".  Merge tries the ``last_merge`` hint, then scans the queue from the tail back
(stopping at a barrier) for a back or front merge; a new request goes to the tail; the driver takes
the head.  Each list entry the scan looks at is one ``scan`` step.

The scan stops at the last request (from the tail) that the bio can merge with, so the simulator
finds it from two maps (requests by start and by end sector) and counts the entries the scan would
have looked at; with a barrier queued it scans entry by entry (:meth:`Noop.merge_scan`, also the
tests' reference).
"""

from __future__ import annotations

from typing import Any

from mmframe.block.blkdev import REQ_BARRIER, REQ_CMD, Request
from mmframe.block.elevator import ELEVATOR_NO_MERGE, Elevator, SortList


class Noop(Elevator):
    name = "noop"
    period = "2.5.49"
    steps = {"scan": "elv_list_entry"}

    def init(self, q: Any, options: dict[str, Any]) -> None:
        self.queue = SortList()
        self.by_start: dict[int, list[Request]] = {}
        self.by_end: dict[int, list[Request]] = {}
        self.keys: dict[Request, tuple[int, int]] = {}
        self.barriers = 0

    def _index(self, rq: Request) -> None:
        self.by_start.setdefault(rq.sector, []).append(rq)
        self.by_end.setdefault(rq.sector + rq.nr_sectors, []).append(rq)
        self.keys[rq] = (rq.sector, rq.sector + rq.nr_sectors)

    def _unindex(self, rq: Request) -> None:
        keys = self.keys.pop(rq, None)
        if keys is None:
            return
        for table, key in ((self.by_start, keys[0]), (self.by_end, keys[1])):
            chain = table[key]
            chain.remove(rq)
            if not chain:
                del table[key]

    def merge(self, bio: Any) -> tuple[int, Any]:
        ret = self.try_last_merge(bio)
        if ret != ELEVATOR_NO_MERGE:
            return ret, self.q.last_merge
        if self.barriers:
            return self.merge_scan(bio)
        rqs = self.queue.rqs
        best, best_ret = -1, ELEVATOR_NO_MERGE
        for rq in (*self.by_end.get(bio.sector, ()), *self.by_start.get(bio.sector + (bio.size >> 9), ())):
            r = self.try_merge(rq, bio)
            if r != ELEVATOR_NO_MERGE:
                i = rqs.index(rq)
                if i > best:
                    best, best_ret = i, r
        self.step("scan", len(rqs) - best if best >= 0 else len(rqs))
        if best < 0:
            return ELEVATOR_NO_MERGE, None
        self.q.last_merge = rqs[best]
        return best_ret, rqs[best]

    def merge_scan(self, bio: Any) -> tuple[int, Any]:
        """2.5.49's scan, entry by entry from the tail."""
        rqs = self.queue.rqs
        scanned = 0
        for i in range(len(rqs) - 1, -1, -1):
            rq = rqs[i]
            scanned += 1
            if rq.flags & REQ_BARRIER:
                break
            if not rq.flags & REQ_CMD:
                continue
            ret = self.try_merge(rq, bio)
            if ret != ELEVATOR_NO_MERGE:
                self.q.last_merge = rq
                self.step("scan", scanned)
                return ret, rq
        if scanned:
            self.step("scan", scanned)
        return ELEVATOR_NO_MERGE, None

    def merged(self, rq: Request) -> None:
        self._unindex(rq)
        self._index(rq)

    def merge_req(self, rq: Request, nxt: Request) -> None:
        self._unindex(rq)
        self._index(rq)

    def add_req(self, rq: Request, where: Any) -> None:
        self.queue.rqs.append(rq)  # always at the tail, whatever the insertion point
        self._index(rq)
        q = self.q
        if rq.flags & REQ_BARRIER:
            self.barriers += 1
            q.last_merge = None
        elif q.last_merge is None:
            q.last_merge = rq

    def next_req(self) -> Request | None:
        rqs = self.queue.rqs
        return rqs[0] if rqs else None

    def remove_req(self, rq: Request) -> None:
        rqs = self.queue.rqs
        if rqs and rqs[0] is rq:
            del rqs[0]
        else:
            self.queue.remove(rq)
        self._unindex(rq)
        if rq.flags & REQ_BARRIER:
            self.barriers -= 1

    def queue_empty(self) -> bool:
        return not self.queue.rqs

    def get_sort_head(self, rq: Request) -> Any:
        return self.queue

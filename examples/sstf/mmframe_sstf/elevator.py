"""The SSTF elevator: dispatch the queued request nearest the head.

Not a Linux elevator (2.5 had deadline, anticipatory and noop; SSTF is the textbook policy, e.g.
Silberschatz & Galvin, *Operating System Concepts*, ch. 13): an example of the facade's
:class:`~mmframe.facade.Elevator` interface.  The head is where the last dispatched request ended.
Bios merge with a queued request (the queue's ``last_merge`` hint, then a scan from the tail, as
noop does).  While a barrier is queued, or a request was requeued at the front, requests go in queue
order, so nothing passes a barrier.  Choosing scans the whole queue: O(n) ``sstf.scan`` steps.
"""

from __future__ import annotations

from typing import Any

from mmframe.facade import ELEVATOR_NO_MERGE, INSERT_FRONT, REQ_BARRIER, REQ_STARTED, Elevator


class Sstf(Elevator):
    name = "sstf"
    period = "not a Linux elevator: textbook shortest seek time first (mmframe example plugin)"
    steps = {"scan": "sstf.scan"}

    def init(self, q: Any, options: dict[str, Any]) -> None:
        self.rqs: list[Any] = []  # queue order
        self.front = 0  # requests requeued at the front, still queued (served first, in order)
        self.barriers = 0
        self.head = 0  # the sector after the last dispatched request

    def merge(self, bio: Any) -> tuple[int, Any]:
        ret = self.try_last_merge(bio)
        if ret != ELEVATOR_NO_MERGE:
            return ret, self.q.last_merge
        scanned = 0
        for rq in reversed(self.rqs):
            scanned += 1
            if rq.flags & REQ_BARRIER:
                break
            ret = self.try_merge(rq, bio)
            if ret != ELEVATOR_NO_MERGE:
                self.step("scan", scanned)
                self.q.last_merge = rq
                return ret, rq
        if scanned:
            self.step("scan", scanned)
        return ELEVATOR_NO_MERGE, None

    def add_req(self, rq: Any, where: Any) -> None:
        if where is INSERT_FRONT:
            self.rqs.insert(0, rq)
            self.front += 1
        else:
            self.rqs.append(rq)
        if rq.flags & REQ_BARRIER:
            self.barriers += 1
            self.q.last_merge = None
        elif self.q.last_merge is None:
            self.q.last_merge = rq

    def next_req(self) -> Any:
        rqs = self.rqs
        if not rqs:
            return None
        if self.front or self.barriers:
            return rqs[0]
        self.step("scan", len(rqs))
        head = self.head
        return min(rqs, key=lambda rq: (abs(rq.sector - head), rq.sector))

    def remove_req(self, rq: Any) -> None:
        i = self.rqs.index(rq)
        del self.rqs[i]
        if i < self.front:
            self.front -= 1
        if rq.flags & REQ_BARRIER:
            self.barriers -= 1
        if rq.flags & REQ_STARTED:  # dispatched (not merged away): the head moves to its end
            self.head = rq.sector + rq.nr_sectors

    def queue_empty(self) -> bool:
        return not self.rqs

"""``elevator_noop`` of 2.5.49 (``drivers/block/elevator.c``): "always merges, always inserts new
request at tail".  Merge tries the ``last_merge`` hint, then scans the queue from the tail back
(stopping at a barrier) for a back or front merge; a new request goes to the tail; the driver takes
the head.  Each list entry looked at in the scan is one ``scan`` step.
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

    def merge(self, bio: Any) -> tuple[int, Any]:
        ret = self.try_last_merge(bio)
        if ret != ELEVATOR_NO_MERGE:
            return ret, self.q.last_merge
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

    def add_req(self, rq: Request, where: Any) -> None:
        self.queue.rqs.append(rq)  # always at the tail, whatever the insertion point
        q = self.q
        if rq.flags & REQ_BARRIER:
            q.last_merge = None
        elif q.last_merge is None:
            q.last_merge = rq

    def next_req(self) -> Request | None:
        rqs = self.queue.rqs
        return rqs[0] if rqs else None

    def remove_req(self, rq: Request) -> None:
        self.queue.remove(rq)

    def queue_empty(self) -> bool:
        return not self.queue.rqs

    def get_sort_head(self, rq: Request) -> Any:
        return self.queue

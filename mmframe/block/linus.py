"""``elevator_linus`` as in 2.5.38 (``drivers/block/elevator.c`` at v2.5.38) -- **removed in
2.5.39** (commit 71fabcd4a3, "Patch killing off elevator_linus for good"), offered so the reason the
deadline scheduler came can be shown.

One sorted list; the driver takes the head.  Each request carries a passover budget ("sequence",
kept in ``elevator_private``), set at insertion to ``read_latency`` (1024) or ``write_latency``
(2048) (commit c4634bf72e, Sep 2002).  A bio is merged or placed by scanning from the tail back; the
scan stops at a barrier or at a request whose budget is smaller than the bio's sectors (it may not
be passed again).  A merge costs every request behind the merge point 1 from its budget, an
insertion in the middle costs them ``ELV_LINUS_SEEK_COST`` (16); a front merge also takes the bio's
sectors off the merged request's budget; merged requests keep the smaller budget.
"""

from __future__ import annotations

from typing import Any

from mmframe.block.blkdev import REQ_BARRIER, REQ_CMD, Request
from mmframe.block.elevator import ELEVATOR_FRONT_MERGE, ELEVATOR_NO_MERGE, Elevator, SortList, bio_rq_in_between
from mmframe.options import Option

ELV_LINUS_SEEK_COST = 16


class Linus(Elevator):
    name = "linus"
    period = "2.5.38 (removed in 2.5.39; not in 2.5.49)"
    tunables = (
        Option("read_latency", "int", 1024, "passover budget of a read request (2.5.38)", minimum=0, scope="queue"),
        Option("write_latency", "int", 2048, "passover budget of a write request (2.5.38)", minimum=0,
               scope="queue"),
    )
    steps = {"scan": "elv_list_entry", "account": "elv_list_entry"}

    def init(self, q: Any, options: dict[str, Any]) -> None:
        self.queue = SortList()
        self.latency = (options.get("read_latency", 1024), options.get("write_latency", 2048))

    def merge(self, bio: Any) -> tuple[int, Any]:
        ret = self.try_last_merge(bio)
        if ret != ELEVATOR_NO_MERGE:
            return ret, self.q.last_merge
        rqs = self.queue.rqs
        nsect = bio.size >> 9
        where: Request | None = None
        ret = ELEVATOR_NO_MERGE
        scanned = 0
        for i in range(len(rqs) - 1, -1, -1):
            rq = rqs[i]
            scanned += 1
            if rq.flags & REQ_BARRIER:
                break
            if not rq.flags & REQ_CMD:
                continue
            if rq.elevator_private < nsect:
                break
            if where is None and bio_rq_in_between(bio, rqs, i):
                where = rq
            ret = self.try_merge(rq, bio)
            if ret != ELEVATOR_NO_MERGE:
                if ret == ELEVATOR_FRONT_MERGE:
                    rq.elevator_private -= nsect
                where = rq
                self.q.last_merge = rq
                break
        if scanned:
            self.step("scan", scanned)
        if where is not None:  # account the merge (1) or the seeky insert (16) to everything behind
            cost = 1 if ret != ELEVATOR_NO_MERGE else ELV_LINUS_SEEK_COST
            behind = rqs[rqs.index(where) + 1:]
            for rq in behind:
                rq.elevator_private -= cost
            if behind:
                self.step("account", len(behind))
        return ret, where

    def merge_req(self, rq: Request, nxt: Request) -> None:
        rq.elevator_private = min(rq.elevator_private, nxt.elevator_private)

    def add_req(self, rq: Request, where: Any) -> None:
        rq.elevator_private = 0 if rq.flags & REQ_BARRIER else self.latency[rq.rw]
        self.queue.insert(rq, where)
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

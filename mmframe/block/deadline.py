"""The deadline I/O scheduler of 2.5.49 (``drivers/block/deadline-iosched.c``, Jens Axboe; made
the default in commit c08209b665, Sep 2002), the list-sorted version that lived from 2.5.39 to
2.5.57.

* **Sort lists.**  One list per direction, kept in ascending runs: a bio is placed by scanning its
  direction's list from the tail back until ``bio_rq_in_between`` finds its place (stopping early
  there: "empirical evidence shows this to be a big waste of cycles", though a front merge further
  up may be lost), checking each request on the way for a front merge and stopping at a barrier.
  If no place is found and the bio lies before the list's head and after the last dispatched
  sector, it goes to the very front, else to the tail (the wrap).  Every entry looked at is one
  ``scan`` step.
* **Back-merge hash.**  Requests are hashed by their end sector; a bio starting there back-merges
  without a scan (256 buckets in 2.5.49, ``DL_HASH_SHIFT`` 8: one ``hash`` step a lookup).  A hard
  barrier empties the hash and the ``last_merge`` hint.
* **Read FIFO, no write FIFO.**  A read expires ``read_expire`` (HZ/2: 500 ms) after it was queued.
* **Dispatch.**  While the dispatch list has requests the driver takes its head.  Otherwise: if the
  oldest read has expired, a batch starts at it; else, if reads are queued, at the first read on
  the sort list; but if writes are queued and reads have been preferred ``writes_starved`` (2)
  times running, a write batch starts at the first write instead (resetting the count).  A batch
  moves requests along the sort list (no wrap) while the budget ``fifo_batch`` (16) lasts: a
  request costs ``seek_cost`` (16) unless it starts where the previous one ended, then
  ``(nr_sectors + 255) >> 8``.  So a batch is one seeky request or up to 16 x 128 KiB streaming.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from mmframe.block.blkdev import REQ_BARRIER, REQ_CMD, REQ_HARDBARRIER, Request, rq_mergeable
from mmframe.block.elevator import (ELEVATOR_NO_MERGE, INSERT_FRONT, Elevator,
                                    KeyedSortList, SortList, bio_rq_in_between)
from mmframe.options import Option

READ, WRITE = 0, 1
ON_SORT, ON_DISPATCH = "sort", "dispatch"  # where a request is (its elevator_key)


class Deadline(Elevator):
    name = "deadline"
    period = "2.5.49"
    tunables = (
        Option("read_expire", "duration", "500ms", "a read's deadline from queueing (HZ/2)", minimum=1,
               scope="queue"),
        Option("writes_starved", "int", 2, "read batches preferred before a pending write batch", minimum=0,
               scope="queue"),
        Option("fifo_batch", "int", 16, "budget of one batch moved to dispatch", minimum=1, scope="queue"),
        Option("seek_cost", "int", 16, "budget cost of a non-contiguous request in a batch", minimum=1,
               scope="queue"),
    )
    steps = {"scan": "elv_list_entry", "hash": "elv_hash_lookup"}

    def init(self, q: Any, options: dict[str, Any]) -> None:
        self._hash_id = self._step_ids["hash"]
        self._hash_ns = self._acct.ns_of[self._hash_id]
        self.read_expire = float(options.get("read_expire", 500_000_000))
        self.writes_starved = options.get("writes_starved", 2)
        self.fifo_batch = options.get("fifo_batch", 16)
        self.seek_cost = options.get("seek_cost", 16)
        self.sort = (KeyedSortList(), KeyedSortList())
        self.by_start: tuple[dict[int, list[Request]], dict[int, list[Request]]] = ({}, {})  # sort-list requests
        self.starts: dict[Request, int] = {}
        self.barriers = [0, 0]
        self.read_fifo: deque[Request] = deque()
        self.dispatch = SortList()  # q->queue_head: moved here in batches, taken from the head
        self.hash: dict[int, list[Request]] = {}
        self.hashed: dict[Request, int] = {}
        self.last_sector = 0
        self.starved = 0
        self.batches = [0, 0]
        self.expired_batches = 0

    # --- hash -----------------------------------------------------------------------------------
    def _hash_add(self, rq: Request) -> None:
        key = rq.sector + rq.nr_sectors
        self.hash.setdefault(key, []).append(rq)
        self.hashed[rq] = key

    def _hash_del(self, rq: Request) -> None:
        key = self.hashed.pop(rq, None)
        if key is not None:
            chain = self.hash[key]
            chain.remove(rq)
            if not chain:
                del self.hash[key]

    def _find_hash(self, sector: int) -> Request | None:
        self.step_counts["hash"] += 1  # self.step("hash"), inline: every merge attempt looks
        acct = self._acct
        acct.row[self._hash_id] += 1
        acct.ns += self._hash_ns
        chain = self.hash.get(sector)
        if chain:
            for rq in chain:
                if rq_mergeable(rq):
                    return rq
        return None

    # --- merge ----------------------------------------------------------------------------------
    def merge(self, bio: Any) -> tuple[int, Any]:
        found = self.hint_or_hash_merge(bio)
        if found is not None:
            return found
        if self.barriers[bio.rw]:
            return self.merge_scan(bio)
        # where the backward scan stops: at its place (bio_rq_in_between) or at a front merge,
        # whichever comes first from the tail; found by bisection, the scan's steps counted
        sl = self.sort[bio.rw]
        rqs = sl.rqs
        b = bio.sector
        front = b + (bio.size >> 9)
        stop = sl.find_between(b)
        where: Any = rqs[stop] if stop >= 0 else None
        ret = ELEVATOR_NO_MERGE
        cands = self.by_start[bio.rw].get(front)
        if cands:
            best = -1
            for rq in cands:
                i = rqs.index(rq)
                if i > best and i > stop and self.try_merge(rq, bio) != ELEVATOR_NO_MERGE:
                    best = i
            if best >= 0:
                stop, where, ret = best, rqs[best], self.try_merge(rqs[best], bio)
        self.step("scan", len(rqs) - stop if stop >= 0 else len(rqs))
        if where is None and rqs and front < sl.keys[0] and b > self.last_sector:
            where = INSERT_FRONT
        return ret, where

    def merge_scan(self, bio: Any) -> tuple[int, Any]:
        """The insertion scan as 2.5.49 writes it, entry by entry from the tail (used when a
        barrier is queued, and by the tests as the reference for the bisection)."""
        rqs = self.sort[bio.rw].rqs
        where: Any = None
        ret = ELEVATOR_NO_MERGE
        scanned = 0
        b = bio.sector
        front = b + (bio.size >> 9)
        for i in range(len(rqs) - 1, -1, -1):
            rq = rqs[i]
            scanned += 1
            if not rq.flags & REQ_CMD:
                continue
            if bio_rq_in_between(bio, rqs, i):
                where = rq
                break
            if rq.flags & REQ_BARRIER:
                break
            if rq.sector == front:  # a front merge: the hash misses those
                ret = self.try_merge(rq, bio)
                if ret != ELEVATOR_NO_MERGE:
                    where = rq
                    break
        if scanned:
            self.step("scan", scanned)
        if where is None and rqs and front < rqs[0].sector and b > self.last_sector:
            where = INSERT_FRONT
        return ret, where

    def merged(self, rq: Request) -> None:
        self._hash_del(rq)
        self._hash_add(rq)
        self._start_del(rq)
        self._start_add(rq)
        head = self.get_sort_head(rq)
        if head is not None:
            head.rekey(rq)  # a front merge moved its start
        self.q.last_merge = rq

    def _start_add(self, rq: Request) -> None:
        self.by_start[rq.rw].setdefault(rq.sector, []).append(rq)
        self.starts[rq] = rq.sector

    def _start_del(self, rq: Request) -> None:
        key = self.starts.pop(rq, None)
        if key is not None:
            chain = self.by_start[rq.rw][key]
            chain.remove(rq)
            if not chain:
                del self.by_start[rq.rw][key]

    def merge_req(self, rq: Request, nxt: Request) -> None:
        # the merged request keeps the earlier expiry and takes next's place in the FIFO
        if rq.rw == READ and rq.elevator_private is not None and nxt.elevator_private is not None:
            if nxt.elevator_private < rq.elevator_private:
                fifo = self.read_fifo
                fifo.remove(rq)
                fifo.insert(fifo.index(nxt), rq)
                rq.elevator_private = nxt.elevator_private
        self._hash_del(rq)
        self._hash_add(rq)

    # --- add, remove --------------------------------------------------------------------------------
    def add_req(self, rq: Request, where: Any) -> None:
        q = self.q
        if rq.flags & REQ_HARDBARRIER:  # no merging across a barrier
            self.hash.clear()
            self.hashed.clear()
            q.last_merge = None
        if where is not None and where is not INSERT_FRONT and where.elevator_key is ON_DISPATCH:
            self.dispatch.insert(rq, where)  # after a refused merge into a request awaiting dispatch
            rq.elevator_key = ON_DISPATCH
        else:
            self.sort[rq.rw].insert(rq, where)
            rq.elevator_key = ON_SORT
            self.by_start[rq.rw].setdefault(rq.sector, []).append(rq)
            self.starts[rq] = rq.sector
            if rq.flags & REQ_BARRIER:
                self.barriers[rq.rw] += 1
        if rq_mergeable(rq):
            key = rq.sector + rq.nr_sectors
            self.hash.setdefault(key, []).append(rq)
            self.hashed[rq] = key
            if q.last_merge is None:
                q.last_merge = rq
        if rq.rw == READ:
            rq.elevator_private = rq.start_time + self.read_expire
            self.read_fifo.append(rq)

    def remove_req(self, rq: Request) -> None:
        d = self.dispatch.rqs
        if d and d[0] is rq:
            del d[0]
        elif rq.elevator_key is ON_SORT:
            self.sort[rq.rw].remove(rq)
            self._off_sort_list(rq)
        else:
            self.dispatch.remove(rq)
        rq.elevator_key = None
        if rq in self.hashed:
            self._hash_del(rq)
        if rq.rw == READ and rq.elevator_private is not None:
            try:
                self.read_fifo.remove(rq)
            except ValueError:
                pass
            rq.elevator_private = None

    def queue_empty(self) -> bool:
        return not (self.dispatch.rqs or self.sort[0].rqs or self.sort[1].rqs)

    def get_sort_head(self, rq: Request) -> Any:
        where = rq.elevator_key
        return self.sort[rq.rw] if where is ON_SORT else self.dispatch if where is ON_DISPATCH else None

    # --- dispatch --------------------------------------------------------------------------------------
    def _off_sort_list(self, rq: Request) -> None:
        self._start_del(rq)
        if rq.flags & REQ_BARRIER:
            self.barriers[rq.rw] -= 1

    def _move_to_dispatch(self, rq: Request) -> None:
        self.sort[rq.rw].remove(rq)
        self._off_sort_list(rq)
        if rq.rw == READ and rq.elevator_private is not None:
            self.read_fifo.remove(rq)
            rq.elevator_private = None
        if rq in self.hashed:
            self._hash_del(rq)
        self.dispatch.rqs.append(rq)
        rq.elevator_key = ON_DISPATCH

    def move_requests(self, rq: Request) -> None:
        """``deadline_move_requests``: a batch along the sort list from ``rq``."""
        rqs = self.sort[rq.rw].rqs
        i = rqs.index(rq)
        last_sec = self.last_sector
        budget = self.fifo_batch
        self.batches[rq.rw] += 1
        while True:
            nxt = rqs[i + 1] if i + 1 < len(rqs) else None
            self._move_to_dispatch(rq)  # rqs lost rq: nxt is now at index i
            if nxt is None:
                break
            cost = (rq.nr_sectors + 255) >> 8 if rq.sector == last_sec else self.seek_cost
            budget -= cost
            if budget <= 0:
                break
            last_sec = rq.sector + rq.nr_sectors
            rq = nxt

    def next_req(self) -> Request | None:
        if not self.dispatch.rqs:
            reads, writes = self.sort[READ].rqs, self.sort[WRITE].rqs
            fifo = self.read_fifo
            if fifo and self.q.now() > fifo[0].elevator_private:
                if writes and self._starve():
                    self._write_batch(writes)
                else:
                    self.expired_batches += 1
                    self.move_requests(fifo[0])
            elif reads:
                if writes and self._starve():
                    self._write_batch(writes)
                else:
                    self.move_requests(reads[0])
            elif writes:
                self._write_batch(writes)
            else:
                return None
        rq = self.dispatch.rqs[0]
        self.last_sector = rq.sector + rq.nr_sectors
        return rq

    def _starve(self) -> bool:
        starved = self.starved >= self.writes_starved
        self.starved += 1
        return starved

    def _write_batch(self, writes: list[Request]) -> None:
        self.move_requests(writes[0])
        self.starved = 0

    def figures(self) -> dict[str, Any]:
        out = super().figures()
        out.update({"read_batches": self.batches[READ], "write_batches": self.batches[WRITE],
                    "expired_batches": self.expired_batches})
        return out

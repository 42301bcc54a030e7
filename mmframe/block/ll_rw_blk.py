"""The request queue of 2.5.49's ``drivers/block/ll_rw_blk.c``: ``__make_request`` (merging a bio
into a queued request or making a new one), the merge limits, request-to-request merging, request
allocation with sleeping for a free request, and plugging.

* **Merging.**  The elevator proposes a back or front merge (trying the one-shot ``last_merge``
  hint first); ``ll_back_merge_fn``/``ll_front_merge_fn`` refuse a merge past ``max_sectors``
  (255), ``max_phys_segments`` or ``max_hw_segments`` (128; a segment is at most
  ``max_segment_size``, 64 KiB), marking the request REQ_NOMERGE and dropping the hint.  After a
  bio merge the request is tried against its sort-list neighbour (``attempt_back_merge`` /
  ``attempt_front_merge``).  i386 has no IOMMU, so bios are never virtually merged: a merge grows
  both segment counts, and two requests whose boundary pages are physically contiguous count one
  segment less.
* **Request allocation.**  2.5.49 has one global depth, ``queue_nr_requests`` = (RAM in KiB >> 9)
  & ~7 clamped to 16..128, per direction; a bio that finds no free request sleeps
  (``get_request_wait``) and is retried when a request is freed and at least ``batch_requests``
  are free; a read-ahead bio is failed instead.  A per-queue depth (``[block.<disk>]
  nr_requests``, 2.6's ``/sys/block/<disk>/queue/nr_requests``) is offered, labelled as later.
* **Plugging.**  A bio arriving at an empty queue plugs it; the queue is unplugged (and the driver
  started) when a submitter waits for its I/O (``blk_run_queues``) -- 2.5.49 has no unplug timer.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from mmframe.block.bio import BIO_RW_AHEAD, BIO_RW_BARRIER, Bio, bio_phys_segments, phys_contig
from mmframe.block.blkdev import (MAX_HW_SEGMENTS, MAX_PHYS_SEGMENTS, MAX_SECTORS, MAX_SEGMENT_SIZE, REQ_CMD,
                                  REQ_HARDBARRIER, REQ_NOMERGE, REQ_STARTED, RQ_NOMERGE_FLAGS, Request)
from mmframe.block.elevator import ELEVATOR_BACK_MERGE, ELEVATOR_FRONT_MERGE, INSERT_FRONT, Elevator
from mmframe.usr import EAGAIN

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.block.genhd import BlockLayer


def queue_nr_requests(mem_bytes: int, cap: int = 128) -> int:
    """2.5.49 ``blk_dev_init``: (RAM in KiB >> 9) & ~7, clamped to 16..128 (per direction); ``cap``
    replaces 128 (the -mm rbtree patch's 1024)."""
    return max(16, min(cap, ((mem_bytes >> 10) >> 9) & ~7))


def batch_requests(nr: int) -> int:
    """Free requests needed before a sleeper is woken (2.5.49: min(8, nr/8), at least 1)."""
    return max(1, min(8, nr // 8))


class RequestQueue:
    """``request_queue_t`` of one disk: its elevator, free requests, plugging and merge limits.

    ``make_request(bio)`` queues a bio (never blocks the caller: a bio that must wait for a free
    request is parked and retried, its submitter sleeping until it completes); ``next_request()``
    is the driver's ``elv_next_request`` + ``blkdev_dequeue_request``; ``end_request(rq)`` frees a
    completed request.
    """

    def __init__(self, layer: BlockLayer, name: str, elevator: Elevator, nr_requests: int,
                 bounce_pfn: int | None) -> None:
        self.layer, self.name, self.elevator = layer, name, elevator
        self.nr_requests = nr_requests
        self.own_depth = False  # a per-queue nr_requests (set by make_device), not 2.5's global rule
        self.batch_requests = batch_requests(nr_requests)
        self.free = [nr_requests, nr_requests]
        self.parked: list[deque[Bio]] = [deque(), deque()]
        self.pool: list[Request] = []
        self.last_merge: Request | None = None
        self.plugged = False
        self.max_sectors = MAX_SECTORS
        self.max_phys_segments = MAX_PHYS_SEGMENTS
        self.max_hw_segments = MAX_HW_SEGMENTS
        self.max_segment_size = MAX_SEGMENT_SIZE
        self.bounce_pfn = bounce_pfn
        self.seq = 0
        self.driver: Any = None  # the disk: request_fn(t) starts it
        self.now = layer.now  # simulated ns of the calling context (an elevator's FIFO clock)
        self.stats = {"bios": 0, "requests": 0, "back_merges": 0, "front_merges": 0, "request_merges": 0,
                      "merge_refused": 0, "sleeps": 0, "readahead_failed": 0, "plugs": 0, "unplugs": 0,
                      "bounced_pages": 0, "bounce_failed": 0}
        P = layer.P
        self._acct = layer.m.acct
        self._p_make, self._p_getrq, self._p_merge = P.blk_make_request, P.blk_get_request, P.blk_bio_merge
        self._p_add, self._p_dispatch = P.elv_add_request, P.elv_dispatch
        ns = self._acct.ns_of  # fixed once the machine is built (cost files applied)
        self._ns_make, self._ns_getrq, self._ns_add, self._ns_dispatch = (
            ns[self._p_make], ns[self._p_getrq], ns[self._p_add], ns[self._p_dispatch])

    # --- __make_request ----------------------------------------------------------------------
    def make_request(self, bio: Bio) -> None:
        """``__make_request``: merge ``bio`` into a queued request or queue a new one."""
        acct = self._acct
        acct.row[self._p_make] += 1
        acct.ns += self._ns_make
        self.stats["bios"] += 1
        if bio.phys_segments < 0:
            bio.phys_segments = bio_phys_segments(bio.vecs, self.max_segment_size)
        elv = self.elevator
        where: Any = None
        if elv.queue_empty():
            self.plug()
        elif not bio.flags & BIO_RW_BARRIER:
            ret, where = elv.merge(bio)
            if ret == ELEVATOR_BACK_MERGE:
                rq = where
                if self.ll_back_merge_fn(rq, bio):
                    rq.biotail.next = bio
                    rq.biotail = bio
                    rq.nr_sectors += bio.size >> 9
                    acct.charge(self._p_merge)
                    self.stats["back_merges"] += 1
                    elv.merged(rq)
                    self.attempt_back_merge(rq)
                    return
            elif ret == ELEVATOR_FRONT_MERGE:
                rq = where
                if self.ll_front_merge_fn(rq, bio):
                    bio.next = rq.bio
                    rq.bio = bio
                    rq.sector = bio.sector
                    rq.nr_sectors += bio.size >> 9
                    acct.charge(self._p_merge)
                    self.stats["front_merges"] += 1
                    elv.merged(rq)
                    self.attempt_front_merge(rq)
                    return
                head = elv.get_sort_head(rq)
                prev = head.former(rq) if head is not None else None
                where = prev if prev is not None else INSERT_FRONT
        rq = self.get_request(bio.rw)
        if rq is None:
            if bio.flags & BIO_RW_AHEAD:  # READA: dropped rather than waited for
                self.stats["readahead_failed"] += 1
                self.layer.end_bio(bio, -EAGAIN, self.now())
                return
            self.stats["sleeps"] += 1
            self.parked[bio.rw].append(bio)  # get_request_wait: the submitter sleeps
            return
        rq.rw = bio.rw
        rq.flags = REQ_CMD | bio.rw | (REQ_HARDBARRIER | REQ_NOMERGE if bio.flags & BIO_RW_BARRIER else 0)
        rq.sector = bio.sector
        rq.nr_sectors = bio.size >> 9
        rq.bio = rq.biotail = bio
        bio.next = None
        rq.nr_phys_segments = rq.nr_hw_segments = bio.phys_segments
        rq.start_time = self.now()
        self.stats["requests"] += 1
        acct.row[self._p_add] += 1
        acct.ns += self._ns_add
        elv.add_req(rq, where)

    # --- merge limits (ll_*_merge_fn) ---------------------------------------------------------
    def _refuse(self, rq: Request) -> bool:
        rq.flags |= REQ_NOMERGE
        self.last_merge = None
        self.stats["merge_refused"] += 1
        return False

    def ll_back_merge_fn(self, rq: Request, bio: Bio) -> bool:
        return self._ll_merge(rq, bio)

    def ll_front_merge_fn(self, rq: Request, bio: Bio) -> bool:
        return self._ll_merge(rq, bio)

    def _ll_merge(self, rq: Request, bio: Bio) -> bool:
        """Both directions alike on i386 (no virtual merging): ``ll_new_hw_segment``."""
        if rq.nr_sectors + (bio.size >> 9) > self.max_sectors:
            return self._refuse(rq)
        nseg = bio.phys_segments
        if rq.nr_hw_segments + nseg > self.max_hw_segments or rq.nr_phys_segments + nseg > self.max_phys_segments:
            return self._refuse(rq)
        rq.nr_hw_segments += nseg
        rq.nr_phys_segments += nseg
        return True

    def ll_merge_requests_fn(self, rq: Request, nxt: Request) -> bool:
        if rq.nr_sectors + nxt.nr_sectors > self.max_sectors:
            return False
        contig = phys_contig(rq.biotail, nxt.bio, self.max_segment_size)
        phys = rq.nr_phys_segments + nxt.nr_phys_segments - contig
        hw = rq.nr_hw_segments + nxt.nr_hw_segments - contig
        if phys > self.max_phys_segments or hw > self.max_hw_segments:
            return False
        rq.nr_phys_segments, rq.nr_hw_segments = phys, hw
        return True

    # --- request-to-request merging ----------------------------------------------------------------
    def attempt_merge(self, rq: Request, nxt: Request) -> bool:
        """``attempt_merge``: append ``nxt`` to ``rq`` if contiguous, same direction and in limits."""
        if rq.flags & RQ_NOMERGE_FLAGS or nxt.flags & RQ_NOMERGE_FLAGS:
            return False
        if rq.sector + rq.nr_sectors != nxt.sector or rq.rw != nxt.rw:
            return False
        if not self.ll_merge_requests_fn(rq, nxt):
            return False
        rq.biotail.next = nxt.bio
        rq.biotail = nxt.biotail
        rq.nr_sectors += nxt.nr_sectors
        if nxt.start_time < rq.start_time:
            rq.start_time = nxt.start_time
        elv = self.elevator
        elv.merge_req(rq, nxt)
        elv.remove_req(nxt)  # blkdev_dequeue_request(next)
        if self.last_merge is nxt:
            self.last_merge = None
        nxt.bio = nxt.biotail = None
        self.stats["request_merges"] += 1
        self._acct.charge(self._p_merge)
        self.put_request(nxt)
        return True

    def attempt_back_merge(self, rq: Request) -> None:
        head = self.elevator.get_sort_head(rq)
        if head is not None:
            nxt = head.latter(rq)
            if nxt is not None:
                self.attempt_merge(rq, nxt)

    def attempt_front_merge(self, rq: Request) -> None:
        head = self.elevator.get_sort_head(rq)
        if head is not None:
            prev = head.former(rq)
            if prev is not None:
                self.attempt_merge(prev, rq)

    # --- request allocation -----------------------------------------------------------------------
    def get_request(self, rw: int) -> Request | None:
        if not self.free[rw]:
            return None
        self.free[rw] -= 1
        rq = self.pool.pop() if self.pool else Request()
        rq.q = self
        self.seq += 1
        rq.seq = self.seq
        rq.completed = 0
        rq.elevator_private = rq.elevator_key = None
        acct = self._acct
        acct.row[self._p_getrq] += 1
        acct.ns += self._ns_getrq
        return rq

    def put_request(self, rq: Request) -> None:
        """``blk_put_request``: the request is free again; a sleeper is woken once at least
        ``batch_requests`` are free (it retries its bio, then runs the queue it waits on)."""
        rw = rq.rw
        rq.bio = rq.biotail = None
        self.free[rw] += 1
        self.pool.append(rq)
        parked = self.parked[rw]
        if parked and self.free[rw] >= self.batch_requests:
            self.make_request(parked.popleft())
            self.unplug()

    def in_flight(self) -> int:
        return 2 * self.nr_requests - self.free[0] - self.free[1]

    def set_depth_cap(self, cap: int) -> None:
        """2.5's global depth rule with ``cap`` as its upper clamp instead of 128 (the -mm rbtree
        patch raised it to 1024), unless this queue has its own ``[block.<disk>] nr_requests``.  From
        an elevator's ``init`` only, before any request is allocated."""
        if self.in_flight():
            raise ValueError("set_depth_cap: requests are already allocated")
        if not self.own_depth:
            nr = queue_nr_requests(self.layer.m.config.memory, cap)
            self.nr_requests, self.batch_requests, self.free = nr, batch_requests(nr), [nr, nr]

    # --- plugging and dispatch ------------------------------------------------------------------------
    def plug(self) -> None:
        """``blk_plug_device``."""
        if not self.plugged:
            self.plugged = True
            self.stats["plugs"] += 1

    def unplug(self) -> None:
        """``generic_unplug_device``: unplug and start the driver."""
        if self.plugged:
            self.plugged = False
            self.stats["unplugs"] += 1
        if self.driver is not None:
            self.driver.request_fn()

    def next_request(self) -> Request | None:
        """``elv_next_request`` + ``blkdev_dequeue_request``: the request the driver starts."""
        if self.plugged:
            return None
        elv = self.elevator
        rq = elv.next_req()
        if rq is None:
            return None
        rq.flags |= REQ_STARTED
        if self.last_merge is rq:
            self.last_merge = None
        elv.remove_req(rq)
        acct = self._acct
        acct.row[self._p_dispatch] += 1
        acct.ns += self._ns_dispatch
        return rq

    def end_request(self, rq: Request) -> None:
        """The driver finished ``rq`` (its bios already ended): free it."""
        rq.completed += 1
        self.put_request(rq)

    def figures(self) -> dict[str, Any]:
        out = dict(self.stats)
        out.update({f"elevator.{k}": v for k, v in self.elevator.figures().items()})
        return out

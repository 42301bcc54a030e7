"""Disks: the service-time models and the driver that serves a request queue one request at a time.

**Ruemmler & Wilkes** ("An introduction to disk drive modeling", IEEE Computer 27(3):17-29, 1994):
service = controller overhead + seek + rotational latency + transfer, plus a head switch for each
track boundary crossed and a write settle after a seek for writes.  Seek over ``d`` cylinders is
``a + b*sqrt(d)`` below ``boundary`` cylinders and ``c + e*d`` above.  The platter turns
continuously: the rotational wait is the angle from where the head lands to the request's first
sector, from the absolute simulated time, so it is deterministic and depends on the order requests
are served.  Logical blocks map to cylinders, then heads, then sectors; every track has the same
number of sectors (no zones: a simplification).  Presets:

* ``ata-7200`` (default): a 7200 rpm ATA disk of 2002.  Seek ``1.14 + 0.0608*sqrt(d)`` ms below
  12,000 cylinders, ``6.00 + 0.000150*d`` above, 60,000 cylinders: 1.2 ms one cylinder, 15 ms full
  stroke, 8.5 ms mean (a fit to the typical figures of IBM Deskstar 60GXP/75GXP and Hitachi 7K250
  datasheets, 2000-2004: full stroke 14.7-15.7 ms, average 8.5 ms); 8.33 ms a revolution (4.17 ms
  mean rotational latency); 2 heads, sectors per track from the capacity (36 GiB: 629, 38.6 MB/s,
  inside the 30-50 MB/s of such disks); head switch 1.2 ms (Deskstar 75GXP datasheet); write
  settle 1.0 ms (75GXP full stroke write 15.7 ms less read 14.7 ms); controller overhead 0.3 ms
  (estimate).
* ``hp97560``: Ruemmler & Wilkes's HP 97560: ``3.24 + 0.400*sqrt(d)`` ms below 383 cylinders,
  ``8.00 + 0.008*d`` above; 1962 cylinders, 19 heads, 72 sectors per track, 4002 rpm; controller
  overhead 2.2 ms and track switch 1.6 ms (from simulators using the paper's model, not checked
  against the paper).  1.37 GB.
* ``seekfree``: the ``ata-7200`` disk's overhead and media rate with no seek and no rotation -- to
  show what the elevators' ordering is worth.
* ``ramdisk``: 2.5's ``rd.c``, no queue (:mod:`mmframe.block.ramdisk`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import attrs

from mmframe.block.bio import WRITE, Bio
from mmframe.block.blkdev import Request
from mmframe.block.bounce import blk_queue_bounce
from mmframe.block.device import BlockDevice
from mmframe.block.ll_rw_blk import RequestQueue

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.block.genhd import BlockLayer

MS = 1_000_000.0  # ns


@attrs.frozen(slots=True)
class DiskPreset:
    """A disk's mechanical parameters (times in ms)."""

    name: str
    rpm: float
    cylinders: int
    heads: int
    sectors_per_track: int  # 0: from the capacity
    a: float
    b: float
    boundary: int
    c: float
    e: float
    head_switch: float
    write_settle: float
    overhead: float


PRESETS = {
    "ata-7200": DiskPreset("ata-7200", 7200, 60_000, 2, 0, 1.14, 0.0608, 12_000, 6.00, 0.000150, 1.2, 1.0, 0.3),
    "hp97560": DiskPreset("hp97560", 4002, 1962, 19, 72, 3.24, 0.400, 383, 8.00, 0.008, 1.6, 0.0, 2.2),
}
MODELS = ("ata-7200", "hp97560", "seekfree", "ramdisk")


class RuemmlerWilkes:
    """Service time of one request (ns) on a disk with a moving head and a turning platter."""

    seeks = True

    def __init__(self, p: DiskPreset, nr_sectors: int) -> None:
        self.p = p
        self.spt = p.sectors_per_track or -(-nr_sectors // (p.cylinders * p.heads))
        self.capacity = self.spt * p.cylinders * p.heads
        self.rev = 60_000.0 / p.rpm * MS
        self.per_cyl = self.spt * p.heads
        self.cyl = 0
        self.head = 0
        self._a, self._b, self._c, self._e = p.a * MS, p.b * MS, p.c * MS, p.e * MS
        self._switch, self._settle, self._over = p.head_switch * MS, p.write_settle * MS, p.overhead * MS

    def seek_time(self, d: int) -> float:
        if d == 0:
            return 0.0
        return self._a + self._b * math.sqrt(d) if d < self.p.boundary else self._c + self._e * d

    def worst_case(self, nsect: int) -> float:
        """An upper bound of one request's service time (ns): full stroke, a full turn, the
        transfer and its switches."""
        tracks = nsect // self.spt + 2
        return (self._over + self.seek_time(self.p.cylinders) + self._settle + self.rev
                + tracks * (self.rev + self._switch))

    def service(self, sector: int, nsect: int, rw: int, t: float) -> float:
        spt = self.spt
        cyl, rest = divmod(sector, self.per_cyl)
        head, pos = divmod(rest, spt)
        d = cyl - self.cyl if cyl >= self.cyl else self.cyl - cyl
        if d == 0:
            seek = self._switch if head != self.head else 0.0
        elif d < self.p.boundary:
            seek = self._a + self._b * math.sqrt(d)
        else:
            seek = self._c + self._e * d
        if rw == WRITE and d:
            seek += self._settle
        arrive = t + self._over + seek
        rev = self.rev
        rot = ((pos / spt - (arrive / rev) % 1.0) % 1.0) * rev
        crossings = (pos + nsect - 1) // spt
        xfer = nsect / spt * rev + crossings * self._switch
        end = sector + nsect - 1
        self.cyl, rest = divmod(end, self.per_cyl)
        self.head = rest // spt
        return self._over + seek + rot + xfer


class SeekFree:
    """The ``ata-7200`` disk's overhead and media rate, without seeks or rotation."""

    seeks = False

    def __init__(self, p: DiskPreset, nr_sectors: int) -> None:
        rw = RuemmlerWilkes(p, nr_sectors)
        self.capacity = rw.capacity
        self._over = rw._over
        self._per_sector = rw.rev / rw.spt

    def worst_case(self, nsect: int) -> float:
        return self._over + nsect * self._per_sector

    def service(self, sector: int, nsect: int, rw: int, t: float) -> float:
        return self._over + nsect * self._per_sector


class Disk(BlockDevice):
    """A disk driver with a request queue: it starts the elevator's next request whenever it is
    idle and the queue is unplugged, and completes it after the model's service time (an event on
    the machine's engine); data moves at completion."""

    def __init__(self, layer: BlockLayer, name: str, nr_sectors: int, model: Any, queue: RequestQueue) -> None:
        super().__init__(layer, name, nr_sectors)
        self.model, self.queue = model, queue
        queue.driver = self
        self.busy: Request | None = None
        self.busy_until = 0.0
        self.free_at = 0.0
        self.token = 0
        self.service_ns = 0.0
        self.completed: list[int] = []  # request seqs, in completion order (tests)
        self.keep_completed = True

    def submit_bio(self, bio: Bio) -> None:
        """``generic_make_request``: bounce, then ``__make_request``."""
        if bio.sector < 0 or bio.sector + (bio.size >> 9) > self.nr_sectors or bio.size & 511 or not bio.size:
            self.check_bio(bio)  # raises, naming the device
        q = self.queue
        if q.bounce_pfn is not None:
            blk_queue_bounce(q, bio)
        q.make_request(bio)

    def request_fn(self) -> None:
        """The driver's ``request_fn``: start the next request if idle."""
        if self.busy is not None:
            return
        rq = self.queue.next_request()
        if rq is None:
            return
        t = self.layer.now()
        if self.free_at > t:
            t = self.free_at
        dur = self.model.service(rq.sector, rq.nr_sectors, rq.rw, t)
        self.service_ns += dur
        self.busy = rq
        rq.dispatched_at = t
        self.busy_until = t + dur
        self.token += 1
        self.layer.engine.at(self.busy_until, self._complete_event, self.token)

    def _complete_event(self, token: int) -> None:
        if token == self.token and self.busy is not None:
            self._complete()

    def _complete(self) -> None:
        rq, t = self.busy, self.busy_until
        assert rq is not None
        self.busy = None
        self.free_at = t
        layer = self.layer
        acct = layer.m.acct
        prev_t, prev_row, prev_ns = layer.irq_t, acct.row, acct.ns  # interrupt context (see BlockLayer.irq)
        layer.irq_t, acct.row = t, layer._irq_row
        try:
            bio = rq.bio
            sector = rq.sector
            while bio is not None:  # the request's sectors, segment after segment
                nxt = bio.next
                self.transfer(bio, sector)
                sector += bio.size >> 9
                layer.end_bio(bio, 0, t)
                bio = nxt
            self.ios += 1
            self.completions += 1
            if self.keep_completed:
                self.completed.append(rq.seq)
            self.queue.end_request(rq)
            self.request_fn()
        finally:
            layer.irq_t, acct.row, acct.ns = prev_t, prev_row, prev_ns

    def run_until(self, bio: Bio) -> None:
        """Serve requests ahead of simulated time until ``bio`` has completed."""
        q = self.queue
        q.unplug()
        while not bio.done:
            if self.busy is None:
                self.request_fn()
                if self.busy is None:
                    raise RuntimeError(f"{self.name}: {bio!r} is neither queued nor in service")
            self._complete()

    def idle(self) -> bool:
        return self.busy is None and self.queue.elevator.queue_empty()

    def figures(self) -> dict[str, Any]:
        out = super().figures()
        out["service_ms"] = self.service_ns / MS
        out.update({f"queue.{k}": v for k, v in self.queue.figures().items()})
        return out

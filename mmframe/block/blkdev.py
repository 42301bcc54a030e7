"""``struct request`` and the queue limits of 2.5.49's ``include/linux/blkdev.h``.

A request is a run of contiguous sectors in one direction, made of one or more bios
(``bio`` .. ``biotail`` through ``Bio.next``).  The fields an elevator may read are documented on
:class:`Request`; an elevator may keep its own data in ``elevator_private`` and ``elevator_key``.
"""

from __future__ import annotations

from typing import Any

# REQ_* flag bits (2.5.49 blkdev.h: __REQ_RW, __REQ_RW_AHEAD, __REQ_SOFTBARRIER, __REQ_HARDBARRIER,
# __REQ_CMD, __REQ_NOMERGE, __REQ_STARTED ...)
REQ_RW = 1 << 0
REQ_RW_AHEAD = 1 << 1
REQ_SOFTBARRIER = 1 << 2
REQ_HARDBARRIER = 1 << 3
REQ_CMD = 1 << 4
REQ_NOMERGE = 1 << 5
REQ_STARTED = 1 << 6
REQ_BARRIER = REQ_SOFTBARRIER | REQ_HARDBARRIER
RQ_NOMERGE_FLAGS = REQ_NOMERGE | REQ_STARTED | REQ_BARRIER  # rq_mergeable() is false with any

# queue limits (blkdev.h of 2.5.49)
MAX_SECTORS = 255
MAX_PHYS_SEGMENTS = 128
MAX_HW_SEGMENTS = 128
MAX_SEGMENT_SIZE = 65536


class Request:
    """``struct request``.  Fields an elevator may read:

    ``sector``, ``nr_sectors`` (current extent), ``end_sector`` (``sector + nr_sectors``), ``rw``
    (0 read, 1 write: ``rq_data_dir``), ``flags`` (REQ_*), ``start_time`` (ns it was made: a FIFO's
    clock), ``bio``/``biotail``, ``nr_phys_segments``/``nr_hw_segments``, ``seq`` (allocation
    order, unique).  An elevator may write ``elevator_private`` and ``elevator_key`` (its own data,
    e.g. an expiry time and a hash key) and nothing else.
    """

    __slots__ = ("sector", "nr_sectors", "rw", "flags", "bio", "biotail", "nr_phys_segments",
                 "nr_hw_segments", "start_time", "elevator_private", "elevator_key", "seq", "completed",
                 "dispatched_at", "q")

    def __init__(self) -> None:
        self.sector = 0
        self.nr_sectors = 0
        self.rw = 0
        self.flags = 0
        self.bio: Any = None
        self.biotail: Any = None
        self.nr_phys_segments = 0
        self.nr_hw_segments = 0
        self.start_time = 0.0
        self.elevator_private: Any = None
        self.elevator_key: Any = None
        self.seq = 0
        self.completed = 0
        self.dispatched_at = 0.0
        self.q: Any = None

    @property
    def end_sector(self) -> int:
        return self.sector + self.nr_sectors

    def bios(self) -> list[Any]:
        out, b = [], self.bio
        while b is not None:
            out.append(b)
            b = b.next
        return out

    def __repr__(self) -> str:
        return f"<rq#{self.seq} {'RW'[self.rw]} {self.sector}+{self.nr_sectors}>"


def rq_mergeable(rq: Request) -> bool:
    """``rq_mergeable``: a file-system request not marked no-merge, started or barrier."""
    return not rq.flags & RQ_NOMERGE_FLAGS and rq.flags & REQ_CMD != 0

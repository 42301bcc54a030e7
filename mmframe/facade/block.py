"""The block half of the facade: what an elevator (I/O scheduler) plugin may use.

An elevator is a class derived from :class:`Elevator` (the core's base class, with the 2.5.49
operations to override and the helpers ``try_merge``, ``try_last_merge`` and ``step``), returned
by the ``mmframe_elevators`` hook; docs/block.md states the contract.  What it receives:

* :class:`BlockQueue` -- the request queue it serves (``init(q, options)``, ``self.q``);
* :class:`BlockRequest` -- a request (``struct request``): what it may read, and the two fields it
  may write (``elevator_private``, ``elevator_key``);
* :class:`BlockBio` -- a bio offered for merging.

Sort lists: :class:`SortList` (a ``list_head`` chain with ``former``/``latter`` for the core) and
:class:`KeyedSortList` (the same, with the bisection of 2.5's ``bio_rq_in_between`` scan);
:func:`bio_rq_in_between` itself.  Insertion points: ``None``, a request (after it) or
:data:`INSERT_FRONT`.  Merge results ``ELEVATOR_NO_MERGE``/``FRONT_MERGE``/``BACK_MERGE``; request
flags ``REQ_*`` (2.5.49's ``blkdev.h``).

Costs: the core charges what it does (a merge, a request allocation, an insertion, a dispatch, a
completion: ``blk_bio_merge``, ``blk_get_request``, ``elv_add_request``, ``elv_dispatch``,
``blk_end_bio``); an elevator reports its own steps with ``Elevator.step(kind, n)``, each kind
mapped in its ``steps`` to a cost entry (its plugin's own, ``<plugin>.<x>``, or a core one such as
``elv_list_entry``).
"""

from __future__ import annotations

from typing import Any, Protocol

from mmframe.block.blkdev import (MAX_HW_SEGMENTS, MAX_PHYS_SEGMENTS, MAX_SECTORS, MAX_SEGMENT_SIZE, REQ_BARRIER,
                                  REQ_CMD, REQ_HARDBARRIER, REQ_NOMERGE, REQ_SOFTBARRIER, REQ_STARTED)
from mmframe.block.elevator import (ELEVATOR_BACK_MERGE, ELEVATOR_FRONT_MERGE, ELEVATOR_NO_MERGE, INSERT_FRONT,
                                    Elevator, KeyedSortList, SortList, bio_rq_in_between)

__all__ = [
    "Elevator", "SortList", "KeyedSortList", "bio_rq_in_between", "INSERT_FRONT",
    "ELEVATOR_NO_MERGE", "ELEVATOR_FRONT_MERGE", "ELEVATOR_BACK_MERGE",
    "REQ_SOFTBARRIER", "REQ_HARDBARRIER", "REQ_BARRIER", "REQ_CMD", "REQ_NOMERGE", "REQ_STARTED",
    "MAX_SECTORS", "MAX_PHYS_SEGMENTS", "MAX_HW_SEGMENTS", "MAX_SEGMENT_SIZE",
    "BlockQueue", "BlockRequest", "BlockBio",
]


class BlockBio(Protocol):
    """A bio offered to ``merge``: read only."""

    sector: int  # first 512-byte sector
    size: int  # bytes
    rw: int  # 0 read, 1 write
    flags: int  # BIO_RW_AHEAD (1 << 1), BIO_RW_BARRIER (1 << 2)

    @property
    def nr_sectors(self) -> int:
        """``bio_sectors(bio)``."""


class BlockRequest(Protocol):
    """``struct request``: read these; write only ``elevator_private`` and ``elevator_key``."""

    sector: int
    nr_sectors: int
    rw: int  # rq_data_dir: 0 read, 1 write
    flags: int  # REQ_*
    start_time: float  # ns it was queued (a FIFO's clock)
    nr_phys_segments: int
    nr_hw_segments: int
    seq: int  # allocation order, unique while it lives
    elevator_private: Any  # the elevator's own
    elevator_key: Any  # the elevator's own

    @property
    def end_sector(self) -> int:
        """``sector + nr_sectors``."""


class BlockQueue(Protocol):
    """The request queue an elevator serves (``request_queue_t``)."""

    name: str  # the disk's name ([block.<name>])
    last_merge: Any  # the one-shot merge hint (a request or None): read and set it as 2.5.49's elevators do
    nr_requests: int  # requests per direction

    def now(self) -> float:
        """Simulated ns of the calling context (submission or interrupt): expiries are measured on it."""

    def set_depth_cap(self, cap: int) -> None:
        """2.5's ``queue_nr_requests`` rule ((RAM KiB >> 9) & ~7, 16..128) with ``cap`` instead of
        128, unless the queue has its own ``nr_requests``; from ``init`` only (the -mm rbtree patch)."""



# --- the core deadline, to derive from ---------------------------------------------------------------

from mmframe.block.bio import READ, WRITE  # noqa: E402
from mmframe.block.blkdev import rq_mergeable  # noqa: E402
from mmframe.block.deadline import Deadline  # noqa: E402

__all__ += ["Deadline", "rq_mergeable", "READ", "WRITE"]

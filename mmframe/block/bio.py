"""``struct bio`` (2.5's ``include/linux/bio.h``): one I/O of contiguous sectors made of segments
``(pfn, offset, length)`` in memory, with a completion callback.

The block layer builds requests from bios (:mod:`mmframe.block.ll_rw_blk`).  A bio is completed
exactly once: ``end_io(bio, error)`` runs at its completion time (``done_at``, ns of simulated
time), after the data has moved between the device and its pages.
"""

from __future__ import annotations

from typing import Any, Callable

READ, WRITE = 0, 1
SECTOR_SHIFT = 9
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_SECTORS = PAGE_SIZE >> SECTOR_SHIFT
BIO_MAX_PAGES = 256  # bio.h: BIO_MAX_PAGES

# bi_rw bits (bio.h of 2.5.49): BIO_RW = 0 (the direction), BIO_RW_AHEAD = 1, BIO_RW_BARRIER = 2
BIO_RW_AHEAD, BIO_RW_BARRIER = 1 << 1, 1 << 2


class Bio:
    """One bio: ``sector`` (512-byte units), ``rw`` (READ/WRITE), ``vecs`` (``bi_io_vec``: tuples
    ``(pfn, offset, length)``, offsets and lengths multiples of 512), ``size`` in bytes.

    ``flags`` holds BIO_RW_AHEAD / BIO_RW_BARRIER; ``end_io(bio, err)`` is called once on
    completion; ``private`` is the submitter's.  ``bounced`` lists ``(orig_pfn, bounce_pfn)`` of
    highmem pages the block layer bounced (:mod:`mmframe.block.bounce`).  ``owner`` names the
    submitter (a task lineage or a scenario) for the completion log; ``data`` holds the sector
    values moved, once done (what was read or written).
    """

    __slots__ = ("sector", "rw", "vecs", "size", "flags", "end_io", "private", "next", "done", "done_at",
                 "error", "bounced", "owner", "data", "submitted_at", "phys_segments", "pinned")

    def __init__(self, rw: int, sector: int, vecs: list[tuple[int, int, int]],
                 end_io: Callable[[Bio, int], None] | None = None, private: Any = None, flags: int = 0,
                 owner: str = "") -> None:
        self.rw, self.sector, self.vecs = rw, sector, vecs
        size = 0
        for _, _, ln in vecs:
            size += ln
        self.size = size
        self.flags = flags
        self.end_io, self.private, self.owner = end_io, private, owner
        self.next: Bio | None = None  # bi_next: the request's bio chain
        self.done = 0  # completions seen (must end at exactly 1)
        self.done_at = -1.0
        self.error = 0
        self.bounced: list[tuple[int, int]] | None = None
        self.data: list[Any] | None = None
        self.submitted_at = 0.0
        self.phys_segments = -1  # computed by the queue it is submitted to (bio_phys_segments)
        self.pinned = False

    @property
    def nr_sectors(self) -> int:
        """``bio_sectors(bio)``."""
        return self.size >> SECTOR_SHIFT

    @property
    def end_sector(self) -> int:
        return self.sector + (self.size >> SECTOR_SHIFT)

    def __repr__(self) -> str:
        return f"<bio {'RW'[self.rw]} {self.sector}+{self.size >> SECTOR_SHIFT}>"


def bio_pages(rw: int, sector: int, pfns: list[int], end_io: Callable[[Bio, int], None] | None = None,
              private: Any = None, flags: int = 0, owner: str = "") -> Bio:
    """A bio of whole pages starting at ``sector`` (the file system's and readahead's shape)."""
    return Bio(rw, sector, [(p, 0, PAGE_SIZE) for p in pfns], end_io, private, flags, owner)


def bio_phys_segments(vecs: list[tuple[int, int, int]], max_segment_size: int) -> int:
    """Physical segments of a vector (``blk_recount_segments``): runs of physically contiguous
    bytes (``BIOVEC_PHYS_MERGEABLE``), each at most ``max_segment_size``.  O(len(vecs))."""
    nr = 0
    end = -1
    seg = 0
    for pfn, off, ln in vecs:
        start = (pfn << PAGE_SHIFT) + off
        if start == end and seg + ln <= max_segment_size:
            seg += ln
        else:
            nr += 1
            seg = ln
        end = start + ln
    return nr


def phys_contig(a: Bio, b: Bio, max_segment_size: int) -> bool:
    """``blk_phys_contig_segment``: does ``a``'s last segment run on into ``b``'s first?  (Used to
    count one segment less when two requests merge.)"""
    pfn, off, ln = a.vecs[-1]
    pfn2, off2, ln2 = b.vecs[0]
    return (pfn << PAGE_SHIFT) + off + ln == (pfn2 << PAGE_SHIFT) + off2 and ln + ln2 <= max_segment_size

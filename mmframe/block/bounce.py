"""Highmem bounce buffers (2.5.49's ``mm/highmem.c``: ``blk_queue_bounce``).

A device that cannot reach every page by DMA declares a bounce limit (``blk_queue_bounce_limit``:
``BLK_BOUNCE_HIGH``, the default, is the last lowmem pfn).  A bio page above the queue's bounce
pfn is replaced by a lowmem page (``GFP_NOIO``): for a write its content is copied there first; for
a read it is copied back to the original page when the I/O completes; then the bounce page is
freed.  Each bounced page is counted and charged a ``copy_page`` and a ``kmap_atomic``.  2.5 clones
the bio; the model swaps the pages in place and restores them at completion, which is the same
I/O.  A bounce page that cannot be allocated (2.5 draws on a 64-page emergency pool) is counted in
``bounce_failed`` and the page goes unbounced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmframe.block.bio import READ, WRITE, Bio
from mmframe.block.content import page_to_sectors, sectors_to_page
from mmframe.mm.page import GFP_NOIO

if TYPE_CHECKING:  # pragma: no cover
    from mmframe.block.ll_rw_blk import RequestQueue


def copy_page_content(vm: Any, src: int, dst: int) -> None:
    """A page's content copied to another page, through the one page<->sector conversion pair."""
    sectors_to_page(vm, dst, page_to_sectors(vm, src))


def blk_queue_bounce(q: RequestQueue, bio: Bio) -> None:
    """Bounce the pages of ``bio`` above ``q.bounce_pfn``."""
    limit = q.bounce_pfn
    if limit is None:
        return
    vecs = bio.vecs
    for pfn, _, _ in vecs:
        if pfn > limit:
            break
    else:
        return
    m = q.layer.m
    vm, acct, P = m.mm, m.acct, m.P
    bounced = []
    for i, (pfn, off, ln) in enumerate(vecs):
        if pfn <= limit:
            continue
        new = m.alloc_pages(GFP_NOIO, 0)
        if new < 0:
            q.stats["bounce_failed"] += 1
            continue
        if bio.rw == WRITE:
            copy_page_content(vm, pfn, new)
            acct.charge(P.copy_page)
            acct.charge(P.kmap_atomic)
        vecs[i] = (new, off, ln)
        bounced.append((i, pfn, new))
        q.stats["bounced_pages"] += 1
    if bounced:
        bio.bounced = bounced


def bounce_end_io(layer: Any, bio: Bio) -> None:
    """The bounced I/O is done: copy read data back to the original pages, free the bounce pages."""
    m = layer.m
    vm, acct, P = m.mm, m.acct, m.P
    for i, orig, new in bio.bounced:
        _, off, ln = bio.vecs[i]
        if bio.rw == READ:  # only the segment: the rest of the original page is not the I/O's
            sectors_to_page(vm, orig, page_to_sectors(vm, new, off, ln >> 9), off)
            acct.charge(P.copy_page)
            acct.charge(P.kmap_atomic)
        bio.vecs[i] = (orig, off, ln)
        vm.put_page(new)
    bio.bounced = None

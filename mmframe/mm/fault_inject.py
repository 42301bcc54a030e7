"""Allocator fault injection (an mmframe tool, not a 2.5 feature; later kernels grew
``CONFIG_FAIL_PAGE_ALLOC``, 2.6.20): fail the Nth allocation that a match selects (atomic ones, any,
or those the core makes inside one reservation site), or every allocation made while fewer than a
given number of pages are free, so the period's failure paths (the pte_chain oops, the radix-tree
-ENOMEM, the out-of-memory fault) are exercised on purpose.  ``[machine] fail_nth``, ``fail_match``,
``fail_below_free`` (docs/reserve.md).

Zero cost when off: nothing is installed and ``PageAllocator._alloc_pages`` (what the core's
allocation policy calls) stays the plain method; when on, :func:`install` shadows it and its public
alias ``alloc_pages`` on the instance with a wrapper, so plugins' allocations are injected too.  A
page a reservation pool hands out never reaches the allocator, so it is never injected.
"""

from __future__ import annotations

from typing import Any

from mmframe.mm.page import __GFP_WAIT

GFP_WAIT_ = __GFP_WAIT
SITES = ("pte_chain_alloc", "pte_alloc_map", "radix_tree_insert")  # the core's reservation sites
MATCHES = ("atomic", "any", *SITES)


class FaultInject:
    """The injection state of one allocator: settings, the open site, and what it did."""

    __slots__ = ("nth", "match", "below_free", "seen", "injected", "log", "site")

    def __init__(self, nth: int = 0, match: str = "atomic", below_free: int = 0) -> None:
        if match not in MATCHES:
            raise ValueError(f"fail_match {match!r}: one of {', '.join(MATCHES)}")
        self.nth, self.match, self.below_free = nth, match, below_free
        self.seen = 0  # allocations the match selected
        self.injected = 0  # allocations failed on purpose
        self.log: list[tuple[int, int, str | None]] = []  # (gfp, order, site) of each injected failure
        self.site: str | None = None  # the reservation site open now (Machine.reserve_enter)

    def selects(self, gfp: int) -> bool:
        m = self.match
        if m == "atomic":
            return not gfp & GFP_WAIT_
        return m == "any" or m == self.site


def install(pa: Any, nth: int = 0, match: str = "atomic", below_free: int = 0) -> FaultInject | None:
    """Wrap ``pa.alloc_pages`` (a :class:`~mmframe.mm.page_alloc.PageAllocator`) with the
    injection; None (nothing installed) when ``nth`` and ``below_free`` are both 0."""
    if not nth and not below_free:
        return None
    fi = FaultInject(nth, match, below_free)
    real = type(pa)._alloc_pages.__get__(pa)

    def alloc_pages(gfp: int, order: int, cpu: int, memalloc: bool = False) -> int:
        fail = False
        if fi.nth and fi.selects(gfp):
            fi.seen += 1
            fail = fi.seen == fi.nth
        if below_free and pa.nr_free_pages() < below_free:
            fail = True
        if fail:
            fi.injected += 1
            fi.log.append((gfp, order, fi.site))
            pa.events.append(("injected", gfp, order))
            return -1
        return real(gfp, order, cpu, memalloc)

    pa._alloc_pages = pa.alloc_pages = alloc_pages
    pa.fault_inject = fi
    return fi

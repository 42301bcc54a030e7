"""reserve: Andrew Morton's page reservation API (2.5.40-mm2 .. 2.5.50-mm; dropped in 2.5.51-mm1).

akpm, "2.5.40-mm2" (6 Oct 2002, <3DA0854E.CF9080D7@digeo.com>): "Started work on a page
reservation API to solve the problem of ENOMEM during radix-tree and pte_chain allocations."  Its
use, as he set it out in "Re: 2.5.47-mm2" (linux-mm, 13 Nov 2002, <3DD2C6CC.F831A6F2@digeo.com>):
``reserve_local_pages(GFP_KERNEL, 2)``, take the spinlock, allocate (``pte_alloc_map``: "That's
one", ``pte_chain_alloc``: "That's two") atomically with ``__GFP_RESERVE``, unlock,
``release_local_pages(GFP_KERNEL, 2)``; the pools are per CPU ("Because the reserved pages are
per-cpu"), of order-0 pages, and "Only allocations which use __GFP_RESERVE may dip into those pages".

Here: per-CPU pools filled through the allocation policy with the caller's gfp; the allocation hook
hands a pool page to an order-0 ``__GFP_RESERVE`` allocation on that CPU; the reservation hooks
(contract 1.12) reserve before each site's lock and release after it.  Programs and scenarios reach
the API through ``mmframe.facade.reserve_local_pages``/``release_local_pages``.

The patch text itself was not found; what the sources leave open is decided here and listed as
assumptions in :data:`ASSUMPTIONS` (``mmframe plugins`` prints them as the ``assumptions`` option's
help; docs/reserve.md).
"""

from __future__ import annotations

from typing import Any

from mmframe.facade import (ENOMEM, GFP_ATOMIC, GFP_KERNEL, MachineView, Option, ReserveError, __GFP_HIGHMEM,
                            __GFP_RESERVE, hookimpl)

NAME = "reserve"
GFP_HIGHMEM_ = __GFP_HIGHMEM  # Python mangles ``__names`` inside class bodies

ASSUMPTIONS = (
    "A1 a reservation that cannot be filled gives back the pages it got and returns -ENOMEM "
    "(all or nothing; the patch's return value is not known)",
    "A2 reservations nest: each CPU counts pages reserved, the pool holds at most that many, a "
    "release lowers the count and gives back pool pages above it",
    "A3 a pool page remembers whether its reservation's gfp allowed highmem; a __GFP_RESERVE request "
    "without __GFP_HIGHMEM takes only pages reserved without it, one with it prefers those reserved with "
    "it (a CONFIG_HIGHPTE PTE page stays in highmem)",
    "A4 under a reservation a site's allocations are GFP_ATOMIC|__GFP_RESERVE (akpm: 'They must be "
    "atomic'), and pte_alloc_map keeps page_table_lock instead of dropping it to sleep",
    "A5 a failed reservation at a site is counted and the site's allocation goes on atomically (it "
    "may then fail as 2.5.49's would)",
)


class Pools:
    """Per-CPU reservation pools of one machine: ``pool[cpu]`` the pages set aside as ``(pfn,
    highmem_ok)`` (A3), ``reserved[cpu]``
    the pages outstanding reservations on that CPU asked for.  Every pool page holds one reference
    (allocated, not free), so the allocator's checker sees pool pages as allocated."""

    def __init__(self, machine: MachineView, ncpus: int) -> None:
        self.machine = machine
        self.pool: list[list[int]] = [[] for _ in range(ncpus)]
        self.reserved = [0] * ncpus
        self.site_stack: list[list[int]] = [[] for _ in range(ncpus)]  # pages each open site reserved
        self.failed = 0  # reservations that could not be filled (returned -ENOMEM)
        self.reservations = 0
        self.taken = 0  # __GFP_RESERVE allocations served from a pool
        self.missed = 0  # __GFP_RESERVE allocations that found their CPU's pool empty
        self.held_sum = 0  # pool pages summed over samples (one sample per reservation)
        self.samples = 0
        self.peak = 0

    def held(self) -> int:
        return sum(len(p) for p in self.pool)

    def reserve_local_pages(self, cpu: int, gfp: int, nr: int, caller: str) -> int:
        if nr < 0:
            raise ReserveError(f"{caller}: reserve_local_pages of {nr} pages")
        pool, m = self.pool[cpu], self.machine
        want = self.reserved[cpu] + nr
        high = bool(gfp & GFP_HIGHMEM_)
        got: list[tuple[int, bool]] = []
        while len(pool) + len(got) < want:
            pfn = m.alloc_pages(gfp, 0)
            if pfn < 0:
                for p, _ in got:  # A1: all or nothing
                    m.free_pages(p, 0)
                self.failed += 1
                return -ENOMEM
            got.append((pfn, high))
        pool.extend(got)
        self.reserved[cpu] = want
        self.reservations += 1
        held = self.held()
        self.held_sum += held
        self.samples += 1
        self.peak = max(self.peak, held)
        return 0

    def release_local_pages(self, cpu: int, gfp: int, nr: int, caller: str) -> None:
        left = self.reserved[cpu] - nr
        if nr < 0 or left < 0:
            raise ReserveError(f"{caller}: release_local_pages({nr}) on CPU {cpu} with only "
                               f"{self.reserved[cpu]} pages reserved there")
        self.reserved[cpu] = left
        pool = self.pool[cpu]
        while len(pool) > left:
            self.machine.free_pages(pool.pop()[0], 0)

    def take(self, cpu: int, gfp: int) -> int | None:
        """A pool page for a ``__GFP_RESERVE`` allocation of ``gfp`` on ``cpu`` (A3), or None.
        O(pool): pools hold a few pages."""
        pool = self.pool[cpu]
        want_high = bool(gfp & GFP_HIGHMEM_)
        pick = -1
        for i in range(len(pool) - 1, -1, -1):
            if pool[i][1] == want_high:
                pick = i
                break
        if pick < 0 and want_high and pool:
            pick = len(pool) - 1  # a lowmem page serves a highmem-capable request
        if pick < 0:
            self.missed += 1
            return None
        self.taken += 1
        return pool.pop(pick)[0]

    def check(self) -> None:
        """Every pool page is distinct, in no other pool, and no pool exceeds its reservation."""
        seen: set[int] = set()
        for cpu, pool in enumerate(self.pool):
            assert len(pool) <= self.reserved[cpu], f"CPU {cpu}: pool {len(pool)} > reserved {self.reserved[cpu]}"
            for pfn, _ in pool:
                assert pfn not in seen, f"page {pfn} is in a reservation pool twice"
                seen.add(pfn)


@hookimpl
def mmframe_options() -> list[Option]:
    return [
        Option("sites", "bool", True, "reserve at the core's reservation sites (pte_chain_alloc, pte_alloc_map, "
               "radix_tree_insert); false: only programs' own reserve_local_pages calls"),
        Option("assumptions", "str", "", "documented, not settable: " + "; ".join(ASSUMPTIONS)),
    ]


@hookimpl
def mmframe_configure(machine: MachineView, options: dict[str, Any]) -> None:
    pools = Pools(machine, NR_CPUS)
    machine.plugin_state[NAME] = {"sites": options["sites"], "pools": pools}
    machine.plugin_state["reservations"] = pools


NR_CPUS = 32  # i386 2.5: a pool per possible CPU (an empty one costs nothing)


@hookimpl
def mmframe_report(machine: MachineView, figures: dict[str, Any]) -> None:
    p = machine.plugin_state[NAME]["pools"]
    figures.update({f"{NAME}.reservations": p.reservations, f"{NAME}.failed": p.failed,
                    f"{NAME}.taken": p.taken, f"{NAME}.missed": p.missed,
                    f"{NAME}.held_mean": p.held_sum / p.samples if p.samples else 0.0,
                    f"{NAME}.held_peak": p.peak})


@hookimpl
def mmframe_alloc_pages(alloc: Any, gfp_mask: int, order: int, cpu: int) -> int | None:
    if not gfp_mask & __GFP_RESERVE or order:
        return None
    return alloc.plugin_state[NAME]["pools"].take(cpu, gfp_mask)


@hookimpl
def mmframe_reserve_enter(alloc: Any, site: str, gfp_mask: int, nr_pages: int, cpu: int) -> int | None:
    st = alloc.plugin_state[NAME]
    if not st["sites"]:
        return None
    pools = st["pools"]
    ok = pools.reserve_local_pages(cpu, GFP_KERNEL | (gfp_mask & __GFP_HIGHMEM), nr_pages, site) == 0  # A5
    pools.site_stack[cpu].append(nr_pages if ok else 0)
    return GFP_ATOMIC | __GFP_RESERVE | (gfp_mask & __GFP_HIGHMEM)


@hookimpl
def mmframe_reserve_exit(alloc: Any, site: str, nr_pages: int, cpu: int) -> bool | None:
    pools = alloc.plugin_state[NAME]["pools"]
    pools.release_local_pages(cpu, GFP_KERNEL, pools.site_stack[cpu].pop(), site)
    return True

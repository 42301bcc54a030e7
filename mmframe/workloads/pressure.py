"""``pressure``: a workload that touches more memory than the machine has (``factor`` times its free
pages), so reclaim must swap: a parent writes private anonymous memory, forks children that read
all of it back while the parent rewrites it, and checks every page.  Reports what reclaim did:
pages scanned, reclaimed, swapped out and in, sharers visited per unmapped PTE and per unmapped page (more than one
when a PTE page is shared, under ``pt_shared``), simulated time in reclaim, and the run's time.

The scenario runs on a machine of its own size (``memory``, default 64 MiB: a 1 GiB machine would
take minutes to fill page by page) with a swap area (``swap``, default twice that) on a disk of its
own, unless the config already gives ``[vm] swap``.
"""

from __future__ import annotations

from typing import Any, Mapping

import attrs

from mmframe.options import Option
from mmframe.scenario import Figure, Scenario, ScenarioContext
from mmframe.usr import (MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, exit, fork, mmap, read,
                         wait, write)


def pressure_program(ctx: Any, pages: int, children: int) -> Any:
    base = yield mmap(0, pages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    if base < 0:
        return 100
    for i in range(pages):
        yield write(base + i * PAGE_SIZE, 7 * i + 1)
    for c in range(children):
        pid = yield fork()
        if pid == 0:
            bad = 0
            for i in range(c, pages, children):
                bad += (yield read(base + i * PAGE_SIZE)) != 7 * i + 1
            yield exit(min(bad, 255))
    bad = 0
    for i in range(pages):
        bad += (yield read(base + i * PAGE_SIZE)) != 7 * i + 1
    for _ in range(children):
        _, status = yield wait()
        bad += status >> 8
    return min(bad, 255)


def run(ctx: ScenarioContext) -> Mapping[str, Any]:
    p = ctx.params
    cfg = ctx.config
    vmc = cfg.vm if cfg.vm.swap else attrs.evolve(cfg.vm, swap=p["swap"] or 2 * p["memory"])
    cfg = attrs.evolve(cfg, vm=vmc, machine=attrs.evolve(cfg.machine, memory=p["memory"]))
    from mmframe.machine import Machine  # the run layer (as ScenarioContext.machine does)
    m = Machine(cfg)
    pages = int(m.pagealloc.nr_free_pages() * p["factor"])
    r = m.run(pressure_program, pages, p["children"])
    vs, sw = m.mm.vmscan, m.mm.swap
    c = vs.counts
    root = r.tasks["1"]
    figures = {
        "pages": pages,
        "wrong": root.status >> 8 if root.status is not None else -1,
        "pgscan": c["pgscan"],
        "pgsteal": c["pgsteal"],
        "swap_out": sw.counts["swap_out"],
        "swap_in": sw.counts["swap_in"],
        "sharers_per_unmap": c["sharers_visited"] / c["unmapped_ptes"] if c["unmapped_ptes"] else 0.0,
        "sharers_per_page": c["sharers_visited"] / c["unmapped_pages"] if c["unmapped_pages"] else 0.0,
        "reclaim_ms": vs.reclaim_ns / 1e6,
        "sim_ms": r.sim_ns / 1e6,
        "kswapd_runs": c["kswapd_runs"],
        "allocstall": c["allocstall"],
        "oom_kills": c["oom_kills"],
    }
    figures.update(m.close())
    return figures


SCENARIO = Scenario(
    name="pressure",
    help="touch factor x the machine's free memory (private anonymous, then forked readers): reclaim and swap",
    run=run,
    options=(
        Option("memory", "size", "64MiB", "the scenario machine's memory", minimum=16 << 20, maximum=4 << 30),
        Option("swap", "size", "0", "swap area when the config has none (0: twice memory)", minimum=0),
        Option("factor", "float", 1.5, "pages touched, as a multiple of the free pages at start", minimum=0.1,
               maximum=8.0),
        Option("children", "int", 2, "children forked to read the memory back", minimum=0, maximum=64),
    ),
    figures=(
        Figure("pages", "pages touched"),
        Figure("wrong", "pages read back wrong"),
        Figure("pgscan", "pages scanned"),
        Figure("pgsteal", "pages reclaimed"),
        Figure("swap_out", "pages swapped out"),
        Figure("swap_in", "pages swapped in"),
        Figure("sharers_per_unmap", "sharers visited per unmapped PTE"),
        Figure("sharers_per_page", "sharers visited per unmapped page"),
        Figure("reclaim_ms", "simulated time in reclaim", "ms"),
        Figure("sim_ms", "simulated time", "ms"),
        Figure("kswapd_runs", "kswapd rounds"),
        Figure("allocstall", "direct reclaims"),
        Figure("oom_kills", "OOM kills"),
    ),
    models="memory pressure past the machine's size: LRU aging through the reverse map, kswapd and direct "
           "reclaim, try_to_unmap (every sharer of a shared PTE page visited), swap-out and swap-in through "
           "a swap disk's queue; the data must read back unchanged",
    sources=("Linux 2.5.49 mm/vmscan.c (shrink_list, refill_inactive_zone, balance_pgdat), mm/rmap.c "
             "(page_referenced, try_to_unmap), mm/swapfile.c, mm/swap_state.c, mm/memory.c (do_swap_page)",),
)

"""``spawn``: a parent populates private memory, forks children that read, modify and sleep, and
reaps them: exercises fork (with replay), copy-on-write semantics, timers, wait and the scheduler."""

from __future__ import annotations

from typing import Any, Mapping

from mmframe.options import Option
from mmframe.scenario import Figure, Plot, Scenario, ScenarioContext
from mmframe.usr import (MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE, exit, fork, mmap,
                         read, sleep, wait, write)


def spawn_program(ctx: Any, children: int, pages: int, nap: int) -> Any:
    base = yield mmap(0, pages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(pages):
        yield write(base + i * PAGE_SIZE, i)
    for c in range(children):
        pid = yield fork()
        if pid == 0:
            for i in range(pages):
                v = yield read(base + i * PAGE_SIZE)
                yield write(base + i * PAGE_SIZE, v + c)
            yield sleep(nap * (1 + c % 3))
            yield exit(c & 0xFF)
    for _ in range(children):
        yield wait()


def run(ctx: ScenarioContext) -> Mapping[str, Any]:
    m = ctx.machine()
    p = ctx.params
    r = m.run(spawn_program, p["children"], p["pages"], p["sleep"])
    figures = {
        "sim_ms": r.sim_ns / 1e6,
        "syscalls": r.syscalls,
        "context_switches": r.context_switches,
        "tlb_flushes": r.tlb["switch_mm"] + r.tlb["flush_tlb_mm"] + r.tlb["flush_tlb_range"],
        "ipis": r.tlb["ipi"],
        "events": r.events,
    }
    figures.update(m.close())
    return figures


SCENARIO = Scenario(
    name="spawn",
    help="a parent forks children that modify private memory, sleep and exit; the parent reaps them",
    run=run,
    options=(
        Option("children", "int", 16, "children forked", minimum=1, maximum=4096),
        Option("pages", "int", 64, "private pages the parent writes and each child modifies", minimum=1,
               maximum=1 << 20),
        Option("sleep", "duration", "1ms", "base nap of each child"),
    ),
    figures=(
        Figure("sim_ms", "simulated time", "ms", "time"),
        Figure("syscalls", "system calls", "", "count"),
        Figure("context_switches", "context switches", "", "count"),
        Figure("tlb_flushes", "TLB flushes (full)", "", "count"),
        Figure("ipis", "TLB shootdown IPIs", "", "count"),
        Figure("events", "engine events", "", "count"),
    ),
    plot=Plot(("sim_ms", "tlb_flushes")),
    models="fork with copy-on-write of private anonymous memory, timers, wait and the scheduler: the "
           "everyday path every policy must leave semantically unchanged",
    sources=("Linux 2.5.49 kernel/fork.c (copy_mm, dup_mmap, copy_page_range), mm/memory.c (do_wp_page)",),
)

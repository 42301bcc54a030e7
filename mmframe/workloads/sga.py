"""``sga``: the 2002 lowmem problem of big database servers.  A parent maps a large shared memory
segment (the SGA), touches it, and forks children that each touch all of it, until an allocation
fails or the count is reached; run with HIGHPTE off and on.

Printed per column: how many children fit before the first allocation failure (an out-of-memory
or a failed atomic pte_chain/mm_chain allocation), lowmem in page tables and in pte_chains
(separately: HIGHPTE moves only the first out of lowmem), simulator wall time and the host's peak
memory.  The segment is SysV shm (``shmget``/``shmat``, with ``kernel.shmmax`` raised to its size as
a database's installation guide has it); children inherit the attachment through fork, which is the
sharing the 2002 patch could use (processes attaching it themselves would need the 2005 design).
"""

from __future__ import annotations

import resource
import time
from typing import Any, Mapping

from mmframe.options import Option
from mmframe.scenario import Axis, Figure, OptionProblem, Plot, Scenario, ScenarioContext
from mmframe.units import format_size
from mmframe.usr import IPC_CREAT, IPC_PRIVATE, IPC_RMID, exit, fork, shmat, shmctl, shmget, sleep, touch, wait

FOREVER = 10**15  # ns: children sleep until the parent has counted them all


def sga_program(ctx: Any, size: int, children: int) -> Any:
    sid = yield shmget(IPC_PRIVATE, size, IPC_CREAT | 0o600)
    base = yield shmat(sid)
    yield shmctl(sid, IPC_RMID)  # gone with the last detach
    yield touch(base, size, True)
    pids = []
    for _ in range(children):
        pid = yield fork(_child, base, size)
        if pid < 0:
            break
        pids.append(pid)
        yield sleep(1)  # let the child run its touch
        if not (yield ("healthy",)):
            break
        yield ("fitted", len(pids))
    yield ("snapshot",)
    for pid in pids:
        yield wait(pid)


def _child(ctx: Any, base: int, size: int) -> Any:
    yield touch(base, size, False)
    yield sleep(FOREVER)
    yield exit(0)


FAILURES = ("oom", "oops")


def measure(ctx: ScenarioContext, highpte: bool, phase: int) -> dict[str, Any]:
    p = ctx.params
    cfg = ctx.config.machine
    m = ctx.machine(memory=p["memory"], pae=True, highpte=highpte, shmmax=max(cfg.shmmax, p["size"]))
    out: dict[str, Any] = {"fitted": 0, "lowmem": {}}
    events = m.pagealloc.events
    pa = m.pagealloc
    every = max(1, p["children"] // 64)  # lowmem against tasks: about 64 points

    def lowmem_mib() -> float:
        chains = pa.kernel_objects.get("pte_chain")
        low_pt = pa.page_table_pages - m.mm.highmem_pte_pages()
        return (low_pt * 4096 + (chains.bytes if chains else 0)) / 2**20

    def healthy(task: Any) -> int:
        return int(not any(e[0] in FAILURES for e in events)
                   and all(t.signal is None for t in m.sched.tasks.values()))

    def fitted(task: Any, n: int) -> int:
        out["fitted"] = n
        if n % every == 0 or n == 1:
            out["lowmem"][n + 1] = lowmem_mib()  # tasks: the parent and n children
        ctx.report(phase * p["children"] + n, 2 * p["children"])
        return 0

    def snapshot(task: Any) -> int:
        info = m.meminfo()
        out["pt_mib"] = info["mmframe.PageTablesLow"] / 1024
        out["chain_mib"] = info["mmframe.PteChainBytes"] / 2**20
        out["low_free_mib"] = info["LowFree"] / 1024
        out["lowmem"][out["fitted"] + 1] = lowmem_mib()
        return 0

    m.sched.handlers.update(healthy=healthy, fitted=fitted, snapshot=snapshot)
    t0 = time.perf_counter()
    m.run(sga_program, p["size"], p["children"])
    out["wall"] = time.perf_counter() - t0
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    m.close()
    return out


TAGS = ("no HIGHPTE", "HIGHPTE")


def run(ctx: ScenarioContext) -> Mapping[str, Any]:
    figures: dict[str, Any] = {}
    for phase, tag in enumerate(TAGS):
        got = measure(ctx, tag == "HIGHPTE", phase)
        figures[f"children {tag}"] = got["fitted"]
        for key, name in (("pt_mib", "page tables"), ("chain_mib", "pte_chains"), ("low_free_mib", "LowFree")):
            if key in got:  # absent when the parent itself was killed before its snapshot
                figures[f"{name} {tag}"] = got[key]
        figures[f"lowmem {tag}"] = got["lowmem"]
        figures[f"sim wall {tag}"] = got["wall"]
        figures[f"peak host memory {tag}"] = got["peak_mib"]
    return figures


def check(params: Mapping[str, Any], machine: Any) -> None:
    if params["size"] >= params["memory"]:
        raise OptionProblem("size", f"a {format_size(params['size'])} segment does not fit in the scenario's "
                            f"memory ({format_size(params['memory'])})", "size below memory")


def _figures() -> tuple[Figure, ...]:
    out = []
    for tag in TAGS:
        out += [Figure(f"children {tag}", f"children that fit, {tag}", "", "count"),
                Figure(f"page tables {tag}", f"page tables in lowmem, {tag}", "MiB", "memory"),
                Figure(f"pte_chains {tag}", f"pte_chain lowmem, {tag}", "MiB", "memory"),
                Figure(f"LowFree {tag}", f"LowFree at the end, {tag}", "MiB", "memory"),
                Figure(f"lowmem {tag}", f"lowmem in page tables and pte_chains, {tag}", "MiB", "memory", "tasks"),
                Figure(f"sim wall {tag}", f"simulator wall time, {tag}", "s", "host"),
                Figure(f"peak host memory {tag}", f"host peak RSS so far (process-wide), {tag}", "MiB", "host")]
    return tuple(out)


SCENARIO = Scenario(
    name="sga",
    help="a parent touches a big shared segment and forks children that touch it, until lowmem runs out "
         "(HIGHPTE off and on)",
    run=run,
    options=(
        Option("memory", "size", "16GiB", "machine memory (PAE)", minimum=16 << 20, maximum=64 << 30),
        Option("size", "size", "1GiB", "the shared segment", minimum=4096, maximum=4 << 30),
        Option("children", "int", 1000, "children to fork at most", minimum=1, maximum=100_000),
    ),
    figures=_figures(),
    axes=(Axis("tasks", "tasks"),),
    plot=Plot(("lowmem no HIGHPTE", "lowmem HIGHPTE")),
    check=check,
    models="lowmem (ZONE_NORMAL) consumed by page tables and rmap pte_chains when many processes map a "
           "big shared segment on a 32-bit PAE box; HIGHPTE moves only the page tables to highmem",
    sources=("Andrea Arcangeli, pte-highmem thread, LKML 16-17 Jan 2002: 'mapping 1G per-task (shm for "
             "example) will overflow the lowmem zone with PAE with some houndred tasks'",
             "Martin Bligh and William Lee Irwin, objrmap thread, LKML 5 Apr 2003: '5000 tasks, 2Gb shmem "
             "segment = 10Gb of PTE chains ... In ZONE_NORMAL'",
             "i386 MAXMEM = 896 MB of ZONE_NORMAL (include/asm-i386/page.h, __VMALLOC_RESERVE, 2.5.49)"),
)

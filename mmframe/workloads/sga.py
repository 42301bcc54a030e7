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

import attrs

from mmframe.options import Option
from mmframe.scenario import Figure, Scenario, ScenarioContext
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


def measure(ctx: ScenarioContext, highpte: bool) -> dict[str, float]:
    p = ctx.params
    cfg = ctx.config
    cfg = attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=p["memory"], pae=True, highpte=highpte,
                                                 shmmax=max(cfg.machine.shmmax, p["size"])))
    m = ScenarioContext(cfg, p).machine()
    out: dict[str, float] = {"fitted": 0}
    events = m.pagealloc.events

    def healthy(task: Any) -> int:
        return int(not any(e[0] in FAILURES for e in events)
                   and all(t.signal is None for t in m.sched.tasks.values()))

    def fitted(task: Any, n: int) -> int:
        out["fitted"] = n
        return 0

    def snapshot(task: Any) -> int:
        info = m.meminfo()
        out["pt_mib"] = info["mmframe.PageTablesLow"] / 1024
        out["chain_mib"] = info["mmframe.PteChainBytes"] / 2**20
        out["low_free_mib"] = info["LowFree"] / 1024
        return 0

    m.sched.handlers.update(healthy=healthy, fitted=fitted, snapshot=snapshot)
    t0 = time.perf_counter()
    m.run(sga_program, p["size"], p["children"])
    out["wall"] = time.perf_counter() - t0
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    m.close()
    return out


def run(ctx: ScenarioContext) -> Mapping[str, Any]:
    figures: dict[str, Any] = {}
    for highpte in (False, True):
        tag = "HIGHPTE" if highpte else "no HIGHPTE"
        got = measure(ctx, highpte)
        figures[f"children {tag}"] = got["fitted"]
        figures[f"page tables {tag}"] = got["pt_mib"]
        figures[f"pte_chains {tag}"] = got["chain_mib"]
        figures[f"LowFree {tag}"] = got["low_free_mib"]
        figures[f"sim wall {tag}"] = got["wall"]
        figures[f"peak host memory {tag}"] = got["peak_mib"]
    return figures


def _figures() -> tuple[Figure, ...]:
    out = []
    for tag in ("no HIGHPTE", "HIGHPTE"):
        out += [Figure(f"children {tag}", f"children that fit, {tag}"),
                Figure(f"page tables {tag}", f"page tables in lowmem, {tag}", "MiB"),
                Figure(f"pte_chains {tag}", f"pte_chain lowmem, {tag}", "MiB"),
                Figure(f"LowFree {tag}", f"LowFree at the end, {tag}", "MiB"),
                Figure(f"sim wall {tag}", f"simulator wall time, {tag}", "s"),
                Figure(f"peak host memory {tag}", f"host peak RSS so far (process-wide), {tag}", "MiB")]
    return tuple(out)


SCENARIO = Scenario(
    name="sga",
    help="a parent touches a big shared segment and forks children that touch it, until lowmem runs out "
         "(HIGHPTE off and on)",
    run=run,
    options=(
        Option("memory", "size", "16GiB", "machine memory (PAE)"),
        Option("size", "size", "1GiB", "the shared segment"),
        Option("children", "int", 1000, "children to fork at most", minimum=1, maximum=100_000),
    ),
    figures=_figures(),
)

"""``sga``: the 2002 lowmem problem of big database servers.  A parent maps a large shared memory
segment (the SGA), touches it, and starts processes that each touch all of it, until an allocation
fails or the count is reached; run with HIGHPTE off and on, in two forms:

- **fork**: children forked by the instance inherit the attachment, the sharing the 2002 patch
  could use (its PTE pages are shared from the parent);
- **attach**: server processes forked and exec'd (unrelated address spaces, as a database's server
  processes were), each attaching the segment by its SysV key and reading it.  Only McCracken's
  2005 design shared page tables between such processes.

Printed per form and column: how many processes fit before the first allocation failure (an
out-of-memory or a failed atomic pte_chain/mm_chain allocation), lowmem in page tables and in
pte_chains (separately: HIGHPTE moves only the first out of lowmem), simulator wall time and the
host's peak memory.  The segment is SysV shm (``shmget``/``shmat``, with ``kernel.shmmax`` raised to
its size as a database's installation guide has it).  Every program is a period image
(``mmframe.usr.GLIBC_2002``) and makes the stores after fork that libc did.
"""

from __future__ import annotations

import resource
import time
from typing import Any, Mapping

import attrs

from mmframe.errors import UsageError
from mmframe.options import Option
from mmframe.scenario import Figure, Scenario, ScenarioContext
from mmframe.usr import (IPC_CREAT, IPC_PRIVATE, IPC_RMID, after_fork, execve, exit, fork, program, shmat, shmctl,
                         shmget, sleep, touch, wait)

FOREVER = 10**15  # ns: children sleep until the parent has counted them all
SGA_KEY = 0x5EED  # the segment's SysV key, as a database instance derives one from its SID
FORMS = ("fork", "attach")


@program(text_pages=64, data_pages=8, bss_pages=8)
def sga_program(ctx: Any, size: int, children: int, form: str = "fork") -> Any:
    """The instance: create the segment and touch it, then start ``children`` server processes,
    either forked (``fork``: they inherit the attachment, the sharing the 2002 patch could use) or
    forked and exec'd, each attaching the segment by its key (``attach``: unrelated address
    spaces, as a database's server processes were)."""
    key = IPC_PRIVATE if form == "fork" else SGA_KEY
    sid = yield shmget(key, size, IPC_CREAT | 0o600)
    base = yield shmat(sid)
    if form == "fork":
        yield shmctl(sid, IPC_RMID)  # gone with the last detach
    yield touch(base, size, True)
    pids = []
    for _ in range(children):
        pid = yield fork(_child if form == "fork" else _spawn_server, base, size)
        if pid < 0:
            break
        yield from after_fork(ctx, pid)
        pids.append(pid)
        yield sleep(1)  # let the child run its touch
        if not (yield ("healthy",)):
            break
        yield ("fitted", len(pids))
    yield ("snapshot",)
    for pid in pids:
        yield wait(pid)


def _child(ctx: Any, base: int, size: int) -> Any:
    yield from after_fork(ctx, 0)
    yield touch(base, size, False)
    yield sleep(FOREVER)
    yield exit(0)


def _spawn_server(ctx: Any, base: int, size: int) -> Any:
    yield from after_fork(ctx, 0)
    yield execve(server, size)


@program(text_pages=64, data_pages=8, bss_pages=8)
def server(ctx: Any, size: int) -> Any:
    """A server process started on its own: attaches the instance's segment by key and reads it."""
    sid = yield shmget(SGA_KEY, size, 0)
    base = yield shmat(sid)
    if base < 0:
        yield exit(1)
    yield touch(base, size, False)
    yield sleep(FOREVER)
    yield exit(0)


def _login(ctx: Any, size: int, children: int, form: str) -> Any:
    yield execve(sga_program, size, children, form)


FAILURES = ("oom", "oops")


def measure(ctx: ScenarioContext, highpte: bool, form: str = "fork") -> dict[str, float]:
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
    m.run(_login, p["size"], p["children"], form)
    out["wall"] = time.perf_counter() - t0
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    m.close()
    return out


def run(ctx: ScenarioContext) -> Mapping[str, Any]:
    figures: dict[str, Any] = {}
    bad = [f for f in ctx.params["forms"] if f not in FORMS]
    if bad or not ctx.params["forms"]:
        raise UsageError(f"scenario sga: option forms is a list of {', '.join(FORMS)}; got {ctx.params['forms']}")
    for form in ctx.params["forms"]:
        for highpte in (False, True):
            tag = _tag(form, highpte)
            got = measure(ctx, highpte, form)
            figures[f"children {tag}"] = got["fitted"]
            figures[f"page tables {tag}"] = got["pt_mib"]
            figures[f"pte_chains {tag}"] = got["chain_mib"]
            figures[f"LowFree {tag}"] = got["low_free_mib"]
            figures[f"sim wall {tag}"] = got["wall"]
            figures[f"peak host memory {tag}"] = got["peak_mib"]
    return figures


def _tag(form: str, highpte: bool) -> str:
    """The fork form keeps its keys of before (``children HIGHPTE``); the attach form says so."""
    return ("attach " if form == "attach" else "") + ("HIGHPTE" if highpte else "no HIGHPTE")


def _figures() -> tuple[Figure, ...]:
    out = []
    for form in FORMS:
        for highpte in (False, True):
            tag = _tag(form, highpte)
            who = "servers attaching by key" if form == "attach" else "forked children"
            out += [Figure(f"children {tag}", f"{who} that fit, {tag}"),
                    Figure(f"page tables {tag}", f"page tables in lowmem, {tag}", "MiB"),
                    Figure(f"pte_chains {tag}", f"pte_chain lowmem, {tag}", "MiB"),
                    Figure(f"LowFree {tag}", f"LowFree at the end, {tag}", "MiB"),
                    Figure(f"sim wall {tag}", f"simulator wall time, {tag}", "s"),
                    Figure(f"peak host memory {tag}", f"host peak RSS so far (process-wide), {tag}", "MiB")]
    return tuple(out)


SCENARIO = Scenario(
    name="sga",
    help="a parent touches a big shared segment and starts processes that touch it, forked (inheriting "
         "the attachment) or exec'd (attaching it by key), until lowmem runs out (HIGHPTE off and on)",
    run=run,
    options=(
        Option("memory", "size", "16GiB", "machine memory (PAE)"),
        Option("size", "size", "1GiB", "the shared segment"),
        Option("children", "int", 1000, "processes to start at most, in each form", minimum=1, maximum=100_000),
        Option("forms", "list[str]", list(FORMS), "how the processes get the segment: 'fork' (inherited from "
               "the instance) and/or 'attach' (exec'd servers attaching it by key)"),
    ),
    figures=_figures(),
)

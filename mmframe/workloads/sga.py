"""``sga``: the 2002 lowmem problem of big database servers.  A parent maps a large shared memory
segment (the SGA), touches it, and starts processes that each touch all of it, until an allocation
fails or the count is reached; run with HIGHPTE off and on, in two forms:

- **fork**: children forked by the instance inherit the attachment, the sharing the 2002 patch
  could use (its PTE pages are shared from the parent);
- **attach**: server processes forked and exec'd (unrelated address spaces, as a database's server
  processes were), each attaching the segment by its SysV key and reading it.  Sharing at fork
  alone shares nothing between them; pt_shared's ``attach_2002`` (the 2002 patch's
  ``pte_try_to_share``, on by default) or ``attach_2005`` (McCracken's 2005-06 rewrite) shares the PTE
  pages the segment covers whole where the servers attach it at one address (docs/pt_shared.md;
  examples/configs/sga-attach-2005.toml).

Printed per form and column: how many processes fit before the first allocation failure (an
out-of-memory or a failed atomic pte_chain/mm_chain allocation), lowmem in page tables and in
pte_chains (separately: HIGHPTE moves only the first out of lowmem), simulator wall time and the
host's peak memory.  The segment is SysV shm (``shmget``/``shmat``, with ``kernel.shmmax`` raised to
its size as a database's installation guide has it).  Every program is a period image
(``mmframe.usr.GLIBC_2002``) and makes the stores after fork that libc did.
"""

from __future__ import annotations

import gc
import resource
import time
from typing import Any, Mapping

from mmframe.errors import SimOops
from mmframe.options import Option
from mmframe.scenario import Axis, Figure, OptionProblem, Plot, Scenario, ScenarioContext
from mmframe.units import format_size
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


def measure(ctx: ScenarioContext, highpte: bool, phase: int, form: str = "fork", phases: int = 2) -> dict[str, Any]:
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
        ctx.report(phase * p["children"] + n, phases * p["children"])
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
    try:
        m.run(_login, p["size"], p["children"], form)
    except SimOops as oops:  # 2.5.49 oopsed on a failed atomic pte_chain_alloc: the first failure,
        out["oops"] = str(oops)  # which ends this measurement (not the scenario) with what fitted
        snapshot(None)
    out["wall"] = time.perf_counter() - t0
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    m.close()
    return out


TAGS = ("no HIGHPTE", "HIGHPTE")


def _tag(form: str, tag: str) -> str:
    """The fork form keeps its keys of before (``children HIGHPTE``); the attach form says so."""
    return ("attach " if form == "attach" else "") + tag


def run(ctx: ScenarioContext) -> Mapping[str, Any]:
    figures: dict[str, Any] = {}
    forms = ctx.params["forms"]
    phase = 0
    for form in forms:
        for tag in TAGS:
            got = measure(ctx, tag == "HIGHPTE", phase, form, len(forms) * len(TAGS))
            gc.collect()  # the closed machine's cycles (gigabytes of page tables and rmap) go before the next grows
            phase += 1
            t = _tag(form, tag)
            figures[f"children {t}"] = got["fitted"]
            for key, name in (("pt_mib", "page tables"), ("chain_mib", "pte_chains"), ("low_free_mib", "LowFree")):
                if key in got:  # absent when the parent itself was killed before its snapshot
                    figures[f"{name} {t}"] = got[key]
            figures[f"lowmem {t}"] = got["lowmem"]
            figures[f"sim wall {t}"] = got["wall"]
            figures[f"peak host memory {t}"] = got["peak_mib"]
    return figures


def check(params: Mapping[str, Any], machine: Any) -> None:
    bad = [f for f in params["forms"] if f not in FORMS]
    if bad or not params["forms"]:
        raise OptionProblem("forms", f"{params['forms']} is not a list of forms", "a list of 'fork' and/or 'attach'")
    if params["size"] >= params["memory"]:
        raise OptionProblem("size", f"a {format_size(params['size'])} segment does not fit in the scenario's "
                            f"memory ({format_size(params['memory'])})", "size below memory")


def _figures() -> tuple[Figure, ...]:
    out = []
    for form in FORMS:
        who = "servers attaching by key" if form == "attach" else "children"
        for tag in TAGS:
            t = _tag(form, tag)
            out += [Figure(f"children {t}", f"{who} that fit, {t}", "", "count"),
                    Figure(f"page tables {t}", f"page tables in lowmem, {t}", "MiB", "memory"),
                    Figure(f"pte_chains {t}", f"pte_chain lowmem, {t}", "MiB", "memory"),
                    Figure(f"LowFree {t}", f"LowFree at the end, {t}", "MiB", "memory"),
                    Figure(f"lowmem {t}", f"lowmem in page tables and pte_chains, {t}", "MiB", "memory", "tasks"),
                    Figure(f"sim wall {t}", f"simulator wall time, {t}", "s", "host"),
                    Figure(f"peak host memory {t}", f"host peak RSS so far (process-wide), {t}", "MiB", "host")]
    return tuple(out)


SCENARIO = Scenario(
    name="sga",
    help="a parent touches a big shared segment and starts processes that touch it, forked (inheriting "
         "the attachment) or exec'd (attaching it by key), until lowmem runs out (HIGHPTE off and on)",
    run=run,
    options=(
        Option("memory", "size", "16GiB", "machine memory (PAE)", minimum=16 << 20, maximum=64 << 30),
        Option("size", "size", "1GiB", "the shared segment", minimum=4096, maximum=4 << 30),
        Option("children", "int", 1000, "processes to start at most, in each form", minimum=1, maximum=100_000),
        Option("forms", "list[str]", list(FORMS), "how the processes get the segment: 'fork' (inherited from "
               "the instance) and/or 'attach' (exec'd servers attaching it by key)"),
    ),
    figures=_figures(),
    axes=(Axis("tasks", "tasks"),),
    plot=Plot(("lowmem no HIGHPTE", "lowmem HIGHPTE", "lowmem attach no HIGHPTE", "lowmem attach HIGHPTE")),
    check=check,
    models="lowmem (ZONE_NORMAL) consumed by page tables and rmap pte_chains when many processes map a "
           "big shared segment on a 32-bit PAE box; HIGHPTE moves only the page tables to highmem",
    sources=("Andrea Arcangeli, pte-highmem thread, LKML 16-17 Jan 2002: 'mapping 1G per-task (shm for "
             "example) will overflow the lowmem zone with PAE with some houndred tasks'",
             "Martin Bligh and William Lee Irwin, objrmap thread, LKML 5 Apr 2003: '5000 tasks, 2Gb shmem "
             "segment = 10Gb of PTE chains ... In ZONE_NORMAL'",
             "i386 MAXMEM = 896 MB of ZONE_NORMAL (include/asm-i386/page.h, __VMALLOC_RESERVE, 2.5.49)",
             "the attach form's sharing (pt_shared's attach_2002 / attach_2005): McCracken, '[PATCH 2.5.41-mm3] "
             "Proactively share page tables for shared memory', linux-mm, Message-ID "
             "24970000.1034364696@baldur.austin.ibm.com; '[PATCH 2/2] Simple shared page tables', LKML, "
             "15 Aug 2006, Message-ID 20060815225618.17433.84777.sendpatch@wildcat"),
)

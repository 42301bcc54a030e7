"""``pressure-atomic``: tasks faulting, forking and reading files while hogs keep free memory low,
so the allocations 2.5.49 made atomically under a lock (a pte_chain, a PTE page, a radix-tree node)
meet a nearly empty machine (issue 21, docs/reserve.md).

Hogs map and touch a share of memory and hold it; each worker runs ``rounds`` rounds of its kind:
a *faulter* maps, touches and unmaps anonymous memory; a *forker* forks a child that touches its
inherited mapping (pte_chains at fork, copy-on-write faults) and exits; a *reader* writes a new
file and reads it back (page-cache inserts).  The machine's ``[machine] fail_*`` fault injection
applies, so the failure paths can be driven on purpose; ``radix_mempool`` shrinks the radix-tree
node mempool (2.5.49: 512 nodes) so a failed node allocation can reach -ENOMEM.

Allocations that may wait reclaim (kswapd and direct reclaim, docs/reclaim.md) before they fail;
with the default ``[vm] swap = 0`` the hogs' anonymous memory cannot be swapped, so only clean and
written-back page cache comes back, and a waiting allocation that still finds none is an
out-of-memory kill.  Atomic allocations never reclaim: they are what the reservations protect.

Figures: oopses (0 or 1: an oops ends the run), -ENOMEM returns to system calls, OOM kills, the
reservation figures when the ``reserve`` plugin is enabled (time inside ``reserve_local_pages``,
reservations that failed up front, pages held in pools, mean and peak), and simulated throughput
(system calls completed, and per second of simulated CPU time charged).
"""

from __future__ import annotations

from typing import Any, Mapping

from mmframe.errors import SimOops
from mmframe.options import Option
from mmframe.scenario import Figure, Plot, Scenario, ScenarioContext
from mmframe.usr import (MAP_ANONYMOUS, MAP_PRIVATE, O_CREAT, O_RDWR, PAGE_SIZE, PROT_READ, PROT_WRITE, exit,
                         fork, mmap, munmap, open, pread, pwrite, sleep, touch, wait)

ENOMEM = 12


def hog(ctx: Any, size: int, hold_ns: int) -> Any:
    a = yield mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    yield touch(a, size, True)
    yield sleep(hold_ns)
    yield exit(0)


def faulter(ctx: Any, size: int, rounds: int) -> Any:
    for _ in range(rounds):
        a = yield mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        yield touch(a, size, True)
        yield munmap(a, size)
    yield exit(0)


def _child(ctx: Any, a: int, size: int) -> Any:
    yield touch(a, size, True)
    yield exit(0)


def forker(ctx: Any, size: int, rounds: int) -> Any:
    a = yield mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    yield touch(a, size, True)
    for _ in range(rounds):
        pid = yield fork(_child, a, size // 4)
        if pid > 0:
            yield wait(pid)
    yield exit(0)


def reader(ctx: Any, me: int, size: int, rounds: int) -> Any:
    buf = yield mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    yield touch(buf, size, True)
    for r in range(rounds):
        fd = yield open(f"/pa{me}.{r}", O_CREAT | O_RDWR)
        if fd < 0:
            continue
        yield pwrite(fd, buf, size, 0)
        yield pread(fd, buf, size, 0)
    yield exit(0)


def root(ctx: Any, p: Mapping[str, Any], hog_size: int) -> Any:
    pids = []
    for _ in range(p["hogs"]):
        pids.append((yield fork(hog, hog_size, p["hold_ns"])))
    kinds = (faulter, forker, reader)
    for i in range(p["workers"]):
        kind = kinds[i % 3]
        args = (i, p["io_size"], p["rounds"]) if kind is reader else (p["work_size"], p["rounds"])
        pids.append((yield fork(kind, *args)))
    for pid in pids:
        if pid > 0:
            yield wait(pid)
    yield exit(0)


def measure(ctx: ScenarioContext) -> dict[str, Any]:
    p = ctx.params
    m = ctx.machine(memory=p["memory"])
    pool = m.mm.radix_pool
    keep = min(pool.curr_nr, p["radix_mempool"])
    for _ in range(pool.curr_nr - keep):  # give the nodes above the option back to the slab
        pool.cache.free()
    pool.curr_nr = pool.min_nr = keep
    free = m.pagealloc.nr_free_pages()
    hog_size = int(free * p["hog_share"] / max(p["hogs"], 1)) * PAGE_SIZE
    st = m.plugin_state.get("reservations")
    inside = [0.0]
    if st is not None:  # time inside reserve_local_pages: the simulated ns charged during each call
        acct, real = m.acct, st.reserve_local_pages

        def timed(*args: Any) -> int:
            t = acct.ns
            try:
                return real(*args)
            finally:
                inside[0] += acct.ns - t

        st.reserve_local_pages = timed
    try:
        res = m.run(root, p, hog_size)
    except SimOops as oops:  # 2.5.49's oops ends the run; its results so far are the figures'
        res = oops.result
    ns = m.costs.ns
    busy = sum(c * ns[m.costs.id[n]] for n, c in m.acct.totals().items())  # simulated CPU time charged
    workers = [t for t in res.tasks.values() if t.lineage.count(".") >= 1]
    enomem = sum(1 for t in res.tasks.values() for _, v in t.calls if v == -ENOMEM)
    oom = sum(1 for t in workers if t.signal is not None and "SIGKILL" in repr(t.signal))
    out: dict[str, Any] = {
        "oopses": int(res.oops is not None),
        "enomem": enomem,
        "oom_kills": oom,
        "injected": m.pagealloc.fault_inject.injected if m.pagealloc.fault_inject is not None else 0,
        "syscalls": res.syscalls,
        "throughput": res.syscalls / (busy / 1e9) if busy else 0.0,
        "sim_ms": res.sim_ns / 1e6,
    }
    if st is not None:
        out.update({"reserve_ms": inside[0] / 1e6, "reserve_failed": st.failed, "pool_mean": st.held_sum / st.samples
                    if st.samples else 0.0, "pool_peak": st.peak, "reserve_taken": st.taken,
                    "reserve_missed": st.missed})
    m.close()
    return out


def run(ctx: ScenarioContext) -> Mapping[str, Any]:
    return measure(ctx)


FIGURES = (
    Figure("oopses", "simulated oopses (an oops ends the run)", "", "count"),
    Figure("enomem", "-ENOMEM returns to system calls", "", "count"),
    Figure("oom_kills", "out-of-memory kills of workers", "", "count"),
    Figure("injected", "allocations failed by fault injection", "", "count"),
    Figure("syscalls", "system calls completed", "", "count"),
    Figure("throughput", "system calls per simulated busy CPU second", "1/s", "value"),
    Figure("sim_ms", "simulated run time", "ms", "time"),
    Figure("reserve_ms", "simulated time inside reserve_local_pages (reserve plugin)", "ms", "time"),
    Figure("reserve_failed", "reservations that failed up front (reserve plugin)", "", "count"),
    Figure("pool_mean", "pages held in pools, mean over reservations (reserve plugin)", "pages", "value"),
    Figure("pool_peak", "pages held in pools, peak (reserve plugin)", "pages", "value"),
    Figure("reserve_taken", "__GFP_RESERVE allocations served from a pool (reserve plugin)", "", "count"),
    Figure("reserve_missed", "__GFP_RESERVE allocations that found the pool empty (reserve plugin)", "", "count"),
)

SCENARIO = Scenario(
    name="pressure-atomic",
    help="faulting, forking and file-reading tasks while hogs keep free memory low: the period's atomic "
         "allocations under locks (pte_chain, PTE page, radix-tree node) on a nearly full machine",
    run=run,
    options=(
        Option("memory", "size", "64MiB", "machine memory", minimum=16 << 20, maximum=4 << 30),
        Option("hogs", "int", 2, "tasks holding memory", minimum=0, maximum=64),
        Option("hog_share", "float", 0.85, "share of free memory the hogs take", minimum=0.0, maximum=1.0),
        Option("hold_ns", "int", 2_000_000_000, "simulated ns the hogs hold their memory", minimum=0),
        Option("workers", "int", 6, "faulting, forking and reading tasks (in turn)", minimum=1, maximum=256),
        Option("rounds", "int", 8, "rounds per worker", minimum=1, maximum=100_000),
        Option("work_size", "size", "1MiB", "anonymous memory a faulter or forker touches", minimum=PAGE_SIZE),
        Option("io_size", "size", "128KiB", "file size a reader writes and reads back per round", minimum=PAGE_SIZE),
        Option("radix_mempool", "int", 512, "radix-tree node mempool size (2.5.49: 512)", minimum=0, maximum=512),
    ),
    figures=FIGURES,
    plot=Plot(("oopses", "enomem", "throughput")),
    models="fault, fork, page cache, allocator; no reclaim yet",
    sources=("akpm, 2.5.53-mm2, <3E0E4744.8EE126ED@digeo.com> (the oops and -ENOMEM paths)",),
)

"""The block layer's scenarios: ``io-depth`` (random I/O held at a given depth) and ``replay`` (a
block trace), each run once per elevator and reported side by side (simulated throughput and
latency; the elevator's CPU work).

``io-depth`` keeps ``depth`` I/Os of ``size`` outstanding at uniformly random, size-aligned sectors
of the first disk (each completion submits the next) until ``requests`` have been submitted.  2.5.49
allows at most ``queue_nr_requests`` (128 on a machine of 64 MiB or more) requests per direction; a
deeper setting is **synthetic** (the extra submitters sleep for a free request, as
``get_request_wait`` makes them) and is labelled so in the figures.  ``replay`` submits a trace's
I/Os at their times (open loop) -- see :mod:`mmframe.workloads.traces` for the formats.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import attrs

from mmframe.block.bio import PAGE_SECTORS, READ
from mmframe.block.genhd import IRQ
from mmframe.errors import UsageError
from mmframe.options import Option
from mmframe.scenario import Figure, Plot, Scenario, ScenarioContext
from mmframe.workloads.iodriver import Driver, random_depth, summary
from mmframe.workloads.traces import FORMATS, read_trace

ELEVATORS = ["deadline", "noop", "linus"]
_DATA = resources.files("mmframe").joinpath("data/traces")
SAMPLES = {"fio2": Path(str(_DATA.joinpath("sample.fio2.log"))),
           "fio3": Path(str(_DATA.joinpath("sample.fio3.log"))),
           "blkparse": Path(str(_DATA.joinpath("sample.blkparse.txt")))}
MAX_BIO_SECTORS = 248  # bio_add_page stops at the queue's 255 sectors: 31 pages


def _machine_for(ctx_config: Any, elevator: str) -> Any:
    """A machine of ``ctx_config`` whose first disk runs ``elevator`` (its configured tunables if
    the config chose that elevator, else its defaults)."""
    from mmframe.machine import Machine

    cfg = ctx_config
    if elevator not in cfg.elevators:
        raise UsageError(f"scenario elevators: unknown elevator {elevator!r} (available: "
                         f"{', '.join(sorted(cfg.elevators))})")
    d0 = cfg.disks[0]
    if d0.elevator != elevator:
        cls = cfg.elevators[elevator][0]
        d0 = attrs.evolve(d0, elevator=elevator, elevator_options={t.name: t.coerce(t.default) for t in cls.tunables})
    return Machine(attrs.evolve(cfg, disks=(d0, *cfg.disks[1:])))


def _figures(m: Any, drv: Driver, start: float) -> dict[str, Any]:
    end = max((r.done for r in drv.records if r.completions), default=start)
    out: dict[str, Any] = summary(drv.records, end - start)
    # every read's latency (ms, in completion order): the distribution the plot draws per elevator
    out["read_latency_ms"] = [(r.done - r.submitted) / 1e6 for r in drv.records if r.completions and r.rw == READ]
    dev = m.block.device()
    n = max(1, out["completed"])
    irq = m.acct.rows.get((IRQ, "core"), [])
    sub = m.acct.rows.get(("<machine>", "core"), [])
    ns_of = m.acct.ns_of
    cpu_ns = sum(c * ns for row in (irq, sub) for c, ns in zip(row, ns_of))
    out["cpu_us_per_io"] = cpu_ns / 1e3 / n
    q = dev.queue
    if q is not None:
        st = q.stats
        out["requests_per_io"] = st["requests"] / n
        out["merges"] = st["back_merges"] + st["front_merges"] + st["request_merges"]
        out["slept_for_request"] = st["sleeps"]
        out["scan_steps_per_io"] = sum(q.elevator.step_counts.values()) / n
    return out


def depth_figures(cfg: Any, elevator: str, depth: int = 32, requests: int = 2000, read_fraction: float = 1.0,
                  size: int = 4096) -> dict[str, Any]:
    """io-depth under one elevator."""
    m = _machine_for(cfg, elevator)
    dev = m.block.device()
    m.block.keep_log = False
    nsect = max(1, size >> 9)
    drv = Driver(m, dev, min(depth, requests), -(-nsect // PAGE_SECTORS))
    random_depth(drv, depth, requests, read_fraction, nsect, dev.nr_sectors, m.config.seed)
    drv.run()
    out = _figures(m, drv, 0.0)
    q = dev.queue
    if q is not None and depth > q.nr_requests * (2 if read_fraction not in (0.0, 1.0) else 1):
        out["synthetic"] = f"depth {depth} > {q.nr_requests} requests per direction (2.5.49's limit)"
    return out


def replay_figures(cfg: Any, elevator: str, trace: str = "", format: str = "auto") -> dict[str, Any]:  # noqa: A002
    """replay under one elevator."""
    t = read_trace(trace or str(SAMPLES["blkparse"]), format)
    m = _machine_for(cfg, elevator)
    dev = m.block.device()
    m.block.keep_log = False
    for io in t.ios:
        if io.sector + io.nr_sectors > dev.nr_sectors:
            from mmframe.workloads.traces import TraceError
            raise TraceError(t.source, io.line, f"I/O at sector {io.sector} + {io.nr_sectors} is past the end of "
                             f"disk {dev.name} ({dev.nr_sectors} sectors; set [block.{dev.name}] capacity)")
    pool: list[int] = []
    drv = Driver(m, dev, 0, 0)
    q = dev.queue

    def submit(io: Any) -> None:
        left, sector = io.nr_sectors, io.sector
        while left > 0:
            n = min(left, MAX_BIO_SECTORS)
            slot = pool.pop() if pool else _grow(drv)
            drv.submit(slot, io.rw, sector, n, lambda rec, slot=slot: pool.append(slot))
            sector += n
            left -= n
        if q is not None:
            q.unplug()

    t0 = min((io.time_ns for io in t.ios), default=0)
    for io in t.ios:
        m.block.at(float(io.time_ns - t0), submit, io)
    drv.run()
    out = _figures(m, drv, 0.0)
    out["trace_ios"] = len(t.ios)
    out["not_replayed"] = t.report() or "nothing"
    return out


def _grow(drv: Driver) -> int:
    from mmframe.mm.page import GFP_KERNEL
    pfns = [drv.m.alloc_pages(GFP_KERNEL, 0) for _ in range(MAX_BIO_SECTORS // PAGE_SECTORS)]
    if min(pfns) < 0:
        raise UsageError("replay: the machine has too little memory for the trace's I/Os in flight")
    drv.pages.append(pfns)
    return len(drv.pages) - 1


def compare_elevators(fn: Callable[..., dict[str, Any]], elevators: Iterable[str], cfg: Any = None,
                      **params: Any) -> dict[str, dict[str, Any]]:
    """``fn`` once per elevator on the default machine (benchmarks)."""
    from mmframe.config import load_config
    cfg = cfg or load_config(use_pyproject=False, env={})
    return {e: fn(cfg, e, **params) for e in elevators}


def _per_elevator(ctx: ScenarioContext, fn: Callable[..., dict[str, Any]], **params: Any) -> Mapping[str, Any]:
    out: dict[str, Any] = {}
    for elv in ctx.params["elevators"]:
        for k, v in fn(ctx.config, elv, **params).items():
            out[f"{elv}.{k}"] = v
    return out


def run_depth(ctx: ScenarioContext) -> Mapping[str, Any]:
    p = ctx.params
    return _per_elevator(ctx, depth_figures, depth=p["depth"], requests=p["requests"],
                         read_fraction=p["read_fraction"], size=p["size"])


def run_replay(ctx: ScenarioContext) -> Mapping[str, Any]:
    p = ctx.params
    return _per_elevator(ctx, replay_figures, trace=p["trace"], format=p["format"])


def _figs(keys: Iterable[tuple[str, str, str]]) -> tuple[Figure, ...]:
    return tuple(Figure(f"{e}.{k}", f"{e}: {label}", unit) for e in ELEVATORS for k, label, unit in keys) + tuple(
        Figure(f"{e}.read_latency_ms", f"{e}: read latency", "ms", "distribution") for e in ELEVATORS)


READ_LATENCY_PLOT = Plot(tuple(f"{e}.read_latency_ms" for e in ELEVATORS), title="read latency per elevator (CDF)",
                         overlay=True)


COMMON = (("iops", "throughput", "IO/s"), ("mb_s", "throughput", "MB/s"), ("lat_p50_ms", "latency p50", "ms"),
          ("lat_p99_ms", "latency p99", "ms"), ("lat_max_ms", "latency max", "ms"),
          ("cpu_us_per_io", "block-layer CPU per I/O", "us"), ("scan_steps_per_io", "elevator steps per I/O", ""))
ELEVATOR_OPTION = Option("elevators", "list[str]", list(ELEVATORS), "elevators to compare, each on a fresh machine "
                         "(the first disk's; its tunables from [block.<disk>.<elevator>] when it is the configured one)")

DEPTH = Scenario(
    name="io-depth",
    help="random I/O held at a given depth on the first disk, per elevator (depths past 2.5.49's "
         "queue_nr_requests are synthetic)",
    run=run_depth,
    options=(Option("depth", "int", 32, "I/Os kept outstanding", minimum=1, maximum=65536),
             Option("requests", "int", 2000, "I/Os submitted in all", minimum=1, maximum=10_000_000),
             Option("read_fraction", "float", 1.0, "share of reads", minimum=0.0, maximum=1.0),
             Option("size", "size", "4KiB", "bytes an I/O (whole sectors)", minimum=512, maximum=127 * 1024),
             ELEVATOR_OPTION),
    figures=_figs(COMMON),
    plot=READ_LATENCY_PLOT,
    models="the request queue, merging and each elevator's ordering under a fixed number of random I/Os in "
           "flight on the first disk, served by the disk's seek, rotation and transfer model",
    sources=("Linux 2.5.49 drivers/block/ll_rw_blk.c, elevator.c, deadline-iosched.c, include/linux/blkdev.h "
             "(queue_nr_requests, the 255-sector and 128-segment limits)",
             "Jens Axboe, deadline I/O scheduler, LKML Message-ID 20020926064455.GC12862@suse.de (fifo_batch, "
             "seek_cost); 'remove elevator_linus', 2002-09-24, first release without it 2.5.39",
             "C. Ruemmler and J. Wilkes, 'An introduction to disk drive modeling', IEEE Computer, 1994"),
)

REPLAY = Scenario(
    name="replay",
    help="replay a block trace (fio iolog v2/v3, blkparse text) on the first disk, per elevator",
    run=run_replay,
    options=(Option("trace", "str", "", "trace file (empty: the shipped blkparse sample)"),
             Option("format", "choice", "auto", "trace format", choices=FORMATS),
             ELEVATOR_OPTION),
    figures=_figs(COMMON + (("not_replayed", "not replayed", ""),)),
    plot=READ_LATENCY_PLOT,
    models="a recorded block workload (its I/Os at their recorded times) through the request queue and each "
           "elevator on the first disk",
    sources=("fio iolog formats: fio HOWTO.rst 'Trace file format' and iolog.c (github.com/axboe/fio)",
             "blkparse default output: blktrace's doc/blkparse.1 and blkparse_fmt.c",
             "Linux 2.5.49 drivers/block/ll_rw_blk.c, elevator.c, deadline-iosched.c"),
)

"""``io-stream``: small-file readers, each read timed, while writer tasks stream large files through
the page cache -- the workload of the 2.5 I/O-scheduler debates ("streaming writes starve reads"),
through the whole buffered path (docs/buffered_io.md): readahead on the readers' misses, the
writers' dirty pages throttled by ``balance_dirty_pages`` and written by it and by pdflush, all
through one request queue under each elevator.

Per elevator, on a fresh machine whose first disk runs it: ``readers`` tasks each ``pread`` a random
one of ``small_files`` cold files of ``small_kib`` (``reads`` times), timing each read from its
issue to the task running again; ``writers`` tasks each write ``write_mib`` to a file of their own
in 64 KiB ``pwrite`` calls and ``fsync`` it.  Figures: the reads' latency p50/p99/max (and the
samples, for a CDF), the writers' throughput (bytes over the time to the end of their fsync), the
requests the disk served and the simulator's wall time per request (host-measured).  Then, for
``deadline``, the same figures as series over ``fifo_batch``.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import attrs

from mmframe.errors import UsageError
from mmframe.options import Option
from mmframe.scenario import Axis, Figure, Plot, Scenario, ScenarioContext
from mmframe.usr import MAP_ANONYMOUS, MAP_PRIVATE, O_CREAT, O_RDONLY, O_RDWR, PROT_READ, PROT_WRITE
from mmframe.usr import close, fork, fsync, getpid, mmap, open, pread, pwrite, wait, write
from mmframe.workloads.iodriver import percentile

PAGE = 4096
CHUNK = 16  # pages a pwrite
ELEVATORS = ["noop", "deadline", "linus", "rbtree", "rbtree-2.5.58"]
DECLARED = ELEVATORS + ["rbtree-ablation"]
FIFO_BATCH = ["1", "4", "16", "64"]


def _reader(ctx: Any, files: int, pages: int, reads: int) -> Any:
    buf = yield mmap(0, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for _ in range(reads):
        fd = yield open(f"/small/{ctx.rng.randrange(files)}", O_RDONLY)
        yield getpid()  # the timer's start mark
        yield pread(fd, buf, pages * PAGE, 0)
        yield getpid()  # and its end: the task runs again
        yield close(fd)
    return 0


def _writer(ctx: Any, n: int, pages: int) -> Any:
    buf = yield mmap(0, CHUNK * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    for i in range(CHUNK):
        yield write(buf + i * PAGE, 1_000_000 * (n + 1) + i)
    fd = yield open(f"/big{n}", O_CREAT | O_RDWR)
    for off in range(0, pages, CHUNK):
        yield pwrite(fd, buf, min(CHUNK, pages - off) * PAGE, off * PAGE)
    yield fsync(fd)
    yield getpid()  # the end mark
    yield close(fd)
    return 0


def _main(ctx: Any, p: Mapping[str, Any]) -> Any:
    for n in range(p["writers"]):
        yield fork(_writer, n, p["write_mib"] // PAGE)
    for _ in range(p["readers"]):
        yield fork(_reader, p["small_files"], p["small_kib"] * 1024 // PAGE, p["reads"])
    for _ in range(p["writers"] + p["readers"]):
        yield wait()
    return 0


def stream_figures(cfg: Any, elevator: str, p: Mapping[str, Any], options: Mapping[str, Any] | None = None
                   ) -> dict[str, Any]:
    """One io-stream run under ``elevator`` (with ``options`` overriding its tunables)."""
    from mmframe.machine import Machine

    if elevator not in cfg.elevators:
        raise UsageError(f"io-stream elevators: unknown elevator {elevator!r} (available: "
                         f"{', '.join(sorted(cfg.elevators))}; a plugin's needs the plugin enabled, e.g. "
                         f"-p elevator_rbtree)")
    d0 = cfg.disks[0]
    if d0.elevator != elevator:
        cls = cfg.elevators[elevator][0]
        d0 = attrs.evolve(d0, elevator=elevator, elevator_options={t.name: t.coerce(t.default) for t in cls.tunables})
    if options:
        d0 = attrs.evolve(d0, elevator_options={**d0.elevator_options, **options})
    m = Machine(attrs.evolve(cfg, disks=(d0, *cfg.disks[1:]),
                             machine=attrs.evolve(cfg.machine, memory=p["memory"])))
    m.block.keep_log = False
    pages = p["small_kib"] * 1024 // PAGE
    for i in range(p["small_files"]):
        m.fs.populate(f"/small/{i}", [7_000_000 + i * 64 + k for k in range(pages)])
    marks: dict[str, list[float]] = {}
    inner = m.sched.handlers["getpid"]

    def mark(task: Any, *a: Any) -> Any:
        marks.setdefault(task.lineage, []).append(task.cpu.clock + m.acct.ns)
        return inner(task, *a)

    m.sched.handlers["getpid"] = mark
    t0 = time.perf_counter()
    r = m.run(_main, dict(p))
    wall = time.perf_counter() - t0
    bad = [t.lineage for t in r.tasks.values() if t.status != 0]
    if bad:
        raise RuntimeError(f"io-stream: tasks {bad} did not exit 0 under {elevator}")
    writers = {f"1.{n + 1}" for n in range(p["writers"])}
    lat = sorted((b - a) / 1e6 for lin, ts in marks.items() if lin not in writers for a, b in zip(ts[::2], ts[1::2]))
    ends = [marks[w][0] for w in writers if w in marks]
    total = p["writers"] * (p["write_mib"] // PAGE) * PAGE
    dev = m.block.device()
    wb, ra = m.fs.wb, m.fs.ra_stats
    out: dict[str, Any] = {
        "read_p50_ms": percentile(lat, 50), "read_p99_ms": percentile(lat, 99), "read_max_ms": lat[-1] if lat else 0.0,
        "read_latency_ms": lat,
        "write_mb_s": total / 1e6 / (max(ends) / 1e9) if ends else 0.0,
        "requests": dev.completions,
        "throttled": wb.stats["throttled"], "pdflush_passes": wb.stats["background"] + wb.stats["kupdate"],
        "readahead_pages": ra["pages"],
        "wall_us_per_request": wall * 1e6 / max(1, dev.completions),
    }
    m.close()
    return out


def run_stream(ctx: ScenarioContext) -> Mapping[str, Any]:
    p = ctx.params
    try:
        batches = [int(b) for b in p["fifo_batch"]]
    except ValueError:
        raise UsageError(f"scenario fifo_batch: {list(p['fifo_batch'])!r} (allowed: whole numbers >= 1, e.g. "
                         f"{FIFO_BATCH!r})") from None
    if batches and min(batches) < 1:
        raise UsageError(f"scenario fifo_batch: {batches!r} (allowed: whole numbers >= 1)")
    elevators = list(p["elevators"]) or [e for e in ELEVATORS if e in ctx.config.elevators]
    out: dict[str, Any] = {}
    steps = len(elevators) + (len(batches) if "deadline" in ctx.config.elevators else 0)
    done = 0
    for elv in elevators:
        for k, v in stream_figures(ctx.config, elv, p).items():
            out[f"{elv}.{k}"] = v
        done += 1
        ctx.report(done, steps)
    if batches and "deadline" in ctx.config.elevators:
        series: dict[str, dict[int, float]] = {k: {} for k in SWEPT}
        for fb in batches:
            f = stream_figures(ctx.config, "deadline", p, {"fifo_batch": fb})
            for k in SWEPT:
                series[k][fb] = f[k]
            done += 1
            ctx.report(done, steps)
        for k, s in series.items():
            out[f"deadline.fifo_batch.{k}"] = s
    return out


PER = (("read_p50_ms", "read latency p50", "ms", "time"), ("read_p99_ms", "read latency p99", "ms", "time"),
       ("read_max_ms", "read latency max", "ms", "time"), ("write_mb_s", "writers' throughput", "MB/s", "value"),
       ("requests", "requests served", "", "count"), ("throttled", "balance_dirty_pages throttles", "", "count"),
       ("pdflush_passes", "pdflush passes", "", "count"), ("readahead_pages", "pages read ahead", "", "count"),
       ("wall_us_per_request", "simulator wall time per request", "us", "host"))
SWEPT = ("read_p50_ms", "read_p99_ms", "read_max_ms", "write_mb_s")

SCENARIO = Scenario(
    name="io-stream",
    help="small-file readers (each read timed) while writers stream large files through the page cache, "
         "per elevator, and a fifo_batch sweep for deadline",
    run=run_stream,
    options=(Option("readers", "int", 4, "reader tasks", minimum=0, maximum=256),
             Option("reads", "int", 40, "reads per reader", minimum=1, maximum=100_000),
             Option("small_files", "int", 400, "small files (cold, on the disk)", minimum=1, maximum=100_000),
             Option("small_kib", "int", 16, "size of a small file and of a read (KiB, whole pages)", minimum=4,
                    maximum=1024),
             Option("writers", "int", 2, "writer tasks", minimum=0, maximum=64),
             Option("write_mib", "size", "24MiB", "bytes each writer streams", minimum=PAGE, maximum=1 << 32),
             Option("memory", "size", "128MiB", "the machine's memory (the dirty thresholds are ratios of it)",
                    minimum=16 << 20, maximum=64 << 30),
             Option("elevators", "list[str]", [], "elevators side by side (empty: noop, deadline, linus and the "
                    "enabled plugins' rbtree, rbtree-2.5.58)"),
             Option("fifo_batch", "list[str]", list(FIFO_BATCH), "deadline's fifo_batch values to sweep (empty: no "
                    "sweep)")),
    figures=tuple(Figure(f"{e}.{k}", f"{e}: {label}", unit, kind) for e in DECLARED for k, label, unit, kind in PER)
    + tuple(Figure(f"{e}.read_latency_ms", f"{e}: read latency", "ms", "distribution") for e in DECLARED)
    + tuple(Figure(f"deadline.fifo_batch.{k}", f"deadline: {label} by fifo_batch", unit, kind, axis="fifo_batch")
            for k, label, unit, kind in PER if k in SWEPT),
    axes=(Axis("fifo_batch", "deadline fifo_batch", "", log=True),),
    plot=Plot(tuple(f"{e}.read_latency_ms" for e in DECLARED), title="io-stream read latency per elevator (CDF)",
              overlay=True),
    models="buffered reads (readahead, page-cache misses) and streaming buffered writes (dirty accounting, "
           "balance_dirty_pages, pdflush) through one request queue and each elevator",
    sources=("Linux 2.5.49 mm/readahead.c, mm/page-writeback.c, mm/pdflush.c, fs/fs-writeback.c, mm/filemap.c",
             "Jens Axboe, deadline I/O scheduler, LKML Message-ID 20020926064455.GC12862@suse.de (fifo_batch)"),
)

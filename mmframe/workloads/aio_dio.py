"""The ``aio-dio`` scenario: a program keeps ``depth`` ``O_DIRECT`` iocbs of ``size`` bytes in
flight on a file with ``io_submit``/``io_getevents`` (random, size-aligned offsets; reads and writes
mixed by ``read_fraction``), once as mainline 2.5.49 runs them (each iocb synchronous inside
``io_submit``) and once with 2.5.49-mm1's AIO-DIO (``[machine] aio_dio``: asynchronous completion).

Figures per mode, size and depth: pages pinned and highmem pages bounced per request, simulated CPU
per request (the task's and the interrupt row's), simulated throughput and latency (io_submit to
aio_complete), and the simulator's wall time per request.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping

import attrs

from mmframe.block.genhd import IRQ
from mmframe.options import Option
from mmframe.scenario import Figure, Scenario, ScenarioContext
from mmframe.units import parse_size
from mmframe.usr import (MAP_ANONYMOUS, MAP_PRIVATE, O_DIRECT, O_RDWR, PAGE_SIZE, PROT_READ, PROT_WRITE,
                         io_destroy, io_getevents, io_setup, io_submit, iocb_pread, iocb_pwrite, mmap, open, touch)

FILE_BYTES = 256 << 20  # the data file the requests land in (random offsets over all of it)


def _program(ctx: Any, size: int, depth: int, requests: int, read_fraction: float, span: int,
             clock: dict[str, float]) -> Any:
    fd = yield open("/data", O_RDWR | O_DIRECT)
    buf = yield mmap(0, depth * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    yield touch(buf, depth * size, True)
    c = yield io_setup(depth)
    slots = list(range(depth))
    rng = ctx.rng
    submitted = done = 0

    def iocb(slot: int) -> Any:
        off = rng.randrange(span // size) * size
        make = iocb_pread if rng.random() < read_fraction else iocb_pwrite
        return make(fd, buf + slot * size, size, off, slot)

    while done < requests:
        batch = []
        while slots and submitted + len(batch) < requests:
            batch.append(iocb(slots.pop()))
        if batch:
            n = yield io_submit(c, batch)
            if n < 0:
                raise RuntimeError(f"io_submit: {n}")
            submitted += n
        events = yield io_getevents(c, 1, depth)
        for data, _, res, _ in events:
            if res != size:
                raise RuntimeError(f"aio-dio: an iocb returned {res}")
            slots.append(data)
        done += len(events)
    yield io_destroy(c)
    clock["end"] = time.perf_counter()  # the benchmark's wall clock (not fed back to the program)


def aio_dio_figures(cfg: Any, aio_dio: bool, size: int = 4096, depth: int = 8, requests: int = 200,
                    read_fraction: float = 0.5) -> dict[str, Any]:
    """One run: ``requests`` iocbs of ``size`` at ``depth``; the figures."""
    from mmframe.machine import Machine

    m = Machine(attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, aio_dio=aio_dio)))
    m.block.keep_log = False
    span = FILE_BYTES
    m.fs.populate("/data", [0x5000 + i for i in range(span // PAGE_SIZE)])
    t0 = time.perf_counter()
    clock: dict[str, float] = {}
    r = m.run(_program, size, depth, requests, read_fraction, span, clock)
    wall = clock.get("end", time.perf_counter()) - t0  # up to the last call: not the end-of-run disk report
    dio, aio = m.fs.dio.stats, m.aio
    n = max(1, aio.stats["completed"])
    q = m.block.device().queue
    lat = sorted(aio.latencies)
    cpu_ns = 0.0
    ns_of = m.acct.ns_of
    for (who, _), row in m.acct.rows.items():
        if who == IRQ or who.startswith("1"):
            cpu_ns += sum(c * ns for c, ns in zip(row, ns_of))
    sim_s = r.sim_ns / 1e9
    return {
        "requests": aio.stats["completed"],
        "pages_pinned_per_req": dio["pages_pinned"] / n,
        "bounce_pages_per_req": (q.stats["bounced_pages"] / n) if q is not None else 0.0,
        "bios_per_req": dio["bios"] / n,
        "cpu_us_per_req": cpu_ns / 1e3 / n,
        "iops": n / sim_s if sim_s else 0.0,
        "mb_s": n * size / 1e6 / sim_s if sim_s else 0.0,
        "lat_p50_ms": lat[len(lat) // 2] / 1e6 if lat else 0.0,
        "lat_p99_ms": lat[min(len(lat) - 1, (len(lat) * 99) // 100)] / 1e6 if lat else 0.0,
        "wall_us_per_req": wall * 1e6 / n,
    }


def run(ctx: ScenarioContext) -> Mapping[str, Any]:
    p = ctx.params
    out: dict[str, Any] = {}
    for mode in ("sync", "async"):
        for size in p["sizes"]:
            for depth in p["depths"]:
                nbytes = parse_size(size)
                figs = aio_dio_figures(ctx.config, mode == "async", nbytes, int(depth), p["requests"],
                                       p["read_fraction"])
                for k, v in figs.items():
                    out[f"{mode}.{_label(nbytes)}.d{depth}.{k}"] = v
    return out


SIZES = ["4KiB", "64KiB", "1MiB"]
DEPTHS = ["1", "8", "32"]


def _label(nbytes: int) -> str:
    return f"{nbytes >> 20}MiB" if nbytes >= 1 << 20 and not nbytes & ((1 << 20) - 1) else f"{nbytes >> 10}KiB"
KEYS = (("mb_s", "throughput", "MB/s"), ("iops", "throughput", "IO/s"), ("lat_p50_ms", "latency p50", "ms"),
        ("lat_p99_ms", "latency p99", "ms"), ("cpu_us_per_req", "simulated CPU per request", "us"),
        ("pages_pinned_per_req", "pages pinned per request", ""),
        ("bounce_pages_per_req", "bounce pages per request", ""), ("wall_us_per_req", "simulator wall time", "us"))


def _figs(modes: Iterable[str] = ("sync", "async")) -> tuple[Figure, ...]:
    return tuple(Figure(f"{m}.{s}.d{d}.{k}", f"{m} {s} depth {d}: {label}", unit)
                 for m in modes for s in SIZES for d in DEPTHS for k, label, unit in KEYS)


SCENARIO = Scenario(
    name="aio-dio",
    help="O_DIRECT iocbs of 4 KiB to 1 MiB kept in flight at several depths, synchronous as in 2.5.49 and "
         "asynchronous as with 2.5.49-mm1's AIO-DIO ([machine] aio_dio)",
    run=run,
    options=(Option("sizes", "list[str]", list(SIZES), "request sizes (whole sectors)"),
             Option("depths", "list[str]", list(DEPTHS), "iocbs kept in flight"),
             Option("requests", "int", 200, "iocbs per run", minimum=1, maximum=1_000_000),
             Option("read_fraction", "float", 0.5, "share of reads", minimum=0.0, maximum=1.0)),
    figures=_figs(),
    models="a program keeping O_DIRECT iocbs in flight with io_submit/io_getevents: get_user_pages pinning the "
           "buffer, bios on the user pages (bounced above the bounce pfn), the request queue and elevator, the "
           "disk model; each iocb synchronous inside io_submit (2.5.49) or completed asynchronously (2.5.49-mm1)",
    sources=("Linux 2.5.49 fs/direct-io.c, mm/filemap.c (generic_file_direct_IO), mm/memory.c (get_user_pages), "
             "fs/aio.c, mm/highmem.c (blk_queue_bounce)",
             "Badari Pulavarty, '[PATCH 1/2] 2.5.46 AIO support for raw/O_DIRECT', LKML Message-ID "
             "200211060101.gA611gE21063@eng2.beaverton.ibm.com; Andrew Morton, '2.5.49-mm1', LKML Message-ID "
             "3DDEFE51.E1D9F8E7@digeo.com (AIO-DIO ready; merged in 2.5.55)"),
)

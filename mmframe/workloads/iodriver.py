"""Drive a disk's request queue directly, as an I/O benchmark's submitters would: bios arrive in
interrupt context from the machine's event engine (no tasks, no file system), so what is measured
is the block layer, the elevator and the disk.  Used by the ``io-depth`` and ``replay`` scenarios,
the block benchmarks and the tests.

Each submitter owns scratch pages; a write's pages get a fresh tag first, so every write moves
distinct data and what a read returns can be checked against what was written (see
:func:`check_reads`).
"""

from __future__ import annotations

import random
from typing import Any, Iterable

import attrs

from mmframe.block.bio import PAGE_SECTORS, PAGE_SIZE, READ, WRITE, Bio
from mmframe.mm.page import GFP_KERNEL


@attrs.define(slots=True)
class IoRecord:
    """One submitted I/O: when it was submitted and completed (ns), where, and the data moved."""

    rw: int
    sector: int
    nr_sectors: int
    submitted: float
    done: float = -1.0
    completions: int = 0
    data: tuple | None = None
    error: int = 0


class Driver:
    """Submit bios to ``dev`` and record their completions.  ``pages`` scratch pages per slot."""

    def __init__(self, machine: Any, dev: Any, slots: int, pages_per_io: int) -> None:
        self.m, self.dev = machine, dev
        self.layer = machine.block
        self.records: list[IoRecord] = []
        self.pages: list[list[int]] = []
        for _ in range(slots):
            pfns = []
            for _ in range(pages_per_io):
                pfn = machine.alloc_pages(GFP_KERNEL, 0)
                if pfn < 0:
                    raise ValueError("the machine has too little memory for this many I/O buffers")
                pfns.append(pfn)
            self.pages.append(pfns)
        self.next_tag = 1 << 40

    def submit(self, slot: int, rw: int, sector: int, nsect: int, on_done: Any = None) -> IoRecord:
        """Submit ``nsect`` sectors at ``sector`` using slot ``slot``'s pages (now, in interrupt
        context); ``on_done(record)`` runs at completion."""
        vm = self.m.mm
        vecs = []
        left = nsect
        for pfn in self.pages[slot]:
            if left <= 0:
                break
            n = min(left, PAGE_SECTORS)
            if rw == WRITE:
                self.next_tag += 1
                vm.tag[pfn] = self.next_tag
                vm.zero_tail.pop(pfn, None)
            vecs.append((pfn, 0, n << 9))
            left -= n
        rec = IoRecord(rw, sector, nsect, self.layer.now())
        self.records.append(rec)
        bio = Bio(rw, sector, vecs, _end_io, (self, rec, on_done), owner=f"slot{slot}")
        self.layer.submit_bio(self.dev, bio)
        return rec

    def run(self) -> None:
        """Fire events until nothing is left to do (every queue unplugged at the end)."""
        engine, layer = self.m.engine, self.layer
        while True:
            while engine.heap:
                engine.fire_until(engine.heap[0][0])
            if not layer.run_queues():
                break


def _end_io(bio: Bio, err: int) -> None:
    drv, rec, on_done = bio.private
    rec.done = bio.done_at
    rec.completions += 1
    rec.error = err
    rec.data = tuple(bio.data) if bio.data is not None else None
    if on_done is not None:
        on_done(rec)


def percentile(sorted_vals: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of sorted values."""
    if not sorted_vals:
        return 0.0
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def summary(records: Iterable[IoRecord], elapsed_ns: float) -> dict[str, float]:
    """Throughput and latency figures of completed records."""
    recs = [r for r in records if r.completions]
    lat = sorted((r.done - r.submitted) / 1e6 for r in recs)
    secs = elapsed_ns / 1e9 if elapsed_ns > 0 else 0.0
    sectors = sum(r.nr_sectors for r in recs)
    return {
        "completed": len(recs),
        "iops": len(recs) / secs if secs else 0.0,
        "mb_s": sectors * 512 / 1e6 / secs if secs else 0.0,
        "lat_p50_ms": percentile(lat, 50),
        "lat_p99_ms": percentile(lat, 99),
        "lat_max_ms": lat[-1] if lat else 0.0,
        "sim_s": secs,
    }


def check_reads(records: list[IoRecord]) -> list[str]:
    """Every read returned, per sector, the data of the last write to complete before the read was
    submitted (or nothing, if none) -- for sectors no write overlapped in flight with the read or
    with another write to that sector.  The checker is independent of the block layer: it looks
    only at submission and completion times and the data each I/O moved.  Returns problems."""
    writes: dict[int, list[tuple[float, float, Any]]] = {}
    for r in records:
        if r.rw == WRITE and r.completions:
            for k in range(r.nr_sectors):
                writes.setdefault(r.sector + k, []).append((r.submitted, r.done, r.data[k]))
    problems = []
    for r in records:
        if r.rw != READ or not r.completions:
            continue
        for k in range(r.nr_sectors):
            ws = writes.get(r.sector + k, [])
            if any(ws_sub <= r.done and ws_done >= r.submitted for ws_sub, ws_done, _ in ws):
                continue  # a write in flight with the read: either answer is right
            before = sorted((w for w in ws if w[1] < r.submitted), key=lambda w: w[1])
            if len(before) >= 2 and before[-2][1] >= before[-1][0]:
                continue  # the last two writes overlapped in flight: their order is the disk's
            want = before[-1][2] if before else None
            if r.data[k] != want:
                problems.append(f"read of sector {r.sector + k} submitted at {r.submitted:.0f} returned "
                                f"{r.data[k]!r}, last written {want!r}")
    return problems


def random_depth(driver: Driver, depth: int, total: int, read_fraction: float, nsect: int, span: int,
                 seed: int) -> None:
    """Keep ``depth`` I/Os outstanding at uniformly random ``nsect``-aligned sectors below ``span``
    until ``total`` have been submitted (each completion submits the next)."""
    rng = random.Random(seed)
    rand = rng.random
    slots = span // nsect
    issued = 0
    layer, q = driver.layer, driver.dev.queue

    def one(slot: int) -> None:
        nonlocal issued
        issued += 1
        rw = READ if rand() < read_fraction else WRITE
        sector = int(rand() * slots) * nsect
        driver.submit(slot, rw, sector, nsect, dones[slot])
        if q is not None and (q.plugged or driver.dev.busy is None):
            q.unplug()  # the submitter waits for its I/O: blk_run_queues (a no-op unless plugged or idle)

    def again(slot: int) -> None:
        if issued < total:
            one(slot)

    dones = [(lambda rec, slot=slot: again(slot)) for slot in range(min(depth, total))]

    def start() -> None:
        for slot in range(min(depth, total)):
            one(slot)

    layer.at(layer.now(), start)


PAGE_BYTES = PAGE_SIZE

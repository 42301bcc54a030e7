"""The host harness: workloads run on the host's own kernel, with real processes and memory.

One harness for validation (``mmframe calibrate`` / ``mmframe validate``) and the speed benchmarks:
a :class:`Workload` names what to do (fork, fork+exit, fork+exec+exit of a process with a private
anonymous region resident; anonymous write or read faults over a region; munmap or mprotect of a
populated region; mmap+munmap of one page), :func:`run_host` runs a list of them in a small
stdlib-only child process (``runner.py``) and returns each one's samples, median and spread,
with a progress bar on stderr.

Memory cap: the runner may map at most ``cap`` bytes at once (a workload that would exceed it is
skipped and reported; RLIMIT_AS backs that up in the kernel); the runner's peak resident size is
read back and reported beside the cap.  The default cap is half the host's available memory, at
most 3 GiB.  Regions are ``madvise(MADV_NOHUGEPAGE)`` so transparent huge pages do not hide the
page tables.  The runner pins itself to one CPU (see docs/validation.md: in a VM a wake-up on the
other CPU can wait for a timer tick).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import attrs
import numpy as np

from mmframe.errors import UsageError
from mmframe.units import format_size

KINDS = ("fork", "fork_exit", "fork_exec_exit", "write_faults", "read_faults", "munmap", "mprotect",
         "mmap_small")
LABELS = {"fork": "fork", "fork_exit": "fork+exit", "fork_exec_exit": "fork+exec+exit",
          "write_faults": "write faults", "read_faults": "read faults", "munmap": "munmap",
          "mprotect": "mprotect", "mmap_small": "mmap+munmap"}
RUNNER = Path(__file__).with_name("runner.py")
MiB = 1 << 20


@attrs.frozen(slots=True)
class Workload:
    """One host workload: ``kind`` (see ``KINDS``) over a region of ``size`` bytes, ``repeats``
    measured runs (one more runs first as a warm-up).  ``mmap_small`` times ``loops`` pairs of a
    one-page mmap and munmap per run and reports one pair."""

    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    size: int = 4096
    repeats: int = 5
    loops: int = 2000

    @property
    def key(self) -> str:
        if self.kind == "mmap_small":
            return "mmap+munmap 1 page"
        return f"{LABELS[self.kind]} {format_size(self.size)}"

    @property
    def pages(self) -> int:
        return self.size // 4096

    @property
    def unit(self) -> str:
        return "us" if self.kind == "mmap_small" else "ms"


@attrs.frozen(slots=True)
class Measurement:
    """What the host did: the samples (ns), their median and spread."""

    workload: Workload
    samples: tuple[float, ...]
    shape: Mapping[str, Any]  # the runner's own address space while it ran (replayed in the model)
    by_round: tuple[tuple[float, ...], ...] = ()  # the samples of each interleaved round

    @property
    def drift(self) -> float:
        """Largest over smallest of the rounds' medians (1.0: the host held still)."""
        meds = [float(np.median(r)) for r in self.by_round if r]
        return max(meds) / min(meds) if len(meds) > 1 and min(meds) > 0 else 1.0

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def spread(self) -> float:
        """Interquartile range over the median (0.1 = the middle half within 10%)."""
        q1, q3 = np.percentile(self.samples, [25, 75])
        return float((q3 - q1) / self.median) if self.median else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.workload.key, "kind": self.workload.kind, "size": self.workload.size,
                "median_ns": self.median, "spread": self.spread, "min_ns": min(self.samples),
                "max_ns": max(self.samples), "samples_ns": list(self.samples), "drift": self.drift,
                "round_medians_ns": [float(np.median(r)) for r in self.by_round if r]}


@attrs.frozen(slots=True)
class HostRun:
    """One run of the harness: the host, the cap and what was used of it, the measurements."""

    host: Mapping[str, str]
    cap: int
    baseline_rss: int
    peak_rss: int
    budget_peak: int
    cpu: int | None
    measurements: Mapping[str, Measurement]
    skipped: Mapping[str, str]
    rt: bool = False  # ran SCHED_FIFO (opt-in)

    @property
    def peak_over_baseline(self) -> int:
        return self.peak_rss - self.baseline_rss

    def as_dict(self) -> dict[str, Any]:
        return {"host": dict(self.host), "cap": self.cap, "baseline_rss": self.baseline_rss,
                "peak_rss": self.peak_rss, "peak_over_baseline": self.peak_over_baseline,
                "budget_peak": self.budget_peak, "cpu": self.cpu, "sched_fifo": self.rt,
                "measurements": {k: m.as_dict() for k, m in self.measurements.items()},
                "skipped": dict(self.skipped)}


def host_info() -> dict[str, str]:
    """Host name, kernel (uname), CPU model, date: what a host cost table names."""
    u = platform.uname()
    cpu = ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"host": socket.gethostname(), "kernel": f"{u.system} {u.release} {u.version} {u.machine}",
            "cpu": cpu or u.processor, "cpus": str(os.cpu_count()),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "python": platform.python_version()}


def mem_available() -> int:
    for line in open("/proc/meminfo", encoding="utf-8"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) << 10
    raise OSError("no MemAvailable in /proc/meminfo")


def default_cap() -> int:
    """Half the host's available memory, at most 3 GiB (room for a 2 GiB region and its tables)."""
    return min(mem_available() // 2, 3 << 30)


def parse_cap(text: str | None) -> int | None:
    """``--cap SIZE`` (None: the default cap); a bad size is a usage error naming the option."""
    if not text:
        return None
    from mmframe.units import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise UsageError(f"--cap: {exc}") from None


def check_cap(cap: int) -> int:
    avail = mem_available()
    if cap <= 0 or cap >= avail:
        raise UsageError(f"memory cap {format_size(cap)} must be above 0 and below the host's available "
                         f"memory ({format_size(avail)})")
    return cap


def run_host(workloads: Sequence[Workload], cap: int | None = None, *, progress: bool = True,
             cpu: int | None = -1, true_binary: str | None = None, rt: bool = False, rounds: int = 1) -> HostRun:
    """Run ``workloads`` on the host in a fresh runner process; ``cpu=-1`` pins it to the last CPU
    this process may use, ``None`` leaves it free; ``rt`` asks for SCHED_FIFO (if permitted).

    ``rounds`` interleaves: the whole list runs that many times with its repeats shared out, and
    each workload's samples are pooled, so a host whose speed drifts during the run (a loaded VM
    does, twofold) weighs every workload alike; ``Measurement.by_round`` keeps each round's."""
    cap = check_cap(default_cap() if cap is None else int(cap))
    if cpu == -1:
        cpu = max(os.sched_getaffinity(0))
    true = true_binary or shutil.which("true") or "/bin/true"
    rounds = max(1, int(rounds))
    plan_list = [attrs.evolve(w, repeats=max(1, -(-w.repeats // rounds))) for _ in range(rounds) for w in workloads]
    plan = {"cap": cap, "cpu": cpu, "true": true, "rt": rt,
            "workloads": [{"kind": w.kind, "size": w.size, "repeats": w.repeats, "loops": w.loops}
                          for w in plan_list]}
    proc = subprocess.Popen([sys.executable, "-S", "-E", str(RUNNER)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(plan))
    proc.stdin.close()
    done: dict[int, dict[str, Any]] = {}
    start: dict[str, Any] = {}
    end: dict[str, Any] = {}
    with _progress(progress, plan_list) as tick:
        for line in proc.stdout:
            msg = json.loads(line)
            if "progress" in msg:
                tick(msg["progress"])
            elif "done" in msg:
                done[msg["done"]] = msg
                tick(msg["done"], finished=True)
            elif "start" in msg:
                start = msg["start"]
            elif "end" in msg:
                end = msg["end"]
    err = proc.stderr.read() if proc.stderr else ""
    if proc.wait() != 0 or not end:
        raise RuntimeError(f"host runner failed (exit {proc.returncode}): {err.strip()[-2000:]}")
    measurements, skipped = {}, {}
    for i, w in enumerate(workloads):
        msgs = [done[r * len(workloads) + i] for r in range(rounds)]
        bad = [m["skipped"] for m in msgs if "skipped" in m]
        if bad:
            skipped[w.key] = bad[0]
            continue
        by_round = tuple(tuple(float(x) for x in m["samples"]) for m in msgs)
        measurements[w.key] = Measurement(w, tuple(x for r in by_round for x in r), msgs[0]["shape"], by_round)
    return HostRun(host_info(), cap, start["baseline_rss"], end["peak_rss"], end["budget_peak"], cpu,
                   measurements, skipped, bool(start.get("rt")))


class _progress:
    """A rich progress bar on stderr (nothing when off or when stderr is not a terminal-like sink)."""

    def __init__(self, on: bool, workloads: Sequence[Workload]) -> None:
        self.on, self.workloads = on, workloads

    def __enter__(self) -> Callable[..., None]:
        if not self.on:
            return lambda *a, **k: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("host {task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self.bar.__enter__()
        total = sum(w.repeats for w in self.workloads)
        self.task = self.bar.add_task(self.workloads[0].key if self.workloads else "", total=total)
        self.seen = [0] * len(self.workloads)

        def tick(n: int, finished: bool = False) -> None:
            w = self.workloads[n]
            step = w.repeats - self.seen[n] if finished else 1
            self.seen[n] += step
            nxt = self.workloads[n + 1].key if finished and n + 1 < len(self.workloads) else w.key
            self.bar.update(self.task, advance=step, description=nxt)
        return tick

    def __exit__(self, *exc: object) -> None:
        if self.on:
            self.bar.__exit__(*exc)


def workloads_of(spec: Iterable[tuple[str, int, int]]) -> list[Workload]:
    """``[(kind, size, repeats), ...]`` as workloads."""
    return [Workload(k, s, r) for k, s, r in spec]

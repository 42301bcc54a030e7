"""The model's side of a host workload: the same workload run on a simulated machine, counted.

For a :class:`~mmframe.host.harness.Workload` and the host runner's own address space while it ran
(its ``shape``), :func:`model_counts` runs the same program in the model and returns the counts
of each primitive the measured part made: the workload's equation is then ``sum(count * ns)``.

The simulated machine is the closest to the host the model has (docs/validation.md): PAE (PTE
pages of 512 x 8 B, as x86-64's), HIGHPTE off, one CPU (the runner is pinned to one), 4 GiB.  The
runner's own memory is replayed before the workload: as many VMAs, and in those that hold
anonymous pages as many resident pages (private anonymous, written), laid out so they span as
many 2 MiB PTE pages as on the host.  The workload's region is private anonymous memory, as on
the host, where fork copies its PTEs (Linux skips copying for shared mappings without anonymous
pages, so a shared region would measure nothing there).

What the model charges that the host program does not do is taken out: the ``mark`` calls that
delimit the measured part, and the ``touch`` call through which the model's programs access
memory (each is charged a system call; on the host a load or store is none).
"""

from __future__ import annotations

import functools
import json
from typing import Any, Mapping

import attrs

from mmframe.config import load_config
from mmframe.host.harness import Workload
from mmframe.usr import (MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, execve, exit, fork, mmap, mprotect,
                         munmap, touch, wait)

PAGE = 4096
PMD_SPAN = 2 << 20  # a PAE PTE page maps 2 MiB, as an x86-64 one does
WORK_BASE = 0x1000_0000  # the workload's region: room for 2 GiB below the replica
REPLICA_BASE = 0x9800_0000  # the runner's own memory, replayed
REPLICA_END = 0xBF00_0000
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
MODEL_MEMORY = 4 << 30


def _quit(ctx: Any) -> Any:
    yield exit(0)


def _exec_quit(ctx: Any) -> Any:
    yield execve(_quit)  # the host's child execs true(1), which exits


def replica_layout(shape: Mapping[str, Any]) -> list[tuple[int, int, bool]]:
    """``(addr, pages, touched)`` of the mappings that replay the runner's own address space:
    each host VMA with anonymous pages as a private region of its resident pages (a fresh 2 MiB
    PTE page wherever the host's VMA starts in a 2 MiB region the previous one did not reach),
    every other VMA as one untouched page.  A page of gap keeps neighbours from merging."""
    out: list[tuple[int, int, bool]] = []
    cur, last_region = REPLICA_BASE, None
    anon = sorted(shape.get("anon_vmas", ()), key=lambda v: v["start"])
    for v in anon:
        region = v["start"] // PMD_SPAN
        if region != last_region:
            cur = -(-cur // PMD_SPAN) * PMD_SPAN
        pages = max(int(v["rss"]), 1)
        out.append((cur, pages, True))
        last_region = (v["start"] + pages * PAGE - 1) // PMD_SPAN
        cur += (pages + 1) * PAGE
    for _ in range(max(int(shape.get("vmas", 0)) - len(anon), 0)):
        out.append((cur, 1, False))
        cur += 2 * PAGE
    if cur > REPLICA_END:
        raise ValueError(f"the runner's address space ({cur - REPLICA_BASE} bytes replayed) does not fit the "
                         "model's user space beside the workload")
    return out


def program(ctx: Any, w: Workload, layout: list[tuple[int, int, bool]]) -> Any:
    """The host runner's workload, as a simulated program; marks delimit what is measured."""
    for addr, pages, touched in layout:
        got = yield mmap(addr, pages * PAGE, RW, ANON)
        assert got == addr, (hex(addr), got)
        if touched:
            yield touch(addr, pages * PAGE, True)
    kind, size = w.kind, w.size
    if kind in ("fork", "fork_exit", "fork_exec_exit"):
        base = yield mmap(WORK_BASE, size, RW, ANON)
        yield touch(base, size, True)
        child = _exec_quit if kind == "fork_exec_exit" else _quit
        for phase in ("warm", "measure"):  # the runner warms up with one run first
            yield ("mark", f"{phase} before")
            pid = yield fork(child)
            yield ("mark", f"{phase} forked")
            yield wait(pid)
            yield ("mark", f"{phase} reaped")
        return
    if kind == "mmap_small":
        for phase in ("warm", "measure"):
            yield ("mark", f"{phase} before")
            for _ in range(w.loops):
                p = yield mmap(0, PAGE, RW, ANON)
                yield munmap(p, PAGE)
            yield ("mark", f"{phase} after")
        return
    for phase in ("warm", "measure"):
        base = yield mmap(WORK_BASE, size, RW, ANON)
        if kind in ("munmap", "mprotect"):
            yield touch(base, size, True)
        yield ("mark", f"{phase} before")
        if kind == "write_faults":
            yield touch(base, size, True)
        elif kind == "read_faults":
            yield touch(base, size, False)
        elif kind == "munmap":
            yield munmap(base, size)
        elif kind == "mprotect":
            yield mprotect(base, size, PROT_READ)
        yield ("mark", f"{phase} after")
        if kind != "munmap":
            yield munmap(base, size)


def model_config(memory: int = MODEL_MEMORY) -> Any:
    cfg = load_config(use_pyproject=False, env={})
    return attrs.evolve(cfg, machine=attrs.evolve(cfg.machine, memory=memory, pae=True, highpte=False, cpus=1,
                                                  costs="", debug_vm="off"))


def model_counts(w: Workload, shape: Mapping[str, Any], memory: int = MODEL_MEMORY) -> dict[str, float]:
    """Counts of each primitive in the measured part of ``w`` run in the model (per pair for
    ``mmap_small``); cached per workload and shape."""
    return dict(_cached(w, json.dumps(shape, sort_keys=True), memory))


@functools.lru_cache(maxsize=64)
def _cached(w: Workload, shape_json: str, memory: int) -> tuple[tuple[str, float], ...]:
    from mmframe.machine import Machine

    layout = replica_layout(json.loads(shape_json))
    m = Machine(model_config(memory))
    snaps: dict[str, dict[str, int]] = {}
    parent: list[str] = []

    def mark(task: Any, name: str) -> int:
        if not parent:
            parent.append(task.lineage)
        snaps[name] = m.acct.totals(task=parent[0] if w.kind == "fork" else None)
        return 0

    m.sched.handlers["mark"] = mark
    m.run(program, w, layout)
    m.close()
    end = "measure forked" if w.kind == "fork" else (
        "measure reaped" if w.kind in ("fork_exit", "fork_exec_exit") else "measure after")
    a, b = snaps["measure before"], snaps[end]
    counts = {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}
    counts["syscall"] -= 1  # the closing mark's own charge
    if w.kind in ("write_faults", "read_faults"):
        counts["syscall"] -= 1  # the touch: loads and stores on the host enter no system call
    per = w.loops if w.kind == "mmap_small" else 1
    return tuple(sorted((k, v / per) for k, v in counts.items() if v))

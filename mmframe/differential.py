"""Run one program under two configurations and compare what the program could observe.

Compared per task (keyed by lineage, so pid numbering never matters): the sequence of system calls
with their results (values read, pids as lineages, -errno, signals delivered), how the task ended,
and which tasks were left blocked; and per file, what its blocks hold on the device and which pages
are still dirty (what could be read back from the disk); and the set of I/O completions (each bio's
submitter, direction, sectors, error and the data it moved -- not their order or times).  Simulated
time, counts and the global interleaving are costs and are not compared.  Under memory pressure
(a machine with swap) which pages reclaim writes out, when and from which task is the policy's
choice, so such runs are compared with ``io=False``: everything else, the disk's final content
included, still must match.  The base of the cross-policy tests: policies change cost, not semantics.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs

from mmframe.config import Config
from mmframe.machine import Machine, RunResult


@attrs.frozen(slots=True)
class Difference:
    task: str
    what: str
    a: Any
    b: Any

    def __str__(self) -> str:
        return f"task {self.task}: {self.what}: {self.a!r} != {self.b!r}"


@attrs.frozen(slots=True)
class Comparison:
    a: RunResult
    b: RunResult
    differences: tuple[Difference, ...]

    @property
    def same(self) -> bool:
        return not self.differences

    def report(self, limit: int = 10) -> str:
        if self.same:
            return "no program-visible difference"
        lines = [str(d) for d in self.differences[:limit]]
        if len(self.differences) > limit:
            lines.append(f"... and {len(self.differences) - limit} more")
        return "\n".join(lines)


def compare_results(a: RunResult, b: RunResult, io: bool = True) -> Comparison:
    """The program-visible differences between two runs (``io``: the set of I/O completions too)."""
    diffs: list[Difference] = []
    for lineage in sorted(set(a.tasks) | set(b.tasks)):
        ta, tb = a.tasks.get(lineage), b.tasks.get(lineage)
        if ta is None or tb is None:
            diffs.append(Difference(lineage, "exists", ta is not None, tb is not None))
            continue
        for i, (ca, cb) in enumerate(zip(ta.calls, tb.calls)):
            if ca != cb:
                diffs.append(Difference(lineage, f"call {i + 1}", ca, cb))
                break
        if len(ta.calls) != len(tb.calls):
            diffs.append(Difference(lineage, "number of calls", len(ta.calls), len(tb.calls)))
        if ta.status != tb.status:
            diffs.append(Difference(lineage, "exit status", ta.status, tb.status))
        if ta.signal != tb.signal:
            diffs.append(Difference(lineage, "fatal signal", ta.signal, tb.signal))
    if set(a.blocked) != set(b.blocked):
        diffs.append(Difference("*", "blocked forever", sorted(a.blocked), sorted(b.blocked)))
    if a.disk is not None and b.disk is not None:
        for path in sorted(set(a.disk) | set(b.disk)):
            if a.disk.get(path) != b.disk.get(path):
                diffs.append(Difference("*", f"on disk: {path}", a.disk.get(path), b.disk.get(path)))
    if not io:  # the set of I/O completions left out (a swapping machine's: reclaim's choice)
        return Comparison(a, b, tuple(diffs))
    if a.io is not None and b.io is not None and a.io != b.io:
        only_a = sorted(set(a.io) - set(b.io), key=repr)[:3]
        only_b = sorted(set(b.io) - set(a.io), key=repr)[:3]
        diffs.append(Difference("*", "I/O completions (first few only in each)", only_a or len(a.io),
                                only_b or len(b.io)))
    return Comparison(a, b, tuple(diffs))


def differential(program: Callable[..., Any], args: tuple, config_a: Config, config_b: Config) -> Comparison:
    """Run ``program(*args)`` on a machine built from each config and compare the results."""
    return compare_results(Machine(config_a).run(program, *args), Machine(config_b).run(program, *args))

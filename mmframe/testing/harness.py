"""The differential harness: one program on every combination of installed plugins and elevators,
each run's program-visible results compared exactly with the mainline default's.

*Combinations* are computed from what is installed (:func:`combinations`): every subset of the
policy plugins (those registering no elevator) times every elevator registered (the core's
``deadline``, ``noop``, ``linus`` and each elevator plugin's, that plugin enabled exactly when one of
its elevators is chosen).  A plugin installed later joins the matrix without an edit.

*Baseline* is the mainline default: no plugin, the embedded config's elevator (``deadline``).

*Comparison* is :func:`mmframe.differential.compare_results`: per task the system calls and their
results, exit status and signals; what the files hold on disk; the set of I/O completions.  Every
run has the checker (``debug_vm = "syscall"``: the invariants after every system call).

A divergence raises :class:`Divergence`, whose message holds a program to paste into a Python shell
that reproduces it (hypothesis shrinks the operation list first).  :data:`STATS` counts what was
checked per combination; the pytest plugin (:mod:`mmframe.testing`) prints it after the run.

*Machine*: 16 MiB (the smallest: the checker's cost after each system call grows with memory);
``vm={"swap": N}`` gives it swap, and then the set of I/O completions is not compared (reclaim's own
I/O is the policy's choice) while everything else is, the disk's final content included.

Cost: one run per combination per program; a program of the default generator is ~10 operations
(~100 system calls with the setup and the read-back), ~0.1 s of CPU per run with the checker
after every system call, more with memory pressure.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any, Callable, Iterable, Sequence

import attrs

from mmframe.config import DEFAULT_DISK, Config, load_config, override_layer
from mmframe.differential import compare_results
from mmframe.machine import Machine, RunResult
from mmframe.plugin import CORE, discover_entry_points

MiB = 1 << 20


@attrs.frozen(slots=True)
class Combination:
    """A policy set and the elevator of the machine's disk."""

    plugins: tuple[str, ...]
    elevator: str

    @property
    def label(self) -> str:
        return f"{'+'.join(self.plugins) or 'mainline'}/{self.elevator}"

    def __str__(self) -> str:
        return self.label


def installed_plugins() -> list[str]:
    """Names of the plugins installed (entry points of group ``mmframe``)."""
    return [ep.name for ep in discover_entry_points()]


def _config(plugins: Iterable[str], elevator: str | None = None) -> Config:
    layers = [override_layer({f"block.{DEFAULT_DISK}.elevator": elevator}, "mmframe.testing combination")] \
        if elevator else []
    return load_config(use_pyproject=False, env={}, cli_plugins=list(plugins), extra_layers=layers)


def baseline() -> Combination:
    """The mainline default: no plugin, the embedded config's elevator."""
    cfg = _config(())
    return Combination((), next(d.elevator for d in cfg.disks if d.name == DEFAULT_DISK))


def combinations(plugins: Iterable[str] | None = None, include: Iterable[str] = ()) -> list[Combination]:
    """Every combination of ``plugins`` (default: all installed) and the elevators they and the core
    register, the baseline first; ``include``: only those whose policy set holds these plugins."""
    plugins = sorted(installed_plugins() if plugins is None else plugins)
    owners = {name: owner for name, (_, owner) in _config(plugins).elevators.items()
              if owner == CORE or owner in plugins}
    elevator_plugins = {o for o in owners.values() if o in plugins}
    policy = [p for p in plugins if p not in elevator_plugins]
    base = baseline()
    out = [base]
    for n in range(len(policy) + 1):
        for subset in itertools.combinations(policy, n):
            for elv, owner in sorted(owners.items()):
                pl = tuple(sorted({*subset, *([owner] if owner in elevator_plugins else [])}))
                c = Combination(pl, elv)
                if c != base:
                    out.append(c)
    need = set(include)
    return [c for c in out if c == base or need <= set(c.plugins)] if need else out


def machine_for(combo: Combination, memory: int = 16 * MiB, debug: str = "syscall", vm: dict[str, Any] | None = None,
                **machine_kw: Any) -> Machine:
    """A machine for ``combo`` (``machine_kw``: [machine] keys such as highpte, pae; ``vm``: [vm] keys
    such as ``swap``), the checker on.  16 MiB, the smallest machine, by default: the checker's cost
    after every system call grows with memory."""
    cfg = _config(combo.plugins, combo.elevator)
    vmc = attrs.evolve(cfg.vm, **vm) if vm else cfg.vm
    return Machine(attrs.evolve(cfg, vm=vmc, machine=attrs.evolve(cfg.machine, memory=memory, debug_vm=debug,
                                                                  **machine_kw)))


# label -> [programs, generated operations, system calls] checked against the baseline
STATS: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])


def count_ops(ops: Sequence[Any]) -> int:
    """Operations of a generated program, those of fork/spawn/clone children included."""
    n = 0
    for op in ops:
        n += 1
        if op and op[0] in ("fork", "spawn", "clone"):
            n += count_ops(op[1])
    return n


_LAST_DIVERGED: list[Combination] = []


class Divergence(AssertionError):
    """A combination's program-visible results differ from the baseline's."""


def reproducer(ops: Any, combo: Combination, machine_kw: dict[str, Any], differences: str,
               program: str = "mmframe.testing.programs:run_program") -> str:
    """Text to paste into Python that runs the program on the baseline and ``combo`` and compares."""
    return (f"{combo.label} differs from the mainline default:\n{differences}\n"
            f"--- reproduce with:\n"
            f"from mmframe.testing.harness import Combination, reproduce\n"
            f"ops = {ops!r}\n"
            f"print(reproduce(ops, Combination({combo.plugins!r}, {combo.elevator!r}), "
            f"program={program!r}, **{machine_kw!r}))\n")


def _resolve(program: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(program):
        return program
    import importlib
    mod, _, name = program.partition(":")
    return getattr(importlib.import_module(mod), name)


def reproduce(ops: Any, combo: Combination, program: str | Callable[..., Any] = "mmframe.testing.programs:run_program",
              **machine_kw: Any) -> str:
    """Run ``ops`` on the baseline and ``combo``; the comparison's report."""
    prog = _resolve(program)
    a = machine_for(baseline(), **machine_kw).run(prog, ops)
    b = machine_for(combo, **machine_kw).run(prog, ops)
    return compare_results(a, b, io=_compare_io(machine_kw)).report()


def _compare_io(machine_kw: dict[str, Any]) -> bool:
    """The set of I/O completions is compared unless the machine swaps (reclaim's own I/O is the
    policy's choice; :mod:`mmframe.differential`)."""
    return not (machine_kw.get("vm") or {}).get("swap")


def check_program(ops: Any, combos: Sequence[Combination] | None = None,
                  program: str | Callable[..., Any] = "mmframe.testing.programs:run_program",
                  **machine_kw: Any) -> dict[str, RunResult]:
    """Run ``ops`` on the baseline and every combination; raise :class:`Divergence` (with a
    reproducer) on the first that differs.  Returns the runs by label."""
    combos = combinations() if combos is None else list(combos)
    # the combination that diverged last goes first: while hypothesis shrinks a failing program
    # each attempt then costs two runs, not up to one per combination
    combos.sort(key=lambda c: c not in _LAST_DIVERGED)
    prog = _resolve(program)
    base = baseline()
    ref = machine_for(base, **machine_kw).run(prog, ops)
    runs = {base.label: ref}
    nops = count_ops(ops) if isinstance(ops, (list, tuple)) else 1
    compare_io = _compare_io(machine_kw)
    for combo in combos:
        if combo == base:
            continue
        r = machine_for(combo, **machine_kw).run(prog, ops)
        cmp = compare_results(ref, r, io=compare_io)
        if cmp.differences:
            _LAST_DIVERGED[:] = [combo]
            name = program if isinstance(program, str) else f"{prog.__module__}:{prog.__qualname__}"
            raise Divergence(reproducer(ops, combo, machine_kw, cmp.report(), name))
        runs[combo.label] = r
        s = STATS[combo.label]
        s[0] += 1
        s[1] += nops
        s[2] += r.syscalls
    return runs


def report(stats: dict[str, list[int]] | None = None) -> str:
    """What was checked per combination, one line each."""
    stats = STATS if stats is None else stats
    if not stats:
        return ""
    w = max(len(k) for k in stats)
    lines = [f"{'combination':{w}}  programs  operations  syscalls  (each compared with {baseline().label})"]
    lines += [f"{k:{w}}  {p:8}  {o:10}  {s:8}" for k, (p, o, s) in sorted(stats.items()) if p]
    checked = [v for v in stats.values() if v[0]]
    lines.append(f"{len(checked)} combinations; {sum(v[0] for v in checked)} program runs, "
                 f"{sum(v[1] for v in checked)} operations, {sum(v[2] for v in checked)} system calls compared")
    return "\n".join(lines)

"""``program``: a user's own simulated program (``mmframe run --program FILE.py:NAME``).

``NAME`` in ``FILE.py`` is a generator function ``prog(ctx, *args)`` yielding system calls from
:mod:`mmframe.usr` (docs/programs.md); it runs as pid 1 under each configured policy set, and the
table shows its costs beside each other; how every task ended (exit status, signal, out-of-memory
kill) is summarised below the table.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from mmframe.options import Option
from mmframe.scenario import Figure, OptionProblem, Scenario, ScenarioContext


def load_program(path: str, name: str) -> Callable[..., Any]:
    """The generator function ``name`` of the Python file ``path``; OptionProblem when it is not one."""
    p = Path(path)
    if not p.is_file():
        raise OptionProblem("file", f"no such file {path!r}", "a Python file defining the program")
    modname = f"mmframe_user_program_{abs(hash(str(p.resolve())))}"
    mod = sys.modules.get(modname)
    if mod is None:
        spec = importlib.util.spec_from_file_location(modname, p)
        if spec is None or spec.loader is None:
            raise OptionProblem("file", f"cannot load {path!r} as Python", "a .py file")
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:  # noqa: BLE001 - the user's file: reported, not a traceback
            raise OptionProblem("file", f"{path} raised on import: {type(exc).__name__}: {exc}") from None
        sys.modules[modname] = mod
    fn = getattr(mod, name, None)
    if not inspect.isgeneratorfunction(fn):
        found = [n for n, v in vars(mod).items() if inspect.isgeneratorfunction(v) and not n.startswith("_")]
        raise OptionProblem("entry", f"{path} has no generator function {name!r}",
                            ", ".join(found) or "a generator function prog(ctx, ...) yielding system calls")
    return fn


def check(params: Mapping[str, Any], machine: Any) -> None:
    if not params["file"]:
        raise OptionProblem("file", "no program given", "mmframe run --program FILE.py:NAME, or file = ...")
    load_program(params["file"], params["entry"])


def run(ctx: ScenarioContext) -> Mapping[str, Any]:
    p = ctx.params
    prog = load_program(p["file"], p["entry"])
    m = ctx.machine()
    r = m.run(prog, *p["args"])
    counts = r.counts
    figures = {
        "sim_ms": r.sim_ns / 1e6,
        "syscalls": r.syscalls,
        "faults": counts.get("page_fault", 0),
        "copied": counts.get("copy_page", 0),
        "context_switches": r.context_switches,
        "tlb_flushes": r.tlb["switch_mm"] + r.tlb["flush_tlb_mm"] + r.tlb["flush_tlb_range"],
        "tasks": len(r.tasks),
    }
    figures.update(m.close())
    return figures


SCENARIO = Scenario(
    name="program",
    help="a user's program (mmframe run --program FILE.py:NAME) under each policy set",
    run=run,
    options=(
        Option("file", "str", "", "Python file with the program"),
        Option("entry", "str", "main", "the generator function to run as pid 1"),
        Option("args", "list[str]", [], "string arguments passed after ctx"),
    ),
    figures=(
        Figure("sim_ms", "simulated time", "ms", "time"),
        Figure("syscalls", "system calls", "", "count"),
        Figure("faults", "page faults", "", "count"),
        Figure("copied", "pages copied", "", "count"),
        Figure("context_switches", "context switches", "", "count"),
        Figure("tlb_flushes", "TLB flushes", "", "count"),
        Figure("tasks", "tasks", "", "count"),
    ),
    check=check,
    models="whatever the program does: its system calls on the simulated machine",
    sources=("docs/programs.md (the program interface)",),
)

"""The plugin author's test kit: a pytest plugin (loaded automatically through the ``pytest11``
entry point wherever mmframe is installed) with fixtures for machines with your plugin enabled, the
generated-program helpers and the differential harness over every combination that includes your
plugin; the mutation script is :mod:`mmframe.testing.mutants`.

Fixtures (override ``mmframe_plugin`` in your conftest.py, or set ``mmframe_plugin = "NAME"`` in
``[tool.pytest.ini_options]``):

* ``mmframe_plugin`` -- the name of the plugin under test (None: none);
* ``mmframe_machine(memory=..., elevator=None, plugins=None, **machine_keys)`` -- a
  :class:`~mmframe.machine.Machine` with the plugin enabled (and its elevator chosen when it
  registers one), the invariant checker after every system call;
* ``mmframe_combinations`` -- the combinations of installed plugins and elevators that include
  yours (:func:`mmframe.testing.harness.combinations`);
* ``mmframe_differential(ops, program=..., **machine_keys)`` -- run a program on the mainline
  default and on each of those combinations (a 16 MiB machine; ``vm={"swap": N}`` for swap),
  raising with a reproducer on a difference.

Program helpers: :mod:`mmframe.testing.programs` (``program_strategy()``,
``sharing_program_strategy()`` and ``swap_program_strategy()`` for hypothesis, ``run_program``,
``anon``; ``register`` adds operations; ``run_ops``/``do`` run lists with a table of a test's own
operations).  Docs: docs/plugins.md.
"""

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["harness", "programs", "mutants"]


def __getattr__(name: str) -> Any:  # the submodules on first use (hypothesis only when needed)
    if name in __all__:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(name)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("mmframe_plugin", "mmframe.testing: the plugin under test (its entry-point name)", default="")


@pytest.fixture
def mmframe_plugin(request: pytest.FixtureRequest) -> str | None:
    """The plugin under test: the ``mmframe_plugin`` ini key (override this fixture to name it)."""
    return request.config.getini("mmframe_plugin") or None


def _own_elevators(plugin: str | None) -> list[str]:
    if not plugin:
        return []
    from mmframe.testing.harness import _config
    return sorted(n for n, (_, owner) in _config([plugin]).elevators.items() if owner == plugin)


@pytest.fixture
def mmframe_machine(mmframe_plugin: str | None):
    """A factory of machines with the plugin under test enabled (its first elevator on the disk when
    it registers elevators), ``debug_vm = "syscall"``."""
    from mmframe.testing.harness import MiB, Combination, machine_for

    def make(memory: int = 64 * MiB, elevator: str | None = None, plugins: tuple[str, ...] | None = None,
             **machine_keys: Any):
        pl = tuple(plugins) if plugins is not None else ((mmframe_plugin,) if mmframe_plugin else ())
        own = _own_elevators(mmframe_plugin) if plugins is None else []
        elv = elevator or (own[0] if own else "deadline")
        return machine_for(Combination(pl, elv), memory=memory, **machine_keys)

    return make


@pytest.fixture
def mmframe_combinations(mmframe_plugin: str | None):
    """The combinations the differential harness runs: those including the plugin under test (all
    of them when none is named), the baseline first."""
    from mmframe.testing.harness import combinations
    return combinations(include=[mmframe_plugin] if mmframe_plugin else [])


@pytest.fixture
def mmframe_differential(mmframe_combinations):
    """``check(ops, program=..., **machine_keys)``: the program on every combination of
    ``mmframe_combinations``, compared with the mainline default (raises ``Divergence``)."""
    from mmframe.testing.harness import check_program

    def check(ops: Any, program: Any = "mmframe.testing.programs:run_program", **machine_keys: Any):
        return check_program(ops, mmframe_combinations, program=program, **machine_keys)

    return check


def pytest_terminal_summary(terminalreporter: Any) -> None:
    import sys
    h = sys.modules.get("mmframe.testing.harness")
    if h is not None and h.STATS:
        terminalreporter.write_sep("-", "mmframe differential harness: checked per combination")
        terminalreporter.write_line(h.report())

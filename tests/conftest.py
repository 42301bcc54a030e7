"""Shared fixtures: installing throw-away plugin distributions that entry-point discovery finds."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest

from mmframe.config import load_config
from tests.support import (active_elevator, active_policies, agnostic_only, check_factors, hypothesis_profile,
                           uses_the_policy_set)

check_factors()  # a tox factor naming a plugin that is not installed stops the run here, naming it

_counter = itertools.count()


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a plugin as a real distribution (dist-info with an ``mmframe`` entry point) on sys.path.

    Returns the module name; ``source`` is the plugin module's code.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(name: str, source: str, dist: str | None = None, version: str = "1.0") -> str:
        modname = f"mmtest_{name}_{next(_counter)}"
        (site / f"{modname}.py").write_text(textwrap.dedent(source))
        dist = dist or f"mmframe-test-{name}"
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[mmframe]\n{name} = {modname}\n")
        return modname

    return install


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without pyproject.toml above it and no MMFRAME_PLUGINS."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MMFRAME_PLUGINS", raising=False)
    return work


@pytest.fixture
def config(isolated: Path):
    """The embedded default config (no pyproject, no env)."""
    return load_config(use_pyproject=False, env={})


def pytest_report_header(config) -> str:
    pols = ", ".join(active_policies()) or "mainline (no plugin)"
    return (f"mmframe policy set for policy-agnostic tests: {pols}; elevator: {active_elevator() or 'default'}; "
            f"hypothesis profile: {hypothesis_profile()}")


@pytest.fixture
def policies() -> tuple[str, ...]:
    """The policy set of this run (``MMFRAME_PLUGINS``), for policy-agnostic tests."""
    return active_policies()


def pytest_collection_modifyitems(config, items) -> None:
    """MMFRAME_AGNOSTIC_ONLY=1 (tox.ini): only the tests the policy set can change; the rest are
    deselected, counted in pytest's summary."""
    if not agnostic_only():
        return
    keep = [i for i in items if uses_the_policy_set(i)]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if not uses_the_policy_set(i)])
        items[:] = keep

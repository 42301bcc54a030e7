"""The mutation list stays true to the code, and CI kills its fast subset (tools/mutants.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("mutants", ROOT / "tools" / "mutants.py")
mutants = importlib.util.module_from_spec(spec)
sys.modules.setdefault("mutants", mutants)
spec.loader.exec_module(mutants)
ALL = mutants.load_mutants()


@pytest.mark.parametrize("m", ALL, ids=[m.name for m in ALL])
def test_mutant_applies_to_exactly_one_place(m):
    assert mutants.check_applies(m, ROOT) is None
    assert m.old != m.new and m.tests


def test_every_area_has_a_fast_mutant():
    areas = {m.name.split(".")[0] for m in ALL}
    fast = {m.name.split(".")[0] for m in ALL if m.fast}
    assert areas == fast, f"areas without a mutant in the CI subset: {sorted(areas - fast)}"


def test_the_fast_subset_is_killed():
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "mutants.py"), "--fast", "-j", "2"],
                       capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert p.returncode == 0, p.stdout + p.stderr[-2000:]
    assert " 0 survived" in p.stdout

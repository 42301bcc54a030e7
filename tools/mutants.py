#!/usr/bin/env python3
"""The project's mutation check: ``mmframe.testing.mutants`` (the one script, also the plugin kit's)
run on this tree with the lists in ``tools/mutants_<area>.py``.  Usage: see that module."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this tree's mmframe, whatever is installed

from mmframe.testing import mutants as _m  # noqa: E402

Mutant, check_applies, run_one, select = _m.Mutant, _m.check_applies, _m.run_one, _m.select


def load_mutants(tools_dir: Path = ROOT / "tools") -> list:
    return _m.load_mutants(tools_dir)


def main(argv: list[str] | None = None) -> int:
    return _m.main(argv, tree=ROOT)


if __name__ == "__main__":
    sys.exit(main())

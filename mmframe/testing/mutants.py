"""The mutation check: named mutants that the test suite must kill.

A mutant is one textual change to one source file (``old`` must occur exactly once there) and the
tests that should fail because of it.  Each is applied to a private copy of the tree (tracked and
untracked-but-not-ignored files), where the named tests run in a fresh interpreter with the copy
first on ``sys.path`` (so an editable install of the real tree does not shadow it).  A mutant is
*killed* when those tests fail, *survived* when they pass.

The list is ``MUTANTS`` of every ``mutants_<area>.py`` in the tree's ``tools/`` directory (or the
files ``--list-from`` names), so each area keeps its own list and the script stays one.  The project
runs it as ``tools/mutants.py`` (a thin launcher); authors of third-party plugins run it on their own
package as ``python -m mmframe.testing.mutants --tree DIR --list-from DIR/mutants.py``
(docs/plugins.md).

    python tools/mutants.py                 # every mutant, 2 at a time
    python tools/mutants.py --fast          # the subset CI runs (tests/test_mutants.py)
    python tools/mutants.py NAME [NAME...]  # some mutants by name (or area prefix "rmap.")
    python tools/mutants.py --list          # names, files and tests

Exit status 0 when every mutant selected was killed, 1 when one survived, 2 on a mutant whose text
no longer matches its file (the list must follow the code).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, NamedTuple

ROOT = Path.cwd()  # the tree mutated by default: where the command runs


class Mutant(NamedTuple):
    """``name`` is ``area.what``; ``tests`` are pytest node ids or paths relative to the tree."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    fast: bool = False  # in the CI subset


# The core's own mutants; areas add theirs in tools/mutants_<area>.py.
MUTANTS: list[Mutant] = []


def load_mutants(tools_dir: Path | None = None, files: Iterable[Path] = ()) -> list[Mutant]:
    """Every mutant: ``MUTANTS`` of each ``mutants_<area>.py`` in ``tools_dir`` (default: ``tools/`` of
    the current directory) and of each file in ``files``, by name."""
    found = list(MUTANTS)
    paths = sorted((tools_dir or ROOT / "tools").glob("mutants_*.py")) if tools_dir or not files else []
    for path in [*paths, *map(Path, files)]:
        spec = importlib.util.spec_from_file_location(f"_mutants_{path.stem}", path)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        sys.modules.setdefault("mutants", sys.modules[__name__])
        spec.loader.exec_module(mod)
        found.extend(Mutant(*m) if not isinstance(m, Mutant) else m for m in mod.MUTANTS)
    names = [m.name for m in found]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SystemExit(f"mutants: duplicate names {sorted(dup)}")
    return found


def check_applies(m: Mutant, tree: Path = ROOT) -> str | None:
    """None when ``m.old`` occurs exactly once in its file, else why not."""
    f = tree / m.path
    if not f.is_file():
        return f"{m.path}: no such file"
    n = f.read_text().count(m.old)
    return None if n == 1 else f"{m.path}: the old text occurs {n} times (must be once)"


def _copy_tree(tree: Path, dest: Path) -> None:
    try:
        out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=tree, check=True,
                             capture_output=True).stdout.decode()
        files = [f for f in out.split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = [str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file() and ".git" not in p.parts]
    for rel in files:
        src = tree / rel
        if not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    if (dest / "plugins").is_dir() and not (dest / "mmframe_plugins").exists():
        (dest / "mmframe_plugins").symlink_to(dest / "plugins", target_is_directory=True)


def run_one(m: Mutant, tree: Path = ROOT, timeout: float = 900.0) -> tuple[str, float, str]:
    """Apply ``m`` in a private copy of ``tree`` and run its tests: (verdict, seconds, tail of output)."""
    why = check_applies(m, tree)
    if why:
        return "stale", 0.0, why
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmframe-mutant-") as tmp:
        work = Path(tmp)
        _copy_tree(tree, work)
        f = work / m.path
        f.write_text(f.read_text().replace(m.old, m.new, 1))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(work), os.environ.get("PYTHONPATH", "")]),
                   MMFRAME_HYPOTHESIS_PROFILE=os.environ.get("MMFRAME_HYPOTHESIS_PROFILE", "ci"))
        for var in [v for v in env if v.startswith("MMFRAME_") and v != "MMFRAME_HYPOTHESIS_PROFILE"]:
            env.pop(var)  # the policy set of a tox environment (MMFRAME_PLUGINS, the factor variables)
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *m.tests]
        try:
            p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "killed (timeout)", time.perf_counter() - t0, ""
    dt = time.perf_counter() - t0
    tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-3:])
    if p.returncode == 0:
        return "survived", dt, tail
    if p.returncode == 1:
        return "killed", dt, tail
    if p.returncode == 2:
        return "killed (collection)", dt, tail
    return f"error (pytest exit {p.returncode})", dt, tail


def select(mutants: Iterable[Mutant], names: list[str], fast: bool) -> list[Mutant]:
    out = [m for m in mutants if (not fast or m.fast)]
    if names:
        out = [m for m in out if any(m.name == n or m.name.startswith(n.rstrip(".") + ".") for n in names)]
        missing = [n for n in names if not any(m.name == n or m.name.startswith(n.rstrip(".") + ".") for m in out)]
        if missing:
            raise SystemExit(f"mutants: no mutant named {missing}")
    return out


def main(argv: list[str] | None = None, tree: Path | None = None) -> int:
    """The command line; ``tree`` is the default ``--tree`` (the current directory when None)."""
    tree = tree or ROOT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="mutant names or area prefixes")
    ap.add_argument("--fast", action="store_true", help="only the CI subset")
    ap.add_argument("--list", action="store_true", help="list and check the mutants, run nothing")
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--tree", type=Path, default=tree, help="the source tree to mutate (default: %(default)s)")
    ap.add_argument("--list-from", type=Path, action="append", default=[], metavar="FILE",
                    help="a Python file whose MUTANTS list to use (repeatable; default: TREE/tools/mutants_*.py)")
    args = ap.parse_args(argv)
    tree = args.tree.resolve()
    chosen = select(load_mutants(None if args.list_from else tree / "tools", args.list_from), args.names, args.fast)
    stale = [(m, why) for m in chosen if (why := check_applies(m, tree))]
    if args.list:
        for m in chosen:
            print(f"{m.name:40} {m.path:36} {'fast ' if m.fast else ''}{' '.join(m.tests)}")
        for m, why in stale:
            print(f"STALE {m.name}: {why}")
        return 2 if stale else 0
    results: dict[str, tuple[str, float, str]] = {}
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = {pool.submit(run_one, m, tree): m for m in chosen}
        for fut in cf.as_completed(futs):
            m = futs[fut]
            results[m.name] = fut.result()
            print(f"  {results[m.name][0]:22} {m.name} ({results[m.name][1]:.1f} s)", file=sys.stderr, flush=True)
    width = max((len(m.name) for m in chosen), default=10)
    print(f"{'mutant':{width}}  verdict")
    for m in chosen:
        verdict, dt, tail = results[m.name]
        print(f"{m.name:{width}}  {verdict} ({dt:.1f} s)")
        if verdict == "survived" or verdict.startswith(("error", "stale")):
            print("    " + tail.replace("\n", "\n    "))
    killed = sum(1 for v, _, _ in results.values() if v.startswith("killed"))
    survived = [n for n, (v, _, _) in results.items() if v == "survived"]
    print(f"{killed} killed, {len(survived)} survived, {len(stale)} stale, of {len(chosen)}")
    if stale:
        return 2
    return 1 if survived or killed < len(chosen) else 0


if __name__ == "__main__":
    sys.exit(main())

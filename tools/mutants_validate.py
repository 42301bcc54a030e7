"""Named mutants of the validation feature (issue 23), in the shape of the project's one mutation
list (name, file, exact old text, new text, the test command that must fail).  The integrator
folds them into tools/mutants.py; run this file to check each one is killed:

    python tools/mutants_validate.py            # every mutant
    python tools/mutants_validate.py NAME ...   # some
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
T = "python -m pytest -x -q -p no:cacheprovider tests/test_validation.py"

MUTANTS = [
    {"name": "validate-fit-on-held-out", "file": "mmframe/calibrate.py",
     "old": "    workloads = FIT_SET + EXTENDED if args.extend else FIT_SET\n",
     "new": "    workloads = HELD_OUT + EXTENDED if args.extend else HELD_OUT\n",
     "test": T + " -k cli_calibrate"},
    {"name": "validate-held-out-overlaps-fit", "file": "mmframe/calibrate.py",
     "old": '    Workload("fork", 256 * MiB, 7), Workload("fork", GiB, 5),',
     "new": '    Workload("fork", 64 * MiB, 7), Workload("fork", GiB, 5),',
     "test": T + " -k the_sets"},
    {"name": "validate-drop-column", "file": "mmframe/calibrate.py",
     "old": "        rows.append([float(c.get(n, 0.0)) for n in names])\n",
     "new": '        rows.append([float(c.get(n, 0.0)) if n != "page_ref" else 0.0 for n in names])\n',
     "test": T + " -k cost_file_loads"},
    {"name": "validate-fit-drops-column", "file": "mmframe/fit.py",
     "old": "    active = p > 0  # an entry that costs nothing in the prior stays at nothing\n",
     "new": "    active = (p > 0) & (np.arange(len(p)) != 14)\n",
     "test": T + " -k recovers"},
    {"name": "validate-prior-ignored", "file": "mmframe/fit.py",
     "old": "np.eye(k) / (tau * s0)])",
     "new": "np.eye(k) * 0.0])",
     "test": T + " -k uniformly_scaled"},
    {"name": "validate-noise-unweighted", "file": "mmframe/fit.py",
     "old": "    stacked = np.vstack([m[:, active] / sig[:, None], np.eye(k) / (tau * s0)])\n",
     "new": "    stacked = np.vstack([m[:, active], np.eye(k) / (tau * s0)])\n",
     "test": T + " -k noise_is_weighed"},
    {"name": "validate-nnls-allows-negative", "file": "mmframe/fit.py",
     "old": "            if (z[idx] > 0).all():\n",
     "new": "            if True:\n",
     "test": T + " -k nnls"},
    {"name": "validate-cap-ignored", "file": "mmframe/host/runner.py",
     "old": "        if self.used + n > self.cap:\n",
     "new": "        if False:\n",
     "test": T + " -k cap_it_reports"},
    {"name": "validate-peak-from-rusage", "file": "mmframe/host/runner.py",
     "old": '    emit({"end": {"peak_rss": status_kib("VmHWM") << 10, "budget_peak": budget.peak}})\n',
     "new": '    emit({"end": {"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10, '
            '"budget_peak": budget.peak}})\n',
     "test": T + " -k cap_it_reports"},
    {"name": "validate-mark-charged", "file": "mmframe/host/model.py",
     "old": '    counts["syscall"] -= 1  # the closing mark\'s own charge\n',
     "new": "",
     "test": T + " -k artefacts"},
    {"name": "validate-touch-is-a-syscall", "file": "mmframe/host/model.py",
     "old": '        counts["syscall"] -= 1  # the touch: loads and stores on the host enter no system call\n',
     "new": "        pass\n",
     "test": T + " -k artefacts"},
    {"name": "validate-runner-not-replayed", "file": "mmframe/host/model.py",
     "old": "    for addr, pages, touched in layout:\n        got = yield mmap(addr, pages * PAGE, RW, ANON)\n",
     "new": "    for addr, pages, touched in layout[:0]:\n        got = yield mmap(addr, pages * PAGE, RW, ANON)\n",
     "test": T + " -k runners_own_pages"},
    {"name": "validate-unreached-not-scaled", "file": "mmframe/calibrate.py",
     "old": "            entries.append(CostEntry(e.name, round(e.ns * f.s0, 3), \"derived\",",
     "new": "            entries.append(CostEntry(e.name, round(e.ns, 3), \"derived\",",
     "test": T + " -k cost_file_loads"},
]


def run(mutant: dict) -> bool:
    """Apply, run the test command, restore; True if the mutant is killed (the tests fail)."""
    path = ROOT / mutant["file"]
    text = path.read_text()
    if text.count(mutant["old"]) != 1:
        raise SystemExit(f"{mutant['name']}: the old text is not found exactly once in {mutant['file']}")
    try:
        path.write_text(text.replace(mutant["old"], mutant["new"]))
        cmd = mutant["test"].replace("python ", f"{sys.executable} ", 1)
        r = subprocess.run(cmd, shell=True, cwd=ROOT, capture_output=True, text=True)
        return r.returncode != 0
    finally:
        path.write_text(text)


if __name__ == "__main__":
    names = sys.argv[1:]
    chosen = [m for m in MUTANTS if not names or m["name"] in names]
    survived = []
    for m in chosen:
        killed = run(m)
        print(f"{'killed  ' if killed else 'SURVIVED'} {m['name']}")
        if not killed:
            survived.append(m["name"])
    sys.exit(1 if survived else 0)

"""Every combination of the installed plugins and elevators keeps the mainline default's
program-visible results (mmframe.testing.harness), and the harness itself finds a planted difference,
prints a program that reproduces it and counts what it checked per combination."""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmframe.testing import harness
from mmframe.testing.harness import Combination, Divergence, check_program, combinations
from mmframe.testing.programs import (SWAP_MACHINE, program_strategy, sharing_program_strategy,
                                      swap_program_strategy)
from tests.support import examples

COMBOS = combinations()  # the baseline first, then every other combination of what is installed
# The CI budget, in runs of a generated program (each with the checker after every system call:
# ~0.2 s of CPU), whatever the number of combinations -- 56 with the shipped plugins and the example
# (pt_shared, reserve, walker on/off x deadline, noop, linus, three rbtree elevators, sstf); more
# with third-party plugins installed.  Every program runs on every combination; the long profile
# (MMFRAME_HYPOTHESIS_PROFILE=long) runs ten times as many programs.
RUNS = {"calls": 560, "sharing": 280, "swap": 112}


def programs_for(kind: str) -> int:
    return examples(max(2, RUNS[kind] // len(COMBOS)))


@settings(max_examples=programs_for("calls"), deadline=None)
@given(program_strategy(min_size=6), st.booleans(), st.booleans())
def test_every_combination_keeps_the_mainline_defaults_program_visible_results(ops, highpte, pae):
    """Every call: memory, files, pipes, /dev/zero, mremap, mlock, madvise, mincore, direct and
    async I/O, shm, fork, clone, exec; PTE-page edges."""
    check_program(ops, COMBOS, highpte=highpte, pae=pae)


@settings(max_examples=programs_for("sharing"), deadline=None)
@given(sharing_program_strategy(), st.booleans())
def test_changes_to_ranges_a_fork_shares_keep_the_mainline_defaults_results(ops, pae):
    """Biased to pt_shared's hard cases: fork after populating, the child held alive while the
    parent munmaps, mprotects, writes, maps into, mremaps or drops part or all of a PTE page of
    the range they share, then both sides read it (writes on both sides of the fork)."""
    check_program(ops, COMBOS, pae=pae)


@settings(max_examples=programs_for("swap"), deadline=None)
@given(swap_program_strategy())
def test_swap_under_sharing_keeps_the_mainline_defaults_results(ops):
    """A 16 MiB machine with 64 MiB of swap: balloons push the program's pages (some in tables a
    fork shares) out to swap and later accesses bring them back; nothing is exhausted (no OOM
    kill), and every result matches (the set of I/O completions is reclaim's choice: not compared)."""
    check_program(ops, COMBOS, **SWAP_MACHINE)


def test_the_combinations_are_every_policy_subset_times_every_elevator(install_plugin):
    install_plugin("fakepol", "from mmframe.facade import hookimpl\n")
    install_plugin("fakeelv", """
        from mmframe.facade import Elevator, hookimpl
        from mmframe.block.noop import Noop

        class Fifo(Noop):
            name = "fakefifo"

        @hookimpl
        def mmframe_elevators():
            return [Fifo]
    """)
    got = {(c.plugins, c.elevator) for c in combinations(["fakepol", "fakeelv"])}
    elevators = {"deadline": (), "noop": (), "linus": (), "fakefifo": ("fakeelv",)}
    want = {(tuple(sorted({*pols, *own})), elv) for pols in ((), ("fakepol",)) for elv, own in elevators.items()}
    assert got == want and len(got) == 8
    assert combinations(["fakepol", "fakeelv"])[0] == Combination((), "deadline")  # the mainline default first
    only = combinations(["fakepol", "fakeelv"], include=["fakeelv"])
    assert {c.label for c in only} == {"mainline/deadline", "fakeelv/fakefifo", "fakeelv+fakepol/fakefifo"}


BUGGY = """
    from mmframe.facade import VM_FAULT_SIGBUS, hookimpl

    @hookimpl
    def mmframe_handle_mm_fault(vm, mm, vma, address, write_access):
        # wrong on purpose: a write fault on the last entry of the second PTE page of the harness's region is a SIGBUS
        bad = write_access and 0x3040_0000 <= address < 0x3080_0000 and (address >> 12) % 1024 == 1023
        return VM_FAULT_SIGBUS if bad else None
"""


def test_a_planted_difference_is_found_with_a_program_that_reproduces_it(install_plugin):
    install_plugin("buggy", BUGGY)
    combos = [Combination((), "deadline"), Combination(("buggy",), "noop")]
    fine = [("ptp_write", 1, 1022, 5)]
    runs = check_program(fine, combos)
    assert set(runs) == {"mainline/deadline", "buggy/noop"}
    with pytest.raises(Divergence) as e:
        check_program([("ptp_write", 1, 1023, 5)], combos)
    text = str(e.value)
    assert "buggy/noop differs from the mainline default" in text and "ptp_write" in text
    code = text.split("--- reproduce with:\n", 1)[1]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code, {})
    assert "task 1" in out.getvalue() and "no program-visible difference" not in out.getvalue()


def test_the_harness_counts_programs_and_operations_of_every_combination(install_plugin):
    install_plugin("fakepol", "from mmframe.facade import hookimpl\n")
    combos = combinations(["fakepol"])
    before = {c.label: list(harness.STATS[c.label]) for c in combos}
    ops = [("ptp_touch", 1, 0, 2, True), ("fork", [("ptp_write", 0, 1023, 9)], False), ("write", 3, 4)]
    check_program(ops, combos)
    for c in combos[1:]:
        p, o, s = (a - b for a, b in zip(harness.STATS[c.label], before[c.label]))
        assert (p, o) == (1, 4) and s > 10, c.label
    assert len(combos) == 6  # fakepol on/off x deadline, noop, linus
    assert "programs  operations  syscalls" in harness.report()


def test_the_harness_machines_run_the_checker_after_every_system_call():
    for combo in COMBOS[:3]:
        assert harness.machine_for(combo).cfg.machine.debug_vm == "syscall"


def test_the_kit_runs_the_mutation_script_on_a_third_party_tree():
    """The example plugin's own mutants, killed by its own kit tests (python -m mmframe.testing.mutants)."""
    import subprocess
    import sys
    from pathlib import Path
    ex = Path(__file__).resolve().parent.parent / "examples" / "sstf"
    p = subprocess.run([sys.executable, "-m", "mmframe.testing.mutants", "--tree", str(ex), "--list-from",
                        str(ex / "mutants.py"), "--fast", "-j", "2"], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0 and " 0 survived" in p.stdout, p.stdout + p.stderr[-2000:]


def test_tox_generates_sixteen_environments_each_setting_its_factors_variables():
    """The tox matrix as tox itself reads it: pt_shared, reserve, walker on/off x deadline/rbtree,
    each factor's variable set exactly in its environments, and only the mainline default's
    environment running the whole suite (the others: MMFRAME_AGNOSTIC_ONLY=1)."""
    import itertools
    import subprocess
    import sys
    from pathlib import Path
    pytest.importorskip("tox", reason="tox reads the matrix: installed with mmframe's test extra, not in tox's own envs")
    root = Path(__file__).resolve().parent.parent
    names = ["-".join(f) for f in itertools.product(("no_pt_shared", "pt_shared"), ("no_reserve", "reserve"),
                                                      ("no_walker", "walker"), ("deadline", "rbtree"))]
    p = subprocess.run([sys.executable, "-m", "tox", "config", "-e", ",".join(names), "-k", "set_env"],
                       capture_output=True, text=True, cwd=root, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    envs = {}
    for block in p.stdout.split("[testenv:")[1:]:
        name, _, body = block.partition("]")
        envs[name] = {ln.strip().split("=", 1)[0]: ln.strip().split("=", 1)[1]
                      for ln in body.splitlines() if "=" in ln and not ln.strip().startswith("set_env")}
    assert sorted(envs) == sorted(names) and len(envs) == 16
    for name, env in envs.items():
        f = name.split("-")
        assert (env.get("MMFRAME_PT_SHARED") == "1") == ("pt_shared" in f), name
        assert (env.get("MMFRAME_RESERVE") == "1") == ("reserve" in f), name
        assert (env.get("MMFRAME_WALKER") == "1") == ("walker" in f), name
        assert env.get("MMFRAME_ELEVATOR") == f[3] and env.get("MMFRAME_PLUGINS") == "", name
        baseline = name == "no_pt_shared-no_reserve-no_walker-deadline"
        assert (env.get("MMFRAME_AGNOSTIC_ONLY") == "1") == (not baseline), name


def test_an_agnostic_only_run_keeps_exactly_the_tests_that_use_the_policy_set(tmp_path):
    from types import SimpleNamespace

    from tests.support import uses_the_policy_set
    uses = tmp_path / "test_uses.py"
    uses.write_text("from tests import support\n\ndef machine():\n    return support.elevator_layers()\n")
    other = tmp_path / "test_other.py"
    other.write_text("# active_policies() in a comment\nX = 'active_elevator()'\ndef test_x(): pass\n")
    item = lambda path, fixtures=(): SimpleNamespace(fixturenames=fixtures, module=SimpleNamespace(__file__=str(path)))
    assert uses_the_policy_set(item(uses))
    assert uses_the_policy_set(item(other, ("tmp_path", "policies")))
    assert not uses_the_policy_set(item(other, ("tmp_path",)))
    assert not uses_the_policy_set(SimpleNamespace(fixturenames=()))  # a doctest or other non-module item

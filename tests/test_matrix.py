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
from mmframe.testing.programs import program_strategy
from tests.support import examples

COMBOS = combinations()  # the baseline first, then every other combination of what is installed
# CI budget: ~300 runs of a generated program in all (~80 ms of CPU each: ~25 s), whatever the number
# of combinations (12 with the shipped plugins: pt_shared on/off x 6 elevators; 48 with reserve and
# walker; more with third-party plugins installed); the long profile runs ten times as many.
PROGRAMS = max(4, 300 // len(COMBOS))


@settings(max_examples=examples(PROGRAMS), deadline=None)
@given(program_strategy(min_size=6), st.booleans(), st.booleans())
def test_every_combination_keeps_the_mainline_defaults_program_visible_results(ops, highpte, pae):
    check_program(ops, COMBOS, highpte=highpte, pae=pae)


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

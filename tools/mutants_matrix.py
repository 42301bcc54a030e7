"""Named mutants of the differential harness (mmframe/testing/harness.py); see tools/mutants.py."""

H = "mmframe/testing/harness.py"
T = "tests/test_matrix.py"
T_PLANTED = f"{T}::test_a_planted_difference_is_found_with_a_program_that_reproduces_it"
T_COUNTS = f"{T}::test_the_harness_counts_programs_and_operations_of_every_combination"
T_COMBOS = f"{T}::test_the_combinations_are_every_policy_subset_times_every_elevator"

MUTANTS = [
    # every combination compared with itself instead of the mainline default: nothing can differ
    ("matrix.wrong_baseline", H, "cmp = compare_results(ref, r)", "cmp = compare_results(r, r)", (T_PLANTED,), True),
    # the baseline is a policy combination, not the mainline default
    ("matrix.baseline_not_mainline", H, "    return Combination((), next(", "    return Combination(('fakepol',), next(",
     (T_COMBOS,), False),
    # the last combination silently left out
    ("matrix.skips_a_combination", H, "        if combo == base:\n            continue",
     "        if combo == base or combo == combos[-1]:\n            continue", (T_COUNTS,), True),
    # an elevator plugin's elevator chosen without enabling the plugin (or left out)
    ("matrix.elevator_plugin_not_enabled", H,
     "pl = tuple(sorted({*subset, *([owner] if owner in elevator_plugins else [])}))",
     "pl = tuple(sorted(subset))", (T_COMBOS,), False),
    # the checker off in the harness's machines
    ("matrix.no_checker", H, 'debug: str = "syscall", **machine_kw', 'debug: str = "off", **machine_kw',
     (f"{T}::test_the_harness_machines_run_the_checker_after_every_system_call",), False),
]

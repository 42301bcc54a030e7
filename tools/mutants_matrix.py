"""Named mutants of the differential harness (mmframe/testing/harness.py) and of each shipped plugin,
caught by the harness's generated programs (tests/test_matrix.py); see tools/mutants.py."""

H = "mmframe/testing/harness.py"
T = "tests/test_matrix.py"
T_PLANTED = f"{T}::test_a_planted_difference_is_found_with_a_program_that_reproduces_it"
T_COUNTS = f"{T}::test_the_harness_counts_programs_and_operations_of_every_combination"
T_COMBOS = f"{T}::test_the_combinations_are_every_policy_subset_times_every_elevator"
T_CALLS = f"{T}::test_every_combination_keeps_the_mainline_defaults_program_visible_results"
T_SHARING = f"{T}::test_changes_to_ranges_a_fork_shares_keep_the_mainline_defaults_results"
T_SWAP = f"{T}::test_swap_under_sharing_keeps_the_mainline_defaults_results"
PT = "plugins/pt_shared/__init__.py"

MUTANTS = [
    # every combination compared with itself instead of the mainline default: nothing can differ
    ("matrix.wrong_baseline", H, "cmp = compare_results(ref, r, io=compare_io)",
     "cmp = compare_results(r, r, io=compare_io)", (T_PLANTED,), True),
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
    ("matrix.no_checker", H, 'debug: str = "syscall", vm', 'debug: str = "off", vm',
     (f"{T}::test_the_harness_machines_run_the_checker_after_every_system_call",), False),
    # the set of I/O completions compared on a swapping machine: reclaim's own I/O is the policy's
    # choice, so the harness reports a divergence that is none
    ("matrix.swap_compares_io", H, '    return not (machine_kw.get("vm") or {}).get("swap")', "    return True",
     (T_SWAP,), False),

    # --- each shipped plugin's semantic mutants, caught by the generated programs at the CI budget ---
    # pt_shared: a partial munmap of a shared table done at the PMD level (drops the whole table)
    ("matrix.pt_shared_partial_zap_at_pmd", PT, 'if whole and reason == "zap":', 'if reason == "zap":',
     (T_SHARING,), False),
    # pt_shared: a write fault into a write-protected shared table not unsharing it
    ("matrix.pt_shared_write_fault_no_unshare", PT,
     "    if write_access and not vm.pmd_writable(mm, idx):", "    if False:", (T_SHARING,), False),
    # elevator_rbtree: a request dispatched is lost (its I/O never completes)
    ("matrix.elevator_rbtree_drop_on_dispatch", "plugins/elevator_rbtree/iosched.py",
     "        self._fifo_del(drq)\n        self.dispatch.append(drq.rq)", "        self._fifo_del(drq)",
     (T_CALLS,), False),
    # reserve: the pool hands a page out and keeps it (the same page to two allocations)
    ("matrix.reserve_pool_hands_page_twice", "plugins/reserve/__init__.py",
     "        return pool.pop(pick)[0]\n", "        return pool[pick][0]\n", (T_CALLS,), False),
    # walker: the page walk skips every other page (direct I/O moves the wrong pages)
    ("matrix.walker_skips_a_page", "plugins/walker/__init__.py",
     "            addr += PAGE_SIZE\n    return 0", "            addr += 2 * PAGE_SIZE\n    return 0",
     (T_CALLS,), False),
]

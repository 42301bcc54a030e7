"""Named mutants of the results layer, sweeps and the CLI's run/compare (issue 25); see tools/mutants.py.

Each entry: (name, file, exact old text, new text, tests that must fail, in the fast CI subset).
Until tools/mutants.py lands, ``python tools/mutants_ux.py [NAME...]`` checks them on its own.
"""

C = "tests/test_compare.py"
MUTANTS = [
    ("ux.host_figures_get_ratios", "mmframe/results.py",
     'scalar_cols.append(Column(f.key, "", header(f.label, f.unit), f.unit, f.kind in RATIO_KINDS))',
     'scalar_cols.append(Column(f.key, "", header(f.label, f.unit), f.unit, True))',
     (f"{C}::test_default_table_fits_100_columns_with_sizes_and_no_noisy_ratios",), True),
    ("ux.no_units_in_headers", "mmframe/results.py",
     'def header(label: str, unit: str) -> str:\n    return f"{label} ({unit})" if unit else label',
     'def header(label: str, unit: str) -> str:\n    return label',
     (f"{C}::test_custom_sizes_show_only_their_rows_with_units",), True),
    ("ux.blocked_set_is_an_error", "mmframe/config.py",
     "        if blocked:  # blocked with no:NAME on a higher layer: the set is left out, not an error",
     "        if False:",
     (f"{C}::test_blocking_a_plugin_of_the_default_policy_sets_leaves_its_column_out",), True),
    ("ux.oom_kill_not_marked", "mmframe/scenario.py",
     'o = Outcome(t.lineage, "killed", signal=name, oom=oom and name == "SIGKILL")',
     'o = Outcome(t.lineage, "killed", signal=name, oom=False)',
     (f"{C}::test_a_task_killed_for_lack_of_memory_is_shown_killed",), True),
    ("ux.identical_runs_not_merged", "mmframe/sweep.py",
     "                if ident in seen:", "                if False:",
     (f"{C}::test_a_column_is_named_by_every_plugin_enabled_in_it",), True),
    ("ux.manifest_of_the_config_not_the_machine", "mmframe/scenario.py",
     "        self.manifests.append(m.manifest())", "        self.manifests.append(Machine(self.config).manifest())",
     (f"{C}::test_json_manifest_records_the_machine_the_scenario_ran",), True),
    ("ux.plot_linear_axes", "mmframe/plot.py", "                if axis.log:", "                if False:",
     (f"{C}::test_plot_fork_scaling_axes_legend_title",), True),
    ("ux.debug_vm_any_string", "mmframe/config.py", 'Option("debug_vm", "choice", "off",',
     'Option("debug_vm", "str", "off",', (f"{C}::test_debug_vm_bogus_is_a_config_error",), True),
    ("ux.cost_file_stray_table", "mmframe/costs.py", '            if key not in ("meta", "entries"):',
     "            if False:", (f"{C}::test_a_stray_table_in_a_cost_file_is_a_config_error",), True),
    ("ux.progress_on_stdout", "mmframe/compare.py",
     "self.stream = stream if stream is not None else sys.stderr",
     "self.stream = stream if stream is not None else sys.stdout",
     (f"{C}::test_each_scenario_small_table_json_csv",), False),
    ("ux.scenario_check_skipped", "mmframe/config.py", "    if scen.check is None:\n        return\n    try:",
     "    if True:\n        return\n    try:", (f"{C}::test_fork_scaling_size_not_below_memory_is_a_config_error",), True),
    ("ux.wheel_misses_block", "pyproject.toml", '"mmframe", "mmframe.block", ', '"mmframe", ',
     (f"{C}::test_wheel_built_from_the_tree_has_every_module",), False),
]


if __name__ == "__main__":  # pragma: no cover - a stand-in runner until tools/mutants.py is on main
    import shutil
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    wanted = set(sys.argv[1:])
    bad = 0
    for name, path, old, new, tests, _fast in MUTANTS:
        if wanted and name not in wanted:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "t"
            shutil.copytree(root, tree, ignore=shutil.ignore_patterns(".git", "*.egg-info", "__pycache__",
                                                                      ".hypothesis", "build"))
            f = tree / path
            text = f.read_text()
            assert text.count(old) == 1, f"{name}: old text occurs {text.count(old)} times in {path}"
            f.write_text(text.replace(old, new))
            env = {**__import__("os").environ, "PYTHONPATH": str(tree)}
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                               cwd=tree, env=env, capture_output=True, text=True)
            killed = r.returncode != 0
            bad += not killed
            print(f"{'killed  ' if killed else 'SURVIVED'} {name}", flush=True)
    sys.exit(1 if bad else 0)

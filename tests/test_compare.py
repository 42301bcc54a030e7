"""``mmframe run`` / ``compare``: tables, JSON, CSV, plots, progress, and the rough edges of issue 25.

Each scenario runs at small sizes; every defect the issue lists has a test that would have caught it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from mmframe.cli import main
from mmframe.config import load_config, user_layers
from mmframe.results import SCHEMA, percentile, render_text, to_csv, to_json
from mmframe.scenario import all_scenarios, run_one
from mmframe.sweep import build_sweep, matrix_sets, run_job
from tests.support import examples

REPO = Path(__file__).resolve().parents[1]
SMALL = {
    "fork-scaling": 'sizes = ["4MiB", "8MiB"]\nmemory = "64MiB"\n',
    "sga": 'memory = "64MiB"\nsize = "8MiB"\nchildren = 6\n',
    "shell": "commands = 6\n",
    "spawn": "children = 3\npages = 8\n",
    "io-depth": "depth = 4\nrequests = 60\n",
    "replay": "",
    "pressure-atomic": "workers = 3\nrounds = 2\n",
}
PROGRAMS = {"fork-scaling", "sga", "shell", "spawn", "pressure-atomic"}  # the scenarios that run simulated programs


def write(dirpath: Path, text: str, name: str = "run.toml") -> Path:
    p = dirpath / name
    p.write_text(textwrap.dedent(text))
    return p


def scen_config(dirpath: Path, name: str, policies: str = '[[], ["pt_shared"]]', extra: str = "") -> Path:
    return write(dirpath, f'[scenario]\nname = "{name}"\npolicies = {policies}\n{SMALL.get(name, "")}{extra}')


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([*argv])
    out, err = capsys.readouterr()
    return rc, out, err


def lines_fit(text: str, width: int = 100) -> bool:
    return all(len(line) <= width for line in text.splitlines())


# --- every scenario at small sizes: table, JSON, CSV ---------------------------------------------

@pytest.mark.parametrize("name", sorted(SMALL))
def test_each_scenario_small_table_json_csv(isolated, capsys, name):
    assert name in all_scenarios(load_config(use_pyproject=False, env={}).catalog)
    path = scen_config(isolated, name)
    rc, out, err = run_cli(capsys, "run", str(path), "--workers", "1")
    assert rc == 0, err
    assert lines_fit(out) and "Traceback" not in err
    assert "mainline" in out and "pt_shared" in out and "×" in out  # ratio to the mainline run
    assert "wall time" not in out  # host timings only with --timings
    assert ("programs:" in out) == (name in PROGRAMS) and "done" in err and "done" not in out  # progress: stderr
    rc, js, _ = run_cli(capsys, "run", str(path), "--workers", "1", "--json", "--quiet")
    doc = json.loads(js)
    check_schema(doc)
    scen = all_scenarios(load_config(path, env={}).catalog)[name][0]
    for run in doc["runs"]:
        for key, fig in run["figures"].items():
            declared = scen.figure(key)
            if declared is not None:
                assert fig["unit"] == declared.unit and fig["kind"] == declared.kind
    rc, text, _ = run_cli(capsys, "run", str(path), "--workers", "1", "--csv", "--quiet")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and {r["combination"] for r in rows} == {"mainline", "pt_shared"}


def check_schema(doc: dict) -> None:
    """The results file's shape, checked field by field (docs/results.md documents it)."""
    assert doc["schema"] == SCHEMA and isinstance(doc["mmframe"], str)
    assert set(doc) == {"schema", "mmframe", "sweep", "scenarios", "runs"}
    for name, meta in doc["scenarios"].items():
        assert {"help", "models", "sources", "figures", "axes", "references"} <= set(meta)
        for f in meta["figures"].values():
            assert set(f) == {"label", "unit", "kind", "axis"}
    for run in doc["runs"]:
        assert set(run) >= {"job", "status", "error", "params", "figures", "counters", "outcomes", "manifest"}
        job = run["job"]
        assert set(job) == {"index", "key", "scenario", "label", "policies", "elevator", "seed", "grid"}
        assert run["status"] == "ok" and run["error"] is None
        assert all(isinstance(v, int) for v in run["counters"].values())
        for fig in run["figures"].values():
            assert set(fig) == {"label", "unit", "kind", "axis", "value"}
            if fig["axis"]:
                assert all(isinstance(p, list) and len(p) == 2 for p in fig["value"])
            elif fig["kind"] == "distribution":
                assert isinstance(fig["value"], list)
            else:
                assert isinstance(fig["value"], (int, float, str))  # text: e.g. what a replay did not replay
        for o in run["outcomes"]:
            assert o["how"] in ("exited", "killed", "blocked")
        m = run["manifest"]
        assert {"mmframe", "hook_contract", "seed", "machine", "plugins", "cost_table"} <= set(m)
        assert set(m["plugins"]) == set(job["policies"])


# --- the defects of issue 25 ----------------------------------------------------------------------

def test_fork_scaling_size_not_below_memory_is_a_config_error(isolated, capsys):
    path = write(isolated, '[scenario]\nname = "fork-scaling"\nsizes = ["2GiB"]\nmemory = "2GiB"\n')
    rc, out, err = run_cli(capsys, "run", str(path))
    assert rc == 2 and "Traceback" not in err and out == ""
    assert f"{path}:3: scenario.sizes:" in err and "does not fit" in err


def test_sga_segment_above_memory_is_a_config_error(isolated, capsys):
    path = write(isolated, '[scenario]\nname = "sga"\nsize = "2GiB"\nmemory = "1GiB"\n')
    rc, out, err = run_cli(capsys, "run", str(path))
    assert rc == 2 and "scenario.size:" in err and "Traceback" not in err


def test_custom_sizes_show_only_their_rows_with_units(isolated, capsys):
    path = write(isolated, '[scenario]\nname = "fork-scaling"\npolicies = [[]]\nsizes = ["8MiB"]\n'
                           'memory = "64MiB"\n')
    rc, out, err = run_cli(capsys, "run", str(path), "--quiet")
    assert rc == 0, err
    assert "8MiB" in out and "4MiB" not in out.split("sizes=")[1].split("\n", 1)[1]
    assert "fork (ms)" in out and "PageTables (kB)" in out
    assert not re.search(r"^\s*\S+\s+mainline\s+-\s", out, re.M)  # no dash rows
    assert "8388608" not in out  # sizes never as raw bytes


def test_a_task_killed_for_lack_of_memory_is_shown_killed(isolated, capsys):
    # overcommit_memory = 1: the default heuristic (2.5.49's vm_enough_memory) would refuse the forks
    path = write(isolated, '[machine]\nmemory = "16MiB"\n[vm]\novercommit_memory = 1\n[scenario]\nname = "spawn"\n'
                           'policies = [[]]\nchildren = 4\npages = 2500\n')
    rc, out, err = run_cli(capsys, "run", str(path), "--quiet")
    assert rc == 0, err
    assert re.search(r"mainline: 5 tasks: \d killed by SIGKILL \(out of memory\)", out)
    rc, js, _ = run_cli(capsys, "run", str(path), "--quiet", "--json")
    outcomes = json.loads(js)["runs"][0]["outcomes"]
    assert any(o["how"] == "killed" and o["signal"] == "SIGKILL" and o["oom"] for o in outcomes)


@pytest.mark.parametrize("how", ["-p", "env", "config"])
def test_a_column_is_named_by_every_plugin_enabled_in_it(isolated, capsys, monkeypatch, how):
    extra = '[plugins]\nenable = ["pt_shared"]\n' if how == "config" else ""
    path = write(isolated, extra + '[scenario]\nname = "spawn"\npolicies = [[], ["pt_shared"]]\nchildren = 2\n'
                                   'pages = 4\n')
    argv = ["run", str(path), "--json", "--quiet"]
    if how == "-p":
        argv += ["-p", "pt_shared"]
    if how == "env":
        monkeypatch.setenv("MMFRAME_PLUGINS", "pt_shared")
    rc, js, err = run_cli(capsys, *argv)
    runs = json.loads(js)["runs"]
    assert rc == 0 and [r["job"]["label"] for r in runs] == ["pt_shared"]  # one run, not two identical
    assert runs[0]["job"]["policies"] == ["pt_shared"] and "pt_shared" in runs[0]["manifest"]["plugins"]
    assert "same plugins" in err


def test_blocking_a_plugin_of_the_default_policy_sets_leaves_its_column_out(isolated, capsys):
    rc, out, err = run_cli(capsys, "run", "-p", "no:pt_shared", "--set", 'scenario.sizes=["4MiB"]',
                           "--set", 'scenario.memory="64MiB"', "--quiet")
    assert rc == 0, err
    assert "left out: pt_shared blocked" in err and "embedded" not in err
    assert "mainline" in out and "pt_shared" not in out.split("programs:")[0].split("ratio")[-1]


def test_debug_vm_bogus_is_a_config_error(isolated, capsys):
    path = write(isolated, '[machine]\ndebug_vm = "bogus"\n')
    rc, _, err = run_cli(capsys, "run", str(path))
    assert rc == 2 and "machine.debug_vm" in err and "'exit'" in err


def test_a_stray_table_in_a_cost_file_is_a_config_error(isolated, capsys):
    costs = write(isolated, "[entries.syscall]\nns = 400\nkind = 'estimate'\nsource = 'x'\n[entriez.fork]\nns = 1\n",
                  "costs.toml")
    path = write(isolated, f'[machine]\ncosts = "{costs}"\n[scenario]\nname = "spawn"\n')
    rc, out, err = run_cli(capsys, "run", str(path))
    assert rc == 2 and "entriez" in err and "costs.toml" in err and "started" not in err


CLAIM = """
from mmframe.hookspecs import hookimpl
@hookimpl
def mmframe_alloc_pages(alloc, gfp_mask, order, cpu):
    return None
"""


def test_plugin_conflicts_in_a_later_policy_set_are_found_before_anything_runs(isolated, capsys, install_plugin):
    install_plugin("one", CLAIM)
    install_plugin("two", CLAIM)
    path = write(isolated, '[scenario]\nname = "spawn"\npolicies = [[], ["one"], ["one", "two"]]\n')
    rc, out, err = run_cli(capsys, "run", str(path))
    assert rc == 2 and "more than one enabled plugin" in err
    assert "started" not in err and "done" not in err and out == ""


def test_json_manifest_records_the_machine_the_scenario_ran(isolated, capsys):
    path = write(isolated, '[scenario]\nname = "fork-scaling"\npolicies = [[]]\nsizes = ["4MiB"]\n'
                           'memory = "256MiB"\n')
    rc, js, _ = run_cli(capsys, "run", str(path), "--json", "--quiet")
    run = json.loads(js)["runs"][0]
    assert run["manifest"]["machine"]["memory"] == 256 << 20
    assert run["figures"]["fork"]["unit"] == "ms" and run["figures"]["fork"]["value"][0][0] == 4 << 20
    rc, js, _ = run_cli(capsys, "run", "--set", 'scenario.sizes=["4MiB"]', "--json", "--quiet")
    assert json.loads(js)["runs"][0]["manifest"]["machine"]["memory"] == 4 << 30  # the scenario's 4GiB


def test_long_runs_report_progress_within_the_run(isolated):
    cfg = load_config(scen_config(isolated, "sga", "[[]]"), env={})
    steps: list[tuple[float, float]] = []
    run_one(cfg, lambda done, total: steps.append((done, total)))
    assert len(steps) >= 6 and steps[-1][0] <= steps[-1][1] and steps == sorted(steps)
    cfg = load_config(scen_config(isolated, "fork-scaling", "[[]]"), env={})
    steps.clear()
    run_one(cfg, lambda done, total: steps.append((done, total)))
    assert steps[-1] == (12 << 20, 12 << 20)


def test_default_table_fits_100_columns_with_sizes_and_no_noisy_ratios(isolated, capsys):
    rc, out, err = run_cli(capsys, "run", "--set", 'scenario.sizes=["4MiB", "40MiB"]', "--quiet")
    assert rc == 0, err
    assert lines_fit(out) and "4MiB" in out and "41943040" not in out and "wall" not in out
    assert "fork at 40MiB" in out and "28.4 ms" in out  # the published figure, as a ratio
    rc, out, _ = run_cli(capsys, "run", "--set", 'scenario.sizes=["4MiB"]', "--quiet", "--timings")
    wall_rows = [line for line in out.splitlines() if "wall" in line]
    assert wall_rows and lines_fit(out)
    table = out.split("simulator wall time (s)")[1].split("\n\n")[0]
    assert "×" not in table  # host timings never get a ratio


def test_docs_point_only_at_files_in_the_repository():
    texts = [p for p in REPO.rglob("*") if p.suffix in (".md", ".py", ".toml") and ".git" not in p.parts
             and "egg-info" not in str(p) and p.name != Path(__file__).name]
    offenders = [str(p.relative_to(REPO)) for p in texts
                 if re.search(r"shared/reference|DESIGN\.md|\.\./shared", p.read_text(encoding="utf-8"))]
    assert not offenders
    for md in REPO.rglob("*.md"):  # markdown links stay inside the repository and exist
        for target in re.findall(r"\]\(([^)#:]+)\)", md.read_text(encoding="utf-8")):
            assert (md.parent / target).resolve().is_relative_to(REPO) and (md.parent / target).exists(), target


# --- compare -------------------------------------------------------------------------------------

def test_compare_names_missing_plugins_and_elevators_with_what_is_available(isolated, capsys):
    # names that no installed distribution provides (the shipped set grows as plugins land)
    rc, out, err = run_cli(capsys, "compare", "--matrix", "pt_shared,nosuch_a,nosuch_b")
    assert rc == 2 and "'nosuch_a', 'nosuch_b'" in err and "available: " in err and "pt_shared" in err
    assert out == ""
    rc, out, err = run_cli(capsys, "compare", "--elevators", "deadline,nosuch-elv")
    assert rc == 2 and "--elevators" in err and "'nosuch-elv'" in err and "deadline" in err and "noop" in err


def test_matrix_is_every_subset_smallest_first():
    assert matrix_sets(["a", "b", "c"]) == [(), ("a",), ("b",), ("c",), ("a", "b"), ("a", "c"), ("b", "c"),
                                            ("a", "b", "c")]


def test_compare_matrix_elevators_seeds(isolated, capsys):
    path = scen_config(isolated, "spawn", "[[]]")
    rc, js, err = run_cli(capsys, "compare", str(path), "--matrix", "pt_shared", "--elevators", "noop,deadline",
                          "--seeds", "2", "--json", "--workers", "1")
    assert rc == 0, err
    doc = json.loads(js)
    check_schema(doc)
    labels = [(r["job"]["label"], r["job"]["seed"]) for r in doc["runs"]]
    assert labels == [(lab, s) for lab in ("mainline / deadline", "pt_shared / deadline", "mainline / noop",
                                           "pt_shared / noop") for s in (0, 1)]
    assert doc["sweep"]["elevators"] == ["deadline", "noop"] and doc["sweep"]["seeds"] == [0, 1]
    for r in doc["runs"]:
        assert r["manifest"]["seed"] == r["job"]["seed"]
    rc, out, _ = run_cli(capsys, "compare", str(path), "--matrix", "pt_shared", "--elevators", "noop,deadline",
                         "--seeds", "2", "--quiet", "--workers", "1")
    assert "ratio to mainline / deadline" in out and lines_fit(out)


def test_compare_policy_sets_and_set(isolated, capsys):
    rc, js, err = run_cli(capsys, "compare", "--policy", "mainline", "--policy", "pt_shared",
                          "--set", 'scenario.name="spawn"', "--set", "scenario.children=2",
                          "--set", "scenario.pages=4", "--json", "--quiet")
    assert rc == 0, err
    runs = json.loads(js)["runs"]
    assert [r["job"]["label"] for r in runs] == ["mainline", "pt_shared"]
    assert all(r["params"]["children"] == 2 for r in runs)


@pytest.mark.parametrize("item,key", [("scenario.children=0", "scenario.children"),
                                      ("machine.cpus=99", "machine.cpus"), ("scenario.nope=1", "scenario.nope"),
                                      ("bogus=1", "bogus")])
def test_bad_set_is_a_config_error_naming_the_key(isolated, capsys, item, key):
    rc, out, err = run_cli(capsys, "compare", "--set", 'scenario.name="spawn"', "--set", item)
    assert rc == 2 and f"command line (--set): {key}:" in err and "Traceback" not in err


def test_parallel_and_serial_runs_give_the_same_bytes(isolated, capsys):
    path = scen_config(isolated, "spawn")
    outs = []
    for workers in ("1", "2"):
        rc, js, err = run_cli(capsys, "compare", str(path), "--seeds", "2", "--json", "--quiet", "--workers", workers)
        assert rc == 0, err
        outs.append(js)
    assert outs[0] == outs[1]


FAILING = """
from mmframe.hookspecs import hookimpl
from mmframe.scenario import Figure, Scenario

def _run(ctx):
    m = ctx.machine()
    if ctx.config.machine.seed == 1:
        raise RuntimeError("seed one is cursed")
    m.close()
    return {"lat": [float(i) for i in range(1, 101)], "n": 7}

@hookimpl
def mmframe_scenarios():
    return [Scenario("cursed", "fails for seed 1", _run,
                     figures=(Figure("lat", "read latency", "ms", "distribution"), Figure("n", "n", "", "count")))]
"""


def test_a_failed_run_is_reported_and_the_others_finish(isolated, capsys, install_plugin):
    install_plugin("cursed", FAILING)
    path = write(isolated, '[plugins]\nenable = ["cursed"]\n[scenario]\nname = "cursed"\npolicies = [[]]\n')
    rc, out, err = run_cli(capsys, "compare", str(path), "--seeds", "3", "--workers", "1")
    assert rc == 1
    assert "seed 1) failed: RuntimeError: seed one is cursed" in err
    assert "seed one is cursed" in out  # listed under the table too
    assert "read latency p99 (ms)" in out and "99" in out  # the others' distribution, as percentiles
    rc, js, _ = run_cli(capsys, "compare", str(path), "--seeds", "3", "--workers", "1", "--json", "--quiet")
    runs = json.loads(js)["runs"]
    assert [r["status"] for r in runs] == ["ok", "failed", "ok"]


def test_dry_run_lists_the_runs_and_runs_nothing(isolated, capsys):
    rc, out, err = run_cli(capsys, "compare", "--matrix", "pt_shared", "--seeds", "2", "--dry-run")
    assert rc == 0 and len(out.splitlines()) == 4 and "started" not in err


def test_program_runs_a_users_program_under_each_policy_set(isolated, capsys):
    prog = write(isolated, """
        from mmframe.usr import *

        def main(ctx):
            base = yield mmap(0, 64 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
            yield touch(base, 64 * PAGE_SIZE, True)
            pid = yield fork()
            if pid == 0:
                yield write(0, 1)  # SIGSEGV: nothing is mapped at 0
            yield wait(pid)
            pid = yield fork()
            if pid == 0:
                yield exit(3)
            yield wait(pid)
    """, "prog.py")
    rc, out, err = run_cli(capsys, "run", "--program", f"{prog}:main", "--quiet")
    assert rc == 0, err
    assert "program:" in out and "pt_shared" in out and "page faults" in out
    assert "mainline: 3 tasks: 1 exited 0, 1 killed by SIGSEGV, 1 exited 3" in out
    rc, _, err = run_cli(capsys, "run", "--program", f"{prog}:nosuch")
    assert rc == 2 and "scenario.entry" in err and "main" in err
    rc, _, err = run_cli(capsys, "run", "--program", f"{isolated}/missing.py:main")
    assert rc == 2 and "scenario.file" in err


def test_scenarios_lists_options_what_it_models_and_sources(isolated, capsys):
    rc, out, _ = run_cli(capsys, "scenarios")
    assert rc == 0 and lines_fit(out)
    rc, js, _ = run_cli(capsys, "scenarios", "--json")
    data = json.loads(js)
    assert {d["name"] for d in data} >= {"fork-scaling", "sga", "shell", "spawn", "program"}
    for d in data:
        assert d["models"] and d["sources"] and d["figures"], d["name"]
        assert d["name"] in out and d["models"][:30] in " ".join(out.split())
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for d in data:  # the README documents every scenario and its figures
        assert f"`{d['name']}`" in readme
        for f in d["figures"]:
            if f["kind"] != "host":
                assert f["key"].split(" ")[0].rsplit(".", 1)[-1] in readme, (d["name"], f["key"])


# --- plots ---------------------------------------------------------------------------------------

def _records(isolated, name, policies='[[], ["pt_shared"]]'):
    path = scen_config(isolated, name, policies)
    cfg = load_config(path, env={})
    sweep = build_sweep(cfg, user_layers(path), [])
    return [run_job(j) for j in sweep.jobs], all_scenarios(cfg.catalog)[name][0]


def test_plot_fork_scaling_axes_legend_title(isolated, tmp_path):
    pytest.importorskip("matplotlib")
    from mmframe.plot import make_figure, save_plot
    recs, scen = _records(isolated, "fork-scaling")
    fig = make_figure(scen, recs)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "resident" and ax.get_ylabel() == "fork (ms)" and ax.get_title() == "fork"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mainline", "pt_shared"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4MiB", "8MiB"]
    assert fig._suptitle.get_text().startswith("fork-scaling:")
    assert len(fig.axes) == 4 and fig.axes[3].get_ylabel() == "PageTables (kB)"
    ys = ax.get_lines()[0].get_ydata()
    assert list(ys) == [r for _, r in recs[0]["figures"]["fork"]]
    out = tmp_path / "fork.png"
    save_plot(fig, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_sga_lowmem_against_tasks(isolated):
    pytest.importorskip("matplotlib")
    from mmframe.plot import make_figure
    recs, scen = _records(isolated, "sga")
    fig = make_figure(scen, recs)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "tasks" and " ".join(ax.get_ylabel().split()).startswith("lowmem in page tables and pte_chains")
    assert ax.get_xscale() == "linear"
    main_line = ax.get_lines()[0]
    assert list(main_line.get_xdata()) == sorted(main_line.get_xdata()) and main_line.get_ydata()[-1] > 0


def test_plot_distribution_is_a_cdf_per_combination(isolated, install_plugin, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    install_plugin("cursed", FAILING.replace("if ctx.config.machine.seed == 1", "if False"))
    path = write(isolated, '[plugins]\nenable = ["cursed"]\n[scenario]\nname = "cursed"\n'
                           'policies = [[], ["pt_shared"]]\n')
    png = tmp_path / "lat.png"
    rc, out, err = run_cli(capsys, "compare", str(path), "--plot", str(png), "--quiet")
    assert rc == 0, err and png.exists()
    from mmframe.plot import make_figure
    cfg = load_config(path, env={})
    recs = [run_job(j) for j in build_sweep(cfg, user_layers(path), []).jobs]
    scen = all_scenarios(cfg.catalog)["cursed"][0]
    fig = make_figure(scen, recs)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "fraction of samples (CDF)" and ax.get_xlabel() == "read latency (ms)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cursed", "cursed+pt_shared"]
    assert ax.get_lines()[0].get_ydata()[-1] == 1.0


def test_plot_io_read_latency_cdf_per_elevator_in_one_panel(isolated):
    pytest.importorskip("matplotlib")
    from mmframe.plot import make_figure
    recs, scen = _records(isolated, "io-depth", "[[]]")
    fig = make_figure(scen, recs)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "deadline: read latency", "noop: read latency", "linus: read latency"]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "read latency (ms)"
    assert ax.get_ylabel() == "fraction of samples (CDF)" and ax.get_title() == "read latency per elevator (CDF)"
    assert all(line.get_ydata()[-1] == 1.0 for line in ax.get_lines())
    assert fig._suptitle.get_text().startswith("io-depth:")


def test_plot_without_matplotlib_is_a_clear_usage_error(isolated, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rc, out, err = run_cli(capsys, "run", "--plot", str(isolated / "x.png"))
    assert rc == 2 and "pip install 'mmframe[plot]'" in err and "started" not in err


# --- the generic layer: a new scenario gets tables, JSON and CSV for free -------------------------

def test_percentile_is_nearest_rank():
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0 and percentile(list(range(1, 101)), 99) == 99
    assert percentile([2.0], 100) == 2.0


def test_csv_ratios_are_to_the_first_combination_of_the_same_seed(isolated):
    recs, scen = _records(isolated, "spawn")
    text = to_csv({"spawn": scen}, recs)
    rows = list(csv.DictReader(io.StringIO(text)))
    base = {r["figure"]: float(r["value"]) for r in rows if r["combination"] == "mainline"}
    for r in rows:
        if r["combination"] == "pt_shared" and r["ratio"]:
            assert float(r["ratio"]) == pytest.approx(float(r["value"]) / base[r["figure"]])
    assert all(r["ratio"] == "" for r in rows if r["combination"] == "mainline")
    sim = next(r for r in rows if r["figure"] == "sim_ms")
    assert sim["unit"] == "ms" and sim["kind"] == "time"


def test_undeclared_figures_still_show(isolated):
    recs, scen = _records(isolated, "spawn", '[["pt_shared"]]')
    text = render_text({"spawn": scen}, recs)
    assert "pt_shared.unshares" in text and lines_fit(text)
    doc = json.loads(to_json({"spawn": scen}, recs))
    assert doc["runs"][0]["figures"]["pt_shared.unshares"]["kind"] == "count"


# --- scenario options fuzzed: a bad value is a config error naming the key, never a traceback ----

TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=5)


def _option_values(opt):
    good = {"int": st.integers(-3, 10**7), "size": st.sampled_from(["4KiB", "1MiB", "3GiB", "70GiB", 0, 12345]),
            "list[size]": st.lists(st.sampled_from(["4MiB", "5000", "1GiB", "4GiB", "9TiB", 4096, -1]), max_size=3),
            "duration": st.sampled_from(["1ms", "0ns", "3 s", "2h"]), "str": TEXT,
            "list[str]": st.lists(TEXT, max_size=2), "bool": st.booleans(),
            "float": st.floats(allow_nan=False), "choice": st.sampled_from([*opt.choices, "nope"])}[opt.type]
    junk = st.one_of(st.booleans(), st.integers(-2, 3), TEXT, st.lists(st.integers(0, 3), max_size=2),
                     st.just({"a": 1}))
    return st.one_of(good, junk)


def _toml(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + "}"
    return "[" + ", ".join(_toml(x) for x in v) + "]"


@st.composite
def scenario_docs(draw):
    cfg = load_config(use_pyproject=False, env={})
    scens = all_scenarios(cfg.catalog)
    name = draw(st.sampled_from(sorted(scens)))
    opts = scens[name][0].options
    chosen = draw(st.lists(st.sampled_from(opts), max_size=3, unique_by=lambda o: o.name)) if opts else []
    lines = [f'name = "{name}"'] + [f"{o.name} = {_toml(draw(_option_values(o)))}" for o in chosen]
    return "[scenario]\n" + "\n".join(lines) + "\n", [o.name for o in opts]


@settings(max_examples=examples(60), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario_docs())
@example(('[scenario]\nname = "fork-scaling"\nsizes = ["2GiB"]\nmemory = "2GiB"\n', ["sizes", "memory"]))
@example(('[scenario]\nname = "sga"\nsize = "3GiB"\nmemory = "1GiB"\n', ["size", "memory"]))
@example(('[scenario]\nname = "fork-scaling"\nsizes = []\n', ["sizes"]))
@example(('[scenario]\nname = "program"\n', ["file", "entry", "args"]))
def test_scenario_options_fuzzed(isolated, capsys, doc):
    text, keys = doc
    path = isolated / "fuzz.toml"
    path.write_text(text)
    rc, out, err = run_cli(capsys, "compare", str(path), "--dry-run")
    assert "Traceback" not in err
    if rc == 2:
        named = re.match(rf"mmframe: error: {re.escape(str(path))}(:\d+)?: scenario\.(\w+): ", err)
        assert named and named.group(2) in keys, err
    else:
        assert rc == 0 and out.strip(), err


# --- the wheel: every module of the tree is in it --------------------------------------------------

@pytest.mark.slow
def test_wheel_built_from_the_tree_has_every_module(tmp_path):
    """A non-editable install must find every package (mmframe.block was missing once)."""
    import shutil
    import subprocess
    import zipfile

    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__",
                                                             ".pytest_cache", ".hypothesis", ".tox"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(tmp_path / "w"), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    wheel = next((tmp_path / "w").glob("mmframe-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"mmframe/{p.relative_to(REPO / 'mmframe').as_posix()}" for p in (REPO / "mmframe").rglob("*.py")}
    expected |= {f"mmframe_plugins/{p.relative_to(REPO / 'plugins').as_posix()}" for p in (REPO / "plugins").rglob("*.py")}
    expected |= {f"mmframe/data/{p.name}" for p in (REPO / "mmframe" / "data").glob("*.toml")}
    assert not {e for e in expected if "__pycache__" not in e} - names


def test_the_readme_example_config_loads_and_names_distinct_runs(isolated, capsys):
    block = re.search(r"```toml\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S).group(1)
    block = "\n".join(line for line in block.splitlines() if not line.startswith("costs ="))
    path = write(isolated, block, "readme.toml")
    rc, out, err = run_cli(capsys, "compare", str(path), "--dry-run")
    assert rc == 0, err
    labels = [line.split("\t")[2] for line in out.splitlines()]
    assert len(labels) == len(set(labels)) >= 2 and any(lab.startswith("mainline") for lab in labels)

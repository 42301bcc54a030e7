"""Sweeps beyond one machine (issue 26): the same sweep on the local pool, a Dask LocalCluster and a
local Ray instance gives byte-identical tables, JSON and CSV; a run that raises is reported and the
others finish; ``--resume`` reruns nothing that finished; ``[sweep]`` in the config."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from mmframe.cli import main
from mmframe.config import load_config, user_layers
from mmframe.executors import run_sweep
from mmframe.sweep import build_sweep

PROGRAM = """
from mmframe.usr import *

def good(ctx):
    base = yield mmap(0, 16 * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    yield touch(base, 16 * PAGE_SIZE, True)
    pid = yield fork()
    if pid == 0:
        yield write(base, 7)
        yield exit(0)
    yield wait(pid)

def bad(ctx):
    yield mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)
    raise ValueError("the program itself is broken")
"""


def sweep_config(dirpath: Path) -> Path:
    prog = dirpath / "prog.py"
    prog.write_text(textwrap.dedent(PROGRAM))
    cfg = dirpath / "sweep.toml"
    cfg.write_text(textwrap.dedent(f"""
        [scenario]
        name = "program"
        file = "{prog}"
        policies = [[], ["pt_shared"]]
        [sweep]
        seeds = 2
        [sweep.grid]
        "scenario.entry" = ["good", "bad"]
    """))
    return cfg


def run_cli(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def outputs(capsys, dirpath: Path, cfg: Path, tag: str, *extra: str) -> tuple[int, str, bytes, bytes, str]:
    js, cs = dirpath / f"{tag}.json", dirpath / f"{tag}.csv"
    rc, out, err = run_cli(capsys, "compare", str(cfg), "--json", str(js), "--csv", str(cs), *extra)
    return rc, out, js.read_bytes(), cs.read_bytes(), err


@pytest.fixture(scope="module")
def local_outputs(tmp_path_factory):
    """The local pool's outputs of the sweep, the reference every executor must match byte for byte."""
    d = tmp_path_factory.mktemp("local")
    cfg = sweep_config(d)
    mp = pytest.MonkeyPatch()
    mp.chdir(d)
    mp.delenv("MMFRAME_PLUGINS", raising=False)
    try:
        js, cs = d / "l.json", d / "l.csv"
        import contextlib
        import io
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["compare", str(cfg), "--json", str(js), "--csv", str(cs), "--workers", "2"])
        return d, cfg, rc, out.getvalue(), js.read_bytes(), cs.read_bytes(), err.getvalue()
    finally:
        mp.undo()


def test_local_pool_reports_the_failed_runs_and_finishes_the_others(local_outputs):
    d, cfg, rc, out, js, cs, err = local_outputs
    runs = json.loads(js)["runs"]
    assert len(runs) == 8 and rc == 1
    assert [r["status"] for r in runs] == ["ok", "ok", "ok", "ok", "failed", "failed", "failed", "failed"]
    assert all("the program itself is broken" in r["error"] for r in runs if r["status"] == "failed")
    assert "entry=bad" in err and "failed" in err and "[8/8]" in err  # progress on stderr, with the failures
    assert "mainline / entry=good" in out and "pt_shared / entry=good" in out


@pytest.mark.parametrize("executor", ["dask", "ray"])
def test_cluster_outputs_are_byte_identical_to_the_local_pool(local_outputs, isolated, capsys, executor):
    module = {"dask": "dask.distributed", "ray": "ray"}[executor]
    pytest.importorskip(module, reason=f"the {executor} extra is not installed (pip install 'mmframe[{executor}]')")
    d, cfg, rc0, out0, js0, cs0, _ = local_outputs
    rc, out, js, cs, err = outputs(capsys, isolated, cfg, executor, "--executor", executor, "--workers", "2")
    assert rc == rc0 == 1
    assert js == js0 and cs == cs0 and out == out0
    assert "submitted 8 runs" in err and "[8/8]" in err and "failed" in err


def test_resume_reruns_nothing_that_finished(isolated, capsys):
    cfg = sweep_config(isolated)
    res = isolated / "res.json"
    rc, out1, js1, cs1, err = outputs(capsys, isolated, cfg, "a", "--resume", str(res), "--workers", "1")
    assert rc == 1 and "8 runs in" in err and res.exists()
    rc, out2, js2, cs2, err = outputs(capsys, isolated, cfg, "b", "--resume", str(res), "--workers", "1")
    assert "resuming: 4 of 8 runs already in" in err and "4 runs in" in err  # only the failed ones again
    assert (out2, js2, cs2) == (out1, js1, cs1)
    doc = json.loads(res.read_text())
    doc["runs"] = doc["runs"][1:]  # as if interrupted before the first run finished
    res.write_text(json.dumps(doc))
    rc, out3, js3, _, err = outputs(capsys, isolated, cfg, "c", "--resume", str(res), "--workers", "1")
    assert "resuming: 3 of 8" in err and "5 runs in" in err and js3 == js1
    cfg.write_text(cfg.read_text().replace("seeds = 2", "seeds = 2\n[machine]\ncpus = 4"))
    rc, _, _, _, err = outputs(capsys, isolated, cfg, "d", "--resume", str(res), "--workers", "1")
    assert "resuming" not in err and "8 runs in" in err  # another config: nothing is reused


def test_resume_rejects_a_file_that_is_not_results(isolated, capsys):
    cfg = sweep_config(isolated)
    bad = isolated / "bad.json"
    bad.write_text('{"runs": 3}')
    rc, _, err = run_cli(capsys, "compare", str(cfg), "--resume", str(bad))
    assert rc == 2 and "not a results file" in err


def test_jobs_are_the_same_whatever_runs_them(isolated):
    """run_sweep on the local pool in-process and with two workers: the same records, in job order."""
    cfg_path = sweep_config(isolated)
    cfg = load_config(cfg_path, env={}, check_scenario=False)  # its grid sets the entry
    sweep = build_sweep(cfg, user_layers(cfg_path), [], seeds=2, grid=cfg.sweep.grid)
    assert [j.index for j in sweep.jobs] == list(range(8))
    one = run_sweep(sweep.jobs, "local", workers=1)
    two = run_sweep(sweep.jobs, "local", workers=2)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "wall_s"} for r in rs]  # noqa: E731
    assert strip(one) == strip(two)
    assert len({j.key() for j in sweep.jobs}) == 8


@pytest.mark.parametrize("doc,key,allowed", [
    ("[sweep]\nseeds = 0\n", "sweep.seeds", ">= 1"),
    ("[sweep]\nexecutor = 'slurm'\n", "sweep.executor", "'dask'"),
    ("[sweep]\nthreads = 2\n", "sweep.threads", "seeds, executor"),
    ("[sweep.grid]\n\"scenario.children\" = []\n", "sweep.grid.scenario.children", "scenario.children"),
    ("[sweep.grid]\nchildren = [1, 2]\n", "sweep.grid.children", "scenario.children"),
])
def test_sweep_table_errors_name_the_key(isolated, capsys, doc, key, allowed):
    cfg = isolated / "s.toml"
    cfg.write_text('[scenario]\nname = "spawn"\n' + doc)
    rc, _, err = run_cli(capsys, "compare", str(cfg), "--dry-run")
    assert rc == 2 and f"{key}:" in err and allowed in err and "Traceback" not in err


def test_a_bad_grid_value_is_a_config_error_before_anything_runs(isolated, capsys):
    cfg = isolated / "s.toml"
    cfg.write_text('[scenario]\nname = "spawn"\n[sweep.grid]\n"scenario.children" = [2, 0]\n')
    rc, out, err = run_cli(capsys, "compare", str(cfg))
    assert rc == 2 and "scenario.children: invalid value 0" in err and "[sweep] grid" in err and "done" not in err


def test_sweep_grid_and_seeds_from_the_config(isolated, capsys):
    cfg = isolated / "s.toml"
    cfg.write_text('[scenario]\nname = "spawn"\npolicies = [[]]\nchildren = 2\npages = 4\n'
                   '[sweep]\nseeds = 2\n[sweep.grid.scenario]\npages = [4, 8]\n')
    rc, out, err = run_cli(capsys, "compare", str(cfg), "--dry-run")
    assert rc == 0 and out.splitlines() == [
        "0\tspawn\tmainline / pages=4, seed 0", "1\tspawn\tmainline / pages=4, seed 1",
        "2\tspawn\tmainline / pages=8, seed 0", "3\tspawn\tmainline / pages=8, seed 1"]
    rc, out, err = run_cli(capsys, "compare", str(cfg), "--seeds", "1", "--dry-run")
    assert len(out.splitlines()) == 2  # the command line beats [sweep]


@pytest.mark.parametrize("executor,module", [("dask", "dask.distributed"), ("ray", "ray")])
def test_a_missing_extra_is_a_clear_usage_error(isolated, capsys, monkeypatch, executor, module):
    monkeypatch.setitem(sys.modules, module, None)
    rc, _, err = run_cli(capsys, "compare", "--set", 'scenario.name="spawn"', "--executor", executor)
    assert rc == 2 and f"pip install 'mmframe[{executor}]'" in err and "started" not in err


def test_dask_scheduler_address(local_outputs, isolated, capsys):
    """--address: a running scheduler (here a LocalCluster's), not one the sweep starts itself."""
    distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
    import logging
    d, cfg, rc0, out0, js0, cs0, _ = local_outputs
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster:
        rc, out, js, cs, err = outputs(capsys, isolated, cfg, "addr", "--executor", "dask",
                                       "--address", cluster.scheduler_address)
        assert len(cluster.scheduler.workers) == 2  # still up: the sweep closed only its client
    assert rc == rc0 and js == js0 and cs == cs0 and out == out0

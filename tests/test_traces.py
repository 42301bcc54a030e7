"""Trace parsers (fio iolog v2/v3, blkparse text) and the io-depth and replay scenarios: the
shipped samples parse, damaged lines are errors naming file and line (exit 2 from the CLI),
actions not replayed are reported, and generated input raises nothing but TraceError."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support import examples

from mmframe.cli import main
from mmframe.workloads import io_scenarios
from mmframe.workloads.traces import FIO2_HEADER, FIO3_HEADER, TraceError, parse, read_trace


def test_the_shipped_samples_parse_to_the_same_ios():
    traces = {k: read_trace(str(p)) for k, p in io_scenarios.SAMPLES.items()}
    assert {k: t.format for k, t in traces.items()} == {"fio2": "fio2", "fio3": "fio3", "blkparse": "blkparse"}
    key = lambda t: [(io.time_ns, io.rw, io.sector, io.nr_sectors) for io in t.ios]  # noqa: E731
    assert key(traces["fio2"]) == key(traces["fio3"]) == key(traces["blkparse"]) and len(traces["fio2"].ios) == 160
    assert "sync: 1 line" in traces["fio2"].report()
    assert "C (the simulator makes its own): 160 lines" in traces["blkparse"].report()


def test_fio2_lines():
    t = parse([FIO2_HEADER, "/d add", "/d open", "/d read 4096 8192", "/d wait 500 0", "/d write 1000 10",
               "/d wait 50 0", "/d trim 0 4096", "/d close"], "x")
    assert [(io.time_ns, io.rw, io.sector, io.nr_sectors) for io in t.ios] == [(0, 0, 8, 16), (500_000, 1, 1, 1)]
    assert t.widened == 1 and "trim: 1 line (first at line 8)" in t.report()


def test_fio3_lines_and_blkparse_lines():
    t = parse([FIO3_HEADER, "0 /d add", "10 /d read 0 512", "25 /d write 512 512"], "x")
    assert [(io.time_ns, io.rw) for io in t.ios] == [(10_000, 0), (25_000, 1)]
    b = parse(["  8,0    3        1     0.000000000   697  Q   W 223490 + 8 [kjournald]",
               "  8,0    3        2     0.000001000   697  Q  RA 100 + 16 [cat]",
               "  8,0    3        3     0.000002000   697  P   N [kjournald]",
               "  8,0    3        4     0.000003000   697  Q   D 5 + 8 [fstrim]", "",
               "CPU3 (8,0):", " Reads Queued: junk"], "b")
    assert [(io.rw, io.sector, io.nr_sectors) for io in b.ios] == [(1, 223490, 8), (0, 100, 16)]
    assert "P (the simulator makes its own): 1 line" in b.report() and "Q D: 1 line" in b.report()


@pytest.mark.parametrize("lines,line,what", [
    ([FIO2_HEADER, "/d add", "/d read 1 2 3"], 3, "fields"),
    ([FIO2_HEADER, "/d add", "/d read x 2"], 3, "offset 'x'"),
    ([FIO2_HEADER, "/d read 0 512"], 2, "before it was added"),
    ([FIO2_HEADER, "/d add", "/d frob 0 512"], 3, "unknown action 'frob'"),
    ([FIO2_HEADER, "/d add", "/d read 0 0"], 3, "length 0"),
    ([FIO3_HEADER, "0 /d add", "5 /d wait 100 0"], 3, "not allowed"),
    ([FIO3_HEADER, "x /d add"], 2, "timestamp"),
    (["fio version 9 iolog"], 1, "unknown trace format"),
    (["  8,0  0  1  0.000000000  1  Q  W 1 + 8", "garbage"], 2, "not a blkparse event line"),
    (["  8,0  0  1  0.000000000  1  Q  ZZ 1 + 8"], 1, "rwbs"),
])
def test_a_damaged_line_names_file_and_line(lines, line, what):
    with pytest.raises(TraceError) as exc:
        parse(lines, "t.log")
    assert exc.value.line == line and what in str(exc.value) and str(exc.value).startswith(f"t.log:{line}:")


_tokens = st.sampled_from(["/d", "add", "open", "close", "read", "write", "wait", "trim", "sync", "0", "512",
                           "4096", "-1", "x", "99999999999999999999999", "8,0", "Q", "W", "R", "+", "8",
                           "0.000000001", "[p]", "CPU0", "(8,0):", "  ", "\t"])


@settings(max_examples=examples(300), deadline=None)
@given(header=st.sampled_from([FIO2_HEADER, FIO3_HEADER, "  8,0 0 1 0.000000000 1 Q W 8 + 8 [x]", "junk", ""]),
       body=st.lists(st.one_of(st.lists(_tokens, max_size=7).map(" ".join), st.text(max_size=30)), max_size=12))
@example(header=FIO2_HEADER, body=["/d add", "/d read 99999999999999999999999 512"])
def test_generated_traces_raise_nothing_but_trace_errors(header, body):
    try:
        t = parse([header, *body], "gen")
    except TraceError as exc:
        assert exc.file == "gen" and (exc.line is None or 1 <= exc.line <= len(body) + 1)
        return
    for io in t.ios:
        assert io.nr_sectors > 0 and io.sector >= 0 and io.rw in (0, 1)


def test_the_cli_exits_2_naming_the_damaged_line(tmp_path, isolated, capsys):
    bad = tmp_path / "bad.log"
    bad.write_text(f"{FIO2_HEADER}\n/d add\n/d read 0\n")
    cfg = tmp_path / "r.toml"
    cfg.write_text(f'[scenario]\nname = "replay"\npolicies = [[]]\ntrace = "{bad}"\nelevators = ["noop"]\n')
    assert main(["run", str(cfg)]) == 2
    assert f"{bad}:3:" in capsys.readouterr().err


def test_replay_and_io_depth_run_per_elevator(isolated, config):
    figs = io_scenarios.compare_elevators(io_scenarios.replay_figures, ["deadline", "noop"], config,
                                          trace=str(io_scenarios.SAMPLES["fio3"]))
    assert figs["deadline"]["completed"] == figs["noop"]["completed"] >= 160
    assert figs["deadline"]["not_replayed"] == "nothing"
    d = io_scenarios.depth_figures(config, "deadline", depth=200, requests=400)
    assert d["completed"] == 400 and "synthetic" in d and d["slept_for_request"] > 0
    n = io_scenarios.depth_figures(config, "noop", depth=32, requests=300)
    dl = io_scenarios.depth_figures(config, "deadline", depth=32, requests=300)
    assert dl["iops"] > n["iops"]  # sorting beats FIFO at depth on a seeking disk
    with pytest.raises(Exception, match="unknown elevator 'cfq'"):
        io_scenarios.depth_figures(config, "cfq")


def test_a_trace_past_the_disk_is_an_error_naming_the_line(tmp_path, config):
    t = tmp_path / "big.log"
    t.write_text(f"{FIO2_HEADER}\n/d add\n/d read {1 << 50} 4096\n")
    with pytest.raises(TraceError, match=r"big.log:3: .*past the end"):
        io_scenarios.replay_figures(config, "noop", trace=str(t))

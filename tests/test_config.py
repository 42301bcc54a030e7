"""Every config error path names the file, the key (and line) and what is allowed; exit code 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.support import examples
from mmframe.cli import main
from mmframe.config import load_config, locate
from mmframe.errors import ConfigError, UsageError

PLUGIN = """
from mmframe.hookspecs import hookimpl
from mmframe.options import Option

@hookimpl
def mmframe_options():
    return [Option("depth", "int", 4, "tree depth", minimum=1, maximum=64, scope="queue"),
            Option("mode", "choice", "fast", "mode", choices=("fast", "slow")),
            Option("budget", "size", "1MiB", "bytes")]
"""


def write(tmp_path, text, name="run.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


CASES = [
    # (document, key, line, message fragment, allowed fragment)
    ("[machine\ncpus = 2\n", None, 1, "not valid TOML", None),
    ("cpus = 2\n", "cpus", 1, "unknown key", "machine, plugins, block, scenario"),
    ("[machine]\ncpu = 2\n", "machine.cpu", 2, "unknown key", "cpus, memory"),
    ("[machine]\ncpus = 'two'\n", "machine.cpus", 2, "invalid value", "an integer"),
    ("[machine]\ncpus = 0\n", "machine.cpus", 2, "invalid value", ">= 1"),
    ("[machine]\ncpus = 64\n", "machine.cpus", 2, "invalid value", "<= 32"),
    ("[machine]\nmemory = '4GB'\n", "machine.memory", 2, "invalid value", "GiB"),
    ("[machine]\nmemory = '128GiB'\n", "machine.memory", 2, "invalid value", "<="),
    ("[machine]\nmemory = '8GiB'\npae = 'off'\n", "machine.pae", 3, "needs PAE", "pae = 'on'"),
    ("[machine]\nmemory = 16777217\n", "machine.memory", 2, "4KiB pages", None),
    ("[machine]\nl1_cache_bytes = 48\n", "machine.l1_cache_bytes", 2, "invalid value", "32, 64 or 128"),
    ("[machine]\nhighpte = 1\n", "machine.highpte", 2, "invalid value", "true or false"),
    ("[machine]\npae = 'maybe'\n", "machine.pae", 2, "invalid value", "'auto', 'on', 'off'"),
    ("machine = 3\n", "machine", 1, "must be a table", None),
    ("[plugins]\nenable = 'x'\n", "plugins.enable", 2, "must be a list", "no:NAME"),
    ("[plugins.ghost]\nx = 1\n", "plugins.ghost", 1, "unknown plugin 'ghost'", "tree"),
    ("[plugins.tree]\ndepht = 3\n", "plugins.tree.depht", 2, "unknown key", "depth, mode, budget"),
    ("[plugins.tree]\ndepth = 0\n", "plugins.tree.depth", 2, "invalid value", ">= 1"),
    ("[plugins.tree]\nmode = 'medium'\n", "plugins.tree.mode", 2, "invalid value", "'fast', 'slow'"),
    ("[plugins.tree]\nbudget = true\n", "plugins.tree.budget", 2, "invalid value", "MiB"),
    ("[block.sda]\nspeed = 3\n", "block.sda.speed", 2, "unknown key", "capacity, elevator"),
    ("[block.sda]\nelevator = 'cfq'\n", "block.sda.elevator", 2, "unknown elevator 'cfq'", "deadline, linus, noop"),
    ("[block.sda]\ncapacity = 'big'\n", "block.sda.capacity", 2, "invalid value", "GiB"),
    ("[block.sda.tree]\nmode = 'slow'\n", "block.sda.tree.mode", 2, "unknown key", "depth"),
    ("[block.sda.tree]\ndepth = 99\n", "block.sda.tree.depth", 2, "invalid value", "<= 64"),
    ("[block]\nsda = 1\n", "block.sda", 2, "must be a table", None),
    ("[scenario]\nname = 'nosuch'\n", "scenario.name", 2, "unknown scenario", "spawn"),
    ("[scenario]\npolicies = 'pt_shared'\n", "scenario.policies", 2, "list of lists", None),
    ("[scenario]\npolicies = [['ghost']]\n", "scenario.policies", 2, "unknown plugin 'ghost'", "tree"),
    ("[scenario]\nname = \"spawn\"\nchildren = 0\n", "scenario.children", 3, "invalid value", ">= 1"),
    ("[scenario]\nkids = 2\n", "scenario.kids", 2, "unknown key for scenario 'fork-scaling'", "sizes"),
]


@pytest.mark.parametrize("doc,key,line,msg,allowed", CASES)
def test_config_errors(isolated, install_plugin, doc, key, line, msg, allowed):
    install_plugin("tree", PLUGIN)
    path = write(isolated, doc)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    err = info.value
    assert err.file == str(path) and err.key == key and err.line == line
    assert msg in err.message
    if allowed:
        assert allowed in (err.allowed or "")
    text = str(err)
    assert text.startswith(f"{path}:{line}: ")


@pytest.mark.parametrize("doc", [c[0] for c in CASES[:8]])
def test_cli_reports_config_errors_with_exit_2_and_no_traceback(isolated, doc, capsys):
    path = write(isolated, doc)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mmframe: error: {path}:") and "Traceback" not in err


def test_missing_and_non_utf8_files(isolated, capsys):
    assert main(["run", str(isolated / "nope.toml")]) == 2
    assert "nope.toml: cannot read config file" in capsys.readouterr().err
    bad = isolated / "bin.toml"
    bad.write_bytes(b"[machine]\ncpus = \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad, env={})


def test_pyproject_layer_errors_name_pyproject(isolated):
    (isolated / "pyproject.toml").write_text("[project]\nname='x'\n\n[tool.mmframe.machine]\ncpus = 99\n")
    with pytest.raises(ConfigError) as info:
        load_config(env={})
    assert info.value.file.endswith("pyproject.toml") and info.value.key == "machine.cpus" and info.value.line == 5


def test_blocked_plugin_options_are_not_checked(isolated, install_plugin):
    install_plugin("tree", PLUGIN)
    path = write(isolated, "[plugins]\nenable = ['no:tree']\n[plugins.tree]\nanything = 1\n")
    assert load_config(path, env={}).enabled == ()


def test_valid_document_is_applied(isolated, install_plugin):
    install_plugin("tree", PLUGIN)
    path = write(isolated, """
        [machine]
        cpus = 4
        memory = "16GiB"
        highpte = true
        [plugins]
        enable = ["tree"]
        [plugins.tree]
        depth = 8
        budget = "2MiB"
        [block.sda]
        capacity = "18GiB"
        [block.sda.tree]
        depth = 16
        [scenario]
        name = "spawn"
        children = 3
        sleep = "2ms"
    """)
    c = load_config(path, env={})
    assert c.machine.cpus == 4 and c.machine.memory == 16 << 30 and c.machine.pae and c.machine.highpte
    assert c.plugin_options["tree"] == {"depth": 8, "mode": "fast", "budget": 2 << 20}
    assert c.disks[0].name == "sda" and c.disks[0].capacity == 18 << 30
    assert c.disks[0].plugin_options == {"tree": {"depth": 16}}
    assert c.scenario.params["children"] == 3 and c.scenario.params["sleep"] == 2_000_000


def test_env_plugin_unknown_names_env(isolated):
    with pytest.raises(UsageError, match="MMFRAME_PLUGINS: unknown plugin 'zz'"):
        load_config(env={"MMFRAME_PLUGINS": "zz"})


def test_locate_finds_keys_and_headers():
    text = "[a]\nx = 1\n[a.b]\n y = 2\n"
    assert locate(text, ("a", "x")) == 2 and locate(text, ("a", "b")) == 3 and locate(text, ("a", "b", "y")) == 4
    assert locate(text, ("c",)) is None


# --- generated documents: anything goes in, only the documented error comes out ---------------

KEYS = st.sampled_from(["machine", "plugins", "block", "scenario", "cpus", "memory", "pae", "enable",
                        "name", "policies", "sda", "tree", "depth", "capacity", "elevator", "x", "seed"])
SCALARS = st.one_of(st.integers(-5, 1 << 40), st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(["4GiB", "1MiB", "spawn", "deadline", "no:tree", "tree", "auto", "on", "", "x"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(KEYS, inner, max_size=3)), max_leaves=8)


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(doc):
    lines = []
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {toml_value(vv)}" for kk, vv in v.items()]
        else:
            lines.insert(0, f"{k} = {toml_value(v)}")
    return "\n".join(lines) + "\n"


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.dictionaries(KEYS, VALUES, max_size=4).map(to_toml),
                 st.text(alphabet="[]=.\"'\n abcdefgilmnprstuy0123456789#{},", max_size=80)))
def test_generated_documents_only_raise_documented_errors(isolated, install_plugin_once, text):
    path = isolated / "gen.toml"
    path.write_text(text)
    try:
        load_config(path, env={})
    except (ConfigError, UsageError) as exc:
        assert str(exc)


@pytest.fixture
def install_plugin_once(install_plugin):
    install_plugin("tree", PLUGIN)


def test_cli_entry_point_runs_as_a_process(isolated):
    bad = write(isolated, "[machine]\ncpus = 99\n")
    proc = subprocess.run([sys.executable, "-m", "mmframe.cli", "run", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "machine.cpus" in proc.stderr

"""Discovery, opt-in, blocking, the precedence chain, conflicts, and resolved dispatch semantics."""

from __future__ import annotations

import sys
import types

import pluggy
import pytest
from hypothesis import given, settings, strategies as st

from tests.support import examples
from mmframe.config import load_config
from mmframe.errors import PluginError, UsageError
from mmframe.machine import Machine
from mmframe.plugin import CORE, Catalog, build_hooks, resolve, resolve_selection

hookspec = pluggy.HookspecMarker("mmframe")
hookimpl = pluggy.HookimplMarker("mmframe")

RECORDING = """
from mmframe.hookspecs import hookimpl
CALLS = []

@hookimpl
def mmframe_configure(machine, options):
    CALLS.append(("configure", dict(options)))
"""


def test_discovered_plugin_is_listed_but_not_enabled(isolated, install_plugin):
    mod = install_plugin("rec", RECORDING)
    cfg = load_config(env={})
    assert "rec" in cfg.catalog.plugins and cfg.catalog.plugins["rec"].dist == "mmframe-test-rec"
    assert cfg.enabled == ()
    Machine(cfg)
    assert sys.modules[mod].CALLS == []  # installed, loaded, but takes no part


def test_enabled_plugin_takes_part(isolated, install_plugin):
    mod = install_plugin("rec", RECORDING)
    Machine(load_config(env={}, cli_plugins=["rec"]))
    assert sys.modules[mod].CALLS == [("configure", {})]


def test_blocked_plugin_is_never_imported(isolated, install_plugin):
    mod = install_plugin("rec", RECORDING)
    cfg = load_config(env={}, cli_plugins=["no:rec"])
    assert mod not in sys.modules
    assert "rec" not in cfg.catalog.plugins and "rec" in cfg.catalog.blocked


def test_plugin_that_fails_to_import_is_named(isolated, install_plugin):
    install_plugin("broken", "raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match=r"plugin 'broken' \(distribution mmframe-test-broken 1.0\) failed"):
        load_config(env={})
    load_config(env={}, cli_plugins=["no:broken"])  # blocking it avoids the import


def test_hook_without_spec_is_rejected(isolated, install_plugin):
    install_plugin("typo", "from mmframe.hookspecs import hookimpl\n"
                           "@hookimpl\ndef mmframe_configur(machine):\n    pass\n")
    with pytest.raises(PluginError, match="typo.*mmframe_configur"):
        load_config(env={})


def test_unknown_plugin_lists_available(isolated, install_plugin):
    install_plugin("rec", RECORDING)
    import re

    from mmframe.plugin import discover_entry_points
    names = sorted({ep.name for ep in discover_entry_points()})  # what is installed (CI adds examples/sstf)
    assert {"elevator_rbtree", "pt_shared", "rec", "walker"} <= set(names)
    with pytest.raises(UsageError, match=rf"unknown plugin 'nope' \(available: {re.escape(', '.join(names))}\)"):
        load_config(env={}, cli_plugins=["nope"])


@pytest.mark.parametrize("layers,enabled,blocked", [
    ([("a", ["x", "y"]), ("b", ["no:x"])], ("y",), {"x"}),
    ([("a", ["no:x"]), ("b", ["x"])], ("x",), set()),
    ([("a", ["x"]), ("b", []), ("c", ["x"])], ("x",), set()),
])
def test_later_layer_wins(layers, enabled, blocked):
    sel = resolve_selection(layers)
    assert sel.enabled == enabled and sel.blocked == blocked


@pytest.mark.parametrize("bad", ["", "no:", "  "])
def test_bad_selection_tokens(bad):
    with pytest.raises(UsageError):
        resolve_selection([("src", [bad])])


def test_precedence_chain(isolated, install_plugin, tmp_path):
    """embedded default < [tool.mmframe] < config file < MMFRAME_PLUGINS < -p, each overriding."""
    for n in ("p1", "p2", "p3", "p4"):
        install_plugin(n, "x = 1\n")
    (isolated / "pyproject.toml").write_text('[tool.mmframe.plugins]\nenable = ["p1", "p2", "p3", "p4"]\n'
                                             '[tool.mmframe.machine]\ncpus = 3\n')
    cfgfile = isolated / "run.toml"
    cfgfile.write_text('[plugins]\nenable = ["no:p2"]\n[machine]\ncpus = 4\n')
    assert load_config(env={}).enabled == ("p1", "p2", "p3", "p4")
    assert load_config(env={}).machine.cpus == 3
    c = load_config(cfgfile, env={})
    assert c.enabled == ("p1", "p3", "p4") and c.machine.cpus == 4
    c = load_config(cfgfile, env={"MMFRAME_PLUGINS": "no:p3,p2"})
    assert set(c.enabled) == {"p1", "p2", "p4"}
    c = load_config(cfgfile, env={"MMFRAME_PLUGINS": "no:p3,p2"}, cli_plugins=["p3", "no:p1"])
    assert set(c.enabled) == {"p2", "p3", "p4"} and "p1" in c.catalog.blocked
    assert c.selection.decided_by["p3"] == "command line (-p)"


# --- policy hooks: conflicts and dispatch semantics -----------------------------------------

class PolicySpec:
    @hookspec(firstresult=True)
    def mmframe_test_policy(self, a, b):
        """A firstresult policy hook used to test the mechanism."""

    @hookspec
    def mmframe_test_notify(self, a, b):
        """A plain (all results) hook."""


def _plugin(name, **fns):
    mod = types.ModuleType(f"mmtest_inline_{name}")
    mod.__dist__ = f"dist-{name}"
    for k, v in fns.items():
        setattr(mod, k, v)
    return mod


def test_two_plugins_claiming_a_policy_hook_conflict():
    a = _plugin("a", mmframe_test_policy=hookimpl(lambda a, b: 1))
    b = _plugin("b", mmframe_test_policy=hookimpl(lambda a, b: 2))
    cat = Catalog(extra={"a": a, "b": b}, extra_specs=[PolicySpec])
    assert build_hooks(cat, ["a"]).mmframe_test_policy(1, 2) == 1
    with pytest.raises(UsageError, match=r"mmframe_test_policy.*a \(distribution dist-a\) and b \(distribution dist-b\)"):
        build_hooks(cat, ["a", "b"])


def test_wrappers_do_not_count_as_conflicts():
    def wrap(a, b):
        r = yield
        return r * 10
    a = _plugin("a", mmframe_test_policy=hookimpl(lambda a, b: a + b))
    w = _plugin("w", mmframe_test_policy=hookimpl(wrapper=True)(wrap))
    hooks = build_hooks(Catalog(extra={"a": a, "w": w}, extra_specs=[PolicySpec]), ["a", "w"])
    assert hooks.mmframe_test_policy(2, 3) == 50


def test_unimplemented_hook_resolves_to_none():
    hooks = build_hooks(Catalog(extra_specs=[PolicySpec]), [])
    assert hooks.mmframe_test_policy is None and hooks.mmframe_test_notify is None


def test_single_exact_impl_is_the_function_itself():
    fn = hookimpl(lambda a, b: a)
    hooks = build_hooks(Catalog(extra={"a": _plugin("a", mmframe_test_policy=fn)}, extra_specs=[PolicySpec]), ["a"])
    assert hooks.mmframe_test_policy is fn


IMPL = st.fixed_dictionaries({
    "ret": st.one_of(st.none(), st.integers(0, 9)),
    "args": st.sampled_from([("a", "b"), ("a",), ("b",), ()]),
    "order": st.sampled_from(["", "tryfirst", "trylast"]),
    "wrapper": st.sampled_from(["", "", "", "new", "old"]),
})


def _make_impl(k, spec, log):
    args = spec["args"]
    opts = {spec["order"]: True} if spec["order"] else {}
    if spec["wrapper"] == "new":
        src = f"def f({', '.join(args)}):\n    log.append('w{k}')\n    r = yield\n    return r"
        opts["wrapper"] = True
    elif spec["wrapper"] == "old":
        src = f"def f({', '.join(args)}):\n    log.append('o{k}')\n    outcome = yield"
        opts["hookwrapper"] = True
    else:
        src = f"def f({', '.join(args)}):\n    log.append({k})\n    return {spec['ret']!r}"
    env = {"log": log}
    exec(src, env)
    return hookimpl(**opts)(env["f"])


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(IMPL, max_size=5), st.sampled_from(["mmframe_test_policy", "mmframe_test_notify"]),
       st.integers(), st.integers())
def test_resolved_dispatch_matches_pluggy(impls, hook, a, b):
    """Same results and same call order as pluggy for any mix of impls, orderings and wrappers."""
    log_resolved: list = []
    log_pluggy: list = []
    pms = []
    for log in (log_resolved, log_pluggy):
        pm = pluggy.PluginManager("mmframe")
        pm.add_hookspecs(PolicySpec)
        for k, spec in enumerate(impls):
            pm.register(_plugin(f"p{k}", **{hook: _make_impl(k, spec, log)}), name=f"p{k}")
        pms.append(pm)
    call = resolve(getattr(pms[0].hook, hook))
    got = call(a, b) if call is not None else None
    want = getattr(pms[1].hook, hook)(a=a, b=b)
    if call is None:
        assert not impls and want == (None if hook == "mmframe_test_policy" else [])
    else:
        assert got == want
    assert log_resolved == log_pluggy


def test_raising_impl_is_attributed_to_plugin_and_hook():
    def bad(a, b):
        raise ZeroDivisionError("oops")
    hooks = build_hooks(Catalog(extra={"bad": _plugin("bad", mmframe_test_policy=hookimpl(bad))},
                                extra_specs=[PolicySpec]), ["bad"])
    with pytest.raises(ZeroDivisionError) as info:
        hooks.mmframe_test_policy(1, 2)
    assert hooks.attribute(info.value) == ("bad", "mmframe_test_policy")
    assert hooks.attribute(ValueError("not from a hook")) is None


def test_core_is_always_registered_first():
    hooks = build_hooks(Catalog(), [])
    assert hooks.plugin_names == (CORE,)


def test_enabled_order_follows_the_deciding_layer():
    """A plugin re-enabled by a higher layer registers later, so pluggy calls it first."""
    sel = resolve_selection([("low", ["x", "y"]), ("high", ["x"])])
    assert sel.enabled == ("y", "x") and sel.decided_by == {"x": "high", "y": "low"}

"""Per-call cost of hook dispatch: resolved callables vs raw pluggy vs a direct call.

Run: python benchmarks/bench_dispatch.py
Target (issue 2): one resolved implementation within 1.5x of a direct call.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pluggy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import per_call_ns, table  # noqa: E402

from mmframe.plugin import resolve  # noqa: E402

spec = pluggy.HookspecMarker("mmframe")
impl = pluggy.HookimplMarker("mmframe")


class Spec:
    @spec(firstresult=True)
    def mmframe_bench_policy(self, a, b):
        """firstresult"""

    @spec
    def mmframe_bench_notify(self, a, b):
        """all results"""


def f_none(a, b):
    return None


def f_value(a, b):
    return a


def wrap(a, b):
    r = yield
    return r


def plugin(name: str, **fns: object) -> types.ModuleType:
    mod = types.ModuleType(name)
    for k, v in fns.items():
        setattr(mod, k, impl(**({"wrapper": True} if v is wrap else {}))(v))
    return mod


def case(label: str, hook: str, plugins: dict[str, types.ModuleType], direct):
    # A raw manager: the conflict rule (one policy plugin per firstresult hook) is the machine's,
    # while the mechanism measured here is the resolver build_hooks uses.
    pm = pluggy.PluginManager("mmframe")
    pm.add_hookspecs(Spec)
    for name, mod in plugins.items():
        pm.register(mod, name=name)
    raw = getattr(pm.hook, hook)
    resolved = resolve(raw)
    if resolved is None:
        r_ns = per_call_ns(lambda: resolved is not None and resolved(1, 2))
    else:
        r_ns = per_call_ns(lambda: resolved(1, 2))
    p_ns = per_call_ns(lambda: raw(a=1, b=2), number=50_000)
    d_ns = per_call_ns(direct) if direct else None
    return [label, f"{r_ns:.0f}", f"{p_ns:.0f}", "-" if d_ns is None else f"{d_ns:.0f}",
            "-" if d_ns is None else f"{r_ns / d_ns:.2f}x", f"{p_ns / r_ns:.1f}x"]


def main() -> None:
    P = "mmframe_bench_policy"
    N = "mmframe_bench_notify"
    rows = [
        case("0 impls (skipped)", P, {}, None),
        case("1 impl, firstresult", P, {"a": plugin("a", **{P: f_value})}, lambda: f_value(1, 2)),
        case("3 impls, firstresult (2 defer)", P,
             {"a": plugin("a", **{P: f_value}), "b": plugin("b", **{P: f_none}), "c": plugin("c", **{P: f_none})},
             lambda: f_none(1, 2) or f_none(1, 2) or f_value(1, 2)),
        case("1 impl, all results", N, {"a": plugin("a", **{N: f_value})}, lambda: [f_value(1, 2)]),
        case("3 impls, all results", N,
             {"a": plugin("a", **{N: f_value}), "b": plugin("b", **{N: f_value}), "c": plugin("c", **{N: f_value})},
             lambda: [f_value(1, 2), f_value(1, 2), f_value(1, 2)]),
        case("1 impl + wrapper, firstresult", P,
             {"a": plugin("a", **{P: f_value}), "w": plugin("w", **{P: wrap})}, lambda: f_value(1, 2)),
    ]
    print("hook dispatch, ns per call (best of 5); ratios: resolved/direct and pluggy/resolved")
    print(table(["case", "resolved", "raw pluggy", "direct", "resolved/direct", "pluggy/resolved"], rows))
    one = rows[1]
    print(f"\ntarget: one resolved implementation within 1.5x of a direct call -> {one[4]} "
          f"({'met' if float(one[4][:-1]) <= 1.5 else 'NOT met'})")


if __name__ == "__main__":
    main()

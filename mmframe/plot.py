"""``--plot FILE.png``: the scenario's natural picture, drawn from result records.

matplotlib is an optional extra (``pip install 'mmframe[plot]'``); without it ``--plot`` is a usage
error saying so.  The picture comes from the scenario's :class:`~mmframe.scenario.Plot`: one panel
per figure, one line per combination (the mean over seeds); series against their axis (log scales
as the axis declares), distributions as CDFs, scalar figures as bars.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from mmframe.errors import UsageError
from mmframe.results import _mean, _series_value, figure_of, fmt_x, group_runs, header
from mmframe.scenario import Plot, Scenario

INSTALL_HINT = "--plot needs matplotlib: pip install 'mmframe[plot]' (or pip install matplotlib)"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def default_plot(scen: Scenario) -> Plot:
    """A scenario without a declared picture: its first few model figures."""
    keys = [f.key for f in scen.figures if f.kind not in ("host", "ratio")][:4]
    return Plot(tuple(keys), title=scen.name)


def make_figure(scen: Scenario, records: Sequence[Mapping[str, Any]]) -> Any:
    """The matplotlib Figure of the scenario's picture (not saved: tests read it back first)."""
    plt = _pyplot()
    spec = scen.plot or default_plot(scen)
    groups = group_runs(records)
    if not groups:
        raise UsageError(f"--plot: no successful run of {scen.name!r} to draw")
    keys = [k for k in spec.y if any(k in r["figures"] for g in groups for r in g.records)]
    if not keys:
        raise UsageError(f"--plot: the runs of {scen.name!r} report none of {', '.join(spec.y)}")
    n = 1 if spec.overlay else len(keys)
    ncols = 1 if n == 1 else 2
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.4 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.remove()
    panels = [(axes.flat[0], k) for k in keys] if spec.overlay else list(zip(axes.flat, keys))
    for ax, key in panels:
        f = figure_of(scen, key)
        name = (lambda g, f=f: f.label if len(groups) == 1 else f"{g.label}: {f.label}") if spec.overlay else (
            lambda g: g.label)
        if f.axis:
            axis = scen.axis(f.axis)
            xs = sorted({x for g in groups for r in g.records for x, _ in r["figures"].get(key) or []})
            for g in groups:
                pts = [(x, _mean([_series_value(r["figures"].get(key), x) for r in g.records])[0]) for x in xs]
                pts = [(x, y) for x, y in pts if y is not None]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o" if len(pts) <= 16 else None,
                        label=name(g))
            if axis is not None:
                ax.set_xlabel(header(axis.label, "" if axis.unit == "B" else axis.unit))
                if axis.log:
                    ax.set_xscale("log", base=2 if axis.unit == "B" else 10)
                    ax.set_yscale("log")
                if axis.unit == "B":
                    ax.set_xticks(xs)
                    ax.set_xticklabels([fmt_x(x, "B") for x in xs])
            ax.set_ylabel(_wrap(header(f.label, f.unit)))
        elif f.kind == "distribution":
            for g in groups:
                samples = sorted(s for r in g.records for s in (r["figures"].get(key) or []))
                if samples:
                    ys = [(i + 1) / len(samples) for i in range(len(samples))]
                    ax.step(samples, ys, where="post", label=name(g))
            ax.set_xlabel(header(f.label if not spec.overlay else f.label.split(": ")[-1], f.unit))
            ax.set_ylabel("fraction of samples (CDF)")
            ax.set_xscale("log")
        else:
            vals = [_mean([r["figures"].get(key) for r in g.records])[0] for g in groups]
            for i, (g, v) in enumerate(zip(groups, vals)):
                ax.bar(i, v or 0, label=name(g))
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels([g.label for g in groups], rotation=20, ha="right", fontsize="small")
            ax.set_ylabel(_wrap(header(f.label, f.unit)))
        if spec.logy:
            ax.set_yscale("log")
        ax.set_title(spec.title if spec.overlay and spec.title else f.label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(_wrap(f"{scen.name}: {scen.help}", 110 * ncols // 2 if ncols > 1 else 80))
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 36) -> str:
    import textwrap
    return "\n".join(textwrap.wrap(text, width)) or text


def save_plot(fig: Any, path: str) -> None:
    plt = _pyplot()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise UsageError(f"--plot: cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)

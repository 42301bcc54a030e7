"""Fitting a cost table to measurements: the design matrix, its rank, what it cannot separate,
and a non-negative least-squares fit (numpy only: Lawson-Hanson NNLS, written here).

A measured workload ``i`` with counts ``A[i, j]`` of primitive ``j`` costs ``sum_j A[i, j] * ns[j]``.
The fit works in scale factors against a prior table (the 2002 one): ``ns[j] = prior[j] * s[j]``.
The fit set does not determine every ``s[j]``: columns that are proportional (fork copies a PTE
and allocates a pte_chain once per page, always together) or linear combinations of others leave
directions the data cannot see, and noise in a few measurements would otherwise be fitted by
moving entries the data barely constrains.  So the fit is a maximum a posteriori estimate:

- the prior: every entry is its 2002 figure times one common scale ``s0`` (the single factor
  that best turns the 2002 table into the host), give or take ``tau`` times ``s0`` (10: an order of
  magnitude, because the 2002 proportions between entries were estimates for a P-III with PC133
  SDRAM and a modern host moves memory-bound against trap-bound costs by about that much; 1.0
  left 11-15% residuals on an extended fit set that an exact fit could remove -- chosen on the
  fit set's residuals, never on the held-out set);
- the data: each workload's relative residual over its measured relative standard error
  (from the samples' interquartile range; at least 1%);
- ``s >= 0``, by NNLS on the two stacked.

Where the data speaks (a per-page sum over 16,384 pages measured to a few percent) it wins by
orders of magnitude; a direction it cannot see stays at ``s0``; entries no fitted workload
counts stay at ``s0`` exactly.
"""

from __future__ import annotations

from typing import Sequence

import attrs
import numpy as np

TAU = 10.0  # prior width around the common scale, as a multiple of it: an order of magnitude
SIGMA_FLOOR = 0.01  # no measurement is trusted beyond 1%


def nnls(a: np.ndarray, b: np.ndarray, max_iter: int | None = None, tol: float = 1e-12) -> np.ndarray:
    """Lawson and Hanson's active-set NNLS: ``argmin ||a x - b||`` over ``x >= 0``.
    O(n) outer steps of an O(m n^2) least-squares solve."""
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    w = a.T @ (b - a @ x)
    scale = 10 * max(m, n) * np.finfo(float).eps * float(np.abs(a).sum(axis=0).max(initial=0.0))  # as scipy's
    for _ in range(max_iter or 3 * n + 10):
        cand = ~passive & (w > scale)
        if not cand.any():
            break
        j = int(np.argmax(np.where(cand, w, -np.inf)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            idx = np.flatnonzero(passive)
            z[idx] = np.linalg.lstsq(a[:, idx], b, rcond=None)[0]
            if (z[idx] > 0).all():
                x = z
                break
            neg = idx[z[idx] <= 0]
            alpha = np.min(x[neg] / (x[neg] - z[neg]))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
        w = a.T @ (b - a @ x)
    return x


@attrs.frozen(slots=True)
class Analysis:
    """The design matrix's structure: which entries the fit set reaches, its rank, the entries it
    cannot separate at all (counted in proportion by every fitted workload: each group becomes
    one fitted sum), and those it determines only in combination with others."""

    names: tuple[str, ...]  # entries counted by at least one fitted workload (the columns)
    rank: int
    groups: tuple[tuple[str, ...], ...]  # proportional columns: one fitted sum each
    combined: tuple[str, ...]  # (groups merged) still in the null space: known only in combination
    separable: tuple[str, ...]  # entries the fit determines one by one
    unreached: tuple[str, ...]  # table entries no fitted workload counts

    @property
    def merged_columns(self) -> int:
        return len(self.names) - sum(len(g) - 1 for g in self.groups)


def _null_free(sub: np.ndarray) -> tuple[int, np.ndarray]:
    """Rank of ``sub`` (columns normalised) and which columns a null-space direction moves."""
    sub = sub / np.linalg.norm(sub, axis=0)
    _, sv, vt = np.linalg.svd(sub, full_matrices=True)
    tol = max(sub.shape) * np.finfo(float).eps * (sv[0] if len(sv) else 0.0) * 1e3
    rank = int((sv > tol).sum())
    null = vt[rank:]
    return rank, np.abs(np.einsum("ij,ij->j", null, null)) > 1e-9


def analyse(a: np.ndarray, names: Sequence[str], all_names: Sequence[str]) -> Analysis:
    """Rank (SVD, columns normalised); groups of proportional columns; what stays in the null
    space once each group is one column."""
    cols = [j for j in range(a.shape[1]) if np.any(a[:, j])]
    sub = a[:, cols]
    rank, _ = _null_free(sub)
    unit = sub / np.linalg.norm(sub, axis=0)
    groups: list[list[int]] = []
    for j in range(len(cols)):
        for g in groups:
            if np.allclose(unit[:, g[0]], unit[:, j], rtol=1e-9, atol=1e-12):
                g.append(j)
                break
        else:
            groups.append([j])
    merged = np.stack([sub[:, g].sum(axis=1) for g in groups], axis=1)
    _, free = _null_free(merged)
    combined = [names[cols[j]] for g, f in zip(groups, free) if f for j in g]
    return Analysis(tuple(names[c] for c in cols), rank,
                    tuple(tuple(names[cols[j]] for j in g) for g in groups if len(g) > 1),
                    tuple(combined),
                    tuple(names[cols[g[0]]] for g, f in zip(groups, free) if not f and len(g) == 1),
                    tuple(n for n in all_names if n not in {names[c] for c in cols}))


@attrs.frozen(slots=True)
class Fit:
    ns: dict[str, float]
    scale: dict[str, float]
    s0: float
    tau: float
    residuals: tuple[float, ...]  # (model - measured) / measured, per fitted workload
    sigma: tuple[float, ...]  # the relative standard error each residual was weighed with
    analysis: Analysis


def relative_error(samples: Sequence[float]) -> float:
    """Relative standard error of a median: 1.2533 x (IQR / 1.349) / sqrt(n) / median, at least 1%."""
    x = np.asarray(samples, dtype=float)
    med = float(np.median(x))
    q1, q3 = np.percentile(x, [25, 75])
    return max(1.2533 * (q3 - q1) / 1.349 / np.sqrt(len(x)) / med if med else 1.0, SIGMA_FLOOR)


def fit(a: np.ndarray, b: np.ndarray, names: Sequence[str], prior: Sequence[float],
        sigma: Sequence[float] | None = None, tau: float = TAU) -> Fit:
    """Fit ``ns`` (``prior * s``, ``s >= 0``) to measurements ``b`` with relative errors ``sigma``
    (5% each when not given); see the module docstring."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    p = np.asarray(prior, dtype=float)
    sig = np.full(len(b), 0.05) if sigma is None else np.asarray(sigma, dtype=float)
    an = analyse(a, names, names)
    m = (a * p[None, :]) / b[:, None]  # relative prediction per unit of scale
    tot = m.sum(axis=1)
    s0 = float(tot.sum() / (tot @ tot))  # least squares of 1 = s0 * tot
    active = p > 0  # an entry that costs nothing in the prior stays at nothing
    k = int(active.sum())
    stacked = np.vstack([m[:, active] / sig[:, None], np.eye(k) / (tau * s0)])
    rhs = np.concatenate([1.0 / sig, np.full(k, 1.0 / tau)])
    s = np.zeros(len(p))
    s[active] = nnls(stacked, rhs)
    s[~active] = s0
    ns = p * s
    res = (a @ ns - b) / b
    return Fit({n: float(v) for n, v in zip(names, ns)}, {n: float(v) for n, v in zip(names, s)}, s0, tau,
               tuple(float(r) for r in res), tuple(float(x) for x in sig), an)

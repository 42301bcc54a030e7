"""Small helpers shared by the benchmarks: best-of-N timing and a printed table."""

from __future__ import annotations

import timeit
from typing import Callable


def per_call_ns(fn: Callable[[], object], number: int = 200_000, repeat: int = 5) -> float:
    """Best-of-``repeat`` nanoseconds per call of ``fn`` (the loop overhead included, as for all rows)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e9


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in r] for r in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])

"""The cost table (primitive operation -> nanoseconds, each with its source) and the counters.

Costs come from the model: code counts primitive operations with :meth:`Account.charge`, and
simulated time is counts times the table's nanoseconds.  No result is ever written down directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from importlib import resources
from typing import Iterable

import attrs

from mmframe.errors import ConfigError

KINDS = ("measured", "derived", "estimate", "fitted")


@attrs.frozen(slots=True)
class CostEntry:
    """One primitive: its cost in ns and where that figure comes from."""

    name: str
    ns: float
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    source: str
    help: str = ""
    fitted_to: str = ""
    owner: str = "core"

    def __attrs_post_init__(self) -> None:
        if not self.source.strip():
            raise ValueError(f"cost entry {self.name!r} needs a source")
        if self.kind == "fitted" and not self.fitted_to.strip():
            raise ValueError(f"fitted cost entry {self.name!r} must say what it was fitted to")
        if self.ns < 0:
            raise ValueError(f"cost entry {self.name!r}: ns must be >= 0")


class CostTable:
    """Ordered entries with dense integer ids for the hot path (``table.id["syscall"]``)."""

    def __init__(self, entries: Iterable[CostEntry], name: str = "custom", describes: str = "") -> None:
        self.name, self.describes = name, describes
        self.entries: list[CostEntry] = []
        self.id: dict[str, int] = {}
        for e in entries:
            self.add(e)

    def add(self, entry: CostEntry) -> int:
        if entry.name in self.id:
            raise ValueError(f"cost entry {entry.name!r} defined twice")
        self.id[entry.name] = len(self.entries)
        self.entries.append(entry)
        return self.id[entry.name]

    @property
    def ns(self) -> list[float]:
        return [e.ns for e in self.entries]

    def __getitem__(self, name: str) -> CostEntry:
        return self.entries[self.id[name]]

    def override(self, path: str | os.PathLike[str]) -> None:
        """Replace ``ns`` (and source) of entries from a cost file; errors name file and key."""
        doc, text = _read(str(path))
        for key in doc:
            if key not in ("meta", "entries"):
                raise ConfigError("unknown table or key in a cost file", file=str(path), key=key,
                                  allowed="[meta] and [entries.<primitive>] tables")
        entries = doc.get("entries", {})
        if not isinstance(entries, dict):
            raise ConfigError("must be a table of cost entries", file=str(path), key="entries",
                              allowed="[entries.<primitive>] tables with ns, kind, source")
        for name, spec in entries.items():
            key = f"entries.{name}"
            if name not in self.id:
                raise ConfigError("unknown cost entry", file=str(path), key=key,
                                  allowed=", ".join(self.id))
            old = self[name]
            try:
                new = _entry(name, spec, default_owner=old.owner)
            except (ValueError, TypeError, KeyError) as exc:
                raise ConfigError(str(exc), file=str(path), key=key) from None
            self.entries[self.id[name]] = new

    def digest(self) -> str:
        """A short hash of every entry's name and ns: names the table in a run manifest."""
        blob = json.dumps([(e.name, e.ns) for e in self.entries]).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @classmethod
    def default(cls) -> CostTable:
        text = resources.files("mmframe").joinpath("data/costs_2002.toml").read_text(encoding="utf-8")
        doc = tomllib.loads(text)
        meta = doc.get("meta", {})
        return cls((_entry(n, s) for n, s in doc["entries"].items()), meta.get("name", "default"),
                   meta.get("describes", ""))


def _read(path: str) -> tuple[dict, str]:
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as exc:
        raise ConfigError(f"cannot read cost file: {exc.strerror or exc}", file=path, key="machine.costs") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=path) from None


def _entry(name: str, spec: dict, default_owner: str = "core") -> CostEntry:
    if not isinstance(spec, dict):
        raise TypeError("must be a table with ns, kind and source")
    unknown = set(spec) - {"ns", "kind", "source", "help", "fitted_to"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} (allowed: ns, kind, source, help, fitted_to)")
    ns = spec["ns"]
    if isinstance(ns, bool) or not isinstance(ns, (int, float)):
        raise TypeError("ns must be a number")
    return CostEntry(name, float(ns), spec.get("kind", "estimate"), str(spec.get("source", "")),
                     str(spec.get("help", "")), str(spec.get("fitted_to", "")), default_owner)


class Account:
    """Counters of primitive operations per (task, owner), and the running cost of the current call.

    The hot path is ``acct.charge(pid, n)``: one list increment and one float add.  ``row`` is the
    current task's row for the current owner (the core, or the plugin whose policy hook is running);
    the scheduler and hook call sites switch it.
    """

    __slots__ = ("table", "ns_of", "rows", "row", "ns", "task")

    def __init__(self, table: CostTable) -> None:
        self.table = table
        self.ns_of = table.ns
        self.rows: dict[tuple[str, str], list[int]] = {}
        self.task = "<machine>"  # lineage of the task being charged
        self.row = self.row_for(self.task, "core")
        self.ns = 0.0

    def row_for(self, task: str, owner: str) -> list[int]:
        key = (task, owner)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = [0] * len(self.ns_of)
        return row

    def charge(self, pid: int, n: int = 1) -> None:
        self.row[pid] += n
        self.ns += n * self.ns_of[pid]

    def totals(self, *, task: str | None = None, owner: str | None = None) -> dict[str, int]:
        """Counts per primitive name, summed over rows matching ``task`` and ``owner``."""
        sums = [0] * len(self.ns_of)
        for (t, o), row in self.rows.items():
            if (task is None or t == task) and (owner is None or o == owner):
                sums = [a + b for a, b in zip(sums, row)]
        return {e.name: c for e, c in zip(self.table.entries, sums) if c}

    def owners(self) -> list[str]:
        return sorted({o for _, o in self.rows})

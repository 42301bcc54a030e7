"""Parsing sizes and durations given in config files: ``"4GiB"``, ``"896MiB"``, ``4096``, ``"500ms"``."""

from __future__ import annotations

import re
from fractions import Fraction

SIZE_UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
TIME_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_NUM = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")

SIZE_FORMS = "an integer number of bytes or a string like '4GiB', '896MiB', '64KiB' (units B, KiB, MiB, GiB, TiB)"
TIME_FORMS = "an integer number of nanoseconds or a string like '500ms', '15us', '2s' (units ns, us, ms, s)"


def _parse(value: object, units: dict[str, int], forms: str, default: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected {forms}, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected {forms}, got a negative number")
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected {forms}, got {type(value).__name__}")
    m = _NUM.match(value)
    unit = (m.group(2) or default) if m else None
    if unit not in units:
        raise ValueError(f"expected {forms}, got {value!r}")
    scaled = Fraction(m.group(1)) * units[unit]
    if scaled.denominator != 1:
        raise ValueError(f"{value!r} is not a whole number of {'bytes' if default == 'B' else 'ns'}")
    return int(scaled)


def parse_size(value: object) -> int:
    """Bytes from an int or a unit string; raises ValueError naming the accepted forms."""
    return _parse(value, SIZE_UNITS, SIZE_FORMS, "B")


def parse_duration(value: object) -> int:
    """Nanoseconds from an int or a unit string; raises ValueError naming the accepted forms."""
    return _parse(value, TIME_UNITS, TIME_FORMS, "ns")


def format_size(nbytes: int) -> str:
    """The largest binary unit that divides ``nbytes`` exactly (``4294967296 -> '4GiB'``)."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        if nbytes and nbytes % SIZE_UNITS[unit] == 0:
            return f"{nbytes // SIZE_UNITS[unit]}{unit}"
    return f"{nbytes}B"

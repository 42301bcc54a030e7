"""Options a plugin or scenario declares, and their validation against config values."""

from __future__ import annotations

from typing import Any

import attrs

from mmframe.units import SIZE_FORMS, TIME_FORMS, parse_duration, parse_size

OPTION_TYPES = ("bool", "int", "float", "str", "size", "duration", "choice", "list[str]", "list[size]")


@attrs.frozen(slots=True)
class Option:
    """One declared option.

    ``scope="queue"`` lets a ``[block.<disk>.<plugin>]`` table override the value for one queue.
    ``minimum``/``maximum`` bound numeric values (after unit parsing for sizes and durations).
    """

    name: str
    type: str = attrs.field(validator=attrs.validators.in_(OPTION_TYPES))
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: int | float | None = None
    maximum: int | float | None = None
    scope: str = attrs.field(default="run", validator=attrs.validators.in_(("run", "queue")))

    def allowed(self) -> str:
        """Human text of what this option accepts."""
        if self.type == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        base = {
            "bool": "true or false",
            "int": "an integer",
            "float": "a number",
            "str": "a string",
            "size": SIZE_FORMS,
            "duration": TIME_FORMS,
            "list[str]": "a list of strings",
            "list[size]": "a list of sizes, each " + SIZE_FORMS,
        }[self.type]
        if self.minimum is not None or self.maximum is not None:
            lo = "" if self.minimum is None else f" >= {self.minimum}"
            hi = "" if self.maximum is None else f" <= {self.maximum}"
            base += f",{lo}{' and' if lo and hi else ''}{hi}"
        return base

    def coerce(self, value: Any) -> Any:
        """The validated value; raises ValueError whose text is what is allowed."""
        t = self.type
        if t == "bool":
            ok = isinstance(value, bool)
        elif t == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif t == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif t == "str":
            ok = isinstance(value, str)
        elif t == "choice":
            ok = isinstance(value, str) and value in self.choices
        elif t == "list[str]":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif t in ("size", "duration"):
            try:
                value, ok = (parse_duration if t == "duration" else parse_size)(value), True
            except ValueError:
                ok = False
        elif t == "list[size]":
            try:
                value, ok = [parse_size(v) for v in value], isinstance(value, list)
            except (ValueError, TypeError):
                ok = False
        else:  # pragma: no cover - guarded by the type validator
            ok = False
        if not ok:
            raise ValueError(self.allowed())
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if (self.minimum is not None and v < self.minimum) or (
                        self.maximum is not None and v > self.maximum):
                    raise ValueError(self.allowed())
        return value


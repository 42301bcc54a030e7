"""The elevator registry: the core's elevators and the checks on what plugins register through
``mmframe_elevators``."""

from __future__ import annotations

import re
from typing import Any, Iterable

from mmframe.block.deadline import Deadline
from mmframe.block.elevator import Elevator
from mmframe.block.linus import Linus
from mmframe.block.noop import Noop
from mmframe.options import Option


def core_elevators() -> list[type[Elevator]]:
    """The core's: deadline (2.5.49's default), noop, linus (2.5.38's)."""
    return [Deadline, Noop, Linus]


_ELEVATOR_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


def check_elevator_class(cls: Any, owner: str) -> str | None:
    """None if ``cls`` is a usable elevator class, else what is wrong with it."""
    if not (isinstance(cls, type) and issubclass(cls, Elevator)):
        return f"{cls!r} is not a subclass of mmframe.block.elevator.Elevator"
    if not isinstance(cls.name, str) or not _ELEVATOR_NAME.fullmatch(cls.name):
        return (f"{cls.__name__}.name must start with a letter and hold letters, digits, '_', '-' and '.' "
                f"(e.g. 'rbtree-2.5.58'), got {cls.name!r}")
    for op in ("merge", "add_req", "next_req", "remove_req", "queue_empty"):
        if getattr(cls, op) is getattr(Elevator, op):
            return f"elevator {cls.name!r} does not implement {op}"
    for t in cls.tunables:
        if not isinstance(t, Option):
            return f"elevator {cls.name!r}: tunables must be Option objects, got {t!r}"
    return None


def registry(entries: Iterable[tuple[str, list[Any]]]) -> dict[str, tuple[type[Elevator], str]]:
    """name -> (class, owner) from ``(owner, classes)`` pairs; raises ValueError on a bad class or
    a name registered twice."""
    out: dict[str, tuple[type[Elevator], str]] = {}
    for owner, classes in entries:
        for cls in classes or ():
            bad = check_elevator_class(cls, owner)
            if bad:
                raise ValueError(f"{owner}: {bad}")
            if cls.name in out:
                raise ValueError(f"elevator {cls.name!r} is registered by both {out[cls.name][1]!r} and {owner!r}")
            out[cls.name] = (cls, owner)
    return out

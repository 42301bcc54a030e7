"""Block trace parsers for ``replay``: fio's iolog version 2 and version 3, and blkparse's default
text output.

* **fio iolog v2** (fio >= 1.17; fio's HOWTO "Trace file format", ``iolog.c``): the first line is
  exactly ``fio version 2 iolog``; then ``<file> add|open|close`` or
  ``<file> read|write|wait|sync|datasync|trim <offset> <length>`` (bytes).  A file must be added
  before it is used.  ``wait`` waits ``offset`` microseconds (fio ignores waits under 100 us, and so
  does mmframe); I/O lines between waits are issued at once.
* **fio iolog v3** (fio >= 3.31): first line ``fio version 3 iolog``; every line starts with a
  timestamp, microseconds from the start of the run (fio writes it with ``utime_since_now``):
  ``<ts> <file> add|open|close`` or ``<ts> <file> <action> <offset> <length>``; ``wait`` is not
  allowed.
* **blkparse** default output (``blkparse_fmt.c``: ``%D %2c %8s %5T.%9t %5p %2a %3d``):
  ``maj,min cpu sequence secs.nsecs pid action rwbs ...``.  The ``Q`` (queued) events of data
  requests (``R`` or ``W`` in rwbs: ``sector + blocks``) are replayed at their times; the device's
  own events (``G I D M F C P U T S B X A R``...) are what the simulator produces itself, so they
  are reported as not replayed; blkparse's closing summary (``CPU0 (8,0):``, ``Total (8,0):``...)
  ends the events.

Every file/device of a trace is replayed onto the one simulated disk at the trace's offsets.
Actions mmframe does not replay are **reported** (counts and the first line of each), never
skipped silently; offsets and lengths that are not whole 512-byte sectors are widened to sectors
and counted.  A line that cannot be read is a :class:`TraceError` naming the file and the line.
Blank lines are ignored.
"""

from __future__ import annotations

import re
from typing import Iterable

import attrs

from mmframe.errors import MmframeError

FORMATS = ("auto", "fio2", "fio3", "blkparse")
FIO2_HEADER = "fio version 2 iolog"
FIO3_HEADER = "fio version 3 iolog"
FILE_ACTIONS = ("add", "open", "close")
IO_ACTIONS = ("read", "write", "wait", "sync", "datasync", "trim")
_BLK = re.compile(r"^\s*(\d+),(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\.(\d{9})\s+(\d+)\s+(\S{1,2})\s+(\S+)(.*)$")
_BLK_SECTORS = re.compile(r"^\s+(\d+) \+ (\d+)(?:\s+\((\d+)\))?(?:\s+\[.*\])?\s*$")
_BLK_SUMMARY = re.compile(r"^(CPU\d+|Total) \(")
_RWBS = re.compile(r"^F?[DWRN]F?[ASM]*$")
MAX_U64 = (1 << 64) - 1


class TraceError(MmframeError):
    """A trace that cannot be read: names the file and line (exit 2 from the CLI)."""

    exit_code = 2

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file, self.line = file, line
        super().__init__(f"{file}{f':{line}' if line else ''}: {message}")


@attrs.frozen(slots=True)
class TraceIO:
    """One I/O to replay: at ``time_ns`` from the start, ``nr_sectors`` at ``sector``."""

    time_ns: int
    rw: int  # 0 read, 1 write
    sector: int
    nr_sectors: int
    line: int


@attrs.define(slots=True)
class Trace:
    """A parsed trace: the I/Os, and what was not replayed (action -> [count, first line])."""

    source: str
    format: str
    ios: list[TraceIO] = attrs.field(factory=list)
    not_replayed: dict[str, list[int]] = attrs.field(factory=dict)
    widened: int = 0

    def skip(self, what: str, line: int) -> None:
        entry = self.not_replayed.setdefault(what, [0, line])
        entry[0] += 1

    def report(self) -> str:
        """What was not replayed, in words (empty if everything was)."""
        parts = [f"{what}: {n} line{'s' * (n != 1)} (first at line {first})"
                 for what, (n, first) in sorted(self.not_replayed.items())]
        if self.widened:
            parts.append(f"{self.widened} I/O{'s' * (self.widened != 1)} widened to whole sectors")
        return "; ".join(parts)


def _int(text: str, file: str, line: int, what: str, maximum: int = MAX_U64) -> int:
    if not text.isdigit() or not text.isascii():
        raise TraceError(file, line, f"{what} {text!r} is not a non-negative integer")
    v = int(text)
    if v > maximum:
        raise TraceError(file, line, f"{what} {v} is too large (at most {maximum})")
    return v


def _sectors(trace: Trace, offset: int, length: int) -> tuple[int, int]:
    start, end = offset >> 9, (offset + length + 511) >> 9
    if offset & 511 or length & 511:
        trace.widened += 1
    return start, end - start


def parse(lines: Iterable[str], source: str, fmt: str = "auto") -> Trace:
    """Parse a trace's lines (without or with newlines) in format ``fmt`` (or detect it)."""
    it = iter(enumerate(lines, 1))
    first = None
    for n, text in it:
        if text.strip():
            first = (n, text.rstrip("\r\n"))
            break
    if first is None:
        raise TraceError(source, None, "the trace is empty")
    n, text = first
    if fmt == "auto":
        if text.strip() == FIO2_HEADER:
            fmt = "fio2"
        elif text.strip() == FIO3_HEADER:
            fmt = "fio3"
        elif _BLK.match(text):
            fmt = "blkparse"
        else:
            raise TraceError(source, n, f"unknown trace format: expected {FIO2_HEADER!r}, {FIO3_HEADER!r} "
                             "or a blkparse event line")
    if fmt not in FORMATS:
        raise TraceError(source, None, f"unknown trace format {fmt!r} (allowed: {', '.join(FORMATS)})")
    trace = Trace(source, fmt)
    if fmt in ("fio2", "fio3"):
        header = FIO2_HEADER if fmt == "fio2" else FIO3_HEADER
        if text.strip() != header:
            raise TraceError(source, n, f"the first line must be {header!r}")
        _parse_fio(trace, it, fmt == "fio3")
    else:
        _parse_blkparse(trace, [(n, text), *it])
    return trace


def _parse_fio(trace: Trace, lines: Iterable[tuple[int, str]], v3: bool) -> None:
    src = trace.source
    files: set[str] = set()
    t_us = 0
    for n, raw in lines:
        fields = raw.split()
        if not fields:
            continue
        ts = None
        if v3:
            ts = _int(fields[0], src, n, "timestamp")
            fields = fields[1:]
        if len(fields) == 2:
            name, action = fields
            if action not in FILE_ACTIONS:
                raise TraceError(src, n, f"action {action!r} needs an offset and a length"
                                 if action in IO_ACTIONS else f"unknown action {action!r} "
                                 f"(allowed: {', '.join(FILE_ACTIONS + IO_ACTIONS)})")
            if action in ("add", "open"):
                files.add(name)
            elif name not in files:
                raise TraceError(src, n, f"file {name!r} closed before it was added")
            else:
                files.discard(name)
            continue
        if len(fields) != 4:
            raise TraceError(src, n, f"expected {'<timestamp> ' if v3 else ''}<file> <action> [<offset> <length>], "
                             f"got {len(fields) + (ts is not None)} fields")
        name, action, off_s, len_s = fields
        if action not in IO_ACTIONS:
            raise TraceError(src, n, f"unknown action {action!r} (allowed: {', '.join(FILE_ACTIONS + IO_ACTIONS)})"
                             if action not in FILE_ACTIONS else f"action {action!r} takes no offset or length")
        offset = _int(off_s, src, n, "offset")
        length = _int(len_s, src, n, "length", (1 << 32) - 1)
        if name not in files:
            raise TraceError(src, n, f"file {name!r} is used before it was added")
        if action == "wait":
            if v3:
                raise TraceError(src, n, "'wait' is not allowed in a version 3 iolog (lines carry timestamps)")
            if offset >= 100:
                t_us += offset
            continue
        if action in ("sync", "datasync", "trim"):
            trace.skip(action, n)
            continue
        if length == 0:
            raise TraceError(src, n, f"{action} of length 0")
        sector, nsect = _sectors(trace, offset, length)
        t = ts if v3 else t_us
        trace.ios.append(TraceIO(t * 1000, 0 if action == "read" else 1, sector, nsect, n))


def _parse_blkparse(trace: Trace, lines: Iterable[tuple[int, str]]) -> None:
    src = trace.source
    for n, raw in lines:
        text = raw.rstrip("\r\n")
        if not text.strip():
            continue
        if _BLK_SUMMARY.match(text):
            break  # blkparse's summary: the events are over
        m = _BLK.match(text)
        if m is None:
            raise TraceError(src, n, "not a blkparse event line (maj,min cpu seq secs.nsecs pid action rwbs ...)")
        secs, nsecs, action, rwbs, rest = int(m.group(5)), int(m.group(6)), m.group(8), m.group(9), m.group(10)
        if action != "Q":
            trace.skip(f"{action} (the simulator makes its own)", n)
            continue
        if not _RWBS.match(rwbs):
            raise TraceError(src, n, f"rwbs field {rwbs!r} is not one of blkparse's (e.g. R, W, WS, RA, FWS, D, N)")
        s = _BLK_SECTORS.match(rest)
        if "D" in rwbs or "N" in rwbs or s is None:
            trace.skip(f"Q {rwbs}" + ("" if s is not None else " (not a sector + blocks request)"), n)
            continue
        sector, nblocks = int(s.group(1)), int(s.group(2))
        if nblocks == 0:
            trace.skip("Q of 0 blocks", n)
            continue
        if sector > MAX_U64 or nblocks > (1 << 32):
            raise TraceError(src, n, "sector or block count too large")
        trace.ios.append(TraceIO(secs * 1_000_000_000 + nsecs, 0 if "R" in rwbs else 1, sector, nblocks, n))


def read_trace(path: str, fmt: str = "auto") -> Trace:
    """Parse the trace file at ``path``; unreadable files are TraceErrors too."""
    try:
        with open(path, encoding="utf-8", errors="strict") as f:
            return parse(f, path, fmt)
    except OSError as exc:
        raise TraceError(path, None, f"cannot read trace: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise TraceError(path, None, f"not UTF-8 text (byte {exc.start})") from None

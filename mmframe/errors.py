"""Errors a user can cause and the CLI reports without a traceback."""

from __future__ import annotations


class MmframeError(Exception):
    """Base of mmframe's user-facing errors."""

    exit_code = 1


class ConfigError(MmframeError):
    """A config mistake: names the file, the key (and line when known) and what is allowed."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 line: int | None = None, allowed: str | None = None) -> None:
        self.message, self.file, self.key, self.line, self.allowed = message, file, key, line, allowed
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: "
        if self.key:
            text += f"{self.key}: "
        text += self.message
        if self.allowed:
            text += f" (allowed: {self.allowed})"
        return text


class UsageError(MmframeError):
    """A bad command line or plugin selection (unknown plugin, conflicting policies)."""

    exit_code = 2


class PluginError(MmframeError):
    """A plugin misbehaved: a hook without a spec, or an implementation that raised."""

    exit_code = 3

    def __init__(self, message: str, *, plugin: str | None = None, hook: str | None = None) -> None:
        self.plugin, self.hook = plugin, hook
        super().__init__(message)


class SimOops(MmframeError):
    """The simulated kernel oopsed (a failed allocation the kernel of the time treated as fatal,
    such as an atomic pte_chain allocation under the page-table lock in 2.5.49): the run ends,
    and the message is the oops report."""

    exit_code = 4

    def __init__(self, report: str) -> None:
        self.report = report
        super().__init__(report)

"""One error hierarchy: what is never retried, what refuses a ruleset, what is worth retrying."""

from __future__ import annotations

from dataclasses import dataclass


class LivewatchError(Exception):
    """Base of every error livewatch raises on purpose."""


class PoisonMessage(LivewatchError):
    """An input message that can never be processed: it goes to the dead-letter output, never retried."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # a short, stable code used as a metric label ("invalid_json", ...)
        self.detail = detail


@dataclass(frozen=True)
class RuleProblem:
    file: str
    line: int | None
    entry: str | None  # rule id (or index) the problem is in, None for file-level problems
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.entry:
            parts.append(f"rule {self.entry}")
        if self.field:
            parts.append(f"field {self.field!r}")
        return f"{': '.join(parts)}: {self.message}"


class RuleSetError(LivewatchError):
    """A ruleset that must not be used: refuse to start with it, or keep the running one."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the rules; fix them and reload:\n{lines}")


class TransientError(LivewatchError):
    """A failure worth retrying with back-off (a broker unavailable, a timeout)."""

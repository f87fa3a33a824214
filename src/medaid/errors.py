"""Errors are values with locations.

Every problem medaid reports names where it is: a file, a line (as the user sees it in the file),
a field or key path, and what is wrong. A :class:`Problem` is that record; :class:`MedaidError`
is the one base exception, carrying one or more problems.  Messages never include amounts or
other patient data beyond claim and person identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True, slots=True)
class Problem:
    """One located problem.

    Attributes:
        message: what is wrong and, where useful, what is allowed.
        source: the file (or other origin, e.g. ``"claim C-17"``) the problem is in.
        line: 1-based line number as the user sees it (a header is line 1), if known.
        field: the field or key path (``plans[0].brackets[2].rate``), if known.
    """

    message: str
    source: str | None = None
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.source is not None:
            where = self.source
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        if self.field:
            where += f"{self.field}: "
        return where + self.message


class MedaidError(Exception):
    """Base of every error medaid raises on purpose; holds one or more :class:`Problem`."""

    def __init__(self, problems: Problem | str | Iterable[Problem]) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class MoneyError(MedaidError, ValueError):
    """An amount of money could not be read (bad text, too many decimals, negative...)."""


class RuleError(MedaidError):
    """A rule file or rule folder is invalid."""


class ClaimError(MedaidError):
    """A claim cannot be settled (no plan, no rule version, duplicate id...)."""

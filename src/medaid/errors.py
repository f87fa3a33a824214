"""Errors are values with locations.

Every problem medaid reports names where it is: a file, a line (as the user sees it in the file),
a field or key path, and what is wrong. A :class:`Problem` is that record; :class:`MedaidError`
is the one base exception, carrying one or more problems.  Messages never include amounts or
other patient data beyond claim and person identifiers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


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


#: Characters a terminal may act on instead of showing: C0 controls but the line feed, DEL, C1
#: controls, the line and paragraph separators and the bidirectional overrides, embeddings and
#: isolates (which reorder what follows them).
_UNSHOWN = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` safe to print on a terminal: each character of :data:`_UNSHOWN` is written as
    its escape (``\\x1b``, ``\\u202e``), so data such as a claim id holding
    ``ESC ] 0 ; ... BEL`` is seen, never run by the terminal.  Line feeds are kept."""
    return _UNSHOWN.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def visible_json(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``, which escapes only C0 controls)
    with the other characters of :data:`_UNSHOWN` escaped as ``\\uXXXX``: the same JSON value,
    safe on a terminal.  (They can only occur inside JSON strings, where the escape is valid.)"""
    return _UNSHOWN.sub(lambda m: f"\\u{ord(m[0]):04x}", text)

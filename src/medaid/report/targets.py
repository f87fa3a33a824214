"""The year's targets file (年度绩效目标): what the year-end evaluation compares the data with.

A small TOML file (docs/report.md, *Targets file*) gives the plan of one benefit year: planned
assisted person-times, planned major-disease person-times, the planned major-disease share of
direct relief person-times, the budget, the fund allocated and the date it was received (and,
optionally, the date it was due; by default the year's first day).  :func:`load_targets` reads
and checks it; every problem names the file, the key's line, the key and what is wrong, all of
them at once, never a traceback.  Money is read by :func:`medaid.money.parse_yuan` (yuan text
or an exact number, to integer fen; TOML floats are read as ``Decimal``, never as ``float``);
the planned share is kept as an exact fraction.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

from ..errors import MedaidError, Problem
from ..money import parse_yuan

#: Keys of a targets file and what each holds (the order of docs/report.md).
TARGET_KEYS: Final = (
    "year", "person_times", "major_disease_person_times", "major_disease_share",
    "budget", "fund_allocated", "fund_received", "fund_due",
)
#: The largest fund a targets file may state, in fen (any 64-bit amount: a fund, not a claim).
_MAX_FUND: Final = 2**63 - 1


class TargetsError(MedaidError):
    """A targets file could not be read (each problem: file, line, key, what is wrong)."""


@dataclass(frozen=True, slots=True)
class Targets:
    """The plan of one benefit year, from a targets file.

    Attributes:
        source: the file it was read from.
        year: the benefit year the plan is for.
        person_times: planned assisted person-times (医疗救助人次), or ``None``.
        major_disease_person_times: planned major-disease person-times, or ``None``.
        major_disease_share: the planned share of major-disease cases among direct relief
            person-times as an exact ``(numerator, denominator)`` fraction of 1 (50% → (1, 2)).
        budget: the year's budget in fen.
        fund_allocated: the fund allocated (received) in fen.
        fund_received: the date the fund was received.
        fund_due: the date it was due: the file's ``fund_due``, else the year's first day.
    """

    source: str
    year: int
    person_times: int | None = None
    major_disease_person_times: int | None = None
    major_disease_share: tuple[int, int] | None = None
    budget: int | None = None
    fund_allocated: int | None = None
    fund_received: dt.date | None = None
    fund_due: dt.date | None = None

    def year_problem(self, year: int, option: str) -> Problem | None:
        """The problem when the report's year (from ``option``: ``--year`` or ``--period``) is
        not the year these targets are for."""
        if year == self.year:
            return None
        return Problem(f"the targets are for {self.year} but the report is for {year} ({option})",
                       source=self.source, field="year")


def load_targets(path: str | Path) -> Targets:
    """Read and check a targets file (docs/report.md, *Targets file*).

    Raises :class:`TargetsError` with every problem: no such file, not UTF-8 or not TOML (the
    parser's line and column), an unknown key (the allowed ones listed), a missing ``year``, a
    value of the wrong kind or out of range, and keys that need another (``fund_received``
    needs ``fund_allocated``, which needs ``budget``; ``fund_due`` needs ``fund_received``).
    """
    p = Path(path)
    source = str(p)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise TargetsError(Problem("no such targets file", source=source)) from None
    except OSError as e:
        raise TargetsError(Problem(f"cannot be read: {e.strerror}", source=source)) from None
    try:
        text = data.decode("utf-8-sig")
        raw = tomllib.loads(text, parse_float=Decimal)
    except UnicodeDecodeError as e:
        raise TargetsError(Problem(f"not UTF-8 text ({e.reason} at byte {e.start})", source=source)) from None
    except tomllib.TOMLDecodeError as e:
        raise TargetsError(Problem(f"not valid TOML: {e}", source=source)) from None
    lines = text.splitlines()

    def problem(key: str, message: str) -> Problem:
        return Problem(message, source=source, line=_line_of(lines, key), field=key)

    problems = [problem(k, "unknown key; allowed: " + ", ".join(TARGET_KEYS)) for k in raw if k not in TARGET_KEYS]
    values: dict[str, Any] = {}
    for key, read in _READERS.items():
        if key not in raw:
            continue
        try:
            values[key] = read(raw[key], key)
        except MedaidError as e:  # parse_yuan's own message for the amount (a ValueError too)
            problems.append(problem(key, e.problems[0].message))
        except ValueError as e:
            problems.append(problem(key, str(e)))
    if "year" not in raw:
        problems.append(Problem("missing: the benefit year these targets are for (year = 2024)",
                                source=source, field="year"))
    for key, needs in (("fund_allocated", "budget"), ("fund_received", "fund_allocated"),
                       ("fund_due", "fund_received")):
        if key in raw and needs not in raw:
            problems.append(problem(key, f"needs {needs} too"))
    if problems:
        problems.sort(key=lambda q: (q.line or 0, q.field or ""))
        raise TargetsError(problems)
    year = values["year"]
    received = values.get("fund_received")
    due = values.get("fund_due", dt.date(year, 1, 1) if received is not None else None)
    return Targets(source=source, **{**values, "fund_due": due})


def _line_of(lines: list[str], key: str) -> int | None:
    """The line where ``key = ...`` is written (bare or quoted), 1-based; ``None`` if absent."""
    pattern = re.compile(rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')\s*=""")
    return next((i for i, text in enumerate(lines, start=1) if pattern.match(text)), None)


def _year(v: Any, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1900 <= v <= 9999:
        raise ValueError("must be a year, a whole number such as 2024")
    return v


def _count(v: Any, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError("must be a whole number of person-times, more than 0 (e.g. 40000)")
    return v


def _share(v: Any, key: str) -> tuple[int, int]:
    """A percentage (``50``, ``44.5``, ``"44.5"`` or ``"44.5%"``) as an exact fraction of 1."""
    wrong = 'must be a percentage above 0 and at most 100, such as 50 or "44.5"'
    if isinstance(v, bool) or not isinstance(v, (int, Decimal, str)):
        raise ValueError(wrong)
    text = str(v).strip().removesuffix("%").strip()
    try:
        share = Fraction(Decimal(text)) / 100
    except (InvalidOperation, ValueError):
        raise ValueError(wrong) from None
    if not 0 < share <= 1:
        raise ValueError(wrong)
    return share.numerator, share.denominator


def _money(v: Any, key: str) -> int:
    if isinstance(v, str | int | Decimal) and not isinstance(v, bool):
        fen = parse_yuan(v, field=key, limit=_MAX_FUND)
    else:
        raise ValueError('must be an amount in yuan, such as "8500000.00" or 8500000')
    if key == "budget" and fen == 0:
        raise ValueError("must be more than 0")
    return fen


def _date(v: Any, key: str) -> dt.date:
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v.strip())
        except ValueError:
            pass
    raise ValueError("must be a date, YYYY-MM-DD (e.g. 2024-01-15)")


_READERS: Final = {
    "year": _year, "person_times": _count, "major_disease_person_times": _count,
    "major_disease_share": _share, "budget": _money, "fund_allocated": _money,
    "fund_received": _date, "fund_due": _date,
}

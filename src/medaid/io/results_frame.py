"""The results frame: the columns of a results file, their types, and values converted to them.

The report and ``medaid recalc --previous`` work on one polars frame with the columns of
:mod:`medaid.io.columns`: the claim's fields (``claim_id, person_id, date, self_pay, group,
kind, hospital, total_cost`` and optional ``major_disease`` and ``channel``) followed by the result fields
(``plan, pool, benefit_year, relief, patient_pays, bracket_relief, capped_by, bracket,
ytd_self_pay, ytd_relief, rule_set_id, rule_version, rule_hash``) and, in a recalculation's
adjustments file, :data:`ADJUSTMENT_FIELDS`.  Money is ``Int64`` fen; ``date`` is ``Date``;
``bracket`` is ``Int8``; ``benefit_year`` is ``Int32``; ``major_disease`` is ``Boolean``;
``channel`` is ``one-stop`` or ``application`` (:data:`CHANNEL_WORDS`, :func:`results_dtypes`).

Values (docs/calculation.md#money; docs/report.md): :func:`normalise` converts the columns a
file reader gives (text, or typed) to these types, and :func:`frame_from_rows` builds the frame
from dicts (a ledger's rows).  Money text goes through :mod:`medaid.io.amounts` (the plain
shape column-wise, anything else through :func:`medaid.money.parse_yuan`, so that the same
values are accepted and refused everywhere); an ID held as a number by
:func:`medaid.io.ids.id_number_problem`; text the export neutralised against formula
injection loses its leading ``'``.  Every bad value raises :class:`ResultsError` with the
file, the line (as the user sees it: the header is line 1) and the field; never the amount.
Files are read by :mod:`medaid.io.results`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import polars as pl

from ..errors import MedaidError, Problem
from ..money import MAX_FEN, too_large
from .amounts import parse_amount, plain_yuan_fen, plain_yuan_re
from .cells import unneutralised
from .columns import (
    CLAIM_FIELDS,
    EXTENDED_RESULT_FIELDS,
    ID_FIELDS,
    MONEY_COLUMNS,
    RESULT_FIELDS,
    result_field,
)
from .ids import id_number_problem
from .validation import iso_date

#: Columns of a recalculation's adjustments file (``medaid recalc -o``) besides the claim's.
ADJUSTMENT_FIELDS: tuple[str, ...] = ("old_relief", "new_relief", "adjustment", "status", "old_second_relief",
                                      "new_second_relief")
#: Every column the report knows, in order.
KNOWN_FIELDS: tuple[str, ...] = (*CLAIM_FIELDS, "major_disease", "channel", *RESULT_FIELDS,
                                 *EXTENDED_RESULT_FIELDS, *ADJUSTMENT_FIELDS)
MONEY_FIELDS: frozenset[str] = frozenset(MONEY_COLUMNS)
#: Money columns that may be negative (an adjustment takes relief back).
SIGNED_MONEY_FIELDS: frozenset[str] = frozenset({"adjustment"})
#: Columns a file must have to be taken as results at all.
REQUIRED_RESULT_FIELDS: tuple[str, ...] = ("claim_id", "person_id", "date", "relief")

#: Text accepted for the major-disease flag (after stripping and case-folding).
TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "是", "有", "✓"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "否", "无", ""})
_NOT_A_FLAG = "is not a yes/no flag (1/0, true/false, yes/no, 是/否)"
#: How a claim was settled (docs/report.md, *Input*): at the hospital's desk (一站式即时结算,
#: paid to the hospital) or on the person's application (申请, paid to the person).  Text
#: accepted (after stripping and case-folding) → the value in the frame; empty = unknown.
CHANNEL_WORDS: dict[str, str] = {"one-stop": "one-stop", "一站式": "one-stop",
                                 "application": "application", "申请": "application"}
_NOT_A_CHANNEL = "is not a settlement channel (one-stop or application; 一站式 or 申请)"

#: The most problems one refusal lists.
MAX_PROBLEMS = 20
#: Money read per claim, at most :data:`medaid.money.MAX_FEN` each (so that the report's sums
#: of them stay exact in ``Int64``); the year-to-date, bracket and recalculation columns only
#: have to fit 64 bits.
PER_CLAIM_MONEY: frozenset[str] = frozenset(("self_pay", "total_cost", "relief", "patient_pays"))
_INT64_MAX = 2**63 - 1
#: The column of a raw frame holding each row's line as the user sees it (when rows were
#: skipped: blank lines), not a column of the file.
LINE = "\0line"
#: Yuan text of the plain shape, converted column-wise: at most 16 integer digits (a year's
#: total fits in ``Int64`` fen), unsigned or (``adjustment``) signed.
_PLAIN_YUAN = plain_yuan_re(16)
_SIGNED_YUAN = plain_yuan_re(16, signed=True)


class ResultsError(MedaidError):
    """A results file (or ledger) could not be read as batch results."""


def results_dtypes() -> dict[str, pl.DataType]:
    """The type of every column of :data:`KNOWN_FIELDS` in the results frame."""
    d: dict[str, pl.DataType] = {f: pl.String() for f in KNOWN_FIELDS}
    d.update({f: pl.Int64() for f in MONEY_FIELDS})
    d.update(date=pl.Date(), bracket=pl.Int8(), benefit_year=pl.Int32(), major_disease=pl.Boolean())
    return d


def canonical_header(name: str) -> str | None:
    """The field a header names (English name, a Chinese alias, or the Chinese header that
    ``--lang zh`` writes), or ``None`` if unknown."""
    field = result_field(name)
    return field if field in KNOWN_FIELDS else None


def frame_from_rows(rows: Iterable[Mapping[str, Any]], source: str = "<rows>") -> pl.DataFrame:
    """Build the results frame from dicts (money as ``int`` fen), e.g. a ledger's rows."""
    cols: dict[str, list[Any]] = {f: [] for f in KNOWN_FIELDS}
    seen: set[str] = set()
    for n, row in enumerate(rows, start=1):
        for f in KNOWN_FIELDS:
            if f in row:
                seen.add(f)  # a key present with None (capped_by: not capped) is data, not absent
            v = row.get(f)
            if v is not None:
                try:
                    v = _row_value(f, v)
                except (TypeError, ValueError) as e:
                    raise ResultsError(Problem(str(e), source=source, line=n, field=f)) from None
            cols[f].append(v)
    dtypes = results_dtypes()
    present = [f for f in KNOWN_FIELDS if f in seen or f in REQUIRED_RESULT_FIELDS]
    return pl.DataFrame({f: pl.Series(f, cols[f], dtype=dtypes[f]) for f in present})


def _row_value(f: str, v: Any) -> Any:
    """One value of a result row dict, checked and typed for the frame."""
    if f in MONEY_FIELDS:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"money must be int fen in result rows, not {type(v).__name__}")
        return v
    if f == "date":
        if isinstance(v, dt.datetime):
            return v.date()
        return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)[:10])
    if f == "major_disease":
        try:
            return _flag(v)
        except ValueError:
            raise ValueError(_NOT_A_FLAG) from None
    if f == "channel":
        word = str(v).strip().casefold()
        if word and word not in CHANNEL_WORDS:
            raise ValueError(_NOT_A_CHANNEL)
        return CHANNEL_WORDS.get(word)
    return v


def normalise(raw: pl.DataFrame, *, source: str, first_line: int = 2,
              required: Iterable[str] = REQUIRED_RESULT_FIELDS, neutralised: bool = False) -> pl.DataFrame:
    """Convert a frame of result columns (text or already typed) to the results frame.

    Text money goes to fen, text dates to ``Date``, ``bracket``/``benefit_year`` to integers,
    ``major_disease`` to ``Boolean``, ``channel`` to ``one-stop``/``application``; empty text
    is a missing value; an ID held as a number becomes its exact digits or is refused
    (:func:`medaid.io.ids.id_number_problem`).
    Columns that name no known field are kept as they are (categories as text).  With
    ``neutralised`` (CSV, XLSX) a text cell the export neutralised against formula injection
    loses its leading ``'``.  Bad values raise :class:`ResultsError` with ``source``, the line
    (the frame's :data:`LINE` column if it has one, else row ``i`` is line ``first_line + i``) and
    the field.

    One columnar pass converts everything; a second pass counts, per column, the values that
    did not convert.  Only money text outside the plain ``digits[.dd]`` form goes through
    :func:`medaid.money.parse_yuan` row by row (it either reads it, e.g. ``12,345.67``, or
    says why not).
    """
    missing = [f for f in required if f not in raw.columns]
    if missing:
        raise ResultsError(Problem(
            f"not a results file: missing column(s) {', '.join(missing)} "
            "(run medaid batch on the claims first)", source=source, line=1 if first_line == 2 else None))
    lines = raw[LINE].to_list() if LINE in raw.columns else None

    def line_of(i: int) -> int:
        return lines[i] if lines is not None else first_line + i

    dtypes = results_dtypes()
    columns = [c for c in raw.columns if c != LINE]
    fields = [c for c in columns if c in KNOWN_FIELDS]
    texts: dict[str, pl.Expr] = {}  # text columns converted to another type: their cleaned text
    numeric_ids: dict[str, pl.Expr] = {}  # ID columns held as numbers: why a value is refused
    exprs: list[pl.Expr] = []
    for f in columns:
        dtype, col = raw.schema[f], pl.col(f)
        if f not in KNOWN_FIELDS:
            if dtype == pl.String:
                exprs.append((unneutralised(col) if neutralised else col).alias(f))
            else:
                exprs.append(col.cast(pl.String) if isinstance(dtype, (pl.Categorical, pl.Enum)) else col)
            continue
        want = dtypes[f]
        if dtype == pl.String:
            text = pl.when(col.str.len_bytes() > 0).then(col)  # empty text is a missing value
            if f == "channel":  # spaces alone are no channel: unknown, as empty
                texts[f] = pl.when(text.str.strip_chars().str.len_bytes() > 0).then(text)
                exprs.append(_channel_expr(text).alias(f))
                continue
            if want == pl.String:
                exprs.append((unneutralised(text) if neutralised else text).alias(f))
                continue
            texts[f] = text
            if f in MONEY_FIELDS:
                conv = _fen_fast(text, signed=f in SIGNED_MONEY_FIELDS)
            elif f == "major_disease":
                conv = _flag_expr(text)
            elif want == pl.Date:  # a settlement time (2024-05-03 10:15:00) counts by its day
                day = pl.when(text.str.len_bytes() > 10).then(
                    text.str.replace(r"[ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?$", "")).otherwise(text)
                conv = iso_date(day)
            else:
                conv = text.cast(want, strict=False)
            exprs.append(conv.alias(f))
        elif f in ID_FIELDS and dtype.is_numeric():
            numeric_ids[f] = id_number_problem(col, dtype)
            exprs.append(col.cast(pl.Int64, strict=False).cast(pl.String).alias(f))
        elif f == "channel":
            texts[f] = col.cast(pl.String)
            exprs.append(_channel_expr(col.cast(pl.String)).alias(f))
        elif f == "major_disease" and dtype != pl.Boolean:
            texts[f] = col.cast(pl.String)
            exprs.append(_flag_expr(col.cast(pl.String)).alias(f))
        elif f in MONEY_FIELDS and not dtype.is_integer():
            raise ResultsError(Problem(f"money must be yuan text, not {dtype}", source=source, field=f))
        else:
            try:
                exprs.append(col.cast(want).alias(f))
            except Exception:  # pragma: no cover - defensive
                raise ResultsError(Problem(f"cannot be read as {want}", source=source, field=f)) from None
    out = raw.select(exprs)
    # Second pass: per converted column, how many values did not convert (and negatives).
    checks = [
        (t.is_not_null() & pl.lit(out[f]).is_null()).sum().alias(f) for f, t in texts.items()
    ] + [(pl.lit(out[f]) < 0).sum().alias(f"-{f}") for f in fields
         if f in MONEY_FIELDS and f not in SIGNED_MONEY_FIELDS
         ] + [(pl.lit(out[f]) > MAX_FEN).sum().alias(f"+{f}") for f in fields if f in PER_CLAIM_MONEY
         ] + [e.is_not_null().sum().alias(f"#{f}") for f, e in numeric_ids.items()]
    counts = raw.select(checks).row(0, named=True) if checks else {}
    problems: list[Problem] = []
    fixes: dict[str, pl.Series] = {}
    for f, t in texts.items():
        if not counts.get(f):
            continue
        idx = _rows(raw, t.is_not_null() & pl.lit(out[f]).is_null())
        if f in MONEY_FIELDS:
            fixes[f] = _fen_slow(raw, out[f], f, t, idx, source, line_of, problems)
        else:
            message = {"major_disease": _NOT_A_FLAG, "channel": _NOT_A_CHANNEL,
                       "date": "is not a date (YYYY-MM-DD)"}.get(f, "is not a whole number")
            problems += [Problem(message, source=source, line=line_of(i), field=f) for i in idx]
    for f, e in numeric_ids.items():
        if counts.get(f"#{f}"):
            why = raw.select(e.alias("m"))["m"]
            problems += [Problem(why[i], source=source, line=line_of(i), field=f)
                         for i in _rows(raw, e.is_not_null())]
    if fixes:
        out = out.with_columns(list(fixes.values()))
    for f in fields:
        if f in SIGNED_MONEY_FIELDS:
            continue
        if counts.get(f"-{f}") or (f in fixes and (fixes[f] < 0).any()):
            idx = _rows(out, pl.col(f) < 0)
            problems += [Problem("must not be negative", source=source, line=line_of(i), field=f) for i in idx]
        if counts.get(f"+{f}") or (f in fixes and f in PER_CLAIM_MONEY and (fixes[f] > MAX_FEN).any()):
            idx = _rows(out, pl.col(f) > MAX_FEN)
            problems += [Problem(too_large(), source=source, line=line_of(i), field=f) for i in idx]
    problems += _twice(out, line_of, source)
    if problems:
        problems.sort(key=lambda p: (p.line or 0, fields.index(p.field) if p.field in fields else 0))
        raise ResultsError(problems[:MAX_PROBLEMS])
    return out


def _twice(out: pl.DataFrame, line_of: Callable[[int], int], source: str) -> list[Problem]:
    """A claim id on more than one row: each later row, with the line of the first (results
    hold a claim once, as a batch refuses a claim file that lists one twice; summed twice, its
    relief would be counted twice)."""
    if "claim_id" not in out.columns or out["claim_id"].drop_nulls().n_unique() == out["claim_id"].count():
        return []
    again = out.select("claim_id").with_row_index("i").with_columns(
        pl.col("i").first().over("claim_id").alias("first")).filter(
        pl.col("claim_id").is_not_null() & (pl.col("i") != pl.col("first"))).head(MAX_PROBLEMS)
    return [Problem(f"duplicate claim id (first on line {line_of(first)})", source=source, line=line_of(i),
                    field="claim_id") for i, _, first in again.iter_rows()]


def _rows(frame: pl.DataFrame, mask: pl.Expr, limit: int = MAX_PROBLEMS) -> list[int]:
    """Indexes of the first ``limit`` rows where ``mask`` holds."""
    return frame.select(mask.fill_null(False).arg_true().head(limit).cast(pl.Int64)).to_series().to_list()


def _fen_fast(text: pl.Expr, signed: bool = False) -> pl.Expr:
    """Plain yuan text → Int64 fen, column-wise: ``12345.67``, ``12345.6`` or ``12345`` (as
    spreadsheets export them; with ``signed``, also after a ``-``), by
    :func:`medaid.io.amounts.plain_yuan_fen`; anything else (spaces, separators, three
    decimals, other digits) gives null here and is left to :func:`_fen_slow`."""
    plain = text.str.contains(_SIGNED_YUAN if signed else _PLAIN_YUAN)
    return pl.when(plain).then(plain_yuan_fen(text))


def _fen_slow(raw: pl.DataFrame, fast: pl.Series, f: str, text: pl.Expr, idx: list[int], source: str,
              line_of: Callable[[int], int], problems: list[Problem]) -> pl.Series:
    """Money text the fast path left: read each through ``parse_yuan`` (all of them when they
    are few; the first problems otherwise) and return the completed column."""
    limit = MAX_FEN if f in PER_CLAIM_MONEY else _INT64_MAX
    odd = raw.select(pl.int_range(pl.len()).alias("i"), text.alias("t")).filter(
        pl.col("t").is_not_null() & pl.lit(fast).is_null())
    at: list[int] = []
    fens: list[int] = []
    for i, t in odd.iter_rows():
        try:
            fens.append(parse_amount(t, f, limit=limit, signed=f in SIGNED_MONEY_FIELDS))
            at.append(i)
        except MedaidError as e:
            problems.append(Problem(e.problems[0].message, source=source, line=line_of(i), field=f))
            if len(problems) >= MAX_PROBLEMS:
                break
    if not at:
        return fast
    return fast.scatter(at, pl.Series(fens, dtype=pl.Int64))


def _flag(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        if v in (0, 1):
            return bool(v)
        raise ValueError(v)
    s = str(v).strip().casefold()
    if s in TRUE_WORDS:
        return True
    if s in FALSE_WORDS:
        return None if s == "" else False
    raise ValueError(v)


def _flag_expr(text: pl.Expr) -> pl.Expr:
    """The major-disease flag: 1/0, true/false, yes/no, 是/否 → Boolean (empty = missing)."""
    low = text.str.strip_chars().str.to_lowercase()
    return (
        pl.when(low.is_in(sorted(TRUE_WORDS))).then(True)
        .when(low.is_in(sorted(FALSE_WORDS - {""}))).then(False)
        .otherwise(None)
    )


def _channel_expr(text: pl.Expr) -> pl.Expr:
    """The settlement channel: ``one-stop``/``一站式`` → ``one-stop``, ``application``/``申请`` →
    ``application`` (:data:`CHANNEL_WORDS`); empty = unknown; anything else null (refused)."""
    word = text.str.strip_chars().str.to_lowercase()
    return word.replace_strict(CHANNEL_WORDS, default=None, return_dtype=pl.String)

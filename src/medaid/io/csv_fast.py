"""Plain CSV exports read and typed in one streaming pass (the batch's fast reader).

Rules implemented (README.md#performance-measured, README.md#reliability; docs/batch.md,
*How it is fast*):

* A UTF-8 CSV file without a quote character (most system exports) has one line per row, so
  polars' streaming CSV scan gives every row its line exactly (``row`` = position + 2, the
  header is line 1).  The scan types the rows as it reads them — ISO dates, plain amounts
  (digits, at most two decimals) by an exact decimal cast, repeating text as categories — and
  flags every row it does not take as it is (any other form of date or amount, text with white
  space around it, empty required fields).  The file's text is never in memory whole.
* Every flagged row is read again, as text, and typed by
  :func:`medaid.io.validation.type_rows` itself, which gives its value or its problem; so a value
  the scan takes is the value ``type_rows`` gives (the expressions are the same), and every
  other row is ``type_rows``' own.  A property test compares the two paths on dirty files.
* Structure is checked exactly: a line with too many fields stops the scan; a row whose last
  field is empty is looked at again as a raw line — a blank line (not a row), a row with an
  empty last field (kept), or a short row.  Anything the scan cannot place with certainty
  (quotes, a short or blank-but-spaced line, bytes that are not UTF-8) makes :func:`scan_claims`
  return ``None``, and the caller reads the file the careful way (:mod:`medaid.io.readers`), which
  locates the problem.
"""

from __future__ import annotations

import mmap
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import polars as pl

from ..tuning import alongside
from .amounts import PLAIN_YUAN_RE, plain_yuan_fen
from .columns import CLAIM_MONEY_FIELDS, HEADER_ALIASES, REQUIRED_FIELDS, RESULT_FIELDS, ROW
from .csv_pieces import CsvPieces, csv_pieces
from .ids import needs_tidying, untidy
from .totals_rows import totals_rows
from .validation import FEW_VALUES, few_values, finish_validation, iso_date, type_rows

#: Flag columns of the scan (dropped before the frame leaves this module).
_REDO, _SHORT, _DIGITS = "__redo", "__maybe_short", "__digit_ids"


class Scanned(NamedTuple):
    """A claim file read and typed (what :func:`scan_claims` gives)."""

    clean: pl.DataFrame
    rejects: pl.DataFrame
    rejected_rows: pl.DataFrame
    rows_read: int
    #: The distinct text of category columns (``group``, ``kind``, ``hospital``) where known: every
    #: value of the column in ``clean`` is among them (the writer checks these, not every row).
    text_values: dict[str, pl.Series]
    #: Totals rows (合计, 小计, Total ...: :func:`medaid.io.totals_rows.totals_rows`) as read, with
    #: ``row``; they are among ``rows_read`` but neither clean nor rejected.
    totals: pl.DataFrame | None = None
    #: The header's line (the lines above it are titles) and the blank lines skipped.
    header_line: int = 1
    blank_lines: int = 0
    #: Whether every claim and person id read is ASCII digits, perhaps after a ``+`` (so is
    #: every one in ``clean``): no cell of such columns needs quotes when written (the CSV
    #: writer's look for them skips them: at 10 M claims 0.1 s).
    digit_ids: bool = False


def scan_claims(
    path: str | Path, *, encoding: str | None = None, mapping: Mapping[str, str] | None = None,
    source: str | None = None, columns: Collection[str] | None = None,
) -> Scanned | None:
    """The run's frames (:class:`Scanned`) of a plain UTF-8 CSV claim file, the same as the
    careful readers give, with the distinct text of the category columns; ``None`` when the
    file is not one this reader takes (see the module doc).  Raises
    :class:`medaid.io.readers.ReadError` as they do for a file whose header lacks a required field
    (naming ``source``, by default the path).

    ``columns``: the output columns asked for (``--columns``); the file's other columns that no
    claim field reads (:func:`unread`) are then not parsed nor kept in ``clean`` (the rejects
    keep every column: their text is read again)."""
    pieces = csv_pieces(path, encoding=encoding, mapping=mapping, source=source)
    if pieces is None or pieces.header_line != 1:  # titles above the header: the piece reader
        return None
    skip = unread(pieces.names, columns)
    # the look for quotes (one memchr pass) runs while the scan runs; a file with one is then
    # read the careful way, the scan's work dropped
    with alongside(_has_quote, pieces.path, name="medaid-quotes") as quoted:
        try:
            scanned = _scan(pieces, skip).collect(engine="streaming")
        except pl.exceptions.PolarsError:  # more fields than the header, bytes not UTF-8, ...
            return None
        if quoted.result() or _last_line_too_long(pieces.path, len(pieces.names)):
            return None
    maybe_short = scanned[_SHORT]
    blank = None
    if maybe_short.any():
        blank = _blank_lines(pieces, scanned.filter(maybe_short)[ROW])
        if blank is None:
            return None
    flags = scanned.select(_REDO, _SHORT, _DIGITS)
    # kept in the scan's pieces (one per morsel, the same for every column): the steps that
    # gather from a column make it one piece themselves; copying all of them here cost 0.2 s
    # at 10 M rows
    typed = pl.DataFrame([scanned[c] for c in scanned.columns if c not in (_REDO, _SHORT, _DIGITS)])
    del scanned
    if blank is not None and blank.len():
        keep = ~typed[ROW].is_in(blank.implode())
        typed, flags = typed.filter(keep), flags.filter(keep)
    rows_read = typed.height
    typed, text_values, distinct = _tidy_categories(typed)
    digit_ids = bool(flags[_DIGITS].all())
    redo = flags[_REDO] | _ids_to_redo(typed, flags[_DIGITS])
    problems: dict[str, pl.DataFrame] = {}
    raw_redone = None
    totals = None
    if redo.any():
        raw_redone = pieces_rows(pieces, typed.filter(redo)[ROW])
        is_total = totals_rows(raw_redone)
        if is_total.any():
            totals = raw_redone.filter(is_total)
            raw_redone = raw_redone.filter(~is_total)
            not_total = ~typed[ROW].is_in(totals[ROW].implode())
            typed, redo = typed.filter(not_total), redo.filter(not_total)
        redone, problems = type_rows(raw_redone, categories=True)
        typed = pl.concat([typed.filter(~redo), redone.select(typed.columns)]).sort(ROW)
        # the rows typed again may bring values of their own
        text_values = {f: pl.concat([v, redone[f].unique().cast(pl.String).drop_nulls()]).unique()
                       for f, v in text_values.items()}
    clean, rejects = finish_validation(typed, [problems])
    bad_rows = _rejected_text(pieces, rejects, raw_redone)
    return Scanned(clean, rejects, bad_rows, rows_read, text_values, totals,
                   blank_lines=0 if blank is None else blank.len(), digit_ids=digit_ids)


def _ids_to_redo(typed: pl.DataFrame, digits: pl.Series) -> pl.Series:
    """The rows to read again as text for their ids: an empty claim or person id, one to tidy
    (:func:`medaid.io.ids.untidy`), or a totals row (no person id, or a label among the ids:
    合计 ...; :func:`medaid.io.totals_rows.totals_rows`).  ``digits``: the rows whose two ids
    are digits (an optional ``+`` before them: the scan's integer cast takes nothing else),
    which are none of these; only the other rows are looked at (at 10 M claims with numbered
    ids the look at every row took 1.1 s of CPU: three patterns on each id)."""
    ids = ("claim_id", "person_id")

    def look(rows: pl.DataFrame) -> pl.Series:
        bad = rows.select(pl.any_horizontal(pl.col(f).is_null() | untidy(pl.col(f), f) for f in ids)).to_series()
        # (totals_rows' first look is one anchored pattern on the two ids)
        return bad | totals_rows(rows)

    other = ~digits
    if not other.any():
        return other
    if other.all():
        return look(typed.select(ROW, *ids))
    at = other.arg_true()
    return other.scatter(at, look(typed.select(ROW, *ids).gather(at)))


def _last_line_too_long(path: Path, width: int) -> bool:
    """Whether the file's last line, when no line break ends it, holds more than ``width``
    fields: polars' reader takes such a line with one empty field too many as a whole row
    (``…,H1,ok,`` under eight names) where it refuses the same line anywhere else, so the
    scan checks it itself."""
    with open(path, "rb") as f:
        end = f.seek(0, 2)
        if not end:
            return False
        f.seek(max(0, end - (1 << 16)))
        tail = f.read()
    if tail.endswith(b"\n"):
        return False
    start = tail.rfind(b"\n")
    if start < 0 and end > len(tail):  # a last line longer than 64 KiB: let the careful reader see
        return True
    return tail[start + 1:].count(b",") >= width


def _has_quote(path: Path) -> bool:
    """Whether the file holds a ``"`` anywhere (one ``memchr`` pass over a mapping of it)."""
    with open(path, "rb") as f:
        if not f.seek(0, 2):
            return False
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return mm.find(b'"') >= 0


def _schema(pieces: CsvPieces, text_only: bool = False) -> dict[str, pl.DataType]:
    return {n: pl.Categorical() if n in FEW_VALUES and not text_only else pl.String()
            for n in pieces.names}


def _raw_scan(pieces: CsvPieces, text_only: bool = False) -> pl.LazyFrame:
    """The data lines as a lazy frame: ``row`` (the line) and the columns by field name."""
    return (
        # (``missing_columns="insert"``: a blank first data line must not set the width; short
        # rows are found by their empty last field, see _blank_lines)
        pl.scan_csv(pieces.path, has_header=False, skip_rows=1, schema=_schema(pieces, text_only),
                    raise_if_empty=False, missing_columns="insert",
                    row_index_name=ROW, row_index_offset=2)  # numbered by the reader
        .with_columns(pl.col(ROW).cast(pl.Int64))
    )


def unread(names: Sequence[str], columns: Collection[str] | None) -> set[str]:
    """The columns of a claim file (``names``, by field) that need not be read when the output
    columns asked are ``columns`` (``--columns``; ``None``: all, nothing is left out): those
    that are not a claim field (:data:`medaid.io.columns.HEADER_ALIASES`: the fields that are
    validated, placed, settled or totalled) nor asked for.  Nothing is left out when a name asked
    is neither a column of the file nor a result field: the run then refuses the name, listing
    every column."""
    if not columns or not set(columns) <= set(names) | set(RESULT_FIELDS):
        return set()
    return {n for n in names if n not in HEADER_ALIASES and n not in columns}


def _scan(pieces: CsvPieces, skip: Collection[str] = ()) -> pl.LazyFrame:
    """Every row typed the common way, with ``__redo`` (the row needs :func:`type_rows`),
    ``__maybe_short`` (its last field is empty: a blank line, a short row or an empty field) and
    ``__digit_ids`` (its claim and person ids are digits; the others are looked at afterwards,
    :func:`_ids_to_redo`).

    The values taken are those :func:`type_rows` gives for the same text (the same date format,
    the same exact decimal cast of the same plain amounts)."""
    names = pieces.names
    exprs: list[pl.Expr] = [pl.col(ROW)]
    flags: list[pl.Expr] = []
    digits: list[pl.Expr] = []
    for n in names:
        c = pl.col(n)
        if n in skip:  # (not claim fields, and never flagged: the scan does not parse them)
            continue
        if n == "date":
            d = iso_date(c)
            exprs.append(d.alias(n))
            flags.append(d.is_null())
        elif n in CLAIM_MONEY_FIELDS:
            ok = c.str.contains(PLAIN_YUAN_RE)
            # plain text (checked by ``ok``) is exact in Decimal(18, 2), whose integer form is
            # the amount in fen; the value of any other row is replaced when it is typed again
            exprs.append(plain_yuan_fen(c).alias(n))
            flags.append(~ok.fill_null(False) if n in REQUIRED_FIELDS else ~ok.fill_null(True))
        elif n in ("claim_id", "person_id"):
            exprs.append(c)
            # digits (an optional "+" first) are all the integer cast takes: printable, no space,
            # no label, nothing to tidy; the other ids are looked at after the scan (_ids_to_redo)
            digits.append(c.cast(pl.UInt64, strict=False).is_not_null())
        elif n == "household_id":  # optional: only one to tidy is typed again
            exprs.append(c)
            flags.append(untidy(c, n).fill_null(False))
        else:  # categories (checked once per distinct value afterwards) and pass-through text
            exprs.append(c)
    exprs.append(pl.any_horizontal(flags).alias(_REDO) if flags else pl.lit(False).alias(_REDO))
    exprs.append(pl.col(names[-1]).is_null().alias(_SHORT))
    exprs.append(pl.all_horizontal(digits).alias(_DIGITS) if len(digits) == 2 else pl.lit(False).alias(_DIGITS))
    return _raw_scan(pieces).select(exprs)


def _blank_lines(pieces: CsvPieces, lines: pl.Series) -> pl.Series | None:
    """Of the given lines (each parsed with its last field empty), those that are blank; or
    ``None`` when one is neither blank nor a whole row (``width − 1`` commas): a short row or
    a line of spaces, which the careful reader reports or skips."""
    width = len(pieces.names)
    try:
        text = (
            pl.scan_csv(pieces.path, has_header=False, skip_rows=1, separator="\x1f",
                        quote_char=None, schema={"line": pl.String}, raise_if_empty=False)
            .with_row_index(ROW, offset=2)
            .filter(pl.col(ROW).cast(pl.Int64).is_in(lines.implode()))
            .select(pl.col(ROW).cast(pl.Int64), pl.col("line"))
            .collect(engine="streaming")
        )
    except pl.exceptions.PolarsError:
        return None
    if text.height != lines.len():
        return None
    shape = text.select(
        ROW, pl.col("line").is_null().alias("blank"),
        pl.col("line").str.count_matches(",", literal=True).fill_null(0).alias("commas"),
    )
    if shape.filter(~pl.col("blank") & (pl.col("commas") != width - 1)).height:
        return None
    return shape.filter(pl.col("blank"))[ROW]


def _tidy_categories(
    typed: pl.DataFrame,
) -> tuple[pl.DataFrame, dict[str, pl.Series], dict[str, pl.Series]]:
    """Category columns whose distinct values need it: stripped, empty → null (as
    :func:`medaid.io.validation.type_rows` does, looking at each distinct value once); the
    distinct text of each column that needed nothing (for the writer's checks); and the
    distinct text of every category column as read."""
    few = [f for f in FEW_VALUES if f in typed.columns]
    if not few:
        return typed, {}, {}
    # the distinct values of each column (in parallel), then the check on those alone
    seen = typed.select(pl.col(f).unique().cast(pl.String).drop_nulls().implode() for f in few)
    values = {f: seen[f].explode().drop_nulls() for f in few}
    fix = [f for f in few if needs_tidying(values[f])]
    if fix:
        typed = typed.with_columns(few_values(typed[f]) for f in fix)
    return typed, {f: v for f, v in values.items() if f not in fix}, values


def pieces_rows(pieces: CsvPieces, lines: pl.Series) -> pl.DataFrame:
    """The given lines as raw text rows (``row``, every column ``String``), read again."""
    return (_raw_scan(pieces, text_only=True)
            .filter(pl.col(ROW).is_in(lines.implode()))
            .collect(engine="streaming"))


def _rejected_text(
    pieces: CsvPieces, rejects: pl.DataFrame, redone: pl.DataFrame | None,
) -> pl.DataFrame:
    """The rejected rows' text as read (for the rejects file): from the rows read again, and
    the duplicate claim ids (found on the whole file) read again now."""
    empty = pl.DataFrame(schema={ROW: pl.Int64, **_schema(pieces, text_only=True)})
    if not rejects.height:
        return empty
    lines = rejects[ROW].unique()
    have = empty if redone is None else redone.filter(pl.col(ROW).is_in(lines.implode()))
    missing = lines.filter(~lines.is_in(have[ROW].implode()))
    if missing.len():
        have = pl.concat([have, pieces_rows(pieces, missing)])
    return have.sort(ROW)

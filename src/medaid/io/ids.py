"""Identifiers in claim and results files: claim and person ids as text, tidied, never numbers.

Rules implemented (README.md#reliability; docs/batch.md, *Input files*, **Values**):

* Ids are tidied by :func:`medaid.domain.claims.tidy_id` (NFKC, invisible characters removed,
  trimmed, an ID number's check character upper-cased), so one person keyed two ways is one
  person.  Only the values that need it take that (Python) path: one vectorised look
  (:func:`untidy`) finds them.
* An ID a file holds as a number (an XLSX numeric cell, a JSON number, a Parquet integer or
  float column) is its exact digits when it is a whole number of at most
  :data:`MAX_ID_DIGITS` digits; any other number is refused (:func:`number_as_id`): a
  spreadsheet keeps 15 significant digits, so an 18-digit ID number typed as a number has lost
  its last digits, and two people could become one.  Messages never repeat the number.
* Ids never hold a quote character: one there is a quote left open by mistake
  (:data:`STRAY_QUOTE_IN_ID`).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import polars as pl

from ..domain.identifiers import LOWER_CHECK_PATTERN, PLAIN_ID_PATTERN, tidy_id
from .columns import ID_FIELDS

#: The most digits an ID held as a number may have: a spreadsheet keeps 15 significant digits
#: of a number (Excel turns 500233196505051123 into 500233196505051000), and a double holds
#: every whole number of 15 digits exactly.
MAX_ID_DIGITS = 15
_ID_AS_TEXT = ("; store IDs as text (in Excel: format the column as Text before typing or "
               "pasting them; in other files: write them as strings)")
#: Why a number is refused as an ID (never the number itself: IDs are personal data).
ID_FRACTION = "is a number with a fraction, not an ID" + _ID_AS_TEXT
ID_TOO_LONG = (f"is a number of more than {MAX_ID_DIGITS} digits, which a spreadsheet or a "
               "float does not keep exactly (its last digits may be lost)" + _ID_AS_TEXT)
#: The problem of an id holding a quote character: ids never do; a quote left open by mistake
#: (see :func:`medaid.io.csv_readers._stray_quote`) leaves one there.
STRAY_QUOTE_IN_ID = 'holds a quote character ("); is a quote left open by mistake on this line?'


def number_as_id(v: int | float | str) -> tuple[str | None, str | None]:
    """An ID a file holds as a number → ``(digits, None)``, or ``(None, message)``.

    ``v`` is an ``int``, a ``float`` (a spreadsheet cell) or the text of a JSON number.  A whole
    number of at most :data:`MAX_ID_DIGITS` digits gives its exact digits (``1001.0`` →
    ``"1001"``); a fraction, more digits (``5.002331965050511e+17``), or a non-finite float is
    refused with a message saying to store IDs as text.  :func:`id_number_problem` is the same
    rule for a column of numbers."""
    if isinstance(v, float):
        if v != v:  # NaN
            return None, ID_FRACTION
        if v in (float("inf"), float("-inf")):
            return None, ID_TOO_LONG
        if not v.is_integer():
            return None, ID_FRACTION
        n = int(v)
    elif isinstance(v, int):
        n = v
    else:
        try:
            d = Decimal(v)
        except InvalidOperation:
            return None, ID_FRACTION
        if not d.is_finite():
            return None, ID_TOO_LONG
        if d != d.to_integral_value():
            return None, ID_FRACTION
        if d.adjusted() >= MAX_ID_DIGITS:  # before int(): 1e999999 would be a huge integer
            return None, ID_TOO_LONG
        n = int(d)
    if abs(n) >= 10 ** MAX_ID_DIGITS:
        return None, ID_TOO_LONG
    return str(n), None


def id_number_problem(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """:func:`number_as_id` for a numeric column (Parquet): the message for each value that
    cannot be an exact ID, null where it can (or is null).  Integers: at most
    :data:`MAX_ID_DIGITS` digits; floats: whole and below ``10**MAX_ID_DIGITS``."""
    limit = 10 ** MAX_ID_DIGITS
    if dtype.is_integer():
        return pl.when((column >= limit) | (column <= -limit)).then(pl.lit(ID_TOO_LONG))
    whole = column == column.floor()  # false for NaN
    big = column.abs() >= float(limit)  # inf too
    return (pl.when(column.is_nan() | ~whole).then(pl.lit(ID_FRACTION))
            .when(big).then(pl.lit(ID_TOO_LONG)))


def untidy(text: pl.Expr, field: str) -> pl.Expr:
    """Per value, whether it needs tidying: for :data:`medaid.io.columns.ID_FIELDS` whether
    :func:`medaid.domain.claims.tidy_id` may change it (anything but printable ASCII without
    spaces around it, or an ID number with a lower-case check character), for other text
    whether it has white space around it; empty text needs it too (it becomes null)."""
    if field in ID_FIELDS:
        return ~text.str.contains(PLAIN_ID_PATTERN) | text.str.contains(LOWER_CHECK_PATTERN)
    return (text.str.strip_chars().str.len_bytes() != text.str.len_bytes()) | (text.str.len_bytes() == 0)


def needs_tidying(values: pl.Series) -> bool:
    """Whether some of these (distinct) text values needs tidying (:func:`untidy`, by the rule
    of the field the series is named after)."""
    return bool(values.to_frame().select(untidy(pl.col(values.name), values.name).any()).item())


def tidy_ids(col: pl.Series) -> pl.Series:
    """A text column of identifiers tidied by :func:`medaid.domain.claims.tidy_id`; only the
    values :func:`untidy` finds go through it (nulls stay null)."""
    idx = col.to_frame().select(untidy(pl.col(col.name), col.name).fill_null(False)).to_series().arg_true()
    if not len(idx):
        return col
    return col.scatter(idx, pl.Series([tidy_id(v) for v in col.gather(idx).to_list()], dtype=pl.String))


def has_quote(col: pl.Series) -> pl.Series:
    """Which values hold a ``"`` (looked at once per distinct value of a category column)."""
    if col.dtype == pl.Categorical:
        values = col.unique().cast(pl.String).drop_nulls()
        bad = values.filter(values.str.contains('"', literal=True))
        if not bad.len():
            return pl.Series([False] * col.len(), dtype=pl.Boolean)
        return col.cast(pl.String).is_in(bad.implode())
    return col.str.contains('"', literal=True).fill_null(False)

"""Amounts column by column: the polars form of :mod:`medaid.money`, for frames.

Rules implemented (docs/calculation.md#money):

* Reading: text of a plain shape (digits, at most two decimals; :func:`plain_yuan_re`) is
  converted by an exact decimal cast (:func:`plain_yuan_fen`); every other text goes through
  :func:`medaid.money.parse_yuan`, the one door for amounts, which also words the refusal
  (:func:`yuan_or_problem`).  :func:`yuan_to_fen` is ``parse_yuan`` itself for the ASCII text
  it takes (a hypothesis test proves the two agree); :func:`decimal_fen` reads a
  ``Decimal`` column (Parquet) to fen by integer scaling.
* Writing: fen ``Int64`` → ``Decimal(18, 2)`` yuan (:func:`yuan_decimal`) or its text with two
  decimals and no separators (:func:`yuan_text`): the text :func:`medaid.money.format_yuan`
  gives with ``thousands=False``, by a decimal product (nothing is rounded, no float is made).
"""

from __future__ import annotations

import polars as pl

from ..errors import MoneyError
from ..money import MAX_FEN, MAX_YUAN_DIGITS, parse_yuan

#: Characters Python's ``str.strip()`` removes from ASCII text (parse_yuan strips this way).
ASCII_SPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


def plain_yuan_re(int_digits: int = MAX_YUAN_DIGITS, *, signed: bool = False) -> str:
    """The plain shape of an amount, as most files write it: 1 to ``int_digits`` digits, at
    most two decimals (``12345``, ``12345.6``, ``12345.67``, ``12.``), nothing around them;
    with ``signed`` an optional leading ``-``.  Text of this shape with at most 16 integer
    digits is exact in ``Decimal(18, 2)`` (:func:`plain_yuan_fen`)."""
    return rf"^{'-?' if signed else ''}[0-9]{{1,{int_digits}}}(?:\.[0-9]{{0,2}})?$"


#: Claim amounts the fast path takes: at most the digits of ``money.MAX_FEN``'s yuan (7:
#: 9,999,999); longer text (leading zeros, or too large) goes through ``parse_yuan``.
PLAIN_YUAN_RE = plain_yuan_re()
assert MAX_YUAN_DIGITS == 7, "the grouped form below writes out 7 digits: 1,234 to 9,999,999"
#: The same with optional thousands separators in groups of three.
_GROUPED_YUAN_RE = r"^(?:[0-9]{1,7}|[0-9]{1,3},[0-9]{3}|[0-9],[0-9]{3},[0-9]{3})(?:\.[0-9]{0,2})?$"


def plain_yuan_fen(text: pl.Expr) -> pl.Expr:
    """Yuan text of a plain shape → ``Int64`` fen, column-wise: the one column-wise amount
    parser of claim files, the fast CSV scan and results files.  The caller has checked the
    shape (:func:`plain_yuan_re`, at most 16 integer digits): such text is exact in
    ``Decimal(18, 2)``, whose integer form is the amount in fen (``"12345.6"`` → 1234560);
    any other text gives null or a value the caller discards."""
    return text.cast(pl.Decimal(18, 2), strict=False).to_physical().cast(pl.Int64)


def yuan_to_fen(text: pl.Expr, separators: bool = True) -> tuple[pl.Expr, pl.Expr]:
    """Vectorised :func:`medaid.money.parse_yuan` for ASCII text: ``(fen, ok)`` expressions.

    ``ok`` is true where the fast path accepts the text: after stripping ASCII white space,
    digits with optional thousands separators in groups of three and at most two decimals, at
    most 7 integer digits (every such amount is at most ``money.MAX_FEN``).  Then ``fen``
    equals ``parse_yuan`` (the shape is checked by the regular expression first, so the
    decimal cast only ever sees well-formed text).  Where ``ok`` is false the row must go
    through ``parse_yuan`` (:func:`yuan_or_problem`: non-ASCII text such as full-width
    digits, empty, negative, malformed, more than two decimals, too large) for its value or
    message.  ``separators=False`` skips removing thousands separators (for columns known to
    have none)."""
    s = text.str.strip_chars(ASCII_SPACE)
    ok = s.str.contains(_GROUPED_YUAN_RE)
    if separators:
        s = s.str.replace_all(",", "", literal=True)
    return pl.when(ok).then(plain_yuan_fen(s)), ok.fill_null(False)


def parse_amount(text: str, field: str, *, limit: int = MAX_FEN, signed: bool = False) -> int:
    """:func:`medaid.money.parse_yuan` of ``text`` (at most ``limit`` fen); with ``signed``
    (an adjustment, which may take relief back) also after a leading ``-``.  Raises
    :class:`medaid.errors.MoneyError` naming ``field``."""
    t = text.strip()
    if signed and t.startswith("-"):
        return -parse_yuan(t[1:], field=field, limit=limit)
    return parse_yuan(text, field=field, limit=limit)


def yuan_or_problem(text: str | None, field: str) -> tuple[int | None, str | None]:
    """``parse_yuan`` for a value the fast path does not take: ``(fen, None)``, or ``(None,
    message)`` saying why the value is not an amount (``is empty`` for a missing one)."""
    if text is None:
        return None, "is empty"
    try:
        return parse_yuan(text, field=field), None
    except MoneyError as e:
        return None, e.problems[0].message


def decimal_fen(column: pl.Expr, scale: int) -> tuple[pl.Expr, pl.Expr | None]:
    """A ``Decimal`` column of yuan with ``scale`` decimals (Parquet) → ``(fen, too_fine)``:
    ``Int64`` fen by integer scaling of the decimal's physical value (an integer of
    ``10^-scale`` yuan), and, when ``scale`` is above 2, where a value has more than two
    decimals (``None`` otherwise): such a value is refused, never rounded."""
    units = column.to_physical()
    too_fine = None
    if scale > 2:
        step = 10 ** (scale - 2)
        too_fine = units % step != 0
        units = units // step
    elif scale < 2:
        units = units * 10 ** (2 - scale)
    return units.cast(pl.Int64), too_fine


def yuan_decimal(column: str) -> pl.Expr:
    """Fen ``Int64`` → exact ``Decimal(18, 2)`` yuan (``-1205`` → ``-12.05``): a decimal product
    ``fen × 0.01`` (scales add, nothing is rounded)."""
    cent = pl.lit("0.01").cast(pl.Decimal(3, 2))
    return (pl.col(column).cast(pl.Decimal(38, 0)) * cent).cast(pl.Decimal(18, 2)).alias(column)


def yuan_text(column: str) -> pl.Expr:
    """Fen ``Int64`` → yuan text with two decimals and no separators (``-1205`` → ``-12.05``),
    as :func:`medaid.money.format_yuan` writes it with ``thousands=False``."""
    return yuan_decimal(column).cast(pl.String)

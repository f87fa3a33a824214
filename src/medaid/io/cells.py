"""Text cells of the files people open (CSV, XLSX): formula injection, and the header cells.

Rules implemented (README.md#reliability; docs/batch.md, *Output files*):

* Formula injection: text cells starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
  return (:data:`FORMULA_LEADS`) get a leading ``'`` (:func:`neutralise` column-wise,
  :func:`safe_text` one value at a time); numbers (money, years) stay numbers.  The results
  reader takes the ``'`` off again (:func:`unneutralised`).
* Header cells are text cells too: an input column named ``=1+2`` is written ``'=1+2``; with
  ``lang="zh"`` they are the Chinese headers of :data:`medaid.io.columns.ZH_HEADERS`
  (:func:`sheet_headers`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import polars as pl

from .columns import header, result_field

#: Leading characters that make a spreadsheet read text as a formula.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
_LEADS = r"[=+\-@\t\r]"
#: Text starting like a formula (a regular expression that polars and Java read alike).
FORMULA_RE = "^" + _LEADS
#: Text an export neutralised: ``'`` before a formula's first character.
NEUTRALISED_RE = "^'" + _LEADS
assert all(re.match(FORMULA_RE, c) for c in FORMULA_LEADS) and not re.match(FORMULA_RE, "'")


def neutralise(column: str, text: pl.Expr | None = None) -> pl.Expr:
    """Prefix ``'`` to text starting like a formula (``=``, ``+``, ``-``, ``@``, tab, CR):
    the column ``column``, or ``text`` (its values as text) named ``column``."""
    e = pl.col(column) if text is None else text
    return pl.when(e.str.contains(FORMULA_RE)).then(pl.lit("'") + e).otherwise(e).alias(column)


def unneutralised(text: pl.Expr) -> pl.Expr:
    """Text as it was before the export neutralised it (:func:`neutralise`): the leading
    ``'`` removed."""
    return pl.when(text.str.contains(NEUTRALISED_RE)).then(text.str.slice(1)).otherwise(text)


def safe_text(v: str) -> str:
    """Text for a spreadsheet cell: ``'`` before text starting like a formula (see
    :data:`FORMULA_LEADS`), as :func:`neutralise` does column-wise."""
    return "'" + v if v.startswith(FORMULA_LEADS) else v


def sheet_headers(columns: list[str], lang: str = "en", titles: Mapping[str, str] | None = None) -> list[str]:
    """The header cells of a CSV or XLSX file for ``columns``: each field's header in ``lang``
    (:func:`medaid.io.columns.header`; a field keeps its name where its Chinese header is already
    another column's), with ``lang="zh"`` a claim attribute's its title in ``titles`` (attribute
    → title; the attribute keeps its name where the title is another column's name or header,
    or a header medaid reads as one of its fields, :func:`medaid.io.columns.result_field`),
    every header neutralised like a text cell (:func:`safe_text`)."""
    taken = set(columns)
    out = []
    for c in columns:
        h = header(c, lang)
        out.append(h if h == c or h not in taken else c)
    if lang == "zh" and titles:
        for i, c in enumerate(columns):
            title = titles.get(c)
            if title and title not in taken and title not in out and result_field(title) is None:
                out[i] = title
    safe = [safe_text(h) for h in out]
    seen = set(out)
    for i, (h, s) in enumerate(zip(out, safe)):
        if s != h:  # ``'=x`` may itself be a column's name: add a number until unique
            base, k = s, 1
            while s in seen:
                k += 1
                s = f"{base}_{k}"
            seen.add(s)
            safe[i] = s
    return safe

"""Totals rows of claim files (合计, 小计, 总计, Total, Subtotal ...): found, and checked.

Rules implemented (docs/batch.md, *Input files*, **Totals rows**): a totals row is not a claim,
neither settled nor rejected; its amounts are compared exactly, in fen, with the sum of the
claims above it, and a mismatch is a warning naming its line (:func:`check_totals`).
"""

from __future__ import annotations

import polars as pl

from ..errors import MoneyError, Problem
from ..money import format_yuan, parse_yuan
from .columns import CLAIM_MONEY_FIELDS, ROW

#: What a totals row says in one of its cells, compared after NFKC, with white space and a
#: trailing colon removed and case-folded (``合 计：`` and ``Total:`` too).  Subtotals
#: (``小计``, ``Subtotal``) sum the claims since the totals row before them; totals sum every
#: claim since the previous total (subtotals are not claims).
TOTALS_LABELS = frozenset({"合计", "总计", "总合计", "合計", "總計", "total", "totals", "grandtotal"})
SUBTOTAL_LABELS = frozenset({"小计", "小計", "subtotal", "sub-total"})
#: A first look, on the raw text, for ids that may be a label (the exact test follows).
_MAYBE_LABEL = r"(?i)^[\s\u3000]*[合总總小tｔsｓgｇ]"


def _label(e: pl.Expr) -> pl.Expr:
    return (e.cast(pl.String).str.normalize("NFKC").str.replace_all(r"[\s:]+", "")
            .str.to_lowercase())


def totals_rows(raw: pl.DataFrame) -> pl.Series:
    """Which rows of a raw text frame are totals rows (合计/小计/总计/Total/Subtotal ...): a
    cell holds only one of :data:`TOTALS_LABELS` or :data:`SUBTOTAL_LABELS`, and the claim id
    and the person id are each empty or such a label.  Such a row sums the claims above it; it
    is not a claim, neither settled nor rejected (see :func:`check_totals`)."""
    labels = list(TOTALS_LABELS | SUBTOTAL_LABELS)

    def idle(f: str, strict: bool) -> pl.Expr:
        c = pl.col(f)
        if not strict:
            return c.is_null() | c.cast(pl.String).str.contains(_MAYBE_LABEL)
        lab = _label(c)
        return c.is_null() | (lab == "") | lab.is_in(labels)

    if not raw.height or "claim_id" not in raw.columns or "person_id" not in raw.columns:
        return pl.Series(ROW, [False] * raw.height, dtype=pl.Boolean)
    maybe = raw.select(idle("claim_id", False) & idle("person_id", False)).to_series()
    if not maybe.any():
        return maybe
    cand = raw.filter(maybe)
    text = [c for c in cand.columns if c != ROW]
    sure = cand.select(idle("claim_id", True) & idle("person_id", True)
                       & pl.any_horizontal(_label(pl.col(c)).is_in(labels) for c in text))
    lines = cand.filter(sure.to_series())[ROW]
    return raw[ROW].is_in(lines.implode())


def check_totals(
    totals: pl.DataFrame, claims: pl.DataFrame, rejected: pl.Series, source: str,
) -> list[Problem]:
    """Warnings for totals rows (:func:`totals_rows`, raw text with ``row``) whose amounts are
    not the sum of the claims above them: for a subtotal the claims since the previous totals
    row of either kind, for a total those since the previous total.  ``claims`` are the typed
    rows read without a problem (``row``, amounts in fen); rows ``rejected`` above a totals row
    are not in its sum, and the warning says how many there are.  An amount cell of a totals
    row that is not an amount is a warning too.  Amounts are compared exactly, in fen."""
    if not totals.height:
        return []
    out: list[Problem] = []
    text = [c for c in totals.columns if c != ROW]
    kinds = totals.select(
        ROW, pl.any_horizontal(_label(pl.col(c)).is_in(list(SUBTOTAL_LABELS)) for c in text).alias("sub"))
    money = [f for f in CLAIM_MONEY_FIELDS if f in totals.columns and f in claims.columns]
    last_any = last_total = 0
    for (line, sub), values in zip(kinds.sort(ROW).iter_rows(),
                                   totals.sort(ROW).select(money).iter_rows()):
        start = last_any if sub else last_total
        part = claims.filter((pl.col(ROW) > start) & (pl.col(ROW) < line))
        n_rejected = int(((rejected > start) & (rejected < line)).sum())
        what = "subtotal" if sub else "totals"
        for f, v in zip(money, values):
            if v is None or not str(v).strip():
                continue
            try:
                stated = parse_yuan(str(v), field=f)
            except MoneyError:
                out.append(Problem(f"{what} row: {v!r} is not an amount", source=source, line=line,
                                   field=f))
                continue
            got = int(part[f].sum() or 0)
            if stated != got:
                note = (f"; {n_rejected} rejected row(s) above it are not in the sum"
                        if n_rejected else "")
                out.append(Problem(
                    f"{what} row says {format_yuan(stated)}, the {part.height} claim(s) above it "
                    f"sum to {format_yuan(got)}{note}", source=source, line=line, field=f))
        last_any = line
        if not sub:
            last_total = line
    return out

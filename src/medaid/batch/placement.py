"""Placement, columnar: each row's rule version, benefit year and plan, and the rows that cannot
be placed, as :func:`medaid.domain.engine.placement` places one claim (docs/columnar.md, step 1).

* The version in force on a day and the benefit year that day falls in are the domain's own
  :meth:`medaid.domain.rules.RuleBook.for_date` and :meth:`medaid.domain.rules.RuleSet.benefit_year`,
  called once per day of the frame's span and looked up by day.  Only a frame whose dates
  span more than :data:`DAY_TABLE_DAYS` days is placed by date expressions instead (the same
  first-match rule over the versions' dates; tested equal to the engine).
* The plan comes from :attr:`medaid.batch.tables.PlanTables.combo`, built by
  :meth:`medaid.domain.rules.RuleBook.plan_for` for every (version, group code, kind code).
* Rows no version covers or no plan matches are rejects worded by the engine's own
  :func:`medaid.domain.engine.no_version` and :func:`medaid.domain.engine.no_plan`; rows
  whose self-pay is no amount medaid reads are rejects too (:func:`over_limit`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

import polars as pl

from ..domain.engine import no_plan, no_version
from ..domain.rules import RuleBook, RuleSet
from ..io.rejects import empty_rejects
from ..money import MAX_FEN, too_large
from .tables import PlanTables, lookup

#: Version and benefit year come from a table of days when the dates span fewer days than this.
DAY_TABLE_DAYS = 200_000


class Span(NamedTuple):
    """The first and last date of a frame."""

    first: dt.date
    last: dt.date

    @property
    def days(self) -> int:
        return (self.last - self.first).days


def span_of(frame: pl.DataFrame) -> Span | None:
    """The frame's first and last date (``None`` for an empty frame)."""
    if not frame.height:
        return None
    first, last = frame["date"].min(), frame["date"].max()
    assert isinstance(first, dt.date) and isinstance(last, dt.date)
    return Span(first, last)


def group_kind(frame: pl.DataFrame) -> tuple[pl.Expr, pl.Expr]:
    """The ``group`` and ``kind`` columns (null where the frame has none)."""
    cols = frame.columns
    group = pl.col("group") if "group" in cols else pl.lit(None, dtype=pl.String)
    kind = pl.col("kind") if "kind" in cols else pl.lit(None, dtype=pl.String)
    return group, kind


def where(t: PlanTables, rules: RuleBook, span: Span | None) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """``(version index, benefit year, plan index)`` of each row, as expressions of ``date``,
    ``group`` and ``kind`` (the plan's expression reads the version as the column ``__v``)."""
    if span is not None and span.days < DAY_TABLE_DAYS:
        version, year = _day_tables(t, rules, span)
    else:
        version, year = _date_expressions(t)
    code = (pl.col("__v") * (t.ng * t.nk) + _codes(pl.col("group"), t.groups) * t.nk
            + _codes(pl.col("kind"), t.kinds))
    return version, year, lookup(t.combo, code, pl.Int32)


def _day_tables(t: PlanTables, rules: RuleBook, span: Span) -> tuple[pl.Expr, pl.Expr]:
    """``(version index, benefit year)`` of ``date`` by lookup: for each day from the first to
    the last, the version :meth:`RuleBook.for_date` gives and the benefit year of the day under
    it (:meth:`RuleSet.benefit_year`; null without a version)."""
    index = {id(rs): i for i, rs in enumerate(t.versions)}
    versions: list[int | None] = []
    years: list[int | None] = []
    for i in range(span.days + 1):
        day = span.first + dt.timedelta(days=i)
        rs = rules.for_date(day)
        versions.append(None if rs is None else index[id(rs)])
        years.append(None if rs is None else rs.benefit_year(day))
    day_index = (pl.col("date") - pl.lit(span.first)).dt.total_days()
    return (pl.lit(pl.Series(versions, dtype=pl.Int32)).gather(day_index),
            pl.lit(pl.Series(years, dtype=pl.Int32)).gather(day_index))


def _date_expressions(t: PlanTables) -> tuple[pl.Expr, pl.Expr]:
    """``(version index, benefit year)`` of ``date`` as expressions, for dates too far apart
    for a table of days: the first version whose dates hold the day
    (:meth:`medaid.domain.rules.RuleSet.covers`, in :meth:`RuleBook.for_date`'s order), and the
    day's year less one before the version's start month (:meth:`RuleSet.benefit_year`)."""
    date = pl.col("date")
    chain: Any = pl
    for i, rs in enumerate(t.versions):
        cond = date >= pl.lit(rs.valid_from)
        if rs.valid_to is not None:
            cond = cond & (date <= pl.lit(rs.valid_to))
        chain = chain.when(cond).then(pl.lit(i, pl.Int32))
    version: pl.Expr = chain.otherwise(pl.lit(None, pl.Int32))
    month_start = lookup([rs.benefit_year_start_month for rs in t.versions], pl.col("__v"), pl.Int8)
    year = (date.dt.year() - (date.dt.month() < month_start).cast(pl.Int32)).cast(pl.Int32)
    return version, year


def _codes(col: pl.Expr, names: list[str]) -> pl.Expr:
    """Known names → 0..n−1, null → n, any other value → n+1 (see :class:`PlanTables`)."""
    n = len(names)
    if not names:
        return pl.when(col.is_null()).then(pl.lit(0, pl.Int32)).otherwise(pl.lit(1, pl.Int32))
    if n <= 8:
        e: Any = pl.when(col.is_null()).then(pl.lit(n, pl.Int32))
        for i, name in enumerate(names):
            e = e.when(col == name).then(pl.lit(i, pl.Int32))
        out: pl.Expr = e.otherwise(pl.lit(n + 1, pl.Int32))
        return out
    return (
        pl.when(col.is_null()).then(pl.lit(n, pl.Int32))
        .otherwise(col.replace_strict(names, list(range(n)), default=n + 1, return_dtype=pl.Int32))
    )


def place(frame: pl.DataFrame, t: PlanTables, rules: RuleBook, span: Span | None,
          parts: list[pl.Expr]) -> pl.DataFrame:
    """``__v`` (version index), ``__by`` (benefit year) and ``__p`` (plan index, null: not
    placed) of every row, and the columns ``parts`` (expressions that may read those three), in
    one pass and a frame of their own (the input's columns are never copied)."""
    group, kind = group_kind(frame)
    version, year, plan = where(t, rules, span)
    return (
        frame.lazy().select(pl.col("date"), group.alias("group"), kind.alias("kind"), pl.col("person_id"))
        .with_columns(version.alias("__v"))
        .with_columns(year.alias("__by"), plan.alias("__p"))
        .select("__v", "__by", "__p", *parts)
        .collect()
    )


def split(frame: pl.DataFrame, keys: pl.DataFrame, rules: RuleBook, t: PlanTables,
          over: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """``(placed rows, their keys, rejects)``: the rows :func:`place` found no plan for become
    rejects (with ``over``, the rows :func:`over_limit` refused, in row order); the placed
    rows get ``group`` and ``kind`` as codes where a row names them by an alias."""
    placed = frame
    bad = keys["__p"].is_null()
    if bad.any():
        rejects = _rejects(frame.filter(bad).with_columns(keys["__v"].filter(bad)), rules, t)
        placed, keys = frame.filter(~bad), keys.filter(~bad)
    else:
        rejects = empty_rejects()
    if t.aliases:
        placed = as_codes(placed, keys["__v"], t.versions)
    if over is not None:
        rejects = pl.concat([over, rejects]).sort("row", maintain_order=True)
    return placed, keys, rejects


def _rejects(bad: pl.DataFrame, rules: RuleBook, t: PlanTables) -> pl.DataFrame:
    """The rows no version covers (field ``date``) or no plan matches (``group/kind``), with
    the engine's own messages (:func:`medaid.domain.engine.no_version` / ``no_plan``), worked
    out once per distinct date or (version, group, kind)."""
    group, kind = group_kind(bad)
    base = bad.select("row", "claim_id", "__v", group.alias("__g"), kind.alias("__k"), pl.col("date"))
    placed = pl.col("__v").is_not_null()
    combos = base.filter(placed).select("__v", "__g", "__k").unique()
    plan_msgs = combos.with_columns(pl.Series("__m", [
        no_plan(t.versions[v], g, k, "").message for v, g, k in combos.iter_rows()], dtype=pl.String))
    days = base.filter(~placed).select("date").unique().drop_nulls()
    date_msgs = days.with_columns(pl.Series("__d", [
        no_version(rules, d, "").message for (d,) in days.iter_rows()], dtype=pl.String))
    out = (base.join(plan_msgs, on=["__v", "__g", "__k"], how="left", nulls_equal=True, maintain_order="left")
           .join(date_msgs, on="date", how="left", maintain_order="left"))
    return out.select(
        pl.col("row"),
        pl.col("claim_id"),
        pl.when(placed).then(pl.lit("group/kind")).otherwise(pl.lit("date")).alias("field"),
        pl.when(placed).then(pl.col("__m")).otherwise(pl.col("__d")).alias("message"),
    )


def as_codes(placed: pl.DataFrame, v: pl.Series, versions: Sequence[RuleSet]) -> pl.DataFrame:
    """``group`` and ``kind`` written as their codes where a row names them by an alias
    (``特困人员`` → ``key``), by the version each row is settled under
    (:meth:`medaid.domain.rules.RuleSet.codes`, as the engine and the desk record them).  Looks at the
    distinct values first: a file that writes codes only is left as it is."""
    for col, code_of in (("group", "group_code"), ("kind", "kind_code")):
        if col not in placed.columns:
            continue
        values = placed[col].unique().cast(pl.String).drop_nulls().to_list()
        if all(getattr(rs, code_of)(x) == x for rs in versions for x in values):
            continue
        pairs = pl.DataFrame({"v": v, "x": placed[col].cast(pl.String)}).unique().drop_nulls()
        moved = [(vv, x, getattr(versions[vv], code_of)(x)) for vv, x in pairs.iter_rows()]
        moved = [m for m in moved if m[2] != m[1]]
        if not moved:
            continue
        text = pl.col(col).cast(pl.String)
        e: Any = pl
        for vv, x, code in moved:
            e = e.when((pl.lit(v) == vv) & (text == x)).then(pl.lit(code))
        new = placed.select(e.otherwise(text).alias(col)).to_series()
        placed = placed.with_columns(new.cast(placed.schema[col]) if placed.schema[col] == pl.Categorical
                                     else new)
    return placed


def over_limit(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Rows whose self-pay is not an amount medaid reads (negative, or above
    :data:`medaid.money.MAX_FEN`), as rejects naming ``self_pay``, and the frame without them.
    Files are checked when read; this guards frames given to ``settle_frame`` directly (the
    Python API, Spark), so that no sum can leave 64-bit integers."""
    if not frame.height:
        return frame, None
    lo, hi = frame.select(pl.col("self_pay").min().alias("a"), pl.col("self_pay").max().alias("b")).row(0)
    if (lo is None or lo >= 0) and (hi is None or hi <= MAX_FEN):
        return frame, None
    s = pl.col("self_pay")
    bad = (s < 0) | (s > MAX_FEN)
    over = frame.filter(bad).select(
        pl.col("row"), pl.col("claim_id"), pl.lit("self_pay").alias("field"),
        pl.when(s < 0).then(pl.lit("must not be negative")).otherwise(pl.lit(too_large())).alias("message"))
    return frame.filter(~bad), over

"""Year-end indicators (年度绩效指标) computed column-wise from a results frame.

The indicators (docs/report.md *The indicators*) judge a year of medical aid by person-times
assisted, persons, relief paid against the budget, patients' self-pay ratio after
relief (overall and for inpatient vs outpatient special-disease claims), the share of
major-disease cases, caps and brackets.  :func:`compute` derives these from the batch's results
frame (:mod:`medaid.io.results` reads files into it) with polars aggregations run together in
one :func:`polars.collect_all`; every figure keeps the integer sums it came from.

Exactness: sums are integers of fen; percentages and averages are kept as an exact
``(numerator, denominator)`` pair and only rounded (half-up, 2 decimals, by
:func:`medaid.money.round_ratio`) when shown.  No float touches an amount.

Every :class:`Figure` and :class:`Table` states what it was computed from (``source``), how
many rows it used and how many rows lacked a column it needs (``missing``); a column absent from
the file counts as missing on every row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Literal

import polars as pl

from ..errors import Problem
from ..io.results import LEDGER_SUFFIXES, load_results as load_results_file
from ..ledger.export import load_ledger_results  # re-exported
from ..money import format_percent, format_yuan, round_ratio
from . import BY_CHOICES  # re-exported
from .labels import label, value_label
from .targets import Targets, TargetsError
from .totals import persons_at_cap_pool, polars_measure as measure

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from ..domain.rules import RuleBook

Unit = Literal["count", "fen", "percent", "fen_avg", "text"]

#: A ratio kept exact: (numerator, denominator); ``None`` when the denominator is 0 or unknown.
Ratio = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Figure:
    """One indicator.

    Attributes:
        key: stable name (``relief_total``, ``self_pay_ratio.inpatient``...), label key for text.
        unit: ``count`` (an int), ``fen`` (an int of fen), ``percent`` (``ratio`` × 100) or
            ``fen_avg`` (``ratio`` in fen, shown rounded to the fen).
        value: the count or amount for ``count``/``fen``; ``None`` when it cannot be computed.
        ratio: the exact ``(numerator, denominator)`` for ``percent``/``fen_avg``.
        source: what it was computed from, in column names (``Σ patient_pays ÷ Σ total_cost``).
        rows: how many rows it was computed from.
        missing: how many rows in scope lacked a column it needs.
        qualifier: a grouping value the key is about (the claim kind of a per-kind ratio).
        plan: in the evaluation against a targets file, the planned value (an int for
            ``count``/``fen``, an exact ratio for ``percent``), else ``None``.
        of_plan: the actual value as an exact share of ``plan`` (shown as % of plan).
    """

    key: str
    unit: Unit
    value: int | None
    source: str
    rows: int
    missing: int
    ratio: Ratio | None = None
    qualifier: str | None = None
    plan: int | Ratio | None = None
    of_plan: Ratio | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """A breakdown: rows of cells under ``columns`` (``(key, unit)`` pairs).

    Cells hold ints (``count``/``fen``), exact ratios (``percent``/``fen_avg``, or ``None``) or
    text/keys (``text``; ``None`` = the grouping column was missing on those rows).
    ``missing`` counts rows in scope lacking the grouping column.
    """

    key: str
    columns: tuple[tuple[str, Unit], ...]
    rows: tuple[tuple[Any, ...], ...]
    source: str
    missing: int

    def column(self, key: str) -> list[Any]:
        i = [c for c, _ in self.columns].index(key)
        return [r[i] for r in self.rows]


@dataclass(frozen=True, slots=True)
class Report:
    """The year's indicators and breakdowns, with the scope they cover.

    A monthly review (``period``, ``YYYY-MM``) holds the month's figures in ``figures`` (its
    claims by settlement date) and the year to date's (January 1 to the month's last day) in
    ``ytd_figures``; the ``monthly`` table is then the year to date's.  With a targets file,
    ``evaluation`` holds the year's (or the year to date's) figures against the plan.
    """

    source: str
    rows_read: int
    rows_in_scope: int
    year: int | None
    years: tuple[int, ...]
    first_date: dt.date | None
    last_date: dt.date | None
    rule_sets: tuple[str, ...]
    absent_columns: tuple[str, ...]
    by: str
    figures: tuple[Figure, ...]
    tables: dict[str, Table] = field(default_factory=dict)
    period: str | None = None
    ytd_figures: tuple[Figure, ...] = ()
    ytd_rows: int = 0
    evaluation: tuple[Figure, ...] = ()
    targets: Targets | None = None
    #: the rules' cap pools by name (``medaid report --rules``): a ``cap:NAME`` cause is then
    #: shown with the pool's title and per person or household (:func:`cap_pools_of`)
    cap_pools: Mapping[str, Any] = field(default_factory=dict)

    def figure(self, key: str) -> Figure:
        for f in self.figures:
            if f.key == key:
                return f
        raise KeyError(key)

    @property
    def year_figures(self) -> tuple[Figure, ...]:
        """The figures the budget and the plan are judged on: the year to date's in a monthly
        review, else the report's own."""
        return self.ytd_figures or self.figures

    def year_figure(self, key: str) -> Figure:
        """The figure ``key`` of :attr:`year_figures`."""
        return next(f for f in self.year_figures if f.key == key)

    @property
    def over_budget(self) -> bool | None:
        """Whether the relief paid (in a monthly review: to date) exceeds the budget (budget
        left below 0); ``None`` without a budget.  Every rendering flags it (text, HTML, JSON
        ``budget_exceeded``)."""
        left = next((f for f in self.year_figures if f.key == "budget_left"), None)
        return None if left is None or left.value is None else left.value < 0


# ---------------------------------------------------------------------------------------------
# computation

#: The columns the report reads; a results file's other columns are not even parsed.
REPORT_FIELDS: Final = (
    "claim_id", "person_id", "date", "self_pay", "group", "kind", "hospital", "total_cost",
    "major_disease", "channel", "plan", "benefit_year", "relief", "patient_pays", "capped_by", "bracket",
    "rule_set_id", "rule_version", "second_relief",
)
#: the figures computed from ``capped_by`` alone: ``n/a`` when a file has no such column
_FROM_CAPPED_BY = frozenset({"capped_claims", "persons_capped_any_limit", "persons_at_annual_cap",
                             "persons_at_cap_pool"})

_STRING_COLS = ("claim_id", "person_id", "group", "kind", "hospital", "plan", "capped_by",
                "rule_set_id", "rule_version", "channel")
_MONEY_COLS = ("self_pay", "total_cost", "relief", "patient_pays")


def _work(frame: "pl.DataFrame", year: int | None,
          span: tuple[dt.date, dt.date] | None = None) -> tuple["pl.DataFrame", tuple[str, ...]]:
    """The rows in scope with the columns the report reads (absent ones all-null), plus
    ``_pk`` (the person key), ``month`` (``YYYYMM``) and ``assisted`` (``relief > 0``).  In
    scope: the rows of benefit ``year`` (the date's year where it is missing), and with
    ``span`` the rows settled from its first to its last day (a row without a date is not)."""
    want: dict[str, Any] = {c: pl.String for c in _STRING_COLS}
    want.update({c: pl.Int64 for c in _MONEY_COLS})
    want.update(date=pl.Date, bracket=pl.Int8, benefit_year=pl.Int32, major_disease=pl.Boolean)
    absent = tuple(c for c in want if c not in frame.columns)
    if SECOND_RELIEF in frame.columns:  # results of a rule set with a second stage only: never "absent"
        want[SECOND_RELIEF] = pl.Int64
    lf = frame.lazy().select(
        [pl.col(c) if c in frame.columns else pl.lit(None, dtype=t).alias(c) for c, t in want.items()])
    if year is not None:
        the_year = pl.coalesce(pl.col("benefit_year"), pl.col("date").dt.year().cast(pl.Int32))
        lf = lf.filter(the_year == year)
    if span is not None:
        lf = lf.filter(pl.col("date").is_between(*span))
    work = lf.with_columns(
        _person_key(pl.col("person_id")).alias("_pk"),
        (pl.col("date").dt.year().cast(pl.Int32) * 100 + pl.col("date").dt.month().cast(pl.Int32)).alias("month"),
        (pl.col("relief") > 0).alias("assisted"),
    ).collect()
    return work, absent


def _person_key(pid: "pl.Expr") -> "pl.Expr":
    """A 128-bit key per person id: two independent 64-bit hashes side by side.

    Distinct persons are counted on this key rather than on the text, which is several times
    faster; two different ids share a key with probability about n² / 2¹²⁹ (below 10⁻²⁴ for
    10 million persons)."""
    return pl.when(pid.is_not_null()).then(
        pid.hash(0x6D656461).cast(pl.Int128) * (1 << 64) + pid.hash(0x69642121).cast(pl.Int128)
    )


def _group_aggs(persons: bool = True, second: bool = False) -> list["pl.Expr"]:
    """The aggregations of a breakdown row (one pass per grouping).  Distinct persons per group
    is the one costly aggregation, so it is asked for only where a table shows it; the second
    stage's relief only for results that carry it (:data:`SECOND_RELIEF`)."""
    pp, cost = pl.col("patient_pays"), pl.col("total_cost")
    costed = cost.is_not_null() & pp.is_not_null()
    return [
        measure("claims"),
        pl.col("assisted").sum().alias("assisted"),
        *([measure("persons", pl.col("_pk"))] if persons else []),
        measure("self_pay"),
        measure("relief"),
        *([pl.col(SECOND_RELIEF).sum().alias(SECOND_RELIEF)] if second else []),
        measure("patient_pays"),
        costed.sum().alias("cost_rows"),
        pl.when(costed).then(cost).sum().alias("total_cost"),
        pl.when(costed).then(pp).sum().alias("patient_pays_costed"),
        measure("claims_capped").alias("capped"),
    ]


_GROUP_COLUMNS: tuple[tuple[str, Unit], ...] = (
    ("col_claims", "count"), ("col_assisted", "count"), ("col_persons", "count"),
    ("col_self_pay", "fen"), ("col_relief", "fen"), ("col_patient_pays", "fen"),
    ("col_avg_relief", "fen_avg"), ("col_relief_share", "percent"),
    ("col_cost_rows", "count"), ("col_self_pay_ratio", "percent"), ("col_capped", "count"),
)


def _ratio(num: int | None, den: int | None) -> Ratio | None:
    if num is None or not den:
        return None
    return (int(num), int(den))


def compute(
    frame: "pl.DataFrame",
    *,
    source: str = "<frame>",
    budget: int | None = None,
    year: int | None = None,
    by: str = "month",
    period: tuple[int, int] | None = None,
    targets: Targets | None = None,
) -> Report:
    """Compute the year's indicators from a results frame (docs/report.md *The indicators*).

    ``budget`` is the year's fund in fen (for the fund-used percentage); ``year`` keeps the rows
    of that benefit year (the claim date's year where ``benefit_year`` is missing); ``by``
    chooses the breakdown table (month, plan, hospital, group or kind).  Columns absent from
    ``frame`` are treated as missing on every row.  All aggregations run as one
    :func:`polars.collect_all` over the rows in scope.

    ``period`` ``(year, month)`` makes the monthly review (docs/report.md *Monthly review*): the
    claims settled in that month, with the year to date (settled from January 1 to the month's
    last day) beside them; ``year`` is then not used.  ``targets`` (:mod:`.targets`) adds the
    evaluation against the plan (:mod:`.evaluation`) on the year's, or the year to date's,
    figures; its budget is the budget when ``budget`` is not given, and its year the ``year``
    when neither ``year`` nor ``period`` is.  (:func:`build` refuses targets for another year.)
    """
    budget_source = "--budget"
    if targets is not None and budget is None and targets.budget is not None:
        budget, budget_source = targets.budget, "targets: budget"
    if targets is not None and year is None and period is None:
        year = targets.year
    if period is None:
        rep = _compute(frame, source=source, budget=(budget, budget_source), year=year, by=by)
    else:
        y, m = period
        first, last = month_span(y, m)
        rep = _compute(frame, source=source, budget=(budget, budget_source), year=None, by=by, span=(first, last))
        ytd = _compute(frame, source=source, budget=(budget, budget_source), year=None, by=by,
                       span=(dt.date(y, 1, 1), last))
        # what is left of the budget is a year-to-date figure: the month's column has none
        month = tuple(Figure(f.key, f.unit, None, f.source, 0, 0) if f.key == "budget_left" else f
                      for f in rep.figures)
        rep = replace(rep, figures=month, period=f"{y:04d}-{m:02d}", ytd_figures=ytd.figures,
                      ytd_rows=ytd.rows_in_scope, tables={**rep.tables, "monthly": ytd.tables["monthly"]})
    if targets is not None:
        from .evaluation import evaluate

        rep = replace(rep, targets=targets, evaluation=evaluate(rep.year_figures, targets))
    return rep


def month_span(year: int, month: int) -> tuple[dt.date, dt.date]:
    """The first and the last day of a month (a monthly review's settlement dates)."""
    first = dt.date(year, month, 1)
    return first, (first + dt.timedelta(days=31)).replace(day=1) - dt.timedelta(days=1)


def _compute(
    frame: "pl.DataFrame",
    *,
    source: str,
    budget: tuple[int | None, str],
    year: int | None,
    by: str,
    span: tuple[dt.date, dt.date] | None = None,
) -> Report:
    """The indicators of the rows in scope (:func:`_work`): one :func:`compute` without a period.
    ``budget`` is the budget in fen (or ``None``) and where it came from."""
    if by not in BY_CHOICES:
        raise ValueError(f"by must be one of {', '.join(BY_CHOICES)}")
    rows_read = frame.height
    work, absent = _work(frame, year, span)
    second = SECOND_RELIEF in work.columns  # second-stage relief shown apart (docs/report.md)
    lf = work.lazy()
    relief, pp, cost = pl.col("relief"), pl.col("patient_pays"), pl.col("total_cost")
    assisted = pl.col("assisted")
    costed = cost.is_not_null() & pp.is_not_null()
    capped = pl.col("capped_by").is_not_null()
    pk = pl.col("_pk")
    flag_known = pl.col("major_disease").is_not_null() & assisted
    both = pl.col("self_pay").is_not_null() & relief.is_not_null()
    compliant = pl.col("self_pay").is_not_null() & pp.is_not_null()
    channel = pl.col("channel")
    scalars = lf.select(
        measure("claims").alias("n"),
        assisted.sum().alias("assisted"),
        relief.null_count().alias("relief_null"),
        pl.col("_pk").null_count().alias("person_null"),
        (pl.col("_pk").is_null() | relief.is_null()).sum().alias("person_or_relief_null"),
        measure("persons", pk),
        pl.when(assisted).then(pl.col("_pk")).drop_nulls().n_unique().alias("assisted_persons"),
        measure("self_pay"),
        pl.col("self_pay").null_count().alias("self_pay_null"),
        measure("relief"),
        measure("patient_pays"),
        pp.null_count().alias("pp_null"),
        both.sum().alias("rate_rows"),
        pl.when(both).then(pl.col("self_pay")).sum().alias("rate_den"),
        pl.when(both).then(relief).sum().alias("rate_num"),
        costed.sum().alias("cost_rows"),
        pl.when(costed).then(cost).sum().alias("total_cost"),
        pl.when(costed).then(pp).sum().alias("pp_costed"),
        compliant.sum().alias("compliant_rows"),
        pl.when(compliant).then(pl.col("self_pay")).sum().alias("compliant_self_pay"),
        pl.when(compliant).then(pp).sum().alias("pp_compliant"),
        channel.is_not_null().sum().alias("channel_rows"),
        (channel == "one-stop").sum().alias("one_stop"),
        flag_known.sum().alias("flag_rows"),
        (flag_known & pl.col("major_disease")).sum().alias("major"),
        measure("claims_capped").alias("capped"),
        pl.when(capped).then(pl.col("_pk")).drop_nulls().n_unique().alias("persons_capped_any_limit"),
        measure("persons_at_annual_cap", pk),
        pl.col("date").min().alias("first_date"),
        pl.col("date").max().alias("last_date"),
        pl.col("date").null_count().alias("date_null"),
        pl.col("bracket").null_count().alias("bracket_null"),
        pl.col("kind").null_count().alias("kind_null"),
        *_second_aggs(second),
    )
    the_year = pl.coalesce(pl.col("benefit_year"), pl.col("date").dt.year().cast(pl.Int32))
    years_q = lf.select(the_year.drop_nulls().unique().sort().alias("y"))
    rules_q = lf.group_by("rule_set_id", "rule_version").agg(pl.len()).drop_nulls().sort("rule_set_id", "rule_version")
    grouped = {
        "monthly": lf.group_by("month").agg(_group_aggs(True, second)).sort("month", nulls_last=True),
        "kind": lf.group_by("kind").agg(_group_aggs(by == "kind", second)).sort("kind", nulls_last=True),
        "hospital": lf.group_by("hospital").agg(_group_aggs(by == "hospital", second))
        .sort(["relief", "hospital"], descending=[True, False], nulls_last=True),
    }
    if by not in ("month", "kind", "hospital"):
        grouped[by] = lf.group_by(by).agg(_group_aggs(True, second)).sort(by, nulls_last=True)
    brackets_q = (
        lf.group_by("bracket")
        .agg(*(measure(m) for m in ("claims", "self_pay", "relief", "patient_pays")))
        .sort("bracket", nulls_last=True)
    )
    capped_q = (
        lf.filter(capped).group_by("capped_by")
        .agg(measure("claims"), measure("persons", pk), measure("relief"))
        .sort("capped_by")
    )
    names = list(grouped)
    results = pl.collect_all([scalars, years_q, rules_q, brackets_q, capped_q, *grouped.values()])
    s = results[0].row(0, named=True)
    years = tuple(int(y) for y in results[1].to_series().to_list())
    rule_sets = tuple(f"{a} {b}" for a, b, _ in results[2].iter_rows())
    brackets_df, capped_df = results[3], results[4]
    group_dfs = dict(zip(names, results[5:]))
    del work, lf

    n = s["n"]
    figures = [_unavailable_if_no_rows(f) for f in _figures(s, budget, n, group_dfs["kind"])]
    if "capped_by" in absent:
        figures = [Figure(f.key, f.unit, None, f.source, 0, n) if f.key in _FROM_CAPPED_BY else f
                   for f in figures]
    tables: dict[str, Table] = {}
    tables["monthly"] = _group_table("month", group_dfs["monthly"], s["relief"] or 0, s["date_null"], "month")
    by_df = group_dfs["monthly" if by == "month" else by]
    tables["by"] = _group_table(by, by_df, s["relief"] or 0, _nulls(by_df, by), by)
    tables["hospital"] = _group_table("hospital", group_dfs["hospital"], s["relief"] or 0,
                                      _nulls(group_dfs["hospital"], "hospital"), "hospital")
    tables["ratio_by_kind"] = _ratio_table(group_dfs["kind"], s["kind_null"])
    tables["brackets"] = _bracket_table(brackets_df, s["bracket_null"])
    tables["capped"] = Table(
        "table_capped",
        (("capped_by", "text"), ("col_claims", "count"), ("col_persons", "count"), ("col_relief", "fen")),
        tuple((r["capped_by"], r["claims"], r["persons"], r["relief"] or 0) for r in capped_df.iter_rows(named=True)),
        "capped_by", n if "capped_by" in absent else 0,
    )
    return Report(
        source=source, rows_read=rows_read, rows_in_scope=n, year=year, years=years,
        first_date=s["first_date"], last_date=s["last_date"], rule_sets=rule_sets,
        absent_columns=absent, by=by,
        figures=tuple(figures), tables=tables,
    )


#: The column of a results file holding the second stage's part of each claim's relief (倾斜救助;
#: docs/calculation.md, *Second stage*): written by the batch for rule sets that use the rules of
#: *Rules real schemes need* only.  A report of results that have it shows that part of the
#: relief apart (docs/report.md); a report of results without it does not change.
SECOND_RELIEF: Final = "second_relief"


def _second_aggs(present: bool) -> list["pl.Expr"]:
    """The second stage's aggregations, when the results carry ``second_relief``: its sum, the
    rows that have it, and the claims it paid something on."""
    if not present:
        return []
    col = pl.col(SECOND_RELIEF)
    return [col.sum().alias("second_relief"), col.is_not_null().sum().alias("second_rows"),
            (col > 0).sum().alias("second_claims"), persons_at_cap_pool(pl.col("_pk"))]


def _second_figures(s: dict[str, Any], n: int) -> list[Figure]:
    """``second_relief_total`` (Σ second_relief, of which the relief paid by second stages) and
    ``second_relief_claims`` (claims with second-stage relief > 0); none for results without the
    column."""
    if "second_relief" not in s:
        return []
    rows = s["second_rows"]
    return [
        Figure("second_relief_total", "fen", s["second_relief"] or 0, "Σ second_relief", rows, n - rows),
        Figure("second_relief_claims", "count", s["second_claims"], "rows with second_relief > 0", rows, n - rows),
    ]


def _unavailable_if_no_rows(f: Figure) -> Figure:
    """A figure no row could feed (its columns missing everywhere) has no value, not 0."""
    if f.rows == 0 and f.missing > 0:
        return Figure(f.key, f.unit, None, f.source, 0, f.missing, None, f.qualifier)
    return f


def _nulls(df: "pl.DataFrame", key: str) -> int:
    return int(df.filter(pl.col(key).is_null())["claims"].sum() or 0)


def _figures(s: dict[str, Any], budget_from: tuple[int | None, str], n: int, kinds: "pl.DataFrame") -> list[Figure]:
    budget, budget_source = budget_from
    rel_missing = s["relief_null"]
    f: list[Figure] = [
        Figure("claims", "count", n, "rows", n, 0),
        Figure("assisted_claims", "count", s["assisted"], "rows with relief > 0", n - rel_missing, rel_missing),
        Figure("persons", "count", s["persons"], "distinct person_id", n - s["person_null"], s["person_null"]),
        Figure("assisted_persons", "count", s["assisted_persons"], "distinct person_id, relief > 0",
               n - s["person_or_relief_null"], s["person_or_relief_null"]),
        Figure("self_pay_total", "fen", s["self_pay"] or 0, "Σ self_pay", n - s["self_pay_null"], s["self_pay_null"]),
        Figure("relief_total", "fen", s["relief"] or 0, "Σ relief", n - rel_missing, rel_missing),
        *_second_figures(s, n),
        Figure("patient_pays_total", "fen", s["patient_pays"] or 0, "Σ patient_pays", n - s["pp_null"], s["pp_null"]),
    ]
    if budget is not None:
        rel = s["relief"] or 0
        f += [
            Figure("budget", "fen", budget, budget_source, 0, 0),
            Figure("budget_used", "percent", None, "Σ relief ÷ budget", n - rel_missing, rel_missing,
                   ratio=_ratio(rel, budget)),
            Figure("budget_left", "fen", budget - rel, "budget − Σ relief", n - rel_missing, rel_missing),
        ]
    f += [
        Figure("avg_relief_per_claim", "fen_avg", None, "Σ relief ÷ claims", n - rel_missing, rel_missing,
               ratio=_ratio(s["relief"], n - rel_missing)),
        Figure("avg_relief_per_assisted", "fen_avg", None, "Σ relief ÷ claims with relief > 0",
               s["assisted"], rel_missing, ratio=_ratio(s["relief"], s["assisted"])),
        Figure("relief_rate", "percent", None, "Σ relief ÷ Σ self_pay", s["rate_rows"], n - s["rate_rows"],
               ratio=_ratio(s["rate_num"], s["rate_den"])),
        Figure("self_pay_ratio_compliant", "percent", None, "Σ patient_pays ÷ Σ self_pay",
               s["compliant_rows"], n - s["compliant_rows"],
               ratio=_ratio(s["pp_compliant"], s["compliant_self_pay"])),
        Figure("total_cost_total", "fen", s["total_cost"] if s["cost_rows"] else None,
               "Σ total_cost", s["cost_rows"], n - s["cost_rows"]),
        Figure("self_pay_ratio", "percent", None, "Σ patient_pays ÷ Σ total_cost",
               s["cost_rows"], n - s["cost_rows"], ratio=_ratio(s["pp_costed"], s["total_cost"])),
    ]
    for r in kinds.iter_rows(named=True):
        if r["kind"] is None:
            continue
        f.append(Figure(f"self_pay_ratio.{r['kind']}", "percent", None,
                        f"Σ patient_pays ÷ Σ total_cost, kind = {r['kind']}",
                        r["cost_rows"], r["claims"] - r["cost_rows"],
                        ratio=_ratio(r["patient_pays_costed"], r["total_cost"]), qualifier=r["kind"]))
    assisted, flag_rows = s["assisted"], s["flag_rows"]
    f += [
        Figure("major_disease_claims", "count", s["major"] if flag_rows else None,
               "relief > 0 and major_disease", flag_rows, assisted - flag_rows),
        Figure("major_disease_share", "percent", None,
               "major_disease ÷ claims with relief > 0", flag_rows,
               assisted - flag_rows, ratio=_ratio(s["major"], flag_rows)),
        Figure("one_stop_claims", "count", s["one_stop"], "channel = one-stop", s["channel_rows"],
               n - s["channel_rows"]),
        Figure("one_stop_rate", "percent", None, "channel = one-stop ÷ rows with channel", s["channel_rows"],
               n - s["channel_rows"], ratio=_ratio(s["one_stop"], s["channel_rows"])),
        Figure("capped_claims", "count", s["capped"], "capped_by set", n, 0),
        Figure("persons_capped_any_limit", "count", s["persons_capped_any_limit"],
               "distinct person_id, capped_by set", n, 0),
        Figure("persons_at_annual_cap", "count", s["persons_at_annual_cap"],
               "distinct person_id, capped_by = annual_cap", n, 0),
    ]
    if "persons_at_cap_pool" in s:  # results of the rules real schemes need (docs/report.md)
        f.append(Figure("persons_at_cap_pool", "count", s["persons_at_cap_pool"],
                        "distinct person_id, capped_by = cap:NAME", n, 0))
    return f


def _group_table(key: str, df: "pl.DataFrame", relief_total: int, missing: int, column: str) -> Table:
    persons = "persons" in df.columns
    second = SECOND_RELIEF in df.columns  # a column of its own after the relief, only then
    rows = []
    for r in df.iter_rows(named=True):
        k = r[column]
        if column == "month" and k is not None:
            k = f"{k // 100:04d}-{k % 100:02d}"
        rel = r["relief"] or 0
        rows.append((
            k, r["claims"], r["assisted"], *((r["persons"],) if persons else ()), r["self_pay"] or 0, rel,
            *((r[SECOND_RELIEF] or 0,) if second else ()),
            r["patient_pays"] or 0, _ratio(rel, r["claims"]), _ratio(rel, relief_total),
            r["cost_rows"], _ratio(r["patient_pays_costed"], r["total_cost"]), r["capped"],
        ))
    src = "date (month)" if column == "month" else column
    cols: tuple[tuple[str, Unit], ...] = ()
    for c in _GROUP_COLUMNS:
        if persons or c[0] != "col_persons":
            cols += (c,)
        if second and c[0] == "col_relief":
            cols += (("col_second_relief", "fen"),)
    return Table(f"table_{key}", ((column, "text"), *cols), tuple(rows), src, missing)


def _ratio_table(df: "pl.DataFrame", missing: int) -> Table:
    rows = tuple(
        (r["kind"], r["claims"], r["cost_rows"], r["total_cost"] or 0, r["patient_pays_costed"] or 0,
         _ratio(r["patient_pays_costed"], r["total_cost"]))
        for r in df.iter_rows(named=True)
    )
    return Table(
        "table_ratio_by_kind",
        (("kind", "text"), ("col_claims", "count"), ("col_cost_rows", "count"), ("col_total_cost", "fen"),
         ("col_patient_pays_costed", "fen"), ("col_self_pay_ratio", "percent")),
        rows, "Σ patient_pays ÷ Σ total_cost by kind", missing,
    )


def _bracket_table(df: "pl.DataFrame", missing: int) -> Table:
    data = [(r["bracket"], r["claims"], r["self_pay"] or 0, r["relief"] or 0, r["patient_pays"] or 0)
            for r in df.iter_rows(named=True)]
    known = {d[0]: d for d in data if d[0] is not None}
    rows: list[tuple[Any, ...]] = []  # (bracket or None, claims, reaching, self-pay, relief, patient pays)
    # Every bracket from 0 to the highest reached is listed, with zero rows where none stopped.
    for b in range(0, max(known) + 1 if known else 0):
        d = known.get(b, (b, 0, 0, 0, 0))
        # A claim whose highest bracket is k has reached brackets 1..k; bracket 0 is no bracket.
        reached = None if b == 0 else sum(e[1] for e in known.values() if e[0] >= b)
        rows.append((b, d[1], reached, d[2], d[3], d[4]))
    rows += [(None, *d[1:2], None, *d[2:]) for d in data if d[0] is None]
    return Table(
        "table_brackets",
        (("bracket", "text"), ("col_claims", "count"), ("col_reached", "count"), ("col_self_pay", "fen"),
         ("col_relief", "fen"), ("col_patient_pays", "fen")),
        tuple(rows), "bracket", missing,
    )


# ---------------------------------------------------------------------------------------------
# presentation of values (shared by the terminal, JSON and HTML)


def percent_text(ratio: Ratio | None) -> str | None:
    """An exact ratio as a percentage with 2 decimals, half-up: ``(859, 10000)`` → ``"8.59"``."""
    if ratio is None:
        return None
    return format_percent(*ratio)


def avg_fen(ratio: Ratio | None) -> int | None:
    """An exact average in fen, rounded half-up to the fen."""
    if ratio is None:
        return None
    return round_ratio(ratio[0], ratio[1])


def cell_text(value: Any, unit: Unit, lang: str = "en", column: str = "") -> str:
    """A figure's or cell's value as shown to people (yuan with separators, percent, count)."""
    if unit == "text":
        return value_label(column, value, lang)
    if value is None:
        return label("na", lang)
    if unit == "count":
        return f"{value:,}"
    if unit == "fen":
        return format_yuan(value)
    if unit == "percent":
        return f"{percent_text(value)}%"
    return format_yuan(avg_fen(value) or 0)


def figure_text(f: Figure, lang: str = "en") -> str:
    """The shown value of a figure."""
    return cell_text(f.ratio if f.unit in ("percent", "fen_avg") else f.value, f.unit, lang)


def budget_warning(r: Report, lang: str = "en") -> str | None:
    """The over-budget warning (``WARNING: over budget: ... by 5,691,401.49 (166.96% of the
    budget used)``), or ``None`` when the relief is within the budget or there is none.  In a
    monthly review it is the year to date's relief that is judged."""
    if not r.over_budget:
        return None
    left, used = r.year_figure("budget_left"), r.year_figure("budget_used")
    return label("warn_over_budget", lang).format(
        over=format_yuan(-(left.value or 0)), used=figure_text(used, lang))


def figure_label(f: Figure, lang: str = "en") -> str:
    """The label of a figure, with its qualifier (the claim kind of a per-kind ratio)."""
    base = label(f.key.split(".")[0], lang)
    if f.qualifier is None:
        return base
    return f"{base} — {value_label('kind', f.qualifier, lang)}"


def cap_pools_of(book: "RuleBook", rule_sets: Iterable[str] = ()) -> dict[str, Any]:
    """The cap pools (docs/calculation.md, *Shared caps*) of a rule book by name, for
    :attr:`Report.cap_pools`: those of the rule sets a report's results name (``"id
    version"``, :attr:`Report.rule_sets`) over those of the book's other rule sets."""
    named = set(rule_sets)
    pools: dict[str, Any] = {}
    for rs in sorted(book.rule_sets, key=lambda rs: f"{rs.id} {rs.version}" in named):
        pools.update(rs.caps)
    return pools


def load_results(path: str | Path, fields: Iterable[str] | None = None) -> pl.DataFrame:
    """What the report reads: a ledger (a path ending in ``.sqlite3``, ``.sqlite`` or ``.db``:
    its settlements not reversed, :func:`medaid.ledger.export.load_ledger_results`) or a
    results file of any format (:func:`medaid.io.results.load_results`, limited to ``fields``
    when given), as the one results frame."""
    if str(path).lower().endswith(LEDGER_SUFFIXES):
        return load_ledger_results(path)
    return load_results_file(path, fields)


def build(
    path: str,
    *,
    ledger: bool = False,
    budget: int | None = None,
    year: int | None = None,
    by: str = "month",
    period: tuple[int, int] | None = None,
    targets: Targets | None = None,
) -> Report:
    """Read results (a file, or a ledger) and compute the report (:func:`compute`).  Its
    ``source`` is ``path``, a ledger's URL without its password
    (docs/desk.md#the-ledger-on-postgresql)."""
    from ..ledger.backend import is_url, redact

    _check_targets(targets, budget, year, period)
    if targets is not None and year is None and period is None:
        year = targets.year
    if ledger:
        frame = load_ledger_results(path, year if period is None else None)
    else:
        frame = load_results(path, REPORT_FIELDS)
    source = redact(path) if is_url(path) else str(path)
    return compute(frame, source=source, budget=budget, year=year, by=by, period=period, targets=targets)


def _check_targets(targets: Targets | None, budget: int | None, year: int | None,
                   period: tuple[int, int] | None) -> None:
    """Refuse a targets file for another year than ``--year``/``--period``'s, or a budget that
    differs from ``--budget`` (the budget is given in one place)."""
    if targets is None:
        return
    problems = []
    if period is not None:
        problems.append(targets.year_problem(period[0], "--period"))
    elif year is not None:
        problems.append(targets.year_problem(year, "--year"))
    if budget is not None and targets.budget is not None and budget != targets.budget:
        problems.append(Problem("differs from --budget; give the budget in one place",
                                source=targets.source, field="budget"))
    found = [p for p in problems if p is not None]
    if found:
        raise TargetsError(found)


__all__ = [
    "BY_CHOICES",
    "Figure",
    "Report",
    "Table",
    "avg_fen",
    "budget_warning",
    "build",
    "cell_text",
    "compute",
    "figure_label",
    "figure_text",
    "load_ledger_results",
    "load_results",
    "percent_text",
]

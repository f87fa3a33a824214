"""The report for the terminal (tables via tabulate) and for machines (JSON).

Both show the same figures as :mod:`medaid.report.indicators` computed them: amounts in yuan with two
decimals (exact, from fen), percentages and averages rounded half-up to 2 decimals from their
exact ratio (JSON also gives the ratio's integer numerator and denominator).  A monthly review
shows the month's value and the year to date's side by side; with a targets file the evaluation
against the plan follows the indicators (plan, actual, % of plan).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tabulate import tabulate

from ..errors import visible
from ..money import format_yuan
from .indicators import (
    Figure,
    Report,
    Table,
    avg_fen,
    budget_warning,
    cell_text,
    figure_label,
    figure_text,
    month_span,
    percent_text,
)
from .labels import capped_by_text, formula, label


def title(r: Report, lang: str = "en") -> str:
    """The report's title: the year-end report, or the monthly review of its period."""
    return label("title", lang) if r.period is None else label("title_period", lang).format(period=r.period)


def scope_lines(r: Report, lang: str = "en") -> list[tuple[str, str]]:
    """(label, value) pairs describing what the report covers."""
    last = r.last_date.isoformat() if r.last_date else ""
    span = "" if r.first_date is None else f"{r.first_date.isoformat()} .. {last}"
    out = [(label("source_file", lang), r.source), (label("rows_read", lang), f"{r.rows_read:,}")]
    if r.period is None:
        out.append((label("year_filter", lang), str(r.year) if r.year is not None else label("all_years", lang)))
    else:
        y, m = (int(x) for x in r.period.split("-"))
        first, end = month_span(y, m)
        out += [(label("period", lang), f"{r.period} ({first.isoformat()} .. {end.isoformat()})"),
                (label("ytd_dates", lang), f"{y:04d}-01-01 .. {end.isoformat()}"),
                (label("rows_in_ytd", lang), f"{r.ytd_rows:,}")]
    out += [
        (label("rows_in_scope", lang), f"{r.rows_in_scope:,}"),
        (label("benefit_years", lang), ", ".join(str(y) for y in r.years) or label("na", lang)),
        (label("dates", lang), span or label("na", lang)),
        (label("rule_sets", lang), "; ".join(r.rule_sets) or label("na", lang)),
    ]
    if r.targets is not None:
        out.append((label("targets_file", lang), f"{r.targets.source} ({r.targets.year})"))
    return out


def _count(n: int) -> str:
    return f"{n:,}"


def indicator_rows(r: Report, lang: str = "en") -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The indicator table as shown: its headers and ``(key, cells)`` per figure.  A monthly
    review has the month's value and the year to date's side by side (a figure the month has
    no row for, e.g. the self-pay ratio of a kind not settled that month, shows n/a there)."""
    if r.period is None:
        heads = [label(k, lang) for k in ("indicator", "value", "computed_from", "rows_used", "rows_missing")]
        return heads, [(f.key, [figure_label(f, lang), figure_text(f, lang), formula(f.source, lang),
                                _count(f.rows), _count(f.missing)]) for f in r.figures]
    heads = [label(k, lang) for k in ("indicator", "this_month", "year_to_date", "computed_from",
                                       "rows_used_pair", "rows_missing_pair")]
    month = {f.key: f for f in r.figures}
    rows = []
    for y in r.ytd_figures:
        m = month.get(y.key)
        shown = figure_text(m, lang) if m is not None else label("na", lang)
        used, lacking = (m.rows, m.missing) if m is not None else (0, 0)
        rows.append((y.key, [figure_label(y, lang), shown, figure_text(y, lang), formula(y.source, lang),
                             f"{_count(used)} / {_count(y.rows)}", f"{_count(lacking)} / {_count(y.missing)}"]))
    return heads, rows


def evaluation_rows(r: Report, lang: str = "en") -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The evaluation against the plan as shown: headers and ``(key, cells)`` per row; a row
    without a plan shows ``—`` for the plan and the % of plan."""
    heads = [label(k, lang) for k in ("indicator", "col_plan_value", "col_actual", "col_of_plan",
                                       "computed_from", "rows_used", "rows_missing")]
    rows = []
    for f in r.evaluation:
        plan = "—" if f.plan is None else cell_text(f.plan, f.unit, lang)
        of_plan = "—" if f.plan is None else cell_text(f.of_plan, "percent", lang)
        rows.append((f.key, [figure_label(f, lang), plan, figure_text(f, lang), of_plan,
                             formula(f.source, lang), _count(f.rows), _count(f.missing)]))
    return heads, rows


def evaluation_notes(r: Report, lang: str = "en") -> list[str]:
    """The notes under the evaluation: where the plan came from, the fund's dates, and in a
    monthly review that the plan is compared with the year to date."""
    t = r.targets
    if t is None:
        return []
    out = [label("note_evaluation", lang).format(file=t.source, year=t.year)]
    if t.fund_received is not None and t.fund_due is not None:
        out.append(label("note_fund", lang).format(received=t.fund_received.isoformat(), due=t.fund_due.isoformat()))
    if r.period is not None:
        out.append(label("note_evaluation_ytd", lang))
    return out


def table_headers(t: Table, lang: str = "en") -> list[str]:
    return [label(c, lang) for c, _ in t.columns]


def table_cells(t: Table, lang: str = "en", pools: "Mapping[str, Any] | None" = None) -> list[list[str]]:
    """A table's cells as shown to people; a ``capped_by`` cell in words, a cap pool with its
    title and per person or household when ``pools`` (:attr:`Report.cap_pools`) holds it."""
    return [
        [capped_by_text(v, lang, pools) if column == "capped_by" and isinstance(v, str)
         else cell_text(v, unit, lang, column) for v, (column, unit) in zip(row, t.columns)]
        for row in t.rows
    ]


def table_title(t: Table, lang: str = "en") -> str:
    return label(t.key, lang)


def table_note(t: Table, lang: str = "en") -> str:
    """What a table was computed from and how many rows lacked its grouping column."""
    return label("table_note", lang).format(source=formula(t.source, lang), missing=f"{t.missing:,}")


def render_text(r: Report, lang: str = "en") -> str:
    """The report as plain-text tables for a terminal."""
    out: list[str] = [title(r, lang), ""]
    out.append(tabulate(scope_lines(r, lang), tablefmt="plain", disable_numparse=True))
    warning = budget_warning(r, lang)
    if warning is not None:
        out += ["", warning]
    out += ["", f"== {label('indicators', lang)} =="]
    heads, rows = indicator_rows(r, lang)
    values = ("right",) if r.period is None else ("right", "right")
    out.append(tabulate([cells for _, cells in rows], heads, tablefmt="simple", disable_numparse=True,
                        colalign=("left", *values, "left", "right", "right")))
    out += ["", label("note_money", lang), label("note_ratio", lang)]
    if r.targets is not None:
        heads, rows = evaluation_rows(r, lang)
        out += ["", f"== {label('evaluation', lang)} =="]
        out.append(tabulate([cells for _, cells in rows], heads, tablefmt="simple", disable_numparse=True,
                            colalign=("left", "right", "right", "right", "left", "right", "right")))
        out += evaluation_notes(r, lang)
    if warning is not None:
        out += ["", warning]
    order = ["ratio_by_kind", "brackets", "capped", "monthly"]
    if r.period is not None and r.by != "hospital":
        order.append("hospital")  # the month's payments by hospital, to review
    if r.by != "month":
        order.append("by")
    for name in order:
        t = r.tables[name]
        out += ["", f"== {table_title(t, lang)} ==", table_note(t, lang)]
        if name == "brackets":
            out.append(label("note_brackets", lang))
        if t.rows:
            align = tuple("left" if u == "text" else "right" for _, u in t.columns)
            cells = [[visible(c) for c in row] for row in table_cells(t, lang, r.cap_pools)]  # aligned as shown
            out.append(tabulate(cells, table_headers(t, lang), tablefmt="simple", disable_numparse=True,
                                colalign=align))
        else:
            out.append(f"({label('no_data', lang)})")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# JSON


def _json_value(v: Any, unit: str) -> Any:
    if v is None:
        return None
    if unit == "count":
        return int(v)
    if unit == "fen":
        return format_yuan(v, thousands=False)
    if unit == "percent":
        return percent_text(v)
    if unit == "fen_avg":
        return format_yuan(avg_fen(v) or 0, thousands=False)
    return v


def _json_figure(f: Figure, lang: str, ytd: Figure | None = None) -> dict[str, Any]:
    value = f.ratio if f.unit in ("percent", "fen_avg") else f.value
    d: dict[str, Any] = {
        "key": f.key,
        "label": figure_label(f, lang),
        "value": _json_value(value, f.unit),
        "unit": {"count": "count", "fen": "yuan", "percent": "percent", "fen_avg": "yuan"}[f.unit],
        "computed_from": f.source,
        "rows": f.rows,
        "missing": f.missing,
    }
    if f.ratio is not None:
        d["exact"] = {"numerator": f.ratio[0], "denominator": f.ratio[1]}
    if f.qualifier is not None:
        d["kind"] = f.qualifier
    if f.plan is not None:
        d["plan"] = _json_value(f.plan, f.unit)
        d["of_plan"] = percent_text(f.of_plan)
        if f.of_plan is not None:
            d["of_plan_exact"] = {"numerator": f.of_plan[0], "denominator": f.of_plan[1]}
    if ytd is not None:
        y = _json_figure(ytd, lang)
        d["year_to_date"] = {k: y[k] for k in ("value", "computed_from", "rows", "missing", "exact") if k in y}
    return d


def _json_figures(r: Report, lang: str) -> list[dict[str, Any]]:
    """The figures; in a monthly review the month's, each with its ``year_to_date`` (a figure
    only the year to date has gets a month value of ``null``, 0 rows)."""
    if r.period is None:
        return [_json_figure(f, lang) for f in r.figures]
    month = {f.key: f for f in r.figures}
    return [_json_figure(month.get(y.key) or Figure(y.key, y.unit, None, y.source, 0, 0, qualifier=y.qualifier),
                         lang, y) for y in r.ytd_figures]


def _json_table(t: Table, lang: str) -> dict[str, Any]:
    keys = [c[4:] if c.startswith("col_") else c for c, _ in t.columns]
    return {
        "label": table_title(t, lang),
        "computed_from": t.source,
        "missing": t.missing,
        "columns": keys,
        "rows": [
            {k: (v if unit == "text" else _json_value(v, unit)) for k, v, (_, unit) in zip(keys, row, t.columns)}
            for row in t.rows
        ],
    }


def to_json_data(r: Report, lang: str = "en") -> dict[str, Any]:
    """The report as JSON-ready data: money as yuan text, percentages as text with 2 decimals;
    ``budget_exceeded`` is true when the relief paid exceeds ``--budget`` (``null`` without a
    budget) and ``warnings`` then holds the warning the text and HTML show."""
    return {
        "scope": {
            "source": r.source,
            "rows_read": r.rows_read,
            "rows_in_scope": r.rows_in_scope,
            "year": r.year,
            "benefit_years": list(r.years),
            "first_date": None if r.first_date is None else r.first_date.isoformat(),
            "last_date": None if r.last_date is None else r.last_date.isoformat(),
            "rule_sets": list(r.rule_sets),
            "absent_columns": list(r.absent_columns),
            "by": r.by,
            "period": r.period,
            **({"rows_in_year_to_date": r.ytd_rows} if r.period is not None else {}),
        },
        "budget_exceeded": r.over_budget,
        "warnings": [] if not r.over_budget else [
            {"key": "over_budget", "message": budget_warning(r, lang)}],
        "figures": _json_figures(r, lang),
        **_json_evaluation(r, lang),
        "tables": {name: _json_table(t, lang) for name, t in r.tables.items()},
    }


def _json_evaluation(r: Report, lang: str) -> dict[str, Any]:
    """``targets`` (the file's plan) and ``evaluation`` (plan, actual, % of plan per row), with
    a targets file; nothing without one."""
    t = r.targets
    if t is None:
        return {}
    return {
        "targets": {
            "source": t.source, "year": t.year, "person_times": t.person_times,
            "major_disease_person_times": t.major_disease_person_times,
            "major_disease_share": percent_text(t.major_disease_share),
            "budget": None if t.budget is None else _json_value(t.budget, "fen"),
            "fund_allocated": None if t.fund_allocated is None else _json_value(t.fund_allocated, "fen"),
            "fund_received": None if t.fund_received is None else t.fund_received.isoformat(),
            "fund_due": None if t.fund_due is None else t.fund_due.isoformat(),
        },
        "evaluation": [_json_figure(f, lang) for f in r.evaluation],
    }


def render_json(r: Report, lang: str = "en") -> str:
    """The report as a JSON document (see :func:`to_json_data`)."""
    return json.dumps(to_json_data(r, lang), ensure_ascii=False, indent=2) + "\n"


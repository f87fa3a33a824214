"""The report for the terminal (tables via tabulate) and for machines (JSON).

Both show the same figures as :mod:`medaid.report.indicators` computed them: amounts in yuan with two
decimals (exact, from fen), percentages and averages rounded half-up to 2 decimals from their
exact ratio (JSON also gives the ratio's integer numerator and denominator).
"""

from __future__ import annotations

import json
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
    percent_text,
)
from .labels import formula, label


def scope_lines(r: Report, lang: str = "en") -> list[tuple[str, str]]:
    """(label, value) pairs describing what the report covers."""
    last = r.last_date.isoformat() if r.last_date else ""
    span = "" if r.first_date is None else f"{r.first_date.isoformat()} .. {last}"
    out = [
        (label("source_file", lang), r.source),
        (label("rows_read", lang), f"{r.rows_read:,}"),
        (label("year_filter", lang), str(r.year) if r.year is not None else label("all_years", lang)),
        (label("rows_in_scope", lang), f"{r.rows_in_scope:,}"),
        (label("benefit_years", lang), ", ".join(str(y) for y in r.years) or label("na", lang)),
        (label("dates", lang), span or label("na", lang)),
        (label("rule_sets", lang), "; ".join(r.rule_sets) or label("na", lang)),
    ]
    return out


def table_headers(t: Table, lang: str = "en") -> list[str]:
    return [label(c, lang) for c, _ in t.columns]


def table_cells(t: Table, lang: str = "en") -> list[list[str]]:
    """A table's cells as shown to people."""
    return [
        [cell_text(v, unit, lang, column) for v, (column, unit) in zip(row, t.columns)]
        for row in t.rows
    ]


def table_title(t: Table, lang: str = "en") -> str:
    return label(t.key, lang)


def table_note(t: Table, lang: str = "en") -> str:
    """What a table was computed from and how many rows lacked its grouping column."""
    return label("table_note", lang).format(source=formula(t.source, lang), missing=f"{t.missing:,}")


def render_text(r: Report, lang: str = "en") -> str:
    """The report as plain-text tables for a terminal."""
    out: list[str] = [label("title", lang), ""]
    out.append(tabulate(scope_lines(r, lang), tablefmt="plain", disable_numparse=True))
    warning = budget_warning(r, lang)
    if warning is not None:
        out += ["", warning]
    out += ["", f"== {label('indicators', lang)} =="]
    rows = [[figure_label(f, lang), figure_text(f, lang), formula(f.source, lang), f"{f.rows:,}", f"{f.missing:,}"]
            for f in r.figures]
    heads = [label(k, lang) for k in ("indicator", "value", "computed_from", "rows_used", "rows_missing")]
    out.append(tabulate(rows, heads, tablefmt="simple", disable_numparse=True,
                        colalign=("left", "right", "left", "right", "right")))
    out += ["", label("note_money", lang), label("note_ratio", lang)]
    if warning is not None:
        out += ["", warning]
    order = ["ratio_by_kind", "brackets", "capped", "monthly"]
    if r.by != "month":
        order.append("by")
    for name in order:
        t = r.tables[name]
        out += ["", f"== {table_title(t, lang)} ==", table_note(t, lang)]
        if name == "brackets":
            out.append(label("note_brackets", lang))
        if t.rows:
            align = tuple("left" if u == "text" else "right" for _, u in t.columns)
            cells = [[visible(c) for c in row] for row in table_cells(t, lang)]  # aligned as shown
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


def _json_figure(f: Figure, lang: str) -> dict[str, Any]:
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
    return d


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
        },
        "budget_exceeded": r.over_budget,
        "warnings": [] if not r.over_budget else [
            {"key": "over_budget", "message": budget_warning(r, lang)}],
        "figures": [_json_figure(f, lang) for f in r.figures],
        "tables": {name: _json_table(t, lang) for name, t in r.tables.items()},
    }


def render_json(r: Report, lang: str = "en") -> str:
    """The report as a JSON document (see :func:`to_json_data`)."""
    return json.dumps(to_json_data(r, lang), ensure_ascii=False, indent=2) + "\n"


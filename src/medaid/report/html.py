"""The report as one self-contained HTML page with inline SVG charts (年度报告网页).

The page carries everything it shows: CSS in a ``<style>`` element, charts as inline ``<svg>``
drawn here by hand, no script, no external URL, no web font (system fonts only), so it opens
offline, prints, and can be mailed as one file.  Markup is XHTML-compatible (every element
closed, only XML's own entities) so that an XML parser can check it.

Chart geometry is integer arithmetic on the same integer sums as the figures (fen, or hundredths
of a percent), so no float enters, and a bar's length is exactly proportional to its amount at
pixel resolution.  Charts: relief by month, relief by hospital, self-pay / relief / patient pays
by highest bracket reached, and the self-pay ratio by claim kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from .. import __version__
from ..io.writers import atomic_path
from ..money import FEN_PER_YUAN, format_fixed, format_yuan, round_ratio
from .indicators import Report, Table, budget_warning, figure_label, figure_text
from .labels import formula, label, value_label
from .text import (
    evaluation_notes,
    evaluation_rows,
    indicator_rows,
    scope_lines,
    table_cells,
    table_headers,
    table_note,
    table_title,
    title as report_title,
)

# Palette (colour-blind safe, prints in grey distinguishably).
C_RELIEF = "#1f6fb2"
C_SELF_PAY = "#9cc3e4"
C_PATIENT = "#e08a3c"
C_RATIO = "#4f9a6a"
C_AXIS = "#555555"
C_GRID = "#e3e3e3"

#: Headline figures shown as cards at the top of the page (when present).
HEADLINE = ("assisted_claims", "assisted_persons", "relief_total", "second_relief_total", "budget_used",
            "self_pay_ratio", "major_disease_share", "avg_relief_per_assisted", "capped_claims")
#: Hospitals drawn individually; the rest are summed into "others".
TOP_HOSPITALS = 16

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", "Noto Sans SC",
  "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "WenQuanYi Micro Hei", sans-serif;
  color: #222; margin: 0; background: #f6f7f9; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; border-bottom: 2px solid #1f6fb2; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 22px 0 6px; }
.scope { font-size: 13px; color: #444; border-collapse: collapse; }
.scope th { text-align: left; font-weight: 600; padding: 1px 14px 1px 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 18px 0 6px; }
.card { flex: 1 1 200px; border: 1px solid #d5dbe3; border-radius: 6px; padding: 10px 14px;
  background: #fbfcfe; }
.card .v { font-size: 24px; font-weight: 700; color: #1f6fb2; }
.card .k { font-size: 13px; color: #333; margin-top: 2px; }
.card .s { font-size: 11px; color: #777; margin-top: 4px; }
table.data { border-collapse: collapse; font-size: 13px; margin: 4px 0 6px; }
table.data th, table.data td { border-bottom: 1px solid #e1e4e8; padding: 3px 10px; }
table.data th { background: #eef2f7; text-align: left; font-weight: 600; }
table.data td:first-child { white-space: nowrap; }
table.data td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.note { font-size: 12px; color: #666; margin: 2px 0; }
.warn { font-size: 15px; font-weight: 700; color: #8a1010; background: #fdecec; border: 2px solid #c62828;
  border-radius: 6px; padding: 10px 14px; margin: 16px 0; }
.card.over { border: 2px solid #c62828; background: #fdecec; }
.card.over .v { color: #c62828; }
tr.over td { color: #c62828; font-weight: 700; }
figure { margin: 18px 0; }
figcaption { font-size: 12px; color: #666; }
svg { max-width: 100%; height: auto; }
svg text { font-family: inherit; }
footer { font-size: 12px; color: #777; margin-top: 36px; }
@media print { body { background: #fff; } main { padding: 0; } h2 { break-after: avoid; }
  figure, table { break-inside: avoid; } }
"""


def _e(s: object) -> str:
    return escape(str(s), quote=True)


# ---------------------------------------------------------------------------------------------
# axes: nice steps in integer units


def _nice_axis(vmax: int, ticks: int = 5) -> tuple[int, int]:
    """(step, axis maximum) for values 0..vmax in integer units: step is 1, 2 or 5 × 10^k."""
    if vmax <= 0:
        return 1, ticks
    mag = 1
    while True:
        for m in (1, 2, 5):
            step = m * mag
            if -(-vmax // step) <= ticks:
                return step, step * -(-vmax // step)
        mag *= 10


def _money_scale(vmax_fen: int, lang: str) -> tuple[int, str]:
    """(fen per axis unit, axis unit label key) so that axis numbers stay short."""
    yuan = vmax_fen // FEN_PER_YUAN
    if lang == "zh":
        if yuan >= 10**9:
            return 10**10, "axis_yi_yuan"
        if yuan >= 10**5:
            return 10**6, "axis_wan_yuan"
        return 100, "axis_yuan"
    if yuan >= 10**7:
        return 10**8, "axis_million_yuan"
    if yuan >= 10**4:
        return 10**5, "axis_thousand_yuan"
    return 100, "axis_yuan"


def _scaled(value: int, per_unit: int, places: int = 2) -> str:
    """``value / per_unit`` as decimal text, half-up to ``places`` decimals, trailing zeros cut."""
    text = format_fixed(round_ratio(value * 10**places, per_unit), places)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _shown(v: int, money: bool) -> str:
    """A bar's value as its label shows it: fen as yuan, or hundredths of a percent."""
    return format_yuan(v) if money else format_fixed(v, 2, thousands=False) + "%"


def _text_width(s: str, size: int = 12) -> int:
    """Rough rendered width in px: CJK characters are about one em, others about 0.58 em."""
    wide = sum(1 for ch in s if ord(ch) > 0x2E80)
    return (wide * size) + ((len(s) - wide) * size * 58) // 100


def _short(s: str, limit: int = 22) -> str:
    return s if len(s) <= limit else s[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# charts


def _svg_open(cid: str, title: str, w: int, h: int) -> list[str]:
    return [
        f'<svg id="{cid}" class="chart" role="img" aria-labelledby="{cid}-t" '
        f'width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-size="12">',
        f'<title id="{cid}-t">{_e(title)}</title>',
        f'<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>',
        f'<text x="{w // 2}" y="22" text-anchor="middle" font-size="15" font-weight="700" fill="#222">'
        f'{_e(title)}</text>',
    ]


def _no_data(out: list[str], w: int, h: int, lang: str) -> None:
    out.append(f'<text x="{w // 2}" y="{h // 2}" text-anchor="middle" fill="#888">'
               f'{_e(label("no_data", lang))}</text>')


def column_chart(
    cid: str, title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[int], str]],
    *, lang: str, money: bool = True, x_title: str = "",
) -> str:
    """Vertical bars (grouped when several series): one group per category, amounts in fen."""
    n, k = len(categories), max(1, len(series))
    w, top, ph = 760, 56, 234
    vmax = max((v for _, vals, _ in series for v in vals), default=0)
    per_unit, unit_key = _money_scale(vmax, lang) if money else (100, "axis_percent")
    step_u, max_u = _nice_axis(-(-vmax // per_unit) if vmax else 0)
    step, axis_max = step_u * per_unit, max_u * per_unit
    left = 24 + max(_text_width(_scaled(axis_max, per_unit, 0)), 30) + 26
    pw = w - left - 20
    slot = pw // max(n, 1)
    rotate = n > 12 or max((_text_width(c) for c in categories), default=0) > slot - 4
    h = top + ph + (96 if rotate else 56)
    out = _svg_open(cid, title, w, h)
    if n == 0:
        _no_data(out, w, h, lang)
        return "\n".join(out + ["</svg>"])
    # grid and y axis
    for t in range(0, axis_max + 1, step):
        y = top + ph - t * ph // axis_max
        out.append(f'<line x1="{left}" y1="{y}" x2="{left + pw}" y2="{y}" stroke="{C_GRID}"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end" fill="{C_AXIS}">'
                   f'{_e(_scaled(t, per_unit))}</text>')
    out.append(f'<text x="14" y="{top + ph // 2}" transform="rotate(-90 14 {top + ph // 2})" '
               f'text-anchor="middle" fill="{C_AXIS}">{_e(label(unit_key, lang))}</text>')
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="{C_AXIS}"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="{C_AXIS}"/>')
    bar = max(2, (slot * 7 // 10) // k)
    for i, cat in enumerate(categories):
        x0 = left + i * slot + (slot - bar * k) // 2
        for j, (name, vals, colour) in enumerate(series):
            v = vals[i]
            bh = v * ph // axis_max
            x = x0 + j * bar
            tip = f"{cat} · {name}: {_shown(v, money)}"
            out.append(f'<rect class="bar" x="{x}" y="{top + ph - bh}" width="{bar - 1}" height="{bh}" '
                       f'fill="{colour}"><title>{_e(tip)}</title></rect>')
            if n * k <= 16:
                out.append(f'<text x="{x + bar // 2}" y="{top + ph - bh - 4}" text-anchor="middle" '
                           f'font-size="10" fill="#333">{_e(_scaled(v, per_unit))}</text>')
        cx, cy = left + i * slot + slot // 2, top + ph + 16
        if rotate:
            out.append(f'<text x="{cx}" y="{cy}" transform="rotate(-40 {cx} {cy})" text-anchor="end" '
                       f'fill="{C_AXIS}">{_e(_short(cat, 14))}</text>')
        else:
            out.append(f'<text x="{cx}" y="{cy}" text-anchor="middle" fill="{C_AXIS}">{_e(cat)}</text>')
    if x_title:
        out.append(f'<text x="{left + pw // 2}" y="{h - 8}" text-anchor="middle" fill="{C_AXIS}">{_e(x_title)}</text>')
    if len(series) > 1:
        lx = left + 8
        for name, _, colour in series:
            out.append(f'<rect x="{lx}" y="{top - 22}" width="12" height="12" fill="{colour}"/>')
            out.append(f'<text x="{lx + 16}" y="{top - 12}" fill="#333">{_e(name)}</text>')
            lx += 16 + _text_width(name) + 22
    return "\n".join(out + ["</svg>"])


def bar_chart(
    cid: str, title: str, categories: Sequence[str], values: Sequence[int], *, lang: str,
    money: bool = True, colour: str = C_RELIEF,
) -> str:
    """Horizontal bars, one per category (amounts in fen, or hundredths of a percent)."""
    n = len(categories)
    w, top, row = 760, 44, 26
    h = top + max(n, 1) * row + 56
    vmax = max(values, default=0)
    per_unit, unit_key = _money_scale(vmax, lang) if money else (100, "axis_percent")
    step_u, max_u = _nice_axis(-(-vmax // per_unit) if vmax else 0)
    step, axis_max = step_u * per_unit, max_u * per_unit
    names = [_short(c, 32) for c in categories]
    left = min(300, 16 + max((_text_width(s) for s in names), default=40))
    pw = w - left - 110
    out = _svg_open(cid, title, w, h)
    if n == 0:
        _no_data(out, w, h, lang)
        return "\n".join(out + ["</svg>"])
    base = top + n * row
    for t in range(0, axis_max + 1, step):
        x = left + t * pw // axis_max
        out.append(f'<line x1="{x}" y1="{top}" x2="{x}" y2="{base}" stroke="{C_GRID}"/>')
        out.append(f'<text x="{x}" y="{base + 16}" text-anchor="middle" fill="{C_AXIS}">'
                   f'{_e(_scaled(t, per_unit))}</text>')
    out.append(f'<text x="{left + pw // 2}" y="{base + 36}" text-anchor="middle" fill="{C_AXIS}">'
               f'{_e(label(unit_key, lang))}</text>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="{C_AXIS}"/>')
    for i, (full, name, v) in enumerate(zip(categories, names, values)):
        y = top + i * row + 4
        bw = v * pw // axis_max
        shown = _shown(v, money)
        out.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" fill="#222">{_e(name)}'
                   f'<title>{_e(full)}</title></text>')
        out.append(f'<rect class="bar" x="{left}" y="{y}" width="{bw}" height="{row - 8}" fill="{colour}">'
                   f'<title>{_e(full)}: {_e(shown)}</title></rect>')
        out.append(f'<text x="{left + bw + 5}" y="{y + 13}" font-size="11" fill="#333">{_e(shown)}</text>')
    return "\n".join(out + ["</svg>"])


# ---------------------------------------------------------------------------------------------
# the page


def _charts(r: Report, lang: str) -> list[tuple[str, str, str]]:
    """(id, svg, caption) of each chart."""
    charts: list[tuple[str, str, str]] = []
    monthly = r.tables["monthly"]
    months = [value_label("month", m, lang) for m in monthly.column("month")]
    charts.append(("chart-month", column_chart(
        "chart-month", label("chart_month", lang), months,
        [(label("legend_relief", lang), monthly.column("col_relief"), C_RELIEF)], lang=lang,
        x_title=label("month", lang)), table_note(monthly, lang)))

    hosp = r.tables["hospital"]
    names = [value_label("hospital", h, lang) for h in hosp.column("hospital")]
    reliefs = list(hosp.column("col_relief"))
    if len(names) > TOP_HOSPITALS:
        rest = sum(reliefs[TOP_HOSPITALS - 1:])
        others = f"{label('others', lang)} ({len(names) - TOP_HOSPITALS + 1})"
        names, reliefs = names[: TOP_HOSPITALS - 1] + [others], reliefs[: TOP_HOSPITALS - 1] + [rest]
    charts.append(("chart-hospital", bar_chart(
        "chart-hospital", label("chart_hospital", lang), names, reliefs, lang=lang),
        table_note(hosp, lang)))

    br = r.tables["brackets"]
    cats = [value_label("bracket", b, lang) for b in br.column("bracket")]
    charts.append(("chart-brackets", column_chart(
        "chart-brackets", label("chart_brackets", lang), cats,
        [(label("legend_self_pay", lang), br.column("col_self_pay"), C_SELF_PAY),
         (label("legend_relief", lang), br.column("col_relief"), C_RELIEF),
         (label("legend_patient_pays", lang), br.column("col_patient_pays"), C_PATIENT)],
        lang=lang, x_title=label("bracket", lang)), table_note(br, lang) + " · " + label("note_brackets", lang)))

    kinds = r.tables["ratio_by_kind"]
    kcats, kvals = [], []
    for k, ratio in zip(kinds.column("kind"), kinds.column("col_self_pay_ratio")):
        if ratio is not None:
            kcats.append(value_label("kind", k, lang))
            kvals.append(round_ratio(ratio[0] * 10000, ratio[1]))
    charts.append(("chart-ratio", bar_chart(
        "chart-ratio", label("chart_ratio", lang), kcats, kvals, lang=lang, money=False, colour=C_RATIO),
        label("note_ratio", lang)))
    return charts


def _table_html(t: Table, lang: str, tid: str, pools: "Mapping[str, Any] | None" = None) -> list[str]:
    out = [f'<h3 id="{tid}">{_e(table_title(t, lang))}</h3>', f'<p class="note">{_e(table_note(t, lang))}</p>']
    if not t.rows:
        return out + [f'<p class="note">({_e(label("no_data", lang))})</p>']
    out.append('<table class="data"><thead><tr>')
    out += [f"<th>{_e(h)}</th>" for h in table_headers(t, lang)]
    out.append("</tr></thead><tbody>")
    for row in table_cells(t, lang, pools):
        out.append("<tr>" + "".join(
            (f"<td>{_e(v)}</td>" if unit == "text" else f'<td class="n">{_e(v)}</td>')
            for v, (_, unit) in zip(row, t.columns)
        ) + "</tr>")
    out.append("</tbody></table>")
    return out


def _figure_table(tid: str, prefix: str, heads: list[str], rows: list[tuple[str, list[str]]],
                  over_budget: bool | None) -> list[str]:
    """A table of figures (the indicators, or the evaluation): the first and the formula column
    as text, the others as numbers; the budget rows red when the relief exceeds the budget."""
    out = [f'<table class="data" id="{tid}"><thead><tr>', *(f"<th>{_e(h)}</th>" for h in heads), "</tr></thead><tbody>"]
    text_cols = {0, len(heads) - 3}  # the label and "computed from"
    for key, cells in rows:
        row_class = ' class="over"' if over_budget and key.startswith("budget_") else ""
        out.append(f'<tr id="{prefix}-{_e(key)}"{row_class}>' + "".join(
            f"<td>{_e(c)}</td>" if i in text_cols else f'<td class="n">{_e(c)}</td>' for i, c in enumerate(cells)
        ) + "</tr>")
    out.append("</tbody></table>")
    return out


def render_html(r: Report, lang: str = "en") -> str:
    """The whole page as text: scope, headline cards, indicator table (in a monthly review the
    month's and the year to date's values side by side), the evaluation against the plan (with
    a targets file), charts, tables."""
    title = report_title(r, lang)
    out: list[str] = [
        "<!DOCTYPE html>",
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}">',
        "<head>",
        '<meta charset="utf-8"/>',
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>',
        f"<title>{_e(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{_e(title)}</h1>",
        '<table class="scope"><tbody>',
    ]
    out += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in scope_lines(r, lang)]
    out.append("</tbody></table>")
    warning = budget_warning(r, lang)
    if warning is not None:
        out.append(f'<p class="warn" id="warning-over-budget" role="alert">{_e(warning)}</p>')
    figs = {f.key: f for f in r.figures}
    ytd = {f.key: f for f in r.ytd_figures}
    out.append('<div class="cards">')
    for key in HEADLINE:
        f = figs.get(key)
        if f is None:
            continue
        over = " over" if r.over_budget and key.startswith("budget") else ""
        to_date = "" if key not in ytd else (
            f'<div class="s">{_e(label("year_to_date", lang))}{_e(label("desk.colon", lang))}'
            f'{_e(figure_text(ytd[key], lang))}</div>')
        out.append(f'<div class="card{over}" id="card-{_e(key)}"><div class="v">{_e(figure_text(f, lang))}</div>'
                   f'<div class="k">{_e(figure_label(f, lang))}</div>{to_date}'
                   f'<div class="s">{_e(formula(f.source, lang))}</div></div>')
    out.append("</div>")
    out.append(f'<h2 id="indicators">{_e(label("indicators", lang))}</h2>')
    out += _figure_table("indicator-table", "fig", *indicator_rows(r, lang), r.over_budget)
    out += [f'<p class="note">{_e(label("note_money", lang))}</p>',
            f'<p class="note">{_e(label("note_ratio", lang))}</p>']
    if r.targets is not None:
        out.append(f'<h2 id="evaluation">{_e(label("evaluation", lang))}</h2>')
        out += _figure_table("evaluation-table", "eval", *evaluation_rows(r, lang), r.over_budget)
        out += [f'<p class="note">{_e(note)}</p>' for note in evaluation_notes(r, lang)]
    out.append(f'<h2 id="charts">{_e(label("charts", lang))}</h2>')
    for cid, svg, caption in _charts(r, lang):
        out += [f'<figure id="fig-{cid}">', svg, f"<figcaption>{_e(caption)}</figcaption>", "</figure>"]
    out.append(f'<h2 id="tables">{_e(label("tables", lang))}</h2>')
    names = ["ratio_by_kind", "brackets", "capped", "monthly", "hospital"]
    if r.by not in ("month", "hospital"):
        names.append("by")
    for name in names:
        out += _table_html(r.tables[name], lang, f"table-{name}", r.cap_pools)
    out += [
        f"<footer>{_e(label('generated', lang))} {_e(__version__)} · {_e('; '.join(r.rule_sets))}</footer>",
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(out) + "\n"


def write_html(r: Report, path: str | Path, lang: str = "en") -> Path:
    """Write the page to ``path`` atomically (:func:`medaid.io.writers.atomic_path`: a temporary
    file in the same folder, then ``os.replace``), so a reader sees the old page or the new one,
    never half of one.  The page holds no ID number (counts and sums only), so it is an ordinary
    file (``0666`` less the umask), not a private one."""
    p = Path(path)
    text = render_html(r, lang)
    with atomic_path(p, private=False) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    return p

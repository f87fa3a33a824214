"""Batch totals and recalculations for people: text tables (en/zh labels from
:mod:`medaid.report.labels`) and the JSON form of their amounts, for ``medaid batch`` and
``medaid recalc`` (README.md, *Batch*; docs/batch.md, *Totals*, *Recalculation*).

The batch (:mod:`medaid.batch`) returns data: a run's results, whose totals are
:func:`medaid.report.totals.summarise`, and a :class:`medaid.batch.recalc.Recalc`; this module
shows them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..money import format_yuan
from .labels import label, labels_of
from .totals import AT_CAP_POOL

if TYPE_CHECKING:
    from ..batch.recalc import Recalc

#: Keys whose values are amounts in fen.
MONEY_KEYS = ("self_pay", "relief", "patient_pays", "old_relief", "new_relief", "adjustment",
              "second_relief", "old_second_relief", "new_second_relief")


def summary_json(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with amounts as yuan text (``"23300.00"``), for ``--json``."""

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (format_yuan(x, thousands=False) if k in MONEY_KEYS and isinstance(x, int)
                        else conv(x)) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return conv(summary)


_COLS = ("claims", "persons", "self_pay", "relief", "patient_pays", "relief_share",
         "claims_capped", "persons_at_annual_cap")


def _total_rows(total: dict[str, Any]) -> tuple[str, ...]:
    """The rows of the totals table: :data:`_COLS`, with ``second_relief`` (second-stage
    relief, part of relief) after ``relief`` and ``persons_at_cap_pool`` last when the total
    has them (:func:`medaid.report.totals.with_second_stage`)."""
    if "second_relief" not in total:
        return _COLS
    at = _COLS.index("relief") + 1
    return (*_COLS[:at], "second_relief", *_COLS[at:], *(k for k in (AT_CAP_POOL,) if k in total))


def summary_tables(summary: dict[str, Any], lang: str = "en") -> str:
    """The summary as text tables (tabulate's ``simple``), labels in English or Chinese."""
    lab = labels_of("totals")[lang]

    def cell(k: str, v: Any) -> Any:
        return format_yuan(v) if k in MONEY_KEYS else v

    parts = []
    t = summary["total"]
    parts.append(lab["total"] + "\n" + _simple(
        [[lab[k], cell(k, t[k])] for k in _total_rows(t)], None, ("left", "right")))
    for key, by in (("by_plan", "plan"), ("by_month", "month"), ("by_hospital", "hospital")):
        rows = [[r[by] if r[by] is not None else lab["none"]] + [cell(k, r[k]) for k in _COLS]
                for r in summary[key]]
        parts.append(lab[key] + "\n" + _simple(
            rows, [lab[by]] + [lab[k] for k in _COLS], ("left",) + ("right",) * len(_COLS)))
    return "\n\n".join(parts)


def _simple(rows: list[list[Any]], headers: list[str] | None, align: tuple[str, ...]) -> str:
    """Tabulate's ``simple`` table (numbers not parsed) of ``rows``: drawn by
    :func:`medaid.report.tables.text_table` when its cells are one line of printable text
    (a count is the text ``str`` gives it, as tabulate shows it), so that the English totals
    of ``medaid batch`` need neither tabulate nor wcwidth (importing them took 35–40 ms at the
    end of every run, and set off a full collection of the garbage collector: 17 ms); else by
    tabulate."""
    from .tables import text_table

    texts = [[str(c) if type(c) is int else c for c in r] for r in rows]
    drawn = text_table(texts, headers, align, ruled=True)
    if drawn is not None:
        return drawn
    from tabulate import tabulate

    return tabulate(rows, headers=() if headers is None else headers, tablefmt="simple",
                    disable_numparse=True, colalign=align)


def recalc_tables(rc: Recalc, lang: str = "en", persons: int = 20) -> str:
    """Totals of a recalculation as text tables; the person table lists the largest
    adjustments first, up to ``persons`` rows."""
    from tabulate import tabulate  # (imported here: see summary_tables)

    def lab(key: str) -> str:
        return label(f"recalc.{key}", lang)

    t = rc.totals
    head = tabulate(
        [[lab("old_relief"), format_yuan(t["old_relief"])],
         [lab("adjustments"), format_yuan(t["adjustment"])],
         [lab("new_relief"), format_yuan(t["new_relief"])],
         *[[lab(k), "-" if t[k] is None else format_yuan(t[k])]
           for k in ("old_second_relief", "new_second_relief") if k in t],
         [lab("claims"), t["claims"]],
         [lab("unchanged"), t["same"]],
         [lab("changed"), t["changed"]],
         [lab("new"), t["new"]],
         [lab("dropped"), t["dropped"]]],
        tablefmt="simple", disable_numparse=True, colalign=("left", "right"))
    hosp = tabulate(
        [[r["hospital"] or "-", r["claims"], format_yuan(r["adjustment"])] for r in rc.by_hospital],
        headers=[lab("hospital"), lab("claims_col"), lab("adjustment")], tablefmt="simple",
        disable_numparse=True, colalign=("left", "right", "right"))
    top = sorted(rc.by_person, key=lambda r: (-abs(r["adjustment"]), r["person_id"]))[:persons]
    pers = tabulate(
        [[r["person_id"], r["claims"], format_yuan(r["adjustment"])] for r in top],
        headers=[lab("person"), lab("claims_col"), lab("adjustment")], tablefmt="simple",
        disable_numparse=True, colalign=("left", "right", "right"))
    more = len(rc.by_person) - len(top)
    return "\n\n".join([
        lab("title") + "\n" + head,
        lab("by_hospital") + "\n" + hosp,
        lab("by_person") + "\n" + pers
        + (f"\n... {more} more" if more > 0 else ""),
    ])

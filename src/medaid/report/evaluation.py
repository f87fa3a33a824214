"""The year-end evaluation (绩效评价): the year's figures against the targets file's plan.

docs/report.md, *Evaluation against the plan*, defines each row.  Every row is a
:class:`~medaid.report.indicators.Figure` whose ``plan`` is the planned value and ``of_plan`` the
actual value as an exact share of it (``actual ÷ plan``, shown as % of plan); rows without a
plan carry only the actual value.  The actual values are the report's own figures (one
definition each, :mod:`.indicators`): person-times are assisted claims (``relief > 0``), the
major-disease share is that of the assisted claims carrying the flag, the one-stop rate is
one-stop ÷ rows with a channel.  The fund's rows come from the targets file alone (0 rows used,
0 lacking): arrival = fund allocated ÷ budget; on time = the fund allocated if it was received
on or before it was due, ÷ the fund allocated (100% or 0%); days late = received − due, at least
0.  Budget use = Σ relief ÷ budget, an overrun flagged by ``budget_left`` below 0.  All ratios
are integer pairs; nothing is rounded here.
"""

from __future__ import annotations

from .indicators import Figure, Ratio
from .targets import Targets


def _of(actual: int | None, plan: int | None) -> Ratio | None:
    """``actual ÷ plan`` as an integer pair; ``None`` when either is unknown or the plan is 0."""
    return None if actual is None or not plan else (actual, plan)


def _share_of(actual: Ratio | None, plan: Ratio | None) -> Ratio | None:
    """``(a/b) ÷ (c/d)`` as the integer pair ``(a·d, b·c)``."""
    if actual is None or plan is None or not plan[0]:
        return None
    return actual[0] * plan[1], actual[1] * plan[0]


def evaluate(figures: tuple[Figure, ...], targets: Targets) -> tuple[Figure, ...]:
    """The evaluation rows of ``figures`` (the year's, or the year to date's) against
    ``targets`` (docs/report.md, *Evaluation against the plan*)."""
    fig = {f.key: f for f in figures}
    out: list[Figure] = []

    def actual(key: str, src: str, figure: Figure, plan: int | Ratio | None, of_plan: Ratio | None) -> None:
        out.append(Figure(key, figure.unit, figure.value, src, figure.rows, figure.missing, figure.ratio,
                          plan=plan, of_plan=of_plan))

    assisted, major, share = fig["assisted_claims"], fig["major_disease_claims"], fig["major_disease_share"]
    actual("person_times", "rows with relief > 0; plan: person_times", assisted,
           targets.person_times, _of(assisted.value, targets.person_times))
    actual("major_disease_person_times", "relief > 0 and major_disease; plan: major_disease_person_times",
           major, targets.major_disease_person_times, _of(major.value, targets.major_disease_person_times))
    actual("major_disease_share", "major_disease ÷ claims with relief > 0; plan: major_disease_share",
           share, targets.major_disease_share, _share_of(share.ratio, targets.major_disease_share))
    t = targets
    if t.fund_allocated is not None and t.budget is not None:
        out.append(Figure("fund_arrival", "fen", t.fund_allocated, "targets: fund_allocated; plan: budget", 0, 0,
                          plan=t.budget, of_plan=_of(t.fund_allocated, t.budget)))
    if t.fund_allocated is not None and t.fund_received is not None and t.fund_due is not None:
        on_time = t.fund_received <= t.fund_due
        out.append(Figure("fund_on_time", "percent", None, "targets: fund_received ≤ fund_due", 0, 0,
                          ratio=_of(t.fund_allocated if on_time else 0, t.fund_allocated)))
        out.append(Figure("fund_days_late", "count", max(0, (t.fund_received - t.fund_due).days),
                          "targets: fund_received − fund_due", 0, 0))
    if "budget" in fig:
        relief, budget = fig["relief_total"], fig["budget"].value
        out.append(Figure("budget_use", "fen", relief.value, "Σ relief; plan: budget", relief.rows,
                          relief.missing, plan=budget, of_plan=_of(relief.value, budget)))
        out.append(fig["budget_left"])
    out += [fig["one_stop_rate"], fig["self_pay_ratio_compliant"]]
    all_costs = fig["self_pay_ratio"]
    out.append(Figure("self_pay_ratio_all", all_costs.unit, None, all_costs.source, all_costs.rows,
                      all_costs.missing, all_costs.ratio))
    return tuple(out)

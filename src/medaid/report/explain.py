"""The desk explanation (结算说明): what a clerk shows the patient for one settlement or quote,
in English or Chinese, as text and as a JSON-ready dict.

A library function, not a CLI one (docs/desk.md *Library*): the ``medaid`` desk commands print
it, and any other front end (an HTTP service) renders the same explanation from the same
:class:`medaid.domain.engine.Settlement` or :class:`medaid.ledger.schema.Entry` (same field
names) and the rule book:

* :func:`explain`: the segments table (the part below the threshold first; year mode names the
  cumulative span), the caps and what limited the relief, the patient's share, the year to date
  against the annual cap, the rule set id, version and hash, and the plan's legal basis.
* :func:`explain_dict`: the result's JSON dict with the plan's legal basis (``basis``).

Labels are :data:`LABELS` (``en``, ``zh``; the desk part of the one table of labels,
:data:`medaid.report.labels.LABELS`); money is shown by :mod:`medaid.money` with thousands
separators and two decimals (a segment's exact relief with more decimals when it has them).
Only the standard library and medaid's own light modules are imported at start-up; tabulate is
imported when a table is drawn.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import visible
from ..money import format_exact_yuan, format_rate, format_yuan
from .labels import cap_pool_text, labels_of
from .tables import text_table

if TYPE_CHECKING:  # pragma: no cover
    from ..domain.claims import Claim
    from ..domain.rules import Plan, RuleBook, RuleSet

# --------------------------------------------------------------------------------------------
# labels

#: The desk's labels by language: the ``desk.*`` part of the one table of English and Chinese
#: labels (:data:`medaid.report.labels.LABELS`).
LABELS: dict[str, dict[str, str]] = labels_of("desk")


def label(lang: str, key: str, **kw: Any) -> str:
    """The label ``key`` in ``lang``, its ``{placeholders}`` filled from ``kw``."""
    text = LABELS[lang][key]
    return text.format(**kw) if kw else text


# --------------------------------------------------------------------------------------------
# formatting


def yuan(fen: int | None, lang: str = "en") -> str:
    """Fen as yuan with thousands separators and two decimals (:func:`medaid.money.format_yuan`);
    ``None`` (no cap) as "none"."""
    return LABELS[lang]["none"] if fen is None else format_yuan(fen)


def find_plan(
    book: "RuleBook | None", rule_set_id: str, version: str, plan: str
) -> "tuple[RuleSet, Plan] | tuple[None, None]":
    """The rule set and plan a result names (``None, None`` if ``book`` does not hold them)."""
    if book is None:
        return None, None
    for rs in book.rule_sets:
        if rs.id == rule_set_id and rs.version == version:
            for p in rs.plans:
                if p.name == plan:
                    return rs, p
    return None, None


# --------------------------------------------------------------------------------------------
# the explanation


def table(rows: list[list[Any]], headers: list[str] | None = None, align: Iterable[str] | None = None) -> str:
    """A table; cells holding control characters are shown escaped before the columns are
    measured, so that the columns stay aligned.  Tabulate's ``simple`` table (``plain`` without
    headers); :func:`text_table` draws the usual ones itself."""
    rows = [[visible(c) if isinstance(c, str) else c for c in row] for row in rows]
    drawn = text_table(rows, headers, align)
    if drawn is not None:
        return drawn
    from tabulate import tabulate

    kwargs: dict[str, Any] = {"disable_numparse": True, "tablefmt": "simple"}
    if align is not None:
        kwargs["colalign"] = tuple(align)
    if headers is None:
        kwargs["tablefmt"] = "plain"
        return tabulate(rows, **kwargs)
    return tabulate(rows, headers=headers, **kwargs)


def explain(r: Any, claim: "Claim", book: "RuleBook | None", lang: str, title: str) -> str:
    """The table a clerk shows the patient: segments, caps, relief, patient pays, the year to
    date against the annual cap, the rule set and the plan's legal basis.  ``r`` is a
    :class:`medaid.Settlement` or a :class:`medaid.ledger.ledger.Entry` (same field names).
    Under the rules real schemes need: the household and the claim's attribute values (under
    the rule file's titles), a fixed grant in place of the bracket relief, the second stage's
    lines and legal basis, and each cap pool with its use (docs/desk.md)."""
    L = LABELS[lang]
    rs, plan = find_plan(book, r.rule_set_id, r.rule_version, r.plan)
    out = [f"{title}"]
    head = [
        [L["claim_id"], claim.claim_id],
        [L["person"], claim.person_id],
        [L["date"], claim.date.isoformat()],
        [L["group_kind"], f"{claim.group or '-'} / {claim.kind or '-'}"],
    ]
    if claim.hospital:
        head.append([L["hospital"], claim.hospital])
    household = getattr(r, "household_id", None) or claim.household_id
    if household:  # the household (户) and the attribute values, under the rule file's titles
        head.append([L["household"], household])
    if rs is not None:
        head += [[rs.attributes[n].title or n, v] for n, v in claim.attributes if n in rs.attributes]
    head.append([L["plan"], r.plan + (f" ({plan.title})" if plan is not None and plan.title else "")])
    head.append([L["pool_year"], f"{r.pool}, {r.benefit_year}"])
    out.append(table(head))
    out.append("")
    # segments, with the part below the threshold first
    rows = []
    if plan is not None and plan.mode == "marginal" and plan.gate is None and plan.brackets:  # a grant has none
        first = plan.brackets[0].lower
        if r.base_from < first and first > 0:
            part = min(r.base_to, first) - r.base_from
            rows.append([f"{yuan(r.base_from)} – {yuan(first)} ({L['threshold']})",
                         yuan(part), "0%", yuan(0)])
    for s in r.segments:
        rng = f"{yuan(s.lower)} – {yuan(s.upper)}" if s.upper is not None else f"{yuan(s.lower)} {L['open_end']}"
        rows.append([rng, yuan(s.base), format_rate(s.rate), format_exact_yuan(s.relief)])
    if rows:
        out.append(table(rows, [L["segment"], L["in_segment"], L["rate"], L["relief"]],
                          ("left", "right", "right", "right")))
        if plan is not None and plan.accumulate == "year":
            out.append(label(lang, "year_mode", a=yuan(r.base_from), b=yuan(r.base_to)))
        out.append("")
    out += second_stage_segments(r, book, rs, plan, lang)
    capped = f"  ({capped_text(r.capped_by, lang, rs)})" if r.capped_by else ""
    left = None if r.annual_cap is None else max(r.annual_cap - r.ytd_relief, 0)
    summary = [
        [L["self_pay"], yuan(r.self_pay)],
        [L["bracket_relief"], yuan(r.bracket_relief)],
        [L["claim_cap"], yuan(r.claim_cap, lang)],
        [L["annual_cap"], yuan(r.annual_cap, lang)],
        [L["relief"], yuan(r.relief) + capped],
        [L["patient_pays"], yuan(r.patient_pays)],
        [L["ytd_self_pay"], yuan(r.ytd_self_pay)],
        [L["ytd_relief"], yuan(r.ytd_relief) + ("" if r.annual_cap is None else f" / {yuan(r.annual_cap)}")],
        [L["cap_left"], yuan(left, lang)],
    ]
    if r.second_pool is not None:  # the stages before their total, the first's limit on its own line
        summary[4] = [L["relief"], yuan(r.relief)]
        summary[4:4] = second_stage_lines(r, capped, lang, rs)
    summary += cap_pool_lines(r, rs, lang)
    if plan is not None and plan.grant is not None:  # a fixed grant (定额救助) instead of brackets
        summary[1:2] = [[L["grant"], label(lang, "grant_" + plan.grant.per, amount=yuan(plan.grant.amount))],
                        [L["grant_due"], yuan(r.bracket_relief)]]
    out.append(table(summary, align=("left", "right")))
    out.append("")
    out.append(f"{L['rule_set']}{L['colon']}{r.rule_set_id} {r.rule_version} ({r.rule_hash[:12]})")
    if plan is not None and plan.basis:
        out.append(f"{L['basis']}{L['colon']}{plan.basis}")
    if r.second_pool is not None and plan is not None and plan.second is not None and plan.second.basis:
        out.append(f"{L['second_basis']}{L['colon']}{plan.second.basis}")
    return "\n".join(out)


def second_stage_segments(r: Any, book: "RuleBook | None", rs: "RuleSet | None", plan: Any, lang: str) -> list[str]:
    """The second stage's segments table (docs/calculation.md, *Second stage*): the claim's
    burden span, ``B_{k−1} .. B_k`` in year mode (``0 .. b_k`` in claim mode), split by the
    second stage's brackets at their rates; empty without a second stage."""
    if r.second_pool is None or book is None or rs is None or plan is None or plan.second is None:
        return []
    L = LABELS[lang]
    second = book.placed(rs, plan).second
    assert second is not None and r.burden is not None and r.ytd_burden is not None
    year = plan.second.accumulate == "year"
    start, end = (r.ytd_burden - r.burden, r.ytd_burden) if year else (0, r.burden)
    rows = []
    for s in second.segments(start, end):
        rng = f"{yuan(s.lower)} – {yuan(s.upper)}" if s.upper is not None else f"{yuan(s.lower)} {L['open_end']}"
        rows.append([rng, yuan(s.base), format_rate(s.rate), format_exact_yuan(s.relief)])
    if not rows:
        return []
    out = [table(rows, [L["second_segment"], L["burden_in_segment"], L["rate"], L["relief"]],
                 ("left", "right", "right", "right"))]
    if year:
        out.append(label(lang, "second_year_mode", a=yuan(start), b=yuan(end)))
    return out + [""]


def capped_text(capped_by: str, lang: str, rs: "RuleSet | None" = None) -> str:
    """What limited a relief, in words: ``annual_cap``, ``claim_cap``, ``self_pay`` or a cap
    pool's ``cap:NAME`` (docs/calculation.md, *Shared caps*), named as the report names it
    (:func:`medaid.report.labels.cap_pool_text`: its title and per person or household when
    the rule set ``rs`` holds it)."""
    if capped_by.startswith("cap:"):
        pool = cap_pool_text(capped_by[4:], lang, None if rs is None else rs.caps)
        return label(lang, "capped_cap", pool=pool)
    return LABELS[lang]["capped_" + capped_by]


def second_stage_lines(r: Any, capped: str, lang: str, rs: "RuleSet | None" = None) -> list[list[str]]:
    """The second stage's lines (docs/calculation.md, *Second stage*) of a settlement or ledger
    row ``r``: the first stage's relief with its limit (``capped``), the burden it leaves, the
    second stage's relief with its limit, and the second pool's year to date."""
    L = LABELS[lang]
    by = f"  ({capped_text(r.second_capped_by, lang, rs)})" if r.second_capped_by else ""
    return [[L["first_relief"], yuan(r.relief - (r.second_relief or 0)) + capped],
            [L["burden"], yuan(r.burden)],
            [label(lang, "second_relief", pool=r.second_pool), yuan(r.second_relief or 0) + by],
            [L["ytd_burden"], f"{yuan(r.ytd_burden)}, {yuan(r.ytd_second_relief)}"]]


def cap_pool_lines(r: Any, rs: "RuleSet | None", lang: str) -> list[list[str]]:
    """Each cap pool (docs/calculation.md, *Shared caps*) a settlement or ledger row ``r``
    counts in, against its annual amount: a row gives the relief it counted there, a quote the
    pool's use after the claim (the pool named as :func:`capped_text` names it)."""
    out: list[list[str]] = []
    taken = getattr(r, "caps", None)  # a ledger row: the relief it counted in each cap pool
    after = getattr(r, "caps_after", None) or ()  # a settlement: each pool's use after it
    limits = {n: (per, annual) for n, per, annual in getattr(r, "cap_limits", None) or ()}
    for name, fen in (taken or after):
        per, annual = limits.get(name) or ((rs.caps[name].per, rs.caps[name].annual)
                                           if rs is not None and name in rs.caps else ("person", None))
        text = label(lang, "cap_taken" if taken else "cap_used", taken=yuan(fen), used=yuan(fen),
                     annual=yuan(annual, lang))
        pool = cap_pool_text(name, lang, None if rs is None else rs.caps, per)
        out.append([pool[:1].upper() + pool[1:], text])
    return out


def _with_basis(d: dict[str, Any], book: "RuleBook | None", r: Any) -> dict[str, Any]:
    _, plan = find_plan(book, r.rule_set_id, r.rule_version, r.plan)
    d["basis"] = None if plan is None else plan.basis
    if getattr(r, "second_pool", None) is not None:  # and the second stage's (倾斜救助)
        d["second_basis"] = None if plan is None or plan.second is None else plan.second.basis
    return d


def claim_echo(claim: Any) -> dict[str, Any]:
    """What a quote's JSON (``medaid quote --json``, ``POST /v1/quote``) echoes of the claim's
    issue-15 fields, each only when the claim gives it (a plain claim prints as before): its
    ``household_id``, ``non_compliant`` (yuan text) and ``attributes`` (name → value)."""
    out: dict[str, Any] = {}
    if claim.household_id is not None:
        out["household_id"] = claim.household_id
    if claim.non_compliant is not None:
        out["non_compliant"] = format_yuan(claim.non_compliant, thousands=False)
    if claim.attributes:
        out["attributes"] = dict(claim.attributes)
    return out


def explain_dict(r: Any, book: "RuleBook | None") -> dict[str, Any]:
    """The JSON dict of a settlement or ledger entry ``r`` (its ``to_dict()``: amounts as yuan
    text) with ``basis``, the legal basis of the plan it settled under (``None`` if the rule
    book does not hold that plan)."""
    return _with_basis(r.to_dict(), book, r)

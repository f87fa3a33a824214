"""The desk explanation (结算说明): what a clerk shows the patient for one settlement or quote,
in English or Chinese, as text and as a JSON-ready dict.

A library function, not a CLI one (issue #12): the ``medaid`` desk commands print it, and any
other front end (an HTTP service) renders the same explanation from the same
:class:`medaid.domain.engine.Settlement` or :class:`medaid.ledger.schema.Entry` (same field
names) and the rule book:

* :func:`explain`: the segments table (the part below the threshold first; year mode names the
  cumulative span), the caps and what limited the relief, the patient's share, the year to date
  against the annual cap, the rule set id, version and hash, and the plan's legal basis.
* :func:`explain_dict`: the result's JSON dict with the plan's legal basis (``basis``).

Labels are :data:`LABELS` (``en``, ``zh``); money is shown with thousands separators and two
decimals (a segment's exact relief with more decimals when it has them).  Only the standard
library is imported at start-up; tabulate and the money helpers are imported when used.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .claims import Claim
    from .rules import Plan, RuleBook, RuleSet

# --------------------------------------------------------------------------------------------
# labels

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "settlement": "Settlement",
        "quote": "Quote: nothing recorded",
        "claim_id": "Claim",
        "person": "Person",
        "date": "Date",
        "group_kind": "Group / kind",
        "hospital": "Hospital",
        "plan": "Plan",
        "pool_year": "Pool, benefit year",
        "segment": "Segment",
        "in_segment": "Self-pay in segment",
        "rate": "Rate",
        "relief": "Relief",
        "threshold": "below the threshold",
        "open_end": "and above",
        "self_pay": "Compliant self-pay",
        "bracket_relief": "Relief by brackets (rounded)",
        "claim_cap": "Claim cap",
        "annual_cap": "Annual cap",
        "patient_pays": "Patient pays",
        "ytd_self_pay": "Year-to-date self-pay",
        "ytd_relief": "Year-to-date relief",
        "cap_left": "Annual cap remaining",
        "none": "none",
        "capped_annual_cap": "limited by the annual cap",
        "capped_claim_cap": "limited by the claim cap",
        "capped_self_pay": "limited to the self-pay",
        "rule_set": "Rule set",
        "basis": "Legal basis",
        "replayed": "Already settled: this is the original result; nothing new was recorded.",
        "year_mode": "Brackets apply to the year's cumulative self-pay, here from {a} to {b}.",
        "generated": "Claim id generated: {id}",
        "recorded": "Recorded as ledger row {seq} at {at}.",
        "reversed": "Reversed claim {claim} (ledger row {seq}); reason: {reason}",
        "taken_out": "Taken out of pool {pool}, benefit year {year}: self-pay {s}, relief {r}.",
        "later": "Settled after it in this pool and not recalculated: {ids}",
        "row": "Row",
        "entry": "Entry",
        "year": "Year",
        "pool": "Pool",
        "kind_settlement": "settlement",
        "kind_reversal": "reversal",
        "history": "Person {person}: settlements and reversals",
        "totals": "Year-to-date by pool",
        "no_history": "No settlements recorded for person {person}.",
        "file": "File",
        "scheme": "Rule set",
        "examples": "Examples passed",
        "claims_checked": "Claims in them",
        "checked": "{sets} rule set(s), {plans} plan(s), {examples} example(s): all valid, all examples pass.",
        "valid": "Valid",
        "covers": "Covers (group/kind)",
        "accumulate": "Accumulate",
        "mode": "Mode",
        "gate": "Gate",
        "from": "From",
        "to": "To",
        "default": "default",
        "rounding": "Rounding",
        "by_start": "Benefit year starts in month",
        "colon": ": ",
        "verify_ok": "{path}: {n} row(s), schema {schema}; integrity check ok; hash chain intact.",
        "head": "Head hash (keep a copy elsewhere to detect a cut tail): {h}",
    },
    "zh": {
        "settlement": "结算单",
        "quote": "试算（未记账）",
        "claim_id": "结算单号",
        "person": "人员编号",
        "date": "结算日期",
        "group_kind": "救助类别 / 就诊类型",
        "hospital": "医疗机构",
        "plan": "救助方案",
        "pool_year": "累计池，救助年度",
        "segment": "分段",
        "in_segment": "段内自付费用",
        "rate": "救助比例",
        "relief": "救助金额",
        "threshold": "起付线以下",
        "open_end": "以上",
        "self_pay": "合规自付费用",
        "bracket_relief": "分段救助合计（舍入后）",
        "claim_cap": "单次限额",
        "annual_cap": "年度救助限额",
        "patient_pays": "个人负担",
        "ytd_self_pay": "年度累计自付",
        "ytd_relief": "年度累计救助",
        "cap_left": "年度限额剩余",
        "none": "无",
        "capped_annual_cap": "受年度限额限制",
        "capped_claim_cap": "受单次限额限制",
        "capped_self_pay": "不超过合规自付费用",
        "rule_set": "规则版本",
        "basis": "政策依据",
        "replayed": "该结算单已结算：以下为原结算结果，未重复记账。",
        "year_mode": "分段按年度累计自付费用计算，本次为 {a} 至 {b}。",
        "generated": "已生成结算单号：{id}",
        "recorded": "已记入台账第 {seq} 行，时间 {at}。",
        "reversed": "已冲正结算单 {claim}（台账第 {seq} 行）；原因：{reason}",
        "taken_out": "已从 {year} 救助年度 {pool} 累计池扣回：自付 {s}，救助 {r}。",
        "later": "其后同池结算未重新计算：{ids}",
        "row": "行",
        "entry": "类型",
        "year": "年度",
        "pool": "累计池",
        "kind_settlement": "结算",
        "kind_reversal": "冲正",
        "history": "人员 {person}：结算与冲正记录（一人一档）",
        "totals": "各累计池年度累计",
        "no_history": "人员 {person} 无结算记录。",
        "file": "文件",
        "scheme": "规则版本",
        "examples": "通过的算例",
        "claims_checked": "其中结算单数",
        "checked": "{sets} 个规则版本，{plans} 个方案，{examples} 个算例：全部有效，算例全部通过。",
        "valid": "有效期",
        "covers": "适用（类别/类型）",
        "accumulate": "累计方式",
        "mode": "计算方式",
        "gate": "门槛",
        "from": "起",
        "to": "止",
        "default": "默认",
        "rounding": "舍入",
        "by_start": "救助年度起始月",
        "colon": "：",
        "verify_ok": "{path}：{n} 行，结构版本 {schema}；完整性检查通过；哈希链完整。",
        "head": "链头哈希（请另行保存，用于发现尾部被截断）：{h}",
    },
}


def label(lang: str, key: str, **kw: Any) -> str:
    """The label ``key`` in ``lang``, its ``{placeholders}`` filled from ``kw``."""
    text = LABELS[lang][key]
    return text.format(**kw) if kw else text


# --------------------------------------------------------------------------------------------
# formatting


def yuan(fen: int | None, lang: str = "en") -> str:
    """Fen as yuan with thousands separators and two decimals; ``None`` (no cap) as "none"."""
    from ..money import format_yuan

    return LABELS[lang]["none"] if fen is None else format_yuan(fen)


def exact_yuan(fen: Decimal) -> str:
    """An exact (possibly fractional) amount of fen as yuan: two decimals, more only if needed."""
    from ..money import format_yuan

    whole = int(fen)
    if fen == whole:
        return format_yuan(whole)
    text = format(fen.normalize(), "f")
    frac = text.split(".")[1]
    return format_yuan(whole) + frac  # e.g. 1,993.81 + "95" → 1,993.8195


def percent(rate: Decimal) -> str:
    """A rate as a percentage with the digits it has: ``0.875`` → ``87.5%``."""
    text = format((rate * 100).normalize(), "f")
    return text + "%"


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
    measured, so that the columns stay aligned."""
    from tabulate import tabulate

    from ..errors import visible

    rows = [[visible(c) if isinstance(c, str) else c for c in row] for row in rows]

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
    :class:`medaid.Settlement` or a :class:`medaid.ledger.ledger.Entry` (same field names)."""
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
    head.append([L["plan"], r.plan + (f" ({plan.title})" if plan is not None and plan.title else "")])
    head.append([L["pool_year"], f"{r.pool}, {r.benefit_year}"])
    out.append(table(head))
    out.append("")
    # segments, with the part below the threshold first
    rows = []
    if plan is not None and plan.mode == "marginal" and plan.gate is None:
        first = plan.brackets[0].lower
        if r.base_from < first and first > 0:
            part = min(r.base_to, first) - r.base_from
            rows.append([f"{yuan(r.base_from)} – {yuan(first)} ({L['threshold']})",
                         yuan(part), "0%", yuan(0)])
    for s in r.segments:
        rng = f"{yuan(s.lower)} – {yuan(s.upper)}" if s.upper is not None else f"{yuan(s.lower)} {L['open_end']}"
        rows.append([rng, yuan(s.base), percent(s.rate), exact_yuan(s.relief)])
    if rows:
        out.append(table(rows, [L["segment"], L["in_segment"], L["rate"], L["relief"]],
                          ("left", "right", "right", "right")))
        if plan is not None and plan.accumulate == "year":
            out.append(label(lang, "year_mode", a=yuan(r.base_from), b=yuan(r.base_to)))
        out.append("")
    capped = f"  ({L['capped_' + r.capped_by]})" if r.capped_by else ""
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
    out.append(table(summary, align=("left", "right")))
    out.append("")
    out.append(f"{L['rule_set']}{L['colon']}{r.rule_set_id} {r.rule_version} ({r.rule_hash[:12]})")
    if plan is not None and plan.basis:
        out.append(f"{L['basis']}{L['colon']}{plan.basis}")
    return "\n".join(out)


def _with_basis(d: dict[str, Any], book: "RuleBook | None", r: Any) -> dict[str, Any]:
    _, plan = find_plan(book, r.rule_set_id, r.rule_version, r.plan)
    d["basis"] = None if plan is None else plan.basis
    return d


def explain_dict(r: Any, book: "RuleBook | None") -> dict[str, Any]:
    """The JSON dict of a settlement or ledger entry ``r`` (its ``to_dict()``: amounts as yuan
    text) with ``basis``, the legal basis of the plan it settled under (``None`` if the rule
    book does not hold that plan)."""
    return _with_basis(r.to_dict(), book, r)

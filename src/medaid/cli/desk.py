"""CLI commands at the settlement desk: ``settle``, ``quote``, ``reverse``, ``history``,
``rules check``, ``rules show`` and ``ledger verify``.

Thin over :mod:`medaid.ledger.ledger` and :mod:`medaid.domain.rules`: each command parses its options,
calls one library function and prints a table (tabulate) or JSON.  Labels are in English or
Chinese (``--lang`` / ``$MEDAID_LANG``); money is printed with thousands separators and two
decimals.  Only click is imported at start-up; the library, sqlite3 and tabulate are imported
inside the commands.

Exit codes: 0 done; 1 refused (ledger conflicts, unknown or reversed claims, invalid rules,
a damaged ledger); 2 usage (bad amounts, dates, groups or kinds, missing options).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # pragma: no cover
    from ..domain.claims import Claim
    from ..domain.engine import Placement
    from ..domain.rules import Plan, RuleBook, RuleSet
    from ..ledger.ledger import Ledger

#: Where the ledger is when neither ``--ledger`` nor ``$MEDAID_LEDGER`` says.
DEFAULT_LEDGER = "medaid-ledger.sqlite3"

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


def _t(lang: str, key: str, **kw: Any) -> str:
    text = LABELS[lang][key]
    return text.format(**kw) if kw else text


# --------------------------------------------------------------------------------------------
# option parsing


def _yuan(fen: int | None, lang: str = "en") -> str:
    from ..money import format_yuan

    return LABELS[lang]["none"] if fen is None else format_yuan(fen)


def _exact_yuan(fen: Decimal) -> str:
    """An exact (possibly fractional) amount of fen as yuan: two decimals, more only if needed."""
    from ..money import format_yuan

    whole = int(fen)
    if fen == whole:
        return format_yuan(whole)
    text = format(fen.normalize(), "f")
    frac = text.split(".")[1]
    return format_yuan(whole) + frac  # e.g. 1,993.81 + "95" → 1,993.8195


def _percent(rate: Decimal) -> str:
    text = format((rate * 100).normalize(), "f")
    return text + "%"


def _amount(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """An amount option in yuan → fen, through :func:`medaid.money.parse_yuan`."""
    if value is None:
        return None
    from ..errors import MoneyError
    from ..money import parse_yuan

    try:
        return parse_yuan(value, field=param.name or "amount")
    except MoneyError as e:
        raise click.BadParameter(e.problems[0].message) from None


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; write YYYY-MM-DD") from None


def _text(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise click.BadParameter("must not be empty")
    return value


def _id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A claim or person id, tidied as everywhere (:func:`medaid.domain.claims.tidy_id`)."""
    if value is None:
        return None
    from ..domain.claims import tidy_id

    value = tidy_id(value)
    if not value:
        raise click.BadParameter("must not be empty")
    return value


def _claim_options(f: Any) -> Any:
    """The claim's options, shared by settle and quote."""
    opts = [
        click.option("--person", "person_id", required=True, callback=_id, metavar="ID",
                     help="Person id (人员编号)."),
        click.option("--self-pay", required=True, callback=_amount, metavar="YUAN",
                     help="Compliant self-pay (合规自付费用) in yuan, e.g. 30000 or 12,345.67."),
        click.option("--date", callback=_date, metavar="YYYY-MM-DD",
                     help="Settlement date; picks the rule version and benefit year. [default: today]"),
        click.option("--claim-id", callback=_id, metavar="ID",
                     help="Claim id (结算单号); generated from the date and a random suffix when absent."),
        click.option("--group", callback=_text, metavar="G",
                     help="Beneficiary group (救助对象类别), e.g. key; absent: the default plan."),
        click.option("--kind", callback=_text, metavar="K",
                     help="Claim kind (就诊类型), e.g. inpatient; absent: the default plan."),
        click.option("--hospital", callback=_text, metavar="H", help="Medical institution (医疗机构)."),
        click.option("--total-cost", callback=_amount, metavar="YUAN",
                     help="Total medical cost (医疗总费用) in yuan, for reports."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _ledger_path() -> str:
    from .app import ENV_LEDGER

    return os.environ.get(ENV_LEDGER) or DEFAULT_LEDGER


def _ledger_option(f: Any) -> Any:
    return click.option(
        "--ledger", "ledger_path", default=_ledger_path, metavar="PATH",
        show_default=f"$MEDAID_LEDGER or ./{DEFAULT_LEDGER}",
        help="The ledger file (SQLite); created by the first settlement.",
    )(f)


def _claim(kw: dict[str, Any], claim_id: str) -> "Claim":
    from ..domain.claims import Claim

    return Claim(
        claim_id=claim_id, person_id=kw["person_id"], date=kw["date"] or dt.date.today(),
        self_pay=kw["self_pay"], group=kw["group"], kind=kw["kind"], hospital=kw["hospital"],
        total_cost=kw["total_cost"],
    )


def _placed(claim: "Claim", book: "RuleBook") -> "Placement":
    """Place the claim; a date no version covers, or a group/kind no plan matches, is a usage
    error naming the option."""
    from ..domain.engine import place
    from ..errors import ClaimError, RuleError

    try:
        return place(claim, book)
    except RuleError as e:  # e.g. several schemes loaded and no --scheme
        raise click.UsageError(str(e)) from None
    except ClaimError as e:
        p = e.problems[0]
        hint = "--date" if p.field == "date" else "--group/--kind"
        raise click.BadParameter(p.message, param_hint=hint) from None


def _as_codes(claim: "Claim", at: Any) -> "Claim":
    """The claim with its group and kind as the codes of the version it settles under
    (``--group 特困人员`` is recorded as ``key``), as the batch writes them."""
    group, kind = at.rule_set.codes(claim.group, claim.kind)
    if (group, kind) == (claim.group, claim.kind):
        return claim
    return claim.model_copy(update={"group": group, "kind": kind})


def _open_ledger(path: str, *, create: bool) -> "Ledger":
    from ..errors import MedaidError
    from ..ledger.ledger import Ledger
    from .app import fail

    try:
        return Ledger(path, create=create)
    except MedaidError as e:
        raise fail(e) from None


def _find_plan(book: "RuleBook | None", rule_set_id: str, version: str, plan: str) -> "tuple[RuleSet, Plan] | tuple[None, None]":
    if book is None:
        return None, None
    for rs in book.rule_sets:
        if rs.id == rule_set_id and rs.version == version:
            for p in rs.plans:
                if p.name == plan:
                    return rs, p
    return None, None


# --------------------------------------------------------------------------------------------
# rendering


def echo(text: object = "", *, err: bool = False) -> None:
    """Print text that may hold data (ids, names, rule titles): see :func:`medaid.cli.app.echo`."""
    from .app import echo as shown

    shown(text, err=err)


def _table(rows: list[list[Any]], headers: list[str] | None = None, align: Iterable[str] | None = None) -> str:
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


def _explain(r: Any, claim: "Claim", book: "RuleBook | None", lang: str, title: str) -> str:
    """The table a clerk shows the patient: segments, caps, relief, patient pays, the year to
    date against the annual cap, the rule set and the plan's legal basis.  ``r`` is a
    :class:`medaid.Settlement` or a :class:`medaid.ledger.ledger.Entry` (same field names)."""
    L = LABELS[lang]
    rs, plan = _find_plan(book, r.rule_set_id, r.rule_version, r.plan)
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
    out.append(_table(head))
    out.append("")
    # segments, with the part below the threshold first
    rows = []
    if plan is not None and plan.mode == "marginal" and plan.gate is None:
        first = plan.brackets[0].lower
        if r.base_from < first and first > 0:
            part = min(r.base_to, first) - r.base_from
            rows.append([f"{_yuan(r.base_from)} – {_yuan(first)} ({L['threshold']})",
                         _yuan(part), "0%", _yuan(0)])
    for s in r.segments:
        rng = f"{_yuan(s.lower)} – {_yuan(s.upper)}" if s.upper is not None else f"{_yuan(s.lower)} {L['open_end']}"
        rows.append([rng, _yuan(s.base), _percent(s.rate), _exact_yuan(s.relief)])
    if rows:
        out.append(_table(rows, [L["segment"], L["in_segment"], L["rate"], L["relief"]],
                          ("left", "right", "right", "right")))
        if plan is not None and plan.accumulate == "year":
            out.append(_t(lang, "year_mode", a=_yuan(r.base_from), b=_yuan(r.base_to)))
        out.append("")
    capped = f"  ({L['capped_' + r.capped_by]})" if r.capped_by else ""
    left = None if r.annual_cap is None else max(r.annual_cap - r.ytd_relief, 0)
    summary = [
        [L["self_pay"], _yuan(r.self_pay)],
        [L["bracket_relief"], _yuan(r.bracket_relief)],
        [L["claim_cap"], _yuan(r.claim_cap, lang)],
        [L["annual_cap"], _yuan(r.annual_cap, lang)],
        [L["relief"], _yuan(r.relief) + capped],
        [L["patient_pays"], _yuan(r.patient_pays)],
        [L["ytd_self_pay"], _yuan(r.ytd_self_pay)],
        [L["ytd_relief"], _yuan(r.ytd_relief) + ("" if r.annual_cap is None else f" / {_yuan(r.annual_cap)}")],
        [L["cap_left"], _yuan(left, lang)],
    ]
    out.append(_table(summary, align=("left", "right")))
    out.append("")
    out.append(f"{L['rule_set']}{L['colon']}{r.rule_set_id} {r.rule_version} ({r.rule_hash[:12]})")
    if plan is not None and plan.basis:
        out.append(f"{L['basis']}{L['colon']}{plan.basis}")
    return "\n".join(out)


def _with_basis(d: dict[str, Any], book: "RuleBook | None", r: Any) -> dict[str, Any]:
    _, plan = _find_plan(book, r.rule_set_id, r.rule_version, r.plan)
    d["basis"] = None if plan is None else plan.basis
    return d


def _dump(obj: Any) -> None:
    from .app import json_text

    click.echo(json_text(obj))


# --------------------------------------------------------------------------------------------
# the commands


def register(group: click.Group) -> None:
    """Add the desk commands to ``group``: settle, quote, reverse, history, rules, ledger."""
    from ..errors import MedaidError
    from .app import fail, json_option, lang_option, load_book, rules_option

    @group.command()
    @_claim_options
    @_ledger_option
    @rules_option
    @lang_option
    @json_option
    def settle(ledger_path: str, rules_path: str, scheme: str | None, lang: str, as_json: bool,
               **kw: Any) -> None:
        """Settle a claim against the ledger and record it.

        Reads the person's year-to-date position in the claim's pool, computes the relief and
        records the settlement, all in one transaction.  Settling the same claim id again with
        the same content prints the original result and records nothing; with different
        content it is refused until the original is reversed.

        \b
        Example:
          medaid settle --person P1 --self-pay 30000 --date 2024-05-03 --group key --kind inpatient
        """
        from ..ledger.ledger import new_claim_id

        book = load_book(rules_path, scheme)
        day = kw["date"] or dt.date.today()
        generated = kw["claim_id"] is None
        claim = _claim({**kw, "date": day}, kw["claim_id"] or new_claim_id(day))
        at = _placed(claim, book)
        claim = _as_codes(claim, at)
        with _open_ledger(ledger_path, create=True) as ledger:
            try:
                receipt = ledger.settle(claim, book, at)
            except MedaidError as e:
                raise fail(e) from None
        e = receipt.entry
        if as_json:
            d = _with_basis(e.to_dict(), book, e)
            d["replayed"] = receipt.replayed
            d["claim_id_generated"] = generated
            _dump(d)
            return
        if generated:
            echo(_t(lang, "generated", id=claim.claim_id))
        if receipt.replayed:
            echo(_t(lang, "replayed"))
        echo(_explain(e, e.claim(), book, lang, f"{_t(lang, 'settlement')} {e.claim_id}"))
        echo(_t(lang, "recorded", seq=e.seq, at=e.recorded_at))

    @group.command()
    @_claim_options
    @click.option("--ytd-self-pay", callback=_amount, metavar="YUAN",
                  help="Year-to-date self-pay already in the pool (instead of reading a ledger).")
    @click.option("--ytd-relief", callback=_amount, metavar="YUAN",
                  help="Year-to-date relief already granted in the pool (with --ytd-self-pay).")
    @_ledger_option
    @rules_option
    @lang_option
    @json_option
    def quote(ledger_path: str, rules_path: str, scheme: str | None, lang: str, as_json: bool,
              ytd_self_pay: int | None, ytd_relief: int | None, **kw: Any) -> None:
        """Work out a claim's relief without recording anything.

        The year-to-date position comes from --ytd-self-pay and --ytd-relief when given (no
        ledger needed), else from the ledger, which must exist.

        \b
        Examples:
          medaid quote --person P1 --self-pay 30000 --date 2024-05-03 --ytd-self-pay 0 --ytd-relief 0
          medaid quote --person P1 --self-pay 12,345.67 --ledger desk.sqlite3 --lang zh
        """
        from ..domain.engine import PoolState, quote as quote_claim

        if (ytd_self_pay is None) != (ytd_relief is None):
            raise click.UsageError("give both --ytd-self-pay and --ytd-relief, or neither (to read the ledger)")
        book = load_book(rules_path, scheme)
        claim = _claim(kw, kw["claim_id"] or "-")  # a quote needs no claim id
        at = _placed(claim, book)
        claim = _as_codes(claim, at)
        if ytd_self_pay is not None:
            assert ytd_relief is not None
            r = quote_claim(claim, book, PoolState(ytd_self_pay, ytd_relief), at=at)
        else:
            if not os.path.exists(ledger_path):
                raise click.UsageError(
                    f"no ledger at {ledger_path}: give --ytd-self-pay and --ytd-relief (0 and 0 "
                    "for the person's first claim of the year), or --ledger PATH")
            with _open_ledger(ledger_path, create=False) as ledger:
                try:
                    state = ledger.ytd(claim.person_id, at.benefit_year, at.plan.pool)
                except MedaidError as err:
                    raise fail(err) from None
            r = quote_claim(claim, book, state, at=at)
        if as_json:
            d = _with_basis(r.to_dict(), book, r)
            d.update(claim_id=kw["claim_id"], group=claim.group, kind=claim.kind,
                     hospital=claim.hospital, recorded=False)
            _dump(d)
            return
        echo(_explain(r, claim, book, lang, _t(lang, "quote")))

    @group.command()
    @click.argument("claim_id", callback=_id)
    @click.option("--reason", required=True, callback=_text, metavar="TEXT",
                  help="Why the settlement is reversed (冲正原因); recorded in the ledger.")
    @_ledger_option
    @lang_option
    @json_option
    def reverse(claim_id: str, reason: str, ledger_path: str, lang: str, as_json: bool) -> None:
        """Reverse (冲正) a recorded settlement.

        Records a new ledger row linked to the settlement; the person's year-to-date position
        in that pool drops by the claim's self-pay and relief.  Settlements recorded after it
        keep their figures; reverse and settle them again to recalculate them.  Reversing twice,
        or a claim not in the ledger, is refused.

        \b
        Example:
          medaid reverse 20240503-7F3A9C --reason "wrong self-pay entered"
        """
        with _open_ledger(ledger_path, create=False) as ledger:
            try:
                e = ledger.reverse(claim_id, reason)
            except MedaidError as err:
                raise fail(err) from None
            later = [
                x.claim_id for x in ledger.history(e.person_id, e.benefit_year)
                if x.pool == e.pool and x.entry == "settlement" and (e.reverses or 0) < x.seq
                and x.claim_id != e.claim_id
            ]
        if as_json:
            d = e.to_dict()
            d["settled_after_not_recalculated"] = later
            _dump(d)
            return
        echo(_t(lang, "reversed", claim=e.claim_id, seq=e.seq, reason=e.reason))
        echo(_t(lang, "taken_out", pool=e.pool, year=e.benefit_year, s=_yuan(e.self_pay), r=_yuan(e.relief)))
        L = LABELS[lang]
        echo(_table([
            [L["ytd_self_pay"], _yuan(e.ytd_self_pay)],
            [L["ytd_relief"], _yuan(e.ytd_relief) + ("" if e.annual_cap is None else f" / {_yuan(e.annual_cap)}")],
            [L["cap_left"], _yuan(e.annual_cap_left, lang)],
        ], align=("left", "right")))
        if later:
            echo(_t(lang, "later", ids=", ".join(later)))

    @group.command()
    @click.argument("person", callback=_id)
    @click.option("--year", type=click.IntRange(1900, 9999), metavar="YYYY",
                  help="Only this benefit year.")
    @_ledger_option
    @lang_option
    @json_option
    def history(person: str, year: int | None, ledger_path: str, lang: str, as_json: bool) -> None:
        """Show a person's file (一人一档): settlements and reversals with running totals per pool.

        \b
        Example:
          medaid history P1 --year 2024 --lang zh
        """
        with _open_ledger(ledger_path, create=False) as ledger:
            try:
                rows = ledger.history(person, year)
            except MedaidError as err:
                raise fail(err) from None
        totals: dict[tuple[int, str], Any] = {}
        for e in rows:
            totals[(e.benefit_year, e.pool)] = e
        if as_json:
            _dump({
                "person_id": person, "year": year, "entries": [e.to_dict() for e in rows],
                "pools": [
                    {"benefit_year": y, "pool": p, "ytd_self_pay": e.to_dict()["ytd_self_pay"],
                     "ytd_relief": e.to_dict()["ytd_relief"], "annual_cap": e.to_dict()["annual_cap"],
                     "annual_cap_left": e.to_dict()["annual_cap_left"]}
                    for (y, p), e in sorted(totals.items())
                ],
            })
            return
        L = LABELS[lang]
        if not rows:
            echo(_t(lang, "no_history", person=person))
            return
        echo(_t(lang, "history", person=person))
        table = []
        for e in rows:
            sign = -1 if e.entry == "reversal" else 1
            table.append([
                e.seq, e.claim_id, e.date.isoformat(), L["kind_" + e.entry], e.plan, e.pool,
                e.benefit_year, _yuan(sign * e.self_pay), _yuan(sign * e.relief),
                _yuan(sign * e.patient_pays), _yuan(e.ytd_self_pay), _yuan(e.ytd_relief),
                _yuan(e.annual_cap_left, lang),
            ])
        echo(_table(table, [
            L["row"], L["claim_id"], L["date"], L["entry"], L["plan"], L["pool"], L["year"],
            L["self_pay"], L["relief"], L["patient_pays"], L["ytd_self_pay"], L["ytd_relief"],
            L["cap_left"],
        ], ("right", "left", "left", "left", "left", "left", "right") + ("right",) * 6))
        echo("")
        echo(L["totals"])
        echo(_table([
            [y, p, _yuan(e.ytd_self_pay), _yuan(e.ytd_relief), _yuan(e.annual_cap, lang), _yuan(e.annual_cap_left, lang)]
            for (y, p), e in sorted(totals.items())
        ], [L["year"], L["pool"], L["ytd_self_pay"], L["ytd_relief"], L["annual_cap"], L["cap_left"]],
            ("right", "left", "right", "right", "right", "right")))

    # -- rules ---------------------------------------------------------------------------
    @group.group()
    def rules() -> None:
        """Check and show rule files.

        \b
        Examples:
          medaid rules check rules/
          medaid rules show rules/chongqing-county-2019.toml --lang zh
        """

    def _path_arg(f: Any) -> Any:

        return click.argument("path", required=False, metavar="[PATH]",
                              default=None, type=click.Path())(f)

    @rules.command("check")
    @_path_arg
    @lang_option
    def rules_check(path: str | None, lang: str) -> None:
        """Validate rule files and run the worked examples they carry.

        PATH is a rule file or a folder of *.toml files (default: $MEDAID_RULES or ./rules).
        Every problem is listed as file: key: message; the exit code is 1 if any.

        \b
        Example:
          medaid rules check rules/
        """
        from ..domain.rules import load_rules
        from .app import default_rules_path

        try:
            book = load_rules(path or default_rules_path())
        except MedaidError as e:
            raise fail(e) from None
        L = LABELS[lang]
        rows, n_plans, n_examples = [], 0, 0
        for rs in book.rule_sets:
            for p in rs.plans:
                count = sum(1 if ex.self_pay is not None else len(ex.claims or ()) for ex in p.examples)
                rows.append([rs.source, rs.label, p.name, len(p.examples), count])
                n_plans += 1
                n_examples += len(p.examples)
        echo(_table(rows, [L["file"], L["scheme"], L["plan"], L["examples"], L["claims_checked"]],
                          ("left", "left", "left", "right", "right")))
        echo(_t(lang, "checked", sets=len(book.rule_sets), plans=n_plans, examples=n_examples))

    @rules.command("show")
    @_path_arg
    @lang_option
    def rules_show(path: str | None, lang: str) -> None:
        """Show rule sets as tables: versions, plans, brackets, caps and legal basis.

        \b
        Example:
          medaid rules show rules/ --lang zh
        """
        from ..domain.rules import load_rules
        from .app import default_rules_path

        try:
            book = load_rules(path or default_rules_path())
        except MedaidError as e:
            raise fail(e) from None
        L = LABELS[lang]
        for rs in book.rule_sets:
            echo(f"{L['rule_set']}{L['colon']}{rs.id} {rs.version}" + (f" — {rs.title}" if rs.title else ""))
            echo(_table([
                [L["file"], rs.source],
                [L["valid"], f"{rs.valid_from} – {rs.valid_to or ''}"],
                [L["rounding"], f"{rs.rounding.unit}, {rs.rounding.method}"],
                [L["by_start"], str(rs.benefit_year_start_month)],
                ["sha256", rs.content_hash],
            ]))
            for p in rs.plans:
                echo("")
                echo(f"{L['plan']}{L['colon']}{p.name}" + (f" — {p.title}" if p.title else ""))
                covers = ", ".join(f"{g}/{k}" for g in p.match.group for k in p.match.kind) if p.match else ""
                if p.default:
                    covers = (covers + "; " if covers else "") + L["default"]
                echo(_table([
                    [L["covers"], covers],
                    [L["pool"], p.pool],
                    [L["accumulate"], p.accumulate],
                    [L["mode"], p.mode],
                    [L["gate"], _yuan(p.gate, lang)],
                    [L["claim_cap"], _yuan(p.claim_cap, lang)],
                    [L["annual_cap"], _yuan(p.annual_cap, lang)],
                    [L["basis"], p.basis or L["none"]],
                ]))
                echo(_table(
                    [[_yuan(b.lower), "" if b.upper is None else _yuan(b.upper), _percent(b.rate)] for b in p.brackets],
                    [L["from"], L["to"], L["rate"]], ("right", "right", "right")))
            echo("")

    # -- ledger --------------------------------------------------------------------------
    @group.group()
    def ledger() -> None:
        """Check the desk ledger.

        \b
        Example:
          medaid ledger verify --ledger desk.sqlite3
        """

    @ledger.command("verify")
    @_ledger_option
    @lang_option
    def ledger_verify(ledger_path: str, lang: str) -> None:
        """Verify the ledger: SQLite integrity check, hash chain, reversal links and the
        recorded year-to-date figures.  Exit code 1 if anything is wrong.

        \b
        Example:
          medaid ledger verify --ledger desk.sqlite3
        """
        with _open_ledger(ledger_path, create=False) as lg:
            v = lg.verify()
            schema = lg.schema_version()
        if v.problems:
            for p in v.problems:
                echo(f"{ledger_path}: {p}", err=True)
            raise click.ClickException(f"{ledger_path}: {len(v.problems)} problem(s) found")
        echo(_t(lang, "verify_ok", path=ledger_path, n=v.entries, schema=schema))
        echo(_t(lang, "head", h=v.head_hash))

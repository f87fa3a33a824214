"""CLI commands at the settlement desk: ``settle``, ``quote``, ``reverse``, ``history``,
``rules check``, ``rules show``, ``ledger verify``, ``ledger migrate`` and ``ledger copy``.

Thin over the library: each command is a module-level click command that opens the library
object (rule book, a ledger from :func:`medaid.ledger.open_ledger`: a file or a URL), calls one
method, turns the library's exception into the CLI's error (:func:`_refused`) and prints a
table (tabulate) or JSON.  The explanation of a settlement or quote is the library's
(:mod:`medaid.report.explain`), so any front end shows the same one.  Options are shared
decorators (:mod:`medaid.cli.options`).  Labels are in English or Chinese (``--lang`` /
``$MEDAID_LANG``); money is printed with thousands separators and two decimals.  Only click is
imported at start-up; the library, sqlite3 and tabulate are imported inside the commands.

Exit codes: 0 done; 1 refused (ledger conflicts, unknown or reversed claims, invalid rules,
a damaged ledger); 2 usage (bad amounts, dates, groups or kinds, missing options).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ..errors import ClaimError, MedaidError, RuleError
from ..money import format_rate
from . import remote
from .app import default_rules_path, echo, fail, json_option, json_text, lang_option, load_book, rules_option
from .options import (
    amount,
    check_attributes,
    claim_options,
    ident,
    ledger_option,
    path_argument,
    payee_options,
    text,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..domain.claims import Claim
    from ..domain.engine import Placement
    from ..domain.rules import Bracket, RuleBook
    from ..ledger.backend import LedgerBase
    from ..ledger.ledger import Entry, Receipt


# --------------------------------------------------------------------------------------------
# the library's objects and errors


@contextmanager
def _refused() -> Iterator[None]:
    """A library refusal (:class:`medaid.errors.MedaidError`, located problems) as the CLI's
    error: exit code 1, the problems in ``--json``."""
    try:
        yield
    except MedaidError as e:
        raise fail(e) from None


#: The option that gives each payee field of a claim (for a refusal's hint).
_PAYEE_OPTIONS = {"channel": "--channel", "bank_account": "--bank-account", "account_name": "--account-name"}


def _claim(kw: dict[str, Any], claim_id: str, book: "RuleBook") -> "Claim":
    """The claim of the options; the payee options (``settle`` only) refused as a usage error
    naming the option, never repeating the account (personal data); an ``--attr`` the rules do
    not declare, as a usage error naming ``--attr`` and the declared names."""
    from pydantic import ValidationError

    from ..domain.claims import Claim
    from ..io.attributes import declared_attributes

    check_attributes(kw["attributes"], declared_attributes(book))
    payee = {k: kw[k] for k in _PAYEE_OPTIONS if kw.get(k) is not None}
    try:
        return Claim(
            claim_id=claim_id, person_id=kw["person_id"], date=kw["date"] or dt.date.today(),
            self_pay=kw["self_pay"], group=kw["group"], kind=kw["kind"], hospital=kw["hospital"],
            total_cost=kw["total_cost"], household_id=kw["household_id"], non_compliant=kw["non_compliant"],
            attributes=kw["attributes"], **payee,
        )
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "channel"
        raise click.BadParameter(str(err["msg"]).removeprefix("Value error, "),
                                 param_hint=_PAYEE_OPTIONS.get(field, "--" + field.replace("_", "-"))) from None


def _placed(claim: "Claim", book: "RuleBook") -> "Placement":
    """Place the claim; a date no version covers, a group/kind no plan matches, an attribute
    value the version does not allow or a missing household id is a usage error naming the
    option."""
    from ..domain.engine import place

    try:
        return place(claim, book)
    except RuleError as e:  # e.g. several schemes loaded and no --scheme
        raise click.UsageError(str(e)) from None
    except ClaimError as e:
        p = e.problems[0]
        hints = {"date": "--date", "household_id": "--household", **{name: "--attr" for name, _ in claim.attributes}}
        raise click.BadParameter(p.message, param_hint=hints.get(p.field or "", "--group/--kind")) from None


def _as_codes(claim: "Claim", at: "Placement") -> "Claim":
    """The claim with its group and kind as the codes of the version it settles under
    (``--group 特困人员`` is recorded as ``key``), as the batch writes them."""
    group, kind = at.rule_set.codes(claim.group, claim.kind)
    if (group, kind) == (claim.group, claim.kind):
        return claim
    return claim.model_copy(update={"group": group, "kind": kind})


def _open_ledger(path: str, *, create: bool) -> "LedgerBase":
    from ..ledger.backend import open_ledger

    with _refused():
        return open_ledger(path, create=create)


def _is_url(where: str) -> bool:
    from ..ledger.backend import is_url

    return is_url(where)


def _load_rules(path: str | None) -> "RuleBook":
    from ..domain.rules import load_rules

    with _refused():
        return load_rules(path or default_rules_path())


# --------------------------------------------------------------------------------------------
# printing


def _dump(obj: Any) -> None:
    """Print ``obj`` as JSON (:func:`medaid.cli.app.json_text`)."""
    click.echo(json_text(obj))


def _show_settlement(receipt: "Receipt", book: "RuleBook", lang: str, as_json: bool, generated: bool) -> None:
    from ..report.explain import explain, explain_dict, label

    e = receipt.entry
    if as_json:
        d = explain_dict(e, book)
        d["replayed"] = receipt.replayed
        d["claim_id_generated"] = generated
        _dump(d)
        return
    if generated:
        echo(label(lang, "generated", id=e.claim_id))
    if receipt.replayed:
        echo(label(lang, "replayed"))
    echo(explain(e, e.claim(), book, lang, f"{label(lang, 'settlement')} {e.claim_id}"))
    echo(label(lang, "recorded", seq=e.seq, at=e.recorded_at))


def _show_reversal(e: "Entry", later: list[str], lang: str, as_json: bool, adjusted: "list[Entry]") -> None:
    from ..report.explain import LABELS, label, table, yuan

    if as_json:
        d = e.to_dict()
        d["settled_after_not_recalculated"] = later
        d["adjustments"] = [a.to_dict() for a in adjusted]
        _dump(d)
        return
    echo(label(lang, "reversed", claim=e.claim_id, seq=e.seq, reason=e.reason))
    echo(label(lang, "taken_out", pool=e.pool, year=e.benefit_year, s=yuan(e.self_pay), r=yuan(e.relief)))
    L = LABELS[lang]
    echo(table([
        [L["ytd_self_pay"], yuan(e.ytd_self_pay)],
        [L["ytd_relief"], yuan(e.ytd_relief) + ("" if e.annual_cap is None else f" / {yuan(e.annual_cap)}")],
        [L["cap_left"], yuan(e.annual_cap_left, lang)],
    ], align=("left", "right")))
    for a in adjusted:
        if not a.adjustment:  # the same relief, explained anew (docs/calculation.md, Reversals)
            echo(label(lang, "reexplained", claim=a.claim_id, row=a.adjusts, new=yuan(a.relief)))
            continue
        echo(label(lang, "adjusted", claim=a.claim_id, row=a.adjusts, old=yuan(a.relief - (a.adjustment or 0)),
                   new=yuan(a.relief), diff=("+" if (a.adjustment or 0) > 0 else "") + yuan(a.adjustment)))
    if later:
        echo(label(lang, "later", ids=", ".join(later)))


def _show_history(person: str, year: int | None, rows: "list[Entry]", lang: str, as_json: bool) -> None:
    from ..report.explain import LABELS, label, table, yuan

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
        echo(label(lang, "no_history", person=person))
        return
    echo(label(lang, "history", person=person))
    lines = []
    for e in rows:
        sign = -1 if e.entry == "reversal" else 1
        kind = L["kind_" + e.entry]
        channel = L["channel_" + e.channel] if e.channel else ""
        if e.adjustment is not None:  # an adjustment: its change of relief, and what it adjusts and why
            kind += " " + label(lang, "adjusts", row=e.adjusts, rev=e.reversal)
        lines.append([
            e.seq, e.claim_id, e.date.isoformat(), kind, channel, e.plan, e.pool,
            e.benefit_year, yuan(0 if e.adjustment is not None else sign * e.self_pay),
            yuan(e.adjustment if e.adjustment is not None else sign * e.relief),
            yuan(-e.adjustment if e.adjustment is not None else sign * e.patient_pays),
            yuan(e.ytd_self_pay), yuan(e.ytd_relief), yuan(e.annual_cap_left, lang),
        ])
    head = [L["row"], L["claim_id"], L["date"], L["entry"], L["channel"], L["plan"], L["pool"], L["year"],
            L["self_pay"], L["relief"], L["patient_pays"], L["ytd_self_pay"], L["ytd_relief"], L["cap_left"]]
    align: tuple[str, ...] = ("right", "left", "left", "left", "left", "left", "left", "right") + ("right",) * 6
    if any(e.second_pool is not None or e.caps for e in rows):
        # docs/desk.md *Households, attributes and the second stage*: each row's result (an
        # adjustment: the claim's new one) of the second stage and the relief counted per cap pool
        for line, e in zip(lines, rows, strict=True):
            line += ["" if e.second_pool is None else yuan(e.second_relief or 0),
                     ", ".join(f"{n} {yuan(fen)}" for n, fen in e.caps or ())]
        head += [L["second_relief_column"], L["cap_pools_column"]]
        align += ("right", "left")
    echo(table(lines, head, align))
    echo("")
    echo(L["totals"])
    echo(table([
        [y, p, yuan(e.ytd_self_pay), yuan(e.ytd_relief), yuan(e.annual_cap, lang), yuan(e.annual_cap_left, lang)]
        for (y, p), e in sorted(totals.items())
    ], [L["year"], L["pool"], L["ytd_self_pay"], L["ytd_relief"], L["annual_cap"], L["cap_left"]],
        ("right", "left", "right", "right", "right", "right")))


def _show_rules_check(book: "RuleBook", lang: str) -> None:
    from ..report.explain import LABELS, label, table

    L = LABELS[lang]
    rows, n_plans, n_examples = [], 0, 0
    for rs in book.rule_sets:
        for p in rs.plans:
            count = sum(1 if ex.self_pay is not None else len(ex.claims or ()) for ex in p.examples)
            rows.append([rs.source, rs.label, p.name, len(p.examples), count])
            n_plans += 1
            n_examples += len(p.examples)
        if rs.examples:  # the worked examples across plans ([[examples]] at the top level)
            rows.append([rs.source, rs.label, L["across_plans"], len(rs.examples),
                         sum(len(ex.claims) for ex in rs.examples)])
            n_examples += len(rs.examples)
    echo(table(rows, [L["file"], L["scheme"], L["plan"], L["examples"], L["claims_checked"]],
                     ("left", "left", "left", "right", "right")))
    echo(label(lang, "checked", sets=len(book.rule_sets), plans=n_plans, examples=n_examples))


def _brackets_table(brackets: "tuple[Bracket, ...]", L: dict[str, str]) -> str:
    """A plan's (or second stage's) brackets as ``rules show`` prints them: from, to, rate."""
    from ..report.explain import table, yuan

    return table([[yuan(b.lower), "" if b.upper is None else yuan(b.upper), format_rate(b.rate)] for b in brackets],
                 [L["from"], L["to"], L["rate"]], ("right", "right", "right"))


def _show_rules(book: "RuleBook", lang: str) -> None:
    from ..report.explain import LABELS, label, table, yuan

    L = LABELS[lang]
    for rs in book.rule_sets:
        echo(f"{L['rule_set']}{L['colon']}{rs.id} {rs.version}" + (f" — {rs.title}" if rs.title else ""))
        echo(table([
            [L["file"], rs.source],
            [L["valid"], f"{rs.valid_from} – {rs.valid_to or ''}"],
            [L["rounding"], f"{rs.rounding.unit}, {rs.rounding.method}"],
            [L["by_start"], str(rs.benefit_year_start_month)],
            ["sha256", rs.content_hash],
        ]))
        if rs.attributes:
            echo("")
            echo(table([[n, a.title or "", ", ".join(a.columns) or "-",
                         "; ".join(f"{c} ({', '.join(v)})" if v else c for c, v in a.values.items())]
                        for n, a in rs.attributes.items()],
                       [L["attribute"], L["title"], L["columns"], L["values"]]))
        if rs.caps:
            echo("")
            echo(table([[f"cap:{n}", c.title or "", c.per, yuan(c.annual)] for n, c in rs.caps.items()],
                       [L["cap_pool_head"], L["title"], L["per"], L["cap_annual"]], ("left", "left", "left", "right")))
        for p in rs.plans:
            echo("")
            echo(f"{L['plan']}{L['colon']}{p.name}" + (f" — {p.title}" if p.title else ""))
            covers = ", ".join(f"{g}/{k}" for g in p.match.group for k in p.match.kind) if p.match else ""
            if p.match is not None and p.match.attributes:
                covers += "; " + "; ".join(f"{a} = {', '.join(v)}" for a, v in p.match.attributes.items())
            if p.default:
                covers = (covers + "; " if covers else "") + L["default"]
            rows = [
                [L["covers"], covers],
                [L["pool"], p.pool],
                [L["accumulate"], p.accumulate],
                [L["mode"], p.mode],
                [L["gate"], yuan(p.gate, lang)],
                [L["claim_cap"], yuan(p.claim_cap, lang)],
                [L["annual_cap"], yuan(p.annual_cap, lang)],
            ]
            if p.grant is not None:
                rows[2:5] = [[L["grant"], label(lang, "grant_" + p.grant.per, amount=yuan(p.grant.amount))]]
            if p.caps:
                rows.append([L["cap_pool_head"], ", ".join(f"cap:{n}" for n in p.caps)])
            rows.append([L["basis"], p.basis or L["none"]])
            echo(table(rows))
            if p.brackets:
                echo(_brackets_table(p.brackets, L))
            if p.second is not None:
                st = p.second
                echo("")
                echo(label(lang, "second", title=st.title or L["second_default"], pool=st.pool))
                echo(table([
                    [L["accumulate"], st.accumulate],
                    [L["mode"], st.mode],
                    [L["gate"], yuan(st.gate, lang)],
                    [L["claim_cap"], yuan(st.claim_cap, lang)],
                    [L["annual_cap"], yuan(st.annual_cap, lang)],
                    [L["cap_pool_head"], ", ".join(f"cap:{n}" for n in st.caps) or L["none"]],
                    [L["second_basis"], st.basis or L["none"]],
                ]))
                echo(_brackets_table(st.brackets, L))
        echo("")


# --------------------------------------------------------------------------------------------
# the commands


@click.command()
@claim_options
@payee_options
@ledger_option
@rules_option
@lang_option
@json_option
@remote.server_option
def settle(ledger_path: str, rules_path: str, scheme: str | None, lang: str, as_json: bool,
           server: str | None, **kw: Any) -> None:
    """Settle a claim against the ledger and record it.

    Reads the person's year-to-date position in the claim's pool, computes the relief and
    records the settlement, all in one transaction.  Settling the same claim id again with
    the same content prints the original result and records nothing; with different
    content it is refused until the original is reversed.

    \b
    The channel says who is paid in the monthly period (docs/periods.md): one-stop (the
    hospital, the default) or application (the person: --bank-account and --account-name
    required; both are masked wherever they are shown, except in the bank payout file).

    \b
    Examples:
      medaid settle --person P1 --self-pay 30000 --date 2024-05-03 --group key --kind inpatient
      medaid settle --person P2 --self-pay 12000 --channel application \\
          --bank-account "6222 0212 3456 1234" --account-name 张三
    """
    from ..ledger.ledger import new_claim_id

    if server:
        return remote.settle(server, lang, as_json, kw)
    book = load_book(rules_path, scheme)
    day = kw["date"] or dt.date.today()
    claim = _claim({**kw, "date": day}, kw["claim_id"] or new_claim_id(day), book)
    at = _placed(claim, book)
    claim = _as_codes(claim, at)
    with _open_ledger(ledger_path, create=True) as lg, _refused():
        receipt = lg.settle(claim, book, at)
    _show_settlement(receipt, book, lang, as_json, generated=kw["claim_id"] is None)


@click.command()
@claim_options
@click.option("--ytd-self-pay", callback=amount, metavar="YUAN",
              help="Year-to-date self-pay already in the pool (instead of reading a ledger).")
@click.option("--ytd-relief", callback=amount, metavar="YUAN",
              help="Year-to-date relief already granted in the pool (with --ytd-self-pay).")
@ledger_option
@rules_option
@lang_option
@json_option
@remote.server_option
def quote(ledger_path: str, rules_path: str, scheme: str | None, lang: str, as_json: bool,
          ytd_self_pay: int | None, ytd_relief: int | None, server: str | None, **kw: Any) -> None:
    """Work out a claim's relief without recording anything.

    The year-to-date position comes from --ytd-self-pay and --ytd-relief when given (no
    ledger needed), else from the ledger, which must exist.

    \b
    Examples:
      medaid quote --person P1 --self-pay 30000 --date 2024-05-03 --ytd-self-pay 0 --ytd-relief 0
      medaid quote --person P1 --self-pay 12,345.67 --ledger desk.sqlite3 --lang zh
    """
    from ..domain.engine import PoolState, quote as quote_claim
    from ..report.explain import claim_echo, explain, explain_dict, label

    if (ytd_self_pay is None) != (ytd_relief is None):
        raise click.UsageError("give both --ytd-self-pay and --ytd-relief, or neither (to read the ledger)")
    if server:
        return remote.quote(server, lang, as_json, kw, (ytd_self_pay, ytd_relief))
    book = load_book(rules_path, scheme)
    claim = _claim(kw, kw["claim_id"] or "-", book)  # a quote needs no claim id
    at = _placed(claim, book)
    claim = _as_codes(claim, at)
    if ytd_self_pay is not None:
        assert ytd_relief is not None
        r = quote_claim(claim, book, PoolState(ytd_self_pay, ytd_relief), at=at)
    else:
        if not _is_url(ledger_path) and not os.path.exists(ledger_path):
            raise click.UsageError(
                f"no ledger at {ledger_path}: give --ytd-self-pay and --ytd-relief (0 and 0 "
                "for the person's first claim of the year), or --ledger PATH")
        with _open_ledger(ledger_path, create=False) as lg, _refused():
            r = lg.quote(claim, book, at)  # its whole position: cap pools, household, second pool
    if as_json:
        d = explain_dict(r, book)
        d.update(claim_id=kw["claim_id"], group=claim.group, kind=claim.kind,
                 hospital=claim.hospital, **claim_echo(claim), recorded=False)
        _dump(d)
        return
    echo(explain(r, claim, book, lang, label(lang, "quote")))


@click.command()
@click.argument("claim_id", callback=ident)
@click.option("--reason", required=True, callback=text, metavar="TEXT",
              help="Why the settlement is reversed (冲正原因); recorded in the ledger.")
@ledger_option
@rules_option
@lang_option
@json_option
@remote.server_option
def reverse(claim_id: str, reason: str, ledger_path: str, rules_path: str, scheme: str | None, lang: str,
            as_json: bool, server: str | None) -> None:
    """Reverse (冲正) a recorded settlement.

    Records a new ledger row linked to the settlement; the person's year-to-date position
    in that pool drops by the claim's self-pay and relief.  The claims of that pool settled
    after it are settled again under the rules, and each change of relief is recorded as an
    adjustment linked to the reversal (and printed), in the same transaction.  Reversing
    twice, or a claim not in the ledger, is refused.

    \b
    Example:
      medaid reverse 20240503-7F3A9C --reason "wrong self-pay entered"
    """
    if server:
        e, later, adjusted = remote.reverse(server, lang, claim_id, reason)
        return _show_reversal(e, later, lang, as_json, adjusted)
    book = load_book(rules_path, scheme)
    with _open_ledger(ledger_path, create=False) as lg, _refused():
        e = lg.reverse(claim_id, reason, book=book)
        adjusted = lg.adjustments(e)
    _show_reversal(e, [], lang, as_json, adjusted)


@click.command()
@click.argument("person", callback=ident)
@click.option("--year", type=click.IntRange(1900, 9999), metavar="YYYY",
              help="Only this benefit year.")
@ledger_option
@lang_option
@json_option
@remote.server_option
def history(person: str, year: int | None, ledger_path: str, lang: str, as_json: bool, server: str | None) -> None:
    """Show a person's file (一人一档): settlements, reversals and adjustments with running totals per pool.

    \b
    Example:
      medaid history P1 --year 2024 --lang zh
    """
    if server:
        return _show_history(person, year, remote.history(server, lang, person, year), lang, as_json)
    with _open_ledger(ledger_path, create=False) as lg, _refused():
        rows = lg.history(person, year)
    _show_history(person, year, rows, lang, as_json)


@click.group()
def rules() -> None:
    """Check and show rule files.

    \b
    Examples:
      medaid rules check rules/
      medaid rules show rules/chongqing-county-2019.toml --lang zh
    """


@rules.command("check")
@path_argument
@lang_option
def rules_check(path: str | None, lang: str) -> None:
    """Validate rule files and run the worked examples they carry.

    PATH is a rule file or a folder of *.toml files (default: $MEDAID_RULES or ./rules).
    Every problem is listed as file: key: message; the exit code is 1 if any.

    \b
    Example:
      medaid rules check rules/
    """
    _show_rules_check(_load_rules(path), lang)


@rules.command("show")
@path_argument
@lang_option
def rules_show(path: str | None, lang: str) -> None:
    """Show rule sets as tables: versions, plans, brackets, caps and legal basis.

    \b
    Example:
      medaid rules show rules/ --lang zh
    """
    _show_rules(_load_rules(path), lang)


@click.group()
def ledger() -> None:
    """Check, create or copy the ledger.

    \b
    Examples:
      medaid ledger verify --ledger desk.sqlite3
      medaid ledger migrate --ledger postgresql://medaid@db.example/county
      medaid ledger copy desk.sqlite3 postgresql://medaid@db.example/county
    """


@ledger.command("verify")
@ledger_option
@lang_option
def ledger_verify(ledger_path: str, lang: str) -> None:
    """Verify the ledger: the database's checks (SQLite's integrity check; the append-only
    triggers), hash chain, reversal links and the recorded year-to-date figures.  Exit code 1 if anything is wrong.

    \b
    Example:
      medaid ledger verify --ledger desk.sqlite3
    """
    from ..ledger.backend import redact
    from ..report.explain import label

    with _open_ledger(ledger_path, create=False) as lg:
        v = lg.verify()
        schema = lg.schema_version()
    ledger_path = redact(ledger_path)
    if v.problems:
        for p in v.problems:
            echo(f"{ledger_path}: {p}", err=True)
        raise click.ClickException(f"{ledger_path}: {len(v.problems)} problem(s) found")
    echo(label(lang, "verify_ok", path=ledger_path, n=v.entries, schema=schema))
    echo(label(lang, "head", h=v.head_hash))


#: The words of ``ledger migrate`` and ``ledger copy``, in English and Chinese.
_LEDGER_WORDS = {
    "en": {
        "schema": "{where}: schema {version}",
        "migration": "  {version}  {name}  (applied {at})",
        "copied": "{src} → {dst}: {copied} row(s) copied, {present} already there{rechained}",
        "rechained": "; {n} renumbered and chained after the destination's own rows",
        "now": "{dst}: {n} rows verified, head {h}",
    },
    "zh": {
        "schema": "{where}：结构版本 {version}",
        "migration": "  {version}  {name}（应用于 {at}）",
        "copied": "{src} → {dst}：复制 {copied} 行，已有 {present} 行{rechained}",
        "rechained": "；其中 {n} 行接在目标台账原有记录之后重新编号、重新链接",
        "now": "{dst}：校验通过 {n} 行，链头 {h}",
    },
}


def _said(lang: str, key: str, **kw: object) -> str:
    return _LEDGER_WORDS["zh" if lang == "zh" else "en"][key].format(**kw)


@ledger.command("migrate")
@ledger_option
@lang_option
def ledger_migrate(ledger_path: str, lang: str) -> None:
    """Create the ledger, or bring its schema up to date, and list its migrations.

    The same named migrations on a file and on PostgreSQL; each is applied once, in one
    transaction (opening a ledger applies them too).

    \b
    Example:
      medaid ledger migrate --ledger postgresql://medaid@db.example/county
    """
    from ..ledger.backend import redact

    with _open_ledger(ledger_path, create=True) as lg, _refused():
        version, steps = lg.schema_version(), lg.migrations()
    echo(_said(lang, "schema", where=redact(ledger_path), version=version))
    for v, name, at in steps:
        echo(_said(lang, "migration", version=v, name=name, at=at))


@ledger.command("copy")
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@lang_option
def ledger_copy(src: str, dst: str, lang: str) -> None:
    """Copy a ledger's rows into another ledger (a desk's file into PostgreSQL).

    SRC and DST are files or postgresql:// URLs; DST is created if need be.  Both are
    verified first.  Rows already in DST are not copied again (running it twice copies
    nothing new); a claim id DST holds with other rows is refused, naming it; all rows are
    copied in one transaction, or none.  Into an empty DST every row keeps its number and
    hash.  Exit code 1 if anything is refused.

    \b
    Example:
      medaid ledger copy desk.sqlite3 postgresql://medaid@db.example/county
    """
    from ..ledger.backend import redact
    from ..ledger.copy import copy_ledger, verified

    with _open_ledger(src, create=False) as source:
        with _refused():  # (before the destination is opened, and perhaps made: a refused copy makes nothing)
            verified(source, "source")
        with _open_ledger(dst, create=True) as target, _refused():
            done = copy_ledger(source, target, source_verified=True)
    more = _said(lang, "rechained", n=done.rechained) if done.rechained else ""
    echo(_said(lang, "copied", src=redact(src), dst=redact(dst), copied=done.copied, present=done.present,
               rechained=more))
    echo(_said(lang, "now", dst=redact(dst), n=done.entries, h=done.head_hash))


#: The commands this module adds to the ``medaid`` group (see :data:`medaid.cli.app.COMMAND_MODULES`).
COMMANDS = (settle, quote, reverse, history, rules, ledger)


def register(group: click.Group) -> None:
    """Add the desk commands to ``group``: settle, quote, reverse, history, rules, ledger."""
    for command in COMMANDS:
        group.add_command(command)

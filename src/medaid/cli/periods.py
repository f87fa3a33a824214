"""``medaid period``: the ledger's monthly periods (清算期, docs/periods.md).

Thin over :class:`medaid.ledger.periods.Periods`: ``open``, ``close``, ``review``, ``approve``
and ``pay`` record one transition each (who: ``--by``, default the OS user); ``show`` and
``list`` read; ``lists`` (and ``pay -o DIR``) write the payment lists
(:mod:`medaid.ledger.period_files`).  An illegal transition is refused (exit 1), nothing written;
a bad month or option is a usage error (exit 2).  Bank accounts and names never reach the
terminal: only the bank payout file holds them.
"""

from __future__ import annotations

import csv
import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import MedaidError, Problem
from .app import echo, fail, json_option, json_text, lang_option, load_book, rules_option
from .options import ledger_option, text

if TYPE_CHECKING:  # pragma: no cover
    from ..ledger.backend import LedgerBase
    from ..ledger.periods import Event, PeriodLists

#: The words of the period commands, in English and Chinese.
WORDS = {
    "en": {
        "event": "Period {period}: {state} by {by} at {at}.",
        "through": "Declared through ledger row {seq}: later rows dated into it go to the next open period.",
        "outcomes": "{approved} settlement(s) approved, {rejected} rejected.",
        "rejected": "Rejected {claim} (settlement row {row}): {reason}; reversed as row {rev}.",
        "wrote": "Wrote {path}",
        "none": "No periods opened.",
        "head": "Period {period}: {state}; {n} ledger row(s).",
        "state": "State", "period": "Period", "by": "By", "at": "At",
        "channel": "Channel", "settlements": "Settlements", "settled": "Relief settled",
        "reversals": "Reversals", "reversed": "Reversed", "adjustments": "Adjustments",
        "adjusted": "Adjusted", "net": "To pay", "total": "total", "one-stop": "one-stop (hospitals)",
        "application": "application (bank)", "not_opened": "not opened",
        "hospitals": "{n} hospital(s), {m} person(s) to pay by bank.",
    },
    "zh": {
        "event": "清算期 {period}：{state}，{by}，{at}。",
        "through": "申报截至台账第 {seq} 行：此后记入该月的记录转入下一个未申报的清算期。",
        "outcomes": "审核通过 {approved} 笔，不通过 {rejected} 笔。",
        "rejected": "不通过 {claim}（结算第 {row} 行）：{reason}；已冲正，第 {rev} 行。",
        "wrote": "已写出 {path}",
        "none": "尚未开启任何清算期。",
        "head": "清算期 {period}：{state}；台账记录 {n} 行。",
        "state": "状态", "period": "清算期", "by": "操作人", "at": "时间",
        "channel": "支付渠道", "settlements": "结算笔数", "settled": "结算救助金额",
        "reversals": "冲正笔数", "reversed": "冲正金额", "adjustments": "调整笔数",
        "adjusted": "调整金额", "net": "应付金额", "total": "合计", "one-stop": "一站式（拨付医疗机构）",
        "application": "事后申请（银行兑付）", "not_opened": "未开启",
        "hospitals": "医疗机构 {n} 家，银行兑付 {m} 人。",
    },
}
STATE_ZH = {"open": "已开启", "declared": "已申报", "reviewed": "已审核", "approved": "已审批", "paid": "已拨付"}


def _w(lang: str, key: str, **kw: object) -> str:
    return WORDS["zh" if lang == "zh" else "en"][key].format(**kw)


def _state(lang: str, state: str | None) -> str:
    if state is None:
        return _w(lang, "not_opened")
    return STATE_ZH[state] if lang == "zh" else state


def _period(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from ..ledger.periods import parse_period

    try:
        return parse_period(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _by_default() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        return f"uid {os.getuid()}"


period_argument = click.argument("period", metavar="YYYY-MM", callback=_period)
by_option = click.option("--by", callback=text, default=_by_default, show_default="the OS user", metavar="NAME",
                         help="Who records it (kept with the transition).")


def _open(path: str, *, create: bool = False) -> "LedgerBase":
    from ..ledger.backend import open_ledger

    try:
        return open_ledger(path, create=create)
    except MedaidError as e:
        raise fail(e) from None


def _show_event(e: "Event", lang: str, as_json: bool) -> None:
    if as_json:
        click.echo(json_text(e.to_dict()))
        return
    echo(_w(lang, "event", period=e.period, state=_state(lang, e.state), by=e.by, at=e.at))
    if e.through_seq is not None:
        echo(_w(lang, "through", seq=e.through_seq))


def _step(action: str, period: str, by: str, ledger_path: str, lang: str, as_json: bool) -> None:
    from ..ledger.periods import Periods

    with _open(ledger_path, create=action == "open") as lg:  # a county may open its first period first
        try:
            e = getattr(Periods(lg), action)(period, by)
        except MedaidError as err:
            raise fail(err) from None
    _show_event(e, lang, as_json)


def _summary_rows(lists: "PeriodLists", lang: str) -> list[list[Any]]:
    from ..report.explain import yuan

    out = []
    for key, channel in (("one-stop", "one-stop"), ("application", "application"), ("total", None)):
        t = lists.total(channel)
        out.append([_w(lang, key), t.settlements, yuan(t.settled), t.reversals, yuan(t.reversed),
                    t.adjustments, yuan(t.adjusted), yuan(t.net)])
    return out


def _write(lists: "PeriodLists", out: str, fmt: str, lang: str, quiet: bool) -> list[Path]:
    try:
        from ..ledger.period_files import write_lists
    except ImportError as e:  # polars and xlsxwriter are the batch extra's
        raise click.ClickException(
            f"writing the lists needs the batch extra ({e}): pip install 'medaid[batch]'") from None

    try:
        paths = write_lists(lists, Path(out), fmt)
    except MedaidError as e:
        raise fail(e) from None
    if not quiet:
        for p in paths:
            echo(_w(lang, "wrote", path=p))
    return paths


def _folder(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not Path(value).is_dir():
        raise click.BadParameter(f"{value} is not a folder (create it first)")
    return value


out_option = click.option("-o", "--output", "out", metavar="DIR", callback=_folder,
                          help="Folder to write the period's lists into (it must exist).")
format_option = click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "both"]), default="both",
                             show_default=True, help="Format of the lists.")


# --------------------------------------------------------------------------------------------
# the commands


@click.group()
def period() -> None:
    """Monthly periods (清算期): open, declare, review, approve and pay a month's ledger entries.

    \b
    Examples:
      medaid period open 2024-05
      medaid period close 2024-05
      medaid period review 2024-05 --reject ZY20240503001 --reason "not an inpatient stay"
      medaid period approve 2024-05
      medaid period pay 2024-05 -o out/
    """


@period.command("open")
@period_argument
@by_option
@ledger_option
@lang_option
@json_option
def period_open(period: str, by: str, ledger_path: str, lang: str, as_json: bool) -> None:
    """Open a period (once).

    \b
    Example:
      medaid period open 2024-05 --by "County health commission"
    """
    _step("open", period, by, ledger_path, lang, as_json)


@period.command("close")
@period_argument
@by_option
@ledger_option
@lang_option
@json_option
def period_close(period: str, by: str, ledger_path: str, lang: str, as_json: bool) -> None:
    """Declare an open period (申报): its rows are fixed; later rows dated into it go to the next
    open period.

    \b
    Example:
      medaid period close 2024-05
    """
    _step("close", period, by, ledger_path, lang, as_json)


def _rejections(pairs: tuple[str, ...], reasons: tuple[str, ...], file: str | None) -> list[tuple[str, str]]:
    """``--reject``/``--reason`` pairs (in order) and the rows of ``--rejections FILE``."""
    if len(pairs) != len(reasons):
        raise click.BadParameter("give one --reason for each --reject, in the same order", param_hint="--reason")
    out = list(zip(pairs, reasons, strict=True))
    if file is not None:
        try:
            with open(file, encoding="utf-8-sig", newline="") as f:
                reader = csv.DictReader(f)
                fields = {(h or "").strip(): h for h in reader.fieldnames or ()}
                cid = fields.get("claim_id") or fields.get("结算单号")
                why = fields.get("reason") or fields.get("原因")
                if cid is None or why is None:
                    raise click.BadParameter(f"{file}: needs the columns claim_id and reason (or 结算单号 and 原因)",
                                             param_hint="--rejections")
                for line, row in enumerate(reader, start=2):
                    c, r = (row.get(cid) or "").strip(), (row.get(why) or "").strip()
                    if not c or not r:
                        raise fail(MedaidError(Problem("needs a claim id and a reason", source=file, line=line,
                                                       field="reason" if c else "claim_id")))
                    out.append((c, r))
        except OSError as e:
            raise click.BadParameter(f"{file}: {e.strerror or e}", param_hint="--rejections") from None
        except UnicodeDecodeError:
            raise click.BadParameter(f"{file}: not UTF-8 text", param_hint="--rejections") from None
    return out


@period.command("review")
@period_argument
@click.option("--reject", "rejects", multiple=True, metavar="CLAIM_ID",
              help="A claim of the period that fails review (repeatable; each with its --reason).")
@click.option("--reason", "reasons", multiple=True, metavar="TEXT", help="Why the --reject before it fails.")
@click.option("--rejections", "rejections_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="A CSV of rejections: columns claim_id, reason (or 结算单号, 原因).")
@by_option
@ledger_option
@rules_option
@lang_option
@json_option
def period_review(period: str, rejects: tuple[str, ...], reasons: tuple[str, ...], rejections_file: str | None,
                  by: str, ledger_path: str, rules_path: str, scheme: str | None, lang: str, as_json: bool) -> None:
    """Record the review of a declared period: every standing settlement approved, except those
    rejected; a rejected claim is reversed (its person's later claims re-settled under --rules),
    in the period reviewed.  All in one transaction.

    \b
    Example:
      medaid period review 2024-05 --reject ZY20240503001 --reason "not an inpatient stay"
    """
    from ..ledger.periods import Periods

    wanted = _rejections(rejects, reasons, rejections_file)
    book = load_book(rules_path, scheme)
    with _open(ledger_path) as lg:
        try:
            event, outcomes = Periods(lg).review(period, by, wanted, book)
        except MedaidError as err:
            raise fail(err) from None
    rejected = [o for o in outcomes if o.outcome == "rejected"]
    if as_json:
        click.echo(json_text({**event.to_dict(), "outcomes": [o.to_dict() for o in outcomes]}))
        return
    _show_event(event, lang, False)
    echo(_w(lang, "outcomes", approved=len(outcomes) - len(rejected), rejected=len(rejected)))
    for o in rejected:
        echo(_w(lang, "rejected", claim=o.claim_id, row=o.settlement, reason=o.reason, rev=o.reversal))


@period.command("approve")
@period_argument
@by_option
@ledger_option
@lang_option
@json_option
def period_approve(period: str, by: str, ledger_path: str, lang: str, as_json: bool) -> None:
    """Approve a reviewed period (finance confirms).

    \b
    Example:
      medaid period approve 2024-05 --by finance
    """
    _step("approve", period, by, ledger_path, lang, as_json)


@period.command("pay")
@period_argument
@out_option
@format_option
@by_option
@ledger_option
@lang_option
@json_option
def period_pay(period: str, out: str | None, fmt: str, by: str, ledger_path: str, lang: str, as_json: bool) -> None:
    """Record an approved period as paid; with -o DIR, first write its lists there (拨付清单,
    银行兑付清单, 汇总).

    \b
    Example:
      medaid period pay 2024-05 -o out/ --format xlsx
    """
    from ..ledger.periods import Periods

    with _open(ledger_path) as lg:
        ps = Periods(lg)
        try:
            if out is not None:  # the files only for a period that may be paid
                ps.check("pay", period)
                _write(ps.lists(period), out, fmt, lang, as_json)
            e = ps.pay(period, by)
        except MedaidError as err:
            raise fail(err) from None
    _show_event(e, lang, as_json)


@period.command("lists")
@period_argument
@click.option("-o", "--output", "out", required=True, metavar="DIR", callback=_folder,
              help="Folder to write the lists into (it must exist).")
@format_option
@ledger_option
@lang_option
def period_lists(period: str, out: str, fmt: str, ledger_path: str, lang: str) -> None:
    """Write a period's lists: YYYY-MM-hospitals (拨付清单, per hospital), YYYY-MM-bank
    (银行兑付清单, per person, with the full bank account: 0600) and YYYY-MM-summary (汇总).

    \b
    Example:
      medaid period lists 2024-05 -o out/ --format csv
    """
    from ..ledger.periods import Periods

    with _open(ledger_path) as lg:
        try:
            lists = Periods(lg).lists(period)
        except MedaidError as err:
            raise fail(err) from None
    _write(lists, out, fmt, lang, False)


@period.command("show")
@period_argument
@ledger_option
@lang_option
@json_option
def period_show(period: str, ledger_path: str, lang: str, as_json: bool) -> None:
    """A period's state, its transitions (who, when), its totals per channel and per hospital,
    and its review's rejections.

    \b
    Example:
      medaid period show 2024-05 --lang zh
    """
    from ..ledger.periods import Periods
    from ..report.explain import table, yuan

    with _open(ledger_path) as lg:
        ps = Periods(lg)
        try:
            events, lists, reviews = ps.events(period), ps.lists(period), ps.reviews(period)
        except MedaidError as err:
            raise fail(err) from None
    if as_json:
        click.echo(json_text({"period": period, "state": lists.state, "events": [e.to_dict() for e in events],
                              "rows": len(lists.rows), **lists.to_dict(),
                              "reviews": [r.to_dict() for r in reviews]}))
        return
    echo(_w(lang, "head", period=period, state=_state(lang, lists.state), n=len(lists.rows)))
    if events:
        echo(table([[_state(lang, e.state), e.by, e.at] for e in events],
                   [_w(lang, "state"), _w(lang, "by"), _w(lang, "at")]))
    echo("")
    heads = [_w(lang, k) for k in ("channel", "settlements", "settled", "reversals", "reversed", "adjustments",
                                   "adjusted", "net")]
    echo(table(_summary_rows(lists, lang), heads, ("left",) + ("right",) * 7))
    if lists.hospitals:
        echo("")
        echo(table([[h.hospital or "", h.settlements, yuan(h.settled), h.reversals, yuan(h.reversed),
                     h.adjustments, yuan(h.adjusted), yuan(h.net)] for h in lists.hospitals],
                   ["医疗机构" if lang == "zh" else "Hospital", *heads[1:]], ("left",) + ("right",) * 7))
    for r in reviews:
        if r.outcome == "rejected":
            echo(_w(lang, "rejected", claim=r.claim_id, row=r.settlement, reason=r.reason, rev=r.reversal))


@period.command("list")
@ledger_option
@lang_option
@json_option
def period_list(ledger_path: str, lang: str, as_json: bool) -> None:
    """Every period opened: its state and last transition.

    \b
    Example:
      medaid period list
    """
    from ..ledger.periods import Periods
    from ..report.explain import table

    with _open(ledger_path) as lg:
        try:
            found = Periods(lg).periods()
        except MedaidError as err:
            raise fail(err) from None
    if as_json:
        click.echo(json_text([{"period": p, "state": s, "by": e.by, "at": e.at} for p, s, e in found]))
        return
    if not found:
        echo(_w(lang, "none"))
        return
    echo(table([[p, _state(lang, s), e.by, e.at] for p, s, e in found],
               [_w(lang, k) for k in ("period", "state", "by", "at")]))


#: The commands this module adds to the ``medaid`` group (see :data:`medaid.cli.app.COMMAND_MODULES`).
COMMANDS = (period,)


def register(group: click.Group) -> None:
    """Add ``period`` to ``group``."""
    for command in COMMANDS:
        group.add_command(command)

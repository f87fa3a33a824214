"""Options shared by the desk commands (:mod:`medaid.cli.desk`), as click callbacks and
decorators: amounts in yuan (→ fen, :func:`medaid.money.parse_yuan`), dates, non-empty text,
ids (tidied, :func:`medaid.domain.claims.tidy_id`), the claim's options shared by ``settle`` and
``quote`` (household, non-compliant cost and ``--attr NAME=VALUE`` among them), ``--ledger`` and
the rule-file ``PATH`` argument.  A bad value is a usage error naming the option (exit code 2).
Only click and medaid's light modules are imported at start-up; the claim model (pydantic) when
an id is read."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import click

from ..errors import MoneyError
from ..money import parse_yuan
from .app import ENV_LEDGER

#: Where the ledger is when neither ``--ledger`` nor ``$MEDAID_LEDGER`` says.
DEFAULT_LEDGER = "medaid-ledger.sqlite3"


def amount(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """An amount option in yuan → fen, through :func:`medaid.money.parse_yuan`."""
    if value is None:
        return None
    try:
        return parse_yuan(value, field=param.name or "amount")
    except MoneyError as e:
        raise click.BadParameter(e.problems[0].message) from None


def date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; write YYYY-MM-DD") from None


def text(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise click.BadParameter("must not be empty")
    return value


def ident(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A claim or person id, tidied as everywhere (:func:`medaid.domain.claims.tidy_id`)."""
    if value is None:
        return None
    from ..domain.claims import tidy_id

    value = tidy_id(value)
    if not value:
        raise click.BadParameter("must not be empty")
    return value


def attributes(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    """``--attr NAME=VALUE`` (repeatable) → ``{NAME: VALUE}``; the value tidied as the claim
    tidies it (:class:`medaid.domain.claims.Claim`).  Whether the rules declare NAME is checked
    once they are loaded (:func:`check_attributes`); the value, by the engine."""
    from ..domain.claims import tidy_id

    out: dict[str, str] = {}
    for item in value:
        name, sep, v = item.partition("=")
        name, v = name.strip(), tidy_id(v)
        if not sep or not name or not v:
            raise click.BadParameter(f"{item!r}: write NAME=VALUE, e.g. level=三级")
        if name in out:
            raise click.BadParameter(f"{name} is given twice")
        out[name] = v
    return out


def check_attributes(given: dict[str, str], declared: Any) -> None:
    """Refuse (a usage error naming ``--attr``, exit 2) an attribute the loaded rules do not
    declare (``declared``: their attribute names), listing those they do."""
    unknown = [n for n in given if n not in declared]
    if unknown:
        names = ", ".join(sorted(declared)) or "none"
        raise click.BadParameter(f"{', '.join(unknown)} is not an attribute the rules declare "
                                 f"(declared: {names})", param_hint="--attr")


def claim_options(f: Any) -> Any:
    """The claim's options, shared by settle and quote."""
    opts = [
        click.option("--person", "person_id", required=True, callback=ident, metavar="ID",
                     help="Person id (人员编号)."),
        click.option("--self-pay", required=True, callback=amount, metavar="YUAN",
                     help="Compliant self-pay (合规自付费用) in yuan, e.g. 30000 or 12,345.67."),
        click.option("--date", callback=date, metavar="YYYY-MM-DD",
                     help="Settlement date; picks the rule version and benefit year. [default: today]"),
        click.option("--claim-id", callback=ident, metavar="ID",
                     help="Claim id (结算单号); generated from the date and a random suffix when absent."),
        click.option("--group", callback=text, metavar="G",
                     help="Beneficiary group (救助对象类别), e.g. key; absent: the default plan."),
        click.option("--kind", callback=text, metavar="K",
                     help="Claim kind (就诊类型), e.g. inpatient; absent: the default plan."),
        click.option("--hospital", callback=text, metavar="H", help="Medical institution (医疗机构)."),
        click.option("--total-cost", callback=amount, metavar="YUAN",
                     help="Total medical cost (医疗总费用) in yuan, for reports."),
        click.option("--household", "household_id", callback=ident, metavar="ID",
                     help="Household id (户号), for plans capped per household."),
        click.option("--non-compliant", callback=amount, metavar="YUAN",
                     help="Non-compliant cost (非合规费用) in yuan, for a second stage that counts it."),
        click.option("--attr", "attributes", multiple=True, callback=attributes, metavar="NAME=VALUE",
                     help="A claim attribute the rules declare, e.g. level=三级 (医院等级); repeatable."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def payee_options(f: Any) -> Any:
    """The claim's channel and payee (``settle``): ``--channel`` (default ``one-stop``),
    ``--bank-account`` and ``--account-name`` (an ``application`` claim's payee; checked by the
    claim model, :class:`medaid.domain.claims.Claim`)."""
    opts = [
        click.option("--channel", type=click.Choice(["one-stop", "application"]), default="one-stop",
                     show_default=True,
                     help="Who is paid: one-stop (一站式: the hospital advanced it) or application "
                          "(事后申请: the person, by bank)."),
        click.option("--bank-account", metavar="DIGITS",
                     help="The person's bank account (8-30 digits) for --channel application; shown masked."),
        click.option("--account-name", callback=text, metavar="NAME",
                     help="The account holder's name for --channel application; shown masked."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def ledger_path() -> str:
    """``$MEDAID_LEDGER``, else :data:`DEFAULT_LEDGER` in the working folder."""
    return os.environ.get(ENV_LEDGER) or DEFAULT_LEDGER


def ledger_option(f: Any) -> Any:
    return click.option(
        "--ledger", "ledger_path", default=ledger_path, metavar="PATH|URL",
        show_default=f"$MEDAID_LEDGER or ./{DEFAULT_LEDGER}",
        help="The ledger: a file (SQLite), or a postgresql:// URL; created by the first settlement.",
    )(f)


def path_argument(f: Any) -> Any:
    """``[PATH]``: a rule file or folder (default: ``$MEDAID_RULES`` or ``./rules``)."""
    return click.argument("path", required=False, metavar="[PATH]", default=None, type=click.Path())(f)

"""CLI command ``medaid report``; added to the main group by :func:`register`.

``medaid report RESULTS`` reads a batch results file (CSV, JSONL, Parquet, XLSX) or a ledger
and prints the year's indicators as tables, or JSON with ``--json``; ``--html FILE`` also writes
a self-contained page with charts (docs/report.md).  ``--period YYYY-MM`` makes the monthly
review (the month's claims by settlement date, the year to date beside them); ``--targets FILE``
adds the evaluation against the year's plan.  Thin over :mod:`medaid.report`: the command
imports the report modules (and with them polars) when it runs, since ``medaid --help`` loads
this module to show the command's summary.
"""

from __future__ import annotations

import dataclasses
import os
import re

import click

from ..errors import MedaidError, visible_json
from ..money import parse_yuan
from ..report import BY_CHOICES
from .app import ENV_LEDGER, distinct, echo, fail, json_option, lang_option, load_book


@click.command("report")
@click.argument("results", required=False, metavar="RESULTS", type=click.Path(dir_okay=False))
@click.option("--ledger", "ledger_path", default=None, metavar="PATH|URL", type=click.Path(dir_okay=False),
              help=f"Report on a ledger (a file, or a postgresql:// URL) instead of a results file "
                   f"(or set ${ENV_LEDGER}).")
@click.option("--budget", default=None, metavar="YUAN",
              help="The year's fund in yuan, for the fund-used percentage (e.g. 8500000).")
@click.option("--year", type=int, default=None, metavar="Y",
              help="Only this benefit year (default: every year in the results, or the targets' year).")
@click.option("--period", default=None, metavar="YYYY-MM",
              help="Monthly review: the claims settled in this month, with the year to date beside them.")
@click.option("--targets", "targets_path", default=None, metavar="FILE", type=click.Path(dir_okay=False),
              help="The year's targets (TOML): adds the evaluation against the plan.")
@click.option("--by", type=click.Choice(BY_CHOICES), default="month", show_default=True,
              help="Breakdown table.")
@click.option("--rules", "rules_path", default=None, metavar="PATH", type=click.Path(dir_okay=True),
              help="Rule file or folder: name each cap pool (cap:NAME) by its title, per person or household.")
@click.option("--html", "html_path", default=None, metavar="FILE", type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML page with charts to FILE.")
@lang_option
@json_option
def report(results: str | None, ledger_path: str | None, budget: str | None, year: int | None,
           period: str | None, targets_path: str | None, by: str, rules_path: str | None,
           html_path: str | None, lang: str, as_json: bool) -> None:
    """Year-end indicators from batch results (or a ledger): person-times, persons, relief
    against the budget, self-pay ratios, major-disease share, caps, brackets, months.

    RESULTS is a results file written by `medaid batch` (.csv, .jsonl, .parquet, .xlsx); a
    .sqlite3/.db path is read as a ledger.

    \b
    Examples:
      medaid report results.csv --budget 8500000
      medaid report results.parquet --year 2024 --by hospital --html report.html --lang zh
      medaid report results.csv --json > indicators.json
      medaid report results.csv --period 2024-03 --targets targets-2024.toml
      medaid report county-results.csv --rules rules/county --lang zh
    """
    from ..io.results import is_ledger_path

    if results is None and ledger_path is None:
        ledger_path = os.environ.get(ENV_LEDGER) or None
    if results is not None and ledger_path is not None:
        raise click.UsageError("give either RESULTS or --ledger, not both")
    if results is None and ledger_path is None:
        raise click.UsageError(f"give a RESULTS file, or --ledger PATH (or set ${ENV_LEDGER})")
    use_ledger = ledger_path is not None or is_ledger_path(results or "")
    path = ledger_path if ledger_path is not None else results
    assert path is not None
    for read in (path, targets_path, rules_path) if html_path is not None else ():
        if read is not None:
            distinct(read, html_path, input_is=f"{read}, which the report reads")
    try:
        # a fund, not one claim: any amount of 64-bit fen (money.MAX_FEN bounds single amounts)
        budget_fen = None if budget is None else parse_yuan(budget, field="--budget", limit=2**63 - 1)
    except MedaidError as e:
        raise fail(e) from None
    if budget_fen == 0:
        raise click.BadParameter("must be more than 0", param_hint="--budget")
    month = None if period is None else _period(period)
    if month is not None and year is not None and year != month[0]:
        raise click.UsageError(f"--year {year} and --period {period} name different years; give one")

    from ..report.indicators import build, cap_pools_of
    from ..report.targets import load_targets
    from ..report.text import render_json, render_text

    book = None if rules_path is None else load_book(rules_path, None)
    try:
        targets = None if targets_path is None else load_targets(targets_path)
        rep = build(path, ledger=use_ledger, budget=budget_fen, year=year, by=by, period=month, targets=targets)
        if book is not None:
            rep = dataclasses.replace(rep, cap_pools=cap_pools_of(book, rep.rule_sets))
        if html_path is not None:
            from ..report.html import write_html

            write_html(rep, html_path, lang)
    except MedaidError as e:
        raise fail(e) from None
    except OSError as e:
        raise click.ClickException(f"{e.filename or html_path}: {e.strerror}") from None
    if as_json:
        click.echo(visible_json(render_json(rep, lang)), nl=False)
    else:
        echo(render_text(rep, lang), nl=False)
    if html_path is not None:
        from ..report.labels import label

        echo(label("wrote", lang).format(path=html_path), err=True)


def _period(text: str) -> tuple[int, int]:
    """``YYYY-MM`` → (year, month), or a usage error naming ``--period``."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
    if m is None or not 1 <= int(m[2]) <= 12 or int(m[1]) < 1900:
        raise click.BadParameter(f"{text!r} is not a month; write YYYY-MM, e.g. 2024-03", param_hint="--period")
    return int(m[1]), int(m[2])


#: The commands this module adds to the ``medaid`` group (see :data:`medaid.cli.app.COMMAND_MODULES`).
COMMANDS = (report,)


def register(group: click.Group) -> None:
    """Add the ``report`` command to ``group``."""
    for command in COMMANDS:
        group.add_command(command)

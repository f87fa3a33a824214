"""The ``medaid`` command: a thin click layer over the library.

Commands live in three modules, each registering its own when one of its commands is first
needed (:data:`COMMAND_MODULES`): :mod:`medaid.cli_desk` (settle, quote, reverse, history,
rules, ledger), :mod:`medaid.cli_batch` (batch, recalc) and :mod:`medaid.cli_report` (report).  Heavy libraries (polars, openpyxl) are imported inside the
commands that use them, so ``medaid --help`` and ``medaid settle`` start fast.

Exit codes: 0 success; 1 the input or rules were refused (messages on stderr name the file,
line and field); 2 usage errors (click's own).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, TypeVar

import click

from .errors import MedaidError

F = TypeVar("F", bound=Callable[..., Any])

#: Environment variables read by the CLI.
ENV_LANG = "MEDAID_LANG"
ENV_RULES = "MEDAID_RULES"
ENV_LEDGER = "MEDAID_LEDGER"


def default_rules_path() -> str:
    """``$MEDAID_RULES``, else ``./rules`` (the bundled rules when run from the project)."""
    return os.environ.get(ENV_RULES, "rules")


def rules_option(f: F) -> F:
    """``--rules PATH`` and ``--scheme ID``, shared by every command that settles."""
    f = click.option(
        "--scheme", default=None, metavar="ID",
        help="Scheme id to settle under, when the rules folder holds several schemes.",
    )(f)
    return click.option(
        "--rules", "rules_path", default=default_rules_path, show_default="$MEDAID_RULES or ./rules",
        type=click.Path(exists=False, dir_okay=True), metavar="PATH",
        help="Rule file or folder of rule files.",
    )(f)


def lang_option(f: F) -> F:
    """``--lang en|zh`` (default ``$MEDAID_LANG`` or ``en``) for labels."""
    return click.option(
        "--lang", type=click.Choice(["en", "zh"]), default=lambda: os.environ.get(ENV_LANG, "en"),
        show_default="$MEDAID_LANG or en", help="Language of labels: English or Chinese.",
    )(f)


def json_option(f: F) -> F:
    """``--json``: machine-readable output on stdout."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")(f)


def fail(err: MedaidError) -> click.ClickException:
    """Turn a library error (with its located problems) into a click error, exit code 1."""
    return click.ClickException(str(err))


def load_book(rules_path: str, scheme: str | None):  # type: ignore[no-untyped-def]
    """Load rules for a command, turning rule errors into a clean CLI failure."""
    from .rules import load_rules

    try:
        return load_rules(rules_path, scheme)
    except MedaidError as e:
        raise fail(e) from None


#: The module that adds each top-level command (see :class:`_Commands`).
COMMAND_MODULES = {
    "settle": "cli_desk", "quote": "cli_desk", "reverse": "cli_desk", "history": "cli_desk",
    "rules": "cli_desk", "ledger": "cli_desk",
    "batch": "cli_batch", "recalc": "cli_batch",
    "report": "cli_report",
}


class _Commands(click.Group):
    """The top-level group: a command's module is imported when the command is first needed
    (run, or listed by ``--help``), so a command pays only for its own module (about 10 ms less
    start-up for ``medaid batch`` than importing all three)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            from importlib import import_module

            import_module(f".{COMMAND_MODULES[cmd_name]}", __package__).register(self)
        return self.commands.get(cmd_name)


@click.group(cls=_Commands,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="medaid")
def main() -> None:
    """medaid: exact medical-aid relief (医疗救助) on compliant self-pay.

    \b
    Desk:   medaid settle --person P1 --self-pay 30000 --date 2024-05-03
    Batch:  medaid batch claims.csv -o results.csv
    Report: medaid report results.csv --html report.html
    Rules:  medaid rules check rules/
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``medaid`` command: a thin click layer over the library.

Commands live in four modules, each registering its own when one of its commands is first
needed (:data:`COMMAND_MODULES`): :mod:`medaid.cli.desk` (settle, quote, reverse, history,
rules, ledger), :mod:`medaid.cli.batch` (batch, recalc), :mod:`medaid.cli.report` (report) and
:mod:`medaid.cli.service` (serve, tokens).  Heavy libraries (polars, openpyxl, the service's
FastAPI) are imported inside the commands that use them, so ``medaid --help`` and ``medaid
settle`` start fast.

Exit codes: 0 success; 1 the input or rules were refused (messages on stderr name the file,
line and field); 2 usage errors (click's own).

With ``--json`` a failure is one JSON object on stdout (:func:`error_json`: ``error``, ``code``,
``exit_code``, ``message``, ``problems`` with ``file``, ``line``, ``field`` and ``message``),
usage errors included, with the same exit code.  Text written to the terminal goes through
:func:`echo` (and JSON through :func:`json_text`): control characters and bidirectional
overrides coming from data are shown escaped (``\x1b``, ``\u202e``), never sent raw.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import MedaidError, Problem, visible, visible_json

if TYPE_CHECKING:  # pragma: no cover
    from ..domain.rules import RuleBook

F = TypeVar("F", bound=Callable[..., Any])

#: Environment variables read by the CLI.
ENV_LANG = "MEDAID_LANG"
ENV_RULES = "MEDAID_RULES"
ENV_LEDGER = "MEDAID_LEDGER"
ENV_DEBUG = "MEDAID_DEBUG"


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


def echo(text: object = "", *, err: bool = False, nl: bool = True) -> None:
    """``click.echo`` for text that may hold data: control characters shown escaped
    (:func:`medaid.errors.visible`)."""
    click.echo(visible(str(text)), err=err, nl=nl)


def json_text(obj: object) -> str:
    """``obj`` as indented JSON (Chinese kept readable), safe on a terminal."""
    import json

    return visible_json(json.dumps(obj, ensure_ascii=False, indent=2))


class Failure(click.ClickException):
    """A refusal (exit code 1) carrying the library's located problems, for ``--json``;
    ``fields`` are extra members of the JSON error object."""

    def __init__(self, message: str, problems: "tuple[Problem, ...] | list[Problem]" = (),
                 **fields: object) -> None:
        super().__init__(message)
        self.problems = tuple(problems)
        self.fields = fields


def distinct(input_path: str, *outputs: str | None, input_is: str = "the input") -> None:
    """Refuse (a usage error) an output that would replace the input or another output (the
    same file by any name: a link, a relative path); ``input_is``: how the message names the
    input."""
    seen = {Path(input_path).resolve(): input_is}
    for o in outputs:
        if o is None:
            continue
        r = Path(o).resolve()
        if r in seen:
            raise click.UsageError(f"{o} would overwrite {seen[r]}; choose another file")
        seen[r] = o


def fail(err: MedaidError) -> click.ClickException:
    """Turn a library error (with its located problems) into a click error, exit code 1."""
    return Failure(str(err), err.problems)


def _problem_json(p: Problem) -> dict[str, object]:
    return {"file": p.source, "line": p.line, "field": p.field, "message": p.message}


def error_json(e: click.ClickException) -> dict[str, object]:
    """The JSON object a failure prints under ``--json``: ``error: true``; ``code``:
    ``usage`` (a bad or missing option or argument, exit code 2), ``refused`` (the input,
    rules or ledger were refused, exit code 1) or ``failed`` (anything else, e.g. a file that
    cannot be written); ``exit_code``; ``message`` (the text the terminal would show);
    ``problems``: each with ``file``, ``line``, ``field`` (a field, or the option) and
    ``message``."""
    problems: list[dict[str, object]]
    if isinstance(e, click.UsageError):
        field = None
        if isinstance(e, click.BadParameter):
            hint = e.param_hint
            if hint is None and e.param is not None:
                hint = e.param.opts[0] if getattr(e.param, "opts", None) else e.param.name
            field = " / ".join(hint) if isinstance(hint, (list, tuple)) else hint
        elif isinstance(e, (click.NoSuchOption, click.BadOptionUsage)):
            field = e.option_name
        problems = [{"file": None, "line": None, "field": field and str(field).strip("'\""),
                     "message": e.format_message()}]
        code = "usage"
    elif getattr(e, "problems", None) is not None:  # a Failure (also when cli/app.py is __main__)
        problems = [_problem_json(p) for p in getattr(e, "problems")] or [  # noqa: B009 (for mypy)
            {"file": None, "line": None, "field": None, "message": e.format_message()}]
        code = "refused"
    else:
        problems = [{"file": None, "line": None, "field": None, "message": e.format_message()}]
        code = "failed"
    out: dict[str, object] = {"error": True, "code": code, "exit_code": e.exit_code,
                              "message": e.format_message(), "problems": problems}
    out.update(getattr(e, "fields", {}))
    return out


class InternalError(click.ClickException):
    """A defect of medaid's own (exit code 3): named by its kind only, since its text may hold
    personal data; ``MEDAID_DEBUG=1`` shows the traceback instead."""

    exit_code = 3

    def __init__(self, e: BaseException) -> None:
        super().__init__(
            f"internal error ({type(e).__name__}); nothing more was done. This is a defect of "
            f"medaid: please report it with the command you ran (run again with {ENV_DEBUG}=1 "
            "to see where it happened)")


def undecodable(args: "list[str]") -> None:
    """Refuse a command line holding bytes that are not text in the terminal's encoding (they
    reach Python as lone surrogates and could not be recorded), naming the option or the
    argument's position."""
    for i, a in enumerate(args):
        if any("\udc80" <= ch <= "\udcff" for ch in a):
            if a.startswith("--") and "=" in a:
                where = a.split("=", 1)[0]
            elif i > 0 and args[i - 1].startswith("-"):
                where = args[i - 1]
            else:
                where = f"argument {i + 1}"
            raise click.BadParameter("is not valid text (bytes that are not UTF-8); retype it or "
                                     "check the terminal's encoding", param_hint=where)


def wants_json(args: "list[str]") -> bool:
    """Whether a command line asks for ``--json`` (before any ``--``)."""
    for a in args:
        if a == "--":
            return False
        if a == "--json":
            return True
    return False


class _Shown(click.ClickException):
    """A failure as the user sees it: under ``--json`` the object of :func:`error_json` on
    stdout; else click's own message (and usage) on stderr, with data made visible."""

    def __init__(self, error: click.ClickException, as_json: bool) -> None:
        super().__init__(error.message)
        self.error, self.as_json = error, as_json
        # click declares exit_code a class variable; click's main() exits with the instance's
        self.exit_code = error.exit_code  # type: ignore[misc]

    def show(self, file: object = None) -> None:
        if self.as_json:
            click.echo(json_text(error_json(self.error)))
            return
        # click declares message Final; it is the text show() prints, made visible just before
        self.error.message = visible(self.error.message)  # type: ignore[misc]
        self.error.show()


def load_book(rules_path: str, scheme: str | None) -> RuleBook:
    """Load rules for a command, turning rule errors into a clean CLI failure."""
    from ..domain.rules import load_rules

    try:
        return load_rules(rules_path, scheme)
    except MedaidError as e:
        raise fail(e) from None


#: The module that adds each top-level command (see :class:`_Commands`).
COMMAND_MODULES = {
    "settle": "desk", "quote": "desk", "reverse": "desk", "history": "desk",
    "rules": "desk", "ledger": "desk",
    "batch": "batch", "recalc": "batch",
    "report": "report",
    "serve": "service", "tokens": "service",
    "period": "periods",
}


class _Commands(click.Group):
    """The top-level group: a command's module is imported when the command is first needed
    (run, or listed by ``--help``), so a command pays only for its own module (about 10 ms less
    start-up for ``medaid batch`` than importing all three)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            undecodable(list(args))
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.ClickException as e:
            raise _Shown(e, wants_json(list(args))) from None
        ctx.meta["medaid.json"] = wants_json(list(args))
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a failure is shown as :class:`_Shown` says (JSON under ``--json``)."""
        try:
            return super().invoke(ctx)
        except _Shown:
            raise
        except click.ClickException as e:
            raise _Shown(e, ctx.meta.get("medaid.json", False)) from None
        except (click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as e:  # noqa: BLE001 - the last resort: never a traceback to a user
            if os.environ.get(ENV_DEBUG):
                raise
            raise _Shown(InternalError(e), ctx.meta.get("medaid.json", False)) from None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
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

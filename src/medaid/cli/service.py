"""CLI commands of the county settlement service: ``serve`` (run it on uvicorn) and ``tokens``
(``add``, ``list``, ``revoke``: who may call it).  docs/service.md.

Only click is imported at start-up; the service's packages (FastAPI, uvicorn) are imported by
``serve`` when it runs, and ``tokens`` needs none of them.
"""

from __future__ import annotations

import os
from typing import Any

import click

from .app import fail, json_option, rules_option
from .options import ledger_option

ROLES = ("desk", "reviewer", "admin")


def _ledger(path: str) -> Any:
    from ..errors import MedaidError
    from ..service.store import open_ledger

    try:
        return open_ledger(path)
    except MedaidError as e:
        raise fail(e) from None


@click.command()
@click.option("--ledger", "ledger_path", default=None, metavar="URL|PATH",
              help="The ledger database: an SQLite file (created if absent) or a postgresql:// URL. "
                   "[default: $MEDAID_LEDGER or ./medaid-ledger.sqlite3]")
@rules_option
@click.option("--host", default="127.0.0.1", show_default=True, metavar="ADDRESS",
              help="Address to listen on (127.0.0.1: this machine only; put nginx with TLS in front).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), metavar="PORT",
              help="TCP port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256), metavar="N",
              help="Worker processes (uvicorn); they share the ledger database, nothing else.")
def serve(ledger_path: str | None, rules_path: str, scheme: str | None, host: str, port: int, workers: int) -> None:
    """Run the county settlement service: the JSON API (/v1, /openapi.json), the clerk's page (/desk).

    Loads the rules and opens (and migrates) the ledger first: a refusal stops here with
    exit code 1.  Listens on 127.0.0.1 unless told otherwise.  Stop it with Ctrl+C or SIGTERM.

    \b
    Example:
      medaid serve --ledger /srv/medaid/county.sqlite3 --rules /srv/medaid/rules --workers 3
    """
    from .app import load_book
    from .options import ledger_path as default_ledger

    try:
        import uvicorn

        from ..service.logs import log_config
        from ..service.store import Settings
    except ImportError as e:
        raise click.ClickException(
            f"the service needs its packages ({e.name} is missing): pip install 'medaid[service]'") from None
    target = ledger_path or default_ledger()
    if "://" not in target:
        target = os.path.abspath(target)
    rules = os.path.abspath(rules_path)
    book = load_book(rules, scheme)
    try:
        book.versions()
    except Exception as e:  # several schemes and no --scheme
        raise click.UsageError(str(e)) from None
    _ledger(target).close()
    os.environ.update(Settings(target, rules, scheme).env())
    uvicorn.run("medaid.service.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_config=log_config(), server_header=False, proxy_headers=True)


@click.group()
def tokens() -> None:
    """Bearer tokens of the settlement service: add, list, revoke.

    Only a hash of each token is stored (in the ledger database); a token is printed once,
    when it is added.

    \b
    Examples:
      medaid tokens add --hospital "County People's Hospital" --role desk
      medaid tokens list
      medaid tokens revoke t3f9a2c41b0
    """


@tokens.command("add")
@click.option("--hospital", default=None, metavar="H", help="The desk's hospital (required for a desk token).")
@click.option("--role", type=click.Choice(ROLES), required=True,
              help="desk: settle, quote, reverse its hospital's claims, read history; reviewer: read; "
                   "admin: everything.")
@ledger_option
@json_option
def tokens_add(hospital: str | None, role: str, ledger_path: str, as_json: bool) -> None:
    """Add a token: prints its secret (stdout) once; only its hash is kept.

    \b
    Example:
      medaid tokens add --hospital "County People's Hospital" --role desk > desk.token
    """
    from ..errors import MedaidError
    from ..service.tokens import TokenStore
    from .app import echo, json_text

    with _ledger(ledger_path) as lg:
        try:
            token, secret = TokenStore(lg).add(role, hospital)
        except MedaidError as e:
            raise fail(e) from None
    if as_json:
        click.echo(json_text({**token.to_dict(), "token": secret}))
        return
    echo(f"Token {token.id} added: {role}" + (f" of {token.hospital}" if token.hospital else "")
         + ". Its secret follows, shown this once (only its hash is stored):", err=True)
    click.echo(secret)


@tokens.command("list")
@ledger_option
@json_option
def tokens_list(ledger_path: str, as_json: bool) -> None:
    """List the tokens (never their secrets).

    \b
    Example:
      medaid tokens list
    """
    from ..report.explain import table
    from ..service.tokens import TokenStore
    from .app import echo, json_text

    with _ledger(ledger_path) as lg:
        found = TokenStore(lg).list()
    if as_json:
        click.echo(json_text([t.to_dict() for t in found]))
        return
    echo(table([[t.id, t.role, t.hospital or "", t.created_at, t.revoked_at or ""] for t in found],
               ["Token", "Role", "Hospital", "Added", "Revoked"]))


@tokens.command("revoke")
@click.argument("token_id", metavar="ID")
@ledger_option
def tokens_revoke(token_id: str, ledger_path: str) -> None:
    """Revoke a token: refused from its next request on, its web sessions ended.

    \b
    Example:
      medaid tokens revoke t3f9a2c41b0
    """
    from ..errors import MedaidError
    from ..service.tokens import TokenStore
    from .app import echo

    with _ledger(ledger_path) as lg:
        try:
            token = TokenStore(lg).revoke(token_id.strip())
        except MedaidError as e:
            raise fail(e) from None
    echo(f"Token {token.id} revoked at {token.revoked_at}.")


#: The commands this module adds to the ``medaid`` group (see :data:`medaid.cli.app.COMMAND_MODULES`).
COMMANDS = (serve, tokens)


def register(group: click.Group) -> None:
    """Add the service commands to ``group``: serve, tokens."""
    for command in COMMANDS:
        group.add_command(command)

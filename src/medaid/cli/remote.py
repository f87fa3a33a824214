"""The desk commands as clients of the county settlement service (``--server URL`` or
``$MEDAID_SERVER``, with the desk's token in ``$MEDAID_TOKEN``): the same options, the same
output and the same exit codes as against a ledger file (docs/service.md#the-desk-commands-as-clients).

The server does the work (its rules, its ledger); this module sends the command's options as
JSON (amounts as yuan text), prints what the server sends back through the desk's own printers
(:mod:`medaid.cli.desk`), and turns a refusal (problem+json) into the error the local command
would give: ``usage`` → the option named (exit 2), ``refused`` → the located problems (exit 1),
``failed`` → an internal error (exit 3).  A settlement is idempotent on its claim id, so the
client makes the claim id when none is given (as the desk does) and retries a settlement whose
answer was lost (a dropped connection, a restarted worker, a busy ledger): the retry returns
the original result.  Only the standard library is used (:mod:`urllib.request`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from typing import TYPE_CHECKING, Any

import click

from .app import Failure, echo, json_text

if TYPE_CHECKING:  # pragma: no cover
    from ..ledger.ledger import Entry

ENV_SERVER = "MEDAID_SERVER"
ENV_TOKEN = "MEDAID_TOKEN"
#: Tries of an idempotent request whose answer was lost, and the first pause between them.
TRIES, PAUSE = 6, 0.2
TIMEOUT = 60.0

#: The command-line option of each request field, for a refusal that names the field.
OPTIONS = {
    "person_id": "--person", "self_pay": "--self-pay", "date": "--date", "claim_id": "--claim-id",
    "group": "--group", "kind": "--kind", "group/kind": "--group/--kind", "hospital": "--hospital",
    "total_cost": "--total-cost", "ytd_self_pay": "--ytd-self-pay", "ytd_relief": "--ytd-relief",
    "reason": "--reason", "year": "--year", "household_id": "--household", "non_compliant": "--non-compliant",
    "attributes": "--attr",
}


def server_option(f: Any) -> Any:
    """``--server URL`` (``$MEDAID_SERVER``): send the command to the county service."""
    return click.option(
        "--server", envvar=ENV_SERVER, default=None, metavar="URL",
        help=f"Send the command to the county settlement service at URL (token: ${ENV_TOKEN}) "
             "instead of a ledger file.")(f)


class ServerFailure(click.ClickException):
    """The server failed (its internal error, exit code 3, as the local command's)."""

    exit_code = 3


class _Lost(Exception):
    """No answer: the request may or may not have been done."""


class Client:
    """Requests to one server with the token of ``$MEDAID_TOKEN``."""

    def __init__(self, url: str, lang: str) -> None:
        token = os.environ.get(ENV_TOKEN, "").strip()
        if not token:
            raise click.UsageError(f"--server needs the desk's token in ${ENV_TOKEN} (from 'medaid tokens add')")
        self.url, self.lang, self.token = url.rstrip("/"), lang, token

    def post(self, path: str, body: dict[str, Any], *, retry: bool = False) -> dict[str, Any]:
        """POST ``body`` as JSON; the JSON answer, or the refusal as the local command's error.
        ``retry``: the request is idempotent, so send it again when its answer was lost."""
        pause = PAUSE
        for attempt in range(1, TRIES + 1):
            try:
                return self._once(path, body)
            except _Lost as lost:
                if not retry or attempt == TRIES:
                    raise Failure(f"{self.url}: no answer from the medaid service ({lost}); "
                                  + ("nothing was sent" if not retry else "it may have been recorded: run the same "
                                     "command again with the same --claim-id (it is idempotent)")) from None
            time.sleep(pause)
            pause *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        from .. import __version__

        req = urllib.request.Request(
            f"{self.url}{path}?lang={self.lang}", data=json.dumps(body).encode("utf-8"), method="POST",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                     "Accept": "application/json", "User-Agent": f"medaid/{__version__}"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", "replace")
            if e.code == 503:
                raise _Lost(f"HTTP 503: {_detail(text)}") from None
            raise _refusal(e.code, e.headers.get("content-type", ""), text) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise _Lost(str(reason) or type(reason).__name__) from None


def _detail(text: str) -> str:
    try:
        return str(json.loads(text).get("detail", text))
    except (ValueError, AttributeError):
        return text[:200]


def _refusal(status: int, content_type: str, text: str) -> click.ClickException:
    """The local command's error for the server's refusal."""
    from ..errors import Problem

    try:
        d = json.loads(text) if "json" in content_type else None
    except ValueError:
        d = None
    if not isinstance(d, dict) or "problems" not in d:
        return Failure(f"the medaid service answered HTTP {status}: {text[:200]}")
    problems = [Problem(p.get("message", ""), p.get("source"), p.get("line"), p.get("field")) for p in d["problems"]]
    if d.get("code") == "usage":
        first = problems[0] if problems else Problem(str(d.get("detail", "")))
        option = OPTIONS.get(first.field or "") or OPTIONS.get((first.field or "").partition(".")[0])
        if option is None:
            return click.UsageError(str(d.get("detail", first.message)))
        return click.BadParameter(first.message, param_hint=option)
    if d.get("code") == "failed":
        return ServerFailure(str(d.get("detail", "")))
    return Failure("\n".join(str(p) for p in problems), problems)


def _yuan(fen: int | None) -> str | None:
    from ..money import fen_to_decimal

    return None if fen is None else str(fen_to_decimal(fen))


def _claim_body(kw: dict[str, Any], claim_id: str | None, day: dt.date) -> dict[str, Any]:
    body = {"person_id": kw["person_id"], "self_pay": _yuan(kw["self_pay"]), "date": day.isoformat(),
            "claim_id": claim_id, "group": kw["group"], "kind": kw["kind"], "hospital": kw["hospital"],
            "total_cost": _yuan(kw["total_cost"]), "channel": kw.get("channel"),
            "bank_account": kw.get("bank_account"), "account_name": kw.get("account_name"),
            "household_id": kw.get("household_id"), "non_compliant": _yuan(kw.get("non_compliant")),
            "attributes": kw.get("attributes") or None}
    return {k: v for k, v in body.items() if v is not None}


def _dump(d: dict[str, Any]) -> None:
    click.echo(json_text(d))


# --------------------------------------------------------------------------------------------
# the commands


def settle(server: str, lang: str, as_json: bool, kw: dict[str, Any]) -> None:
    """``medaid settle --server``: as the desk prints a settlement."""
    from ..ledger.ledger import new_claim_id
    from ..report.explain import label

    day = kw["date"] or dt.date.today()
    claim_id = kw["claim_id"] or new_claim_id(day)
    d = Client(server, lang).post("/v1/settle", _claim_body(kw, claim_id, day), retry=True)
    d["claim_id_generated"] = kw["claim_id"] is None
    text = d.pop("explanation")["text"]
    if as_json:
        _dump(d)
        return
    if d["claim_id_generated"]:
        echo(label(lang, "generated", id=d["claim_id"]))
    if d["replayed"]:
        echo(label(lang, "replayed"))
    echo(text)
    echo(label(lang, "recorded", seq=d["seq"], at=d["recorded_at"]))


def quote(server: str, lang: str, as_json: bool, kw: dict[str, Any], ytd: tuple[int | None, int | None]) -> None:
    """``medaid quote --server``: the server's ledger (or the given year to date)."""
    body = _claim_body(kw, kw["claim_id"], kw["date"] or dt.date.today())
    if ytd[0] is not None:
        body.update(ytd_self_pay=_yuan(ytd[0]), ytd_relief=_yuan(ytd[1]))
    d = Client(server, lang).post("/v1/quote", body, retry=True)
    text = d.pop("explanation")["text"]
    if as_json:
        _dump(d)
    else:
        echo(text)


def reverse(server: str, lang: str, claim_id: str, reason: str) -> "tuple[Entry, list[str], list[Entry]]":
    """``medaid reverse --server``: the reversal row, the claims settled after it that were not
    re-settled, and the adjustments it made."""
    from ..ledger.schema import Entry

    d = Client(server, lang).post("/v1/reverse", {"claim_id": claim_id, "reason": reason})
    return (Entry.from_dict(d), list(d["settled_after_not_recalculated"]),
            [Entry.from_dict(a) for a in d.get("adjustments", [])])


def history(server: str, lang: str, person: str, year: int | None) -> "list[Entry]":
    """``medaid history --server``: the person's rows."""
    from ..ledger.schema import Entry

    body: dict[str, Any] = {"person_id": person} if year is None else {"person_id": person, "year": year}
    d = Client(server, lang).post("/v1/history", body, retry=True)
    return [Entry.from_dict(e) for e in d["entries"]]

"""Errors as ``application/problem+json`` (RFC 9457), with the located problems.

Every refusal of the service is one JSON object: ``type`` (``urn:medaid:problem:<kind>``),
``title``, ``status``, ``detail`` (the problems as one text), ``code`` (``usage``, ``refused``
or ``failed``: what the desk commands' ``--json`` errors call it, and what their exit codes 2,
1 and 3 follow) and ``problems``: each with ``field`` (the request field, e.g. ``self_pay``),
``message``, ``source`` and ``line`` (:class:`medaid.errors.Problem`).  Nothing is recorded
when a request is refused.  An internal error is named by its kind only (its text may hold
personal data), never with a traceback (docs/service.md#errors).

:func:`from_library` is the one mapping of the library's errors to HTTP statuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import MedaidError, Problem

MEDIA_TYPE = "application/problem+json"

#: kind → (status, title, code)
KINDS: dict[str, tuple[int, str, str]] = {
    "bad-request": (400, "The request cannot be read", "usage"),
    "invalid-request": (422, "The request is not valid", "usage"),
    "unplaced-claim": (422, "No rule version or plan covers the claim", "usage"),
    "unauthorized": (401, "A valid bearer token is needed", "refused"),
    "forbidden": (403, "The token's role or hospital does not allow this", "refused"),
    "not-found": (404, "Not found", "refused"),
    "conflict": (409, "Refused by the ledger", "refused"),
    "refused": (422, "Refused", "refused"),
    "busy": (503, "The ledger is busy", "refused"),
    "unavailable": (503, "The ledger cannot be opened", "refused"),
    "method-not-allowed": (405, "Method not allowed", "usage"),
    "unsupported-media-type": (415, "Send JSON", "usage"),
    "internal": (500, "Internal error", "failed"),
}


class ApiProblem(Exception):
    """A refusal to send as problem+json."""

    def __init__(self, kind: str, problems: Iterable[Problem] | Problem | str, *,
                 headers: dict[str, str] | None = None, status: int | None = None) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.kind = kind
        self.problems = tuple(problems)
        self.headers = headers or {}
        self.status = status or KINDS[kind][0]
        super().__init__("; ".join(str(p) for p in self.problems))

    def body(self) -> dict[str, Any]:
        _, title, code = KINDS[self.kind]
        return {
            "type": f"urn:medaid:problem:{self.kind}",
            "title": title,
            "status": self.status,
            "detail": "\n".join(str(p) for p in self.problems),
            "code": code,
            "problems": [
                {"field": p.field, "message": p.message, "source": p.source, "line": p.line}
                for p in self.problems
            ],
        }


def from_library(e: MedaidError, ledger_source: str | None = None) -> ApiProblem:
    """The problem for a library error: a claim that no version or plan covers (422), a claim
    id already settled with other content or a claim already reversed (409), an unknown claim
    (404), a busy ledger (503, ``Retry-After``), anything else the ledger refuses (409).  A
    problem located at the ledger file names ``ledger`` instead of the server's path."""
    from ..errors import ClaimError, RuleError

    problems = tuple(
        Problem(p.message, "ledger", p.line, p.field) if ledger_source and p.source == ledger_source else p
        for p in e.problems
    )
    first = problems[0].message if problems else ""
    if isinstance(e, (ClaimError, RuleError)):
        return ApiProblem("unplaced-claim", problems)
    if "busy" in first:
        return ApiProblem("busy", problems, headers={"Retry-After": "1"})
    if first == "no such claim in the ledger":
        return ApiProblem("not-found", problems)
    if first.startswith("a reversal needs a reason"):
        return ApiProblem("invalid-request", problems)
    return ApiProblem("conflict", problems)


def located(err: Any) -> Problem:
    """A pydantic error of a request (or of a form) as a problem naming its field
    (``self_pay``; the query's ``lang``); a body that is not a JSON object is said so."""
    loc = [str(x) for x in err.get("loc", ())]
    where, path = (loc[0], loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else ("body", loc)
    kind = err.get("type", "")
    if kind == "json_invalid":
        return Problem("the body is not valid JSON", field=None)
    if kind == "missing" and not path:
        return Problem("a JSON body is needed", field=None)
    if kind == "model_attributes_type" or (kind == "dict_type" and not path):
        return Problem("the body must be a JSON object", field=None)
    message = err.get("msg", "is not valid")
    if kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        message = "is not a field of this request"
    return Problem(message, field=".".join(path) or where)

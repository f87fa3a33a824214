"""A client that knows only the service's OpenAPI document, as a hospital's Java or .NET billing
system generated from it would: it fetches ``/openapi.json`` from a running ``medaid serve`` and
finds in it every operation's path and method, its request body's content type and schema, its
security scheme (how to send the token), and the statuses, content types and schemas of its
answers.  It sends only bodies the document's schema allows (an undocumented field or a JSON number
for money never leaves it), over plain HTTP (the standard library's ``urllib``), and checks every
answer against the document with an independent JSON Schema validator (``jsonschema_rs``): the
status is documented for the operation, and so is the content type, and the body matches its
schema.  Nothing of medaid is imported by the client: not its models, not its own HTTP client.

The county's clerks settle, quote, look up and reverse with it, on an SQLite file and on
PostgreSQL (tests/conftest.py).  Figures worked by hand in tests/service_support.py: 30,000 yuan
→ 23,300.00 (the patient pays 6,700.00); 100,000 → 87,800.00 by the brackets, of which the annual
cap of 100,000 leaves 76,700.00 after the first stay.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("uvicorn", reason="the service needs the service extra: pip install 'medaid[service]'")

import jsonschema_rs  # noqa: E402 - the test extra's (schemathesis validates with it too)

try:
    from service_support import HOSPITAL_A, HOSPITAL_B, make_tokens, server
except ImportError:  # pragma: no cover - tests collected as a package
    from tests.service_support import HOSPITAL_A, HOSPITAL_B, make_tokens, server

PERSON = "P-OPENAPI-1"
#: Straight to the service (a billing system beside it), whatever proxy the environment names.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class UndocumentedAnswer(AssertionError):
    """The service answered with a status or content type its document does not list."""


class OpenApiClient:
    """Calls a service's operations by what its OpenAPI document says, and nothing else."""

    def __init__(self, base: str, token: str | None = None, doc: dict[str, Any] | None = None) -> None:
        self.base, self.token = base, token
        if doc is None:  # (the document is served to a token, as every route but the health check)
            ask = urllib.request.Request(f"{base}/openapi.json",
                                         headers={"Authorization": f"Bearer {token}"} if token else {})
            with OPENER.open(ask, timeout=30) as r:
                doc = json.load(r)
        self.doc: dict[str, Any] = doc

    def as_(self, token: str | None) -> OpenApiClient:
        """The same client sending another token (or none)."""
        return OpenApiClient(self.base, token, self.doc)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.doc
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def _validator(self, schema: dict[str, Any]) -> Any:
        """A validator of ``schema``, its ``#/components/...`` references resolved in the document."""
        return jsonschema_rs.Draft202012Validator({"components": self.doc["components"], **schema},
                                                  validate_formats=True)

    def _headers(self, op: dict[str, Any]) -> dict[str, str]:
        headers: dict[str, str] = {}
        for requirement in op.get("security", []):
            for name in requirement:
                scheme = self.doc["components"]["securitySchemes"][name]
                assert (scheme["type"], scheme["scheme"].lower()) == ("http", "bearer"), scheme
                if self.token is not None:
                    headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             **path_params: str) -> tuple[int, Any]:
        """Send ``body`` to the operation ``method path`` (a KeyError if the document has none);
        the answer's status and its JSON, checked against the document."""
        op = self.doc["paths"][path][method.lower()]
        headers = self._headers(op)
        data = None
        if body is not None:
            [(ctype, media)] = op["requestBody"]["content"].items()
            fields = self._resolve(media["schema"]).get("properties", {})
            assert set(body) <= set(fields), f"fields not in the document: {set(body) - set(fields)}"
            self._validator(media["schema"]).validate(body)  # jsonschema_rs.ValidationError: never sent
            data, headers["Content-Type"] = json.dumps(body).encode(), ctype
        else:
            assert not op.get("requestBody", {}).get("required"), f"{method} {path} needs a body"
        for p in op.get("parameters", []):
            if p["in"] == "path":
                self._validator(p["schema"]).validate(path_params[p["name"]])
        url = self.base + path.format(**path_params)
        request = urllib.request.Request(url, data=data, method=method.upper(), headers=headers)
        try:
            with OPENER.open(request, timeout=30) as r:
                status, ctype, raw = r.status, r.headers.get_content_type(), r.read()
        except urllib.error.HTTPError as e:
            status, ctype, raw = e.code, e.headers.get_content_type(), e.read()
        answers = op["responses"].get(str(status)) or op["responses"].get("default")
        if answers is None:
            raise UndocumentedAnswer(f"{method} {path} answered {status}, not in {sorted(op['responses'])}")
        if ctype not in answers.get("content", {}):
            raise UndocumentedAnswer(f"{method} {path} answered {status} as {ctype}, not {sorted(answers['content'])}")
        payload = json.loads(raw)
        self._validator(answers["content"][ctype]["schema"]).validate(payload)
        return status, payload


def _stay(cid: str, self_pay: str) -> dict[str, str]:
    return {"claim_id": cid, "person_id": PERSON, "self_pay": self_pay, "date": "2024-05-03",
            "group": "key", "kind": "inpatient"}


def test_a_client_built_from_the_openapi_document_alone_settles_quotes_looks_up_and_reverses(db, tmp_path):
    tokens = make_tokens(db)
    with server(db.location, log=tmp_path / "serve.log") as srv:
        api = OpenApiClient(srv.url, tokens.desk_a).as_(None)  # (the document is read with a token)
        a, b = api.as_(tokens.desk_a), api.as_(tokens.desk_b)
        assert api.call("GET", "/v1/health")[0] == 200  # the one operation without a security scheme

        # hospital A settles a 30,000 stay: 23,300.00, decimal text a BigDecimal takes
        status, first = a.call("POST", "/v1/settle", _stay("OA1", "30000"))
        assert status == 201
        assert (first["relief"], first["patient_pays"], first["hospital"]) == ("23300.00", "6700.00", HOSPITAL_A)
        assert Decimal(first["relief"]) + Decimal(first["patient_pays"]) == Decimal("30000")
        # sent again (an answer lost on the way): the original, nothing recorded
        status, again = a.call("POST", "/v1/settle", _stay("OA1", "30000"))
        assert (status, again["replayed"], again["seq"], again["relief"]) == (200, True, first["seq"], "23300.00")

        # hospital B quotes, then settles, a 100,000 stay of the same person: the cap leaves 76,700.00
        status, quote = b.call("POST", "/v1/quote", _stay("OB1", "100000"))
        assert (status, quote["relief"], quote["recorded"]) == (200, "76700.00", False)
        status, second = b.call("POST", "/v1/settle", _stay("OB1", "100000"))
        assert (status, second["relief"], second["bracket_relief"], second["capped_by"], second["hospital"]) == (
            201, "76700.00", "87800.00", "annual_cap", HOSPITAL_B)

        status, history = b.call("POST", "/v1/history", {"person_id": PERSON})
        assert status == 200
        assert [(e["claim_id"], e["hospital"]) for e in history["entries"]] == [("OA1", HOSPITAL_A),
                                                                               ("OB1", HOSPITAL_B)]
        assert [(p["ytd_relief"], p["annual_cap_left"]) for p in history["pools"]] == [("100000.00", "0.00")]

        # B reverses its own stay; A's stays
        status, reversal = b.call("POST", "/v1/reverse", {"claim_id": "OB1", "reason": "wrong stay"})
        assert (status, reversal["entry"], reversal["reverses"]) == (201, "reversal", second["seq"])
        status, history = a.call("POST", "/v1/history", {"person_id": PERSON})
        assert [(p["ytd_relief"], p["annual_cap_left"]) for p in history["pools"]] == [("23300.00", "76700.00")]
        assert a.call("GET", "/v1/rules")[0] == 200

        # refusals come back as the documented problems
        assert a.call("POST", "/v1/settle", {**_stay("OA2", "30000"), "date": "2014-05-03"})[0] == 422
        assert b.call("POST", "/v1/reverse", {"claim_id": "OB1", "reason": "again"})[0] == 409
        assert b.call("POST", "/v1/reverse", {"claim_id": "OA1", "reason": "not ours"})[0] == 403
        assert api.as_(None).call("POST", "/v1/settle", _stay("OA3", "30000"))[0] == 401
        assert a.call("GET", "/v1/ledger/verify")[0] == 403
        status, verified = api.as_(tokens.admin).call("GET", "/v1/ledger/verify")
        assert (status, verified["ok"]) == (200, True)

        # what the document forbids the client never sends: money as a JSON number, a field it lacks
        with pytest.raises(jsonschema_rs.ValidationError):
            a.call("POST", "/v1/settle", {**_stay("OA4", "30000"), "self_pay": 30000})
        with pytest.raises(AssertionError, match="fields not in the document"):
            a.call("POST", "/v1/settle", {**_stay("OA5", "30000"), "selfpay": "1"})
    # the ledger holds the two stays and the reversal (and its adjustments, none here) only
    assert [r[0] for r in db.rows("SELECT claim_id FROM entries ORDER BY seq")] == ["OA1", "OB1", "OB1"]


def test_the_client_rejects_an_answer_the_document_does_not_describe(tmp_path):
    """Guard for the client itself (on one backend: it is the client under test): an answer's
    status or body outside the document is caught."""
    county = tmp_path / "county.sqlite3"
    tokens = make_tokens(county)
    with server(county) as srv:
        api = OpenApiClient(srv.url, tokens.desk_a)
        doc = json.loads(json.dumps(api.doc))
        doc["paths"]["/v1/settle"]["post"]["responses"].pop("201")
        with pytest.raises(UndocumentedAnswer, match="answered 201"):
            OpenApiClient(srv.url, tokens.desk_a, doc).call("POST", "/v1/settle", _stay("G1", "30000"))
        doc = json.loads(json.dumps(api.doc))
        doc["components"]["schemas"]["SettlementOut"]["properties"]["relief"] = {"type": "number"}
        with pytest.raises(jsonschema_rs.ValidationError):
            OpenApiClient(srv.url, tokens.desk_a, doc).call("POST", "/v1/settle", _stay("G1", "30000"))

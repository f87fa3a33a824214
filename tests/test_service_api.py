"""The service's JSON API through FastAPI's TestClient: every endpoint with no token, a revoked
token, another hospital's token and a role that may not; the figures (worked by hand in
tests/service_support.py); idempotency on claim id; money as text; problems as
application/problem+json naming their fields; the desk column of every row written; the short
path of ``POST /v1/settle`` answering exactly as its route does.  Every test
runs on both ledger backends (an SQLite file and a PostgreSQL schema: the ``db`` fixture of
tests/conftest.py)."""

from __future__ import annotations

import hashlib
import json

import pytest

pytest.importorskip("fastapi", reason="the service needs the service extra: pip install 'medaid[service]'")

import warnings  # noqa: E402

with warnings.catch_warnings():  # starlette's TestClient asks for httpx2; httpx serves
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from medaid.ledger import open_ledger  # noqa: E402
from medaid.report.explain import explain  # noqa: E402
from medaid.service import models  # noqa: E402
from medaid.service.app import FastSettle, create_app  # noqa: E402
from medaid.service.store import Settings  # noqa: E402

try:
    from service_support import HOSPITAL_A, HOSPITAL_B, PERSON, RULES, make_tokens
except ImportError:  # pragma: no cover - tests collected as a package
    from tests.service_support import HOSPITAL_A, HOSPITAL_B, PERSON, RULES, make_tokens

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PROBLEM = "application/problem+json"
KEY = {"group": "key", "kind": "inpatient"}


@pytest.fixture
def ledger(db):
    """The county's ledger: an SQLite file, then a PostgreSQL schema (tests/conftest.py)."""
    return db


@pytest.fixture
def tokens(ledger):
    return make_tokens(ledger)


@pytest.fixture
def client(ledger, tokens):
    with TestClient(create_app(Settings(str(ledger), str(RULES)))) as c:
        yield c


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def claim(cid: str = "ZY1", self_pay: str = "30000", **extra: str) -> dict[str, str]:
    return {"claim_id": cid, "person_id": PERSON, "self_pay": self_pay, "date": "2024-05-03", **KEY, **extra}


def rows(ledger) -> list:
    with open_ledger(str(ledger), create=False) as lg:
        return list(lg.entries())


def settle(client, secret, **body):
    return client.post("/v1/settle", json=claim(**body), headers=bearer(secret))


# -- the figures -------------------------------------------------------------------------------


def test_settle_30000_yuan_is_relieved_23300_and_recorded_with_its_desk(client, tokens, ledger):
    r = settle(client, tokens.desk_a)
    assert r.status_code == 201, r.text
    d = r.json()
    assert (d["relief"], d["patient_pays"], d["bracket_relief"]) == ("23300.00", "6700.00", "23300.00")
    assert (d["ytd_self_pay"], d["ytd_relief"], d["annual_cap"], d["annual_cap_left"]) == (
        "30000.00", "23300.00", "100000.00", "76700.00")
    assert [(s["from"], s["to"], s["base"], s["rate"], s["relief"]) for s in d["segments"]] == [
        ("1000.00", "10000.00", "9000.00", "0.70", "6300.0000"),
        ("10000.00", "50000.00", "20000.00", "0.85", "17000.0000")]
    assert (d["rule_set_id"], d["rule_version"], d["hospital"]) == ("cq-county-medical-aid", "2019.1", HOSPITAL_A)
    assert d["basis"].startswith("County health-poverty medical aid policy")
    assert (d["replayed"], d["claim_id_generated"], d["desk"]) == (False, False, tokens.ids["desk_a"])
    [e] = rows(ledger)
    assert (e.relief, e.desk, e.hospital) == (2_330_000, tokens.ids["desk_a"], HOSPITAL_A)
    models.SettlementOut.model_validate(d)


def test_the_explanation_is_the_desks_in_the_language_asked_for(client, tokens, ledger):
    import medaid

    en = settle(client, tokens.desk_a).json()["explanation"]
    [e] = rows(ledger)
    book = medaid.load_rules(RULES)
    assert en["text"] == explain(e, e.claim(), book, "en", "Settlement ZY1")
    assert en["labels"]["relief"] == "Relief" and en["lang"] == "en"
    zh = client.post("/v1/settle", json=claim(),
                     headers={**bearer(tokens.desk_a), "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert zh.status_code == 200  # the same claim again: replayed
    assert zh.json()["explanation"]["text"] == explain(e, e.claim(), book, "zh", "结算单 ZY1")
    assert zh.json()["explanation"]["labels"]["patient_pays"] == "个人负担"
    q = client.post("/v1/quote?lang=zh", json=claim("Q1"), headers={**bearer(tokens.desk_a), "Accept-Language": "en"})
    assert q.json()["explanation"]["lang"] == "zh" and "救助金额" in q.json()["explanation"]["text"]


def test_two_hospitals_settle_one_person_against_one_annual_cap(client, tokens, ledger):
    a = settle(client, tokens.desk_a, cid="A1", self_pay="100000").json()
    b = settle(client, tokens.desk_b, cid="B1", self_pay="30000", hospital=HOSPITAL_B).json()
    assert (a["relief"], a["hospital"]) == ("87800.00", HOSPITAL_A)
    assert (b["relief"], b["bracket_relief"], b["capped_by"], b["hospital"]) == (
        "12200.00", "23300.00", "annual_cap", HOSPITAL_B)
    assert b["ytd_relief"] == "100000.00" and b["annual_cap_left"] == "0.00"
    h = client.post("/v1/history", json={"person_id": PERSON}, headers=bearer(tokens.desk_b)).json()
    assert [(e["claim_id"], e["hospital"], e["desk"]) for e in h["entries"]] == [
        ("A1", HOSPITAL_A, tokens.ids["desk_a"]), ("B1", HOSPITAL_B, tokens.ids["desk_b"])]
    assert h["pools"] == [{"benefit_year": 2024, "pool": "inpatient", "ytd_self_pay": "130000.00",
                           "ytd_relief": "100000.00", "annual_cap": "100000.00", "annual_cap_left": "0.00"}]
    models.HistoryOut.model_validate(h)


def test_quote_records_nothing_and_reads_the_ledgers_year_to_date(client, tokens, ledger):
    settle(client, tokens.desk_a, cid="A1", self_pay="100000")
    q = client.post("/v1/quote", json=claim("Q1"), headers=bearer(tokens.reviewer))
    assert q.status_code == 200, q.text
    assert (q.json()["relief"], q.json()["capped_by"], q.json()["recorded"]) == ("12200.00", "annual_cap", False)
    given = client.post("/v1/quote", json={**claim(), "ytd_self_pay": "0", "ytd_relief": "0"},
                        headers=bearer(tokens.desk_a))
    assert given.json()["relief"] == "23300.00"
    assert len(rows(ledger)) == 1
    models.QuoteOut.model_validate(q.json())
    half = client.post("/v1/quote", json={**claim(), "ytd_self_pay": "0"}, headers=bearer(tokens.desk_a))
    assert half.status_code == 422 and half.json()["problems"][0]["field"] == "ytd_relief"


def test_a_reversal_records_its_desk_and_lists_the_later_claims(client, tokens, ledger):
    settle(client, tokens.desk_a, cid="A1", self_pay="100000")
    settle(client, tokens.desk_a, cid="A2", self_pay="30000")
    r = client.post("/v1/reverse", json={"claim_id": "A1", "reason": "wrong stay"}, headers=bearer(tokens.admin))
    assert r.status_code == 201, r.text
    d = r.json()
    assert (d["entry"], d["reverses"], d["reason"], d["desk"]) == ("reversal", 1, "wrong stay", tokens.ids["admin"])
    assert (d["ytd_relief"], d["settled_after_not_recalculated"]) == ("12200.00", [])
    # A2 re-settled without A1: 23,300 instead of the 12,200 the cap left it (docs/calculation.md)
    assert [(a["claim_id"], a["adjusts"], a["reversal"], a["relief"], a["adjustment"]) for a in d["adjustments"]] == [
        ("A2", 2, 3, "23300.00", "11100.00")]
    models.ReversalOut.model_validate(d)
    assert [e.desk for e in rows(ledger)] == [tokens.ids["desk_a"]] * 2 + [tokens.ids["admin"]] * 2
    v = client.get("/v1/ledger/verify", headers=bearer(tokens.admin)).json()
    assert (v["ok"], v["entries"], v["problems"]) == (True, 4, [])


# -- idempotency ------------------------------------------------------------------------------


def test_settling_a_claim_id_again_returns_the_original_and_records_nothing(client, tokens, ledger):
    first = settle(client, tokens.desk_a)
    again = settle(client, tokens.desk_a)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True
    strip = ("replayed", "explanation")
    assert {k: v for k, v in again.json().items() if k not in strip} == {
        k: v for k, v in first.json().items() if k not in strip}
    # the admin sending the same claim gets the original too, written by desk A's token
    other = settle(client, tokens.admin, hospital=HOSPITAL_A)
    assert (other.status_code, other.json()["desk"], other.json()["seq"]) == (200, tokens.ids["desk_a"], 1)
    assert len(rows(ledger)) == 1


def test_the_same_claim_id_with_other_content_is_a_conflict_naming_the_fields(client, tokens, ledger):
    settle(client, tokens.desk_a)
    r = settle(client, tokens.desk_a, self_pay="30000.01")
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM
    p = r.json()
    assert (p["code"], p["problems"][0]["source"]) == ("refused", "claim ZY1")
    assert "already settled with different self_pay" in p["problems"][0]["message"]
    assert len(rows(ledger)) == 1


def test_a_claim_id_is_generated_when_absent(client, tokens, ledger):
    body = claim()
    del body["claim_id"]
    d = client.post("/v1/settle", json=body, headers=bearer(tokens.desk_a)).json()
    assert d["claim_id_generated"] is True and d["claim_id"].startswith("20240503-")


# -- who may do what --------------------------------------------------------------------------

#: (method, path, body) of every endpoint but health
ENDPOINTS = [
    ("post", "/v1/settle", claim("X1")),
    ("post", "/v1/quote", claim("X1")),
    ("post", "/v1/reverse", {"claim_id": "ZY0", "reason": "test"}),
    ("post", "/v1/history", {"person_id": PERSON}),
    ("get", "/v1/rules", None),
    ("get", "/v1/ledger/verify", None),
    ("get", "/v1/tokens", None),
    ("post", "/v1/tokens", {"role": "desk", "hospital": "H"}),
    ("post", "/v1/tokens/t0000000000/revoke", None),
]
#: the roles that may call each endpoint
ALLOWED = {
    "/v1/settle": {"desk", "admin"}, "/v1/quote": {"desk", "reviewer", "admin"},
    "/v1/reverse": {"desk", "admin"}, "/v1/history": {"desk", "reviewer", "admin"},
    "/v1/rules": {"desk", "reviewer", "admin"}, "/v1/ledger/verify": {"admin"}, "/v1/tokens": {"admin"},
    "/v1/tokens/t0000000000/revoke": {"admin"},
}


def _call(client, method, path, body, headers):
    return client.request(method.upper(), path, json=body, headers=headers)


def _state(ledger) -> tuple:
    return ledger.count(), ledger.rows("SELECT id, revoked_at FROM tokens ORDER BY id")


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
@pytest.mark.parametrize("who", ["none", "garbage", "revoked", "basic"])
def test_every_endpoint_refuses_a_missing_unknown_or_revoked_token_with_401(client, tokens, ledger, method, path,
                                                                          body, who):
    headers = {"none": {}, "garbage": bearer("mdt_" + "x" * 43), "revoked": bearer(tokens.revoked),
               "basic": {"Authorization": "Basic " + tokens.admin}}[who]
    before = _state(ledger)
    r = _call(client, method, path, body, headers)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == PROBLEM and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["problems"][0]["field"] == "Authorization"
    assert _state(ledger) == before  # nothing written


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
@pytest.mark.parametrize("role", ["desk_a", "reviewer", "admin"])
def test_every_endpoint_refuses_a_role_that_may_not_with_403_and_allows_the_others(client, tokens, ledger, method,
                                                                                  path, body, role):
    before = _state(ledger)
    r = _call(client, method, path, body, bearer(getattr(tokens, role)))
    if role.split("_")[0] in ALLOWED[path]:
        assert r.status_code not in (401, 403), r.text
    else:
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, r.text
        assert _state(ledger) == before


@pytest.mark.parametrize(("who", "status"), [("garbage", 401), ("revoked", 401), ("reviewer", 403)])
def test_a_bad_token_is_refused_before_the_requests_own_problems(client, tokens, ledger, who, status):
    # the token is looked up on the route's thread, after FastAPI has read the body: a body that
    # is also invalid must still get the token's refusal, as it would if the token were checked first
    secret = {"garbage": "mdt_" + "x" * 43, "revoked": tokens.revoked, "reviewer": tokens.reviewer}[who]
    before = _state(ledger)
    for body in ({**claim("X2"), "self_pay": 30000}, {"claim_id": "X3"}):
        r = client.post("/v1/settle", json=body, headers=bearer(secret))
        assert r.status_code == status, r.text
        assert r.json()["problems"][0]["field"] != "self_pay"
    r = client.post("/v1/settle", json={"claim_id": "X3"}, headers=bearer(tokens.desk_a))
    assert r.status_code == 422  # with a good token the same body is refused for what it is
    assert _state(ledger) == before


def test_a_desk_settles_and_quotes_only_its_own_hospitals_claims(client, tokens, ledger):
    for path in ("/v1/settle", "/v1/quote"):
        r = client.post(path, json=claim(hospital=HOSPITAL_A), headers=bearer(tokens.desk_b))
        assert r.status_code == 403, r.text
        assert r.json()["problems"][0]["field"] == "hospital"
    assert rows(ledger) == []
    # the admin settles for any hospital, a desk without naming one settles for its own
    assert settle(client, tokens.admin, cid="A1", hospital=HOSPITAL_B).json()["hospital"] == HOSPITAL_B
    assert settle(client, tokens.desk_b, cid="B1").json()["hospital"] == HOSPITAL_B


def test_a_desk_may_not_reverse_another_hospitals_claim_nor_replay_it(client, tokens, ledger):
    settle(client, tokens.desk_a)
    r = client.post("/v1/reverse", json={"claim_id": "ZY1", "reason": "not ours"}, headers=bearer(tokens.desk_b))
    assert r.status_code == 403 and r.json()["problems"][0]["field"] == "claim_id"
    # the same claim id from the other hospital (naming its own hospital) is a conflict, never the original
    again = settle(client, tokens.desk_b)
    assert again.status_code == 409 and "hospital" in again.json()["detail"]
    assert [e.entry for e in rows(ledger)] == ["settlement"]
    ok = client.post("/v1/reverse", json={"claim_id": "ZY1", "reason": "ours"}, headers=bearer(tokens.desk_a))
    assert ok.status_code == 201


def test_health_needs_no_token_and_shows_nothing_personal(client):
    r = client.get("/v1/health")
    assert r.status_code == 200 and set(r.json()) == {"status", "version", "schema_version"}


# -- problems ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "field", "text"), [
    ({**claim(), "self_pay": 30000}, "self_pay", "not a JSON number"),
    ({**claim(), "self_pay": 30000.5}, "self_pay", "not a JSON number"),
    ({**claim(), "total_cost": 1e6}, "total_cost", "not a JSON number"),
    ({**claim(), "self_pay": "300.001"}, "self_pay", "more than two decimals"),
    ({**claim(), "self_pay": "-5"}, "self_pay", "must not be negative"),
    ({**claim(), "self_pay": "10000000"}, "self_pay", "too large"),
    ({**claim(), "self_pay": "３０"}, None, None),  # full-width digits are yuan too
    ({**claim(), "person_id": 500101198001011234}, "person_id", "an id is a JSON string"),
    ({**claim(), "person_id": "  "}, "person_id", "must not be empty"),
    ({**claim(), "date": "2024-13-01"}, "date", "is not a date"),
    ({**claim(), "selfpay": "1"}, "selfpay", "is not a field of this request"),
    ({k: v for k, v in claim().items() if k != "self_pay"}, "self_pay", "is required"),
    ({**claim(), "date": "2014-05-03"}, "date", "no version of scheme"),
    ({**claim(), "group": "nobody"}, "group/kind", "no plan of"),
])
def test_a_bad_request_is_a_problem_naming_its_field_and_nothing_is_recorded(client, tokens, ledger, body, field, text):
    r = client.post("/v1/settle", json=body, headers=bearer(tokens.desk_a))
    if field is None:
        assert r.status_code == 201 and r.json()["self_pay"] == "30.00"
        return
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    p = r.json()
    models.ProblemOut.model_validate(p)
    assert p["code"] == "usage" and p["status"] == 422 and p["type"].startswith("urn:medaid:problem:")
    assert p["problems"][0]["field"] == field and text in p["problems"][0]["message"], p
    assert PERSON not in json.dumps(p) or field == "person_id"
    assert rows(ledger) == []


@pytest.mark.parametrize(("content", "message"), [
    (b"{not json", "the body is not valid JSON"),
    (b"[1, 2]", "the body must be a JSON object"),
    (b"", "a JSON body is needed"),
])
def test_a_body_that_is_not_a_json_object_is_a_problem(client, tokens, content, message):
    r = client.post("/v1/settle", content=content,
                    headers={**bearer(tokens.desk_a), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["problems"][0]["message"] == message


def test_unknown_paths_and_methods_are_problems_too(client, tokens):
    assert client.get("/v1/nothing").headers["content-type"] == PROBLEM
    r = client.get("/v1/settle", headers=bearer(tokens.desk_a))
    assert r.status_code == 405 and r.json()["code"] == "usage"


def test_reversing_an_unknown_claim_is_404_and_twice_is_409(client, tokens):
    r = client.post("/v1/reverse", json={"claim_id": "NOPE", "reason": "x"}, headers=bearer(tokens.admin))
    assert (r.status_code, r.json()["problems"][0]["field"]) == (404, "claim_id")
    settle(client, tokens.desk_a)
    client.post("/v1/reverse", json={"claim_id": "ZY1", "reason": "x"}, headers=bearer(tokens.admin))
    r = client.post("/v1/reverse", json={"claim_id": "ZY1", "reason": "x"}, headers=bearer(tokens.admin))
    assert r.status_code == 409 and "already reversed" in r.json()["detail"]


def test_an_internal_error_is_named_by_its_kind_only(client, tokens, monkeypatch, caplog):
    from medaid.service.operations import Operations

    def broken(self, *a, **k):
        raise ValueError(f"secret detail {PERSON}")

    monkeypatch.setattr(Operations, "history", broken)
    with TestClient(client.app, raise_server_exceptions=False) as c:
        r = c.post("/v1/history", json={"person_id": PERSON}, headers=bearer(tokens.desk_a))
    assert r.status_code == 500 and r.headers["content-type"] == PROBLEM
    assert "ValueError" in r.json()["detail"] and PERSON not in r.text and "secret" not in r.text
    assert PERSON not in caplog.text and "ValueError" in caplog.text


def test_while_serving_the_start_up_heap_is_out_of_the_collectors_passes(ledger, tokens):
    import gc

    assert gc.get_freeze_count() == 0
    with TestClient(create_app(Settings(str(ledger), str(RULES)))) as c:
        frozen = gc.get_freeze_count()
        # the rules, the application and its routes: tens of thousands of objects a full pass
        # no longer walks, against the few a settlement leaves behind
        assert frozen > 20_000
        assert settle(c, tokens.desk_a).status_code == 201
        assert len(gc.get_objects()) < frozen // 4
    assert gc.get_freeze_count() == 0  # handed back when the service stops


# -- tokens through the API --------------------------------------------------------------------


def test_an_admin_adds_lists_and_revokes_tokens_and_only_a_hash_is_stored(client, tokens, ledger):
    r = client.post("/v1/tokens", json={"role": "desk", "hospital": "乡卫生院"}, headers=bearer(tokens.admin))
    assert r.status_code == 201, r.text
    new = r.json()
    secret = new["token"]
    assert secret.startswith("mdt_") and len(secret) == 4 + 43
    stored = ledger.rows("SELECT * FROM tokens") + ledger.rows("SELECT * FROM desk_sessions")
    assert secret not in repr(stored)
    if ledger.backend == "sqlite":
        assert secret.encode() not in open(ledger.location, "rb").read()
    assert ledger.rows("SELECT token_hash FROM tokens WHERE id = ?", (new["id"],))[0][0] == \
        hashlib.sha256(secret.encode()).hexdigest()
    assert settle(client, secret, cid="W1").json()["hospital"] == "乡卫生院"
    listed = client.get("/v1/tokens", headers=bearer(tokens.admin)).json()
    assert new["id"] in [t["id"] for t in listed] and all("token" not in t for t in listed)
    gone = client.post(f"/v1/tokens/{new['id']}/revoke", headers=bearer(tokens.admin))
    assert gone.status_code == 200 and gone.json()["active"] is False
    assert settle(client, secret, cid="W2").status_code == 401
    assert client.post(f"/v1/tokens/{new['id']}/revoke", headers=bearer(tokens.admin)).status_code == 409
    assert client.post("/v1/tokens/tnope/revoke", headers=bearer(tokens.admin)).status_code == 404
    bad = client.post("/v1/tokens", json={"role": "desk"}, headers=bearer(tokens.admin))
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "hospital"


def test_the_openapi_document_is_served_to_a_token_only(client, tokens):
    # like every route but the health check; the interactive page (which could not send one) is gone
    r = client.get("/openapi.json")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    for refused in ("mdt_not_a_token", tokens.revoked):
        assert client.get("/openapi.json", headers=bearer(refused)).status_code == 401
    for role in ("desk_a", "reviewer", "admin"):
        assert client.get("/openapi.json", headers=bearer(getattr(tokens, role))).json()["openapi"].startswith("3.")
    assert client.get("/docs").status_code == 404


def test_the_openapi_document_describes_money_as_text_bearer_tokens_and_problems(client, tokens):
    doc = client.get("/openapi.json", headers=bearer(tokens.admin)).json()
    schemas = doc["components"]["schemas"]
    assert schemas["ClaimIn"]["properties"]["self_pay"]["type"] == "string"
    assert schemas["SettlementOut"]["properties"]["relief"]["type"] == "string"
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    settle_op = doc["paths"]["/v1/settle"]["post"]
    problem = {PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemOut"}}}
    assert settle_op["responses"]["409"]["content"] == problem
    assert "ProblemDetail" in schemas and not any(p.startswith("/desk") for p in doc["paths"])
    # no endpoint takes an id in its path or query but the token ids of the admin's revoke (and
    # the month of a period, which is no one's id)
    for path, ops in doc["paths"].items():
        for op in ops.values():
            names = {p["name"] for p in op.get("parameters", [])}
            assert names <= {"lang", "token_id", "period"}, (path, names)


# -- the short path of POST /v1/settle ---------------------------------------------------------
# (:class:`medaid.service.app.FastSettle`) answers exactly as the route does, and its token check,
# made inside the settlement's own transaction (:meth:`Operations.settle_as`), still refuses a
# revoked token at its very next request.  Every request is sent both to the service and to the
# same service without the short path (the FastAPI route alone), on one ledger: a refusal
# (nothing written) must be the same response, byte for byte; a settlement answered by one is
# replayed by the other, and the two bodies must be the same but for ``replayed``.

MEDIA_JSON = "application/json"


@pytest.fixture
def reads(monkeypatch):
    """What the short path made of each request it saw: ``True`` answered by it, ``False``
    handed on to the route."""
    seen: list[bool] = []
    read = FastSettle._read

    def spy(*args):
        found = read(*args)
        seen.append(found is not None)
        return found

    monkeypatch.setattr(FastSettle, "_read", staticmethod(spy))
    return seen


@pytest.fixture
def clients(ledger, tokens, reads):
    """The service, and the same service without its short path, on one ledger."""
    settings = Settings(str(ledger), str(RULES))
    slow_app = create_app(settings)
    slow_app.user_middleware = [m for m in slow_app.user_middleware if m.cls is not FastSettle]
    with TestClient(create_app(settings)) as fast, TestClient(slow_app) as slow:
        yield fast, slow


def send(client, body, secret=None, *, query="", headers=None, raw=None):
    hs = {"Content-Type": MEDIA_JSON, **({} if secret is None else bearer(secret)), **(headers or {})}
    return client.post("/v1/settle" + query, content=raw if raw is not None else json.dumps(body), headers=hs)


def shown(r) -> tuple:
    """A response as a client sees it (status, the headers that carry meaning, the body)."""
    keep = ("content-type", "www-authenticate", "retry-after", "content-length")
    return r.status_code, {k: r.headers.get(k) for k in keep}, r.content


def test_settlements_are_answered_by_the_short_path_as_by_the_route(clients, tokens, ledger, reads):
    fast, slow = clients
    cases = [  # (claim id, body extras, secret, query, headers)
        ("F1", {}, tokens.desk_a, "", {}),
        ("F2", {}, tokens.desk_b, "?lang=zh", {}),
        ("F3", {"hospital": HOSPITAL_A, "attributes": {}}, tokens.admin, "", {"Accept-Language": "zh-CN,zh;q=0.9"}),
        ("F4", {"total_cost": "40,000.00", "self_pay": "３０"}, tokens.desk_a, "?lang=en", {"Accept-Language": "zh"}),
    ]
    for i, (cid, extra, secret, query, headers) in enumerate(cases):
        first, then = (fast, slow) if i % 2 == 0 else (slow, fast)
        a = send(first, claim(cid, **extra), secret, query=query, headers=headers)
        b = send(then, claim(cid, **extra), secret, query=query, headers=headers)
        assert (a.status_code, b.status_code) == (201, 200), (a.text, b.text)
        assert a.headers["content-type"] == b.headers["content-type"] == MEDIA_JSON
        assert {**a.json(), "replayed": True} == b.json()
    assert reads == [True, True, True, True]  # each case once through the short path
    assert len(rows(ledger)) == len(cases)
    assert send(fast, claim("F2"), tokens.desk_b, query="?lang=zh").json()["explanation"]["lang"] == "zh"


@pytest.mark.parametrize("case", [
    "revoked", "garbage", "not mdt", "reviewer", "basic", "no token", "empty bearer", "other hospital",
    "conflict", "no version", "no plan", "unknown attribute", "payee", "not a field", "number", "not MEDIA_JSON",
    "a list", "empty", "text/plain", "no content type", "lang fr", "two langs", "revoked and invalid",
    "reviewer and no plan",
])
def test_every_refusal_is_the_routes_own_and_writes_nothing(clients, tokens, ledger, case):
    fast, slow = clients
    assert send(slow, claim("C0"), tokens.desk_a).status_code == 201  # for the conflict
    good = claim("C1")
    body, secret, query, headers, raw = good, tokens.desk_a, "", {}, None
    match case:
        case "revoked":
            secret = tokens.revoked
        case "garbage":
            secret = "mdt_" + "x" * 43
        case "not mdt":
            secret = "abc"
        case "reviewer":
            secret = tokens.reviewer
        case "basic":
            secret, headers = None, {"Authorization": f"Basic {tokens.admin}"}
        case "no token":
            secret = None
        case "empty bearer":
            secret, headers = None, {"Authorization": "Bearer   "}
        case "other hospital":
            body = claim("C1", hospital=HOSPITAL_B)
        case "conflict":
            body = claim("C0", self_pay="30001")
        case "no version":
            body = claim("C1", date="2014-05-03")
        case "no plan":
            body = claim("C1", group="nobody")
        case "unknown attribute":
            body = claim("C1", attributes={"colour": "red"})
        case "payee":
            body = claim("C1", channel="application")
        case "not a field":
            body = claim("C1", selfpay="1")
        case "number":
            body = claim("C1", self_pay=30000)
        case "not MEDIA_JSON":
            raw = b"{not json"
        case "a list":
            raw = b"[1, 2]"
        case "empty":
            raw = b""
        case "text/plain":
            headers = {"Content-Type": "text/plain"}
        case "no content type":
            headers = {"Content-Type": ""}
        case "lang fr":
            query = "?lang=fr"
        case "two langs":
            query = "?lang=en&lang=zh"
        case "revoked and invalid":
            secret, body = tokens.revoked, claim("C1", self_pay=1)
        case "reviewer and no plan":
            secret, body = tokens.reviewer, claim("C1", group="nobody")
    before = len(rows(ledger))
    a = send(fast, body, secret, query=query, headers=headers, raw=raw)
    b = send(slow, body, secret, query=query, headers=headers, raw=raw)
    if case == "two langs":  # well formed, but not the short path's: the route settles it, then replays it
        assert (a.status_code, b.status_code) == (201, 200)
        return
    assert 400 <= a.status_code < 500, a.text
    assert shown(a) == shown(b)
    assert len(rows(ledger)) == before


def test_a_revoked_token_is_refused_at_its_very_next_settlement(clients, tokens, ledger, reads):
    fast, _ = clients
    made = fast.post("/v1/tokens", json={"role": "desk", "hospital": HOSPITAL_A},
                     headers={"Authorization": f"Bearer {tokens.admin}"}).json()
    assert send(fast, claim("R1"), made["token"]).status_code == 201
    revoked = fast.post(f"/v1/tokens/{made['id']}/revoke", headers={"Authorization": f"Bearer {tokens.admin}"})
    assert revoked.status_code == 200
    r = send(fast, claim("R2"), made["token"])
    assert r.status_code == 401 and r.json()["problems"][0]["field"] == "Authorization", r.text
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    # and so is a retry of the claim it settled before: no replay for a revoked token either
    assert send(fast, claim("R1"), made["token"]).status_code == 401
    assert reads == [True, True, True]  # all three on the short path, whose check is in the transaction
    assert [(e.claim_id, e.desk) for e in rows(ledger)] == [("R1", made["id"])]

"""The API's channel and payee on ``/v1/settle`` and the monthly periods under ``/v1/periods``
(docs/service.md#monthly-periods, docs/periods.md), through FastAPI's TestClient on both ledger
backends: roles (401, 403: reviewer reviews; admin opens, closes, approves, pays; a desk none),
problem+json, the OpenAPI document, and bank accounts masked in every response.

Figures (rules/chongqing-county-2019.toml, key / inpatient): 100,000 → 87,800.00; a following
30,000 stay capped at 12,200.00 gets 23,300.00 (+11,100.00) once the first is rejected;
12,000 → 8,000.00."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the service needs the service extra: pip install 'medaid[service]'")

import warnings  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from medaid.service.app import create_app  # noqa: E402
from medaid.service.store import Settings  # noqa: E402

try:
    from service_support import HOSPITAL_A, PERSON, RULES
except ImportError:  # pragma: no cover
    from tests.service_support import HOSPITAL_A, PERSON, RULES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PROBLEM = "application/problem+json"
ACCOUNT = "6222021234561234"
APPLICANT = "500101199002021234"


@pytest.fixture
def client(db, tokens):
    with TestClient(create_app(Settings(str(db), str(RULES)))) as c:
        yield c


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def body(cid, self_pay, day="2024-05-03", person=PERSON, **extra):
    return {"claim_id": cid, "person_id": person, "self_pay": self_pay, "date": day, "group": "key",
            "kind": "inpatient", **extra}


PAYEE = {"channel": "application", "bank_account": "6222 0212 3456 1234", "account_name": "张三"}


def test_settle_takes_the_channel_and_payee_and_masks_them(client, tokens):
    r = client.post("/v1/settle", json=body("SQ1", "12000", person=APPLICANT, **PAYEE), headers=bearer(tokens.admin))
    assert r.status_code == 201, r.text
    d = r.json()
    assert (d["channel"], d["bank_account"], d["account_name"], d["relief"]) == (
        "application", "6222********1234", "张*", "8000.00")
    assert ACCOUNT not in r.text and "张三" not in r.text
    one = client.post("/v1/settle", json=body("ZY1", "30000"), headers=bearer(tokens.desk_a)).json()
    assert one["channel"] == "one-stop"  # the default
    h = client.post("/v1/history", json={"person_id": APPLICANT}, headers=bearer(tokens.reviewer))
    assert h.json()["entries"][0]["bank_account"] == "6222********1234" and ACCOUNT not in h.text


@pytest.mark.parametrize("payee, field", [
    ({"channel": "application", "account_name": "张三"}, "channel"),
    ({**PAYEE, "bank_account": "6222-0212-3456-1234"}, "bank_account"),
    ({**PAYEE, "bank_account": 6222021234561234}, "bank_account"),
    ({"channel": "one-stop", "bank_account": ACCOUNT, "account_name": "张三"}, "channel"),
])
def test_a_bad_payee_is_422_naming_the_field_never_the_account(client, tokens, db, payee, field):
    r = client.post("/v1/settle", json=body("SQ1", "12000", **payee), headers=bearer(tokens.admin))
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    assert r.json()["problems"][0]["field"] == field
    assert "0212" not in r.text and "3456" not in r.text and "张三" not in r.text
    assert db.count() == 0


STEPS = [("post", "/v1/periods/2024-05/open", None), ("post", "/v1/periods/2024-05/close", None),
         ("post", "/v1/periods/2024-05/review", {"rejections": []}), ("post", "/v1/periods/2024-05/approve", None),
         ("post", "/v1/periods/2024-05/pay", None), ("get", "/v1/periods", None), ("get", "/v1/periods/2024-05", None)]
ALLOWED = {"open": {"admin"}, "close": {"admin"}, "approve": {"admin"}, "pay": {"admin"}, "review": {"reviewer"},
           "periods": {"reviewer", "admin"}, "2024-05": {"reviewer", "admin"}}


@pytest.mark.parametrize(("method", "path", "payload"), STEPS, ids=[f"{m} {p}" for m, p, _ in STEPS])
def test_every_period_endpoint_needs_a_token_and_its_role(client, tokens, db, method, path, payload):
    for headers in ({}, bearer("mdt_" + "x" * 43), bearer(tokens.revoked)):
        r = client.request(method.upper(), path, json=payload, headers=headers)
        assert r.status_code == 401 and r.headers["content-type"] == PROBLEM, r.text
    for role in ("desk_a", "reviewer", "admin"):
        before = db.rows("SELECT count(*) FROM period_events")
        r = client.request(method.upper(), path, json=payload, headers=bearer(getattr(tokens, role)))
        if role.split("_")[0] in ALLOWED[path.rsplit("/", 1)[1]]:
            assert r.status_code not in (401, 403), r.text
        else:
            assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, r.text
            assert db.rows("SELECT count(*) FROM period_events") == before


def test_a_month_through_the_api(client, tokens, db):
    admin, reviewer = bearer(tokens.admin), bearer(tokens.reviewer)
    assert client.post("/v1/periods/2024-05/open", headers=admin).json()["by"] == tokens.ids["admin"]
    client.post("/v1/settle", json=body("ZY1", "100000", hospital=HOSPITAL_A), headers=admin)
    client.post("/v1/settle", json=body("ZY2", "30000", day="2024-05-20", hospital=HOSPITAL_A), headers=admin)
    client.post("/v1/settle", json=body("SQ1", "12000", person=APPLICANT, **PAYEE), headers=admin)
    r = client.post("/v1/periods/2024-05/approve", headers=admin)
    assert r.status_code == 409 and "approve needs a period that is reviewed" in r.json()["detail"]
    assert client.post("/v1/periods/2024-05/close", headers=admin).json()["through_seq"] == 3
    r = client.post("/v1/periods/2024-05/review", headers=reviewer,
                    json={"rejections": [{"claim_id": "ZY1", "reason": "not an inpatient stay"}]})
    assert r.status_code == 201, r.text
    assert [(o["claim_id"], o["outcome"]) for o in r.json()["outcomes"]] == [
        ("ZY1", "rejected"), ("ZY2", "approved"), ("SQ1", "approved")]
    # the rejection's reversal is the reviewer's
    assert db.rows("SELECT desk FROM entries WHERE entry = 'reversal'") == [(tokens.ids["reviewer"],)]
    for step in ("approve", "pay"):
        assert client.post(f"/v1/periods/2024-05/{step}", headers=admin).status_code == 201
    shown = client.get("/v1/periods/2024-05", headers=reviewer)
    d = shown.json()
    assert (d["state"], d["one-stop"]["net"], d["application"]["net"], d["total"]["net"], d["persons"]) == (
        "paid", "23300.00", "8000.00", "31300.00", 1)
    assert d["hospitals"] == [{"hospital": HOSPITAL_A, "settlements": 2, "settled": "100000.00", "reversals": 1,
                               "reversed": "-87800.00", "adjustments": 1, "adjusted": "11100.00", "net": "23300.00"}]
    assert ACCOUNT not in shown.text and "张三" not in shown.text
    assert client.get("/v1/periods", headers=admin).json() == [
        {"period": "2024-05", "state": "paid", "by": tokens.ids["admin"], "at": d["events"][-1]["at"]}]
    bad = client.get("/v1/periods/2024-13", headers=admin)
    assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "period"


def test_the_openapi_document_has_the_periods(client, tokens):
    paths = client.get("/openapi.json", headers={"Authorization": f"Bearer {tokens.admin}"}).json()["paths"]
    for p in ("/v1/periods", "/v1/periods/{period}", "/v1/periods/{period}/review", "/v1/periods/{period}/pay"):
        assert p in paths
    assert set(paths["/v1/periods/{period}/close"]["post"]["responses"]) >= {"201", "401", "403", "409"}

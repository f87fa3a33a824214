"""The API settles, quotes and reverses under a household cap pool and a second stage exactly as
the desk (docs/service.md *Households, attributes and the second stage*), on both backends.

Rules: tests/extended_books.py ``HOUSEHOLD_SECOND`` (the shipped inpatient brackets under a
household cap pool of 10,000, a second stage of 50% of the year's burden above 5,000 counting
non-compliant costs).  Figures by hand (docs/desk.md's example):

* M's 10,000 stay at hospital A: first 70% × 9,000 = 6,300, burden 3,700, second 0;
* S's 10,000 stay (4,000 non-compliant), same household, at hospital B: first 3,700 (what is
  left of the household's 10,000), burden 10,000 − 3,700 + 4,000 = 10,300, second
  (10,300 − 5,000) × 50% = 2,650: relief 6,350;
* M's claim reversed: S's first 6,300, burden 7,700, second 1,350: relief 7,650 (+1,300).
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the service needs the service extra: pip install 'medaid[service]'")

from extended_books import HOUSEHOLD_SECOND  # noqa: E402

try:
    from service_support import api_client, post
except ImportError:  # pragma: no cover - tests collected as a package
    from tests.service_support import api_client, post

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def client(db, tokens, tmp_path):
    rules = tmp_path / "household.toml"
    rules.write_text(HOUSEHOLD_SECOND, encoding="utf-8")
    with api_client(db, rules) as c:
        yield c


def stay(cid, person, **extra):
    return {"claim_id": cid, "person_id": person, "household_id": "H1", "self_pay": "10000",
            "date": "2024-03-01", "group": "key", "kind": "inpatient", **extra}


def test_two_hospitals_share_a_households_cap_and_a_reversal_re_settles_the_other_member(client, tokens):
    m = post(client, tokens.desk_a, "/v1/settle", stay("C1", "M"))
    assert m.status_code == 201, m.text
    assert (m.json()["relief"], m.json()["second_relief"], m.json()["burden"]) == ("6300.00", "0.00", "3700.00")
    s = post(client, tokens.desk_b, "/v1/settle", stay("C2", "S", non_compliant="4000"))
    assert s.status_code == 201, s.text
    d = s.json()
    assert (d["relief"], d["capped_by"], d["second_relief"], d["burden"], d["ytd_burden"], d["patient_pays"]) == (
        "6350.00", "cap:household", "2650.00", "10300.00", "10300.00", "3650.00")
    assert d["caps"] == {"household": "3700.00"}
    assert d["cap_limits"] == {"household": {"per": "household", "annual": "10000.00"}}
    assert "limited by the cap pool household (per household)" in d["explanation"]["text"]
    assert d["explanation"]["labels"]["capped_by"] == "limited by the cap pool household (per household)"
    # a quote of M's next 2,000 reads the household's 10,000 used: its first stage gets nothing;
    # M's burden reaches 3,700 + 2,000 = 5,700: her second stage pays (5,700 − 5,000) × 50% = 350
    q = post(client, tokens.desk_a, "/v1/quote", stay("-", "M", self_pay="2000", date="2024-05-01"))
    assert q.status_code == 200, q.text
    assert (q.json()["relief"], q.json()["capped_by"], q.json()["second_relief"], q.json()["caps_after"]) == (
        "350.00", "cap:household", "350.00", [{"cap": "household", "used": "10000.00"}])
    # hospital A reverses its claim: hospital B's claim of the household is re-settled
    r = post(client, tokens.desk_a, "/v1/reverse", {"claim_id": "C1", "reason": "entered twice"})
    assert r.status_code == 201, r.text
    [adj] = r.json()["adjustments"]
    assert (adj["claim_id"], adj["adjustment"], adj["relief"], adj["second_relief"], adj["caps"]) == (
        "C2", "1300.00", "7650.00", "1350.00", {"household": "6300.00"})
    v = client.get("/v1/ledger/verify", headers={"Authorization": f"Bearer {tokens.admin}"})
    assert v.json()["problems"] == []


def test_a_household_plan_without_a_household_id_is_refused_naming_the_field(client, tokens):
    body = stay("C1", "M")
    del body["household_id"]
    r = post(client, tokens.desk_a, "/v1/settle", body)
    assert r.status_code == 422, r.text
    assert [p["field"] for p in r.json()["problems"]] == ["household_id"]

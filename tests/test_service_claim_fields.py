"""Issue 15's claim fields in the API (docs/service.md): settle and quote take ``household_id``,
``non_compliant`` (yuan text, as every amount) and ``attributes`` (name → value), record them and
echo them; an attribute the rules do not declare, a negative amount or a number for an amount is
a problem naming its field, and nothing is recorded.  On both ledger backends.

Figures by hand from the shipped rules (key recipients, inpatient: 70% of 1,000-10,000, 85% of
10,000-50,000): a 30,000 stay is relieved 23,300."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the service needs the service extra: pip install 'medaid[service]'")

import medaid.io.attributes  # noqa: E402
from extended_books import COUNTY_HEAD, LEVELS  # noqa: E402
from medaid.ledger import open_ledger  # noqa: E402
from medaid.service import models  # noqa: E402

try:
    from service_support import PERSON, RULES, api_client, post as post_as
except ImportError:  # pragma: no cover - tests collected as a package
    from tests.service_support import PERSON, RULES, api_client, post as post_as

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def client(db, tokens, monkeypatch):
    # the rules declare attributes level and place (the shipped rules declare none yet)
    monkeypatch.setattr(medaid.io.attributes, "declared_attributes",
                        lambda book: {"level": ("医院等级",), "place": ("就医地",)})
    with api_client(db, RULES) as c:
        yield c


def claim(**extra):
    return {"claim_id": "ZY1", "person_id": PERSON, "self_pay": "30000", "date": "2024-05-03",
            "group": "key", "kind": "inpatient", **extra}


def post(client, tokens, path, body):
    return post_as(client, tokens.desk_a, path, body)


def test_settle_records_and_echoes_the_household_the_non_compliant_cost_and_the_attributes(client, tokens, db):
    body = claim(household_id=" Ｈ１ ", non_compliant="4,000.50", attributes={"place": "县域内", "level": "三级"})
    r = post(client, tokens, "/v1/settle", body)
    assert r.status_code == 201, r.text
    d = r.json()
    models.SettlementOut.model_validate(d)
    assert (d["relief"], d["household_id"], d["non_compliant"], d["attributes"]) == (
        "23300.00", "H1", "4000.50", {"level": "三级", "place": "县域内"})
    # no second stage yet: its fields are there, empty
    assert (d["second_relief"], d["second_pool"], d["caps"]) == (None, None, None)
    with open_ledger(str(db), create=False) as lg:
        (e,) = lg.entries()
        assert (e.household_id, e.non_compliant, e.attributes) == (
            "H1", 400_050, (("level", "三级"), ("place", "县域内")))
    # the same again: the original; another household: a conflict naming the field
    again = post(client, tokens, "/v1/settle", body)
    assert again.status_code == 200 and again.json()["replayed"] is True
    other = post(client, tokens, "/v1/settle", {**body, "household_id": "H2"})
    assert other.status_code == 409 and "household_id" in other.text


def test_quote_echoes_them(client, tokens):
    r = post(client, tokens, "/v1/quote", claim(household_id="H1", non_compliant="0.5", attributes={"level": "二级"},
                                                ytd_self_pay="0", ytd_relief="0"))
    assert r.status_code == 200, r.text
    d = r.json()
    models.QuoteOut.model_validate(d)
    assert (d["relief"], d["household_id"], d["non_compliant"], d["attributes"], d["recorded"]) == (
        "23300.00", "H1", "0.50", {"level": "二级"}, False)


def test_a_claim_without_them_echoes_none(client, tokens):
    d = post(client, tokens, "/v1/settle", claim()).json()
    assert (d["household_id"], d["non_compliant"], d["attributes"]) == (None, None, None)


@pytest.mark.parametrize(("extra", "field", "text"), [
    ({"attributes": {"levle": "三级"}}, "attributes.levle",
     "is not an attribute the rules declare (declared: level, place)"),
    ({"attributes": {"level": 3}}, "attributes.level", "must be a JSON string"),
    ({"attributes": ["level", "三级"]}, "attributes", "valid dictionary"),
    ({"non_compliant": "-5"}, "non_compliant", "must not be negative"),
    ({"non_compliant": 4000}, "non_compliant", "not a JSON number"),
    ({"household_id": 5001}, "household_id", "an id is a JSON string"),
    ({"household_id": " "}, "household_id", "must not be empty"),
])
@pytest.mark.parametrize("path", ["/v1/settle", "/v1/quote"])
def test_a_bad_value_is_a_problem_naming_its_field_and_nothing_is_recorded(client, tokens, db, path, extra,
                                                                            field, text):
    r = post(client, tokens, path, claim(**extra))
    assert r.status_code == 422, r.text
    p = r.json()
    assert p["code"] == "usage"
    assert p["problems"][0]["field"] == field and text in p["problems"][0]["message"], p
    with open_ledger(str(db), create=True) as lg:
        assert list(lg.entries()) == []


def test_the_api_places_a_claim_by_an_attribute_of_real_rules(db, tokens, tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "level.toml").write_text(COUNTY_HEAD + LEVELS, encoding="utf-8")
    with api_client(db, tmp_path / "rules") as c:
        # (10,000 − 1,000) × 70% at a tertiary (三级) hospital
        r = post(c, tokens, "/v1/settle", claim(self_pay="10000", attributes={"level": "三级"}))
        assert r.status_code == 201, r.text
        d = r.json()
        assert (d["plan"], d["relief"], d["attributes"]) == ("tertiary", "6300.00", {"level": "三级"})
        bad = post(c, tokens, "/v1/settle", claim(claim_id="ZY2", attributes={"level": "四级"}))
        assert bad.status_code == 422 and bad.json()["problems"][0]["field"] == "level", bad.text
        none = post(c, tokens, "/v1/settle", claim(claim_id="ZY3", attributes={"place": "县域内"}))
        assert none.status_code == 422 and none.json()["problems"][0]["field"] == "attributes.place"

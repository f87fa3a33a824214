"""Issue 15's claim fields at the desk and in batch results (docs/desk.md, docs/batch.md):
``--household``, ``--non-compliant`` and ``--attr NAME=VALUE`` on settle and quote, recorded in
the ledger and echoed; an attribute the rules do not declare is a usage error naming
``--attr``; a batch's results carry 户号 and 非合规费用 as the other claim fields.

Figures by hand from the shipped rules (key recipients, inpatient: 70% of 1,000-10,000): a
10,000 stay is relieved 6,300."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import medaid.io.attributes
from extended_books import COUNTY_HEAD, LEVELS
from medaid.cli import main
from medaid.ledger.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
RULES = str(ROOT / "rules")
CLAIM = ["--person", "P1", "--self-pay", "10000", "--date", "2024-05-03", "--group", "key", "--kind", "inpatient"]


@pytest.fixture
def ledger_path(tmp_path):
    return tmp_path / "desk.sqlite3"


@pytest.fixture
def run(ledger_path):
    def invoke(*args: str):
        env = {"MEDAID_RULES": RULES, "MEDAID_LEDGER": str(ledger_path), "MEDAID_LANG": "en"}
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
def level_declared(monkeypatch):
    """The rules declare attribute ``level`` (the shipped rules declare none yet)."""
    monkeypatch.setattr(medaid.io.attributes, "declared_attributes",
                        lambda book: {"level": ("医院等级",), "place": ("就医地",)})


@pytest.mark.parametrize("command", ["settle", "quote"])
def test_an_attribute_the_rules_do_not_declare_is_a_usage_error_naming_the_option(run, ledger_path, command):
    extra = ["--ytd-self-pay", "0", "--ytd-relief", "0"] if command == "quote" else []
    r = run(command, *CLAIM, *extra, "--attr", "level=三级")
    assert r.exit_code == 2, r.output
    assert "--attr" in r.output and "level is not an attribute the rules declare (declared: none)" in r.output
    assert not ledger_path.exists()  # nothing recorded


def test_an_undeclared_name_is_refused_listing_the_declared_ones(run, level_declared):
    r = run("quote", *CLAIM, "--ytd-self-pay", "0", "--ytd-relief", "0", "--attr", "levle=三级")
    assert r.exit_code == 2
    assert "levle is not an attribute the rules declare (declared: level, place)" in r.output


@pytest.mark.parametrize("bad", ["level", "=三级", "level=", "level= "])
def test_an_attr_that_is_not_name_equals_value_is_a_usage_error(run, bad):
    r = run("quote", *CLAIM, "--ytd-self-pay", "0", "--ytd-relief", "0", "--attr", bad)
    assert r.exit_code == 2 and "--attr" in r.output and "NAME=VALUE" in r.output


def test_a_negative_non_compliant_cost_is_a_usage_error_naming_the_option(run):
    r = run("settle", *CLAIM, "--non-compliant", "-5")
    assert r.exit_code == 2 and "--non-compliant" in r.output


def test_settle_records_the_household_the_non_compliant_cost_and_the_attributes(run, ledger_path, level_declared):
    r = run("settle", *CLAIM, "--claim-id", "C1", "--household", " Ｈ１ ", "--non-compliant", "4,000.50",
            "--attr", "level=三级", "--attr", "place=县域内", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert (d["relief"], d["household_id"], d["non_compliant"], d["attributes"]) == (
        "6300.00", "H1", "4000.50", {"level": "三级", "place": "县域内"})
    with Ledger(ledger_path, create=False) as lg:
        (e,) = lg.entries()
        assert (e.household_id, e.non_compliant, e.attributes) == (
            "H1", 400_050, (("level", "三级"), ("place", "县域内")))
        assert lg.verify().ok
    # the same claim again is a replay; another household is a conflict naming the field
    again = run("settle", *CLAIM, "--claim-id", "C1", "--household", "H1", "--non-compliant", "4000.50",
                "--attr", "place=县域内", "--attr", "level=三级")
    assert again.exit_code == 0 and "already" in again.output.lower()
    other = run("settle", *CLAIM, "--claim-id", "C1", "--household", "H2", "--non-compliant", "4000.50",
                "--attr", "place=县域内", "--attr", "level=三级")
    assert other.exit_code == 1 and "household_id" in other.output


def test_quote_echoes_them(run, level_declared):
    r = run("quote", *CLAIM, "--ytd-self-pay", "0", "--ytd-relief", "0", "--household", "H1",
            "--non-compliant", "0.5", "--attr", "level=二级", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert (d["relief"], d["household_id"], d["non_compliant"], d["attributes"]) == (
        "6300.00", "H1", "0.50", {"level": "二级"})


def test_the_remote_client_sends_them(monkeypatch):
    from medaid.cli import remote

    body = remote._claim_body({"person_id": "P1", "self_pay": 1_000_000, "group": None, "kind": None,
                               "hospital": None, "total_cost": None, "household_id": "H1",
                               "non_compliant": 400_050, "attributes": {"level": "三级"}}, "C1",
                              __import__("datetime").date(2024, 5, 3))
    assert body == {"person_id": "P1", "self_pay": "10000.00", "date": "2024-05-03", "claim_id": "C1",
                    "household_id": "H1", "non_compliant": "4000.50", "attributes": {"level": "三级"}}
    assert remote.OPTIONS["attributes"] == "--attr"


@pytest.mark.parametrize("lang,heads", [("en", ("household_id", "non_compliant")), ("zh", ("户号", "非合规费用"))])
def test_batch_results_carry_the_household_and_the_non_compliant_cost(tmp_path, lang, heads):
    src = tmp_path / "claims.csv"
    src.write_text("结算单号,人员编号,结算日期,合规自付费用,救助对象类别,就诊类型,户号,非合规费用\n"
                   "C1,P1,2024-03-01,10000,key,inpatient,H1,\"4,000.50\"\n"
                   "C2,P2,2024-03-01,2000,key,inpatient,,\n", encoding="utf-8")
    out = tmp_path / "results.csv"
    r = CliRunner().invoke(main, ["batch", str(src), "-o", str(out), "--rules", RULES, "--lang", lang],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    head = lines[0].split(",")
    h, n = head.index(heads[0]), head.index(heads[1])
    assert [(row.split(",")[h], row.split(",")[n]) for row in lines[1:]] == [("H1", "4000.50"), ("", "")]


#: A rule set whose plans match on the hospital level (docs/calculation.md, *Worked examples of
#: these rules*, hospital level): 80% above 1,000 at primary and secondary hospitals, 70% at
#: tertiary ones (tests/extended_books.py ``LEVELS``).
LEVEL_RULES = COUNTY_HEAD + LEVELS


@pytest.fixture
def level_rules(tmp_path):
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "level.toml").write_text(LEVEL_RULES, encoding="utf-8")
    return str(folder)


def test_the_declared_attributes_are_read_from_the_rule_files(level_rules):
    from medaid import load_rules

    # its columns, then its title (the header of its column in a Chinese results file)
    assert medaid.io.attributes.declared_attributes(load_rules(level_rules)) == {
        "level": ("hospital_level", "医院等级", "Hospital level (医院等级)")}
    assert medaid.io.attributes.attribute_titles(load_rules(level_rules)) == {"level": "Hospital level (医院等级)"}


@pytest.mark.parametrize(("level", "plan", "relief"), [
    ("二级", "county", "7200.00"),     # (10,000 − 1,000) × 80%
    ("secondary", "county", "7200.00"),
    ("三级", "tertiary", "6300.00"),   # (10,000 − 1,000) × 70%
])
def test_settle_places_the_claim_by_its_attribute_and_records_it(tmp_path, level_rules, level, plan, relief):
    ledger = tmp_path / "desk.sqlite3"
    r = CliRunner().invoke(main, ["settle", *CLAIM, "--claim-id", "C1", "--attr", f"level={level}", "--json",
                                  "--rules", level_rules, "--ledger", str(ledger)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert (d["plan"], d["relief"], d["attributes"]) == (plan, relief, {"level": level})


@pytest.mark.parametrize(("attr", "text"), [
    (["--attr", "level=四级"], "'四级' is not a value of attribute 'level'"),
    (["--attr", "place=县域内"], "place is not an attribute the rules declare (declared: level)"),
])
def test_a_value_or_a_name_the_rules_do_not_allow_is_a_usage_error_naming_attr(tmp_path, level_rules, attr, text):
    r = CliRunner().invoke(main, ["quote", *CLAIM, "--ytd-self-pay", "0", "--ytd-relief", "0", *attr,
                                  "--rules", level_rules], catch_exceptions=False)
    assert r.exit_code == 2 and "--attr" in r.output and text in r.output, r.output

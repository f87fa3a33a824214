"""The report names what limited a relief in words, a cap pool (``cap:NAME``) too, and counts
the persons a cap pool stopped on a line of its own (docs/report.md, *Cap pools*).

Figures by hand from the county example year (examples/county-claims-2024.csv under
rules/county/yuxian-2024.toml; tests/test_county_scheme.py works every claim): six claims are
limited by a cap pool, four by the person cap ``medical`` — 500230195803120011's 住院 80,000
(60,420) and 门诊 1,000 (600), 500230196204150022's 住院 90,000 (66,000) and
500230194507070055's 住院 25,000 (19,850): 4 claims, 3 persons, 146,870 — and two by the
household cap ``household`` — 500230198809090033's 住院 30,000 (14,000) and 门诊 2,000 (0), his
household H0002 being exactly at its 80,000 (66,000 + 14,000 + 0): 2 claims, 1 person, 14,000.
One claim (the grant of 5,000 on a self-pay of 3,000) is limited by the self-pay.  No claim
reaches an annual cap: 0 persons there, 3 + 1 = 4 persons stopped by a cap pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medaid.cli import main

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules" / "county"
CLAIMS = ROOT / "examples" / "county-claims-2024.csv"

#: the cap pools' titles in rules/county/yuxian-2024.toml
MEDICAL = "个人年度基本救助限额（住院、门诊慢特病共用）"
HOUSEHOLD = "户年度医疗救助限额"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("county") / "results.csv"
    r = CliRunner().invoke(main, ["batch", str(CLAIMS), "--rules", str(RULES), "-o", str(out)])
    assert r.exit_code == 0, r.output
    return out


def report(results: Path, *args: str) -> str:
    r = CliRunner().invoke(main, ["report", str(results), *args])
    assert r.exit_code == 0, r.output
    return r.output


def ledger_report(ledger: Path, *args: str) -> str:
    r = CliRunner().invoke(main, ["report", "--ledger", str(ledger), *args])
    assert r.exit_code == 0, r.output
    return r.output


def rows(text: str) -> list[list[str]]:
    return [ln.split() for ln in text.splitlines()]


def test_the_persons_stopped_by_a_cap_pool_are_a_figure_of_their_own(results):
    figures = {f["key"]: f["value"] for f in json.loads(report(results, "--json"))["figures"]}
    assert figures["capped_claims"] == 7  # 6 by a cap pool, 1 by the self-pay
    assert figures["persons_capped_any_limit"] == 5  # the 4 below and the grant's 500230197001010044
    assert figures["persons_at_annual_cap"] == 0
    assert figures["persons_at_cap_pool"] == 4


def test_the_json_keeps_the_codes_of_the_causes(results):
    tables = json.loads(report(results, "--json", "--lang", "zh"))["tables"]
    capped = {r["capped_by"]: (r["claims"], r["persons"], r["relief"]) for r in tables["capped"]["rows"]}
    assert capped == {"cap:household": (2, 1, "14000.00"), "cap:medical": (4, 3, "146870.00"),
                      "self_pay": (1, 1, "3000.00")}


@pytest.mark.parametrize("lang, lines", [
    ("en", [["Persons", "stopped", "by", "a", "cap", "pool", "4", "distinct", "person_id,", "capped_by", "=",
             "cap:NAME", "20", "0"],
            ["cap", "pool", "household", "2", "1", "14,000.00"],
            ["cap", "pool", "medical", "4", "3", "146,870.00"],
            ["self-pay", "1", "1", "3,000.00"]]),
    ("zh", [["受共享限额约束的人数", "4", "不同人员编号数，限额原因", "=", "共享限额（cap:NAME）", "20", "0"],
            ["共享限额「household」", "2", "1", "14,000.00"],
            ["共享限额「medical」", "4", "3", "146,870.00"],
            ["自付金额", "1", "1", "3,000.00"]]),
])
def test_without_the_rules_a_cap_pool_is_named_by_its_name(results, lang, lines):
    text = report(results, "--lang", lang)
    assert "cap:household" not in text and "cap:medical" not in text
    for line in lines:
        assert line in rows(text)


@pytest.mark.parametrize("lang, lines", [
    ("en", [["cap", "pool", HOUSEHOLD, "(per", "household)", "2", "1", "14,000.00"],
            ["cap", "pool", MEDICAL, "(per", "person)", "4", "3", "146,870.00"]]),
    ("zh", [[f"共享限额「{HOUSEHOLD}」（按户）", "2", "1", "14,000.00"],
            [f"共享限额「{MEDICAL}」（按人）", "4", "3", "146,870.00"]]),
])
def test_with_the_rules_a_cap_pool_is_named_by_its_title_per_person_or_household(results, lang, lines):
    text = report(results, "--lang", lang, "--rules", str(RULES))
    for line in lines:
        assert line in rows(text)


def test_the_html_page_names_the_cap_pools_too(results, tmp_path):
    page = tmp_path / "report.html"
    report(results, "--lang", "zh", "--rules", str(RULES), "--html", str(page))
    html = page.read_text(encoding="utf-8")
    assert f"<td>共享限额「{HOUSEHOLD}」（按户）</td>" in html and "<td>cap:household</td>" not in html
    assert "受共享限额约束的人数" in html


def test_results_without_the_new_rules_have_no_cap_pool_line(tmp_path):
    out = tmp_path / "results.csv"
    r = CliRunner().invoke(main, ["batch", str(ROOT / "examples" / "claims-2024.csv"), "--rules",
                                  str(ROOT / "rules"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    keys = [f["key"] for f in json.loads(report(out, "--json"))["figures"]]
    assert "persons_at_annual_cap" in keys and "persons_at_cap_pool" not in keys


def test_a_ledger_report_counts_the_persons_a_cap_pool_stopped_as_the_results_file_does(results, tmp_path):
    """The county year recorded into an empty ledger (``medaid batch --ledger --record``): the
    report of the ledger has the cap-pool line with the hand figures above, 4 persons (3 by
    ``medical``, 1 by ``household``), and the same capped-by table and second-stage figures as the
    report of the results file.  A ledger of the plain rules has no such line."""
    ledger = tmp_path / "county.sqlite3"
    r = CliRunner().invoke(main, ["batch", str(CLAIMS), "--rules", str(RULES), "--ledger", str(ledger),
                                  "--record", "-o", str(tmp_path / "recorded.csv")])
    assert r.exit_code == 0, r.output
    from_ledger = json.loads(ledger_report(ledger, "--json"))
    figures = {f["key"]: f["value"] for f in from_ledger["figures"]}
    assert (figures["persons_at_cap_pool"], figures["persons_at_annual_cap"], figures["capped_claims"]) == (4, 0, 7)
    capped = {r["capped_by"]: (r["claims"], r["persons"], r["relief"]) for r in from_ledger["tables"]["capped"]["rows"]}
    assert capped == {"cap:household": (2, 1, "14000.00"), "cap:medical": (4, 3, "146870.00"),
                      "self_pay": (1, 1, "3000.00")}
    from_file = json.loads(report(results, "--json"))
    second = ("second_relief_total", "second_relief_claims", "relief_total", "persons_at_cap_pool")
    assert {f["key"]: f["value"] for f in from_file["figures"] if f["key"] in second} == \
        {k: v for k, v in figures.items() if k in second}
    assert ["Persons", "stopped", "by", "a", "cap", "pool", "4"] in [ln[:7] for ln in rows(ledger_report(ledger))]

    plain = tmp_path / "plain.sqlite3"
    claims = tmp_path / "plain.csv"
    claims.write_text("claim_id,person_id,date,self_pay,group,kind\nP1,X,2024-03-01,30000,key,inpatient\n",
                      encoding="utf-8")
    r = CliRunner().invoke(main, ["batch", str(claims), "--rules", str(ROOT / "rules"), "--ledger", str(plain),
                                  "--record", "-o", str(tmp_path / "plain.results.csv")])
    assert r.exit_code == 0, r.output
    keys = [f["key"] for f in json.loads(ledger_report(plain, "--json"))["figures"]]
    assert "persons_at_annual_cap" in keys and "persons_at_cap_pool" not in keys
    assert "second_relief_total" not in keys

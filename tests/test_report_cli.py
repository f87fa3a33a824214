"""`medaid report` through click's test runner, on the hand-made year of test_report.py."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from medaid.cli import main

CSV = (
    "claim_id,person_id,date,kind,hospital,self_pay,total_cost,major_disease,relief,patient_pays,capped_by,bracket,plan,group\n"
    "C1,P1,2024-01-10,inpatient,H1,30000.00,100000.00,1,23300.00,6700.00,,2,key-inpatient,key\n"
    "C2,P1,2024-03-05,inpatient,H1,100000.00,250000.00,1,76700.00,23300.00,annual_cap,3,key-inpatient,key\n"
    "C3,P2,2024-03-20,inpatient,H2,500.00,4000.00,0,0.00,500.00,,0,low-income-inpatient,low-income\n"
    "C4,P3,2024-03-21,outpatient-special,H2,5000.00,,0,3000.00,2000.00,claim_cap,1,key-outpatient-special,key\n"
    "C5,P2,2025-01-02,inpatient,H1,12345.67,50000.00,,8293.82,4051.85,,2,low-income-inpatient,low-income\n"
)


@pytest.fixture()
def results(tmp_path):
    p = tmp_path / "results.csv"
    p.write_text(CSV, encoding="utf-8")
    return p


def run(*args, **kw):
    return CliRunner().invoke(main, ["report", *map(str, args)], **kw)


def test_report_prints_the_indicators(results):
    r = run(results, "--budget", "100000")
    assert r.exit_code == 0, r.output
    for text in ("Assisted person-times", "111,293.82", "111.29%", "8.55%", "66.67%", "27,823.46",
                 "Claims capped", "By month", "2024-03", "Claims by highest bracket reached"):
        assert text in r.output, text


def test_json_for_machines(results):
    r = run(results, "--budget", "100,000.00", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    figs = {f["key"]: f for f in data["figures"]}
    assert figs["claims"]["value"] == 5
    assert figs["relief_total"]["value"] == "111293.82"
    assert figs["budget_used"]["value"] == "111.29"
    assert figs["budget_used"]["exact"] == {"numerator": 11_129_382, "denominator": 10_000_000}
    assert figs["self_pay_ratio"]["rows"] == 4 and figs["self_pay_ratio"]["missing"] == 1
    assert data["tables"]["monthly"]["rows"][1]["relief"] == "79700.00"
    assert data["scope"]["rows_read"] == 5


def test_by_hospital_and_year(results):
    r = run(results, "--by", "hospital", "--year", "2024", "--json")
    assert r.exit_code == 0, r.output
    by = json.loads(r.output)["tables"]["by"]
    assert [(row["hospital"], row["relief"]) for row in by["rows"]] == [("H1", "100000.00"), ("H2", "3000.00")]


def test_chinese_labels(results):
    r = run(results, "--lang", "zh")
    assert r.exit_code == 0, r.output
    assert "医疗救助人次" in r.output and "救助后个人自付比例" in r.output


def test_html_page(results, tmp_path):
    out = tmp_path / "report.html"
    r = run(results, "--html", out, "--lang", "zh")
    assert r.exit_code == 0, r.output
    assert "医疗救助年度报告" in out.read_text(encoding="utf-8")
    ET.parse(out)


def test_a_missing_ledger_is_refused_clearly(tmp_path):
    r = run(tmp_path / "desk.sqlite3")
    assert r.exit_code == 1
    assert "desk.sqlite3: no such ledger" in r.output and "Traceback" not in r.output
    r = run("--ledger", tmp_path / "desk.db")
    assert r.exit_code == 1 and "desk.db: no such ledger" in r.output
    assert not (tmp_path / "desk.sqlite3").exists() and not (tmp_path / "desk.db").exists()


def test_bad_input_fails_with_a_message(results, tmp_path):
    r = run(results, "--budget", "lots")
    assert r.exit_code == 1 and "--budget" in r.output
    assert run(results, "--budget", "0").exit_code == 2
    assert run().exit_code == 2
    assert run(results, "--ledger", tmp_path / "x.db").exit_code == 2
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV.replace("8293.82", "8293.823"), encoding="utf-8")
    r = run(bad)
    assert r.exit_code == 1 and f"{bad}:6: relief: has more than two decimals" in r.output


def test_html_into_a_missing_folder_fails_cleanly(results, tmp_path):
    r = run(results, "--html", tmp_path / "no" / "such" / "report.html")
    assert r.exit_code == 1 and "Traceback" not in r.output


def test_help_text():
    r = CliRunner().invoke(main, ["report", "--help"])
    assert r.exit_code == 0 and "--budget" in r.output and "--html" in r.output


def test_the_cli_does_not_import_polars_until_a_report_runs():
    code = "import sys, medaid.cli; assert 'polars' not in sys.modules, 'polars imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_report_on_a_real_desk_ledger(tmp_path):
    """Two stays settled at the desk (30,000 → 23,300; 80,000 → 68,800 with the 100,000 cap
    not yet reached) are reported from the ledger itself: 2 claims, 92,100.00 relief, none capped."""
    from click.testing import CliRunner

    import medaid
    from medaid.cli import main
    from medaid.ledger.ledger import Ledger

    book = medaid.load_rules("rules")
    ledger = Ledger(tmp_path / "desk.sqlite3")
    for cid, day, amount in (("C1", "2024-05-03", "30000"), ("C2", "2024-06-03", "80000")):
        ledger.settle(medaid.Claim.from_yuan(claim_id=cid, person_id="P1", date=day, self_pay=amount,
                                             group="key", kind="inpatient"), book)
    result = CliRunner().invoke(main, ["report", str(tmp_path / "desk.sqlite3"), "--json"])
    assert result.exit_code == 0, result.output
    import json

    figures = {f["key"]: f for f in json.loads(result.output)["figures"]}
    assert figures["relief_total"]["value"] == "92100.00"
    assert (figures["capped_claims"]["value"], figures["capped_claims"]["missing"]) == (0, 0)

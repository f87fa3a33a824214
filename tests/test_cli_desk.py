"""The desk commands, driven through click's CliRunner, plus a few real subprocess runs.

Figures by hand from the bundled rules (key recipients, inpatient: 70% of 1,000-10,000, 85% of
10,000-50,000, 95% above; annual cap 100,000): a 30,000 stay is relieved 23,300 and the patient
pays 6,700; after a 100,000 stay (87,800) only 12,200 of the cap is left.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from medaid.cli import main
from medaid.ledger.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
RULES = str(ROOT / "rules")
KEY = ["--group", "key", "--kind", "inpatient"]


@pytest.fixture
def ledger_path(tmp_path):
    return tmp_path / "desk.sqlite3"


@pytest.fixture
def run(ledger_path):
    runner = CliRunner()

    def invoke(*args: str, lang: str = "en"):
        env = {"MEDAID_RULES": RULES, "MEDAID_LEDGER": str(ledger_path), "MEDAID_LANG": lang}
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def settle(run, cid, amount, *extra, day="2024-05-03", lang="en"):
    return run("settle", "--person", "P1", "--self-pay", amount, "--date", day, "--claim-id", cid, *KEY,
               *extra, lang=lang)


# -- settle --------------------------------------------------------------------------------


def test_settle_prints_the_explanation_and_records_it(run, ledger_path):
    r = settle(run, "C1", "30000")
    assert r.exit_code == 0, r.output
    out = r.output
    for text in ["C1", "P1", "1,000.00 – 10,000.00", "9,000.00", "70%", "6,300.00", "20,000.00",
                 "85%", "17,000.00", "23,300.00", "6,700.00", "100,000.00", "76,700.00",
                 "cq-county-medical-aid 2019.1", "Legal basis", "ledger row 1"]:
        assert text in out, text
    with Ledger(ledger_path, create=False) as lg:
        assert [(e.claim_id, e.relief) for e in lg.entries()] == [("C1", 2_330_000)]


def test_settle_in_chinese(run):
    r = settle(run, "C1", "12,345.67", lang="zh")
    assert r.exit_code == 0
    # 6,300 + 2,345.67 × 85% = 8,293.8195 → 8,293.82; patient pays 4,051.85
    for text in ["结算单号", "合规自付费用", "救助金额", "个人负担", "8,293.82", "4,051.85",
                 "1,993.8195", "年度限额剩余", "91,706.18", "政策依据"]:
        assert text in r.output, text


def test_settle_generates_a_claim_id_when_none_is_given(run, ledger_path):
    r = run("settle", "--person", "P1", "--self-pay", "30000", "--date", "2024-05-03")
    assert r.exit_code == 0
    first = r.output.splitlines()[0]
    assert first.startswith("Claim id generated: 20240503-")
    cid = first.split(": ")[1]
    with Ledger(ledger_path, create=False) as lg:
        assert [e.claim_id for e in lg.entries()] == [cid]


def test_settle_json_and_a_replay(run):
    first = json.loads(settle(run, "C1", "30000", "--json").output)
    assert (first["relief"], first["patient_pays"], first["replayed"]) == ("23300.00", "6700.00", False)
    assert first["basis"].startswith("County health-poverty")
    again = json.loads(settle(run, "C1", "30000", "--json").output)
    assert again["replayed"] is True and again["seq"] == first["seq"] == 1


def test_settle_refuses_changed_content_naming_the_field(run):
    settle(run, "C1", "30000")
    r = settle(run, "C1", "30000", "--hospital", "H2")
    assert r.exit_code == 1
    assert "claim C1" in r.output and "hospital" in r.output


@pytest.mark.parametrize("args, words", [
    (["--self-pay", "-5"], ["--self-pay", "negative"]),
    (["--self-pay", "12.345"], ["--self-pay", "more than two decimals"]),
    (["--self-pay", "lots"], ["--self-pay", "not an amount"]),
    (["--self-pay", "100", "--total-cost", "1e3"], ["--total-cost", "not an amount"]),
    (["--self-pay", "100", "--date", "2024-02-30"], ["--date", "not a date"]),
    (["--self-pay", "100", "--date", "2018-12-31"], ["--date", "covers 2018-12-31"]),
    (["--self-pay", "100", "--group", "vip", "--kind", "inpatient"], ["--group/--kind", "'vip'"]),
    (["--self-pay", "100", "--person", " "], ["--person", "empty"]),
])
def test_settle_bad_input_is_a_usage_error_and_writes_nothing(run, ledger_path, args, words):
    base = ["settle", "--date", "2024-05-03"]
    if "--person" not in args:
        base += ["--person", "P1"]
    r = run(*base, *args)
    assert r.exit_code == 2, r.output
    for w in words:
        assert w in r.output, w
    assert not ledger_path.exists()


def test_a_foreign_file_as_ledger_is_refused(run, ledger_path):
    ledger_path.write_text("not a ledger\n" * 20)
    r = settle(run, "C1", "30000")
    assert r.exit_code == 1 and "not a medaid ledger" in r.output
    assert ledger_path.read_text() == "not a ledger\n" * 20


# -- quote ---------------------------------------------------------------------------------


def test_quote_without_a_ledger_uses_the_given_year_to_date(run, ledger_path):
    r = run("quote", "--person", "P1", "--self-pay", "30000", "--date", "2024-05-03",
            "--ytd-self-pay", "100000", "--ytd-relief", "87,800", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert (d["relief"], d["capped_by"], d["recorded"], d["claim_id"]) == ("12200.00", "annual_cap", False, None)
    assert not ledger_path.exists()


def test_quote_reads_the_ledger_and_records_nothing(run, ledger_path):
    settle(run, "C1", "100000")
    r = run("quote", "--person", "P1", "--self-pay", "30000", "--date", "2024-06-01", *KEY)
    assert r.exit_code == 0
    assert "Quote: nothing recorded" in r.output and "12,200.00" in r.output
    assert "limited by the annual cap" in r.output
    with Ledger(ledger_path, create=False) as lg:
        assert len(list(lg.entries())) == 1


def test_quote_without_ledger_or_year_to_date_is_a_usage_error(run, ledger_path):
    r = run("quote", "--person", "P1", "--self-pay", "30000", "--date", "2024-05-03")
    assert r.exit_code == 2 and "--ytd-self-pay" in r.output
    r = run("quote", "--person", "P1", "--self-pay", "30000", "--ytd-relief", "0")
    assert r.exit_code == 2 and "both" in r.output
    assert not ledger_path.exists()


# -- reverse and history -------------------------------------------------------------------


def test_reverse_takes_the_claim_out_and_lists_later_claims(run):
    settle(run, "C1", "100000")
    settle(run, "C2", "30000", day="2024-06-01")
    r = run("reverse", "C1", "--reason", "entered twice")
    assert r.exit_code == 0, r.output
    for text in ["Reversed claim C1", "entered twice", "100,000.00", "87,800.00",
                 "12,200.00 / 100,000.00", "87,800.00",
                 # C2 re-settled alone: 23,300 instead of the 12,200 the cap left it (docs/calculation.md)
                 "claim C2 (row 2) relief 12,200.00 -> 23,300.00, adjustment +11,100.00"]:
        assert text in r.output, text


def test_reverse_says_when_a_later_claim_keeps_its_relief_but_is_explained_anew(run):
    def out(cid, amount, day, lang="en"):
        return run("settle", "--person", "P1", "--self-pay", amount, "--date", day, "--claim-id", cid,
                   "--group", "key", "--kind", "outpatient-special", lang=lang)

    out("O1", "1000", "2024-03-01")  # 70% × (1,000 − 200) = 560
    out("O2", "20000", "2024-04-01")  # 70% × 20,800 − 560 = 14,000, cut to the claim cap 3,000
    r = run("reverse", "O1", "--reason", "not a special-disease visit")
    assert r.exit_code == 0, r.output
    # without O1: 70% × 19,800 = 13,860, still cut to 3,000
    assert "claim O2 (row 2) relief 3,000.00, unchanged; its explanation" in r.output
    assert "adjustment 0.00" in r.output and "->" not in r.output
    r = run("history", "P1", "--json")
    assert r.exit_code == 0, r.output
    [adj] = [e for e in json.loads(r.output)["entries"] if e["entry"] == "adjustment"]
    assert (adj["relief"], adj["bracket_relief"], adj["capped_by"], adj["adjustment"]) == (
        "3000.00", "13860.00", "claim_cap", "0.00")


def test_reverse_twice_or_unknown_is_refused(run, ledger_path):
    settle(run, "C1", "30000")
    assert run("reverse", "C1", "--reason", "x").exit_code == 0
    r = run("reverse", "C1", "--reason", "x")
    assert r.exit_code == 1 and "already reversed" in r.output
    r = run("reverse", "C9", "--reason", "x")
    assert r.exit_code == 1 and "C9" in r.output and "no such claim" in r.output
    assert run("reverse", "C1").exit_code == 2  # --reason is required


def test_history_shows_running_totals_per_pool(run):
    settle(run, "C1", "30000")
    settle(run, "C2", "5000", day="2024-06-01")
    run("settle", "--person", "P1", "--self-pay", "5000", "--date", "2024-06-02", "--claim-id", "O1",
        "--group", "key", "--kind", "outpatient-special")
    run("reverse", "C1", "--reason", "typo")
    r = run("history", "P1", "--year", "2024")
    assert r.exit_code == 0
    lines = r.output.splitlines()
    c2 = next(line for line in lines if " C2 " in line)
    # 30,000 → 23,300; then 5,000 → 2,800: running 35,000 self-pay, 26,100 relief
    assert "35,000.00" in c2 and "26,100.00" in c2
    rev = next(line for line in lines if " reversal " in line)
    assert "-30,000.00" in rev and "-23,300.00" in rev and "5,000.00" in rev and "2,800.00" in rev
    o1 = next(line for line in lines if " O1 " in line)
    assert "3,000.00" in o1  # 70% × 4,800 = 3,360, claim cap 3,000
    assert "Year-to-date by pool" in r.output


def test_history_json_and_chinese(run):
    settle(run, "C1", "30000")
    d = json.loads(run("history", "P1", "--json").output)
    assert [e["claim_id"] for e in d["entries"]] == ["C1"]
    assert d["pools"] == [{"benefit_year": 2024, "pool": "inpatient", "ytd_self_pay": "30000.00",
                           "ytd_relief": "23300.00", "annual_cap": "100000.00", "annual_cap_left": "76700.00"}]
    zh = run("history", "P1", lang="zh").output
    assert "一人一档" in zh and "结算" in zh and "76,700.00" in zh


def test_history_on_a_missing_ledger_is_an_error_and_creates_nothing(run, ledger_path):
    r = run("history", "P1")
    assert r.exit_code == 1 and "no ledger here" in r.output
    assert not ledger_path.exists()


# -- rules ---------------------------------------------------------------------------------


def test_rules_check_counts_the_examples_that_passed(run):
    r = run("rules", "check", RULES)
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if "key-inpatient" in x)
    assert line.split()[-2:] == ["9", "10"]  # 9 examples, 10 claims (one is a sequence of two)
    assert "3 plan(s), 11 example(s)" in r.output


def test_rules_check_reports_a_wrong_example_with_its_location(run, tmp_path):
    text = (ROOT / "rules" / "chongqing-county-2019.toml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('relief = "23300"', 'relief = "23300.01"'), encoding="utf-8")
    r = run("rules", "check", str(bad))
    assert r.exit_code == 1
    assert f"{bad}: plans[0].examples[5].relief" in r.output and "23,300.01" in r.output


def test_rules_show_prints_plans_brackets_caps_and_basis(run):
    r = run("rules", "show", RULES)
    assert r.exit_code == 0
    for text in ["cq-county-medical-aid 2019.1", "key-inpatient", "key/inpatient; default",
                 "1,000.00", "10,000.00", "70%", "95%", "100,000.00", "3,000.00", "year",
                 "County health-poverty"]:
        assert text in r.output, text
    zh = run("rules", "show", RULES, lang="zh").output
    assert "年度救助限额" in zh and "政策依据" in zh


# -- ledger verify -------------------------------------------------------------------------


def test_ledger_verify_passes_then_finds_tampering(run, ledger_path):
    settle(run, "C1", "30000")
    settle(run, "C2", "20000")
    r = run("ledger", "verify")
    assert r.exit_code == 0 and "2 row(s)" in r.output and "hash chain intact" in r.output
    import sqlite3

    con = sqlite3.connect(ledger_path, isolation_level=None)
    con.execute("DROP TRIGGER entries_never_updated")
    con.execute("UPDATE entries SET relief = 0 WHERE seq = 1")
    con.close()
    r = run("ledger", "verify")
    assert r.exit_code == 1
    assert "row 1: row_hash does not match" in r.output


# -- real processes ------------------------------------------------------------------------


def _medaid(*args: str, ledger: Path, lang: str = "en") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MEDAID_RULES": RULES,
           "MEDAID_LEDGER": str(ledger), "MEDAID_LANG": lang}
    return subprocess.run([sys.executable, "-m", "medaid.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_clerk_settles_reverses_and_looks_up_a_year_in_real_processes(ledger_path):
    p = _medaid("settle", "--person", "P7", "--self-pay", "30000", "--date", "2024-05-03",
                "--claim-id", "D1", ledger=ledger_path)
    assert p.returncode == 0, p.stderr
    assert "23,300.00" in p.stdout
    p = _medaid("reverse", "D1", "--reason", "wrong person", ledger=ledger_path, lang="zh")
    assert p.returncode == 0 and "已冲正结算单 D1" in p.stdout
    p = _medaid("history", "P7", "--year", "2024", "--json", ledger=ledger_path)
    assert [e["entry"] for e in json.loads(p.stdout)["entries"]] == ["settlement", "reversal"]
    p = _medaid("settle", "--person", "P7", "--self-pay", "-1", ledger=ledger_path)
    assert p.returncode == 2 and "--self-pay" in p.stderr
    p = _medaid("ledger", "verify", ledger=ledger_path)
    assert p.returncode == 0


def test_several_schemes_need_a_scheme_option(run, tmp_path):
    text = (ROOT / "rules" / "chongqing-county-2019.toml").read_text(encoding="utf-8")
    (tmp_path / "a.toml").write_text(text, encoding="utf-8")
    (tmp_path / "b.toml").write_text(text.replace('id = "cq-county-medical-aid"', 'id = "other"'), encoding="utf-8")
    args = ["quote", "--rules", str(tmp_path), "--person", "P1", "--self-pay", "30000",
            "--date", "2024-05-03", "--ytd-self-pay", "0", "--ytd-relief", "0"]
    r = run(*args)
    assert r.exit_code == 2 and "--scheme" in r.output
    r = run(*args, "--scheme", "other", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["rule_set_id"] == "other"


def test_a_desk_settle_and_quote_place_the_claim_once(run, monkeypatch):
    # issue #12: the desk placed a claim three times (the command, Ledger.settle, the quote);
    # placement reads the version in force with RuleBook.for_date, once per placement
    from medaid.domain.rules import RuleBook

    calls = []
    for_date = RuleBook.for_date
    monkeypatch.setattr(RuleBook, "for_date", lambda self, day: calls.append(day) or for_date(self, day))
    r = run("settle", "--person", "P1", "--self-pay", "30000", "--date", "2024-05-03", *KEY)
    assert r.exit_code == 0, r.output
    assert calls == [dt.date(2024, 5, 3)]
    calls.clear()
    r = run("quote", "--person", "P1", "--self-pay", "30000", "--date", "2024-05-04", *KEY)
    assert r.exit_code == 0, r.output
    assert calls == [dt.date(2024, 5, 4)]

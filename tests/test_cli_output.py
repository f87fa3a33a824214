"""What the commands put in front of people (issue #11, items 16-20): Chinese headers and
formulas under ``--lang zh``, ``--json`` failures as one JSON object, the over-budget warning,
header cells neutralised against formula injection, and terminal control characters from data
shown escaped.

Figures by hand from the bundled Chongqing county rules (key recipients, inpatient: 70% of
1,000-10,000 and 85% of 10,000-50,000): a 30,000 yuan stay is relieved
9,000 × 70% + 20,000 × 85% = 6,300 + 17,000 = 23,300 and the patient pays 6,700.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from click.testing import CliRunner

from medaid.cli import main

ROOT = Path(__file__).resolve().parents[1]
R = str(ROOT / "rules" / "chongqing-county-2019.toml")
ESC_TITLE = "\x1b]0;PWNED\x07"  # sets the terminal's title when printed raw
RLO = "\u202e"  # right-to-left override: reorders what follows


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def claims(tmp_path: Path, rows: str, head: str = "claim_id,person_id,date,self_pay,group,kind",
           name: str = "claims.csv") -> Path:
    p = tmp_path / name
    p.write_text(head + "\n" + rows, encoding="utf-8")
    return p


ONE_STAY = "C1,P1,2019-05-01,30000,key,inpatient\n"


# -- 16: --lang zh ---------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["csv", "xlsx"])
def test_chinese_results_carry_chinese_headers_and_read_back(tmp_path, ext):
    src = claims(tmp_path, ONE_STAY)
    out = tmp_path / f"results.{ext}"
    r = run("batch", str(src), "-o", str(out), "--rules", R, "--lang", "zh")
    assert r.exit_code == 0, r.output
    if ext == "csv":
        header = out.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    else:
        header = [c.value for c in next(openpyxl.load_workbook(out).active.iter_rows(max_row=1))]
    assert header[:4] == ["结算单号", "人员编号", "结算日期", "合规自付费用"]
    assert {"救助方案", "救助金额", "个人负担", "限额原因", "救助年度"} <= set(header)
    assert not {"relief", "patient_pays", "plan"} & set(header)
    # the report and recalc --previous read the Chinese headers back: 23,300 relieved
    rep = run("report", str(out), "--json")
    assert rep.exit_code == 0, rep.output
    figs = {f["key"]: f["value"] for f in json.loads(rep.stdout)["figures"]}
    assert figs["relief_total"] == "23300.00"
    adj = tmp_path / f"adj.{ext}"
    rc = run("recalc", str(src), "--previous", str(out), "--rules", R, "-o", str(adj), "--lang", "zh", "--json")
    assert rc.exit_code == 0, rc.output
    assert json.loads(rc.stdout)["totals"]["old_relief"] == "23300.00"
    assert json.loads(rc.stdout)["totals"]["adjustment"] == "0.00"
    if ext == "csv":
        assert adj.read_text(encoding="utf-8-sig").splitlines()[0] == (
            "结算单号,人员编号,医疗机构,原救助金额,新救助金额,调整金额,状态")
    again = run("recalc", str(src), "--previous", str(out), "--rules", R, "--json")
    assert json.loads(again.stdout)["totals"]["new_relief"] == "23300.00"


def test_chinese_rejects_have_chinese_headers(tmp_path):
    src = claims(tmp_path, ONE_STAY + "C2,P2,2019-05-01,abc,key,inpatient\n")
    out = tmp_path / "results.csv"
    r = run("batch", str(src), "-o", str(out), "--rules", R, "--lang", "zh", "--on-error", "skip")
    assert r.exit_code == 0, r.output
    rej = (tmp_path / "results.rejects.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert rej.split(",") == ["行号", "结算单号", "人员编号", "结算日期", "合规自付费用", "救助对象类别",
                              "就诊类型", "字段", "原因"]


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_machine_formats_keep_field_names_under_zh(tmp_path, ext):
    out = tmp_path / f"results.{ext}"
    r = run("batch", str(claims(tmp_path, ONE_STAY)), "-o", str(out), "--rules", R, "--lang", "zh")
    assert r.exit_code == 0, r.output
    cols = pl.read_parquet(out).columns if ext == "parquet" else pl.read_ndjson(out).columns
    assert "relief" in cols and "救助金额" not in cols


def test_a_chinese_header_already_taken_by_an_input_column_keeps_the_field_name(tmp_path):
    # an input column 救助金额 (say, last year's relief) passes through; the result's relief
    # then keeps its field name, and both readers take ``relief`` (23,300), not the input's 5
    src = claims(tmp_path, "C1,P1,2019-05-01,30000,key,inpatient,5\n",
                 head="claim_id,person_id,date,self_pay,group,kind,救助金额")
    out = tmp_path / "results.csv"
    assert run("batch", str(src), "-o", str(out), "--rules", R, "--lang", "zh").exit_code == 0
    header = out.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    assert "救助金额" in header and "relief" in header
    rep = json.loads(run("report", str(out), "--json").stdout)
    assert {f["key"]: f["value"] for f in rep["figures"]}["relief_total"] == "23300.00"
    rc = json.loads(run("recalc", str(src), "--previous", str(out), "--rules", R, "--json").stdout)
    assert rc["totals"]["old_relief"] == "23300.00"


def _results(tmp_path: Path) -> Path:
    out = tmp_path / "one-stay.results.csv"
    src = claims(tmp_path, ONE_STAY, name="one-stay.csv")
    assert run("batch", str(src), "-o", str(out), "--rules", R).exit_code == 0
    return out


def test_the_chinese_report_states_its_formulas_in_chinese(tmp_path):
    res = _results(tmp_path)
    html = tmp_path / "report.html"
    r = run("report", str(res), "--lang", "zh", "--budget", "100000", "--html", str(html))
    assert r.exit_code == 0, r.output
    page = re.sub(r"<[^>]*>", " ", html.read_text(encoding="utf-8"))  # the text, not the ids
    for shown in (r.stdout, page):
        assert "Σ 救助金额 ÷ 预算资金" in shown
        assert "Σ 个人负担 ÷ Σ 医疗总费用" in shown
        assert "救助金额 &gt; 0 的行" in shown or "救助金额 > 0 的行" in shown
        for english in ("Σ relief", "rows with relief", "distinct person_id", "capped_by set",
                        "patient_pays", "total_cost", "date (month)"):
            assert english not in shown, english
    # English keeps the formulas in field names
    en = run("report", str(res), "--budget", "100000")
    assert "Σ relief ÷ budget" in en.stdout


# -- 17: --json failures ----------------------------------------------------------------------


def _one_json_error(r, exit_code: int, code: str) -> dict:
    assert r.exit_code == exit_code, r.output
    d = json.loads(r.stdout)  # the whole of stdout is one JSON object
    assert d["error"] is True and d["code"] == code and d["exit_code"] == exit_code
    assert d["message"] and d["problems"]
    for p in d["problems"]:
        assert set(p) == {"file", "line", "field", "message"}
    return d


def test_json_failures_are_one_json_object_with_the_exit_code(tmp_path):
    ledger = str(tmp_path / "desk.sqlite3")
    env = {"MEDAID_RULES": R, "MEDAID_LEDGER": ledger}
    d = _one_json_error(run("settle", "--json", "--person", "P1", "--self-pay", "abc", env=env), 2, "usage")
    assert d["problems"][0]["field"] == "--self-pay"
    d = _one_json_error(run("quote", "--json", "--self-pay", "1", env=env), 2, "usage")
    assert d["problems"][0]["field"] == "--person"
    d = _one_json_error(run("report", "--json", "--no-such-option"), 2, "usage")
    assert d["problems"][0]["field"] == "--no-such-option"
    d = _one_json_error(run("report", str(tmp_path / "none.csv"), "--json"), 1, "refused")
    assert d["problems"][0]["file"] == str(tmp_path / "none.csv")
    assert run("settle", "--json", "--person", "P1", "--self-pay", "30000", "--date", "2019-05-01",
               "--claim-id", "C1", "--group", "key", "--kind", "inpatient", env=env).exit_code == 0
    _one_json_error(run("reverse", "C9", "--reason", "typo", "--json", env=env), 1, "refused")
    _one_json_error(run("history", "P1", "--json", "--ledger", str(tmp_path / "none.sqlite3")), 1, "refused")
    # a refused batch: the bad row's file, line and field, and the reconciliation
    src = claims(tmp_path, ONE_STAY + "C2,P2,2019-05-01,abc,key,inpatient\n")
    for cmd in (["batch", str(src), "-o", str(tmp_path / "r.csv")],
                ["recalc", str(src), "--previous", str(_results(tmp_path))]):
        d = _one_json_error(run(*cmd, "--rules", R, "--json"), 1, "refused")
        assert d["problems"][0] | {"message": ""} == {"file": str(src), "line": 3, "field": "self_pay", "message": ""}
        assert d["reconciliation"] == "rows read 2 = settled 1 + rejected 1"
    assert not (tmp_path / "r.csv").exists()


def test_without_json_failures_stay_text_on_stderr(tmp_path):
    r = run("report", str(tmp_path / "none.csv"))
    assert r.exit_code == 1 and r.stdout == ""
    assert "Error: " in r.stderr and "no such results file" in r.stderr


# -- 18: over budget --------------------------------------------------------------------------


def test_an_overrun_budget_is_flagged_in_text_html_and_json(tmp_path):
    res = _results(tmp_path)
    html = tmp_path / "r.html"
    # 23,300 relieved against a budget of 10,000: 233.00% used, 13,300.00 over
    r = run("report", str(res), "--budget", "10000", "--html", str(html))
    assert "WARNING: over budget: relief paid exceeds the budget by 13,300.00 (233.00% of the budget used)" in r.stdout
    page = html.read_text(encoding="utf-8")
    assert 'class="warn" id="warning-over-budget"' in page and "13,300.00" in page
    d = json.loads(run("report", str(res), "--budget", "10000", "--json").stdout)
    assert d["budget_exceeded"] is True and d["warnings"][0]["key"] == "over_budget"
    zh = run("report", str(res), "--budget", "10000", "--lang", "zh")
    assert "超出预算" in zh.stdout
    # within the budget (23,300 of 30,000) and without one: no warning
    ok = run("report", str(res), "--budget", "30000")
    assert "WARNING" not in ok.stdout
    assert json.loads(run("report", str(res), "--budget", "30000", "--json").stdout)["budget_exceeded"] is False
    assert json.loads(run("report", str(res), "--json").stdout)["budget_exceeded"] is None


# -- 19: header cells neutralised -------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("ext", ["csv", "xlsx"])
def test_input_column_names_are_neutralised_in_results_and_rejects(tmp_path, ext, lang):
    src = claims(tmp_path, "C1,P1,2019-05-01,30000,x\nC2,P2,2019-05-01,abc,y\n",
                 head="claim_id,person_id,date,self_pay,=1+2")
    out = tmp_path / f"results.{ext}"
    r = run("batch", str(src), "-o", str(out), "--rules", R, "--on-error", "skip", "--lang", lang)
    assert r.exit_code == 0, r.output
    for f in (out, tmp_path / f"results.rejects.{ext}"):
        if ext == "csv":
            header = f.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
        else:
            header = [c.value for c in next(openpyxl.load_workbook(f).active.iter_rows(max_row=1))]
        assert "'=1+2" in header and "=1+2" not in header, header
    # read back, the column has its own name again
    from medaid.io.readers import read_results

    assert "=1+2" in read_results(out).columns


# -- 20: terminal control characters ----------------------------------------------------------


def _shown_escaped(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and RLO not in text, repr(text)


def test_control_characters_from_data_are_shown_escaped(tmp_path):
    env = {"MEDAID_RULES": R, "MEDAID_LEDGER": str(tmp_path / "desk.sqlite3")}
    person = f"P{ESC_TITLE}{RLO}1"
    r = run("settle", "--person", person, "--self-pay", "30000", "--date", "2019-05-01", "--claim-id",
            "C1", "--group", "key", "--kind", "inpatient", "--hospital", f"H{ESC_TITLE}{RLO}", env=env)
    assert r.exit_code == 0, r.output
    _shown_escaped(r.output)
    # the id loses the override and the control characters (invisible: domain.identifiers.tidy_id)
    tidy = "P]0;PWNED1"
    assert tidy in r.output
    assert "H\\x1b]0;PWNED\\x07\\u202e" in r.output  # free text keeps them, shown escaped
    for args, shown_as in ((["history", person], tidy), (["reverse", "C1", "--reason", f"typo{ESC_TITLE}"], "\\x1b"),
                           (["quote", "--person", person, "--self-pay", "100", "--ytd-self-pay", "0",
                             "--ytd-relief", "0"], tidy),
                           (["reverse", f"C{ESC_TITLE}", "--reason", "x"], "C]0;PWNED")):
        shown = run(*args, env=env)
        _shown_escaped(shown.output)
        assert shown_as in shown.output, args
    # JSON stays JSON with the same values, escaped (json.dumps leaves U+202E raw)
    j = run("history", person, "--json", env=env)
    _shown_escaped(j.stdout)
    assert json.loads(j.stdout)["person_id"] == tidy


def test_batch_and_report_show_control_characters_escaped(tmp_path):
    src = claims(tmp_path, f"C1,P1,2019-05-01,30000,key,inpatient,H{ESC_TITLE}\n"
                           f"C{ESC_TITLE},P2,2019-05-01,abc,key,inpatient,H2\n",
                 head="claim_id,person_id,date,self_pay,group,kind,hospital")
    out = tmp_path / "results.csv"
    refused = run("batch", str(src), "-o", str(out), "--rules", R)
    assert refused.exit_code == 1
    _shown_escaped(refused.output)
    assert "C]0;PWNED" in refused.output  # the claim id, tidy: its control characters removed
    ok = run("batch", str(src), "-o", str(out), "--rules", R, "--on-error", "skip")
    assert ok.exit_code == 0
    _shown_escaped(ok.output)
    rep = run("report", str(out), "--by", "hospital")
    _shown_escaped(rep.output)
    assert "H\\x1b]0;PWNED\\x07" in rep.output


def test_rules_show_escapes_control_characters_in_rule_texts(tmp_path):
    text = Path(R).read_text(encoding="utf-8")
    assert 'title = "' in text
    rules = tmp_path / "r.toml"
    rules.write_text(text.replace('title = "', 'title = "\\u001b]0;PWNED\\u0007', 1), encoding="utf-8")
    r = run("rules", "show", str(rules))
    assert r.exit_code == 0, r.output
    _shown_escaped(r.output)
    assert "\\x1b]0;PWNED\\x07" in r.output


# -- no traceback ever reaches a user ----------------------------------------------------------


def test_bytes_that_are_not_text_in_an_option_are_refused_naming_the_option(tmp_path):
    """A terminal in another encoding hands Python lone surrogates; recording them would fail
    deep in the ledger (it did: a UnicodeEncodeError traceback). Refused at the door, exit 2."""
    import subprocess
    import sys

    env = {**os.environ, "MEDAID_RULES": R, "MEDAID_LEDGER": str(tmp_path / "desk.sqlite3"),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "medaid.cli", "settle", "--person", "P9", "--self-pay", "3000",
           "--date", "2024-05-03", "--hospital", b"H\x9b\xff".decode("utf-8", "surrogateescape")]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, errors="replace")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "--hospital" in r.stderr and "not valid text" in r.stderr
    j = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, errors="replace")
    assert j.returncode == 2 and json.loads(j.stdout)["problems"][0]["field"] == "--hospital"
    assert not (tmp_path / "desk.sqlite3").exists()  # nothing recorded


def test_a_defect_is_reported_as_an_internal_error_without_a_traceback(tmp_path, monkeypatch):
    """A bug of medaid's own is exit 3 with its kind named and no data from its message; with
    MEDAID_DEBUG=1 the traceback is shown to whoever debugs it."""
    from medaid.domain import rules

    def broken(*a, **k):
        raise ZeroDivisionError("P-secret-id-500101198001011234")

    monkeypatch.setattr(rules.RuleSet, "plan", broken)
    args = ["quote", "--person", "P1", "--self-pay", "100", "--date", "2024-05-03", "--rules", R,
            "--ytd-self-pay", "0", "--ytd-relief", "0"]
    r = run(*args)
    assert r.exit_code == 3, r.output
    assert "internal error (ZeroDivisionError)" in r.output and "secret" not in r.output
    assert "Traceback" not in r.output
    j = run(*args, "--json")
    assert j.exit_code == 3 and json.loads(j.stdout)["code"] == "failed"
    monkeypatch.setenv("MEDAID_DEBUG", "1")
    assert isinstance(run(*args).exception, ZeroDivisionError)


def test_the_html_page_never_replaces_what_the_report_reads(tmp_path):
    res = _results(tmp_path)
    before = res.read_bytes()
    (tmp_path / "page.html").symlink_to(res)
    for page in (res, tmp_path / "page.html"):  # the same file by its name, and by a link
        r = run("report", str(res), "--html", str(page))
        assert r.exit_code == 2 and "which the report reads; choose another file" in r.output, r.output
    assert res.read_bytes() == before

"""``medaid settle --channel …`` and ``medaid period …`` (docs/periods.md), through click's
CliRunner, on both ledger backends (tests/conftest.py).

Figures from rules/chongqing-county-2019.toml (key / inpatient, annual cap 100,000), by hand:
100,000 → 87,800.00; a following 30,000 stay is capped at 100,000 − 87,800 = 12,200.00, and
gets its full 23,300.00 (+11,100.00) once the first is rejected; 12,000 → 8,000.00.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from full_disk import full_for, needs_dev_full
from medaid.cli import main

RULES = Path(__file__).resolve().parents[1] / "rules"
PERSON = "500101198001011234"
APPLICANT = "500101199002021234"
ACCOUNT = "6222021234561234"
HOSPITAL = "County People's Hospital"


@pytest.fixture
def run(db):
    runner = CliRunner()

    def invoke(*args: str):
        env = {"MEDAID_LEDGER": db.location, "MEDAID_RULES": str(RULES), "MEDAID_LANG": "en", "COLUMNS": "200"}
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def settle(run, cid, amount, day, *extra, person=PERSON):
    r = run("settle", "--person", person, "--self-pay", amount, "--date", day, "--group", "key",
            "--kind", "inpatient", "--claim-id", cid, *extra)
    assert r.exit_code == 0, r.output
    return r


def bank(run, cid, amount, day):
    return settle(run, cid, amount, day, "--channel", "application", "--bank-account", "6222 0212 3456 1234",
                  "--account-name", "张三", person=APPLICANT)


def test_settle_records_the_channel_and_never_shows_the_account(run):
    settle(run, "ZY1", "30000", "2024-05-03", "--hospital", HOSPITAL)
    r = bank(run, "SQ1", "12000", "2024-05-10")
    assert ACCOUNT not in r.output and "张三" not in r.output
    r = run("history", APPLICANT)
    assert "application" in r.output and ACCOUNT not in r.output and "张三" not in r.output
    d = json.loads(run("history", APPLICANT, "--json").output)
    [e] = d["entries"]
    assert (e["channel"], e["bank_account"], e["account_name"]) == ("application", "6222********1234", "张*")
    assert "one-stop" in run("history", PERSON).output  # the desk's default
    zh = run("history", APPLICANT, "--lang", "zh").output
    assert "支付渠道" in zh and "事后申请" in zh


@pytest.mark.parametrize("extra, option", [
    (("--channel", "application", "--account-name", "张三"), "--channel"),
    (("--channel", "application", "--bank-account", "6222-0212-3456-1234", "--account-name", "张三"), "--bank-account"),
    (("--bank-account", ACCOUNT, "--account-name", "张三"), "--channel"),
    (("--channel", "post"), "--channel"),
])
def test_a_bad_payee_is_a_usage_error_naming_the_option_not_the_account(run, db, extra, option):
    r = run("settle", "--person", APPLICANT, "--self-pay", "100", "--date", "2024-05-03", *extra)
    assert r.exit_code == 2 and option in r.output, r.output
    assert "0212" not in r.output and "3456" not in r.output and "张三" not in r.output


def test_a_county_month_from_open_to_paid_with_its_lists(run, db, tmp_path):
    assert run("period", "open", "2024-05", "--by", "卫健委").exit_code == 0
    settle(run, "ZY1", "100000", "2024-05-03", "--hospital", HOSPITAL)
    settle(run, "ZY2", "30000", "2024-05-20", "--hospital", HOSPITAL)
    bank(run, "SQ1", "12000", "2024-05-10")
    # out of order: refused, exit 1, nothing recorded
    before = db.rows("SELECT count(*) FROM period_events")
    r = run("period", "approve", "2024-05")
    assert r.exit_code == 1 and "is open; approve needs a period that is reviewed (next: close)" in r.output
    assert db.rows("SELECT count(*) FROM period_events") == before
    r = run("period", "close", "2024-05", "--by", "卫健委")
    assert r.exit_code == 0 and "Declared through ledger row 3" in r.output
    rejections = tmp_path / "rejections.csv"
    rejections.write_text("结算单号,原因\nZY1,not an inpatient stay\n", encoding="utf-8")
    r = run("period", "review", "2024-05", "--rejections", str(rejections), "--by", "民政局")
    assert r.exit_code == 0, r.output
    assert "2 settlement(s) approved, 1 rejected." in r.output and "reversed as row 4" in r.output
    assert run("period", "approve", "2024-05", "--by", "财政局").exit_code == 0
    out = tmp_path / "out"
    out.mkdir()
    r = run("period", "pay", "2024-05", "-o", str(out), "--format", "both", "--by", "财政局")
    assert r.exit_code == 0 and "paid by 财政局" in r.output and ACCOUNT not in r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"2024-05-{n}.{x}" for n in ("bank", "hospitals", "summary") for x in ("csv", "xlsx")]
    assert all(stat.S_IMODE(os.stat(out / n).st_mode) == 0o600 for n in names)

    def rows(name):
        return list(csv.reader(io.StringIO((out / f"2024-05-{name}.csv").read_text(encoding="utf-8-sig"))))

    # 87,800 + 12,200 settled, −87,800 reversed by the rejection, +11,100 for ZY2: 23,300
    assert rows("hospitals") == [
        ["清算期", "医疗机构", "结算笔数", "结算救助金额", "冲正笔数", "冲正金额", "调整笔数", "调整金额", "拨付金额"],
        ["2024-05", HOSPITAL, "2", "100000.00", "1", "-87800.00", "1", "11100.00", "23300.00"]]
    assert rows("bank") == [
        ["清算期", "人员编号", "户名", "银行账号", "结算笔数", "结算救助金额", "冲正笔数", "冲正金额",
         "调整笔数", "调整金额", "兑付金额"],
        ["2024-05", APPLICANT, "张三", ACCOUNT, "1", "8000.00", "0", "0.00", "0", "0.00", "8000.00"]]
    assert rows("summary")[1:] == [
        ["2024-05", "一站式结算（拨付医疗机构）", "2", "100000.00", "1", "-87800.00", "1", "11100.00", "23300.00"],
        ["2024-05", "事后申请（银行兑付）", "1", "8000.00", "0", "0.00", "0", "0.00", "8000.00"],
        ["2024-05", "合计", "3", "108000.00", "1", "-87800.00", "1", "11100.00", "31300.00"]]
    from openpyxl import load_workbook

    ws = load_workbook(out / "2024-05-bank.xlsx").active
    assert [c.value for c in ws[2]][2:4] == ["张三", ACCOUNT] and ws.cell(2, 11).value == 8000
    shown = json.loads(run("period", "show", "2024-05", "--json").output)
    assert shown["state"] == "paid" and shown["total"]["net"] == "31300.00"
    assert [e["by"] for e in shown["events"]] == ["卫健委", "卫健委", "民政局", "财政局", "财政局"]
    assert ACCOUNT not in run("period", "show", "2024-05").output
    assert run("period", "list", "--json").output.count('"paid"') == 1
    # paid: nothing more, exit 1; a late settlement dated May goes to June
    assert run("period", "pay", "2024-05").exit_code == 1
    settle(run, "ZY3", "12000", "2024-05-28", "--hospital", HOSPITAL, person="500101197001011111")
    june = json.loads(run("period", "show", "2024-06", "--json").output)
    assert (june["state"], june["total"]["net"]) == (None, "8000.00")


def test_bad_months_and_unpaired_reasons_are_usage_errors(run, tmp_path):
    for bad in ("2024-13", "May"):
        r = run("period", "open", bad)
        assert r.exit_code == 2 and "write YYYY-MM" in r.output
    r = run("period", "review", "2024-05", "--reject", "A", "--reject", "B", "--reason", "x")
    assert r.exit_code == 2 and "one --reason for each --reject" in r.output
    r = run("period", "lists", "2024-05", "-o", str(tmp_path / "missing"))
    assert r.exit_code == 2


@needs_dev_full
def test_payment_lists_a_full_disk_stops_are_all_taken_back_and_the_period_is_not_paid(run, tmp_path, monkeypatch):
    assert run("period", "open", "2024-05", "--by", "卫健委").exit_code == 0
    settle(run, "ZY1", "30000", "2024-05-03", "--hospital", HOSPITAL)
    for step, by in (("close", "卫健委"), ("review", "民政局"), ("approve", "财政局")):
        assert run("period", step, "2024-05", "--by", by).exit_code == 0
    full_for(monkeypatch, "-hospitals.xlsx.")  # the CSV lists are written, then the first workbook is not
    out = tmp_path / "out"
    out.mkdir()
    r = run("period", "pay", "2024-05", "-o", str(out), "--format", "both", "--by", "财政局")
    assert r.exit_code == 1 and "2024-05-hospitals.xlsx: cannot be written" in r.output, r.output
    assert list(out.iterdir()) == []
    assert json.loads(run("period", "show", "2024-05", "--json").output)["state"] == "approved"

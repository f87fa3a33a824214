"""The reports that follow the county's cycle (issue #14): the monthly review (`--period`) and
the year-end evaluation against a targets file (`--targets`), on a small year worked by hand.

The year (yuan; relief by the source's brackets: 70% from 1,000, 85% from 10,000):

claim | person | settled    | kind       | hospital   | self-pay  | total cost | major | relief    | pays     | channel
------|--------|------------|------------|------------|-----------|------------|-------|-----------|----------|--------
R1    | P1     | 2024-01-15 | inpatient  | 县人民医院 | 30,000.00 | 100,000.00 | 是    | 23,300.00 | 6,700.00 | 一站式
R2    | P2     | 2024-02-10 | inpatient  | 县人民医院 | 5,000.00  | 20,000.00  | 否    | 2,800.00  | 2,200.00 | one-stop
R3    | P3     | 2024-03-01 | inpatient  | 县中医院   | 800.00    | 3,000.00   | 否    | 0.00      | 800.00   | applic.
R4    | P1     | 2024-03-15 | inpatient  | 县中医院   | 12,000.00 | (none)     | 是    | 8,000.00  | 4,000.00 | 申请
R5    | P4     | 2024-03-31 | outpatient | 县人民医院 | 2,000.00  | 4,000.00   | (none)| 700.00    | 1,300.00 | (none)
R6    | P5     | 2024-04-01 | inpatient  | 县人民医院 | 10,000.00 | 40,000.00  | 否    | 6,300.00  | 3,700.00 | one-stop
R7    | P6     | 2025-01-05 | inpatient  | 县人民医院 | 4,000.00  | 9,000.00   | 是    | 2,100.00  | 1,900.00 | one-stop

(applic. = application; R5 is an outpatient special-disease claim.)

The plan of 2024: 4 person-times, 3 major-disease person-times, a 50% major-disease share, a
budget of 40,000.00, 30,000.00 allocated, received 2024-02-05 though due 2024-01-31.

Every expected value below is worked by hand from this table (percentages rounded half-up by
the test's own Decimal arithmetic, :func:`pct`), never by medaid's report code.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from medaid.cli import main

CSV = """\
claim_id,person_id,date,kind,hospital,self_pay,total_cost,major_disease,relief,patient_pays,channel,benefit_year
R1,P1,2024-01-15,inpatient,县人民医院,30000.00,100000.00,是,23300.00,6700.00,一站式,2024
R2,P2,2024-02-10,inpatient,县人民医院,5000.00,20000.00,否,2800.00,2200.00,one-stop,2024
R3,P3,2024-03-01,inpatient,县中医院,800.00,3000.00,否,0.00,800.00,application,2024
R4,P1,2024-03-15,inpatient,县中医院,12000.00,,是,8000.00,4000.00,申请,2024
R5,P4,2024-03-31,outpatient-special,县人民医院,2000.00,4000.00,,700.00,1300.00,,2024
R6,P5,2024-04-01,inpatient,县人民医院,10000.00,40000.00,否,6300.00,3700.00,one-stop,2024
R7,P6,2025-01-05,inpatient,县人民医院,4000.00,9000.00,是,2100.00,1900.00,one-stop,2025
"""

TARGETS = """\
# the plan of 2024
year = 2024
person_times = 4
major_disease_person_times = 3
major_disease_share = 50
budget = "40000.00"
fund_allocated = "30000.00"
fund_received = 2024-02-05
fund_due = 2024-01-31
"""


def pct(num: int, den: int) -> str:
    """num ÷ den as a percentage with 2 decimals, half-up, by Decimal: the test's own rounding."""
    return str((Decimal(num) * 100 / Decimal(den)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    results, targets = tmp_path / "results.csv", tmp_path / "targets.toml"
    results.write_text(CSV, encoding="utf-8")
    targets.write_text(TARGETS, encoding="utf-8")
    return results, targets


def run(*args: object):
    return CliRunner().invoke(main, ["report", *map(str, args)])


def report_json(*args: object) -> dict:
    r = run(*args, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def rows(items: list[dict]) -> dict[str, dict]:
    return {f["key"]: f for f in items}


# ---------------------------------------------------------------------------------------------
# the year-end evaluation against the plan


def test_the_year_is_the_targets_year_and_judged_against_its_plan(files) -> None:
    results, targets = files
    data = report_json(results, "--targets", targets)
    assert data["scope"]["year"] == 2024 and data["scope"]["rows_in_scope"] == 6  # R7 is 2025's
    ev = rows(data["evaluation"])
    # person-times: R1, R2, R4, R5, R6 have relief (R3 has none): 5 of a planned 4
    assert (ev["person_times"]["plan"], ev["person_times"]["value"]) == (4, 5)
    assert ev["person_times"]["of_plan"] == "125.00" == pct(5, 4)
    assert (ev["person_times"]["rows"], ev["person_times"]["missing"]) == (6, 0)
    # major disease among the assisted claims carrying the flag (R1 是, R2 否, R4 是, R6 否; R5 has none)
    major = ev["major_disease_person_times"]
    assert (major["plan"], major["value"], major["rows"], major["missing"]) == (3, 2, 4, 1)
    assert major["of_plan"] == pct(2, 3) == "66.67"
    share = ev["major_disease_share"]
    assert (share["plan"], share["value"], share["of_plan"]) == ("50.00", pct(2, 4), "100.00")
    assert share["of_plan_exact"] == {"numerator": 2 * 2, "denominator": 4 * 1}  # (2/4) ÷ (1/2)


def test_the_one_stop_rate_counts_claims_without_a_channel_as_lacking(files) -> None:
    results, targets = files
    ev = rows(report_json(results, "--targets", targets)["evaluation"])
    # R1 一站式, R2 one-stop, R6 one-stop; R3 application, R4 申请; R5 has no channel
    rate = ev["one_stop_rate"]
    assert (rate["value"], rate["rows"], rate["missing"]) == (pct(3, 5), 5, 1) == ("60.00", 5, 1)
    assert "plan" not in rate


def test_without_a_channel_column_the_one_stop_rate_is_not_guessed(tmp_path: Path) -> None:
    p = tmp_path / "no-channel.csv"
    p.write_text("claim_id,person_id,date,relief\nA,P1,2024-05-01,10.00\nB,P2,2024-05-02,0.00\n", encoding="utf-8")
    figs = rows(report_json(p)["figures"])
    assert (figs["one_stop_rate"]["value"], figs["one_stop_rate"]["rows"], figs["one_stop_rate"]["missing"]) == (
        None, 0, 2)
    assert figs["one_stop_claims"]["value"] is None


def test_the_self_pay_ratios_on_compliant_self_pay_and_on_all_costs(files) -> None:
    results, targets = files
    ev = rows(report_json(results, "--targets", targets)["evaluation"])
    # Σ pays 6,700 + 2,200 + 800 + 4,000 + 1,300 + 3,700 = 18,700 of Σ self-pay 59,800 (R1..R6)
    compliant = ev["self_pay_ratio_compliant"]
    assert (compliant["value"], compliant["rows"], compliant["missing"]) == (pct(18_700, 59_800), 6, 0)
    assert compliant["value"] == "31.27"
    # on all costs: R4 has no total cost: 18,700 − 4,000 = 14,700 of 167,000
    every = ev["self_pay_ratio_all"]
    assert (every["value"], every["rows"], every["missing"]) == (pct(14_700, 167_000), 5, 1) == ("8.80", 5, 1)
    assert every["exact"] == {"numerator": 1_470_000, "denominator": 16_700_000}  # fen


def test_the_fund_arrived_late_and_short(files) -> None:
    results, targets = files
    ev = rows(report_json(results, "--targets", targets)["evaluation"])
    arrival = ev["fund_arrival"]
    assert (arrival["plan"], arrival["value"], arrival["of_plan"]) == ("40000.00", "30000.00", pct(30_000, 40_000))
    assert (arrival["rows"], arrival["missing"]) == (0, 0)
    assert ev["fund_on_time"]["value"] == "0.00"  # 2024-02-05 is after 2024-01-31
    assert ev["fund_days_late"]["value"] == 5


@pytest.mark.parametrize(("received", "due", "on_time", "late"), [
    ("2024-01-01", None, "100.00", 0),        # due by default on the year's first day
    ("2024-01-02", None, "0.00", 1),
    ("2024-03-31", "2024-03-31", "100.00", 0),
    ("2024-03-01", "2024-03-31", "100.00", 0),  # early is on time, never "negative days late"
])
def test_timeliness_against_the_due_date(files, received, due, on_time, late) -> None:
    results, targets = files
    text = TARGETS.replace("fund_received = 2024-02-05", f"fund_received = {received}").replace(
        "fund_due = 2024-01-31", "" if due is None else f'fund_due = "{due}"')
    targets.write_text(text, encoding="utf-8")
    data = report_json(results, "--targets", targets)
    ev = rows(data["evaluation"])
    assert (ev["fund_on_time"]["value"], ev["fund_days_late"]["value"]) == (on_time, late)
    assert data["targets"]["fund_due"] == (due or "2024-01-01")


def test_budget_use_and_the_overrun_are_flagged(files) -> None:
    results, targets = files
    data = report_json(results, "--targets", targets)
    ev = rows(data["evaluation"])
    # Σ relief 23,300 + 2,800 + 0 + 8,000 + 700 + 6,300 = 41,100 of a 40,000 budget
    use = ev["budget_use"]
    assert (use["plan"], use["value"], use["of_plan"]) == ("40000.00", "41100.00", pct(41_100, 40_000))
    assert use["of_plan"] == "102.75"
    assert ev["budget_left"]["value"] == "-1100.00"
    assert data["budget_exceeded"] is True
    assert rows(data["figures"])["budget"]["computed_from"] == "targets: budget"
    text = run(results, "--targets", targets).output
    warning = "WARNING: over budget: relief paid exceeds the budget by 1,100.00 (102.75% of the budget used)"
    assert text.count(warning) == 2


def test_the_text_and_html_show_plan_actual_and_percent_of_plan(files, tmp_path: Path) -> None:
    results, targets = files
    page = tmp_path / "evaluation.html"
    r = run(results, "--targets", targets, "--html", page)
    assert r.exit_code == 0, r.output
    section = r.output.split("== Evaluation against the plan ==")[1]
    line = next(x for x in section.splitlines() if x.startswith("Assisted person-times"))
    assert re.search(r"\b4\s+5\s+125\.00%\s+rows with relief > 0; plan: person_times\s+6\s+0$", line), line
    assert "Fund received 2024-02-05, due 2024-01-31." in section
    root = ET.parse(page).getroot()
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    found = root.findall(".//tr[@id='eval-person_times']") or root.findall(".//h:tr[@id='eval-person_times']", ns)
    assert [td.text for td in found[0]][1:4] == ["4", "5", "125.00%"]
    over = root.findall(".//tr[@id='eval-budget_left']") or root.findall(".//h:tr[@id='eval-budget_left']", ns)
    assert over[0].get("class") == "over"


# ---------------------------------------------------------------------------------------------
# the monthly review


def test_the_month_by_settlement_date_with_the_year_to_date_beside_it(files) -> None:
    results, targets = files
    data = report_json(results, "--period", "2024-03", "--targets", targets)
    scope = data["scope"]
    # March: R3 (03-01), R4 (03-15), R5 (03-31); R6 (04-01) is April's; R7 is 2025's
    assert (scope["period"], scope["rows_in_scope"], scope["rows_in_year_to_date"]) == ("2024-03", 3, 5)
    assert (scope["first_date"], scope["last_date"]) == ("2024-03-01", "2024-03-31")
    figs = rows(data["figures"])
    claims, relief = figs["claims"], figs["relief_total"]
    assert (claims["value"], claims["year_to_date"]["value"]) == (3, 5)
    assert (relief["value"], relief["year_to_date"]["value"]) == ("8700.00", "34800.00")
    assert (figs["assisted_claims"]["value"], figs["assisted_claims"]["year_to_date"]["value"]) == (2, 4)
    one_stop = figs["one_stop_rate"]  # March: R3, R4 by application, R5 unknown; to date also R1, R2
    assert (one_stop["value"], one_stop["rows"], one_stop["missing"]) == ("0.00", 2, 1)
    assert (one_stop["year_to_date"]["value"], one_stop["year_to_date"]["rows"],
            one_stop["year_to_date"]["missing"]) == (pct(2, 4), 4, 1)
    # what is left of the budget is the year to date's: 40,000 − 34,800
    assert figs["budget_left"]["value"] is None
    assert figs["budget_left"]["year_to_date"]["value"] == "5200.00"
    assert data["budget_exceeded"] is False
    # the By month table runs from January to the month; By hospital is the month's payments
    assert [(m["month"], m["relief"]) for m in data["tables"]["monthly"]["rows"]] == [
        ("2024-01", "23300.00"), ("2024-02", "2800.00"), ("2024-03", "8700.00")]
    assert [(h["hospital"], h["relief"]) for h in data["tables"]["hospital"]["rows"]] == [
        ("县中医院", "8000.00"), ("县人民医院", "700.00")]


def test_in_a_monthly_review_the_plan_is_compared_with_the_year_to_date(files) -> None:
    results, targets = files
    ev = rows(report_json(results, "--period", "2024-03", "--targets", targets)["evaluation"])
    # to date: R1, R2, R4, R5 assisted; flagged major R1, R4 of R1, R2, R4 carrying the flag
    assert (ev["person_times"]["value"], ev["person_times"]["of_plan"]) == (4, "100.00")
    assert (ev["major_disease_person_times"]["value"], ev["major_disease_person_times"]["of_plan"]) == (2, pct(2, 3))
    assert ev["major_disease_share"]["value"] == pct(2, 3) == "66.67"
    assert ev["major_disease_share"]["of_plan"] == pct(2 * 2, 3 * 1) == "133.33"
    assert (ev["budget_use"]["value"], ev["budget_use"]["of_plan"]) == ("34800.00", "87.00")


def test_the_monthly_review_text_shows_both_columns(files) -> None:
    results, _ = files
    r = run(results, "--period", "2024-12")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("Medical aid: monthly review 2024-12\n")
    head = next(x for x in r.output.splitlines() if x.startswith("Indicator"))
    assert re.search(r"This month\s+Year to date\s+Computed from", head)
    line = next(x for x in r.output.splitlines() if x.startswith("Claims settled"))
    assert re.search(r"\s0\s+6\s+rows\s+0 / 6\s+0 / 0$", line), line  # nothing settled in December


# ---------------------------------------------------------------------------------------------
# Chinese pages


ZH_ALLOWED = re.compile(r"medaid|\d[\d.]*")


def _stray_english(text: str, *paths: Path) -> list[str]:
    for p in paths:
        text = text.replace(str(p), "")
    text = ZH_ALLOWED.sub("", text)
    return sorted(set(re.findall(r"[A-Za-z]+", text)))


def test_the_chinese_monthly_review_and_evaluation_are_fully_chinese(files, tmp_path: Path) -> None:
    results, targets = files
    page = tmp_path / "review.html"
    r = run(results, "--period", "2024-03", "--targets", targets, "--budget", "40000", "--lang", "zh",
            "--html", page)
    assert r.exit_code == 0, r.output
    assert "医疗救助月度审核报告（2024-03）" in r.output and "绩效目标完成情况" in r.output
    assert "一站式即时结算率" in r.output and "完成计划比例" in r.output
    assert _stray_english(r.output, results, targets, page) == []
    root = ET.parse(page).getroot()
    body_text = " ".join(t for e in root.iter() if not str(e.tag).endswith("style")
                         for t in (e.text or "", e.tail or ""))
    assert "资金逾期到位天数" in body_text
    assert _stray_english(body_text, results, targets, page) == []


def test_the_chinese_year_end_evaluation_is_fully_chinese(files) -> None:
    results, targets = files
    r = run(results, "--targets", targets, "--lang", "zh")
    assert r.exit_code == 0, r.output
    assert _stray_english(r.output, results, targets) == []
    # the check can fail: the English page has English labels
    assert "Evaluation" in _stray_english(run(results, "--targets", targets).output, results, targets)


# ---------------------------------------------------------------------------------------------
# bad targets files, bad options: clear messages and exit codes


@pytest.mark.parametrize(("text", "expected"), [
    ("year = 2024\nbudgt = 5\n",
     ["targets.toml:2: budgt: unknown key; allowed: year, person_times"]),
    ("person_times = 40000\n",
     ["targets.toml: year: missing: the benefit year these targets are for"]),
    ('year = 2024\nperson_times = "many"\nmajor_disease_person_times = 0\n',
     ["targets.toml:2: person_times: must be a whole number of person-times, more than 0",
      "targets.toml:3: major_disease_person_times: must be a whole number"]),
    ("year = 2024\nperson_times = 4.5\n", ["targets.toml:2: person_times: must be a whole number"]),
    ("year = 2024\nmajor_disease_share = 0\n", ["targets.toml:2: major_disease_share: must be a percentage above 0"]),
    ('year = 2024\nmajor_disease_share = "101%"\n', ["targets.toml:2: major_disease_share: must be a percentage"]),
    ('year = 2024\nbudget = "1.234"\n', ["targets.toml:2: budget: has more than two decimals"]),
    ("year = 2024\nbudget = 0\n", ["targets.toml:2: budget: must be more than 0"]),
    ('year = 2024\nbudget = "lots"\n', ["targets.toml:2: budget: is not an amount in yuan"]),
    ("year = 2024\nbudget = -5\n", ["targets.toml:2: budget: must not be negative"]),
    ('year = 2024\nbudget = 100\nfund_allocated = 100\nfund_received = "2024-02-30"\n',
     ["targets.toml:4: fund_received: must be a date, YYYY-MM-DD"]),
    ("year = 2024\nfund_allocated = 100\n", ["targets.toml:2: fund_allocated: needs budget too"]),
    ("year = 2024\nbudget = 100\nfund_received = 2024-01-05\n",
     ["targets.toml:3: fund_received: needs fund_allocated too"]),
    ("year = 2024\nbudget = 100\nfund_allocated = 100\nfund_due = 2024-01-05\n",
     ["targets.toml:4: fund_due: needs fund_received too"]),
    ("year = 24\n", ["targets.toml:1: year: must be a year"]),
    ("year = 2024\nperson_times = \n", ["targets.toml: not valid TOML", "line 2"]),
    ("year = 2023\n", ["targets.toml: year: the targets are for 2023 but the report is for 2024 (--year)"]),
])
def test_a_bad_targets_file_is_refused_naming_file_line_key_and_what_is_wrong(files, tmp_path, text, expected):
    results, targets = files
    targets.write_text(text, encoding="utf-8")
    page = tmp_path / "page.html"
    r = run(results, "--targets", targets, "--year", "2024", "--html", page)
    assert r.exit_code == 1, r.output
    for e in expected:
        assert e in r.output, (e, r.output)
    assert "Traceback" not in r.output and not page.exists()


def test_a_missing_or_unreadable_targets_file(files, tmp_path: Path) -> None:
    results, _ = files
    r = run(results, "--targets", tmp_path / "no.toml")
    assert r.exit_code == 1 and f"{tmp_path / 'no.toml'}: no such targets file" in r.output
    bad = tmp_path / "gbk.toml"
    bad.write_bytes("year = 2024 # 计划\n".encode("gbk"))
    r = run(results, "--targets", bad)
    assert r.exit_code == 1 and "gbk.toml: not UTF-8 text" in r.output and "Traceback" not in r.output


def test_the_targets_must_be_for_the_period_s_year_and_give_the_budget_once(files) -> None:
    results, targets = files
    r = run(results, "--targets", targets, "--period", "2025-01")
    assert r.exit_code == 1 and "year: the targets are for 2024 but the report is for 2025 (--period)" in r.output
    r = run(results, "--targets", targets, "--budget", "50000")
    assert r.exit_code == 1 and "targets.toml: budget: differs from --budget; give the budget in one place" in r.output
    assert run(results, "--targets", targets, "--budget", "40,000.00").exit_code == 0  # the same budget


@pytest.mark.parametrize("period", ["2024-13", "2024-3", "March", "2024-00", "24-03"])
def test_a_bad_period_is_a_usage_error(files, period) -> None:
    r = run(files[0], "--period", period)
    assert r.exit_code == 2 and "--period" in r.output and "YYYY-MM" in r.output


def test_year_and_period_must_agree(files) -> None:
    r = run(files[0], "--period", "2024-03", "--year", "2025")
    assert r.exit_code == 2 and "--year 2025 and --period 2024-03 name different years" in r.output
    assert run(files[0], "--period", "2024-03", "--year", "2024").exit_code == 0


def test_an_unknown_channel_is_refused_with_its_line(tmp_path: Path) -> None:
    p = tmp_path / "results.csv"
    p.write_text(CSV.replace(",one-stop,2024\n", ",desk,2024\n", 1), encoding="utf-8")
    r = run(p)
    assert r.exit_code == 1
    assert f"{p}:3: channel: is not a settlement channel (one-stop or application; 一站式 or 申请)" in r.output


def test_the_channel_is_read_under_its_chinese_header(tmp_path: Path) -> None:
    p = tmp_path / "results.csv"
    p.write_text(CSV.replace(",channel,", ",结算方式,", 1), encoding="utf-8")
    figs = rows(report_json(p, "--year", "2024")["figures"])
    assert (figs["one_stop_claims"]["value"], figs["one_stop_rate"]["value"]) == (3, "60.00")


def test_a_monthly_review_straight_from_a_desk_ledger(tmp_path: Path) -> None:
    """Two stays settled at the desk: 30,000 in May (relief 23,300) and 80,000 in June
    (6,300 + 85% × 40,000 + 95% × 30,000 = 68,800, within the 100,000 cap).  June's review:
    68,800.00 that month, 92,100.00 to date."""
    import medaid
    from medaid.ledger.ledger import Ledger

    book = medaid.load_rules("rules")
    ledger = Ledger(tmp_path / "desk.sqlite3")
    for cid, day, amount in (("C1", "2024-05-03", "30000"), ("C2", "2024-06-03", "80000")):
        ledger.settle(medaid.Claim.from_yuan(claim_id=cid, person_id="P1", date=day, self_pay=amount,
                                             group="key", kind="inpatient"), book)
    data = report_json("--ledger", tmp_path / "desk.sqlite3", "--period", "2024-06")
    relief = rows(data["figures"])["relief_total"]
    assert (relief["value"], relief["year_to_date"]["value"]) == ("68800.00", "92100.00")
    assert (data["scope"]["rows_in_scope"], data["scope"]["rows_in_year_to_date"]) == (1, 2)


def test_the_one_stop_rate_from_a_ledger_counts_its_channels(tmp_path: Path, db) -> None:
    """A ledger (an SQLite file, then PostgreSQL) holding three one-stop settlements, one by
    application and one settled without a channel: one-stop 3 of the 4 rows with a channel =
    75.00%, the fifth lacking (docs/report.md: one-stop ÷ rows with a `channel`).  The
    application's payee reaches neither the rows the report reads nor its output."""
    import medaid
    from medaid.ledger import open_ledger

    book = medaid.load_rules("rules")
    account = "6222020200112233445"
    paid = {"O1": "one-stop", "O2": "one-stop", "O3": "one-stop", "A1": "application", "N1": None}
    with open_ledger(db.location) as lg:
        for n, (cid, channel) in enumerate(paid.items(), start=1):
            payee = {"bank_account": account, "account_name": "张三"} if channel == "application" else {}
            lg.settle(medaid.Claim.from_yuan(claim_id=cid, person_id=f"P{n}", date="2024-05-03", self_pay="3000",
                                             group="key", kind="inpatient", channel=channel, **payee), book)
        got = list(lg.results_rows())
    assert {r["claim_id"]: r["channel"] for r in got} == paid
    assert not {"bank_account", "account_name"} & {k for r in got for k in r}
    targets = tmp_path / "targets.toml"
    targets.write_text(TARGETS, encoding="utf-8")
    r = run("--ledger", db.location, "--targets", targets, "--json")
    assert r.exit_code == 0, r.output
    assert account not in r.output and "张三" not in r.output
    data = json.loads(r.output)
    rate = rows(data["evaluation"])["one_stop_rate"]
    assert (rate["value"], rate["rows"], rate["missing"]) == (pct(3, 4), 4, 1) == ("75.00", 4, 1)
    figs = rows(data["figures"])
    assert (figs["one_stop_claims"]["value"], figs["one_stop_rate"]["value"]) == (3, "75.00")

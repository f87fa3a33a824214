"""``medaid batch --lang zh`` writes a claim attribute's column under the title the rules give it
(``level`` → 医院等级, ``disease`` → 病种; docs/batch.md, *Output files*), and such a results
file reads back: ``medaid report``, ``medaid recalc --previous`` and ``medaid batch --opening``.

Figures by hand: the county example year under rules/county (tests/test_county_scheme.py works
every claim): relief 252,765.00 of which 32,695.00 second-stage; the second half of the year
(July–December) settled on the opening of the first half gets the year's reliefs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from click.testing import CliRunner

from medaid.cli import main
from medaid.io.cells import sheet_headers
from medaid.money import parse_yuan
from test_county_scheme import EXPECTED

ROOT = Path(__file__).resolve().parents[1]
RULES = str(ROOT / "rules" / "county")
CLAIMS = ROOT / "examples" / "county-claims-2024.csv"


def run(*args: str) -> str:
    r = CliRunner().invoke(main, list(args))
    assert r.exit_code == 0, r.output
    return r.stdout


def header_of(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return next(csv.reader(f))


@pytest.fixture(scope="module")
def zh_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zh") / "results.csv"
    run("batch", str(CLAIMS), "--rules", RULES, "-o", str(out), "--lang", "zh")
    return out


def test_the_attribute_columns_are_headed_by_their_titles_in_chinese(zh_results, tmp_path):
    head = header_of(zh_results)
    assert "医院等级" in head and "病种" in head and "level" not in head and "disease" not in head
    assert head.index("医院等级") == head.index("医疗机构") + 1  # in the input's place
    # English keeps the codes, as it keeps every field's name
    en = tmp_path / "en.csv"
    run("batch", str(CLAIMS), "--rules", RULES, "-o", str(en))
    assert "level" in header_of(en) and "disease" in header_of(en) and "医院等级" not in header_of(en)
    # XLSX too
    xlsx = tmp_path / "zh.xlsx"
    run("batch", str(CLAIMS), "--rules", RULES, "-o", str(xlsx), "--lang", "zh")
    heads = [c.value for c in next(openpyxl.load_workbook(xlsx, read_only=True).active.iter_rows(max_row=1))]
    assert {"医院等级", "病种"} <= set(heads) and "level" not in heads


def test_a_title_is_used_only_where_it_cannot_be_read_as_another_column():
    # a title that is a header medaid reads as a field (医疗机构 = hospital), or another column's
    # name, leaves the attribute under its name
    cols = ["claim_id", "hospital", "level", "place", "grade"]
    titles = {"level": "医疗机构", "place": "grade", "grade": "等级"}
    assert sheet_headers(cols, "zh", titles) == ["结算单号", "医疗机构", "level", "place", "等级"]
    assert sheet_headers(cols, "en", titles) == cols


def test_the_report_reads_the_chinese_results(zh_results):
    figures = {f["key"]: f["value"] for f in json.loads(run("report", str(zh_results), "--json"))["figures"]}
    assert (figures["relief_total"], figures["second_relief_total"]) == ("252765.00", "32695.00")
    assert figures["claims"] == 20


def test_recalc_reads_the_chinese_results_as_the_previous_ones(zh_results, tmp_path):
    out = tmp_path / "adjustments.csv"
    run("recalc", str(CLAIMS), "--rules", RULES, "--previous", str(zh_results), "-o", str(out))
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert len(rows) == 20 and {r["status"] for r in rows} == {"same"}
    assert {r["claim_id"]: r["new_relief"] for r in rows} == {
        c: f"{parse_yuan(v[0]) // 100}.00" for c, v in EXPECTED.items()}


def test_the_second_half_on_the_opening_of_the_first_half_in_chinese_gets_the_years_reliefs(tmp_path):
    raw = pl.read_csv(CLAIMS, infer_schema=False)
    date = raw.columns[3]  # 结算日期
    first, second = tmp_path / "h1.csv", tmp_path / "h2.csv"
    raw.filter(pl.col(date) < "2024-07-01").write_csv(first)
    raw.filter(pl.col(date) >= "2024-07-01").write_csv(second)
    run("batch", str(first), "--rules", RULES, "-o", str(tmp_path / "h1.results.csv"), "--lang", "zh")
    assert "医院等级" in header_of(tmp_path / "h1.results.csv")
    run("batch", str(second), "--rules", RULES, "-o", str(tmp_path / "h2.results.csv"), "--lang", "zh",
        "--opening", str(tmp_path / "h1.results.csv"))
    rows = list(csv.DictReader((tmp_path / "h2.results.csv").open(encoding="utf-8-sig")))
    # 7 claims from July on: YX202407020001 … YX202412150001, each with its relief of the whole year
    assert len(rows) == 7
    for r in rows:
        relief, second_relief, _, _ = EXPECTED[r["结算单号"]]
        assert parse_yuan(r["救助金额"]) == parse_yuan(relief), r["结算单号"]
        assert parse_yuan(r["倾斜救助金额"]) == parse_yuan(second_relief or "0"), r["结算单号"]
    # e.g. D's 住院 25,000 in September: only 19,850 left of the person cap after the first half's 30,150
    assert {r["结算单号"]: r["救助金额"] for r in rows}["YX202409010001"] == "19850.00"

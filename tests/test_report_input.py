"""Reading results files into the report's frame: exact fen, located errors, the ledger hook."""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

import medaid.ledger.export
from medaid.io.results import ResultsError, load_results
from medaid.report import load_results as report_load_results

HEADER = ("claim_id,person_id,date,self_pay,kind,hospital,total_cost,major_disease,relief,patient_pays,"
          "capped_by,bracket\n")


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_money_is_read_to_the_fen(tmp_path):
    p = write(tmp_path, "r.csv", HEADER
              + "C1,P1,2024-05-03,30000.00,inpatient,H1,100000.00,1,23300.00,6700.00,,2\n"
              + 'C2,P2,2024-05-04,"12,345.67",inpatient,H1,,否,8293.82,4051.85,annual_cap,2\n'
              + "C3,P3,2024-06-01,１０００．０１,outpatient-special,,5.5,是,0.01,1000,,1\n")
    df = load_results(p)
    assert df["self_pay"].to_list() == [3_000_000, 1_234_567, 100_001]
    assert df["total_cost"].to_list() == [10_000_000, None, 550]
    assert df["relief"].to_list() == [2_330_000, 829_382, 1]
    assert df["patient_pays"].to_list() == [670_000, 405_185, 100_000]
    assert df["major_disease"].to_list() == [True, False, True]
    assert df["date"].to_list() == [dt.date(2024, 5, 3), dt.date(2024, 5, 4), dt.date(2024, 6, 1)]
    assert df["bracket"].dtype == pl.Int8 and df["bracket"].to_list() == [2, 2, 1]
    assert df["capped_by"].to_list() == [None, "annual_cap", None]
    assert df["hospital"].to_list() == ["H1", "H1", None]


def test_chinese_headers_are_understood(tmp_path):
    p = write(tmp_path, "r.csv",
              "\ufeff结算单号,人员编号,结算日期,合规自付费用,就诊类型,医疗机构,医疗总费用,是否大病,relief,patient_pays\n"
              "C1,P1,2024-05-03,30000,住院,县人民医院,100000,是,23300,6700\n")
    df = load_results(p)
    assert df.row(0, named=True) | {} == {
        "claim_id": "C1", "person_id": "P1", "date": dt.date(2024, 5, 3), "self_pay": 3_000_000,
        "kind": "住院", "hospital": "县人民医院", "total_cost": 10_000_000, "major_disease": True,
        "relief": 2_330_000, "patient_pays": 670_000,
    }


@pytest.mark.parametrize("cell, message", [
    ("12.345", "more than two decimals"),
    ("-5.00", "negative"),
    ("abc", "not an amount"),
    ("¥100", "not an amount"),
])
def test_a_bad_amount_names_file_line_and_field(tmp_path, cell, message):
    p = write(tmp_path, "r.csv", HEADER
              + "C1,P1,2024-05-03,300.00,inpatient,H1,,,0.00,300.00,,0\n"
              + f'C2,P1,2024-05-04,300.00,inpatient,H1,,,"{cell}",300.00,,0\n')
    with pytest.raises(ResultsError) as e:
        load_results(p)
    text = str(e.value)
    assert f"{p}:3: relief: " in text and message in text
    if message != "not an amount":  # amounts stay out of messages (bad text is quoted)
        assert cell not in text


def test_bad_date_flag_and_bracket_are_located(tmp_path):
    p = write(tmp_path, "r.csv", HEADER
              + "C1,P1,2024-02-30,300.00,inpatient,H1,,maybe,0.00,300.00,,x\n")
    with pytest.raises(ResultsError) as e:
        load_results(p)
    text = str(e.value)
    assert f"{p}:2: date: is not a date" in text
    assert f"{p}:2: major_disease: is not a yes/no flag" in text
    assert f"{p}:2: bracket: is not a whole number" in text


def test_a_claims_file_is_not_results(tmp_path):
    p = write(tmp_path, "claims.csv", "claim_id,person_id,date,self_pay\nC1,P1,2024-05-03,300\n")
    with pytest.raises(ResultsError, match="not a results file: missing column.*relief"):
        load_results(p)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(ResultsError, match="unknown results format"):
        load_results(write(tmp_path, "r.xml", "<x/>"))
    with pytest.raises(ResultsError, match="no such results file"):
        load_results(tmp_path / "none.csv")


def test_jsonl_money_text(tmp_path):
    lines = [
        {"claim_id": "C1", "person_id": "P1", "date": "2024-05-03", "self_pay": "30000.00", "relief": "23300.00",
         "patient_pays": "6700.00", "total_cost": None, "major_disease": "true", "bracket": 2},
        {"claim_id": "C2", "person_id": "P1", "date": "2024-05-04", "self_pay": "0.10", "relief": "0.00",
         "patient_pays": "0.10", "total_cost": "1.00", "major_disease": "false", "bracket": 0},
    ]
    p = write(tmp_path, "r.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
    df = load_results(p)
    assert df["self_pay"].to_list() == [3_000_000, 10]
    assert df["relief"].to_list() == [2_330_000, 0]
    assert df["total_cost"].to_list() == [None, 100]
    assert df["major_disease"].to_list() == [True, False]


def test_parquet_decimal_money(tmp_path):
    p = tmp_path / "r.parquet"
    pl.DataFrame({
        "claim_id": ["C1", "C2"], "person_id": ["P1", "P2"], "date": [dt.date(2024, 5, 3), dt.date(2024, 5, 4)],
        "self_pay": [Decimal("12345.67"), Decimal("0.01")], "relief": [Decimal("8293.82"), Decimal("0.00")],
    }, schema_overrides={"self_pay": pl.Decimal(18, 2), "relief": pl.Decimal(18, 2)}).write_parquet(p)
    df = load_results(p)
    assert df["self_pay"].to_list() == [1_234_567, 1]
    assert df["relief"].to_list() == [829_382, 0]


def test_parquet_refuses_float_money_and_fractions_of_a_fen(tmp_path):
    p = tmp_path / "f.parquet"
    pl.DataFrame({"claim_id": ["C1"], "person_id": ["P1"], "date": [dt.date(2024, 5, 3)],
                  "relief": [1.5]}).write_parquet(p)
    with pytest.raises(ResultsError, match="relief: money in Parquet must be Decimal"):
        load_results(p)
    q = tmp_path / "d.parquet"
    pl.DataFrame({"claim_id": ["C1", "C2"], "person_id": ["P1", "P1"], "date": [dt.date(2024, 5, 3)] * 2,
                  "relief": [Decimal("1.000"), Decimal("1.005")]},
                 schema_overrides={"relief": pl.Decimal(18, 3)}).write_parquet(q)
    with pytest.raises(ResultsError) as e:
        load_results(q)
    assert f"{q}:2: relief: has more than two decimals" in str(e.value)


def test_xlsx_numeric_cells(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["结算单号", "人员编号", "结算日期", "合规自付费用", "医疗总费用", "relief", "patient_pays", "bracket"])
    ws.append(["C1", "P1", dt.date(2024, 5, 3), 12345.67, 50000, 8293.82, 4051.85, 2])
    ws.append(["C2", "P2", "2024-05-04", 0.29, None, 0.1, 0.19, 0])
    p = tmp_path / "r.xlsx"
    wb.save(p)
    df = load_results(p)
    assert df["self_pay"].to_list() == [1_234_567, 29]
    assert df["total_cost"].to_list() == [5_000_000, None]
    assert df["relief"].to_list() == [829_382, 10]
    assert df["patient_pays"].to_list() == [405_185, 19]
    assert df["date"].to_list() == [dt.date(2024, 5, 3), dt.date(2024, 5, 4)]
    assert df["bracket"].to_list() == [2, 0]


def test_xlsx_refuses_a_third_decimal(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["claim_id", "person_id", "date", "relief"])
    wb.active.append(["C1", "P1", "2024-05-03", 0.125])
    p = tmp_path / "r.xlsx"
    wb.save(p)
    with pytest.raises(ResultsError, match=r"r\.xlsx:2: relief: has more than two decimals"):
        load_results(p)


def test_the_ledger_hook_reads_results_rows(tmp_path, monkeypatch):
    calls = []

    class Ledger:
        def __init__(self, path):
            calls.append(Path(path))

        def results_rows(self, year=None):
            calls.append(year)
            yield {"claim_id": "C1", "person_id": "P1", "date": "2024-05-03", "self_pay": 3_000_000,
                   "relief": 2_330_000, "patient_pays": 670_000, "capped_by": None, "bracket": 2,
                   "major_disease": "是"}

    monkeypatch.setattr(medaid.ledger.export, "Ledger", Ledger)
    path = tmp_path / "desk.db"
    path.write_bytes(b"")
    df = report_load_results(path)
    assert calls == [path, None]
    assert df.row(0, named=True) == {
        "claim_id": "C1", "person_id": "P1", "date": dt.date(2024, 5, 3), "self_pay": 3_000_000,
        "major_disease": True, "relief": 2_330_000, "patient_pays": 670_000, "capped_by": None,
        "bracket": 2,
    }


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_the_benchmark_writers_files_round_trip(tmp_path, suffix):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        from bench_report import make_results, write_results
    finally:
        sys.path.pop(0)
    original = make_results(500)
    p = tmp_path / f"r{suffix}"
    write_results(original, p)
    back = load_results(p)
    for c in original.columns:
        assert back[c].to_list() == original[c].to_list(), c


def test_gb18030_exports_and_settlement_times(tmp_path):
    text = ("结算单号,人员编号,结算时间,合规自付费用,医疗机构,relief\n"
            "C1,P1,2024-05-03 10:15:00,30000,县人民医院,23300\n"
            "C2,P2,2024-05-04T08:00,1000,县中医院,0\n")
    p = tmp_path / "gbk.csv"
    p.write_bytes(text.encode("gb18030"))
    df = load_results(p)
    assert df["hospital"].to_list() == ["县人民医院", "县中医院"]
    assert df["date"].to_list() == [dt.date(2024, 5, 3), dt.date(2024, 5, 4)]
    assert df["relief"].to_list() == [2_330_000, 0]


def test_parquet_decimals_of_any_scale_up_to_the_fen(tmp_path):
    p = tmp_path / "r.parquet"
    pl.DataFrame({
        "claim_id": ["C1", "C2"], "person_id": ["P1", "P2"], "date": [dt.date(2024, 5, 3)] * 2,
        "self_pay": [Decimal("30000"), Decimal("7")], "relief": [Decimal("23300.000"), Decimal("0.010")],
    }, schema_overrides={"self_pay": pl.Decimal(18, 0), "relief": pl.Decimal(18, 3)}).write_parquet(p)
    df = load_results(p)
    assert df["self_pay"].to_list() == [3_000_000, 700]
    assert df["relief"].to_list() == [2_330_000, 1]


def test_ledger_rows_with_float_money_are_refused(tmp_path, monkeypatch):
    class Ledger:
        def __init__(self, path):
            pass

        def results_rows(self, year=None):
            yield {"claim_id": "C1", "person_id": "P1", "date": "2024-05-03", "relief": 0}
            yield {"claim_id": "C2", "person_id": "P1", "date": "2024-05-04", "relief": 12.5}

    monkeypatch.setattr(medaid.ledger.export, "Ledger", Ledger)
    path = tmp_path / "desk.sqlite3"
    path.write_bytes(b"")
    with pytest.raises(ResultsError, match=r"desk\.sqlite3:2: relief: money must be int fen"):
        report_load_results(path)
    with pytest.raises(ResultsError, match=r"desk\.sqlite3: is a ledger, not a results file"):
        load_results(path)  # io reads files only; the ledger is above it


def test_spreadsheet_style_money_text_in_bulk(tmp_path):
    # Excel trims trailing zeros ("12.5", "6700"); every form reads to the same fen.
    cells = ["12.5", "12.50", "6700", "0.1", "0.01", "0", "1,234.5", " 7.25 "]
    fen = [1250, 1250, 670000, 10, 1, 0, 123450, 725]
    body = "".join(f'C{i},P1,2024-05-03,"{c}"\n' for i, c in enumerate(cells))
    df = load_results(write(tmp_path, "r.csv", "claim_id,person_id,date,relief\n" + body))
    assert df["relief"].to_list() == fen


def test_a_key_present_with_none_is_data_not_a_missing_column():
    """A ledger row says capped_by=None for a claim no cap bound: 0 claims capped, not n/a."""
    import datetime as dt

    from medaid.io.results import frame_from_rows

    rows = [
        {"claim_id": "C1", "person_id": "P1", "date": dt.date(2024, 5, 3), "self_pay": 3_000_000,
         "relief": 2_330_000, "patient_pays": 670_000, "capped_by": None},
        {"claim_id": "C2", "person_id": "P1", "date": dt.date(2024, 6, 3), "self_pay": 100,
         "relief": 0, "patient_pays": 100, "capped_by": None},
    ]
    frame = frame_from_rows(rows)
    assert "capped_by" in frame.columns
    assert frame["capped_by"].null_count() == 2
    assert "total_cost" not in frame.columns


def test_a_claim_listed_twice_is_refused_not_counted_twice(tmp_path):
    # summed as read, C1's 23,300 would count twice; a batch never writes a claim twice
    p = write(tmp_path, "r.csv", HEADER
              + "C1,P1,2024-05-03,30000.00,inpatient,H1,,0,23300.00,6700.00,,2\n"
              + "C2,P2,2024-05-04,1000.00,inpatient,H1,,0,0.00,1000.00,,0\n"
              + "C1,P1,2024-05-03,30000.00,inpatient,H1,,0,23300.00,6700.00,,2\n")
    with pytest.raises(ResultsError) as e:
        load_results(p)
    assert str(e.value) == f"{p}:4: claim_id: duplicate claim id (first on line 2)"


def test_a_field_given_by_two_columns_is_refused(tmp_path):
    p = write(tmp_path, "r.csv", HEADER.rstrip("\n") + ",relief\n"
              + "C1,P1,2024-05-03,30000.00,inpatient,H1,,0,23300.00,6700.00,,2,1.00\n")
    with pytest.raises(ResultsError) as e:
        load_results(p)
    assert str(e.value) == f"{p}:1: two columns are named 'relief'"

"""IDs and amounts that files hold as numbers (issue #11, defect 1).

A spreadsheet keeps 15 significant digits of a number: an 18-digit ID number typed into a
numeric cell (500233196505051123) is stored as 5.00233196505051E+17, and two people whose IDs
differ only in the last digits would become one person sharing one annual cap.  An ID held as a
number is therefore read as its exact digits only when it is a whole number of at most 15
digits; any other number is refused with a message saying to store IDs as text.  The same rule
holds for XLSX cells, JSON Lines numbers and Parquet integer or float columns, locally and on
Spark, for claim files and for results files read back (report, recalc).

Amounts held as floats are read through their shortest decimal text: 30000.1 is 3,000,010 fen
exactly, and a float whose text has a third decimal (0.1 + 0.2 = 0.30000000000000004) is
refused, never rounded.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from medaid.cli import main
from medaid.io.readers import read_claims, read_results
from medaid.io.results import ResultsError, load_results
from medaid.io.validation import ID_FRACTION, ID_TOO_LONG, id_number_problem, number_as_id

ROOT = Path(__file__).resolve().parents[1]
R = str(ROOT / "rules" / "chongqing-county-2019.toml")
HEAD = ["claim_id", "person_id", "date", "self_pay", "group", "kind"]
# two people whose 18-digit ID numbers differ in the last digit
ID_A, ID_B = 500233196505051123, 500233196505051124


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


def xlsx(path: Path, rows: list[list[object]], head: list[str] = HEAD) -> Path:
    wb = Workbook()
    wb.active.append(head)
    for r in rows:
        wb.active.append(r)
    wb.save(path)
    return path


# --------------------------------------------------------------------------------------------
# the rule


@pytest.mark.parametrize("value, digits, message", [
    (1001, "1001", None),
    (1001.0, "1001", None),                       # a whole float: its digits
    (999_999_999_999_999, "999999999999999", None),  # 15 digits: kept exactly
    (10 ** 15, None, ID_TOO_LONG),                # 16 digits
    (ID_A, None, ID_TOO_LONG),                    # an 18-digit ID as an integer
    (float(ID_A), None, ID_TOO_LONG),             # ... as Excel stores it
    (1001.5, None, ID_FRACTION),
    (float("nan"), None, ID_FRACTION),
    (float("inf"), None, ID_TOO_LONG),
    ("1001", "1001", None),                       # JSON number text
    ("1001.0", "1001", None),
    ("1.5e3", "1500", None),
    ("5.002331965050511e+17", None, ID_TOO_LONG),
    ("500233196505051123", None, ID_TOO_LONG),
    ("1001.5", None, ID_FRACTION),
    ("1e999999", None, ID_TOO_LONG),
])
def test_an_id_held_as_a_number_is_its_exact_digits_or_refused(value, digits, message) -> None:
    assert number_as_id(value) == (digits, message)


def test_the_column_rule_for_parquet_is_the_same_rule() -> None:
    ints = [1001, 999_999_999_999_999, 10 ** 15, -(10 ** 15), ID_A, None]
    floats = [1001.0, 1001.5, 999_999_999_999_999.0, 1e15, float(ID_A), 1e15 + 0.5,
              float("nan"), float("inf"), None]
    for values, dtype in ((ints, pl.Int64), (floats, pl.Float64)):
        s = pl.Series("x", values, dtype=dtype)
        got = pl.select(id_number_problem(pl.lit(s), dtype)).to_series().to_list()
        assert got == [None if v is None else number_as_id(v)[1] for v in values], dtype
    assert "store IDs as text" in ID_TOO_LONG and "store IDs as text" in ID_FRACTION


# --------------------------------------------------------------------------------------------
# claim files


def test_two_people_typed_as_numbers_in_excel_are_refused_not_merged(tmp_path: Path) -> None:
    src = xlsx(tmp_path / "c.xlsx", [["C1", ID_A, "2019-05-03", 30000, "key", "inpatient"],
                                     ["C2", ID_B, "2019-05-04", 30000, "key", "inpatient"],
                                     ["C3", "500233196505051125", "2019-05-04", 30000, "key", "inpatient"]])
    out = tmp_path / "r.csv"
    code, stdout, err = run("batch", str(src), "-o", str(out), "--rules", R, "--on-error", "skip")
    assert code == 0, err
    assert "rows read 3 = settled 1 + rejected 2" in stdout
    rejects = pl.read_csv(tmp_path / "r.rejects.csv", infer_schema=False)
    assert rejects["line"].to_list() == ["2", "3"] and set(rejects["field"]) == {"person_id"}
    assert all("store IDs as text" in r for r in rejects["reason"])
    assert not any("5002331965" in r for r in rejects["reason"])  # never the ID in a message
    # the ID written as text is read as written and settled: 30,000 yuan is relieved 23,300
    res = read_results(out)
    assert res["person_id"].to_list() == ["500233196505051125"]
    assert res["relief"].to_list() == [2_330_000]


def test_under_fail_the_batch_names_the_cell_and_says_to_store_ids_as_text(tmp_path: Path) -> None:
    src = xlsx(tmp_path / "c.xlsx", [[1001.5, "P1", "2019-05-03", 30000, "key", "inpatient"]])
    code, _, err = run("batch", str(src), "-o", str(tmp_path / "r.csv"), "--rules", R)
    assert code == 1
    assert f"{src}:2: claim_id: is a number with a fraction, not an ID; store IDs as text" in err
    assert not (tmp_path / "r.csv").exists()


def test_whole_number_ids_in_excel_are_read_as_their_digits(tmp_path: Path) -> None:
    src = xlsx(tmp_path / "c.xlsx", [[1001, 123456789012345, "2019-05-03", 30000, "key", "inpatient"],
                                     [1002.0, 42, "2019-05-03", 30000, "key", "inpatient"]])
    _, clean, rejects = read_claims(src)
    assert rejects.height == 0
    assert clean["claim_id"].to_list() == ["1001", "1002"]
    assert clean["person_id"].to_list() == ["123456789012345", "42"]


def test_json_lines_ids_written_as_numbers_follow_the_same_rule(tmp_path: Path) -> None:
    src = tmp_path / "c.jsonl"
    lines = [
        '{"claim_id": 1, "person_id": 500233196505051123, "date": "2019-05-03", "self_pay": "30000"}',
        '{"claim_id": 2, "person_id": 5.002331965050511e+17, "date": "2019-05-03", "self_pay": "30000"}',
        '{"claim_id": 3.5, "person_id": "P3", "date": "2019-05-03", "self_pay": "30000"}',
        '{"claim_id": 4.0, "person_id": 123456789012345, "date": "2019-05-03", "self_pay": "30000"}',
    ]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, clean, rejects = read_claims(src)
    assert rejects.select("row", "field").rows() == [(1, "person_id"), (2, "person_id"), (3, "claim_id")]
    assert rejects["message"].to_list() == [ID_TOO_LONG, ID_TOO_LONG, ID_FRACTION]
    assert clean.select("claim_id", "person_id").rows() == [("4", "123456789012345")]


def test_parquet_integer_and_float_ids_follow_the_same_rule(tmp_path: Path) -> None:
    src = tmp_path / "c.parquet"
    pl.DataFrame({
        "claim_id": pl.Series([1, 2, 3, 4], dtype=pl.Int64),
        "person_id": pl.Series([float(ID_A), 77.0, 78.5, 123456789012345.0], dtype=pl.Float64),
        "date": ["2019-05-03"] * 4,
        "self_pay": ["30000"] * 4,
    }).write_parquet(src)
    _, clean, rejects = read_claims(src)
    assert rejects.select("row", "field", "message").rows() == [
        (1, "person_id", ID_TOO_LONG), (3, "person_id", ID_FRACTION)]
    assert clean.select("claim_id", "person_id").rows() == [("2", "77"), ("4", "123456789012345")]
    big = tmp_path / "big.parquet"
    pl.DataFrame({"claim_id": ["C1", "C2"], "person_id": pl.Series([ID_A, 7], dtype=pl.Int64),
                  "date": ["2019-05-03"] * 2, "self_pay": ["1"] * 2}).write_parquet(big)
    _, clean, rejects = read_claims(big)
    assert rejects.select("row", "field").rows() == [(1, "person_id")]
    assert clean["person_id"].to_list() == ["7"]


def test_the_spark_reader_refuses_parquet_ids_by_the_same_rule() -> None:
    import io

    from medaid.spark.job import _raw_frame

    buf = io.BytesIO()
    pl.DataFrame({"claim_id": ["C1", "C2"], "person_id": pl.Series([ID_A, 7], dtype=pl.Int64),
                  "date": ["2019-05-03"] * 2, "self_pay": ["1"] * 2}).write_parquet(buf)
    raw, bad = _raw_frame(buf.getvalue(), "parquet")
    assert raw["row"].to_list() == [2] and raw["person_id"].to_list() == ["7"]
    assert bad.select("row", "field", "message").rows() == [(1, "person_id", ID_TOO_LONG)]


# --------------------------------------------------------------------------------------------
# amounts held as floats


def test_float_amounts_are_exact_fen_or_refused_in_every_format(tmp_path: Path) -> None:
    # 30000.1 yuan = 3,000,010 fen; 0.1 + 0.2 is the float 0.30000000000000004: a third
    # decimal, refused (not rounded to 0.30).  (openpyxl writes a cell with 16 digits, 0.3, so
    # the workbook gets an amount with a third decimal instead.)
    x = xlsx(tmp_path / "c.xlsx", [["C1", "P1", "2019-05-03", 30000.1, "key", "inpatient"],
                                   ["C2", "P2", "2019-05-03", 1234.567, "key", "inpatient"]])
    j = tmp_path / "c.jsonl"
    j.write_text('{"claim_id": "C1", "person_id": "P1", "date": "2019-05-03", "self_pay": 30000.1}\n'
                 '{"claim_id": "C2", "person_id": "P2", "date": "2019-05-03", "self_pay": 0.30000000000000004}\n',
                 encoding="utf-8")
    q = tmp_path / "c.parquet"
    pl.DataFrame({"claim_id": ["C1", "C2"], "person_id": ["P1", "P2"], "date": ["2019-05-03"] * 2,
                  "self_pay": [30000.1, 0.1 + 0.2]}).write_parquet(q)
    for src in (x, j, q):
        _, clean, rejects = read_claims(src)
        assert clean["self_pay"].to_list() == [3_000_010], src
        assert rejects["field"].to_list() == ["self_pay"], src
        assert rejects["message"][0].startswith("has more than two decimals"), src
    # a Float32 column holds 30000.1 as 30000.099609375: refused, never rounded to 30000.10
    q32 = tmp_path / "c32.parquet"
    pl.DataFrame({"claim_id": ["C1"], "person_id": ["P1"], "date": ["2019-05-03"],
                  "self_pay": pl.Series([30000.1], dtype=pl.Float32)}).write_parquet(q32)
    _, clean, rejects = read_claims(q32)
    assert clean.height == 0 and rejects["message"][0].startswith("has more than two decimals")


# --------------------------------------------------------------------------------------------
# results files read back (report, recalc --previous)


def test_a_results_workbook_with_a_numeric_18_digit_person_id_is_refused(tmp_path: Path) -> None:
    p = xlsx(tmp_path / "r.xlsx", [["C1", ID_A, "2019-05-03", 30000, 23300],
                                   ["C2", 42, "2019-05-03", 30000, 23300]],
             head=["claim_id", "person_id", "date", "self_pay", "relief"])
    with pytest.raises(ResultsError, match=r"r\.xlsx:2: person_id: is a number of more than 15 digits"):
        load_results(p)
    code, _, err = run("report", str(p))
    assert code == 1 and "store IDs as text" in err


def test_results_json_lines_amounts_written_as_numbers_never_pass_through_a_float(tmp_path: Path) -> None:
    # 30000.10000000000001 has more than two decimals; as a float it would be 30000.1
    p = tmp_path / "r.jsonl"
    rows = [{"claim_id": "C1", "person_id": "P1", "date": "2019-05-03", "relief": "23300.00"},
            {"claim_id": "C2", "person_id": "P2", "date": "2019-05-03", "relief": "1.00"}]
    text = "\n".join(json.dumps(r) for r in rows).replace('"1.00"', "30000.10000000000001") + "\n"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ResultsError, match=r"r\.jsonl:2: relief: has more than two decimals"):
        load_results(p)
    p.write_text(text.replace("30000.10000000000001", "30000.1"), encoding="utf-8")
    assert load_results(p)["relief"].to_list() == [2_330_000, 3_000_010]

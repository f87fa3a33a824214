"""A batch settles a file exactly as the engine settles its claims, totals add up, every format
round-trips to the fen, exports are safe to open in a spreadsheet, and recalculation reconciles."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

import medaid
from medaid.batch.recalc import recalculate
from medaid.batch.run import rejects_for_output, settle_file, write_run
from medaid.io.readers import read_results
from medaid.io.writers import write_frame
from medaid.report.totals import summarise

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "claims-2024.csv"
RULES = ROOT / "rules"


@pytest.fixture(scope="module")
def book() -> medaid.RuleBook:
    return medaid.load_rules(RULES)


def reference_claims(path: Path) -> list[medaid.Claim]:
    """The example file read the plain way: csv module + Claim.from_yuan."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        medaid.Claim.from_yuan(
            claim_id=r["结算单号"], person_id=r["人员编号"], date=r["结算日期"],
            self_pay=r["合规自付费用"], group=r["救助对象类别"], kind=r["就诊类型"],
            hospital=r["医疗机构"], total_cost=r["医疗总费用"])
        for r in rows
    ]


@pytest.fixture(scope="module")
def example_run(book: medaid.RuleBook):  # type: ignore[no-untyped-def]
    return settle_file(EXAMPLE, book)


def test_the_example_year_settles_claim_by_claim_as_the_engine_does(example_run, book) -> None:  # type: ignore[no-untyped-def]
    claims = reference_claims(EXAMPLE)
    want = medaid.settle(claims, book)
    res = example_run.results
    assert example_run.rows_read == len(claims) == res.height
    assert res["claim_id"].to_list() == [c.claim_id for c in claims]  # input order kept
    assert res["relief"].to_list() == [s.relief for s in want]
    assert res["ytd_relief"].to_list() == [s.ytd_relief for s in want]
    assert res["capped_by"].to_list() == [s.capped_by for s in want]
    assert res["plan"].to_list() == [s.plan for s in want]
    assert set(res["rule_version"]) == {"2019.1"}


def test_totals_add_up_by_plan_month_and_hospital(example_run) -> None:  # type: ignore[no-untyped-def]
    claims = {c.claim_id: c for c in reference_claims(EXAMPLE)}
    res = example_run.results.to_dicts()
    s = summarise(example_run.results)
    relief_by_hospital: dict[str, int] = defaultdict(int)
    relief_by_month: dict[str, int] = defaultdict(int)
    for r in res:
        relief_by_hospital[claims[r["claim_id"]].hospital] += r["relief"]
        relief_by_month[r["date"].strftime("%Y-%m")] += r["relief"]
    total_relief = sum(r["relief"] for r in res)
    total_self = sum(c.self_pay for c in claims.values())
    assert s["total"]["claims"] == len(claims)
    assert s["total"]["persons"] == len({c.person_id for c in claims.values()})
    assert s["total"]["relief"] == total_relief
    assert s["total"]["self_pay"] == total_self
    assert s["total"]["patient_pays"] == total_self - total_relief
    assert {r["hospital"]: r["relief"] for r in s["by_hospital"]} == relief_by_hospital
    assert {r["month"]: r["relief"] for r in s["by_month"]} == relief_by_month
    assert sum(r["relief"] for r in s["by_plan"]) == total_relief
    assert s["total"]["claims_capped"] == sum(1 for r in res if r["capped_by"])
    assert s["total"]["persons_at_annual_cap"] == len({r["person_id"] for r in res if r["capped_by"] == "annual_cap"})


def test_a_30000_yuan_stay_is_relieved_23300_with_share_shown(tmp_path: Path, book) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "c.csv"
    p.write_text("claim_id,person_id,date,self_pay,group,kind\nC1,P1,2024-05-03,30000,key,inpatient\n")
    run = settle_file(p, book)
    assert run.results["relief"].to_list() == [2_330_000]
    assert summarise(run.results)["total"]["relief_share"] == "77.67%"  # 23300/30000


# --- formats ---------------------------------------------------------------------------------


def results_frame() -> pl.DataFrame:
    return pl.DataFrame({
        "claim_id": ["=HYPERLINK(\"x\")", "C2", "-3", "@SUM(A1)"],
        "person_id": ["P1", "+86", "P2", "P3"],
        "date": [dt.date(2024, 1, 1), dt.date(2024, 2, 29), dt.date(2024, 12, 31), dt.date(2024, 6, 1)],
        "self_pay": pl.Series([3_000_000, 1, 0, 999_999_999], dtype=pl.Int64),  # up to the maximum
        "note": ["县医院", None, "\tx", "plain"],
        "benefit_year": pl.Series([2024] * 4, dtype=pl.Int32),
        "relief": pl.Series([2_330_000, 0, 0, 99], dtype=pl.Int64),
        "adjustment": pl.Series([-1205, 5, 0, -1], dtype=pl.Int64),
    })


@pytest.mark.parametrize("ext", ["csv", "xlsx", "jsonl", "parquet"])
def test_every_format_round_trips_to_the_fen(tmp_path: Path, ext: str) -> None:
    frame = results_frame()
    p = tmp_path / f"r.{ext}"
    write_frame(frame, p)
    back = read_results(p)
    for c in frame.columns:
        assert back[c].to_list() == frame[c].to_list(), c


def test_results_read_back_with_the_same_types_from_every_format(tmp_path: Path) -> None:
    frame = results_frame().with_columns(
        pl.Series("plan", ["a", "b", "a", "b"], dtype=pl.Enum(["a", "b"])),
        pl.Series("capped_by", ["annual_cap", None, None, "self_pay"], dtype=pl.Categorical))
    schemas = []
    for ext in ("csv", "xlsx", "jsonl", "parquet"):
        write_frame(frame, tmp_path / f"r.{ext}")
        back = read_results(tmp_path / f"r.{ext}")
        assert back["plan"].to_list() == ["a", "b", "a", "b"], ext
        schemas.append({c: back.schema[c] for c in ("claim_id", "date", "self_pay", "relief", "plan", "capped_by",
                                                    "benefit_year", "adjustment")})
    assert all(s == schemas[0] for s in schemas), schemas
    assert schemas[0]["plan"] == pl.String and schemas[0]["relief"] == pl.Int64 and schemas[0]["date"] == pl.Date


def test_csv_neutralises_formulas_but_numbers_stay_numbers(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    write_frame(results_frame(), p)
    text = p.read_text(encoding="utf-8-sig")
    rows = list(csv.reader(text.splitlines()))
    assert rows[1][0] == "'=HYPERLINK(\"x\")" and rows[2][1] == "'+86" and rows[3][0] == "'-3"
    assert rows[4][0] == "'@SUM(A1)" and rows[3][4] == "'\tx"
    adj = rows[0].index("adjustment")
    assert [r[adj] for r in rows[1:]] == ["-12.05", "0.05", "0.00", "-0.01"]  # not neutralised
    assert rows[4][3] == "9999999.99"
    assert p.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM by default, for Excel


@pytest.mark.parametrize("values, written", [
    (["b", "=cmd", "a"], ["b", "'=cmd", "a"]),          # the least value leads with "="
    (["", "=1", "b"], ["", "'=1", "b"]),                 # an empty least value proves nothing
    (["1", "+5", "9"], ["1", "'+5", "9"]),
    (["!x", "~y", "-z"], ["!x", "~y", "'-z"]),            # "-" lies between "!" and "~"
    (["!x", "~y", "#z"], ["!x", "~y", "#z"]),             # the range holds leads, no value does
    (["A1", "Z9", "M5"], ["A1", "Z9", "M5"]),             # letters only: nothing to look at
    (["病例1", "@2", "门诊"], ["病例1", "'@2", "门诊"]),
])
@pytest.mark.parametrize("kind", ["text", "category", "enum"])
def test_every_text_value_leading_with_a_formula_character_is_neutralised(
        tmp_path: Path, values: list[str], written: list[str], kind: str) -> None:
    dtype = {"text": pl.String, "category": pl.Categorical,
             "enum": pl.Enum(sorted(set(values) - {""}))}[kind]
    column = pl.Series("note", [v if v or kind == "text" else None for v in values], dtype=dtype)
    p = tmp_path / "r.csv"
    write_frame(pl.DataFrame([column, pl.Series("n", [1, 2, 3])]), p, bom=False)
    rows = list(csv.reader(p.read_text(encoding="utf-8").splitlines()))
    assert [r[0] for r in rows[1:]] == written


def test_dates_are_written_as_iso_text_whatever_their_span(tmp_path: Path) -> None:
    """Dates within a short span are written from a table of days, a wide span by the writer's
    own formatting: both give ISO text, and a missing date stays empty."""
    near = [dt.date(2024, 2, 29), None, dt.date(2024, 1, 1), dt.date(2025, 1, 1)]
    far = [dt.date(1900, 1, 1), dt.date(2099, 12, 31), None, dt.date(2024, 2, 29)]
    p = tmp_path / "d.csv"
    write_frame(pl.DataFrame({"near": near, "far": far}), p, bom=False)
    rows = list(csv.reader(p.read_text(encoding="utf-8").splitlines()))
    assert rows[1:] == [["2024-02-29", "1900-01-01"], ["", "2099-12-31"],
                        ["2024-01-01", ""], ["2025-01-01", "2024-02-29"]]


@pytest.mark.parametrize("column, dtype, raw", [
    ({"note": ["a,b", "c"]}, pl.String, '"a,b"'),
    ({"note": ['say "hi"', "c"]}, pl.Categorical, '"say ""hi"""'),
    ({"note": ["two\nlines", "c"]}, pl.Enum(["c", "two\nlines"]), '"two\nlines"'),
    ({"note": ["cr\rhere", "c"]}, pl.String, '"cr\rhere"'),
    ({"note": ["", "c"]}, pl.String, '""'),               # empty text, not a missing value
    ({"a,b": ["x", "c"]}, pl.String, '"a,b"'),             # a header that needs quotes
    ({"note": ["plain", "c"]}, pl.String, None),           # nothing to quote: no quote at all
    ({"note": ["plain", "c"]}, pl.Categorical, None),
])
def test_cells_are_quoted_exactly_where_csv_needs_it(
        tmp_path: Path, column: dict[str, list[str]], dtype: pl.DataType, raw: str | None) -> None:
    (name, values), = column.items()
    p = tmp_path / "q.csv"
    write_frame(pl.DataFrame({name: pl.Series(values, dtype=dtype), "n": [1, None]}), p, bom=False)
    text = p.read_bytes().decode("utf-8")
    assert list(csv.reader(io.StringIO(text, newline=""))) == [[name, "n"], [values[0], "1"], [values[1], ""]]
    if raw is None:
        assert '"' not in text
    else:
        assert raw in text


def test_xlsx_money_is_numeric_with_two_decimals_and_formulas_are_text(tmp_path: Path) -> None:
    import openpyxl

    p = tmp_path / "r.xlsx"
    write_frame(results_frame(), p)
    ws = openpyxl.load_workbook(p).active
    head = [c.value for c in ws[1]]
    relief = ws.cell(row=2, column=head.index("relief") + 1)
    assert relief.data_type == "n" and relief.number_format == "#,##0.00"
    assert Decimal(str(relief.value)) == Decimal("23300.00")
    adj = ws.cell(row=2, column=head.index("adjustment") + 1)
    assert adj.data_type == "n" and Decimal(str(adj.value)) == Decimal("-12.05")
    first = ws.cell(row=2, column=1)
    assert first.data_type == "s" and first.value == "'=HYPERLINK(\"x\")"


def test_parquet_money_is_decimal_18_2(tmp_path: Path) -> None:
    p = tmp_path / "r.parquet"
    write_frame(results_frame(), p)
    schema = pl.read_parquet_schema(p)
    assert schema["relief"] == pl.Decimal(18, 2)
    assert pl.read_parquet(p)["relief"].to_list()[0] == Decimal("23300.00")


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import medaid.io.writers as exports

    def half_then_fail(frame, tmp, *args):  # type: ignore[no-untyped-def]
        Path(tmp).write_text("claim_id\nC1\n")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(exports, "_write_csv", half_then_fail)
    p = tmp_path / "r.csv"
    p.write_bytes(b"previous")
    with pytest.raises(exports.WriteError, match="No space left"):
        write_frame(results_frame(), p)
    assert p.read_bytes() == b"previous"
    assert [f.name for f in tmp_path.iterdir()] == ["r.csv"]  # no temporary file left behind


# --- fail / skip ---------------------------------------------------------------------------------


def test_skip_writes_good_rows_and_rejects_with_reasons(tmp_path: Path, book) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "c.csv"
    p.write_text(
        "claim_id,person_id,date,self_pay,group,kind,note\n"
        "C1,P1,2024-05-03,30000,key,inpatient,a\n"
        "C2,P1,2024-05-03,-1,key,inpatient,b\n"
        "C3,P1,2024-05-03,1,nobody,inpatient,c\n")
    run = settle_file(p, book)
    assert run.reconcile() == "rows read 3 = settled 1 + rejected 2"
    out = tmp_path / "r.csv"
    rej = write_run(run, out, on_error="skip")
    assert rej == tmp_path / "r.rejects.csv"
    rejects = pl.read_csv(rej, infer_schema=False)
    assert rejects["line"].to_list() == ["3", "4"]
    assert rejects["note"].to_list() == ["b", "c"]
    assert rejects["field"].to_list() == ["self_pay", "group/kind"]
    assert "negative" in rejects["reason"][0] and "no plan" in rejects["reason"][1]
    assert read_results(out)["claim_id"].to_list() == ["C1"]
    assert rejects_for_output(run).height == 2


def test_fail_writes_nothing(tmp_path: Path, book) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "c.csv"
    p.write_text("claim_id,person_id,date,self_pay\nC1,P1,2024-05-03,1.234\n")
    run = settle_file(p, book)
    with pytest.raises(medaid.MedaidError, match=r"c\.csv:2: self_pay: has more than two decimals"):
        write_run(run, tmp_path / "r.csv")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["c.csv"]


# --- recalculation -------------------------------------------------------------------------------


def test_the_same_rules_give_zero_adjustments(tmp_path: Path, example_run, book) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "r.parquet"
    write_run(example_run, out)
    rc = recalculate(settle_file(EXAMPLE, book), read_results(out))
    assert rc.totals["adjustment"] == 0 and rc.totals["same"] == example_run.settled
    assert rc.by_hospital == [] and rc.by_person == []


def test_new_rules_adjust_each_claim_and_old_plus_adjustments_equal_new(tmp_path: Path, example_run, book) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "r.csv"
    write_run(example_run, out)
    new_rules = tmp_path / "rules"
    new_rules.mkdir()
    text = (RULES / "chongqing-county-2019.toml").read_text(encoding="utf-8")
    text = text.replace('annual_cap = "100000"', 'annual_cap = "90000"')
    text = text.replace('version = "2019.1"', 'version = "2019.2"')
    text = text.replace('{ claims = ["100000", "30000"], reliefs = ["87800", "12200"], '
                        'note = "the annual cap binds on the second stay" },', "")
    (new_rules / "r.toml").write_text(text, encoding="utf-8")
    new_book = medaid.load_rules(new_rules)
    rc = recalculate(settle_file(EXAMPLE, new_book), read_results(out))
    claims = reference_claims(EXAMPLE)
    old = {s.claim_id: s.relief for s in medaid.settle(claims, book)}
    new = {s.claim_id: s.relief for s in medaid.settle(claims, new_book)}
    got = {r["claim_id"]: (r["old_relief"], r["new_relief"], r["adjustment"]) for r in rc.claims.to_dicts()}
    assert got == {k: (old[k], new[k], new[k] - old[k]) for k in old}
    assert rc.totals["old_relief"] + rc.totals["adjustment"] == rc.totals["new_relief"] == sum(new.values())
    assert rc.totals["adjustment"] < 0  # a lower cap gives less
    assert sum(r["adjustment"] for r in rc.by_hospital) == rc.totals["adjustment"]
    assert sum(r["adjustment"] for r in rc.by_person) == rc.totals["adjustment"]


def test_claims_new_or_dropped_since_the_previous_run(tmp_path: Path, book) -> None:  # type: ignore[no-untyped-def]
    a = tmp_path / "a.csv"
    a.write_text("claim_id,person_id,date,self_pay,hospital\nC1,P1,2024-05-03,30000,H1\nC2,P2,2024-05-03,2000,H2\n")
    prev = tmp_path / "prev.jsonl"
    write_run(settle_file(a, book), prev)
    b = tmp_path / "b.csv"
    b.write_text("claim_id,person_id,date,self_pay,hospital\nC1,P1,2024-05-03,30000,H1\nC3,P3,2024-05-04,10000,H1\n")
    rc = recalculate(settle_file(b, book), read_results(prev))
    rows = rc.claims.select("claim_id", "old_relief", "new_relief", "adjustment", "status").rows()
    assert rows == [
        ("C1", 2_330_000, 2_330_000, 0, "same"),
        ("C3", 0, 630_000, 630_000, "new"),
        ("C2", 70_000, 0, -70_000, "dropped"),  # 70% of the part from 1,000 to 2,000
    ]
    assert rc.totals["old_relief"] + rc.totals["adjustment"] == rc.totals["new_relief"]


def test_example_is_copied_not_modified(tmp_path: Path) -> None:
    # the bundled data is reproducible from its seeded generator
    import subprocess
    import sys

    out = tmp_path / "again.csv"
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_example.py"), "-o", str(out)],
                   check=True, capture_output=True)
    assert out.read_bytes() == EXAMPLE.read_bytes()
    shutil.rmtree(tmp_path, ignore_errors=True)

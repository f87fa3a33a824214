"""Issue 15's claim fields in claim files (docs/batch.md, *Input files*): the household id (户号),
the non-compliant cost (非合规费用) and the attributes a rule set declares (医院等级…) are read
into the claims frame by every reader, bad values are refused with their line and field, and the
results carry them as the other claim fields."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import polars as pl
import pytest

from medaid import load_rules
from medaid.batch.run import BatchRefused, read_file, refuse_if_bad, settle_file
from medaid.io.attributes import attribute_columns, declared_attributes, with_attributes
from medaid.io.raw import ReadError

ROOT = Path(__file__).resolve().parents[1]
BOOK = load_rules(ROOT / "rules")
#: The attribute a county rule set declares for hospital levels (docs/rules.md example).
LEVEL = {"level": ("hospital_level", "医院等级", "医疗机构等级")}

HEADER = "结算单号,人员编号,结算日期,合规自付费用,救助对象类别,就诊类型,户号,非合规费用,医院等级\n"
ROWS = [
    "C1,P1,2024-03-01,10000,key,inpatient,H1,4000,三级\n",
    "C2,P2,2024-03-01,10000,key,inpatient,H1,\"1,234.50\",二级\n",  # (quoted: the careful path)
    "C3,P3,2024-03-02,2000,key,inpatient,,,\n",                     # none of the three
    "C4,P4,2024-03-02,2000,key,inpatient, Ｈ２ ,0.5, 一级 \n",       # tidied as ids are
]
#: The frame's values of each row, by hand: fen; the household and the level tidied
#: (full-width letters and digits NFKC, spaces at the ends trimmed), empty → null.
EXPECTED = [
    ("C1", "H1", 400_000, "三级"),
    ("C2", "H1", 123_450, "二级"),
    ("C3", None, None, None),
    ("C4", "H2", 50, "一级"),
]


def _csv(tmp_path: Path, rows: list[str], name: str = "claims.csv") -> Path:
    p = tmp_path / name
    p.write_text(HEADER + "".join(rows), encoding="utf-8")
    return p


def _xlsx(tmp_path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER.strip().split(","))
    ws.append(["C1", "P1", "2024-03-01", 10000, "key", "inpatient", "H1", 4000, "三级"])
    ws.append(["C2", "P2", "2024-03-01", "10000", "key", "inpatient", "H1", "1,234.50", "二级"])
    ws.append(["C3", "P3", "2024-03-02", 2000, "key", "inpatient", None, None, None])
    ws.append(["C4", "P4", "2024-03-02", 2000, "key", "inpatient", " Ｈ２ ", 0.5, " 一级 "])
    p = tmp_path / "claims.xlsx"
    wb.save(p)
    return p


def _values(frame: pl.DataFrame) -> list[tuple]:
    return frame.sort("row").select("claim_id", "household_id", "non_compliant", "level").rows()


@pytest.mark.parametrize("reader", ["scan", "pieces", "whole"])
@pytest.mark.parametrize("quoted", [False, True])
def test_a_csv_with_household_non_compliant_and_level_columns_is_read_into_the_frame(tmp_path, reader, quoted):
    rows = ROWS if quoted else [r.replace('"1,234.50"', "1234.50") for r in ROWS]
    got = read_file(_csv(tmp_path, rows), reader=reader)
    assert got.rejects.height == 0
    clean, _ = with_attributes(got.clean, got.bad_rows, LEVEL, "claims.csv")
    assert _values(clean) == EXPECTED
    assert (clean.schema["household_id"], clean.schema["non_compliant"], clean.schema["level"]) == (
        pl.String, pl.Int64, pl.String)
    assert "医院等级" not in clean.columns


def test_an_xlsx_sheet_gives_the_same_frame(tmp_path):
    got = read_file(_xlsx(tmp_path))
    assert got.rejects.height == 0
    clean, _ = with_attributes(got.clean, got.bad_rows, LEVEL)
    assert _values(clean) == EXPECTED


@pytest.mark.parametrize("reader", ["scan", "pieces", "whole"])
def test_a_bad_non_compliant_cost_is_refused_with_its_line_and_field(tmp_path, reader):
    p = _csv(tmp_path, [ROWS[0], "C2,P2,2024-03-01,10000,key,inpatient,H1,-5,二级\n",
                        "C3,P3,2024-03-01,10000,key,inpatient,H1,12.345,二级\n", ROWS[3]])
    got = read_file(p, reader=reader)
    # line 1 is the header: C2 is line 3, C3 line 4; the good rows are kept
    assert got.rejects.select("row", "claim_id", "field").rows() == [
        (3, "C2", "non_compliant"), (4, "C3", "non_compliant")]
    assert "negative" in got.rejects["message"][0]
    assert got.clean["claim_id"].to_list() == ["C1", "C4"]
    with pytest.raises(BatchRefused) as e:
        refuse_if_bad(settle_file(p, BOOK, reader=reader))
    assert [(str(q.source), q.line, q.field) for q in e.value.problems] == [
        (str(p), 3, "non_compliant"), (str(p), 4, "non_compliant")]


def test_a_household_id_held_as_a_spreadsheet_number_is_its_digits_or_refused(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["claim_id", "person_id", "date", "self_pay", "户号"])
    ws.append(["C1", "P1", "2024-03-01", 100, 5001])
    ws.append(["C2", "P2", "2024-03-01", 100, 12.5])
    p = tmp_path / "h.xlsx"
    wb.save(p)
    got = read_file(p)
    assert got.clean.select("claim_id", "household_id").rows() == [("C1", "5001")]
    assert got.rejects.select("row", "field").rows() == [(3, "household_id")]


def test_two_columns_giving_one_attribute_refuse_the_file_naming_both():
    with pytest.raises(ReadError) as e:
        attribute_columns(["claim_id", "level", "医院等级"], LEVEL, "claims.csv", line=1)
    p = e.value.problems[0]
    assert (p.source, p.line, p.field) == ("claims.csv", 1, "level")
    assert "'level'" in p.message and "'医院等级'" in p.message


def test_the_batch_names_the_attribute_columns_the_rules_declare_and_results_carry_them(tmp_path, monkeypatch):
    import medaid.batch.run as run_module

    # the shipped rules declare no attribute (yet): the declarations as a rule set would give them
    monkeypatch.setattr(run_module, "declared_attributes", lambda book: LEVEL)
    run = settle_file(_csv(tmp_path, ROWS), BOOK)
    got = run.results.sort("row").select("claim_id", "household_id", "non_compliant", "level", "relief")
    # relief by the shipped key-inpatient brackets: 10,000 → 9,000 × 70% = 6,300; 2,000 → 700
    assert got.rows() == [(c, h, n, lv, r) for (c, h, n, lv), r in
                          zip(EXPECTED, (630_000, 630_000, 70_000, 70_000))]


def test_without_declarations_an_attribute_column_passes_through_as_read(tmp_path):
    run = settle_file(_csv(tmp_path, ROWS), BOOK)
    assert "level" not in run.results.columns
    assert run.results.sort("row")["医院等级"].to_list() == ["三级", "二级", None, " 一级 "]


def test_declared_attributes_are_the_union_over_the_rule_sets_of_the_scheme():
    class Attr:
        def __init__(self, *columns):
            self.columns = columns

    class Version:
        def __init__(self, id, **attributes):
            self.id, self.attributes = id, attributes

    class Book:
        scheme = "county"
        rule_sets = (Version("county", level=Attr("医院等级")),
                     Version("county", level=Attr("医院等级", "医疗机构等级"), place=Attr("就医地")),
                     Version("other", disease=Attr("病种")))

    assert declared_attributes(Book()) == {"level": ("医院等级", "医疗机构等级"), "place": ("就医地",)}
    assert declared_attributes(BOOK) == {}  # the shipped rules declare none


def test_batch_record_writes_the_household_the_non_compliant_cost_and_the_attributes_to_the_ledger(
        tmp_path, monkeypatch):
    """``medaid batch --record`` (docs/batch.md, *Recording in the ledger*): the claims the
    ledger records carry the file's household, non-compliant cost and attribute values."""
    import medaid.batch.record as record_module
    from medaid.batch.record import record_file
    from medaid.ledger import open_ledger

    monkeypatch.setattr(record_module, "declared_attributes", lambda book: LEVEL)
    with open_ledger(str(tmp_path / "desk.sqlite3")) as lg:
        got = record_file(_csv(tmp_path, ROWS), lg, BOOK)
        assert got.recorded == 4
        rows = sorted(lg.entries(), key=lambda e: e.claim_id)
    assert [(e.claim_id, e.household_id, e.non_compliant, e.attributes) for e in rows] == [
        (c, h, n, None if lv is None else (("level", lv),)) for c, h, n, lv in EXPECTED]

"""Claim files are read exactly: headers in English or Chinese, four formats, amounts by the
rules of ``parse_yuan`` (vectorised), and every bad row located by its line."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import example, given, settings, strategies as st

from medaid.errors import MoneyError
from medaid.io.readers import ReadError, read_claims, read_raw, validate_frame
from medaid.money import parse_yuan

HEAD_ZH = "结算单号,人员编号,结算日期,合规自付费用,救助对象类别,就诊类型,医疗机构"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def raw_money(values: list[str | None]) -> pl.DataFrame:
    n = len(values)
    return pl.DataFrame({
        "row": pl.Series(list(range(2, n + 2)), dtype=pl.Int64),
        "claim_id": [f"C{i}" for i in range(n)],
        "person_id": ["P"] * n,
        "date": ["2024-05-03"] * n,
        "self_pay": pl.Series(values, dtype=pl.String),
    })


# --- amounts: the vectorised reader equals parse_yuan ------------------------------------------

_chars = st.sampled_from(list("0123456789,.- ") + ["１", "２", "０", "．", "，", "٣", "۴", "e", "¥", "\t", "\u3000"])
_texty = st.lists(_chars, max_size=14).map("".join)
_amounts = st.tuples(
    st.integers(0, 10**12), st.integers(0, 99), st.booleans(), st.booleans(), st.sampled_from([0, 1, 2, 3])
).map(lambda t: (f"{t[0]:,}" if t[2] else str(t[0]))
      + ("" if t[4] == 0 else "." + f"{t[1]:02d}{'7' if t[4] == 3 else ''}"[: t[4]])
      + (" " if t[3] else ""))


def _reference(v: str) -> int | None:
    try:
        return parse_yuan(v, field="self_pay")
    except MoneyError:
        return None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_texty, _amounts), min_size=1, max_size=30))
@example(["1,234.50", "１２３４５．６７", "١٢٣", "-5", "1.234", "", " ", "12.", "0012", "1,23", "\u3000１\u3000"])
@example(["9999999.99", "9,999,999.99", "10000000", "10,000,000.00", "999,999,999", "00009999999.99",
          "999999999999999.99", "9" * 5000])  # the maximum, 9,999,999.99 yuan (issue #11)
def test_amounts_are_read_exactly_as_parse_yuan_reads_them(values: list[str]) -> None:
    clean, rejects = validate_frame(raw_money(values), "t.csv")
    got = dict(zip(clean["row"].to_list(), clean["self_pay"].to_list()))
    refused = set(rejects.filter(pl.col("field") == "self_pay")["row"].to_list())
    for i, v in enumerate(values):
        row = i + 2
        want = _reference(v)
        if want is None:
            assert row in refused and row not in got, (v, got.get(row))
        else:
            assert got.get(row) == want, (v, got.get(row), want)


def test_a_refused_amount_carries_parse_yuans_message() -> None:
    _, rejects = validate_frame(raw_money(["١٢٣", "-5", "1.234", None]), "t.csv")
    msgs = rejects["message"].to_list()
    assert "is not an amount in yuan" in msgs[0]
    assert msgs[1] == "must not be negative"
    assert msgs[2] == "has more than two decimals (3)"
    assert msgs[3] == "is empty"


# --- headers and encodings ----------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_chinese_headers_are_read_in_every_encoding_excel_writes(tmp_path: Path, encoding: str) -> None:
    p = write(tmp_path / "c.csv",
              HEAD_ZH + ",备注\nC1,P1,2024-05-03,\"30,000.00\",key,inpatient,县人民医院,转诊\n", encoding)
    raw, clean, rejects = read_claims(p)
    assert rejects.height == 0
    assert clean["claim_id"].to_list() == ["C1"]
    assert clean["self_pay"].to_list() == [3_000_000]
    assert clean["hospital"].to_list() == ["县人民医院"]
    assert clean["备注"].to_list() == ["转诊"]  # extra columns pass through
    assert clean["date"].to_list() == [dt.date(2024, 5, 3)]


def test_a_gbk_file_whose_first_megabyte_is_ascii_is_still_read(tmp_path: Path) -> None:
    body = "".join(f"C{i},P{i},2024-01-02,100,key,inpatient,H\n" for i in range(60_000))
    text = HEAD_ZH.replace("医疗机构", "hospital") + "\n" + body + "C-last,P,2024-01-02,100,key,inpatient,县医院\n"
    p = write(tmp_path / "c.csv", text.replace(HEAD_ZH.split(",")[0], "claim_id"), "gbk")
    raw, clean, rejects = read_claims(p)
    assert rejects.height == 0 and clean.height == 60_001
    assert clean["hospital"][-1] == "县医院"


def test_an_explicit_encoding_is_used(tmp_path: Path) -> None:
    p = write(tmp_path / "c.csv", HEAD_ZH + "\nC1,P1,2024-05-03,100,key,inpatient,县医院\n", "gbk")
    _, clean, _ = read_claims(p, encoding="gbk")
    assert clean["hospital"].to_list() == ["县医院"]


def test_map_names_a_column_the_aliases_do_not_know(tmp_path: Path) -> None:
    p = write(tmp_path / "c.csv", "单号,人,日,钱\nC1,P1,2024-05-03,12.5\n")
    _, clean, _ = read_claims(p, mapping={"单号": "claim_id", "人": "person_id", "日": "date", "钱": "self_pay"})
    assert clean["self_pay"].to_list() == [1250]


def test_a_missing_required_column_refuses_the_file_naming_it(tmp_path: Path) -> None:
    p = write(tmp_path / "c.csv", "claim_id,person_id,date\nC1,P1,2024-05-03\n")
    with pytest.raises(ReadError) as e:
        read_claims(p)
    assert "self_pay" in str(e.value) and "c.csv:1" in str(e.value)


def test_a_file_without_a_header_is_refused_without_repeating_its_personal_data(tmp_path: Path) -> None:
    # the first line is a claim: an ID number, a bank account and a name must not reach the message
    p = write(tmp_path / "c.csv",
              "APP-1,500101198001011234,2024-03-05,30000,key,inpatient,申请,6222020200112233445,张三\n")
    with pytest.raises(ReadError) as e:
        read_claims(p)
    text = str(e.value)
    assert "c.csv:1" in text and "looks like a claim, not a header" in text and "self_pay" in text
    for secret in ("500101198001011234", "6222020200112233445", "张三", "APP-1"):
        assert secret not in text


# --- lines as the user sees them ------------------------------------------------------------------


def test_blank_lines_ragged_rows_and_quoted_newlines_keep_line_numbers(tmp_path: Path) -> None:
    text = (
        "claim_id,person_id,date,self_pay,note\n"     # 1
        "C1,P1,2024-05-03,100,a\n"                     # 2
        "\n"                                           # 3
        "C2,P1,2024-05-03,100\n"                       # 4 short
        "C3,P1,2024-05-03,100,\"two\nlines\"\n"        # 5-6
        "C4,P1,2024-05-03,100,x,extra\n"               # 7 long
        "C5,P1,2024-05-03,-1,x\n"                      # 8 negative
    )
    _, clean, rejects = read_claims(write(tmp_path / "c.csv", text))
    assert clean["claim_id"].to_list() == ["C1", "C3"]
    assert clean["row"].to_list() == [2, 5]
    assert rejects["row"].to_list() == [4, 7, 8]
    assert rejects["field"].to_list() == ["row", "row", "self_pay"]


def test_dates_in_iso_slash_and_compact_forms(tmp_path: Path) -> None:
    text = ("claim_id,person_id,date,self_pay\n"
            "A,P,2024-05-03,1\nB,P,2024/05/04,1\nC,P,20240505,1\nD,P,2024-02-30,1\nE,P,May 3,1\n")
    _, clean, rejects = read_claims(write(tmp_path / "c.csv", text))
    assert clean["date"].to_list() == [dt.date(2024, 5, 3), dt.date(2024, 5, 4), dt.date(2024, 5, 5)]
    assert rejects["row"].to_list() == [5, 6] and set(rejects["field"]) == {"date"}


def test_duplicate_claim_ids_are_errors_after_the_first(tmp_path: Path) -> None:
    text = "claim_id,person_id,date,self_pay\nA,P,2024-05-03,1\nB,P,2024-05-03,1\nA,Q,2024-05-04,2\nA,R,2024-05-04,3\n"
    _, clean, rejects = read_claims(write(tmp_path / "c.csv", text))
    assert clean["claim_id"].to_list() == ["A", "B"]
    assert rejects["row"].to_list() == [4, 5]
    assert all("first on line 2" in m for m in rejects["message"])


# --- other formats -------------------------------------------------------------------------------


def test_xlsx_rows_are_sheet_rows_and_floats_are_exact_or_refused(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["结算单号", "人员编号", "结算日期", "合规自付费用"])
    ws.append(["C1", "P1", dt.date(2024, 5, 3), 1234.5])          # row 2
    ws.append([None, None, None, None])                           # row 3: empty
    ws.append(["C2", "P1", dt.datetime(2024, 5, 4), 1234.567])  # row 4: three decimals
    ws.append(["C3", "P1", "2024-05-05", 30000])                  # row 5
    ws.append(["C4", "P1", "2024-05-05", "１,２３４"])             # row 6: text, full-width
    p = tmp_path / "c.xlsx"
    wb.save(p)
    _, clean, rejects = read_claims(p)
    assert clean["row"].to_list() == [2, 5, 6]
    assert clean["self_pay"].to_list() == [123450, 3_000_000, 123400]
    assert rejects["row"].to_list() == [4] and rejects["field"].to_list() == ["self_pay"]


def test_xlsx_sheet_by_name(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(["nothing"])
    ws = wb.create_sheet("claims")
    ws.append(["claim_id", "person_id", "date", "self_pay"])
    ws.append(["C1", "P1", "2024-05-03", "10"])
    p = tmp_path / "c.xlsx"
    wb.save(p)
    _, clean, _ = read_claims(p, sheet="claims")
    assert clean["self_pay"].to_list() == [1000]
    with pytest.raises(ReadError, match="no sheet"):
        read_claims(p, sheet="nope")


def test_jsonl_numbers_keep_their_written_text(tmp_path: Path) -> None:
    lines = [
        {"claim_id": "C1", "person_id": "P1", "date": "2024-05-03", "self_pay": "x"},
    ]
    text = json.dumps(lines[0]).replace('"x"', "12345.67") + "\n\n" + \
        '{"claim_id": "C2", "person_id": "P1", "date": "2024-05-03", "self_pay": 0.125}\n' + \
        "not json\n" + '{"claim_id": "C3", "person_id": "P2", "date": "2024-05-03", "self_pay": 7}\n'
    _, clean, rejects = read_claims(write(tmp_path / "c.jsonl", text))
    assert clean["claim_id"].to_list() == ["C1", "C3"]
    assert clean["self_pay"].to_list() == [1234567, 700]
    assert rejects["row"].to_list() == [3, 4]


def test_parquet_records_are_numbered_from_one(tmp_path: Path) -> None:
    from decimal import Decimal

    p = tmp_path / "c.parquet"
    pl.DataFrame({
        "claim_id": ["C1", "C2"], "person_id": ["P1", "P1"],
        "date": [dt.date(2024, 5, 3), dt.date(2024, 5, 4)],
        "self_pay": pl.Series([Decimal("12.34"), Decimal("-1.00")], dtype=pl.Decimal(10, 2)),
    }).write_parquet(p)
    raw, _ = read_raw(p)
    _, clean, rejects = read_claims(p)
    assert raw["row"].to_list() == [1, 2]
    assert clean["self_pay"].to_list() == [1234]
    assert rejects["row"].to_list() == [2]


def test_duplicates_in_a_numbered_file_and_blank_ids(tmp_path: Path) -> None:
    text = ("claim_id,person_id,date,self_pay\n"
            "A1,P,2024-05-03,1\nA1,P,2024-05-03,1\nA2,P,2024-05-03,1\n\" \",P,2024-05-03,1\nA3,\t,2024-05-03,1\n")
    _, clean, rejects = read_claims(write(tmp_path / "c.csv", text))
    assert clean["claim_id"].to_list() == ["A1", "A2"]
    assert rejects.select("row", "field", "message").rows() == [
        (3, "claim_id", "duplicate claim id (first on line 2)"),
        (5, "claim_id", "is empty"),
        (6, "person_id", "is empty"),
    ]


def test_input_columns_named_like_result_columns_are_kept_apart(tmp_path: Path) -> None:
    p = write(tmp_path / "c.csv", "claim_id,person_id,date,self_pay,relief,row\nC1,P1,2024-05-03,1,99,7\n")
    _, clean, _ = read_claims(p)
    assert clean["relief_input"].to_list() == ["99"] and clean["row_input"].to_list() == ["7"]
    assert clean["row"].to_list() == [2]


def test_a_fully_quoted_export_keeps_its_lines_and_its_empty_rows(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # (an escaped quote stands in the note: an id holding a quote is refused, see test_csv_lines)
    text = ('"claim_id","person_id","date","self_pay","note"\n'
            '"C1","P1","2024-05-03","1,234.50",""\n'   # 2
            '\n'                                       # 3 blank: not a row
            '"","","","",""\n'                         # 4 a row of empty fields: reported
            '"C2","P2","2024-05-03","5","say ""hi"""\n'  # 5
            '"C3","P3","2024-05-03",""\n')             # 6 short
    _, clean, rejects = read_claims(write(tmp_path / "q.csv", text))
    assert clean["row"].to_list() == [2, 5]
    assert clean["note"].to_list() == [None, 'say "hi"']
    assert clean["self_pay"].to_list() == [123_450, 500]
    assert sorted(set(rejects["row"].to_list())) == [4, 6]
    import medaid.io.csv_readers

    def not_here(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("a regular quoted file should not need the line-by-line reader")

    monkeypatch.setattr(medaid.io.csv_readers, "_read_csv_careful", not_here)
    text_ok = text.replace('"C3","P3","2024-05-03",""\n', '"C3","P3","2024-05-03","7",""\n')
    _, clean, rejects = read_claims(write(tmp_path / "q2.csv", text_ok))  # the vectorised path
    assert clean["row"].to_list() == [2, 5, 6] and sorted(set(rejects["row"])) == [4]


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_a_regular_file_with_blank_lines_on_the_vectorised_reader(tmp_path: Path, eol: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import medaid.io.csv_readers

    monkeypatch.setattr(medaid.io.csv_readers, "_read_csv_careful", None)  # must not be needed
    lines = [HEAD_ZH, "C1,P1,2024-05-03,30000,key,inpatient,县医院", "", "C2,P1,2024-05-04,-1,key,inpatient,县医院",
             "", "", "C3,P2,2024-05-05,100,key,inpatient,县医院"]
    p = write(tmp_path / "c.csv", eol.join(lines) + eol, "gbk")
    _, clean, rejects = read_claims(p)
    assert clean["row"].to_list() == [2, 7]
    assert clean["hospital"].to_list() == ["县医院", "县医院"]  # no stray carriage return
    assert rejects["row"].to_list() == [4]


def test_a_short_row_is_reported_even_beside_a_line_of_empty_fields(tmp_path: Path) -> None:
    """A row of 1 field and a line of 4 empty fields hold as many commas as two full rows: the
    short row is still reported at its line, not padded (found by the property test below)."""
    raw, problems = read_raw(write(tmp_path / "c.csv", "claim_id,person_id,date,self_pay\n1\n,,,\n"))
    assert [(p.line, p.message) for p in problems] == [(2, "has 1 fields, the header has 4")]
    assert raw["row"].to_list() == [3]  # the line of empty fields is a row (rejected later)


def test_a_file_with_only_a_header_has_no_rows_and_an_empty_file_is_refused(tmp_path: Path) -> None:
    _, clean, rejects = read_claims(write(tmp_path / "h.csv", "claim_id,person_id,date,self_pay\n"))
    assert clean.height == 0 and rejects.height == 0
    with pytest.raises(ReadError, match="empty"):
        read_claims(write(tmp_path / "e.csv", ""))


_cell = st.text(alphabet=st.sampled_from(list('a1中 ,"\n')), max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(4, 5),
    records=st.lists(st.one_of(
        st.none(),
        st.lists(_cell, min_size=5, max_size=5),                 # a full row (cut to the width)
        st.lists(_cell, min_size=1, max_size=6).map(lambda r: ("ragged", r)),
    ), max_size=12),
    simple=st.booleans(),
    quote_all=st.booleans(),
)
def test_any_csv_is_split_as_pythons_csv_module_splits_it(tmp_path_factory, width, records, quote_all, simple) -> None:  # type: ignore[no-untyped-def]
    """Whichever reader path a file takes, rows, lines and fields are those of the csv module;
    rows with the wrong number of fields are reported at their first line, blank lines skipped.
    (Line breaks inside quoted fields are generated in the pass-through column only, without
    commas: elsewhere a line break is read as a quote left open by mistake, see
    test_csv_lines.py.)"""
    import csv as pycsv
    import io

    buf = io.StringIO()
    w = pycsv.writer(buf, lineterminator="\n", quoting=pycsv.QUOTE_ALL if quote_all else pycsv.QUOTE_MINIMAL)
    header = ["claim_id", "person_id", "date", "self_pay", "x"][:width]
    w.writerow(header)
    want_rows, want_bad, line = [], [], 2
    def one_line(v: str) -> str:
        return v.replace("\n", " ")

    for rec in records:
        if isinstance(rec, tuple):
            rec = [one_line(v) for v in rec[1]]
            if simple:  # files without ragged rows take the vectorised reader
                continue
        elif rec is not None:
            rec = rec[:width]
            rec = [one_line(v) if simple or j < 4 or "\n" not in v else v.replace(",", "")
                   for j, v in enumerate(rec)]
        if rec is None or (len(rec) == 1 and not rec[0].strip() and "\n" not in rec[0]):
            buf.write("\n" if rec is None else rec[0] + "\n")  # blank: not a row
            line += 1
            continue
        w.writerow(rec)
        text = buf.getvalue()
        if len(rec) == width:
            want_rows.append((line, [v or None for v in rec]))
        else:
            want_bad.append(line)
        line = text.count("\n") + 1
    p = tmp_path_factory.mktemp("csv") / "c.csv"
    p.write_text(buf.getvalue(), encoding="utf-8")
    raw, problems = read_raw(p)
    assert [p.line for p in problems] == want_bad
    got = [(r[0], [v or None for v in r[1:]]) for r in raw.rows()]
    assert got == want_rows


def test_xlsx_title_rows_above_the_header_are_skipped(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["2024年医疗救助结算明细"])   # row 1: a title
    ws.append(["制表日期", "2025-01-05"])     # row 2
    ws.append(HEAD_ZH.split(","))           # row 3: the header
    ws.append(["C1", "P1", "2024-05-03", "30000", "key", "inpatient", "县医院"])  # row 4
    ws.append(["C2", "P1", "2024-05-04", "-1", "key", "inpatient", "县医院"])     # row 5
    p = tmp_path / "t.xlsx"
    wb.save(p)
    _, clean, rejects = read_claims(p)
    assert clean["row"].to_list() == [4] and rejects["row"].to_list() == [5]
    wb = openpyxl.Workbook()
    wb.active.append(["nothing", "useful"])
    wb.save(p)
    with pytest.raises(ReadError, match="missing required column"):
        read_claims(p)


def test_typed_parquet_columns_become_the_text_a_claim_file_would_hold():
    """Shared by the local and the Spark readers: one float boundary, the same text on both."""
    import datetime as dt

    import polars as pl

    from medaid.io.readers import text_columns

    frame = pl.DataFrame({
        "date": [dt.date(2024, 5, 3), None],
        "self_pay": [30000.0, 1234.567],          # a whole float loses its ".0"; the rest is repr()
        "claim_id": [17, 18],
        "at": [dt.datetime(2024, 5, 3), dt.datetime(2024, 5, 3, 8, 30)],
    })
    out = text_columns(frame)
    assert out.to_dict(as_series=False) == {
        "date": ["2024-05-03", None],
        "self_pay": ["30000", "1234.567"],
        "claim_id": ["17", "18"],
        "at": ["2024-05-03", "2024-05-03 08:30:00"],
    }


@pytest.mark.parametrize("reader", ["scan", "pieces", "whole"])
def test_a_repeated_pass_through_header_gets_a_name_no_other_column_has(tmp_path: Path, reader: str) -> None:
    # "note, note, note_2": the second "note" may not become "note_2", which another column
    # already is (the run once failed with an internal error); it takes the next free suffix
    from medaid import load_rules
    from medaid.batch.run import settle_file

    p = tmp_path / "claims.csv"
    p.write_text("claim_id,person_id,date,self_pay,group,kind,note,note,note_2\n"
                 "A1,P1,2024-05-03,30000,key,inpatient,x,y,z\n", encoding="utf-8")
    run = settle_file(p, load_rules(str(Path(__file__).parents[1] / "rules")), reader=reader)
    got = run.results.select("note", "note_3", "note_2", "relief")
    assert got.rows() == [("x", "y", "z", 2_330_000)]  # 70% of 9,000 + 85% of 20,000 = 23,300


def test_every_repeat_of_a_header_takes_the_next_free_suffix(tmp_path: Path) -> None:
    from medaid.io.headers import canonical_names

    names = canonical_names(["claim_id", "person_id", "date", "self_pay", "a", "a", "a_2", "a"], None, "f.csv")
    assert names[4:] == ["a", "a_3", "a_2", "a_4"]


def test_a_map_naming_a_column_the_header_lacks_is_refused_naming_it(tmp_path: Path) -> None:
    # a misspelt --map would otherwise do nothing, silently
    p = write(tmp_path / "c.csv", "claim_id,person_id,date,self_pay,金额\nC1,P1,2024-05-03,12.5,3\n")
    with pytest.raises(ReadError) as e:
        read_claims(p, mapping={"金 额x": "self_pay"})
    assert str(e.value) == f"{p}:1: --map: 金 额x=self_pay: the header has no column '金 额x'"

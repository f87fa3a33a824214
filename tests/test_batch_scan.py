"""The streaming scan reads a plain CSV claim file (no quote character) in one pass; the run it
gives must be the very run the whole-file reader gives: the same rows read, the same results,
the same rejects at the same lines with the same reasons, the same rejected text.

When it cannot place every line with certainty (a quote, a short or long row, a line of spaces)
the scan declines the file and the careful readers take it; that must be just as exact.

The reference is ``settle_file(reader="whole")`` (``read_raw`` + ``validate_frame``); expected
values in the fixed examples are written by hand from the file's text and the rule file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from medaid import load_rules
from medaid.batch.run import BatchRun, rejects_for_output, settle_file, write_run
from medaid.errors import MedaidError
from medaid.io.csv_fast import scan_claims
from test_dirty_inputs import EN, ZH

ROOT = Path(__file__).resolve().parents[1]
BOOK = load_rules(str(ROOT / "rules"))
NOT_A_DATE = "is not a date; write YYYY-MM-DD (e.g. 2024-05-03)"


# --------------------------------------------------------------------------------------------
# comparing two runs


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Categorical columns as String (the scan keeps repeating text as categories)."""
    return frame.with_columns(pl.col(c).cast(pl.String) for c, t in frame.schema.items()
                              if isinstance(t, (pl.Categorical, pl.Enum)))


def _same_frame(got: pl.DataFrame, want: pl.DataFrame, what: str) -> None:
    """Equal frames.  The dtypes must be equal, except that a text column may be Categorical
    on one side and String on the other (the scan and the piece reader keep person, group,
    kind and hospital as categories to save memory; the text is the same): those are compared
    after casting the categories to String."""
    assert got.columns == want.columns, what
    for c in got.columns:
        a, b = got.schema[c], want.schema[c]
        text = (pl.String, pl.Categorical)
        assert a == b or (isinstance(a, text) and isinstance(b, text)), (what, c, a, b)
    g, w = _as_text(got), _as_text(want)
    assert g.equals(w), f"{what} differ:\n{g}\n{w}"


def _outcome(path: Path, reader: str) -> BatchRun | str:
    try:
        return settle_file(path, BOOK, reader=reader)
    except MedaidError as e:  # both readers must then refuse the file the same way
        return f"{type(e).__name__}: {e}"


def _same_run(path: Path) -> BatchRun | str:
    """``settle_file`` with the scan first equals the whole-file reader's run; returns it."""
    got, want = _outcome(path, "scan"), _outcome(path, "whole")
    if isinstance(want, str) or isinstance(got, str):
        assert got == want
        return got
    assert got.rows_read == want.rows_read
    assert (got.header_line, got.blank_lines, got.totals_rows, got.warnings) == (
        want.header_line, want.blank_lines, want.totals_rows, want.warnings)
    _same_frame(got.results, want.results, "results")
    _same_frame(got.rejects, want.rejects, "rejects")
    assert got.rejects.schema == want.rejects.schema
    _same_frame(got.rejected_rows, want.rejected_rows, "rejected rows")
    assert rejects_for_output(got).equals(rejects_for_output(want))
    for column, values in got.text_values.items():  # handed to the writer: every value is there
        held = set(got.results[column].cast(pl.String).drop_nulls().to_list())
        assert held <= set(values.to_list()), column
    return got


# --------------------------------------------------------------------------------------------
# dirty unquoted files


@dataclass(frozen=True)
class Dirty:
    text: bytes
    declined: bool   # the file has a quote, a short or long row or a line of spaces


# (digit ids take the scan's shortcut, the others are looked at after it: files mix both)
CLAIM_IDS = st.sampled_from(["C1", "C2", "C3", "C4", " C5", "C6 ", " C1 ", "", " ", "11", "+12", "012", " 13"])
PERSONS = st.sampled_from(["P1", "P2", "P3", " P1 ", "P2 ", "", " ", "5", "05", "+5", "5 ", "6"])
DATES = st.sampled_from([
    "2024-05-03", "2024-01-15", "2023-12-31", "2024-02-29",             # ISO
    "2024/05/03", "20240503", "2024-05-03 00:00:00", " 2024-05-04 ",   # other accepted forms
    "2024-02-30", "x", "", "2018-02-04",                               # bad, empty, no rule set
])
AMOUNTS = st.one_of(
    st.integers(0, 200_000).map(str),
    st.builds(lambda y, f: f"{y}.{f:02d}", st.integers(0, 99_999), st.integers(0, 99)),
    st.sampled_from(["30000", "1234.5", "12.", "１２３．５", "１２３４５．６７", "100.125", "-5",
                     "", " ", " 12 ", "1e3", "12a", "1234567890123456"]),
)
GROUPS = st.sampled_from(["key", " key", "key ", "low-income", "nobody", ""])
KINDS = st.sampled_from(["inpatient", "inpatient", "outpatient-special", " inpatient ", "x"])
HOSPITALS = st.sampled_from(["H1", "H2", "县人民医院", " H2", "=H", "", " "])
NOTES = st.sampled_from(["", "", "ok", " x ", " ", "备注"])


@st.composite
def dirty_files(draw: st.DrawFn) -> Dirty:
    """An unquoted UTF-8 claim file, English or Chinese header, maybe a pass-through last
    column (often empty), whose lines mix good rows, padded text, empty ids, duplicate ids,
    dates and amounts in every accepted and many refused forms, unknown plans, blank lines,
    CRLF line ends and maybe no final newline; sometimes a line the scan must decline."""
    zh, extra = draw(st.booleans()), draw(st.booleans())
    header = (ZH if zh else EN) + ((",备注" if zh else ",note") if extra else "")
    width = 7 + extra

    def row() -> list[str]:
        cells = [draw(CLAIM_IDS), draw(PERSONS), draw(DATES), draw(AMOUNTS), draw(GROUPS),
                 draw(KINDS), draw(HOSPITALS)]
        return cells + [draw(NOTES)] if extra else cells

    lines: list[str] = []
    for _ in range(draw(st.integers(0, 40))):
        what = draw(st.sampled_from(["row"] * 6 + ["blank", "empty fields"]))
        if what == "row":
            lines.append(",".join(row()))
        elif what == "blank":
            lines.append("")
        else:  # every field empty: a row (its ids are missing), not a blank line
            lines.append("," * (width - 1))
    # occasionally a line the scan cannot place with certainty
    breaks = draw(st.lists(st.sampled_from(["short", "long", "spaces", "quote"]),
                           max_size=draw(st.sampled_from([0, 0, 0, 0, 1, 2]))))
    for b in breaks:
        cells = row()
        if b == "short":
            k = draw(st.integers(1, width - 1))
            if k == 1:  # one field: it must hold text, else the line is blank, not short
                cells[0] = cells[0].strip() or "C9"
            line = ",".join(cells[:k])
        elif b == "long":
            line = ",".join(cells + [draw(st.sampled_from(["x", ""]))])
        elif b == "spaces":
            line = draw(st.sampled_from([" ", "  ", "\t", " \t "]))
        else:
            i = draw(st.integers(0, width - 1))  # a stray quote inside an unquoted field
            cells[i] = "St" + cells[i] + '"' + "M"
            line = ",".join(cells)
        lines.insert(draw(st.integers(0, len(lines))), line)
    ends = [draw(st.sampled_from(["\n"] * 4 + ["\r\n"])) for _ in range(len(lines) + 1)]
    if lines and not draw(st.booleans()):
        ends[-1] = ""  # no newline at the end
    text = "".join(line + end for line, end in zip([header, *lines], ends))
    declined = bool(breaks)
    return Dirty(text.encode("utf-8"), declined=declined)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(f=dirty_files())
def test_the_scan_gives_the_whole_file_run_on_dirty_files(tmp_path_factory: pytest.TempPathFactory,
                                                           f: Dirty) -> None:
    p = tmp_path_factory.mktemp("scan") / "claims.csv"
    p.write_bytes(f.text)
    taken = scan_claims(p)
    assert (taken is None) == f.declined, f.text
    _same_run(p)


# --------------------------------------------------------------------------------------------
# fixed examples, expectations by hand


def _write(tmp: Path, text: str, name: str = "claims.csv") -> Path:
    p = tmp / name
    p.write_bytes(text.encode("utf-8"))
    return p


def test_an_empty_last_column_is_a_row_not_a_short_line(tmp_path: Path) -> None:
    p = _write(tmp_path, EN + ",note\n"
               "E1,P1,2024-05-03,30000,key,inpatient,H1,\n"      # 2 note empty
               "E2,P2,2024-05-04,10000,key,inpatient,H1,seen\n"  # 3
               "E3,P3,2024-05-05,999.99,key,inpatient,,\n")      # 4 hospital and note empty
    assert scan_claims(p) is not None
    run = _same_run(p)
    assert isinstance(run, BatchRun)
    assert (run.rows_read, run.settled, run.rejected) == (3, 3, 0)
    got = _as_text(run.results.select("row", "claim_id", "hospital", "note", "self_pay", "relief"))
    assert got.rows() == [
        (2, "E1", "H1", None, 3_000_000, 2_330_000),   # 70% of 9,000 + 85% of 20,000 = 23,300
        (3, "E2", "H1", "seen", 1_000_000, 630_000),   # 70% of 9,000
        (4, "E3", None, None, 99_999, 0),              # below the 1,000 threshold
    ]


@pytest.mark.parametrize("ids, digits", [
    (("1001", "1002", "1003"), {"claim_id", "person_id"}),
    (("1001", "+1002", "1003"), {"claim_id", "person_id"}),   # "+": still a number's digits
    (("1001", "E1002", "1003"), set()),
    (("1001", "10 02", "1003"), set()),
])
def test_the_writer_is_told_which_id_columns_hold_only_digits(tmp_path: Path, ids: tuple[str, ...],
                                                               digits: set[str]) -> None:
    """The scan tells the writer when every claim and person id is digits (an optional "+"
    first): such cells never need quotes.  A leading "+" may still start a formula in a
    spreadsheet, so it is neutralised as ever."""
    p = _write(tmp_path, EN + "\n" + "".join(
        f"{c},{c},2024-05-0{i + 1},30000,key,inpatient,H1\n" for i, c in enumerate(ids)))
    run = settle_file(p, BOOK)
    assert run.digit_columns == digits
    out = tmp_path / "r.csv"
    write_run(run, out, bom=False, columns="claim_id,person_id,relief")
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines == ["claim_id,person_id,relief"] + [
        f"'{c},'{c},23300.00" if c.startswith("+") else f"{c},{c},23300.00" for c in ids]


def test_blank_lines_are_not_rows_and_later_lines_keep_their_numbers(tmp_path: Path) -> None:
    p = _write(tmp_path, EN + "\n"
               "A1,P1,2024-05-03,30000,key,inpatient,H1\n"   # 2
               "\n"                                          # 3 blank
               "A2,P1,2024-05-04,100,key,inpatient,H1\r\n"   # 4
               "A3,P2,2024-02-30,100,key,inpatient,H1\n"     # 5 bad date
               "\r\n"                                        # 6 blank (CRLF)
               "\n"                                          # 7 blank
               "A4,P2,2024-05-05,-5,key,inpatient,H1\n"      # 8 negative amount
               "A5,P3,2024-05-06,12,nobody,inpatient,H1")    # 9 no plan; no final newline
    assert scan_claims(p) is not None
    run = _same_run(p)
    assert isinstance(run, BatchRun)
    assert run.rows_read == 5
    assert run.results["row"].to_list() == [2, 4]
    rejects = run.rejects.rows()
    assert rejects[:2] == [(5, "A3", "date", NOT_A_DATE),
                           (8, "A4", "self_pay", "must not be negative")]
    assert [r[:3] for r in rejects[2:]] == [(9, "A5", "group/kind")]
    # lines 3, 6 and 7 are blank: 9 lines = header 1 + blank 3 + rows 5
    assert run.reconcile() == "rows read 5 = settled 2 + rejected 3; not rows: 3 blank lines"
    shown = [str(x) for x in run.problems()]
    assert shown[0] == f"{p}:5: date: {NOT_A_DATE} (claim A3)"
    assert shown[1] == f"{p}:8: self_pay: must not be negative (claim A4)"


@pytest.mark.parametrize("reader", ["scan", "pieces", "whole"])
def test_a_line_of_empty_fields_is_a_row_even_beside_a_short_row(tmp_path: Path, reader: str) -> None:
    # One rule for every reader: an empty line is a blank line, a line of empty fields (",,,",
    # what a spreadsheet writes for an empty row) is a row, rejected for what it lacks.  The
    # short row on line 2 has 6 commas fewer than a row and line 5 has 6 commas: counted over
    # the file they make up for each other, and the piece reader once took line 5 as blank.
    # (The file hypothesis found; CI failed on it.)
    p = _write(tmp_path, EN + "\n"
               "C1\n"                                       # 2 short row
               "C1,P1,2024-05-03,0,key,inpatient,H1\n"      # 3 settled (relief 0)
               "C1,P1,2024-05-03,0,key,inpatient,H1\n"      # 4 duplicate of line 3
               ",,,,,,")                                    # 5 a row of empty fields
    run = settle_file(p, BOOK, reader=reader)
    assert (run.rows_read, run.settled, run.rejected, run.blank_lines) == (4, 1, 3, 0)
    assert run.results["row"].to_list() == [3]
    assert [r[:3] for r in run.rejects.rows()] == [
        (2, None, "row"), (4, "C1", "claim_id"),
        (5, None, "claim_id"), (5, None, "person_id"), (5, None, "date"), (5, None, "self_pay")]
    assert run.rejects.rows()[0][3] == "has 1 fields, the header has 7"
    assert run.rejects.rows()[1][3] == "duplicate claim id (first on line 3)"
    assert run.reconcile() == "rows read 4 = settled 1 + rejected 3"
    _same_run(p)


def test_a_duplicate_keeps_its_text_as_in_the_file(tmp_path: Path) -> None:
    p = _write(tmp_path, EN + "\n"
               "D1,P1,2024-05-03,100,key,inpatient,H1\n"        # 2 first D1 (plain: fast path)
               "D2,P1,2024-05-04,100,key,inpatient,H1\n"        # 3 first D2 (plain)
               "D1, P2 ,2024/05/04,１２．５,key ,inpatient,=H\n"  # 4 duplicate, odd text
               "D2,P3,2024-05-06,7.5,key,inpatient,H2\n")       # 5 duplicate, plain text
    assert scan_claims(p) is not None
    run = _same_run(p)
    assert isinstance(run, BatchRun)
    assert run.rejects.rows() == [
        (4, "D1", "claim_id", "duplicate claim id (first on line 2)"),
        (5, "D2", "claim_id", "duplicate claim id (first on line 3)"),
    ]
    rows = _as_text(run.rejected_rows).rows(named=True)
    assert rows == [
        {"row": 4, "claim_id": "D1", "person_id": " P2 ", "date": "2024/05/04", "self_pay": "１２．５",
         "group": "key ", "kind": "inpatient", "hospital": "=H"},
        {"row": 5, "claim_id": "D2", "person_id": "P3", "date": "2024-05-06", "self_pay": "7.5",
         "group": "key", "kind": "inpatient", "hospital": "H2"},
    ]
    out = rejects_for_output(run)
    assert out["line"].to_list() == [4, 5]
    assert out["reason"].to_list() == ["duplicate claim id (first on line 2)",
                                       "duplicate claim id (first on line 3)"]


def test_a_quoted_file_is_declined_and_read_the_careful_way(tmp_path: Path) -> None:
    p = _write(tmp_path, EN + "\n"
               'Q1,P1,2024-05-03,"1,234.50",key,inpatient,"Hospital ""A"", East"\n'  # 2
               "\n"                                                                  # 3 blank
               'Q2,P1,2024-05-04,"30,000",key,inpatient,H\n'                         # 4
               'Q3,P2,2024-05-05,"-1",key,inpatient,H\n')                            # 5 negative
    assert scan_claims(p) is None
    got, want = _outcome(p, "auto"), _outcome(p, "whole")
    assert isinstance(got, BatchRun) and isinstance(want, BatchRun)
    assert got.rows_read == want.rows_read == 3
    _same_frame(got.results, want.results, "results")
    _same_frame(got.rejects, want.rejects, "rejects")
    _same_frame(got.rejected_rows, want.rejected_rows, "rejected rows")
    res = _as_text(got.results.select("claim_id", "hospital", "self_pay", "relief"))
    assert res.rows() == [
        ("Q1", 'Hospital "A", East', 123_450, 16_415),  # 70% of 234.50 = 164.15
        ("Q2", "H", 3_000_000, 2_330_000),              # the source's worked example
    ]
    assert got.rejects.rows() == [(5, "Q3", "self_pay", "must not be negative")]


@pytest.mark.parametrize("last, taken", [
    ("C3,P1,2024-05-05,100,key,inpatient,H1,ok,", False),  # one empty field too many, no line break
    ("C3,P1,2024-05-05,100,key,inpatient,H1,ok", True),    # a whole row, no line break
    ("C3,P1,2024-05-05,100,key,inpatient,H1,", True),      # an empty last field, no line break
])
def test_a_last_line_without_a_line_break_is_judged_like_any_other(
        tmp_path: Path, last: str, taken: bool) -> None:
    """Found by the property test: polars took a final line with one empty field too many as a
    row (where it refuses the same line anywhere else).  The scan now declines it, and the
    careful reader reports the line."""
    p = _write(tmp_path, EN + ",note\n"
               "C1,P1,2024-05-03,100,key,inpatient,H1,\n"
               "C2,P1,2024-05-04,100,key,inpatient,H1,x\n" + last)
    assert (scan_claims(p) is not None) == taken
    _same_run(p)
    if not taken:
        got = _outcome(p, "auto")
        assert isinstance(got, BatchRun) and got.rows_read == 3
        assert [r[0] for r in got.rejects.rows()] == [4]


# --------------------------------------------------------------------------------------------
# GB18030 / GBK files: read from a UTF-8 copy made piece by piece


def test_a_gbk_export_is_read_from_a_utf8_copy_that_is_removed(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Chinese Excel writes GBK: the file is decoded piece by piece into a temporary UTF-8 copy,
    read by the scan (same run as the whole-file reader, lines as in the original) and the
    copy is removed."""
    from medaid.io import readers

    rows = [ZH,
            "G1,P1,2024-03-01,１２３４５．６７,key,inpatient,县人民医院",     # 2: full-width amount
            "",                                                         # 3: blank
            "G2,P1,2024-03-02,30000,key,inpatient,县中医院",               # 4
            "G3,P2,2024-02-30,100,low-income,inpatient,县中医院",          # 5: no such date
            "G2,P3,2024-03-03,100,key,inpatient,县人民医院"]              # 6: duplicate of line 4
    p = tmp_path / "gbk.csv"
    p.write_bytes(("\r\n".join(rows) + "\r\n").encode("gbk"))
    copies: list[Path] = []
    real = readers.utf8_copy
    monkeypatch.setattr(readers, "utf8_copy", lambda *a, **k: copies.append(real(*a, **k)) or copies[-1])
    got = settle_file(p, BOOK, reader="scan")
    assert len(copies) == 1 and copies[0] is not None and not copies[0].exists()
    assert got.rows_read == 4  # four data lines and a blank one
    assert [(r, f) for r, _, f, _ in got.rejects.iter_rows()] == [(5, "date"), (6, "claim_id")]
    # claim mode, 70% from 1,000 to 10,000 and 85% above: 6,300 + 1,993.82; 6,300 + 17,000
    assert got.results["relief"].to_list() == [829_382, 2_330_000]
    monkeypatch.setattr(readers, "utf8_copy", real)
    _same_run(p)


def test_a_gbk_file_missing_a_column_is_named_by_its_own_name(tmp_path: Path) -> None:
    p = tmp_path / "缺列.csv"
    p.write_bytes("结算单号,人员编号,合规自付费用\nG1,P1,100\n".encode("gbk"))
    with pytest.raises(MedaidError) as e:
        settle_file(p, BOOK)
    assert str(p) in str(e.value) and "missing required column(s): date" in str(e.value)

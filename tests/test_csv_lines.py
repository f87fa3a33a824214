"""Every line of a claim file is accounted for, whichever reader takes it (issue #11, items 2,
3, 13 and 14): a row is settled, rejected with its line, or a totals row; the other lines are
the header, the title lines above it and blank lines, and the reconciliation line says so.

* A quote left open by mistake (``A2,"P2,2024-01-01,30000``) must not swallow the lines after
  it: its line is refused, the lines after it are read on their own.
* Lines ended by a carriage return alone (Excel's "CSV (Macintosh)") are lines.
* A title above the header is not the header: the header is found by its column names, and a
  header lacking a column is named by its own line.
* A totals row (合计, 小计, Total) is not a claim: it is counted apart and its amounts are
  checked against the claims above it.

Each file goes through the three CSV readers (``scan``: the streaming scan, ``pieces``: the
piece reader, ``whole``: the whole-file and careful readers), a GBK copy of it, and XLSX where
the item applies.  Expected amounts are worked by hand from the rule file (70% of the part of
the self-pay from 1,000 to 10,000 yuan, 85% from 10,000 to 50,000): a 30,000 yuan stay is
relieved 6,300 + 17,000 = 23,300 yuan; a 20,000 yuan stay 6,300 + 8,500 = 14,800 yuan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medaid import load_rules
from medaid.batch.run import BatchRun, rejects_for_output, settle_file
from medaid.cli import main
from medaid.errors import MedaidError

ROOT = Path(__file__).resolve().parents[1]
RULES = str(ROOT / "rules" / "chongqing-county-2019.toml")
BOOK = load_rules(RULES)
READERS = ("scan", "pieces", "whole")
EN = "claim_id,person_id,date,self_pay"
ZH = "结算单号,人员编号,结算日期,合规自付费用"
STAY_30000 = 2_330_000  # fen: 6,300 + 17,000 yuan
STAY_20000 = 1_480_000  # fen: 6,300 + 8,500 yuan


def _write(tmp: Path, text: str, name: str = "claims.csv", encoding: str = "utf-8") -> Path:
    p = tmp / name
    p.write_bytes(text.encode(encoding))
    return p


def _runs(p: Path) -> dict[str, BatchRun]:
    """The run of each reader; all must be the same (same lines, same counts)."""
    runs = {r: settle_file(p, BOOK, reader=r) for r in READERS}
    want = runs["whole"]
    for r, got in runs.items():
        assert got.reconcile() == want.reconcile(), r
        assert got.results["row"].to_list() == want.results["row"].to_list(), r
        assert got.results["relief"].to_list() == want.results["relief"].to_list(), r
        assert got.rejects.rows() == want.rejects.rows(), r
        assert rejects_for_output(got).equals(rejects_for_output(want)), r
        assert got.warnings == want.warnings, r
    return runs


def _batch(*args: str) -> "object":
    return CliRunner().invoke(main, ["batch", *args, "--rules", RULES])


# --------------------------------------------------------------------------------------------
# item 2: a stray quote


STRAY = (EN + "\n"
         "A1,P1,2024-01-01,30000\n"     # 2
         'A2,"P2,2024-01-01,30000\n'    # 3: a quote left open
         "A3,P3,2024-01-01,30000\n"     # 4
         "A4,P4,2024-01-01,30000\n")    # 5


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_a_stray_quote_refuses_its_line_and_the_lines_after_it_are_settled(
        tmp_path: Path, encoding: str) -> None:
    p = _write(tmp_path, STRAY.replace(EN, ZH), encoding=encoding)
    for run in _runs(p).values():
        # 4 rows: lines 2, 4, 5 settled (23,300 yuan each), line 3 refused
        assert run.reconcile() == "rows read 4 = settled 3 + rejected 1"
        assert run.results["row"].to_list() == [2, 4, 5]
        assert run.results["relief"].to_list() == [STAY_30000] * 3
        [(line, _, field, message)] = run.rejects.rows()
        assert (line, field) == (3, "row") and "quote" in message


def test_a_stray_quote_in_the_last_column_does_not_swallow_the_rows_below(tmp_path: Path) -> None:
    """The quote opens a field that would hold every line to the end of the file with the
    right number of fields: still one line refused, the others rows."""
    p = _write(tmp_path, EN + ",hospital\n"
               "A1,P1,2024-01-01,30000,H1\n"
               'A2,P2,2024-01-01,30000,"H1\n'           # 3
               "A3,P3,2024-01-01,30000,H1\n"
               "A4,P4,2024-01-01,30000,H1\n")
    for run in _runs(p).values():
        assert run.reconcile() == "rows read 4 = settled 3 + rejected 1"
        assert run.results["row"].to_list() == [2, 4, 5]
        assert run.rejects["row"].to_list() == [3]


def test_a_quote_closed_on_the_next_line_does_not_merge_two_claims(tmp_path: Path) -> None:
    """``"P2,2024-01-01,30000⏎A3,P3"`` would be one person id holding a line break, and line 4
    would vanish into it; a line break never belongs in a claim field, so line 3 is refused
    and line 4 is read alone (then refused too: its quote stands in a person id)."""
    p = _write(tmp_path, EN + "\n"
               "A1,P1,2024-01-01,30000\n"
               'A2,"P2,2024-01-01,30000\n'     # 3
               'A3,P3",2024-01-01,30000\n'     # 4
               "A4,P4,2024-01-01,20000\n")     # 5
    for run in _runs(p).values():
        assert run.reconcile() == "rows read 4 = settled 2 + rejected 2"
        assert run.results["row"].to_list() == [2, 5]
        assert run.results["relief"].to_list() == [STAY_30000, STAY_20000]
        assert [(r, f) for r, _, f, _ in run.rejects.iter_rows()] == [(3, "row"), (4, "person_id")]


def test_a_note_written_over_two_lines_is_still_one_row(tmp_path: Path) -> None:
    """A quoted pass-through field may hold a line break (Excel's Alt+Enter): one row."""
    p = _write(tmp_path, EN + ",note\n"
               'A1,P1,2024-01-01,30000,"first line\nsecond line"\n'   # lines 2-3
               "A2,P2,2024-01-01,20000,\n")                          # 4
    run = settle_file(p, BOOK)
    assert run.reconcile() == "rows read 2 = settled 2 + rejected 0"
    assert run.results["row"].to_list() == [2, 4]
    assert run.results["note"].to_list() == ["first line\nsecond line", None]


def test_the_cli_no_longer_loses_rows_after_a_stray_quote(tmp_path: Path) -> None:
    p = _write(tmp_path, STRAY)
    r = _batch(str(p), "-o", str(tmp_path / "out.csv"), "--on-error", "skip", "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert (got["rows_read"], got["settled"], got["rejected"]) == (4, 3, 1)
    r = _batch(str(p), "-o", str(tmp_path / "out2.csv"))
    assert r.exit_code == 1 and f"{p}:3: row:" in r.output
    assert "rows read 4 = settled 3 + rejected 1" in r.output


# --------------------------------------------------------------------------------------------
# item 3: lines ended by CR alone


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_lines_ended_by_a_carriage_return_alone_are_lines(tmp_path: Path, encoding: str) -> None:
    p = _write(tmp_path, "\r".join([ZH + ",医疗机构",
                                    "A1,P1,2024-01-01,30000,县医院",     # 2
                                    "A2,P2,2024-01-02,20000,县医院",     # 3
                                    "A3,P3,2024-02-30,20000,县医院",     # 4: no such date
                                    ""]), encoding=encoding)
    for run in _runs(p).values():
        assert run.reconcile() == "rows read 3 = settled 2 + rejected 1"
        assert run.results["row"].to_list() == [2, 3]
        assert run.results["relief"].to_list() == [STAY_30000, STAY_20000]
        assert [(r, f) for r, _, f, _ in run.rejects.iter_rows()] == [(4, "date")]


def test_a_mac_csv_settles_under_on_error_fail(tmp_path: Path) -> None:
    p = _write(tmp_path, EN + "\rA1,P1,2024-01-01,30000\rA2,P2,2024-01-02,20000")
    out = tmp_path / "out.csv"
    r = _batch(str(p), "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "rows read 2 = settled 2 + rejected 0" in r.output
    header = out.read_text(encoding="utf-8-sig").splitlines()[0]
    assert header.startswith("claim_id,person_id,date,self_pay,plan")


# --------------------------------------------------------------------------------------------
# item 13: a title above the header


TITLED = ("忠县2024年医疗救助一站式结算明细表,,,\n"   # 1: a title, padded to the width
          "\n"                                       # 2: blank
          + ZH + "\n"                                # 3: the header
          "A1,P1,2024-01-01,30000\n"                 # 4
          "\n"                                       # 5: blank
          "A2,P2,2024-01-02,-1\n"                    # 6: negative
          "A3,P3,2024-01-03,20000\n")                # 7


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_a_title_above_the_header_is_not_a_row_and_lines_stay_the_files(
        tmp_path: Path, encoding: str) -> None:
    p = _write(tmp_path, TITLED, encoding=encoding)
    for run in _runs(p).values():
        # 7 lines = 2 above the header + the header + 1 blank + 3 rows
        assert run.reconcile() == ("rows read 3 = settled 2 + rejected 1; "
                                   "not rows: 2 lines above the header on line 3, 1 blank line")
        assert run.results["row"].to_list() == [4, 7]
        assert run.results["relief"].to_list() == [STAY_30000, STAY_20000]
        assert [(r, f) for r, _, f, _ in run.rejects.iter_rows()] == [(6, "self_pay")]


def test_a_quoted_titled_file_keeps_its_line_numbers(tmp_path: Path) -> None:
    p = _write(tmp_path, '"明细表"\n' + ZH + '\nA1,P1,2024-01-01,"30,000"\nA2,P2,2024-01-02,x\n')
    for run in _runs(p).values():
        assert run.results["row"].to_list() == [3]
        assert run.rejects["row"].to_list() == [4]
        assert run.header_line == 2


def test_a_header_lacking_a_column_is_named_by_its_line_not_the_title(tmp_path: Path) -> None:
    p = _write(tmp_path, "忠县2024年医疗救助一站式结算明细表\n\n结算单号,人员编号,结算日期,金额\n"
               "A1,P1,2024-01-01,30000\n")
    for reader in READERS:
        with pytest.raises(MedaidError) as e:
            settle_file(p, BOOK, reader=reader)
        msg = str(e.value)
        assert f"{p}:3:" in msg and "missing required column(s): self_pay" in msg, msg
        assert "明细表" not in msg


def _xlsx(path: Path, rows: list[list[object]]) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    for r in rows:
        wb.active.append(r)
    wb.save(path)
    return path


def test_an_xlsx_header_lacking_a_column_is_named_by_its_row_not_the_title(tmp_path: Path) -> None:
    p = _xlsx(tmp_path / "t.xlsx", [["忠县2024年医疗救助一站式结算明细表"], [],
                                    ["结算单号", "人员编号", "结算日期", "金额"],
                                    ["A1", "P1", "2024-01-01", 30000]])
    with pytest.raises(MedaidError) as e:
        settle_file(p, BOOK)
    msg = str(e.value)
    assert f"{p}:3:" in msg and "missing required column(s): self_pay" in msg, msg


def test_an_xlsx_title_and_totals_rows_are_accounted_for_by_sheet_row(tmp_path: Path) -> None:
    p = _xlsx(tmp_path / "t.xlsx", [["忠县2024年医疗救助一站式结算明细表"], [],
                                    ["序号", *ZH.split(",")],
                                    [1, "A1", "P1", "2024-01-01", 30000],
                                    [],
                                    [2, "A2", "P2", "2024-01-02", 20000],
                                    ["合计", None, None, None, 50000]])
    run = settle_file(p, BOOK)
    assert run.reconcile() == ("rows read 3 = settled 2 + rejected 0 + totals rows 1; "
                               "not rows: 2 lines above the header on line 3, 1 blank line")
    assert run.results["row"].to_list() == [4, 6] and run.totals_rows == (7,)
    assert run.warnings == ()


# --------------------------------------------------------------------------------------------
# item 14: totals rows


TOTALLED = (EN + ",hospital\n"
            "A1,P1,2024-01-01,30000,H1\n"     # 2
            "A2,P2,2024-01-02,20000,H1\n"     # 3
            "合计,,,50000,\n")                 # 4: 30,000 + 20,000


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_a_totals_row_is_not_a_claim_and_is_counted_apart(tmp_path: Path, encoding: str) -> None:
    p = _write(tmp_path, TOTALLED, encoding=encoding)
    for run in _runs(p).values():
        assert run.reconcile() == "rows read 3 = settled 2 + rejected 0 + totals rows 1"
        assert run.totals_rows == (4,) and run.warnings == ()
        assert run.results["relief"].to_list() == [STAY_30000, STAY_20000]


def test_a_totals_row_that_does_not_add_up_is_a_warning_naming_it(tmp_path: Path) -> None:
    p = _write(tmp_path, TOTALLED.replace("合计,,,50000,", "合计,,,50000.01,"))
    for run in _runs(p).values():
        [w] = run.warnings
        assert (w.line, w.field) == (4, "self_pay")
        assert "50,000.01" in w.message and "50,000.00" in w.message  # stated, then the sum
    out = tmp_path / "out.csv"
    r = _batch(str(p), "-o", str(out))  # under --on-error fail: a warning, not a refusal
    assert r.exit_code == 0, r.output
    assert f"warning: {p}:4: self_pay: totals row says 50,000.01" in r.output
    assert "rows read 3 = settled 2 + rejected 0 + totals rows 1" in r.output
    r = _batch(str(p), "-o", str(out), "--json")
    got = json.loads(r.output)
    assert got["rows_read"] == got["settled"] + got["rejected"] + got["totals_rows"] == 3
    assert got["warnings"] == [str(w)]


def test_subtotals_and_a_grand_total_each_sum_their_own_claims(tmp_path: Path) -> None:
    p = _write(tmp_path, "序号," + EN + "\n"
               "1,A1,P1,2024-01-01,30000\n"    # 2
               "2,A2,P2,2024-01-02,20000\n"    # 3
               "小 计：,,,,50000\n"             # 4: 30,000 + 20,000
               "3,A3,P3,2024-01-03,1000.50\n"  # 5
               "4,A4,P4,2024-01-03,x\n"        # 6: not an amount (rejected)
               "Subtotal,,,,1000.50\n"         # 7: line 5 alone
               "合　计,,,,51000.00\n"           # 8: 50,000 + 1,000.50 = 51,000.50: mismatch
               "Total:,Total,,,\n")            # 9: no amount stated
    for run in _runs(p).values():
        assert run.totals_rows == (4, 7, 8, 9)
        assert run.reconcile() == "rows read 8 = settled 3 + rejected 1 + totals rows 4"
        [w] = run.warnings
        assert w.line == 8 and "51,000.00" in w.message and "51,000.50" in w.message
        assert "1 rejected row(s)" in w.message


def test_a_claim_at_a_hospital_named_total_is_still_a_claim(tmp_path: Path) -> None:
    p = _write(tmp_path, EN + ",hospital\nA1,P1,2024-01-01,30000,Total\n,,,,合计\n")
    run = settle_file(p, BOOK, reader="whole")
    assert run.results["row"].to_list() == [2] and run.totals_rows == (3,)


def test_a_totals_row_labelled_in_its_id_columns_is_found_by_every_reader(tmp_path: Path) -> None:
    """``合计`` in the claim id and person id columns, with a date: still a totals row (the
    scan reads such rows again as text, like any row it does not take as it is)."""
    p = _write(tmp_path, EN + "\nA1,P1,2024-01-01,30000\nA2,P2,2024-01-02,20000\n"
               "合计,合计,2024-01-02,50000\n")
    for run in _runs(p).values():
        assert run.reconcile() == "rows read 3 = settled 2 + rejected 0 + totals rows 1"
        assert run.totals_rows == (4,) and run.warnings == ()

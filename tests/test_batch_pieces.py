"""A large CSV file is read and typed piece by piece (memory); the run must be the very run the
whole-file reader gives: same results, same rejects and reasons at the same lines, same files.

The reference is the whole-file path (pieces switched off); the pieces here are made tiny so
that every file is cut into many of them, cuts falling between any two lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from medaid.cli import main
from medaid.io import csv_fast as scan, csv_pieces, readers
from test_dirty_inputs import CORPUS, EN

ROOT = Path(__file__).resolve().parents[1]
RULES = str(ROOT / "rules")


def _many(tmp: Path) -> Path:
    """Unquoted UTF-8 with problems spread over many pieces: duplicates whose first occurrence
    is in an earlier piece (one of them itself rejected for its date), blank lines, padded and
    formula-like text in the few-valued columns, full-width digits, a CRLF line end, no newline
    at the end."""
    rows = [EN]
    for i in range(60):
        rows.append(f"M{i:03d},P{i % 7},2024-03-{1 + i % 28:02d},{100 + 37 * i}.{i % 100:02d},key,inpatient,H{i % 3}")
    rows[5] = "M004,P1,2024-02-30,100,key,inpatient,H1"        # line 6: bad date (id M004)
    rows[40] = "M004,P2,2024-03-09,100,key,inpatient,H1"       # line 41: duplicate of line 6
    rows[50] = "M010,P2,2024-03-09,100,key,inpatient,H1"       # line 51: duplicate of line 12
    rows[20] = ""                                              # line 21: blank
    rows[21] = "M020, P3 ,2024-03-10,１２.５,key, inpatient ,=H9"  # line 22: padded, full-width, formula
    rows[30] = "M029,P3,2024/03/11,\u00a0,key,inpatient,@H"    # line 31: empty amount (nbsp)
    rows[33] = "M032,P3,2024-03-12,12,nobody,inpatient,H1"     # line 34: no plan
    text = "\n".join(rows[:45]) + "\r\n" + "\n".join(rows[45:])
    p = tmp / "many.csv"
    p.write_bytes(text.encode("utf-8"))
    return p


def _quoted(tmp: Path) -> Path:
    """A quoted export (header too): commas and doubled quotes inside quotes, a blank line,
    bad values, a duplicate in a later piece."""
    rows = ['"' + '","'.join(EN.split(",")) + '"']
    for i in range(40):
        rows.append(f'"Q{i:03d}","P{i % 5}","2024-05-{1 + i % 28:02d}","{1000 + i},{i % 1000:03d}.5",'
                    f'"key","inpatient","Hospital ""{i % 3}"", East"')
    rows[7] = '"Q006","P1","2024-05-07","-3","key","inpatient","H"'      # line 8: negative
    rows[12] = ""                                                      # line 13: blank
    rows[30] = '"Q002","P2","2024-05-09","12","key","inpatient","=H"'    # line 31: duplicate
    p = tmp / "quoted.csv"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return p


def _quoted_multiline(tmp: Path) -> Path:
    """A quoted field holding a line break: the file must be read whole (and is, the same)."""
    text = (EN + "\n" + "".join(f'R{i},P1,2024-06-0{1 + i % 9},10,key,inpatient,H\n' for i in range(12))
            + 'R99,P1,2024-06-09,10,key,inpatient,"two\nlines"\n'
            + "".join(f'S{i},P2,2024-06-0{1 + i % 9},10,key,inpatient,H\n' for i in range(12)))
    p = tmp / "multiline.csv"
    p.write_text(text, encoding="utf-8")
    return p


def _stray_quote(tmp: Path) -> Path:
    """A stray quote inside an unquoted field and, on a later line, a quoted line break: the
    quote count alone could pair them up; the per-line check still sends the file whole."""
    text = (EN + "\n" + 'T1,P1,2024-06-01,10,key,inpatient,St "Mary\n'
            + "".join(f'T{i},P1,2024-06-0{1 + i % 9},10,key,inpatient,H\n' for i in range(2, 6))
            + 'T9,P1,2024-06-09,10,key,inpatient,"a\nb"\n' + 'T10,P1,2024-06-09,10,key,inpatient,H\n')
    p = tmp / "stray.csv"
    p.write_text(text, encoding="utf-8")
    return p


CSV_CASES = {name: make for name, (make, _, _) in CORPUS.items() if name not in ("xlsx", "jsonl")}
CSV_CASES["many"] = _many
CSV_CASES["quoted"] = _quoted
CSV_CASES["multiline"] = _quoted_multiline
CSV_CASES["stray"] = _stray_quote


def _run(path: Path, out: Path, mp: pytest.MonkeyPatch, pieces: bool, size: int = 40) -> tuple[int, str]:
    """The CLI run on ``path`` read in pieces of ``size`` bytes (the streaming scan switched
    off), or whole (pieces and scan switched off)."""
    with mp.context() as m:
        m.setattr(scan, "scan_claims", lambda *a, **k: None)
        if pieces:
            m.setattr(csv_pieces, "CHUNK_BYTES", size)
        else:
            m.setattr(readers, "csv_pieces", lambda *a, **k: None)
        r = CliRunner().invoke(main, ["batch", str(path), "-o", str(out), "--rules", RULES,
                                      "--on-error", "skip", "--no-bom"])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r.exit_code, r.output.replace(str(out.parent / out.stem), "OUT")


@pytest.mark.parametrize("size", [1, 40, 97])
@pytest.mark.parametrize("name", sorted(CSV_CASES))
def test_pieces_give_the_whole_file_run(tmp_path: Path, name: str, size: int,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    src = CSV_CASES[name](tmp_path)
    whole = _run(src, tmp_path / "whole.csv", monkeypatch, pieces=False)
    cut = _run(src, tmp_path / "cut.csv", monkeypatch, pieces=True, size=size)
    assert cut == whole
    assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    rej_w, rej_c = tmp_path / "whole.rejects.csv", tmp_path / "cut.rejects.csv"
    assert rej_c.exists() == rej_w.exists()
    if rej_w.exists():
        assert rej_c.read_bytes() == rej_w.read_bytes()


def test_duplicates_across_pieces_name_the_first_line_and_keep_their_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medaid import load_rules
    from medaid.batch.run import rejects_for_output, settle_file

    src = _many(tmp_path)
    monkeypatch.setattr(csv_pieces, "CHUNK_BYTES", 40)
    monkeypatch.setattr(scan, "scan_claims", lambda *a, **k: None)
    pieces = readers.csv_pieces(src)
    assert pieces is not None
    from medaid.batch import run as batch

    used = []
    real = batch._type_pieces
    monkeypatch.setattr(batch, "_type_pieces", lambda p: used.append(1) or real(p))
    run = settle_file(src, load_rules(RULES))
    assert used == [1]  # read in pieces, not whole
    assert run.rows_read == 59  # 60 data lines, one blank
    got = {(r, f): m for r, _, f, m in run.rejects.iter_rows()}
    assert got[(41, "claim_id")] == "duplicate claim id (first on line 6)"
    assert got[(51, "claim_id")] == "duplicate claim id (first on line 12)"
    assert got[(6, "date")].startswith("is not a date")
    assert got[(31, "self_pay")] == "is empty"
    assert {r for r, _ in got} == {6, 31, 34, 41, 51}
    rows = {r["line"]: r for r in rejects_for_output(run).to_dicts()}
    assert rows[41]["person_id"] == "P2" and rows[41]["date"] == "2024-03-09"  # the text as read
    assert rows[31]["date"] == "2024/03/11" and rows[31]["hospital"] == "@H"
    ok = run.results.filter(run.results["claim_id"] == "M020").row(0, named=True)
    assert (ok["person_id"], ok["kind"], ok["self_pay"]) == ("P3", "inpatient", 1250)


def test_a_file_cut_in_pieces_is_read_in_many(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_pieces, "CHUNK_BYTES", 40)
    pieces = readers.csv_pieces(_many(tmp_path))
    assert pieces is not None
    frames = list(pieces)
    assert len(frames) > 20
    assert sum(f.height for f in frames) == 59
    assert [f["row"][0] for f in frames[:2]] == [2, 3]


def test_a_quoted_export_is_read_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_pieces, "CHUNK_BYTES", 40)
    pieces = readers.csv_pieces(_quoted(tmp_path))
    assert pieces is not None
    frames = list(pieces)
    assert len(frames) > 10 and sum(f.height for f in frames) == 39
    got = {r["row"]: r for f in frames for r in f.to_dicts()}
    assert got[2]["self_pay"] == "1000,000.5" and got[2]["hospital"] == 'Hospital "0", East'


def test_a_quoted_line_break_sends_the_file_to_the_whole_reader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_pieces, "CHUNK_BYTES", 40)
    pieces = readers.csv_pieces(_quoted_multiline(tmp_path))
    assert pieces is not None
    with pytest.raises(readers.NotChunkable):
        list(pieces)

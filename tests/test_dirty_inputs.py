"""A corpus of dirty claim files, written here: every bad row is reported at its right line and
field, nothing crashes, good rows settle exactly, and rows read = settled + rejected."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from medaid.cli import main
from medaid.io.readers import read_results

ROOT = Path(__file__).resolve().parents[1]
RULES = str(ROOT / "rules")
ZH = "结算单号,人员编号,结算日期,合规自付费用,救助对象类别,就诊类型,医疗机构"
EN = "claim_id,person_id,date,self_pay,group,kind,hospital"


def _gbk_clean_arabic(tmp: Path) -> Path:
    # GBK cannot hold Arabic-Indic digits, so a GB18030 file carries them
    text = (ZH + "\n"
            "G1,P1,2024-03-01,１２３４５．６７,key,inpatient,县人民医院\n"
            "G2,P1,2024-03-02,١٢٣٤,key,inpatient,县人民医院\n"
            "G3,P2,2024-03-03,\"1,234.50\",low-income,inpatient,县中医院\n")
    p = tmp / "gb18030.csv"
    p.write_bytes(text.encode("gb18030"))
    return p


def _bom(tmp: Path) -> Path:
    text = ("\ufeff" + EN + ",备注\n"
            "B1,P1,2024-01-05,\"1,234.50\",key,inpatient,H1,ok\n"       # 2 good
            "\n"                                                       # 3 empty line
            "B2,P1,2024-01-06,-100,key,inpatient,H1,neg\n"              # 4 negative
            "B3,P1,2024-01-07,100.125,key,inpatient,H1,3dp\n"           # 5 three decimals
            "B4,P2,2024-01-08,100,key,inpatient\n"                      # 6 ragged short
            "B5,P2,2024-01-09,100,key,inpatient,H1,x,extra\n"           # 7 ragged long
            "\n\n"                                                     # 8, 9 empty
            "B6,P2,2024-01-10,30000,key,inpatient,H2,ok\n")              # 10 good
    p = tmp / "bom.csv"
    p.write_bytes(text.encode("utf-8"))
    return p


def _plain_unquoted(tmp: Path) -> Path:
    # no quotes: the fast reader; its ragged and blank-line handling must be as exact
    text = (EN + "\n"
            "U1,P1,2024-01-05,10,key,inpatient,H1\n"       # 2
            "\n"                                           # 3
            "U2,P1,2024-01-06,20,key,inpatient\n"          # 4 short
            "U3,P1,2024-01-07,1.5.0,key,inpatient,H1\n"    # 5 malformed
            "U4,P1,2024-01-08,20,key,inpatient,H1,x\n"     # 6 long
            "U5,P1,2024-01-09,,key,inpatient,H1\n")        # 7 empty amount
    p = tmp / "plain.csv"
    p.write_text(text, encoding="utf-8")
    return p


def _ids_plans_formulas(tmp: Path) -> Path:
    text = (EN + "\n"
            "D1,P1,2024-02-01,5000,key,inpatient,=1+1\n"            # 2 good, formula-like text
            "D2,P1,2024-02-02,5000,key,inpatient,@cmd\n"            # 3 good
            "D1,P2,2024-02-03,5000,key,inpatient,H\n"               # 4 duplicate id
            "D3,P2,2024-02-04,5000,nobody,inpatient,H\n"            # 5 unknown plan
            "D4,P2,2018-02-04,5000,key,inpatient,H\n"               # 6 no version
            "D5,P3,2024-02-31,5000,key,inpatient,H\n"               # 7 bad date
            "-D6,P3,2024-02-05,5000,key,inpatient,+H\n"             # 8 good, formula-like id
            "D7,,2024-02-06,5000,key,inpatient,H\n"                 # 9 empty person
            "D1,P4,2024-02-07,5000,key,inpatient,H\n")              # 10 duplicate again
    p = tmp / "ids.csv"
    p.write_text(text, encoding="utf-8")
    return p


def _xlsx(tmp: Path) -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(ZH.split(","))
    ws.append(["X1", "P1", "2024-04-01", 30000, "key", "inpatient", "H"])            # 2 good
    ws.append(["X2", "P1", "2024-04-02", -5, "key", "inpatient", "H"])               # 3 negative
    ws.append([])                                                                    # 4 empty
    ws.append(["X3", "P1", "2024-04-03", 12.345, "key", "inpatient", "H"])           # 5 3 decimals
    ws.append(["X4", "P1", "2024-04-04", "１,０００.５", "key", "inpatient", "H"])    # 6 good
    p = tmp / "dirty.xlsx"
    wb.save(p)
    return p


def _jsonl(tmp: Path) -> Path:
    good = {"claim_id": "J1", "person_id": "P1", "date": "2024-06-01", "self_pay": "30000",
            "group": "key", "kind": "inpatient"}
    lines = [json.dumps(good), "", "{broken", json.dumps({**good, "claim_id": "J2", "self_pay": -1}),
             json.dumps({**good, "claim_id": "J3", "self_pay": 1e400}), json.dumps([1, 2])]
    p = tmp / "dirty.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


#: file maker → (bad line → field), good claim → self-pay in fen
CORPUS = {
    "gb18030": (_gbk_clean_arabic, {3: "self_pay"}, {"G1": 1_234_567, "G3": 123_450}),
    "bom": (_bom, {4: "self_pay", 5: "self_pay", 6: "row", 7: "row"}, {"B1": 123_450, "B6": 3_000_000}),
    "plain": (_plain_unquoted, {4: "row", 5: "self_pay", 6: "row", 7: "self_pay"}, {"U1": 1000}),
    "ids": (_ids_plans_formulas,
            {4: "claim_id", 5: "group/kind", 6: "date", 7: "date", 9: "person_id", 10: "claim_id"},
            {"D1": 500_000, "D2": 500_000, "-D6": 500_000}),
    "xlsx": (_xlsx, {3: "self_pay", 5: "self_pay"}, {"X1": 3_000_000, "X4": 100_050}),
    "jsonl": (_jsonl, {3: "row", 4: "self_pay", 5: "self_pay", 6: "row"}, {"J1": 3_000_000}),
}


def invoke(*args: str):  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(main, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    return r


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_fail_lists_every_bad_row_at_its_line_and_writes_nothing(tmp_path: Path, name: str) -> None:
    make, bad, good = CORPUS[name]
    src = make(tmp_path)
    out = tmp_path / "out.csv"
    r = invoke("batch", str(src), "-o", str(out), "--rules", RULES, "--max-errors", "100")
    assert r.exit_code == 1
    for line, field in bad.items():
        assert f"{src}:{line}: {field}: " in r.stderr, (line, field, r.stderr)
    lines = [err.removeprefix("Error: ") for err in r.stderr.splitlines()]
    reported = {int(err.split(":")[1]) for err in lines if err.startswith(f"{src}:")}
    assert reported == set(bad)
    assert f"rows read {len(bad) + len(good)} = settled {len(good)} + rejected {len(bad)}" in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_skip_settles_good_rows_and_rejects_bad_ones_with_reasons(tmp_path: Path, name: str) -> None:
    make, bad, good = CORPUS[name]
    src = make(tmp_path)
    out, rej = tmp_path / "out.csv", tmp_path / "rejects.csv"
    r = invoke("batch", str(src), "-o", str(out), "--rules", RULES, "--on-error", "skip",
               "--rejects", str(rej), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert (doc["rows_read"], doc["settled"], doc["rejected"]) == (len(bad) + len(good), len(good), len(bad))
    rejects = pl.read_csv(rej, infer_schema=False)
    assert [int(x) for x in rejects["line"]] == sorted(bad)
    assert [f for f in rejects["field"]] == [bad[k] for k in sorted(bad)]
    assert all(rejects["reason"].str.len_chars() > 0)
    res = read_results(out)
    assert dict(zip(res["claim_id"], res["self_pay"])) == good


def test_formula_like_text_is_neutralised_in_the_csv_and_read_back_unchanged(tmp_path: Path) -> None:
    src = _ids_plans_formulas(tmp_path)
    out = tmp_path / "out.csv"
    invoke("batch", str(src), "-o", str(out), "--rules", RULES, "--on-error", "skip")
    rows = list(csv.DictReader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert [r["hospital"] for r in rows] == ["'=1+1", "'@cmd", "'+H"]
    assert rows[2]["claim_id"] == "'-D6"
    assert [r["relief"] for r in rows] == ["2800.00", "2800.00", "2800.00"]  # 70% of 4,000
    assert read_results(out)["hospital"].to_list() == ["=1+1", "@cmd", "+H"]


def test_a_gbk_file_as_chinese_excel_writes_it(tmp_path: Path) -> None:
    p = tmp_path / "gbk.csv"
    p.write_bytes((ZH + "\nG1,P1,2024-03-01,１２３４５．６７,key,inpatient,县人民医院\n").encode("gbk"))
    r = invoke("batch", str(p), "-o", str(tmp_path / "o.csv"), "--rules", RULES)
    assert r.exit_code == 0 and "县人民医院" in r.stdout
    assert read_results(tmp_path / "o.csv")["relief"].to_list() == [829_382]  # worked example


# -- files their parsers refuse: a refusal naming the file (exit 1), never an internal error -------

GOOD = ("claim_id,person_id,date,self_pay,group,kind\n"
        "C1,P1,2024-05-03,30000,key,inpatient\nC2,P2,2024-05-04,5000,key,inpatient\n")


def _xlsx(tmp: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """The GOOD claims as a workbook, then its parts changed by ``change(name, bytes)``
    (``None``: the part left out)."""
    import zipfile

    whole = tmp / "whole.xlsx"
    pl.read_csv(GOOD.encode(), infer_schema=False).write_excel(whole)
    out = tmp / "claims.xlsx"
    with zipfile.ZipFile(whole) as z, zipfile.ZipFile(out, "w") as o:
        for name in z.namelist():
            data = change(name, z.read(name))
            if data is not None:
                o.writestr(name, data)
    return out


@pytest.mark.parametrize("change, says", [
    (lambda n, d: d[: len(d) // 2] if n.endswith("sheet1.xml") else d, "cannot be read as XLSX (ParseError"),
    (lambda n, d: None if n.endswith("sheet1.xml") else d, "claims.xlsx: the workbook has no sheet"),
])
def test_a_damaged_workbook_is_refused_naming_it(tmp_path: Path, change, says: str) -> None:  # type: ignore[no-untyped-def]
    src, out = _xlsx(tmp_path, change), tmp_path / "out.csv"
    r = invoke("batch", str(src), "-o", str(out), "--rules", RULES)
    assert r.exit_code == 1 and says in r.output and "internal error" not in r.output, r.output
    assert not out.exists()


def test_json_lines_a_parser_refuses_are_rejected_at_their_lines(tmp_path: Path) -> None:
    good = json.dumps({"claim_id": "C1", "person_id": "P1", "date": "2024-05-03", "self_pay": "30000",
                       "group": "key", "kind": "inpatient"})
    surrogate = good.replace('"C1"', '"C2\\ud800"')  # half of a surrogate pair, escaped: not text
    twice = good.replace('"C1"', '"C3"').replace('"self_pay": "30000"', '"self_pay": "30000", "self_pay": "300"')
    deep = good[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"  # past the parser's depth
    src, out, rej = tmp_path / "c.jsonl", tmp_path / "out.csv", tmp_path / "rej.csv"
    src.write_text("\n".join([good, surrogate, deep, twice]) + "\n", encoding="utf-8")
    r = invoke("batch", str(src), "-o", str(out), "--rules", RULES, "--on-error", "skip", "--rejects", str(rej))
    assert r.exit_code == 0, r.output
    # C1 (key-inpatient): 70% of 1,000–10,000 + 85% of 10,000–30,000 = 6,300 + 17,000 = 23,300
    assert dict(zip(*read_results(out).select("claim_id", "relief"))) == {"C1": 2_330_000}
    rejects = pl.read_csv(rej, infer_schema=False)
    assert rejects["line"].to_list() == ["2", "3", "4"]
    assert "lone surrogate" in rejects["reason"][0] and "nested too deeply" in rejects["reason"][1]
    assert "has the key 'self_pay' twice" in rejects["reason"][2]  # which amount is meant: not guessed
    src.write_text(deep + "\n", encoding="utf-8")  # nothing else: the file is refused, naming the line
    r = invoke("batch", str(src), "-o", str(out), "--rules", RULES)
    assert r.exit_code == 1 and f"{src}:1: no line holds a JSON object to read" in r.output, r.output


def test_an_encoding_that_refuses_the_whole_file_is_named(tmp_path: Path) -> None:
    src, out = tmp_path / "c.csv", tmp_path / "out.csv"
    src.write_text(GOOD, encoding="utf-8")
    r = invoke("batch", str(src), "-o", str(out), "--rules", RULES, "--encoding", "utf-16")
    assert r.exit_code == 1 and f"{src}: cannot be read as utf-16" in r.output, r.output
    assert not out.exists()

"""The run manifest beside every results file, the short rule reference on each row, and
``--columns`` (docs/batch.md, *Run manifest*, *Output files*)."""

from __future__ import annotations

import csv
import hashlib
import json
import stat
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from medaid.cli import main
from medaid.io.readers import read_results

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
RULE_FILE = RULES / "chongqing-county-2019.toml"
# a small year: P1's second stay meets the 100,000 annual cap (87,800 + 12,200 by hand, the rule
# file's own worked example), P2 one stay of 30,000 (23,300, the source report's example)
CLAIMS = (
    "claim_id,person_id,date,self_pay,group,kind,hospital\n"
    "C1,P1,2024-03-01,100000,key,inpatient,H1\n"
    "C2,P2,2024-04-02,30000,key,inpatient,H2\n"
    "C3,P1,2024-05-03,30000,key,inpatient,H1\n"
)
RELIEF = {"C1": "87800.00", "C2": "23300.00", "C3": "12200.00"}


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def claims(tmp_path: Path) -> Path:
    src = tmp_path / "claims.csv"
    src.write_text(CLAIMS, encoding="utf-8")
    return src


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_a_manifest_beside_the_results_names_inputs_rules_options_and_totals(claims: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    code, _, _ = run("batch", str(claims), "-o", str(out), "--rules", str(RULES))
    assert code == 0
    path = tmp_path / "results.csv.manifest.json"
    m = json.loads(path.read_text(encoding="utf-8"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert m["inputs"] == [{"path": str(claims), "bytes": len(CLAIMS.encode()), "sha256": sha256(claims),
                            "rows_read": 3}]
    assert m["rules"] == [{"id": "cq-county-medical-aid", "version": "2019.1", "file": str(RULE_FILE),
                           "sha256": sha256(RULE_FILE)}]
    assert m["options"]["on_error"] == "fail" and m["options"]["columns"] is None
    assert m["options"]["full_rule_hash"] is False and m["options"]["engine"] == "local"
    assert m["outputs"]["results"] == str(out) and m["outputs"]["format"] == "csv"
    assert m["outputs"]["columns"] == list(csv_rows(out)[0])
    assert m["reconciliation"]["line"] == "rows read 3 = settled 3 + rejected 0"
    assert (m["reconciliation"]["rows_read"], m["reconciliation"]["settled"]) == (3, 3)
    # totals in fen, by hand: 100,000 + 30,000 + 30,000 self-pay; 87,800 + 23,300 + 12,200 relief
    assert m["totals"] == {"claims": 3, "persons": 2, "self_pay": 160_000_00, "relief": 123_300_00,
                           "patient_pays": 36_700_00, "claims_capped": 1, "persons_at_annual_cap": 1}
    assert m["medaid"] and m["started"] <= m["finished"]


def test_each_row_carries_the_rule_files_short_hash_and_the_full_one_on_request(claims: Path, tmp_path: Path) -> None:
    short, full = tmp_path / "short.csv", tmp_path / "full.csv"
    assert run("batch", str(claims), "-o", str(short), "--rules", str(RULES))[0] == 0
    assert run("batch", str(claims), "-o", str(full), "--rules", str(RULES), "--full-rule-hash")[0] == 0
    digest = sha256(RULE_FILE)
    assert {r["rule_hash"] for r in csv_rows(short)} == {digest[:12]}
    assert {r["rule_hash"] for r in csv_rows(full)} == {digest}
    assert json.loads((tmp_path / "full.csv.manifest.json").read_text())["options"]["full_rule_hash"] is True
    # the same results otherwise
    strip = [{k: v for k, v in r.items() if k != "rule_hash"} for r in csv_rows(short)]
    assert strip == [{k: v for k, v in r.items() if k != "rule_hash"} for r in csv_rows(full)]


@pytest.mark.parametrize("flag", [[], ["--full-rule-hash"]])
def test_readers_of_results_take_either_rule_hash(claims: Path, tmp_path: Path, flag: list[str]) -> None:
    res = tmp_path / "results.csv"
    assert run("batch", str(claims), "-o", str(res), "--rules", str(RULES), *flag)[0] == 0
    assert read_results(res)["relief"].to_list() == [87_800_00, 23_300_00, 12_200_00]
    # the same claims against themselves: nothing changes
    code, out, _ = run("recalc", str(claims), "--previous", str(res), "--rules", str(RULES), "--json")
    assert code == 0 and json.loads(out)["totals"]["same"] == 3
    code, out, _ = run("report", str(res), "--json", "--html", str(tmp_path / "report.html"))
    assert code == 0, out
    figures = {f["key"]: f["value"] for f in json.loads(out)["figures"]}
    assert (figures["relief_total"], figures["persons"]) == ("123300.00", 2)  # 87,800 + 23,300 + 12,200
    # a later claim continues P1's year from these results: the cap is already met
    later = tmp_path / "later.csv"
    later.write_text("claim_id,person_id,date,self_pay,group,kind\nC4,P1,2024-06-01,5000,key,inpatient\n",
                     encoding="utf-8")
    code, out, _ = run("batch", str(later), "-o", str(tmp_path / "later-results.csv"), "--rules", str(RULES),
                       "--opening", str(res), "--json")
    assert code == 0 and json.loads(out)["total"]["relief"] == "0.00"


@pytest.mark.parametrize("ext", ["csv", "xlsx", "parquet", "jsonl"])
def test_columns_choose_the_results_columns_in_every_format(claims: Path, tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"pay.{ext}"
    code, _, _ = run("batch", str(claims), "-o", str(out), "--rules", str(RULES), "--columns", "claim_id,relief")
    assert code == 0
    if ext == "csv":
        rows = csv_rows(out)
        assert list(rows[0]) == ["claim_id", "relief"]
        assert {r["claim_id"]: r["relief"] for r in rows} == RELIEF
    frame = read_results(out, required=("claim_id", "relief"))
    assert frame.columns == ["claim_id", "relief"]
    assert {k: f"{v // 100}.{v % 100:02d}" for k, v in frame.iter_rows()} == RELIEF
    m = json.loads((tmp_path / f"pay.{ext}.manifest.json").read_text())
    assert m["outputs"]["columns"] == ["claim_id", "relief"] == m["options"]["columns"]
    assert m["totals"]["relief"] == sum(int(Decimal(v) * 100) for v in RELIEF.values())


def test_columns_keep_the_order_asked(claims: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    assert run("batch", str(claims), "-o", str(out), "--rules", str(RULES),
               "--columns", "relief, capped_by ,claim_id")[0] == 0
    assert [list(r.values()) for r in csv_rows(out)] == [
        ["87800.00", "", "C1"], ["23300.00", "", "C2"], ["12200.00", "annual_cap", "C3"]]


@pytest.mark.parametrize("asked, said", [
    ("claim_id,relif", "unknown column(s) relif; choose from: claim_id, person_id, date, self_pay"),
    ("claim_id,claim_id", "column(s) named twice: claim_id"),
    (",", "no column named"),
])
def test_unknown_columns_are_refused_with_the_allowed_ones_and_nothing_is_written(
        claims: Path, tmp_path: Path, asked: str, said: str) -> None:
    out = tmp_path / "r.csv"
    code, _, err = run("batch", str(claims), "-o", str(out), "--rules", str(RULES), "--columns", asked)
    assert code == 2
    assert "--columns" in err and said in err
    if "unknown" in said:
        assert "rule_hash" in err  # the whole list, the result fields too
    assert list(tmp_path.iterdir()) == [claims]


def test_a_refused_batch_writes_no_manifest(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("claim_id,person_id,date,self_pay\nC1,P1,2024-05-03,-5\n", encoding="utf-8")
    code, _, _ = run("batch", str(src), "-o", str(tmp_path / "r.csv"), "--rules", str(RULES))
    assert code == 1
    assert list(tmp_path.iterdir()) == [src]


def test_settle_file_gives_the_short_reference_and_the_library_engine_the_full_hash(claims: Path) -> None:
    from medaid import load_rules
    from medaid.batch import settle_file

    book = load_rules(RULES)
    short = settle_file(claims, book).results
    full = settle_file(claims, book, full_rule_hash=True).results
    digest = sha256(RULE_FILE)
    assert short["rule_hash"].cast(pl.String).unique().to_list() == [digest[:12]]
    assert full["rule_hash"].cast(pl.String).unique().to_list() == [digest]


def _generated_claims(path: Path) -> Path:
    """A year of claims of few persons with large stays: annual caps bind, the outpatient plan's
    3,000 claim cap binds, in both accumulation modes (the rule file's inpatient plans accumulate
    per claim, its outpatient plan over the year); same-day claims of a person; a payee column."""
    import random

    rnd = random.Random(16)
    lines = ["claim_id,person_id,date,self_pay,group,kind,hospital,remark"]
    for i in range(400):
        kind = rnd.choice(["inpatient", "outpatient-special"])
        group = "key" if kind == "outpatient-special" else rnd.choice(["key", "low-income"])
        fen = rnd.randrange(9_000_000 if kind == "inpatient" else 1_500_000)
        lines.append(f"G{rnd.randrange(10**6):06d}-{i},P{rnd.randrange(12)},2024-{rnd.randrange(1, 13):02d}-"
                     f"{rnd.randrange(1, 4):02d},{fen // 100}.{fen % 100:02d},{group},"
                     f"{kind},H{rnd.randrange(3)},r{i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("source", ["example", "generated"])
@pytest.mark.parametrize("asked", [
    "claim_id,relief",
    "relief,ytd_self_pay,claim_id",
    "claim_id,bracket,bracket_relief,capped_by",
    "remark,rule_hash,ytd_relief,pool,benefit_year,relief",
])
def test_the_columns_asked_are_those_of_the_full_run_byte_for_byte(tmp_path: Path, source: str, asked: str) -> None:
    """With ``--columns`` only the result fields asked (and those the totals read) are computed:
    the file holds exactly the full run's cells of those columns, and the totals printed and in
    the manifest are the full run's."""
    if source == "example":
        src = ROOT / "examples" / "claims-2024.csv"
        asked = asked.replace("remark", "hospital")
    else:
        src = _generated_claims(tmp_path / "claims.csv")
    full, part = tmp_path / "full.csv", tmp_path / "part.csv"
    code_f, out_f, _ = run("batch", str(src), "-o", str(full), "--rules", str(RULES))
    code_p, out_p, _ = run("batch", str(src), "-o", str(part), "--rules", str(RULES), "--columns", asked)
    assert code_f == code_p == 0
    names = [n.strip() for n in asked.split(",")]
    want = [[r[n] for n in names] for r in csv_rows(full)]
    assert [list(r.values()) for r in csv_rows(part)] == want
    assert list(csv_rows(part)[0]) == names
    assert out_p.replace(str(part), str(full)) == out_f
    totals = [json.loads((tmp_path / f"{f}.csv.manifest.json").read_text())["totals"] for f in ("full", "part")]
    assert totals[0] == totals[1]
    if source == "generated":  # the file is one where the limits bind
        capped = {r["capped_by"] for r in csv_rows(full)}
        assert {"annual_cap", "claim_cap"} <= capped


@pytest.mark.parametrize("reader", ["scan", "pieces", "whole"])
def test_input_columns_not_asked_are_not_read_but_rejects_keep_them(tmp_path: Path, reader: str) -> None:
    """A column that is no claim field (``remark``) and is not asked for is left out of the
    settled rows (the CSV scan does not parse it); a rejected row still shows it in the
    rejects file."""
    from medaid.batch.run import read_file

    src = _generated_claims(tmp_path / "claims.csv")
    lines = src.read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5].replace(",P", ",", 1).split(",", 1)[0] + ",,2024-01-01,12.00,key,inpatient,H1,why-me"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = read_file(src, reader=reader, columns="claim_id,relief")
    assert "remark" not in got.clean.columns and {"hospital", "kind", "group"} <= set(got.clean.columns)
    assert "remark" in read_file(src, reader=reader).clean.columns
    assert "remark" in read_file(src, reader=reader, columns="relief,remark").clean.columns
    assert "remark" in read_file(src, reader=reader, columns="relief,remrak").clean.columns  # refused later
    out = tmp_path / "pay.csv"
    code, _, _ = run("batch", str(src), "-o", str(out), "--rules", str(RULES), "--on-error", "skip",
                     "--columns", "claim_id,relief")
    assert code == 0
    (bad,) = csv_rows(tmp_path / "pay.rejects.csv")
    assert bad["remark"] == "why-me" and bad["line"] == "6" and bad["field"] == "person_id"

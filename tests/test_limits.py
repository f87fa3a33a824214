"""Numbers out of range, everywhere (issue #11, items 4, 5, 21, 22).

One documented maximum amount, 9,999,999.99 yuan (``money.MAX_FEN`` = 999,999,999 fen), is read
everywhere an amount comes in: claim files of every format, the desk's options, rule files and
results read back by the report.  Its point: a batch holds fewer than 2**32 claims, and
2**32 × 999,999,999 fen ≈ 4.3 × 10^18 < 2**63 − 1 ≈ 9.2 × 10^18, so no total and no person's
year-to-date can leave 64-bit integers (before, 100 claims of 999,999,999,999,999.99 yuan gave
negative totals with exit 0).  Anything larger is refused where it is read, naming the file,
line and field (or the option, or the rule key), never with a traceback.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from full_disk import full_for, needs_dev_full
from medaid.cli import main

ROOT = Path(__file__).resolve().parents[1]
RULE_FILE = ROOT / "rules" / "chongqing-county-2019.toml"
TOO_LARGE = "is too large: amounts are at most 9,999,999.99 yuan"
HEADER = "claim_id,person_id,date,self_pay,group,kind\n"


def run(*args: str, env: dict[str, str] | None = None):
    r = CliRunner().invoke(main, [str(a) for a in args], env=env)
    # a click usage error or a clean exit; never a Python exception escaping to the user
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    return r.exit_code, r.stdout, r.stderr


def claims_csv(path: Path, amounts: list[str]) -> Path:
    path.write_text(HEADER + "".join(
        f"C{i:03d},P{i},2019-05-01,{a},key,inpatient\n" for i, a in enumerate(amounts)), encoding="utf-8")
    return path


# -- item 4: totals cannot overflow ------------------------------------------------------------


def test_a_hundred_claims_of_a_quadrillion_yuan_are_refused_row_by_row_not_summed_negative(tmp_path):
    src = claims_csv(tmp_path / "big.csv", ["999999999999999.99"] * 100)
    out = tmp_path / "big.results.csv"
    code, _, err = run("batch", src, "-o", out, "--rules", RULE_FILE)
    assert code == 1 and not out.exists()
    assert f"{src}:2: self_pay: {TOO_LARGE} (claim C000)" in err
    assert "-84,467" not in err  # the wrapped total of before


def test_with_skip_the_largest_amounts_settle_and_the_totals_are_exact(tmp_path):
    # 2 claims of the maximum, 9,999,999.99 yuan, and one of 10,000,000.00 (refused)
    src = claims_csv(tmp_path / "c.csv", ["9999999.99", '"9,999,999.99"', '"10,000,000.00"'])
    code, out, _ = run("batch", src, "-o", tmp_path / "r.csv", "--rules", RULE_FILE, "--on-error", "skip", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["rows_read"] == 3 and doc["settled"] == 2 and doc["rejected"] == 1
    # self-pay 2 × 9,999,999.99 = 19,999,999.98; each person's 95% is capped at 100,000
    assert doc["total"]["self_pay"] == "19999999.98"
    assert doc["total"]["relief"] == "200000.00"
    rejects = pl.read_csv(tmp_path / "r.rejects.csv")
    assert rejects.select("line", "field", "reason").rows() == [(4, "self_pay", TOO_LARGE)]


@pytest.mark.parametrize("fmt", ["jsonl", "xlsx", "parquet"])
def test_other_formats_refuse_the_same_amount_naming_line_and_field(tmp_path, fmt):
    frame = pl.DataFrame({"claim_id": ["A", "B"], "person_id": ["P1", "P2"], "date": ["2019-05-01"] * 2,
                          "self_pay": ["30000", "10000000"], "group": ["key"] * 2, "kind": ["inpatient"] * 2})
    src = tmp_path / f"c.{fmt}"
    if fmt == "jsonl":
        frame.write_ndjson(src)
    elif fmt == "xlsx":
        frame.write_excel(src)
    else:
        frame.write_parquet(src)
    code, _, err = run("batch", src, "-o", tmp_path / "r.csv", "--rules", RULE_FILE)
    assert code == 1
    line = 3 if fmt == "xlsx" else 2  # XLSX lines count the header, JSON Lines records from 1
    assert f"{src}:{line}: self_pay: {TOO_LARGE} (claim B)" in err


def test_a_5000_digit_cell_is_a_rejected_row_not_a_traceback(tmp_path):
    src = claims_csv(tmp_path / "c.csv", ["30000", "9" * 5000])
    code, _, err = run("batch", src, "-o", tmp_path / "r.csv", "--rules", RULE_FILE)
    assert code == 1 and f"{src}:3: self_pay: {TOO_LARGE} (claim C001)" in err


def test_report_refuses_a_results_file_with_amounts_above_the_maximum(tmp_path):
    # a results file from elsewhere (or from before the maximum): read back, not summed
    results = tmp_path / "r.csv"
    results.write_text(
        "claim_id,person_id,date,self_pay,relief,patient_pays\n"
        + "".join(f"C{i},P{i},2019-05-01,999999999999999.99,100000.00,999999999899999.99\n" for i in range(100)),
        encoding="utf-8")
    code, _, err = run("report", results)
    assert code == 1
    assert f"{results}:2: self_pay: {TOO_LARGE}" in err


def test_the_year_to_date_of_one_person_with_many_maximal_claims_is_exact(tmp_path):
    # one person, 50 outpatient visits of the maximum in one year (year mode, one pool):
    # ytd self-pay 50 × 999,999,999 fen = 49,999,999,950 fen, far below 2**63
    src = tmp_path / "c.csv"
    src.write_text(HEADER + "".join(
        f"C{i:02d},P1,2019-05-{1 + i % 28:02d},9999999.99,key,outpatient-special\n" for i in range(50)),
        encoding="utf-8")
    out = tmp_path / "r.parquet"
    code, _, _ = run("batch", src, "-o", out, "--rules", RULE_FILE)
    assert code == 0
    from medaid.io.readers import read_results
    res = read_results(out).sort("claim_id")
    assert res["ytd_self_pay"].max() == 50 * 999_999_999
    assert res["relief"].sum() == 1_000_000  # the 10,000 yuan annual cap of the pool


# -- item 5: the desk's options and the rule files -----------------------------------------------


@pytest.mark.parametrize("option, value", [
    ("--self-pay", "100000000000000000"),
    ("--self-pay", "9" * 5000),
    ("--total-cost", "10,000,000.00"),
    ("--ytd-self-pay", "9" * 5000),
    ("--ytd-relief", "100000000000000000"),
])
def test_quote_refuses_an_amount_option_above_the_maximum_naming_the_option(tmp_path, option, value):
    args = {"--self-pay": "30000", "--ytd-self-pay": "0", "--ytd-relief": "0", option: value}
    flat = [x for kv in args.items() for x in kv]
    code, _, err = run("quote", "--person", "P1", "--date", "2019-05-01", "--group", "key",
                       "--kind", "inpatient", "--rules", RULE_FILE, *flat)
    assert code == 2
    assert f"Invalid value for '{option}': {TOO_LARGE}" in err


def test_settle_refuses_a_self_pay_above_the_maximum_and_records_nothing(tmp_path):
    ledger = tmp_path / "l.sqlite3"
    code, _, err = run("settle", "--person", "P1", "--self-pay", "100000000000000000", "--date", "2019-05-01",
                       "--rules", RULE_FILE, "--ledger", ledger)
    assert code == 2 and "'--self-pay'" in err and TOO_LARGE in err
    assert not ledger.exists()


def rule_file(tmp_path: Path, old: str, new: str, name: str = "r.toml") -> Path:
    text = RULE_FILE.read_text(encoding="utf-8")
    assert old in text
    p = tmp_path / name
    p.write_text(text.replace(old, new, 1), encoding="utf-8")
    return p


@pytest.mark.parametrize("old, new, key", [
    ('annual_cap = "100000"', 'annual_cap = "100000000000000000000"', "plans[0].annual_cap"),
    ('claim_cap = "3000"', "claim_cap = 100000000000000000000", "plans[1].claim_cap"),
    ('{ from = "50000",               rate = "95%" }',
     '{ from = "50000", to = "100000000000000000000", rate = "95%" }', "plans[0].brackets[2].to"),
    ('mode = "marginal"', 'mode = "marginal"\ngate = "' + "9" * 5000 + '"', "plans[0].gate"),
    ('self_pay = "999.99"', 'self_pay = "99999999999"', "plans[0].examples[0].self_pay"),
])
def test_rules_check_refuses_an_amount_above_the_maximum_naming_the_key(tmp_path, old, new, key):
    p = rule_file(tmp_path, old, new)
    code, _, err = run("rules", "check", p)
    assert code == 1
    assert f"{p}: {key}: {TOO_LARGE}" in err


@pytest.mark.parametrize("rate, says", [
    ("७०%", "character 1 is DEVANAGARI DIGIT SEVEN (U+096D)"),   # item 21
    ("٠٫٧", "character 1 is ARABIC-INDIC DIGIT ZERO (U+0660)"),
    ("0." + "7" * 5000, "has 5000 decimal places; at most 50 are allowed"),
    ("7E-1", "is not a rate"),
    ("0.7E-99999999", "is not a rate"),
    ("-0", "is not a rate"),
    ("1" + "0" * 5000 + "%", "is outside [0, 1]"),
])
def test_a_rate_not_written_with_digits_0_9_or_too_long_is_refused_naming_the_key(tmp_path, rate, says):
    p = rule_file(tmp_path, 'rate = "70%" }', f'rate = "{rate}" }}')
    code, _, err = run("rules", "check", p)
    assert code == 1
    assert f"{p}: plans[0].brackets[0].rate: " in err and says in err


def test_a_full_width_rate_is_read_as_amounts_are(tmp_path):
    import medaid
    p = rule_file(tmp_path, 'rate = "70%" }', 'rate = "７０％" }')
    book = medaid.load_rules(p)
    assert str(book.versions()[0].plans[0].brackets[0].rate) == "0.70"


# -- item 22: nesting and full disks ---------------------------------------------------------------


@pytest.mark.parametrize("depth", [2000, 200_000])
def test_a_rule_file_nested_too_deeply_is_refused_naming_the_file(tmp_path, depth):
    p = tmp_path / "deep.toml"
    p.write_text(RULE_FILE.read_text(encoding="utf-8") + "notes = " + "[" * depth + "]" * depth + "\n",
                 encoding="utf-8")
    code, _, err = run("rules", "check", p)
    assert code == 1
    assert f"{p}: arrays or tables are nested too deeply" in err


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def batch_to(tmp_path: Path, out: Path):
    src = claims_csv(tmp_path / "c.csv", ["30000", "12345.67"])
    return run("batch", src, "-o", out, "--rules", RULE_FILE)


def test_xlsx_on_a_full_disk_is_refused_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    import zipfile
    out = tmp_path / "r.xlsx"
    monkeypatch.setattr(zipfile.ZipFile, "writestr", no_space)
    monkeypatch.setattr(zipfile.ZipFile, "write", no_space)
    code, _, err = batch_to(tmp_path, out)
    assert code == 1
    assert f"{out}: cannot be written (No space left on device)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv"]


def test_parquet_on_a_full_disk_is_refused_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "r.parquet"

    def polars_no_space(*args, **kwargs):  # polars words a disk error as its own ComputeError
        raise pl.exceptions.ComputeError(
            "parquet: File out of specification: underlying IO error: No space left on device (os error 28)")

    monkeypatch.setattr(pl.LazyFrame, "sink_parquet", polars_no_space)
    code, _, err = batch_to(tmp_path, out)
    assert code == 1
    assert f"{out}: cannot be written (No space left on device)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv"]


@needs_dev_full
@pytest.mark.parametrize("suffix", ["xlsx", "parquet", "csv", "jsonl"])
def test_a_really_full_disk_is_refused_for_every_format(tmp_path, monkeypatch, suffix, capfd):
    """The temporary file is made a link to /dev/full, where every write fails with ENOSPC
    (tests/full_disk.py): the writers' own error paths, not a stand-in.  The old results file
    stays as it was."""
    import os

    out = tmp_path / f"r.{suffix}"
    out.write_text("old results", encoding="utf-8")
    full_for(monkeypatch)
    if suffix == "parquet":
        # polars words a failed footer write as "Invalid thrift: transport error"; the writer
        # then looks at the disk, which /dev/full does not make full: say it is
        full = os.statvfs(tmp_path)
        monkeypatch.setattr(os, "statvfs", lambda p: type("S", (), {"f_bavail": 0, "f_frsize": full.f_frsize})())
    code, _, err = batch_to(tmp_path, out)
    assert code == 1
    assert f"{out}: cannot be written (No space left on device)" in err
    assert out.read_text(encoding="utf-8") == "old results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv", out.name]
    assert "Exception ignored" not in capfd.readouterr().err


def test_xlsx_refuses_an_amount_it_would_round_naming_file_and_column(tmp_path):
    from medaid.io.writers import WriteError, write_frame

    # 10^13 yuan = 10^15 fen: 16 significant digits, one more than an XLSX cell keeps
    frame = pl.DataFrame({"claim_id": ["A"], "ytd_self_pay": [10**15]})
    out = tmp_path / "r.xlsx"
    with pytest.raises(WriteError) as info:
        write_frame(frame, out)
    (p,) = info.value.problems
    assert p.source == str(out) and p.field == "ytd_self_pay" and "XLSX" in p.message
    assert not out.exists()
    write_frame(frame.with_columns(pl.lit(10**15 - 1).alias("ytd_self_pay")), out)  # 9,999,999,999,999.99
    from openpyxl import load_workbook
    assert repr(load_workbook(out).active["B2"].value) == "9999999999999.99"


@needs_dev_full
def test_a_manifest_the_full_disk_refuses_takes_its_results_back(tmp_path, monkeypatch, capfd):
    """The results are written whole, then the disk is full for their manifest: the run is
    refused naming the manifest, and no results file is left without one."""
    full_for(monkeypatch, ".manifest.json.")
    out = tmp_path / "r.csv"
    code, _, err = batch_to(tmp_path, out)
    assert code == 1
    assert f"{out}.manifest.json: cannot be written (No space left on device)" in err
    assert "the results written just before were removed" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv"]
    assert "Exception ignored" not in capfd.readouterr().err


@needs_dev_full
def test_results_the_full_disk_refuses_take_the_rejects_written_before_them(tmp_path, monkeypatch, capfd):
    """--on-error skip: the rejects are written, then the disk is full for the results: the
    run is refused naming the results, and its rejects file does not stay behind."""
    full_for(monkeypatch, ".r.csv.")
    src = claims_csv(tmp_path / "c.csv", ["30000", "-5"])
    out = tmp_path / "r.csv"
    code, _, err = run("batch", src, "-o", out, "--rules", RULE_FILE, "--on-error", "skip")
    assert code == 1
    assert f"{out}: cannot be written (No space left on device)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv"]


def test_a_results_name_near_the_file_systems_limit_is_written(tmp_path):
    """240 characters (the limit is 255 bytes; its manifest's name is 14 longer): its temporary
    file's name must not pass the limit."""
    out = tmp_path / ("r" * 236 + ".csv")
    code, _, err = batch_to(tmp_path, out)
    assert code == 0, err
    assert out.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]

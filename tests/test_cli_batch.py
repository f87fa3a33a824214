"""``medaid batch`` and ``medaid recalc`` from the command line (click's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from medaid.cli import main
from medaid.io.readers import read_results

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "examples" / "claims-2024.csv")
RULES = str(ROOT / "rules")


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


def test_every_batch_command_has_help() -> None:
    for cmd in ("batch", "recalc"):
        code, out, _ = run(cmd, "--help")
        assert code == 0 and "Example" in out


def test_the_readme_first_command_shows_totals_and_reconciliation(tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    code, stdout, _ = run("batch", EXAMPLE, "-o", str(out), "--rules", RULES)
    assert code == 0
    assert "rows read 5000 = settled 5000 + rejected 0" in stdout
    for heading in ("Totals", "By plan", "By month", "By hospital (payment list)", "县人民医院", "2024-12"):
        assert heading in stdout
    res = read_results(out)
    assert res.height == 5000 and "relief" in res.columns
    relief_total = stdout.split("relief ", 1)[1].split("\n", 1)[0].strip()
    assert relief_total == f"{res['relief'].sum() // 100:,}.{res['relief'].sum() % 100:02d}"


def test_json_summary_has_amounts_as_yuan_text(tmp_path: Path) -> None:
    code, stdout, _ = run("batch", EXAMPLE, "-o", str(tmp_path / "r.parquet"), "--rules", RULES, "--json")
    assert code == 0
    doc = json.loads(stdout)
    assert doc["rows_read"] == doc["settled"] + doc["rejected"] == 5000
    res = read_results(tmp_path / "r.parquet")
    s = int(res["relief"].sum())
    assert doc["total"]["relief"] == f"{s // 100}.{s % 100:02d}"
    assert {r["hospital"] for r in doc["by_hospital"]} == set(res["hospital"])


def test_chinese_labels(tmp_path: Path) -> None:
    code, stdout, _ = run("batch", EXAMPLE, "-o", str(tmp_path / "r.csv"), "--rules", RULES, "--lang", "zh")
    assert code == 0 and "救助金额" in stdout and "按医疗机构" in stdout


def test_bad_rows_refuse_the_batch_and_write_nothing(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    lines = ["claim_id,person_id,date,self_pay"] + [f"C{i},P,2024-01-02,-{i}" for i in range(30)]
    p.write_text("\n".join(lines) + "\n")
    code, _, err = run("batch", str(p), "-o", str(tmp_path / "r.csv"), "--rules", RULES, "--max-errors", "5")
    assert code == 1
    assert f"{p}:2: self_pay: must not be negative (claim C0)" in err
    assert f"{p}:6: self_pay" in err and f"{p}:7: self_pay" not in err
    assert "and 25 more" in err and "30 problem(s) in 30 row(s)" in err
    assert "rows read 30 = settled 0 + rejected 30" in err
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("n", ["0", "-1"])
def test_max_errors_below_one_is_a_usage_error(tmp_path: Path, n: str) -> None:
    # it would list no problem at all: a refusal naming no file, line or field
    code, _, err = run("batch", EXAMPLE, "-o", str(tmp_path / "r.csv"), "--rules", RULES, "--max-errors", n)
    assert code == 2 and "--max-errors" in err and not (tmp_path / "r.csv").exists()


def test_skip_settles_the_good_rows_and_lists_the_bad(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("claim_id,person_id,date,self_pay\nC1,P,2024-01-02,30000\nC2,P,2024-01-02,x\n")
    code, stdout, _ = run("batch", str(p), "-o", str(tmp_path / "r.jsonl"), "--rules", RULES,
                          "--on-error", "skip", "--rejects", str(tmp_path / "bad.csv"))
    assert code == 0
    assert "rows read 2 = settled 1 + rejected 1" in stdout
    assert pl.read_csv(tmp_path / "bad.csv", infer_schema=False)["line"].to_list() == ["3"]
    assert read_results(tmp_path / "r.jsonl")["relief"].to_list() == [2_330_000]


def test_map_and_xlsx_sheet_options(tmp_path: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "明细"
    ws.append(["单号", "证号", "日期", "自付"])
    ws.append(["C1", "P1", "2024-05-03", 30000])
    p = tmp_path / "c.xlsx"
    wb.save(p)
    code, stdout, err = run("batch", str(p), "-o", str(tmp_path / "r.xlsx"), "--rules", RULES,
                            "--sheet", "明细", "--map", "单号=claim_id", "--map", "证号=person_id",
                            "--map", "日期=date", "--map", "自付=self_pay")
    assert code == 0, err
    assert read_results(tmp_path / "r.xlsx")["relief"].to_list() == [2_330_000]


def test_unreadable_inputs_are_refused_cleanly(tmp_path: Path) -> None:
    code, _, err = run("batch", str(tmp_path / "none.csv"), "--rules", RULES)
    assert code == 1 and "no such file" in err
    (tmp_path / "c.txt.gz").write_bytes(b"x")
    code, _, err = run("batch", str(tmp_path / "c.txt.gz"), "--rules", RULES)
    assert code == 1 and "unknown file type" in err
    code, _, err = run("batch", EXAMPLE, "--rules", RULES, "--map", "nonsense")
    assert code == 1 and "COLUMN=FIELD" in err


def test_recalc_with_the_same_rules_adjusts_nothing(tmp_path: Path) -> None:
    prev = tmp_path / "r.csv"
    assert run("batch", EXAMPLE, "-o", str(prev), "--rules", RULES)[0] == 0
    adj = tmp_path / "adj.csv"
    code, stdout, _ = run("recalc", EXAMPLE, "--previous", str(prev), "--rules", RULES, "-o", str(adj), "--json")
    assert code == 0
    doc = json.loads(stdout)
    assert doc["totals"]["adjustment"] == "0.00" and doc["totals"]["same"] == 5000
    assert doc["totals"]["old_relief"] == doc["totals"]["new_relief"]
    assert doc["rows_read"] == doc["settled"] == 5000
    assert set(read_results(adj)["adjustment"].to_list()) == {0}
    code, stdout, _ = run("recalc", EXAMPLE, "--previous", str(prev), "--rules", RULES)
    assert code == 0 and "old relief" in stdout and "adjustments" in stdout
    assert "rows read 5000 = settled 5000 + rejected 0" in stdout


def test_an_output_may_not_replace_the_input(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("claim_id,person_id,date,self_pay\nC1,P,2024-01-02,30000\n")
    before = p.read_bytes()
    code, _, err = run("batch", str(p), "-o", str(p), "--rules", RULES)
    assert code == 2 and "would overwrite the input" in err
    code, _, err = run("batch", str(p), "-o", str(tmp_path / "r.csv"), "--rejects", str(tmp_path / "r.csv"),
                       "--rules", RULES)
    assert code == 2
    assert p.read_bytes() == before


def test_when_every_row_is_skipped_the_totals_are_zero(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text("claim_id,person_id,date,self_pay\nC1,P,2024-01-02,-1\n")
    code, stdout, _ = run("batch", str(p), "-o", str(tmp_path / "r.csv"), "--rules", RULES, "--on-error", "skip",
                          "--json")
    doc = json.loads(stdout)
    assert code == 0 and doc["total"]["claims"] == 0 and doc["total"]["relief"] == "0.00"
    assert read_results(tmp_path / "r.csv").height == 0


_PROBE = """
import os, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from medaid.cli import batch as cli_batch
cli_batch._import_polars()
import polars
print(polars.SEEN, os.environ.get("_RJEM_MALLOC_CONF"))
"""


def _import_with_fake_polars(tmp_path: Path, env: dict[str, str]) -> list[str]:
    """Run ``_import_polars`` in a child process against a stand-in ``polars`` that records the
    allocator settings it is imported with; returns [seen at import, left in the environment]."""
    import os
    import subprocess
    import sys

    fake = tmp_path / "fake"
    (fake / "polars").mkdir(parents=True)
    (fake / "polars" / "__init__.py").write_text(
        "import os\nSEEN = os.environ.get('_RJEM_MALLOC_CONF')\n", encoding="utf-8")
    child_env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"} | env
    out = subprocess.run([sys.executable, "-c", _PROBE, str(fake), str(ROOT / "src")],
                         env=child_env, capture_output=True, text=True, check=True).stdout
    return out.split()


def test_a_batch_imports_polars_with_memory_returned_promptly(tmp_path: Path) -> None:
    """The allocator settings are in the environment while polars is imported (when the
    allocator reads them) and gone afterwards (child processes do not inherit them)."""
    seen, left = _import_with_fake_polars(tmp_path, {})
    assert seen == "dirty_decay_ms:200,muzzy_decay_ms:0"
    assert left == "None"


def test_the_users_own_allocator_settings_are_left_alone(tmp_path: Path) -> None:
    seen, left = _import_with_fake_polars(tmp_path, {"_RJEM_MALLOC_CONF": "narenas:1"})
    assert seen == "narenas:1" and left == "narenas:1"

"""Files holding personal data are created 0600 (README.md#reliability; issue #11, defect 12).

Results, rejects and recalculations list ID numbers, and so does the desk ledger (with its -wal
and -shm files): owner only, whatever the umask.  The HTML report holds counts and sums only (no
ID number, checked here), so it is an ordinary file: 0666 less the umask, 0644 under 022.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

import medaid
from medaid.cli import main
from medaid.ledger.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
RULES = str(ROOT / "rules")
ID = "50010119800101123X"
CSV = ("claim_id,person_id,date,self_pay,group,kind,hospital\n"
       f"C1,{ID},2024-05-03,30000,key,inpatient,H1\n"
       f"C2,{ID},2024-05-04,-1,key,inpatient,H1\n")  # a reject


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture(autouse=True)
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def invoke(*args: str):
    r = CliRunner().invoke(main, list(args))
    assert r.exit_code == 0, r.output
    return r


@pytest.mark.parametrize("ext", ["csv", "xlsx", "jsonl", "parquet"])
def test_results_and_rejects_are_private_in_every_format(tmp_path, ext):
    src = tmp_path / "claims.csv"
    src.write_text(CSV, encoding="utf-8")
    out, rej = tmp_path / f"results.{ext}", tmp_path / f"rejects.{ext}"
    invoke("batch", str(src), "-o", str(out), "--rules", RULES, "--on-error", "skip", "--rejects", str(rej))
    assert (mode(out), mode(rej)) == (0o600, 0o600)
    out.chmod(0o644)  # written again over a file someone opened up: private again
    invoke("batch", str(src), "-o", str(out), "--rules", RULES, "--on-error", "skip", "--rejects", str(rej))
    assert mode(out) == 0o600


def test_a_recalculation_is_private(tmp_path):
    src = tmp_path / "claims.csv"
    src.write_text(CSV.rsplit("C2", 1)[0], encoding="utf-8")
    prev = tmp_path / "prev.csv"
    invoke("batch", str(src), "-o", str(prev), "--rules", RULES)
    out = tmp_path / "recalc.csv"
    invoke("recalc", str(src), "--previous", str(prev), "-o", str(out), "--rules", RULES)
    assert mode(out) == 0o600


def test_the_ledger_its_wal_and_shm_and_its_writers_queue_are_private(tmp_path):
    book = medaid.load_rules(RULES)
    path = tmp_path / "desk.sqlite3"
    with Ledger(path) as lg:
        lg.settle(medaid.Claim(claim_id="C1", person_id=ID, date="2024-05-03", self_pay=100,
                               group="key", kind="inpatient"), book)
        files = sorted(tmp_path.iterdir())
        assert [f.name for f in files] == ["desk.sqlite3", "desk.sqlite3-shm", "desk.sqlite3-wal",
                                           "desk.sqlite3.writers"]
        assert {mode(f) for f in files} == {0o600}


def test_the_html_report_has_no_id_number_and_is_an_ordinary_file(tmp_path):
    src = tmp_path / "claims.csv"
    src.write_text(CSV.rsplit("C2", 1)[0], encoding="utf-8")
    res, html = tmp_path / "results.csv", tmp_path / "report.html"
    invoke("batch", str(src), "-o", str(res), "--rules", RULES)
    invoke("report", str(res), "--html", str(html), "--by", "hospital")
    assert ID not in html.read_text(encoding="utf-8") and "C1" not in html.read_text(encoding="utf-8")
    assert mode(html) == 0o644

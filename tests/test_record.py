"""Recording a file of applications in the shared ledger (docs/batch.md, *Recording in the
ledger*): ``medaid batch FILE --ledger URL|PATH --record`` settles every claim against the
ledger, desk claims included, so that both share one annual cap; records each claim once, in
the ledger's order, idempotently, in transactions, resumable after ``kill -9``.  Every test runs
on SQLite and on PostgreSQL (the ``db`` fixture)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import medaid
from full_disk import full_for, needs_dev_full
from medaid.cli import main
from medaid.io.results import read_results
from medaid.ledger import open_ledger

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "claims-2024.csv"
RULES = str(ROOT / "rules")
HEADER = "claim_id,person_id,date,self_pay,group,kind\n"
SAME = ["claim_id", "plan", "pool", "benefit_year", "relief", "patient_pays", "bracket_relief",
        "capped_by", "bracket", "ytd_self_pay", "ytd_relief"]


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


def record(db: object, src: Path, out: Path, *more: str) -> tuple[int, str, str]:
    return run("batch", str(src), "--ledger", str(db), "--record", "-o", str(out), "--rules", RULES, *more)


def book() -> medaid.RuleBook:
    return medaid.load_rules(RULES)


def claim(cid: str, person: str, day: str, yuan: int) -> medaid.Claim:
    return medaid.Claim(claim_id=cid, person_id=person, date=day, self_pay=yuan * 100, group="key", kind="inpatient")


def reliefs(path: Path) -> dict[str, int]:
    return {r["claim_id"]: r["relief"] for r in read_results(path).iter_rows(named=True)}


def per_claim(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.col(c).cast(pl.String) for c in SAME).sort("claim_id")


def months(tmp_path: Path, upto: str) -> Path:
    """The example year's claims up to month ``upto`` (its first claims are enough to meet caps)."""
    raw = pl.read_csv(EXAMPLE, infer_schema=False)
    src = tmp_path / f"claims-to-{upto}.csv"
    raw.filter(pl.col(raw.columns[2]).str.slice(5, 2) <= upto).write_csv(src)
    return src


def test_recorded_claims_get_exactly_the_batch_results_and_the_ledger_holds_each_once(db, tmp_path):
    """On an empty ledger, recording gives every claim the result the batch gives it (the
    batch's columnar settlement is independent of the ledger's per-claim one): the same
    results file, byte for byte; each claim is a ledger row once and ``ledger verify`` passes."""
    src = months(tmp_path, "02")
    code, _, err = run("batch", str(src), "-o", str(tmp_path / "batch.csv"), "--rules", RULES)
    assert code == 0, err
    code, out, err = record(db, src, tmp_path / "rec.csv")
    assert code == 0, err
    n = pl.read_csv(src, infer_schema=False).height
    assert f"rows read {n} = recorded {n} + already recorded 0 + rejected 0" in out
    assert (tmp_path / "rec.csv").read_bytes() == (tmp_path / "batch.csv").read_bytes()
    assert db.rows("SELECT count(*), count(DISTINCT claim_id) FROM entries")[0] == (n, n)
    code, _, err = run("ledger", "verify", "--ledger", str(db))
    assert code == 0, err


def test_desk_claims_and_applications_share_one_annual_cap(db, tmp_path):
    """By hand, the shipped rules (key, inpatient: brackets per stay, annual cap 100,000): the
    desk settled a 100,000 stay (87,800); the person's application of 30,000 afterwards gets
    what is left of the cap, 12,200 (alone it would get 23,300)."""
    with open_ledger(str(db)) as lg:
        assert lg.settle(claim("D1", "P1", "2024-03-01", 100_000), book()).entry.relief == 8_780_000
    src = tmp_path / "applications.csv"
    src.write_text(HEADER + "A1,P1,2024-03-05,30000,key,inpatient\nA2,P2,2024-03-05,30000,key,inpatient\n")
    code, out, err = record(db, src, tmp_path / "r.csv")
    assert code == 0, err
    assert reliefs(tmp_path / "r.csv") == {"A1": 1_220_000, "A2": 2_330_000}
    with open_ledger(str(db)) as lg:
        assert lg.ytd("P1", 2024, "inpatient") == medaid.PoolState(13_000_000, 10_000_000)


def test_recording_again_returns_the_recorded_results_and_records_nothing(db, tmp_path):
    src = tmp_path / "a.csv"
    src.write_text(HEADER + "A1,P1,2024-03-05,30000,key,inpatient\nA2,P1,2024-04-05,100000,key,inpatient\n")
    code, _, err = record(db, src, tmp_path / "first.csv")
    assert code == 0, err
    code, out, err = record(db, src, tmp_path / "again.csv", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert (got["recorded"], got["already_recorded"], got["rejected"]) == (0, 2, 0)
    assert (tmp_path / "again.csv").read_bytes() == (tmp_path / "first.csv").read_bytes()
    assert reliefs(tmp_path / "again.csv") == {"A1": 2_330_000, "A2": 7_670_000}
    assert db.count() == 2


def test_a_claim_id_recorded_with_other_facts_is_a_conflict_named_with_its_line(db, tmp_path):
    """Under the default ``--on-error fail`` nothing of the file is recorded; with ``skip`` the
    others are, and the conflict is in the rejects file with its line."""
    with open_ledger(str(db)) as lg:
        lg.settle(claim("A1", "P1", "2024-03-05", 30_000), book())
    src = tmp_path / "a.csv"
    src.write_text(HEADER + "A0,P2,2024-01-05,5000,key,inpatient\nA1,P1,2024-03-05,31000,key,inpatient\n")
    code, out, err = record(db, src, tmp_path / "r.csv")
    assert code == 1
    assert f"{src}:3: claim_id: already settled with different self_pay" in err
    assert "nothing was recorded" in err and db.count() == 1 and not (tmp_path / "r.csv").exists()
    code, out, err = record(db, src, tmp_path / "r.csv", "--on-error", "skip")
    assert code == 0, err
    assert "rows read 2 = recorded 1 + already recorded 0 + rejected 1" in out
    rejects = pl.read_csv(tmp_path / "r.rejects.csv", infer_schema=False)
    assert rejects["line"].to_list() == ["3"]
    assert "already settled with different self_pay" in rejects["reason"][0]
    assert db.count() == 2


def test_a_claim_dated_before_the_pools_claims_in_the_ledger_is_refused_with_its_line(db, tmp_path):
    """The ledger settles a pool's claims by date, then claim id: an application dated before
    a standing desk claim of the same person-year-pool would change the desk claim's result
    after the fact; it is refused by line (another person, or a later date, is recorded)."""
    with open_ledger(str(db)) as lg:
        lg.settle(claim("D5", "P1", "2024-05-01", 30_000), book())
    src = tmp_path / "a.csv"
    src.write_text(HEADER + "A1,P1,2024-04-30,30000,key,inpatient\nA2,P2,2024-04-30,30000,key,inpatient\n"
                   "A3,P1,2024-05-02,30000,key,inpatient\n")
    code, out, err = record(db, src, tmp_path / "r.csv", "--on-error", "skip")
    assert code == 0, err
    assert "recorded 2 + already recorded 0 + rejected 1" in out
    rejects = pl.read_csv(tmp_path / "r.rejects.csv", infer_schema=False)
    assert rejects["line"].to_list() == ["2"]
    assert rejects["reason"][0].startswith("dated 2024-04-30, before claim D5 (2024-05-01) already in the ledger")
    assert reliefs(tmp_path / "r.csv") == {"A2": 2_330_000, "A3": 2_330_000}


def test_a_claim_the_ledger_reversed_is_recorded_anew_once(db, tmp_path):
    """As ``medaid settle`` after ``medaid reverse``: a new settlement, against the position of
    the claims that stand (the reversed one counts for nothing): by hand 23,300 again."""
    with open_ledger(str(db)) as lg:
        lg.settle(claim("A1", "P1", "2024-03-05", 30_000), book())
        lg.reverse("A1", "wrong amount", book=book())
    src = tmp_path / "a.csv"
    src.write_text(HEADER + "A1,P1,2024-03-05,30000,key,inpatient\n")
    code, out, err = record(db, src, tmp_path / "r.csv")
    assert code == 0, err
    assert "recorded 1 + already recorded 0" in out
    assert reliefs(tmp_path / "r.csv") == {"A1": 2_330_000}
    code, out, err = record(db, src, tmp_path / "r.csv")
    assert code == 0 and "recorded 0 + already recorded 1" in out
    assert db.count() == 3


def test_channel_and_bank_account_are_read_and_the_account_is_masked(db, tmp_path):
    """一站式 / 申请 name the channel (a row naming none that gives a payee is an application); a
    channel that is neither is refused by line; the bank account is masked in the results and rejects files and never in
    a message."""
    from medaid.batch.record import record_file

    account = "6222020200112233445"
    src = tmp_path / "a.csv"
    src.write_text(HEADER.strip() + ",渠道,银行账号,户名\n"
                   "A1,P1,2024-03-05,30000,key,inpatient,一站式,,\n"
                   f"A2,P2,2024-03-05,30000,key,inpatient,,{account},李四\n"
                   f"A3,P3,2024-03-05,30000,key,inpatient,邮寄,{account},王五\n", encoding="utf-8")
    code, out, err = record(db, src, tmp_path / "r.csv")
    assert code == 1 and f"{src}:4: channel: is not a settlement channel" in err and account not in out + err
    code, out, err = record(db, src, tmp_path / "r.csv", "--on-error", "skip")
    assert code == 0, err
    for f, name in (("r.csv", "李四"), ("r.rejects.csv", "王五")):
        text = (tmp_path / f).read_text(encoding="utf-8-sig")
        assert account not in text and "6222***********3445" in text  # first four, last four
        assert name not in text and name[0] + "*" in text
    seen = []
    with open_ledger(str(db)) as lg:
        orig = lg.record_in_order

        def spy(claims, *a, **k):
            seen.extend(c for c, _ in claims)
            return orig(claims, *a, **k)
        lg.record_in_order = spy  # type: ignore[method-assign]
        record_file(src, lg, book(), on_error="skip")
    got = {c.claim_id: (c.channel, c.bank_account, c.account_name) for c in seen}
    assert got == {"A1": ("one-stop", None, None), "A2": ("application", account, "李四")}


def test_record_needs_a_ledger_and_the_local_engine():
    code, _, err = run("batch", str(EXAMPLE), "--record", "--rules", RULES)
    assert code == 2 and "--record needs --ledger" in err


#: The recording run the crash test kills: five claims to a transaction, so that it is killed
#: between and inside transactions.
CHILD = """
import sys
import medaid.tuning
medaid.tuning.RECORD_CHUNK = 5
from medaid.cli import main
main(sys.argv[1:])
"""


def test_a_recording_killed_mid_run_then_run_again_records_every_claim_once_with_the_right_relief(db, tmp_path):
    """``kill -9`` in the middle of recording, then the same command again: every claim is in
    the ledger exactly once with the relief the batch gives it, the second run counts the first
    run's claims as already recorded, and ``ledger verify`` passes."""
    src = months(tmp_path, "02")
    n = pl.read_csv(src, infer_schema=False).height
    code, _, err = run("batch", str(src), "-o", str(tmp_path / "batch.csv"), "--rules", RULES)
    assert code == 0, err
    args = ["batch", str(src), "--ledger", str(db), "--record", "-o", str(tmp_path / "rec.csv"), "--rules", RULES]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, *args], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    seen = 0
    while time.monotonic() < deadline and child.poll() is None:
        try:
            seen = db.count()
        except Exception:  # noqa: BLE001 - the ledger is still being created
            seen = 0
        if seen >= 40:
            break
        time.sleep(0.01)
    assert child.poll() is None, "the recording ended before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = db.count()
    assert 40 <= before < n
    code, out, err = run(*args, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert (got["recorded"] + got["already_recorded"], got["already_recorded"]) == (n, before)
    assert db.rows("SELECT count(*), count(DISTINCT claim_id) FROM entries")[0] == (n, n)
    assert per_claim(read_results(tmp_path / "rec.csv")).equals(per_claim(read_results(tmp_path / "batch.csv")))
    ledger_relief = dict(db.rows("SELECT claim_id, relief FROM entries"))
    assert ledger_relief == reliefs(tmp_path / "batch.csv")
    code, _, err = run("ledger", "verify", "--ledger", str(db))
    assert code == 0, err


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_the_transaction_size_changes_no_result(tmp_path, monkeypatch, chunk):
    import medaid.tuning

    monkeypatch.setattr(medaid.tuning, "RECORD_CHUNK", chunk)
    src = tmp_path / "a.csv"
    src.write_text(HEADER + "".join(f"A{i:02d},P{i % 3},2024-0{1 + i % 9}-1{i % 10},{20000 + 1000 * i},key,inpatient\n"
                                    for i in range(20)))
    code, _, err = run("batch", str(src), "-o", str(tmp_path / "batch.csv"), "--rules", RULES)
    assert code == 0, err
    code, _, err = run("batch", str(src), "--ledger", str(tmp_path / "l.sqlite3"), "--record",
                       "-o", str(tmp_path / "rec.csv"), "--rules", RULES)
    assert code == 0, err
    assert (tmp_path / "rec.csv").read_bytes() == (tmp_path / "batch.csv").read_bytes()


def test_a_payee_the_claim_rules_refuse_is_a_line_not_a_crash(db, tmp_path):
    """The claim's payee rules (docs/periods.md) apply by line: an application without its
    account name, a malformed account and a one-stop claim naming an account are each refused
    with file, line and field, the account never repeated; nothing is recorded."""
    src = tmp_path / "a.csv"
    src.write_text(HEADER.strip() + ",channel,bank_account,account_name\n"
                   "B1,P1,2024-03-05,30000,key,inpatient,application,6222020200112233445,\n"
                   "B2,P2,2024-03-05,30000,key,inpatient,application,6222-0202,张三\n"
                   "B3,P3,2024-03-05,30000,key,inpatient,one-stop,6222020200998877665,李四\n", encoding="utf-8")
    code, out, err = record(db, src, tmp_path / "r.csv")
    assert code == 1 and "Traceback" not in err and "internal error" not in err
    assert f"{src}:2: " in err and f"{src}:3: bank_account" in err and f"{src}:4: " in err
    assert "6222020200112233445" not in out + err and "6222-0202" not in out + err and "6222020200998877665" not in err
    assert "nothing was recorded" in out + err
    with open_ledger(str(db)) as lg:
        assert list(lg.entries()) == []


def test_a_recorded_run_has_its_manifest_with_the_recording_reconciled(db, tmp_path):
    src = tmp_path / "a.csv"
    src.write_text(HEADER + "A1,P1,2024-03-05,30000,key,inpatient\nA2,P1,2024-04-05,100000,key,inpatient\n")
    code, out, err = record(db, src, tmp_path / "r.csv", "--json")
    assert code == 0, err
    doc = json.loads((tmp_path / "r.csv.manifest.json").read_text(encoding="utf-8"))
    assert json.loads(out)["manifest"] == str(tmp_path / "r.csv.manifest.json")
    assert doc["reconciliation"]["line"] == "rows read 2 = recorded 2 + already recorded 0 + rejected 0"
    assert doc["inputs"][0]["rows_read"] == 2 and doc["options"]["record"] is True
    # 23,300 + 76,700 (the 100,000 cap less 23,300): 100,000
    assert doc["totals"]["relief"] == 10_000_000  # fen


def test_an_output_that_cannot_be_a_file_is_refused_before_anything_is_recorded(db, tmp_path):
    src = tmp_path / "a.csv"
    src.write_text(HEADER + "A1,P1,2024-03-05,30000,key,inpatient\n")
    code, _, err = record(db, src, tmp_path / "no-such-folder" / "r.csv")
    assert code == 1 and "the output folder does not exist; nothing was recorded" in err
    code, _, err = record(db, src, tmp_path)
    assert code == 1 and "is a folder; nothing was recorded" in err
    try:
        n = db.count()
    except Exception:  # noqa: BLE001 - no ledger table at all: the ledger was not even made
        n = 0
    assert n == 0


@needs_dev_full
def test_results_that_cannot_be_written_after_recording_say_the_claims_are_recorded(db, tmp_path, monkeypatch):
    src = tmp_path / "a.csv"
    src.write_text(HEADER + "A1,P1,2024-03-05,30000,key,inpatient\n")
    full_for(monkeypatch, ".r.csv.")  # the disk is full for the results
    code, _, err = record(db, src, tmp_path / "r.csv")
    assert code == 1
    assert f"{tmp_path / 'r.csv'}: cannot be written (No space left on device)" in err
    assert "the claims were recorded in the ledger (1 recorded, 0 already there)" in err
    assert db.count() == 1 and not (tmp_path / "r.csv").exists()
    monkeypatch.undo()
    code, _, err = record(db, src, tmp_path / "r.csv")  # again, where it can be written: replayed
    assert code == 0 and reliefs(tmp_path / "r.csv") == {"A1": 2_330_000} and db.count() == 1

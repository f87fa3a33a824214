"""The desk ledger: settle, replay, reverse, history, the results rows, and what it refuses.

Expected amounts are worked out by hand from the bundled rules (key recipients, inpatient:
70% of 1,000-10,000, 85% of 10,000-50,000, 95% above; annual cap 100,000 per inpatient pool).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

import medaid
from medaid.io.columns import CLAIM_FIELDS, RESULT_FIELDS
from medaid.ledger import open_ledger
from medaid.ledger.ledger import (
    APPLICATION_ID,
    GENESIS,
    MIGRATIONS,
    Ledger,
    LedgerConflict,
    LedgerError,
    new_claim_id,
)

RULES = Path(__file__).resolve().parents[1] / "rules"


@pytest.fixture(scope="module")
def book():
    return medaid.load_rules(RULES)


@pytest.fixture
def ledger(db):
    """A new ledger on each backend (tests/conftest.py)."""
    with open_ledger(db.location) as lg:
        yield lg


def claim(cid, amount, *, person="P1", day="2024-05-03", group="key", kind="inpatient", **kw):
    return medaid.Claim.from_yuan(
        claim_id=cid, person_id=person, date=day, self_pay=amount, group=group, kind=kind, **kw
    )


def count(lg: Ledger) -> int:
    return sum(1 for _ in lg.entries())


# -- settling ------------------------------------------------------------------------------


def test_a_30000_yuan_stay_is_recorded_with_23300_relief_and_its_rule_set(ledger, book):
    receipt = ledger.settle(claim("C1", "30000"), book)
    e = receipt.entry
    assert not receipt.replayed
    assert (e.seq, e.entry, e.relief, e.patient_pays) == (1, "settlement", 2_330_000, 670_000)
    assert (e.ytd_self_pay, e.ytd_relief, e.annual_cap_left) == (3_000_000, 2_330_000, 7_670_000)
    rs = book.for_date(dt.date(2024, 5, 3))
    assert (e.rule_set_id, e.rule_version, e.rule_hash) == (rs.id, rs.version, rs.content_hash)
    assert e.prev_hash == GENESIS and len(e.row_hash) == 64
    # 1,000-10,000 at 70% and 10,000-30,000 at 85%
    assert [(s.base, s.relief) for s in e.segments] == [(900_000, 630_000), (2_000_000, 1_700_000)]
    assert e.bracket == 2


def test_the_annual_cap_binds_on_the_second_stay_of_the_year(ledger, book):
    assert ledger.settle(claim("C1", "100000"), book).entry.relief == 8_780_000
    second = ledger.settle(claim("C2", "30000", day="2024-07-01"), book).entry
    # 23,300 by the brackets, but only 100,000 − 87,800 = 12,200 is left of the cap
    assert (second.relief, second.bracket_relief, second.capped_by) == (1_220_000, 2_330_000, "annual_cap")
    assert ledger.ytd("P1", 2024, "inpatient") == (13_000_000, 10_000_000)
    third = ledger.settle(claim("C3", "5000", day="2024-08-01"), book).entry
    assert (third.relief, third.patient_pays, third.annual_cap_left) == (0, 500_000, 0)


def test_a_new_benefit_year_starts_a_new_pool(ledger, book):
    ledger.settle(claim("C1", "100000"), book)
    nxt = ledger.settle(claim("C2", "30000", day="2025-01-02"), book).entry
    assert (nxt.benefit_year, nxt.relief, nxt.ytd_self_pay) == (2025, 2_330_000, 3_000_000)


def test_low_income_and_key_inpatient_plans_share_the_inpatient_pool(ledger, book):
    ledger.settle(claim("C1", "100000"), book)  # 87,800
    other = ledger.settle(claim("C2", "30000", group="low-income"), book).entry
    # 60% of 2,000-30,000 = 16,800 by the brackets; 12,200 left in the shared pool
    assert (other.plan, other.pool, other.relief) == ("low-income-inpatient", "inpatient", 1_220_000)


def test_outpatient_visits_accumulate_over_the_year_in_their_own_pool(ledger, book):
    reliefs = [
        ledger.settle(claim(f"O{i}", amount, kind="outpatient-special"), book).entry.relief
        for i, amount in enumerate(["150", "150", "5000"])
    ]
    # year 300 → 70% of 100 = 70; then 70% of (5,300 − 200) = 3,570 − 70 = 3,500, claim cap 3,000
    assert reliefs == [0, 7_000, 300_000]
    assert ledger.ytd("P1", 2024, "inpatient") == (0, 0)


def test_a_claim_no_plan_covers_is_refused_before_anything_is_written(ledger, book):
    with pytest.raises(medaid.ClaimError, match="group"):
        ledger.settle(claim("C1", "100", group="nobody"), book)
    with pytest.raises(medaid.ClaimError, match="covers 2018-05-03"):
        ledger.settle(claim("C2", "100", day="2018-05-03"), book)
    assert count(ledger) == 0


# -- an admission decided inside the settlement's transaction ------------------------------


def _admission(sql, decide):
    from medaid.ledger.backend import Admission

    return Admission(sql, (), decide)


def test_an_admission_reads_in_the_settlements_transaction_and_decides_hospital_and_desk(ledger, book):
    seen = []

    def decide(rows):
        seen.append(rows)
        return claim("C1", "30000", hospital="H9"), "t-desk"

    receipt = ledger.settle(claim("C1", "30000"), book, desk="ignored",
                            admit=_admission("SELECT 7, 'seven'", decide))
    assert [list(map(tuple, r)) for r in seen] == [[(7, "seven")]]
    assert (receipt.entry.hospital, receipt.entry.desk, receipt.entry.relief) == ("H9", "t-desk", 2_330_000)
    # the same claim decided again is a replay of the row recorded with the decided hospital
    again = ledger.settle(claim("C1", "30000"), book, admit=_admission("SELECT 1", lambda rows: (
        claim("C1", "30000", hospital="H9"), "t-other")))
    assert again.replayed and again.entry == receipt.entry and count(ledger) == 1


def test_an_admission_that_refuses_writes_nothing(ledger, book):
    class Refused(Exception):
        pass

    def refuse(rows):
        raise Refused

    with pytest.raises(Refused):
        ledger.settle(claim("C1", "30000"), book, admit=_admission("SELECT 1", refuse))
    assert count(ledger) == 0
    # the locks were released with the rolled-back transaction: the claim settles at once
    assert ledger.settle(claim("C1", "30000"), book).entry.seq == 1


def test_an_admission_may_change_nothing_but_the_hospital(ledger, book):
    for other in (claim("C2", "30000"), claim("C1", "30001"), claim("C1", "30000", person="P2")):
        with pytest.raises(ValueError, match="hospital only"):
            ledger.settle(claim("C1", "30000"), book, admit=_admission("SELECT 1", lambda rows, o=other: (o, None)))
    assert count(ledger) == 0


# -- idempotency ---------------------------------------------------------------------------


def test_the_same_claim_again_returns_the_original_and_records_nothing(ledger, book):
    first = ledger.settle(claim("C1", "30000", hospital="H1"), book)
    again = ledger.settle(claim("C1", "30000", hospital="H1"), book)
    assert again.replayed and again.entry == first.entry
    assert count(ledger) == 1


def test_the_same_claim_id_with_other_content_is_refused_naming_the_fields(ledger, book):
    ledger.settle(claim("C1", "30000", hospital="H1"), book)
    with pytest.raises(LedgerConflict) as err:
        ledger.settle(claim("C1", "30000.01", hospital="H2"), book)
    assert err.value.fields == ("self_pay", "hospital")
    assert "self_pay, hospital" in str(err.value) and "30000" not in str(err.value)
    assert count(ledger) == 1


def test_a_reversed_claim_id_may_be_settled_again_with_new_content(ledger, book):
    ledger.settle(claim("C1", "30000"), book)
    ledger.reverse("C1", "wrong amount")
    again = ledger.settle(claim("C1", "20000"), book)
    # 6,300 + 10,000 × 85% = 14,800 against an empty pool again
    assert not again.replayed and again.entry.relief == 1_480_000 and again.entry.seq == 3
    assert ledger.ytd("P1", 2024, "inpatient") == (2_000_000, 1_480_000)


# -- reversals -----------------------------------------------------------------------------


def test_a_reversal_takes_the_claim_out_of_the_year_to_date_position(ledger, book):
    ledger.settle(claim("C1", "100000"), book)
    c2 = ledger.settle(claim("C2", "30000", day="2024-06-01"), book).entry
    rev = ledger.reverse("C1", "duplicate entry")
    assert (rev.entry, rev.reverses, rev.reason, rev.seq) == ("reversal", 1, "duplicate entry", 3)
    assert (rev.ytd_self_pay, rev.ytd_relief) == (3_000_000, 1_220_000)
    assert ledger.ytd("P1", 2024, "inpatient") == (3_000_000, 1_220_000)
    # later settlements keep their recorded figures (append-only)
    assert next(e for e in ledger.entries() if e.claim_id == "C2") == c2
    # with 12,200 granted, a new 30,000 stay gets 23,300 in full (12,200 + 23,300 ≤ 100,000)
    assert ledger.settle(claim("C3", "30000", day="2024-07-01"), book).entry.relief == 2_330_000


def test_reversing_twice_an_unknown_claim_or_without_reason_is_refused(ledger, book):
    ledger.settle(claim("C1", "30000"), book)
    with pytest.raises(LedgerError, match="reason"):
        ledger.reverse("C1", "  ")
    ledger.reverse("C1", "typo")
    with pytest.raises(LedgerError, match="already reversed"):
        ledger.reverse("C1", "typo")
    with pytest.raises(LedgerError, match="no such claim"):
        ledger.reverse("C9", "typo")
    assert count(ledger) == 2


# -- reading -------------------------------------------------------------------------------


def test_history_lists_the_persons_rows_of_the_year(ledger, book):
    ledger.settle(claim("A", "30000"), book)
    ledger.settle(claim("B", "30000", person="P2"), book)
    ledger.settle(claim("C", "1000", day="2025-02-01"), book)
    ledger.reverse("A", "typo")
    assert [(e.claim_id, e.entry) for e in ledger.history("P1")] == [
        ("A", "settlement"), ("C", "settlement"), ("A", "reversal")]
    assert [e.claim_id for e in ledger.history("P1", 2025)] == ["C"]
    assert ledger.history("P3") == []


def test_results_rows_give_settled_claims_with_the_shared_columns(ledger, book):
    ledger.settle(claim("A", "999.99"), book)
    ledger.settle(claim("B", "1000.01", person="P2", hospital="H", total_cost="5000"), book)
    ledger.settle(claim("C", "100000", person="P3"), book)
    ledger.settle(claim("D", "30000", person="P4"), book)
    ledger.settle(claim("E", "30000", person="P5", day="2025-03-01"), book)
    ledger.reverse("D", "typo")
    rows = list(ledger.results_rows())
    # the claim's channel with them (docs/report.md: the one-stop rate), never its payee
    assert [tuple(r) for r in rows] == [(*CLAIM_FIELDS, "channel", *RESULT_FIELDS)] * 4
    assert [r["claim_id"] for r in rows] == ["A", "B", "C", "E"]
    assert [r["channel"] for r in rows] == [None] * 4  # settled without one
    assert [r["bracket"] for r in rows] == [0, 1, 3, 2]
    assert [r["relief"] for r in rows] == [0, 1, 8_780_000, 2_330_000]
    b = rows[1]
    assert (b["date"], b["total_cost"], b["hospital"], b["patient_pays"]) == (
        dt.date(2024, 5, 3), 500_000, "H", 100_000)
    assert [r["claim_id"] for r in ledger.results_rows(2025)] == ["E"]


def test_quote_reads_the_position_and_records_nothing(ledger, book):
    ledger.settle(claim("A", "100000"), book)
    q = ledger.quote(claim("Q", "30000"), book)
    assert (q.relief, q.capped_by) == (1_220_000, "annual_cap")
    assert count(ledger) == 1


def test_the_bracket_recorded_is_the_highest_bracket_holding_part_of_the_base(ledger, book):
    # 1,000 / 10,000 / 50,000 yuan: a base exactly at a bound has not entered the bracket
    # starting there (10,000 → 1, 50,000 → 2), the batch records the same
    amounts = ["1000", "1000.01", "10000", "10000.01", "50000", "50000.01"]
    for i, a in enumerate(amounts):
        ledger.settle(claim(f"B{i}", a, person=f"P{i}"), book)
    assert [e.bracket for e in ledger.entries()] == [0, 1, 1, 2, 2, 3]


def test_the_bracket_recorded_is_0_while_the_gate_is_not_met(tmp_path, db):
    # brackets from 0 (70%) with a gate of 1,000: 999.99 gets nothing and reached no bracket
    (tmp_path / "r.toml").write_text(
        'id = "t"\nversion = "1"\nvalid_from = 2024-01-01\n[[plans]]\nname = "p"\ndefault = true\n'
        'pool = "all"\ngate = "1000"\nbrackets = [ { from = "0", rate = "70%" } ]\n', encoding="utf-8")
    gated = medaid.load_rules(tmp_path / "r.toml")
    with open_ledger(db.location) as lg:
        below = lg.settle(claim("A", "999.99", group=None, kind=None), gated).entry
        at = lg.settle(claim("B", "1000", person="P2", group=None, kind=None), gated).entry
    assert (below.relief, below.bracket) == (0, 0)
    assert (at.relief, at.bracket) == (70_000, 1)


def test_generated_claim_ids_carry_the_date_and_differ():
    ids = {new_claim_id(dt.date(2024, 5, 3)) for _ in range(50)}
    assert len(ids) == 50 and all(i.startswith("20240503-") for i in ids)


# -- the file ------------------------------------------------------------------------------


def test_a_new_ledger_is_wal_full_sync_with_its_migrations_recorded(tmp_path):
    path = tmp_path / "l.sqlite3"
    Ledger(path).close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    # every step of the registry, in order (1: entries; 2, 3: the service's desk column and tokens)
    assert [r[0] for r in con.execute("SELECT version FROM schema_migrations")] == [m.version for m in MIGRATIONS]
    con.close()
    with Ledger(path) as lg:
        assert lg._con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert lg._con.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        assert lg.schema_version() == MIGRATIONS[-1].version


def test_a_missing_ledger_is_not_created_by_readers(tmp_path):
    with pytest.raises(LedgerError, match="no ledger here"):
        Ledger(tmp_path / "none.sqlite3", create=False)
    assert list(tmp_path.iterdir()) == []


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_foreign_text_file_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.sqlite3"
    path.write_text("claim,person\nC1,P1\n" * 20)
    before = _snapshot(tmp_path)
    with pytest.raises(LedgerError, match="not an SQLite database"):
        Ledger(path)
    assert _snapshot(tmp_path) == before


def test_another_applications_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "other.sqlite3"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    con.commit()
    con.close()
    before = _snapshot(tmp_path)
    with pytest.raises(LedgerError, match="not a medaid ledger"):
        Ledger(path)
    assert _snapshot(tmp_path) == before


def test_a_ledger_from_a_newer_medaid_is_refused(db, book):
    open_ledger(db.location).close()
    db.execute("INSERT INTO schema_migrations VALUES (99, 'future', '2030-01-01')")
    with pytest.raises(LedgerError, match="newer medaid"):
        open_ledger(db.location)


def test_a_damaged_header_is_refused_at_open(tmp_path, book):
    path = tmp_path / "l.sqlite3"
    with Ledger(path) as lg:
        lg.settle(claim("C1", "30000"), book)
    data = bytearray(path.read_bytes())
    data[0:16] = b"garbage garbage!"
    path.write_bytes(bytes(data))
    before = _snapshot(tmp_path)
    with pytest.raises(LedgerError, match="damaged"):
        Ledger(path)
    assert _snapshot(tmp_path) == before


def test_a_truncated_ledger_is_refused_at_open(tmp_path, book):
    path = tmp_path / "l.sqlite3"
    with Ledger(path) as lg:
        for i in range(100):
            lg.settle(claim(f"C{i}", "30000", person=f"P{i}"), book)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    before = _snapshot(tmp_path)
    with pytest.raises(LedgerError, match="truncated"):
        Ledger(path)
    assert _snapshot(tmp_path) == before


def test_a_disk_too_full_for_the_journal_is_not_called_a_damaged_ledger(tmp_path, book, monkeypatch):
    """SQLite reports a disk too full for its journal as an I/O error when the ledger is opened:
    the refusal asks whether the disk is full instead of calling the ledger damaged."""
    import sqlite3

    from medaid.ledger import ledger as module

    path = tmp_path / "l.sqlite3"
    with Ledger(path) as lg:
        lg.settle(claim("C1", "30000"), book)
    real = sqlite3.connect

    class FullDisk:  # the connection of a full disk: its first read fails with SQLITE_IOERR_WRITE
        def __init__(self, con):
            self._con = con

        def execute(self, sql, *args):
            if "sqlite_master" in sql:
                e = sqlite3.OperationalError("disk I/O error")
                e.sqlite_errorcode = sqlite3.SQLITE_IOERR_WRITE
                raise e
            return self._con.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._con, name)

    monkeypatch.setattr(module.sqlite3, "connect", lambda *a, **k: FullDisk(real(*a, **k)))
    with pytest.raises(LedgerError) as e:
        Ledger(path)
    assert "is the disk full?" in str(e.value) and "damaged" not in str(e.value).split("verify")[0]
    monkeypatch.undo()
    with Ledger(path) as lg:  # the file itself is whole
        assert lg.verify().problems == ()


def test_damaged_pages_are_reported_by_verify_or_refused(tmp_path, book):
    path = tmp_path / "l.sqlite3"
    with Ledger(path) as lg:
        for i in range(300):
            lg.settle(claim(f"C{i}", "30000", person=f"P{i}"), book)
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * 4096
    for at in range(3 * 4096 + 100, 6 * 4096, 7):  # scribble over pages 4-6
        data[at] = 0xA5
    path.write_bytes(bytes(data))
    try:
        lg = Ledger(path)
    except LedgerError as e:
        assert "damaged" in str(e) or "failed" in str(e)
        return
    with lg:
        v = lg.verify()
    assert not v.ok and any("integrity" in p or "row" in p for p in v.problems)


# -- append-only and tamper evidence -------------------------------------------------------


def test_rows_can_be_neither_updated_nor_deleted(ledger, db, book):
    ledger.settle(claim("C1", "30000"), book)
    with pytest.raises(db.integrity_error, match="never updated"):
        db.execute("UPDATE entries SET relief = 0")
    with pytest.raises(db.integrity_error, match="never deleted"):
        db.execute("DELETE FROM entries")


def _tamper(db, *statements: str) -> None:
    db.alter(*statements, restore=False)


def _three(db, book) -> None:
    with open_ledger(db.location) as lg:
        lg.settle(claim("C1", "30000"), book)
        lg.settle(claim("C2", "20000", person="P2"), book)
        lg.settle(claim("C3", "10000", person="P3"), book)
        assert lg.verify().ok and lg.verify().entries == 3


def test_verify_finds_an_altered_amount(db, book):
    _three(db, book)
    _tamper(db, "UPDATE entries SET relief = relief + 100000 WHERE seq = 2")
    with open_ledger(db.location) as lg:
        problems = lg.verify().problems
    assert any("row 2: row_hash does not match" in p for p in problems)
    assert any("append-only is missing" in p for p in problems)


def test_verify_finds_a_removed_row(db, book):
    _three(db, book)
    _tamper(db, "DELETE FROM entries WHERE seq = 2")
    with open_ledger(db.location) as lg:
        problems = lg.verify().problems
    assert any("row 3: expected row 2" in p for p in problems)
    assert any("row 3: prev_hash does not match" in p for p in problems)


def test_verify_finds_a_row_rehashed_without_its_successor(db, book):
    _three(db, book)
    from medaid.ledger.schema import COLUMNS, row_hash

    row = list(db.rows(f"SELECT {', '.join(COLUMNS)} FROM entries WHERE seq = 1")[0])
    row[COLUMNS.index("relief")] = 0  # relief
    new_hash = row_hash(row)
    db.alter(("UPDATE entries SET relief = 0, row_hash = ? WHERE seq = 1", (new_hash,)))
    with open_ledger(db.location) as lg:
        problems = lg.verify().problems
    assert any("row 2: prev_hash does not match" in p for p in problems)
    assert any("row 1: recorded year-to-date" in p for p in problems)


def _rewrite_first_row(db, **values) -> None:
    """Change row 1 of a one-row ledger and recompute its hash, as a forger would."""
    from medaid.ledger.schema import COLUMNS, row_hash

    row = list(db.rows(f"SELECT {', '.join(COLUMNS)} FROM entries WHERE seq = 1")[0])
    for k, v in values.items():
        row[COLUMNS.index(k)] = v
    sets = ", ".join(f"{k} = ?" for k in values)
    db.alter((f"UPDATE entries SET {sets}, row_hash = ? WHERE seq = 1", (*values.values(), row_hash(row))))


@pytest.mark.parametrize("field, value, message", [
    # 30,000 yuan relieved 23,300, but the row says the cap in force was 20,000 a year ...
    ("annual_cap", 2_000_000,
     "relief 23300.00 takes the year-to-date relief from 0.00 past the annual cap in force for it (20000.00)"),
    # ... or 3,000 a claim
    ("claim_cap", 300_000, "relief 23300.00 is above the claim cap in force for it (3000.00)"),
])
def test_verify_finds_a_relief_past_a_cap_in_force_for_its_row(db, book, field, value, message):
    with open_ledger(db.location) as lg:
        lg.settle(claim("C1", "30000"), book)
    _rewrite_first_row(db, **{field: value})
    with open_ledger(db.location) as lg:
        problems = lg.verify().problems
    assert f"row 1: {message}" in problems, problems

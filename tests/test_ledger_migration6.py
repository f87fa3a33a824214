"""Migration 6 (issue 15, docs/calculation.md#rules-real-schemes-need): a ledger written at
schema 5 gains the household, non-compliant cost and attribute columns and the second-stage and
cap-pool result columns, on both backends, and every old row keeps its hash; new rows carry the
claim's household, non-compliant cost and attributes, hashed only when set."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

import medaid
from medaid.ledger import open_ledger
from medaid.ledger.schema import COLUMNS, MIGRATIONS, SCHEMA_VERSION, Entry, encode, row_hash

try:
    from conftest import ledger_db
except ImportError:  # pragma: no cover - tests collected as a package
    from tests.conftest import ledger_db

ROOT = Path(__file__).resolve().parents[1]
#: Written by tests/data/make_ledger_v5.py with the code of schema 5 (main at ca7d68b).
V5 = ROOT / "tests" / "data" / "ledger-v5.sqlite3"
#: Its head hash, as that code printed it (Ledger.verify().head_hash) when it wrote the file.
V5_HEAD = "172becaf0022f79b8783a6073ef89a5da4697676df281c515354b7a634025a34"
NEW = ("household_id", "non_compliant", "attributes", "second_relief", "second_pool", "second_capped_by",
       "ytd_burden", "ytd_second_relief", "caps")
#: The columns migration 7 adds after them (the burden, cap limits and second annual cap a desk
#: reads positions back from and verifies with; tests/test_ledger_extended.py).
NEW7 = ("burden", "cap_limits", "second_annual_cap")
#: The columns of ``entries`` at schema 5.
V5_COLUMNS = tuple(c for c in COLUMNS if c not in NEW + NEW7)


@pytest.fixture(scope="module")
def book():
    return medaid.load_rules(ROOT / "rules")


@pytest.fixture(params=["sqlite", "postgresql"])
def v5(request, tmp_path):
    """A ledger at schema 5 holding the fixture's rows, as that code stored them, on each backend."""
    with ledger_db(request, request.param, tmp_path) as db:
        if db.backend == "sqlite":
            shutil.copyfile(V5, db.location)
        else:
            from medaid.ledger.postgres import MARKER, STEPS

            db.execute("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
                       "applied_at TEXT NOT NULL)", f"COMMENT ON TABLE schema_migrations IS '{MARKER}'")
            for m in MIGRATIONS[:5]:
                db.execute(*STEPS[m.version], ("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                                                (m.version, m.name, "2026-12-01T00:00:00+00:00")))
            con = sqlite3.connect(V5)
            rows = con.execute(f"SELECT {', '.join(V5_COLUMNS)} FROM entries ORDER BY seq").fetchall()
            con.close()
            db.execute(*[(f"INSERT INTO entries ({', '.join(V5_COLUMNS)}) VALUES "
                          f"({', '.join('?' * len(V5_COLUMNS))})", r) for r in rows])
        assert db.rows("SELECT max(version) FROM schema_migrations") == [(5,)]
        yield db


def test_migrations_6_and_7_add_the_issue_15_columns():
    assert (MIGRATIONS[5].version, MIGRATIONS[6].version, SCHEMA_VERSION) == (6, 7, 7)
    added = [s.split()[5] for s in MIGRATIONS[5].statements if s.startswith("ALTER TABLE")]
    assert tuple(added) == NEW
    assert tuple(s.split()[5] for s in MIGRATIONS[6].statements if s.startswith("ALTER TABLE")) == NEW7
    assert Entry._fields[-14:-2] == NEW + NEW7  # stored and hashed after the payee, before the chain


def test_a_schema_5_ledger_is_upgraded_and_keeps_every_row_hash(v5):
    with open_ledger(v5.location, create=False) as lg:
        assert lg.schema_version() == SCHEMA_VERSION
        v = lg.verify()
        assert v.problems == ()
        assert (v.entries, v.head_hash) == (5, V5_HEAD)
        rows = list(lg.entries())
    # the old rows have none of the new values
    assert all(getattr(e, f) is None for e in rows for f in NEW + NEW7)
    # and read back as that code settled them: C2's 150,000 stay capped at 93,700, then 100,000
    # once C1 (6,300) was reversed (an adjustment of +6,300)
    assert [(e.entry, e.claim_id, e.relief) for e in rows] == [
        ("settlement", "C1", 630_000), ("settlement", "C2", 9_370_000), ("settlement", "C3", 0),
        ("reversal", "C1", 630_000), ("adjustment", "C2", 10_000_000)]
    assert (rows[4].adjustment, rows[2].desk, rows[1].channel) == (630_000, "desk-a", "application")
    assert v5.rows("SELECT max(version) FROM schema_migrations") == [(SCHEMA_VERSION,)]


def test_a_new_row_carries_the_claims_household_non_compliant_cost_and_attributes(v5, book):
    claim = medaid.Claim.from_yuan(
        claim_id="C9", person_id="P9", date="2024-08-01", self_pay="10000", group="key", kind="inpatient",
        household_id=" H１ ", non_compliant="4,000.50", attributes={"place": "县域内", "level": "三级"})
    with open_ledger(v5.location, create=False) as lg:
        e = lg.settle(claim, book).entry
        assert (e.seq, e.prev_hash) == (6, V5_HEAD)
        # the claim's fields, tidied as the claim holds them; the second stage not computed yet
        assert (e.household_id, e.non_compliant, e.attributes) == (
            "H1", 400_050, (("level", "三级"), ("place", "县域内")))
        assert (e.second_relief, e.second_pool, e.caps) == (None, None, None)
        v = lg.verify()
        assert (v.problems, v.entries, v.head_hash) == ((), 6, e.row_hash)
        assert list(lg.entries())[-1] == e
        # settled again with the same facts: the same row; with another household: a conflict
        assert lg.settle(claim, book).entry == e
        with pytest.raises(medaid.ledger.LedgerError, match="household_id"):
            lg.settle(claim.model_copy(update={"household_id": "H2"}), book)
    stored = v5.rows("SELECT household_id, non_compliant, attributes, caps FROM entries WHERE seq = 6")
    assert stored == [("H1", 400_050, '[["level","三级"],["place","县域内"]]', None)]


def _entry(**fields) -> Entry:
    """A row with made-up values (every field its position), a date and no segments."""
    import datetime as dt

    e = Entry(*range(len(Entry._fields)))._replace(date=dt.date(2024, 1, 1), segments=(),
                                                   bank_account="6222021234561234", account_name="张三")
    return e._replace(**{**{f: None for f in NEW + NEW7}, **fields})


def test_a_new_field_is_hashed_only_when_it_holds_a_value():
    bare = _entry()
    assert row_hash(encode(bare)) != row_hash(encode(bare._replace(household_id="H1")))
    assert row_hash(encode(bare)) != row_hash(encode(bare._replace(caps=(("medical", 0),))))
    # no attributes and no cap pools are stored NULL: hashed as a row written before the
    # columns existed (their NULLs left out)
    assert encode(bare._replace(attributes=(), caps=())) == encode(bare)
    # the hash of such a row is that of its schema-5 columns alone (row_hash left out)
    old = [v for f, v in zip(Entry._fields, encode(bare)) if f not in NEW + NEW7 and f != "row_hash"]
    text = json.dumps(old, ensure_ascii=False, separators=(",", ":"))
    assert row_hash(encode(bare)) == hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_an_entry_gives_its_new_fields_to_a_client_and_reads_them_back():
    e = _entry(household_id="H1", non_compliant=123_456, attributes=(("level", "三级"),),
               second_relief=85_000, second_pool="burden", second_capped_by=None, ytd_burden=670_000,
               ytd_second_relief=85_000, caps=(("household", 370_000), ("medical", 0)))
    d = e.to_dict()
    assert (d["household_id"], d["non_compliant"], d["attributes"]) == ("H1", "1234.56", {"level": "三级"})
    assert (d["second_relief"], d["ytd_burden"], d["caps"]) == ("850.00", "6700.00",
                                                                {"household": "3700.00", "medical": "0.00"})
    assert Entry.from_dict(d) == e._replace(bank_account="6222********1234", account_name="张*")  # (masked)

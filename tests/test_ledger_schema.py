"""The ledger's row model (medaid.ledger.schema): rows are stored, hashed and read by field name,
and a ledger written before the model existed still verifies, row hash for row hash."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

import medaid
from medaid.ledger import Ledger
from medaid.ledger.schema import COLUMNS, MIGRATIONS, SCHEMA_VERSION, Entry, Migration, decode, encode, row_hash

ROOT = Path(__file__).resolve().parents[1]
#: Written by tests/data/make_ledger_v1.py with the code of f1c5c78 (33-item positional rows).
V1 = ROOT / "tests" / "data" / "ledger-v1.sqlite3"
#: Its head hash, as that code reported it (Ledger.verify().head_hash) when it wrote the file.
V1_HEAD = "4b44d60c62229a090ddcd65e1d3baa0cd56ae5a06da43dd496d09ee6c13875e9"


@pytest.fixture
def v1(tmp_path):
    path = tmp_path / "desk.sqlite3"
    shutil.copyfile(V1, path)
    return path


def test_a_ledger_written_before_the_row_model_verifies_with_its_head_hash(v1):
    with Ledger(v1, create=False) as lg:
        v = lg.verify()
        assert v.problems == ()
        assert (v.entries, v.head_hash) == (6, V1_HEAD)
        # written at schema 1; opening it applied the later steps (the desk column, tokens)
        assert lg.schema_version() == SCHEMA_VERSION
    con = sqlite3.connect(v1)
    assert con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()[0] == (1,)
    con.close()


def test_every_stored_row_hash_is_recomputed_from_its_named_fields(v1):
    Ledger(v1, create=False).close()  # migrated: the rows of schema 1 gain an empty desk column
    con = sqlite3.connect(v1)
    rows = con.execute(f"SELECT {', '.join(COLUMNS)} FROM entries ORDER BY seq").fetchall()
    con.close()
    assert len(rows) == 6
    for values in rows:
        assert row_hash(values) == values[COLUMNS.index("row_hash")]
        assert encode(decode(values)) == values  # read and stored again: the same bytes


def test_the_old_rows_read_back_as_the_desk_settled_them(v1):
    with Ledger(v1, create=False) as lg:
        rows = list(lg.entries())
        # C1: 30,000 yuan key-group stay is relieved 23,300 (docs/calculation.md worked example)
        c1 = rows[0]
        assert (c1.claim_id, c1.self_pay, c1.relief, c1.hospital, c1.total_cost) == (
            "C1", 3_000_000, 2_330_000, "县人民医院", 5_200_000)
        # row 4 reverses row 2 (C2), taking its relief back out of P1's pool
        rev = rows[3]
        assert (rev.entry, rev.claim_id, rev.reverses, rev.reason) == ("reversal", "C2", 2, "wrong self-pay entered")
        assert rev.ytd_relief == rows[1].ytd_relief - rows[1].relief == c1.relief
        # C4 fills the annual cap: 100,000 yuan of relief in the year, no more
        assert (rows[5].capped_by, rows[5].ytd_relief) == ("annual_cap", 10_000_000)
        assert lg.ytd("P1", 2024, c1.pool).relief == 10_000_000


def test_a_settlement_added_by_the_new_code_chains_from_the_old_head(v1):
    book = medaid.load_rules(ROOT / "rules")
    with Ledger(v1, create=False) as lg:
        e = lg.settle(medaid.Claim.from_yuan(claim_id="C5", person_id="P3", date="2024-10-01",
                                             self_pay="30000", group="key", kind="inpatient"), book).entry
        assert (e.seq, e.prev_hash, e.relief) == (7, V1_HEAD, 2_330_000)
        v = lg.verify()
        assert (v.problems, v.entries, v.head_hash) == ((), 7, e.row_hash)


def test_the_columns_are_the_entry_fields_in_order():
    assert COLUMNS == tuple("grp" if f == "group" else f for f in Entry._fields)
    assert COLUMNS[-2:] == ("prev_hash", "row_hash")  # the hash covers everything before row_hash


def test_migrations_are_named_and_numbered_in_order():
    assert all(isinstance(m, Migration) and m.name for m in MIGRATIONS)
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert SCHEMA_VERSION == MIGRATIONS[-1].version

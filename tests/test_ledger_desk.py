"""The ledger row's ``desk`` (the service token that wrote it; migration 2): hashed when it holds
a value, left out of the hash when it is NULL, so that rows written before the column existed
keep their hashes and a row that names its desk cannot lose or change that name unseen.  And
:meth:`Entry.from_dict`, the inverse of :meth:`Entry.to_dict` a service client reads rows with."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

import medaid
from medaid.ledger import Ledger
from medaid.ledger.schema import COLUMNS, MIGRATIONS, Entry, encode, row_hash

ROOT = Path(__file__).resolve().parents[1]
V1 = ROOT / "tests" / "data" / "ledger-v1.sqlite3"


@pytest.fixture(scope="module")
def book():
    return medaid.load_rules(ROOT / "rules")


def _claim(cid: str, amount: str = "30000") -> medaid.Claim:
    return medaid.Claim.from_yuan(claim_id=cid, person_id="P1", date="2024-05-03", self_pay=amount,
                                  group="key", kind="inpatient")


def test_the_migrations_add_the_desk_column_and_the_service_tables_in_plain_sql():
    names = [m.name for m in MIGRATIONS]
    assert names[1].startswith("entries.desk") and names[2].startswith("tokens")
    for step in MIGRATIONS[1:]:
        for sql in step.statements:  # portable: nothing SQLite-only
            assert not any(w in sql.upper() for w in ("AUTOINCREMENT", "PRAGMA", "WITHOUT ROWID", "RAISE(")), sql


def test_a_row_without_a_desk_hashes_as_before_and_one_with_a_desk_includes_it(tmp_path, book):
    with Ledger(tmp_path / "l.sqlite3") as lg:
        plain = lg.settle(_claim("C1"), book).entry
        desk = lg.settle(_claim("C2"), book, desk="t0123456789").entry
    assert plain.desk is None and desk.desk == "t0123456789"
    v = encode(plain)
    # the hash of a desk-less row is the first release's: the 33 values without the desk (nor
    # the columns added after it, empty on a settlement)
    old = [x for f, x in zip(Entry._fields, v, strict=True) if f not in (
        "desk", "adjusts", "reversal", "adjustment", "channel", "bank_account", "account_name",
        # migration 6
        "household_id", "non_compliant", "attributes", "second_relief", "second_pool", "second_capped_by",
        "ytd_burden", "ytd_second_relief", "caps",
        # migration 7
        "burden", "cap_limits", "second_annual_cap", "row_hash")]
    assert plain.row_hash == hashlib.sha256(json.dumps(old, ensure_ascii=False, separators=(",", ":"))
                                            .encode()).hexdigest()
    assert desk.row_hash == row_hash(encode(desk)) != row_hash(encode(desk._replace(desk=None)))


def test_verify_finds_a_desk_removed_or_changed(tmp_path, book):
    path = tmp_path / "l.sqlite3"
    with Ledger(path) as lg:
        lg.settle(_claim("C1"), book, desk="t0123456789")
    for forged in (None, "tAAAAAAAAAA"):
        copy = tmp_path / f"copy-{forged}.sqlite3"
        shutil.copyfile(path, copy)
        con = sqlite3.connect(copy, isolation_level=None)
        con.execute("DROP TRIGGER entries_never_updated")
        con.execute("UPDATE entries SET desk = ? WHERE seq = 1", (forged,))
        con.close()
        with Ledger(copy) as lg:
            assert any("row_hash does not match" in p for p in lg.verify().problems), forged


def test_a_reversal_records_the_desk_that_reversed_and_a_check_can_refuse_it(tmp_path, book):
    with Ledger(tmp_path / "l.sqlite3") as lg:
        lg.settle(_claim("C1"), book, desk="tAAAAAAAAAA")

        class NotYours(Exception):
            pass

        def refuse(settlement: Entry) -> None:
            assert settlement.claim_id == "C1" and settlement.desk == "tAAAAAAAAAA"
            raise NotYours

        with pytest.raises(NotYours):
            lg.reverse("C1", "typo", desk="tBBBBBBBBBB", check=refuse)
        assert [e.entry for e in lg.entries()] == ["settlement"]  # nothing written
        r = lg.reverse("C1", "typo", desk="tBBBBBBBBBB", check=lambda e: None)
        assert (r.desk, r.reverses) == ("tBBBBBBBBBB", 1)
        assert lg.verify().problems == ()


def test_an_old_ledger_is_migrated_and_its_rows_keep_their_hashes(tmp_path, book):
    path = tmp_path / "v1.sqlite3"
    shutil.copyfile(V1, path)
    with Ledger(path) as lg:
        assert lg.schema_version() == MIGRATIONS[-1].version
        assert all(e.desk is None for e in lg.entries())
        e = lg.settle(_claim("C9", "100"), book, desk="t0123456789").entry
        assert lg.verify().problems == () and e.desk == "t0123456789"
    con = sqlite3.connect(path)
    # the desk column after the first release's, then the adjustments' (migration 4), then the
    # channel and payee (migration 5), then the claim's household, non-compliant cost and
    # attributes and the second stage's and cap pools' results (migration 6), then the burden,
    # cap limits and second annual cap (migration 7)
    assert [c[1] for c in con.execute("PRAGMA table_info(entries)")][-19:] == [
        "desk", "adjusts", "reversal", "adjustment", "channel", "bank_account", "account_name",
        "household_id", "non_compliant", "attributes", "second_relief", "second_pool", "second_capped_by",
        "ytd_burden", "ytd_second_relief", "caps", "burden", "cap_limits", "second_annual_cap"]
    assert set(COLUMNS) == {c[1] for c in con.execute("PRAGMA table_info(entries)")}
    con.close()


def test_from_dict_reads_back_what_to_dict_gave(tmp_path, book):
    with Ledger(tmp_path / "l.sqlite3") as lg:
        lg.settle(_claim("C1", "12345.67"), book, desk="t0123456789")  # a segment of 1,993.8195
        lg.reverse("C1", "typo")
        for e in lg.entries():
            d = e.to_dict()
            back = Entry.from_dict({**d, "basis": "ignored"})
            assert back.to_dict() == d
            assert (back.self_pay, back.date, back.desk) == (e.self_pay, e.date, e.desk)

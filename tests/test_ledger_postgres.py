"""The ledger on PostgreSQL where it differs from the file, rows hashed alike on both backends,
``medaid ledger migrate`` and ``medaid ledger copy`` (docs/desk.md, *The ledger on PostgreSQL*).

The ledger tests (tests/test_ledger*.py) run on both backends through the ``db`` fixture
(tests/conftest.py); this file holds what only makes sense with a URL, or across two ledgers.
Figures from the bundled rules: a 30,000 stay is relieved 23,300, a 100,000 stay 87,800
(annual cap 100,000, so 12,200 is left after it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import medaid
from extended_books import HOUSEHOLD, NON_COMPLIANT, SECOND, book as xbook
from medaid.cli import main
from medaid.ledger import LedgerError, open_ledger
from medaid.ledger.copy import copy_ledger
from medaid.ledger.schema import MIGRATIONS

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
V1 = ROOT / "tests" / "data" / "ledger-v1.sqlite3"
V1_HEAD = "4b44d60c62229a090ddcd65e1d3baa0cd56ae5a06da43dd496d09ee6c13875e9"


@pytest.fixture(scope="module")
def book():
    return medaid.load_rules(RULES)


def claim(cid, amount, *, person="P1", day="2024-05-03", hospital=None):
    return medaid.Claim.from_yuan(claim_id=cid, person_id=person, date=day, self_pay=amount,
                                  group="key", kind="inpatient", hospital=hospital)


@pytest.fixture
def pg(pg_cluster):
    """A fresh PostgreSQL schema's URL (and a way to make more)."""
    made: list[str] = []

    def new() -> str:
        schema = f"pgt{len(made)}_{id(made) % 100000}"
        pg_cluster.sql(f"CREATE SCHEMA {schema}")
        made.append(schema)
        return pg_cluster.url(schema=schema)

    new.url = new()  # type: ignore[attr-defined]
    yield new
    for schema in made:
        pg_cluster.sql(f"DROP SCHEMA {schema} CASCADE")


def _run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env={"MEDAID_RULES": str(RULES), "MEDAID_LANG": "en", **(env or {})})


# -- the schema -----------------------------------------------------------------------------


def test_every_migration_has_its_postgresql_statements():
    from medaid.ledger.postgres import STEPS

    assert sorted(STEPS) == [m.version for m in MIGRATIONS]
    assert all(STEPS[m.version] for m in MIGRATIONS)


def test_a_row_has_the_same_hash_whichever_backend_wrote_it(tmp_path, pg, book, monkeypatch):
    """PostgreSQL numbers, times and hashes a row itself (docs/desk.md); the file, told the same
    times, writes the same rows, hash for hash."""
    import medaid.ledger.backend as backend

    written = []
    for where in (pg.url, str(tmp_path / "desk.sqlite3")):
        if written:  # the file's clock reads the times the database recorded
            monkeypatch.setattr(backend, "now_text", iter([e.recorded_at for e in written[0][0]]).__next__)
        with open_ledger(where) as lg:
            lg.settle(claim("C1", "100000", hospital="县人民医院"), book)
            lg.settle(claim("C2", "30000", day="2024-06-01"), book, desk="t0a1b2c3d4e")  # a service desk
            lg.reverse("C1", "录入错误")
            written.append((list(lg.entries()), lg.verify()))
    (rows_pg, v_pg), (rows_file, v_file) = written
    assert rows_file == rows_pg and len(rows_pg) == 3
    assert [e.desk for e in rows_pg] == [None, "t0a1b2c3d4e", None]
    assert v_file == v_pg and v_pg.ok


def test_a_database_without_a_ledger_is_not_given_one_by_readers(pg):
    import psycopg

    with pytest.raises(LedgerError, match="no ledger here"):
        open_ledger(pg.url, create=False)
    r = _run("history", "P1", env={"MEDAID_LEDGER": pg.url})
    assert r.exit_code == 1 and "no ledger here" in r.output
    with psycopg.connect(pg.url, autocommit=True) as con:
        assert con.execute("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()").fetchone() == (0,)
    with open_ledger(pg.url) as lg:  # a writer creates it
        assert lg.schema_version() == MIGRATIONS[-1].version


def test_another_applications_schema_migrations_table_is_refused_and_left_alone(pg):
    import psycopg

    with psycopg.connect(pg.url, autocommit=True) as con:
        con.execute("CREATE TABLE schema_migrations (version TEXT PRIMARY KEY)")
        con.execute("INSERT INTO schema_migrations VALUES ('20240101120000')")
    with pytest.raises(LedgerError, match="not a medaid ledger"):
        open_ledger(pg.url)
    with psycopg.connect(pg.url, autocommit=True) as con:
        assert con.execute("SELECT version FROM schema_migrations").fetchall() == [("20240101120000",)]
        assert con.execute("SELECT to_regclass('entries')").fetchone() == (None,)


def test_truncate_is_refused_and_a_disabled_trigger_is_reported(pg, book):
    import psycopg

    with open_ledger(pg.url) as lg:
        lg.settle(claim("C1", "30000"), book)
    with psycopg.connect(pg.url, autocommit=True) as con:
        with pytest.raises(psycopg.errors.RaiseException, match="never truncated"):
            con.execute("TRUNCATE entries")
        con.execute("ALTER TABLE entries DISABLE TRIGGER entries_never_updated")
    with open_ledger(pg.url) as lg:
        assert lg.verify().problems == (
            "the trigger entries_never_updated that keeps rows append-only is disabled",)


def test_an_unreachable_database_is_a_refusal_not_a_traceback(tmp_path):
    url = f"postgresql://nobody:secret@/medaid?host={tmp_path}"  # no server listens there
    with pytest.raises(LedgerError, match="cannot reach"):
        open_ledger(url, busy_timeout=1)
    r = _run("ledger", "verify", "--ledger", url)
    assert r.exit_code == 1 and "cannot reach" in r.output
    assert "Traceback" not in r.output and "secret" not in r.output


# -- the desk commands with a URL --------------------------------------------------------------


def test_the_desk_commands_take_a_url(pg):
    env = {"MEDAID_LEDGER": pg.url}
    r = _run("ledger", "migrate", env=env)
    assert r.exit_code == 0, r.output
    assert f"schema {MIGRATIONS[-1].version}" in r.output and all(m.name in r.output for m in MIGRATIONS)
    r = _run("settle", "--person", "P1", "--self-pay", "30000", "--date", "2024-05-03", "--claim-id", "C1",
             "--group", "key", "--kind", "inpatient", env=env)
    assert r.exit_code == 0 and "23,300.00" in r.output, r.output
    r = _run("quote", "--person", "P1", "--self-pay", "100000", "--date", "2024-06-03",
             "--group", "key", "--kind", "inpatient", env=env)
    assert r.exit_code == 0 and "76,700.00" in r.output, r.output  # 100,000 − 23,300 left of the cap
    assert _run("reverse", "C1", "--reason", "typo", env=env).exit_code == 0
    r = _run("history", "P1", "--json", env=env)
    assert r.exit_code == 0 and r.output.count('"claim_id": "C1"') == 2
    r = _run("ledger", "verify", env=env)
    assert r.exit_code == 0 and "2" in r.output, r.output


# -- ledger copy ---------------------------------------------------------------------------------


def test_a_desk_file_is_copied_row_for_row_then_only_its_new_rows(tmp_path, pg, book):
    desk = tmp_path / "desk.sqlite3"
    shutil.copyfile(V1, desk)
    with open_ledger(desk, create=False) as src, open_ledger(pg.url) as dst:
        first = copy_ledger(src, dst)
        assert (first.copied, first.present, first.rechained) == (6, 0, 0)
        assert (first.entries, first.head_hash) == (6, V1_HEAD)  # the same chain, hash for hash
        assert list(dst.entries()) == list(src.entries())
        again = copy_ledger(src, dst)
        assert (again.copied, again.present, again.head_hash) == (0, 6, V1_HEAD)
        new = src.settle(claim("C5", "30000", person="P3", day="2024-10-01"), book).entry
        later = copy_ledger(src, dst)
        assert (later.copied, later.present, later.rechained, later.head_hash) == (1, 6, 0, new.row_hash)
        # and the other way round: the database back into a new file, the same chain
        back = copy_ledger(dst, open_ledger(tmp_path / "back.sqlite3"))
        assert (back.copied, back.head_hash) == (7, new.row_hash)


def _desk(path: Path, book, *claims) -> Path:
    with open_ledger(path) as lg:
        for c in claims:
            lg.settle(c, book)
    return path


def test_a_second_desk_is_appended_after_the_first_with_its_positions_counted_together(tmp_path, pg, book):
    a = _desk(tmp_path / "a.sqlite3", book, claim("A1", "30000", hospital="H1"), claim("A2", "30000", person="P2"))
    b = _desk(tmp_path / "b.sqlite3", book, claim("B1", "30000", hospital="H2"))
    with open_ledger(a, create=False) as src, open_ledger(pg.url) as dst:
        copy_ledger(src, dst)
    with open_ledger(b, create=False) as src, open_ledger(pg.url) as dst:
        done = copy_ledger(src, dst)
        assert (done.copied, done.rechained, done.entries) == (1, 1, 3)
        b1 = dst.history("P1")[-1]
        # kept its result and time; P1's pool at the county now holds both stays
        assert (b1.claim_id, b1.seq, b1.relief, b1.ytd_relief) == ("B1", 3, 2_330_000, 4_660_000)
        assert dst.verify().ok
        assert copy_ledger(src, dst).copied == 0  # idempotent


def test_conflicting_claim_ids_are_refused_by_name_and_nothing_is_copied(tmp_path, pg, book):
    a = _desk(tmp_path / "a.sqlite3", book, claim("C1", "30000", hospital="H1"), claim("C2", "1000"))
    b = _desk(tmp_path / "b.sqlite3", book, claim("C1", "30000", hospital="H2"), claim("C2", "1000", person="P2"),
              claim("C3", "5000", person="P3"))
    env = {"MEDAID_LANG": "en"}
    assert _run("ledger", "copy", str(a), pg.url, env=env).exit_code == 0
    r = _run("ledger", "copy", str(b), pg.url, env=env)
    assert r.exit_code == 1 and "C1, C2" in r.output and "nothing was copied" in r.output, r.output
    with open_ledger(pg.url) as dst:
        assert [e.claim_id for e in dst.entries()] == ["C1", "C2"]


def test_a_copy_that_would_pay_one_person_past_a_cap_is_refused(tmp_path, pg, book):
    # two hospitals each paid P1 87,800 against one 100,000 cap
    a = _desk(tmp_path / "a.sqlite3", book, claim("A1", "100000"))
    b = _desk(tmp_path / "b.sqlite3", book, claim("B0", "5000", person="P2"), claim("B1", "100000"))
    with open_ledger(a, create=False) as src, open_ledger(pg.url) as dst:
        copy_ledger(src, dst)
    with open_ledger(b, create=False) as src, open_ledger(pg.url) as dst:
        with pytest.raises(LedgerError, match="past a cap") as info:
            copy_ledger(src, dst)
        assert "B1" in str(info.value) and "B0" not in str(info.value)
        assert [e.claim_id for e in dst.entries()] == ["A1"]


def test_a_source_that_does_not_verify_is_refused(tmp_path, pg, book):
    import sqlite3

    a = _desk(tmp_path / "a.sqlite3", book, claim("A1", "30000"))
    con = sqlite3.connect(a, isolation_level=None)
    con.execute("DROP TRIGGER entries_never_updated")
    con.execute("UPDATE entries SET relief = relief + 1")
    con.close()
    r = _run("ledger", "copy", str(a), pg.url)
    assert r.exit_code == 1 and "source ledger does not verify" in r.output, r.output
    with open_ledger(pg.url) as dst:
        assert dst.verify().entries == 0
    # nor is a destination file made for a copy that is refused
    r = _run("ledger", "copy", str(a), str(tmp_path / "new.sqlite3"))
    assert r.exit_code == 1 and "source ledger does not verify" in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("new")) == []


# Two desks' rows of one person under the rules of docs/calculation.md *Rules real schemes need*
# (tests/extended_books.py), copied into one destination on either backend (``db``).


def _xclaim(cid, person, amount, day, **kw):
    return medaid.Claim.from_yuan(claim_id=cid, person_id=person, date=day, self_pay=amount, group="key",
                                  kind="inpatient", **kw)


def test_a_second_pool_of_two_desks_records_the_merged_ledgers_burden(tmp_path, db):
    b = xbook(SECOND)  # 50% of the year's burden above 5,000 (pool burden, year mode)
    with open_ledger(tmp_path / "a.sqlite3") as a:
        a.settle(_xclaim("A1", "P", "30000", "2024-03-01"), b)  # first 23,300, burden 6,700, second 850
    with open_ledger(tmp_path / "b.sqlite3") as x:
        x.settle(_xclaim("B1", "P", "10000", "2024-04-01"), b)  # first 6,300, burden 3,700: below 5,000, 0
        x.settle(_xclaim("B2", "P", "2000", "2024-04-02"), b)   # first 700, burden 1,300 (B 5,000): 0
        x.reverse("B2", "duplicate", book=b)
    with open_ledger(db.location) as dst:
        for desk in ("a", "b"):
            with open_ledger(tmp_path / f"{desk}.sqlite3", create=False) as src:
                copy_ledger(src, dst)
        assert dst.verify().problems == ()
        rows = [(e.claim_id, e.entry, e.relief, e.ytd_burden, e.ytd_second_relief) for e in dst.entries()]
        # B1 keeps its result (6,300, no second relief) but the burden is the merged one:
        # 6,700 + 3,700 = 10,400, second relief 850 so far; B2 adds 1,300 (11,700), its reversal
        # takes it out again (10,400)
        assert rows == [("A1", "settlement", 2_415_000, 670_000, 85_000),
                        ("B1", "settlement", 630_000, 1_040_000, 85_000),
                        ("B2", "settlement", 70_000, 1_170_000, 85_000),
                        ("B2", "reversal", 70_000, 1_040_000, 85_000)]
        # the next stay at the county: burden 3,700, B = 14,100:
        # (14,100 − 5,000) × 50% − (10,400 − 5,000) × 50% = 4,550 − 2,700 = 1,850
        c = dst.settle(_xclaim("C1", "P", "10000", "2024-05-01"), b).entry
        assert (c.relief, c.second_relief, c.ytd_burden, c.ytd_second_relief) == (
            815_000, 185_000, 1_410_000, 270_000)
        assert dst.verify().problems == ()
        with open_ledger(tmp_path / "b.sqlite3", create=False) as src:
            assert copy_ledger(src, dst).copied == 0  # idempotent


def _refused_after_a(tmp_path, dst) -> str:
    """Copy desk a's file into ``dst``, then desk b's, which must be refused on a cap: the message."""
    with open_ledger(tmp_path / "a.sqlite3", create=False) as src:
        copy_ledger(src, dst)
    with open_ledger(tmp_path / "b.sqlite3", create=False) as src:
        with pytest.raises(LedgerError, match="past a cap") as info:
            copy_ledger(src, dst)
    return str(info.value)


def test_a_copy_past_a_household_cap_pool_is_refused_naming_the_claim(tmp_path, db):
    h = xbook(HOUSEHOLD)  # claim mode, shipped brackets, household cap pool of 10,000 a year
    with open_ledger(tmp_path / "a.sqlite3") as a:
        a.settle(_xclaim("C1", "M", "10000", "2024-03-01", household_id="H1"), h)  # 6,300
    with open_ledger(tmp_path / "b.sqlite3") as x:
        x.settle(_xclaim("C2", "S", "10000", "2024-03-01", household_id="H1"), h)  # 6,300 at its own desk
    with open_ledger(db.location) as dst:
        msg = _refused_after_a(tmp_path, dst)  # 6,300 + 6,300 = 12,600 would pass the household's 10,000
        assert "C2 (relief 6300.00 taken in cap pool household" in msg, msg
        assert "H1" not in msg and "(S" not in msg, msg  # no person or household id in a message
        assert "nothing was copied" in msg
        assert [e.claim_id for e in dst.entries()] == ["C1"] and dst.verify().problems == ()
        # the household still has 3,700 of room: M's next stay of 2,000 gets (2,000 − 1,000) × 70%
        assert dst.settle(_xclaim("C3", "M", "2000", "2024-05-01", household_id="H1"), h).entry.relief == 70_000


def test_a_copy_past_the_second_stages_annual_cap_is_refused(tmp_path, db):
    b = xbook(NON_COMPLIANT)  # SECOND counting non-compliant costs; second-stage annual cap 20,000
    with open_ledger(tmp_path / "a.sqlite3") as a:
        # first min(106,800, annual cap 100,000) = 100,000; burden 20,000 + 40,000 = 60,000:
        # (60,000 − 5,000) × 50% = 27,500, cut to 20,000 (the annual cap, and what is still owed)
        e = a.settle(_xclaim("A1", "P", "120000", "2024-03-01", non_compliant="40000"), b).entry
        assert (e.relief, e.second_relief, e.ytd_second_relief) == (12_000_000, 2_000_000, 2_000_000)
    with open_ledger(tmp_path / "b.sqlite3") as x:
        # below the first threshold: first 0; burden 1,000 + 10,000 = 11,000: 3,000, cut to 1,000 owed
        e = x.settle(_xclaim("B1", "P", "1000", "2024-04-01", non_compliant="10000"), b).entry
        assert (e.relief, e.second_relief) == (100_000, 100_000)
    with open_ledger(db.location) as dst:
        msg = _refused_after_a(tmp_path, dst)
        assert ("B1 (second relief 1000.00 takes the second pool's year-to-date relief from 20000.00 past its "
                "annual cap (20000.00))") in msg, msg
        assert "(P" not in msg, msg  # no person id in a message
        assert [e.claim_id for e in dst.entries()] == ["A1"] and dst.verify().problems == ()


def test_a_desk_role_that_may_only_select_and_insert_settles_and_cannot_alter(pg_cluster, book):
    """The roles docs/desk.md recommends: the owner migrates; the desks' role may read and
    append, and can neither change a row (the triggers, and no UPDATE grant) nor drop a trigger."""
    import psycopg

    pg_cluster.sql("CREATE ROLE t_owner LOGIN", "CREATE ROLE t_desk LOGIN",
                   "CREATE DATABASE t_roles OWNER t_owner ENCODING 'UTF8' TEMPLATE template0")
    try:
        owner = pg_cluster.url("t_roles").replace("postgres@", "t_owner@")
        desk = pg_cluster.url("t_roles").replace("postgres@", "t_desk@")
        assert _run("ledger", "migrate", "--ledger", owner).exit_code == 0
        with psycopg.connect(owner, autocommit=True) as con:
            con.execute("GRANT SELECT, INSERT ON entries TO t_desk")
            con.execute("GRANT SELECT ON schema_migrations TO t_desk")
        with open_ledger(desk) as lg:
            assert lg.settle(claim("C1", "30000"), book).entry.relief == 2_330_000
            assert lg.verify().ok
        with psycopg.connect(desk, autocommit=True) as con:
            for sql in ("UPDATE entries SET relief = 0", "DELETE FROM entries",
                        "DROP TRIGGER entries_never_updated ON entries"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    con.execute(sql)
    finally:
        pg_cluster.sql("DROP DATABASE t_roles", "DROP ROLE t_owner", "DROP ROLE t_desk")


def test_the_report_reads_a_ledger_in_the_database(pg, book):
    pytest.importorskip("polars")
    with open_ledger(pg.url) as lg:
        lg.settle(claim("C1", "30000"), book)
        lg.settle(claim("C2", "100000", person="P2"), book)
    r = _run("report", "--ledger", pg.url, "--json")
    assert r.exit_code == 0, r.output
    figures = {f["key"]: f["value"] for f in json.loads(r.output)["figures"]}
    assert (figures["claims"], figures["self_pay_total"]) == (2, "130000.00")


def test_a_ledger_urls_password_is_shown_by_no_command(pg, book, tmp_path):
    pytest.importorskip("polars")
    # the throwaway cluster trusts its socket, so the password is accepted and ignored
    url = pg.url.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
    shown = url.replace(":s3cret@", ":***@")
    with open_ledger(url) as lg:
        lg.settle(claim("C1", "30000"), book)
    outputs = {}
    for name, args in {
        "report": ("report", "--ledger", url),
        "report --json": ("report", "--ledger", url, "--json"),
        "report --html": ("report", "--ledger", url, "--html", str(tmp_path / "report.html")),
        "verify": ("ledger", "verify", "--ledger", url),
        "migrate": ("ledger", "migrate", "--ledger", url),
        "copy": ("ledger", "copy", url, str(tmp_path / "desk.sqlite3")),
        "refused": ("reverse", "NOPE", "--reason", "x", "--ledger", url),
    }.items():
        r = _run(*args)
        assert r.exit_code == (1 if name == "refused" else 0), (name, r.output)
        outputs[name] = r.output
    outputs["html"] = (tmp_path / "report.html").read_text(encoding="utf-8")
    for name, text in outputs.items():
        assert "s3cret" not in text, name
    for name in ("report", "report --json", "verify", "migrate", "copy"):
        assert shown in outputs[name].replace("\\/", "/"), name

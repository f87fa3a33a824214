"""The ledger checks the rows it uses before using them (README.md#reliability; issue #11, defect 7).

A 100,000 yuan stay is relieved (10,000 − 1,000) × 70% + (50,000 − 10,000) × 85% +
(100,000 − 50,000) × 95% = 6,300 + 34,000 + 47,500 = 87,800.00, which leaves 12,200.00 of the
100,000 annual cap for the person's next stay.  When a byte of that first row is altered (its
relief read 87,800.16) the next settlement would get 12,199.84: so a settlement, a quote, a
reversal and a history that read an altered row refuse, naming the row, and record nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import medaid
from medaid.cli import main
from medaid.ledger import open_ledger
from medaid.ledger.ledger import LedgerError
from medaid.ledger.schema import COLUMNS, row_hash

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
KEY = ["--group", "key", "--kind", "inpatient"]


@pytest.fixture(scope="module")
def book():
    return medaid.load_rules(RULES)


def claim(cid, amount, *, person="P1", day="2024-05-03"):
    return medaid.Claim.from_yuan(claim_id=cid, person_id=person, date=day, self_pay=amount,
                                  group="key", kind="inpatient")


def _rows(db) -> int:
    return db.count()


def _alter(db, sql: str, params: tuple = ()) -> None:
    """Change the ledger behind its back (as a flipped byte or a hand edit would), the
    append-only triggers put back afterwards so that only the row differs."""
    db.alter((sql, params))


@pytest.fixture
def damaged(db, book):
    """P1's 100,000 stay (row 1, 87,800.00) then P2's 30,000 stay (row 2); row 1's relief then
    altered by 16 fen."""
    path = db
    with open_ledger(db.location) as lg:
        assert lg.settle(claim("C1", "100000"), book).entry.relief == 8_780_000
        lg.settle(claim("C2", "30000", person="P2"), book)
    _alter(path, "UPDATE entries SET relief = relief + 16 WHERE seq = 1")
    return path


def test_an_intact_ledger_leaves_12200_of_the_cap_after_a_100000_stay(db, book):
    with open_ledger(db.location) as lg:
        lg.settle(claim("C1", "100000"), book)
        # 100,000 − 87,800 = 12,200.00 left, all of it given to a 30,000 stay (worth 23,300)
        assert lg.settle(claim("C3", "30000"), book).entry.relief == 1_220_000


def test_a_settlement_refuses_an_altered_row_of_its_pool_and_records_nothing(damaged, book):
    with open_ledger(damaged.location) as lg:
        with pytest.raises(LedgerError) as info:
            lg.settle(claim("C3", "30000"), book)  # would be 12,199.84 from the altered row
    text = str(info.value)
    assert "row 1" in text and "hash" in text and "ledger verify" in text
    assert "P1" not in text  # no ID numbers in messages
    assert _rows(damaged) == 2


def test_a_quote_a_reversal_a_history_and_the_results_refuse_it_too(damaged, book):
    with open_ledger(damaged.location) as lg:
        with pytest.raises(LedgerError, match="row 1"):
            lg.quote(claim("C3", "30000"), book)
        with pytest.raises(LedgerError, match="row 1"):
            lg.history("P1")
        with pytest.raises(LedgerError, match="row 1"):
            lg.reverse("C1", "typo")
        with pytest.raises(LedgerError, match="row 1"):
            list(lg.results_rows())
        with pytest.raises(LedgerError, match="row 1"):
            list(lg.entries())
        # another person's pool does not read row 1: P2 is served
        assert [e.claim_id for e in lg.history("P2")] == ["C2"]
        assert lg.settle(claim("C4", "30000", person="P2"), book).entry.relief == 2_330_000
    assert _rows(damaged) == 3


def test_a_row_rehashed_after_it_was_altered_is_refused_by_the_next_rows_link(db, book):
    path = db
    with open_ledger(db.location) as lg:
        lg.settle(claim("C1", "100000"), book)
        lg.settle(claim("C2", "30000", person="P2"), book)
    row = list(db.rows(f"SELECT {', '.join(COLUMNS)} FROM entries WHERE seq = 1")[0])
    row[COLUMNS.index("relief")] = 0  # relief, and a row_hash that matches the altered content
    _alter(path, "UPDATE entries SET relief = 0, row_hash = ? WHERE seq = 1", (row_hash(row),))
    with open_ledger(db.location) as lg, pytest.raises(LedgerError, match="row 1"):
        lg.settle(claim("C3", "30000"), book)
    assert _rows(path) == 2


def test_a_row_removed_from_the_middle_of_a_pool_is_refused(db, book):
    path = db
    with open_ledger(db.location) as lg:
        for i in range(3):  # 23,300 each: recorded year-to-date 23,300, 46,600, 69,900
            lg.settle(claim(f"C{i}", "30000"), book)
    _alter(path, "DELETE FROM entries WHERE seq = 2")
    with open_ledger(db.location) as lg, pytest.raises(LedgerError) as info:
        lg.settle(claim("C9", "30000"), book)  # row 3 says 69,900 where rows 1 and 3 sum 46,600
    assert "row 3" in str(info.value) and "year-to-date" in str(info.value)
    assert _rows(path) == 2


@pytest.fixture
def run(damaged):
    runner = CliRunner()

    def invoke(*args: str):
        env = {"MEDAID_RULES": str(RULES), "MEDAID_LEDGER": str(damaged), "MEDAID_LANG": "en"}
        return runner.invoke(main, list(args), env=env)

    return invoke


@pytest.mark.parametrize("args", [
    ["settle", "--person", "P1", "--self-pay", "30000", "--date", "2024-05-03", "--claim-id", "C3", *KEY],
    ["quote", "--person", "P1", "--self-pay", "30000", "--date", "2024-05-03", *KEY],
    ["quote", "--person", "P1", "--self-pay", "30000", "--date", "2024-05-03", *KEY, "--json"],
    ["reverse", "C1", "--reason", "typo"],
    ["history", "P1"],
    ["history", "P1", "--json"],
])
def test_the_desk_commands_refuse_the_altered_row_with_a_message_not_a_traceback(run, damaged, args):
    r = run(*args)
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "row 1" in r.output and "12,199.84" not in r.output and "87,800.16" not in r.output
    assert "Traceback" not in r.output
    assert _rows(damaged) == 2


def test_history_of_an_intact_person_is_still_shown(run):
    r = run("history", "P2", "--json")
    assert r.exit_code == 0, r.output
    assert [e["claim_id"] for e in json.loads(r.output)["entries"]] == ["C2"]

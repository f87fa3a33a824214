"""A reversal re-settles the claims of its pool settled after it and records each change of relief
as an adjustment (docs/calculation.md#reversals-re-settle-the-claims-after-them), on both backends.

Hand-worked figures come from rules/chongqing-county-2019.toml:

* key / inpatient (``key-inpatient``), claim mode: 70% of 1,000-10,000, 85% of 10,000-50,000,
  95% above 50,000; annual cap 100,000 (pool ``inpatient``);
* key / outpatient-special, year mode: 70% of the year's self-pay above 200, claim cap 3,000,
  annual cap 10,000 (pool ``outpatient-special``).
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

import medaid
from medaid.ledger import open_ledger
from medaid.ledger.backend import live_claims
from medaid.ledger.schema import COLUMNS

RULES = Path(__file__).resolve().parents[1] / "rules"
BOOK = medaid.load_rules(RULES)
_people = itertools.count(1)


@pytest.fixture
def ledger(db):
    """A new ledger on each backend (tests/conftest.py)."""
    with open_ledger(db.location) as lg:
        yield lg


def claim(cid, amount, *, person="P1", day="2024-05-03", kind="inpatient"):
    return medaid.Claim.from_yuan(claim_id=cid, person_id=person, date=day, self_pay=amount, group="key", kind=kind)


def net_relief(lg) -> dict[str, int]:
    """Each standing claim's relief net of its adjustments, from the rows themselves: its
    settlement's relief plus the amounts of the adjustments that name it."""
    rows = list(lg.entries())
    reversed_ = {e.reverses for e in rows if e.entry == "reversal"}
    out = {e.seq: [e.claim_id, e.relief] for e in rows if e.entry == "settlement" and e.seq not in reversed_}
    for e in rows:
        if e.entry == "adjustment" and e.adjusts in out:
            out[e.adjusts][1] += e.adjustment
    return dict(v for v in out.values())


# -- the worked example --------------------------------------------------------------------


def test_reversing_r1_after_r2_was_capped_gives_r2_its_11100(ledger):
    # R1: 100,000 → 70% × 9,000 + 85% × 40,000 + 95% × 50,000 = 6,300 + 34,000 + 47,500 = 87,800
    assert ledger.settle(claim("R1", "100000"), BOOK).entry.relief == 8_780_000
    # R2: 30,000 → 6,300 + 85% × 20,000 = 23,300 by its brackets, capped at 100,000 − 87,800 = 12,200
    r2 = ledger.settle(claim("R2", "30000", day="2024-06-01"), BOOK).entry
    assert (r2.relief, r2.capped_by) == (1_220_000, "annual_cap")
    rev = ledger.reverse("R1", "entered for the wrong person", book=BOOK)
    # the reversal takes R1 out: 130,000 − 100,000 = 30,000 self-pay, 100,000 − 87,800 = 12,200 relief
    assert (rev.entry, rev.seq, rev.ytd_self_pay, rev.ytd_relief) == ("reversal", 3, 3_000_000, 1_220_000)
    [adj] = ledger.adjustments(rev)
    # R2 alone in the pool: 23,300, nothing capped; 23,300 − 12,200 = +11,100, owed to the patient
    assert (adj.entry, adj.claim_id, adj.adjusts, adj.reversal) == ("adjustment", "R2", r2.seq, rev.seq)
    assert (adj.relief, adj.adjustment, adj.capped_by, adj.patient_pays) == (2_330_000, 1_110_000, None, 670_000)
    # the pool after it: 30,000 self-pay, 12,200 + 11,100 = 23,300 relief
    assert (adj.ytd_self_pay, adj.ytd_relief) == (3_000_000, 2_330_000)
    assert ledger.ytd("P1", 2024, "inpatient") == (3_000_000, 2_330_000)
    assert [(r["claim_id"], r["relief"], r["patient_pays"], r["ytd_relief"]) for r in ledger.results_rows()] == [
        ("R2", 2_330_000, 670_000, 2_330_000)]
    assert ledger.verify().problems == ()
    # R3: 30,000 more gets 23,300 in full (23,300 + 23,300 ≤ 100,000)
    assert ledger.settle(claim("R3", "30000", day="2024-07-01"), BOOK).entry.relief == 2_330_000


def test_an_adjustment_may_take_relief_back_in_year_mode(ledger):
    def out(cid, amount, day):
        return claim(cid, amount, day=day, kind="outpatient-special")

    # O1: 1,000 of the year → 70% × (1,000 − 200) = 560
    assert ledger.settle(out("O1", "1000", "2024-03-01"), BOOK).entry.relief == 56_000
    # O2: the year at 2,000 → 70% × 1,800 − 560 = 1,260 − 560 = 700
    assert ledger.settle(out("O2", "1000", "2024-04-01"), BOOK).entry.relief == 70_000
    # O3: the year at 6,000 → 70% × 5,800 − 1,260 = 4,060 − 1,260 = 2,800
    assert ledger.settle(out("O3", "4000", "2024-05-01"), BOOK).entry.relief == 280_000
    rev = ledger.reverse("O1", "not a special-disease visit", book=BOOK)
    adj = ledger.adjustments(rev)
    # without O1: O2 is the year's first 1,000 → 560 (−140); O3 takes the year from 1,000 to
    # 5,000 → 70% × 4,800 − 560 = 3,360 − 560 = 2,800: the same relief, explained anew (the year
    # from 1,000 to 5,000, no longer 2,000 to 6,000), a row of 0.00
    assert [(a.claim_id, a.relief, a.adjustment, a.base_from, a.base_to) for a in adj] == [
        ("O2", 56_000, -14_000, 0, 100_000), ("O3", 280_000, 0, 100_000, 500_000)]
    # the pool: 6,000 − 1,000 = 5,000 self-pay; 4,060 − 560 − 140 = 3,360 relief
    assert ledger.ytd("P1", 2024, "outpatient-special") == (500_000, 336_000)
    assert net_relief(ledger) == {"O2": 56_000, "O3": 280_000}
    # reversing O2 now takes out its net 560: O3 alone is 70% × 3,800 = 2,660 (−140)
    rev2 = ledger.reverse("O2", "duplicate", book=BOOK)
    assert (rev2.relief, rev2.ytd_relief) == (56_000, 280_000)
    assert [(a.claim_id, a.adjustment) for a in ledger.adjustments(rev2)] == [("O3", -14_000)]
    assert ledger.ytd("P1", 2024, "outpatient-special") == (400_000, 266_000)
    assert ledger.verify().problems == ()


def test_a_claim_whose_relief_stays_is_explained_anew(ledger):
    def out(cid, amount, day):
        return claim(cid, amount, day=day, kind="outpatient-special")

    # O1: 1,000 of the year → 70% × (1,000 − 200) = 560
    assert ledger.settle(out("O1", "1000", "2024-03-01"), BOOK).entry.relief == 56_000
    # O2: the year at 21,000 → 70% × 20,800 − 560 = 14,560 − 560 = 14,000 by the brackets,
    # cut to the claim cap 3,000
    o2 = ledger.settle(out("O2", "20000", "2024-04-01"), BOOK).entry
    assert (o2.relief, o2.bracket_relief, o2.capped_by) == (300_000, 1_400_000, "claim_cap")
    rev = ledger.reverse("O1", "not a special-disease visit", book=BOOK)
    # without O1: the year at 20,000 → 70% × 19,800 = 13,860, still cut to 3,000: the relief
    # stays, its explanation does not (bracket relief 13,860, the year from 0 to 20,000)
    [adj] = ledger.adjustments(rev)
    assert (adj.claim_id, adj.adjusts, adj.relief, adj.adjustment, adj.bracket_relief, adj.capped_by,
            adj.base_from, adj.base_to) == ("O2", o2.seq, 300_000, 0, 1_386_000, "claim_cap", 0, 2_000_000)
    [row] = list(ledger.results_rows())
    assert (row["relief"], row["bracket_relief"], row["capped_by"], row["ytd_self_pay"], row["ytd_relief"]) == (
        300_000, 1_386_000, "claim_cap", 2_000_000, 300_000)
    assert ledger.verify().problems == ()


def test_claims_the_reversal_does_not_touch_get_no_row(ledger):
    # claim mode, far below the annual cap: each claim's result is its own
    # (70% × (5,000 − 1,000) = 2,800 each), whatever was settled before it
    ledger.settle(claim("R1", "5000"), BOOK)
    ledger.settle(claim("R2", "5000", day="2024-06-01"), BOOK)
    rev = ledger.reverse("R1", "typo", book=BOOK)
    assert ledger.adjustments(rev) == []
    assert [(r["claim_id"], r["relief"]) for r in ledger.results_rows()] == [("R2", 280_000)]


def test_without_the_rules_nothing_is_re_settled(ledger):
    ledger.settle(claim("R1", "100000"), BOOK)
    ledger.settle(claim("R2", "30000", day="2024-06-01"), BOOK)
    rev = ledger.reverse("R1", "typo")
    assert ledger.adjustments(rev) == [] and ledger.ytd("P1", 2024, "inpatient").relief == 1_220_000


def test_a_refused_re_settlement_records_nothing(ledger, tmp_path):
    ledger.settle(claim("R1", "100000"), BOOK)
    ledger.settle(claim("R2", "30000", day="2024-06-01"), BOOK)
    # rules that end before R2's date cannot re-settle it: the reversal is refused with it
    text = (RULES / "chongqing-county-2019.toml").read_text(encoding="utf-8")
    (tmp_path / "short.toml").write_text(
        text.replace("valid_from = 2019-01-01", "valid_from = 2019-01-01\nvalid_to = 2024-05-31", 1), encoding="utf-8")
    with pytest.raises(medaid.MedaidError, match="R2"):
        ledger.reverse("R1", "typo", book=medaid.load_rules(tmp_path / "short.toml"))
    assert [e.entry for e in ledger.entries()] == ["settlement", "settlement"]


def test_a_bad_adjustment_amount_is_reported_by_verify(ledger, db):
    ledger.settle(claim("R1", "100000"), BOOK)
    ledger.settle(claim("R2", "30000", day="2024-06-01"), BOOK)
    ledger.reverse("R1", "typo", book=BOOK)
    ledger.close()
    assert "adjustment" in COLUMNS
    db.alter("UPDATE entries SET adjustment = 1 WHERE entry = 'adjustment'")
    with open_ledger(db.location) as lg:
        problems = lg.verify().problems
    assert any("row 4: adjustment 0.01 is not the new relief 23300.00" in p for p in problems), problems


# -- the invariant -------------------------------------------------------------------------

KINDS = ("inpatient", "outpatient-special")
steps = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 8_000_000), st.booleans(), st.integers(0, 30)),
    min_size=1, max_size=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_every_claim_nets_to_a_settlement_of_the_year_without_the_reversed_claims(ledger, steps):
    """Settle claims in date order, reversing earlier ones now and then (by the index drawn):
    every standing claim's relief net of its adjustments equals :func:`medaid.settle` of the
    standing claims alone, and the ledger's positions and results agree."""
    person = f"H{next(_people)}"
    standing: dict[str, medaid.Claim] = {}
    for i, (kind, fen, reverse, pick) in enumerate(steps):
        c = medaid.Claim(claim_id=f"{person}-{i:02d}", person_id=person, date=f"2024-{1 + i:02d}-01",
                         self_pay=fen, group="key", kind=kind)
        ledger.settle(c, BOOK)
        standing[c.claim_id] = c
        if reverse:
            cid = sorted(standing)[pick % len(standing)]
            ledger.reverse(cid, "test", book=BOOK)
            del standing[cid]
    settled = medaid.settle(list(standing.values()), BOOK)
    expected = {r.claim_id: r.relief for r in settled}
    mine = {k: v for k, v in net_relief(ledger).items() if k.startswith(person + "-")}
    assert mine == expected
    # and each claim is explained as that settlement explains it (not as it was before)
    rows = {r["claim_id"]: (r["relief"], r["bracket_relief"], r["capped_by"], r["bracket"])
            for r in ledger.results_rows() if r["person_id"] == person}
    assert rows == {r.claim_id: (r.relief, r.bracket_relief, r.capped_by, r.bracket) for r in settled}
    current = {first.claim_id: now for first, now in live_claims(ledger.entries()) if first.person_id == person}
    assert {k: (e.base_from, e.base_to, e.segments) for k, e in current.items()} == {
        r.claim_id: (r.base_from, r.base_to, tuple(r.segments)) for r in settled}
    for pool in ("inpatient", "outpatient-special"):
        got = [r for r in medaid.settle(list(standing.values()), BOOK) if r.pool == pool]
        want = (sum(r.self_pay for r in got), sum(r.relief for r in got))
        assert tuple(ledger.ytd(person, 2024, pool)) == want
    assert ledger.verify().problems == ()


def test_an_old_file_migrates_and_keeps_its_hashes(tmp_path):
    """Migration 4 rebuilds the SQLite table with the same stored values (every row_hash holds)
    and the kinds of row include adjustments afterwards."""
    path = tmp_path / "desk.sqlite3"
    with open_ledger(path) as lg:
        lg.settle(claim("R1", "100000"), BOOK)
        lg.settle(claim("R2", "30000", day="2024-06-01"), BOOK)
        lg.reverse("R1", "typo", book=BOOK)
        assert lg.schema_version() >= 4 and lg.verify().problems == ()
    con = sqlite3.connect(path)
    sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'entries'").fetchone()[0]
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('trigger', 'index')")}
    con.close()
    assert "'adjustment'" in sql and "entries_v4" not in sql
    assert {"entries_never_updated", "entries_never_deleted", "entries_by_pool", "entries_reversed_once"} <= names

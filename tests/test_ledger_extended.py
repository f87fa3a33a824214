"""The ledger settles rule sets with cap pools, households and second stages exactly as the
engine (docs/calculation.md#rules-real-schemes-need; docs/desk.md *Households, attributes and
the second stage at the desk*), on both backends.

The worked examples of docs/calculation.md *Worked examples of these rules* are settled one by
one at the desk and checked against the hand figures there (rule files: tests/extended_books.py).
Generated sequences of settlements and reversals are checked against :func:`medaid.settle` of the
standing claims in settlement order (the engine is the ledger's reference).
"""

from __future__ import annotations

import itertools

import hypothesis.strategies as st
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

import medaid
from extended_books import COMBINED, FULL, HOUSEHOLD, HOUSEHOLD_SECOND, NON_COMPLIANT, SECOND, SHARED, book
from medaid.cli import main
from medaid.domain.engine import place
from medaid.io.results import read_results
from medaid.ledger import open_ledger
from medaid.ledger.backend import LedgerError
from test_ledger_resettle import net_relief

_ids = itertools.count(1)


@pytest.fixture
def ledger(db):
    """A new ledger on each backend (tests/conftest.py)."""
    with open_ledger(db.location) as lg:
        yield lg


def claim(cid, person, amount, day, kind="inpatient", **kw):
    return medaid.Claim.from_yuan(claim_id=cid, person_id=person, date=day, self_pay=amount, group="key",
                                  kind=kind, **kw)


def fen(yuan: str) -> int:
    return medaid.parse_yuan(yuan)


# -- household cap ------------------------------------------------------------------------

HH = book(HOUSEHOLD)


def test_a_household_shares_its_cap_and_a_reversal_gives_the_rest_back(ledger):
    # C1: M's 10,000 stay: 70% × 9,000 = 6,300, the household's room 10,000
    c1 = ledger.settle(claim("C1", "M", "10000", "2024-03-01", household_id="H1"), HH).entry
    assert (c1.relief, c1.capped_by, c1.caps, c1.cap_limits) == (
        fen("6300"), None, (("household", fen("6300")),), (("household", "household", fen("10000")),))
    # C2: S's 10,000 stay, the same day at another hospital: 6,300 by the brackets, 3,700 left
    c2 = ledger.settle(claim("C2", "S", "10000", "2024-03-01", household_id="H1", hospital="B"), HH).entry
    assert (c2.relief, c2.capped_by, c2.caps) == (fen("3700"), "cap:household", (("household", fen("3700")),))
    # C3: M again, 2,000: 700 by the brackets, nothing left
    c3 = ledger.settle(claim("C3", "M", "2000", "2024-05-01", household_id="H1"), HH).entry
    assert (c3.relief, c3.capped_by, c3.patient_pays) == (0, "cap:household", fen("2000"))
    # reversing C1 re-settles C2 (another person of the household) and C3
    rev = ledger.reverse("C1", "entered twice", book=HH)
    assert (rev.entry, rev.relief, rev.caps) == ("reversal", fen("6300"), (("household", fen("6300")),))
    adjustments = {a.claim_id: (a.adjustment, a.relief, a.capped_by) for a in ledger.adjustments(rev)}
    assert adjustments == {"C2": (fen("2600"), fen("6300"), None), "C3": (fen("700"), fen("700"), None)}
    # the household holds 6,300 + 700 = 7,000
    assert net_relief(ledger) == {"C2": fen("6300"), "C3": fen("700")}
    assert sum(r["relief"] for r in ledger.results_rows()) == fen("7000")
    assert ledger.verify().problems == ()
    # a new claim of the household sees 3,000 left: 10,000 stay → 3,000, capped
    q = ledger.quote(claim("Q", "S", "10000", "2024-06-01", household_id="H1"), HH)
    assert (q.relief, q.capped_by) == (fen("3000"), "cap:household")


def test_a_reversal_re_settles_a_member_who_has_moved_to_another_household(ledger):
    # M and S of household H1 (cap pool 10,000 a household): C1 M 6,300; C2 S 3,700 (what H1
    # had left).  S then moves to household H2: C3, S's 10,000 stay under H2, 6,300 in full.
    ledger.settle(claim("C1", "M", "10000", "2024-03-01", household_id="H1"), HH)
    ledger.settle(claim("C2", "S", "10000", "2024-03-01", household_id="H1"), HH)
    c3 = ledger.settle(claim("C3", "S", "10000", "2024-06-01", household_id="H2"), HH).entry
    assert (c3.relief, c3.caps) == (fen("6300"), (("household", fen("6300")),))
    # reversing C1 frees H1's room: C2 gets its 6,300 in full (+2,600); C3 counts in H2 and
    # keeps its 6,300.  (Before: refused, because C3 counts in a household M never belonged to.)
    rev = ledger.reverse("C1", "entered twice", book=HH)
    adjustments = {a.claim_id: (a.adjustment, a.relief) for a in ledger.adjustments(rev)}
    assert adjustments == {"C2": (fen("2600"), fen("6300"))}
    assert net_relief(ledger) == {"C2": fen("6300"), "C3": fen("6300")}
    assert ledger.verify().problems == ()
    # H2 holds C3's 6,300: a stay of its member X gets the 3,700 left
    q = ledger.quote(claim("Q", "X", "10000", "2024-07-01", household_id="H2"), HH)
    assert (q.relief, q.capped_by) == (fen("3700"), "cap:household")


def test_a_reversal_follows_households_through_every_member_who_moved(ledger):
    # M (H1) → S in H1 and later in H2 → T in H2 and later in H3: reversing M's claim reaches
    # T's claim in H3 (it reads T's position); nothing there changes, nothing is refused
    ledger.settle(claim("C1", "M", "10000", "2024-03-01", household_id="H1"), HH)
    ledger.settle(claim("C2", "S", "10000", "2024-03-02", household_id="H1"), HH)  # 3,700
    ledger.settle(claim("C3", "S", "2000", "2024-04-01", household_id="H2"), HH)  # 700
    ledger.settle(claim("C4", "T", "10000", "2024-05-01", household_id="H2"), HH)  # 6,300
    ledger.settle(claim("C5", "T", "20000", "2024-06-01", household_id="H3"), HH)  # 10,000 by the cap
    rev = ledger.reverse("C1", "entered twice", book=HH)
    assert {a.claim_id: a.relief for a in ledger.adjustments(rev)} == {"C2": fen("6300")}
    assert net_relief(ledger) == {"C2": fen("6300"), "C3": fen("700"), "C4": fen("6300"), "C5": fen("10000")}
    assert ledger.verify().problems == ()


def test_a_reversal_without_the_rules_frees_the_household_cap_and_re_settles_nothing(ledger):
    ledger.settle(claim("C1", "M", "10000", "2024-03-01", household_id="H1"), HH)
    ledger.settle(claim("C2", "S", "10000", "2024-03-01", household_id="H1"), HH)
    rev = ledger.reverse("C1", "entered twice")  # no book: C2 keeps its 3,700
    assert (rev.caps, ledger.adjustments(rev)) == ((("household", fen("6300")),), [])
    assert net_relief(ledger) == {"C2": fen("3700")}
    # the household now holds 3,700: a new 10,000 stay gets its 6,300 in full
    q = ledger.quote(claim("C3", "M", "10000", "2024-04-01", household_id="H1"), HH)
    assert (q.relief, q.capped_by) == (fen("6300"), None)
    assert ledger.verify().problems == ()


def test_a_household_claim_without_a_household_id_is_refused_before_anything_is_written(ledger):
    with pytest.raises(medaid.ClaimError, match="household"):
        ledger.settle(claim("C1", "M", "10000", "2024-03-01"), HH)
    assert list(ledger.entries()) == []


def test_other_households_keep_their_own_cap(ledger):
    ledger.settle(claim("C1", "M", "20000", "2024-03-01", household_id="H1"), HH)
    other = ledger.settle(claim("C2", "X", "10000", "2024-03-01", household_id="H2"), HH).entry
    assert (other.relief, other.capped_by) == (fen("6300"), None)


def test_batch_recording_settles_the_household_example_as_the_desk(ledger):
    claims = [claim("C1", "M", "10000", "2024-03-01", household_id="H1"),
              claim("C2", "S", "10000", "2024-03-01", household_id="H1"),
              claim("C3", "M", "2000", "2024-05-01", household_id="H1")]
    out = ledger.record_in_order([(c, place(c, HH)) for c in claims], HH)
    assert [(o.entry.claim_id, o.entry.relief, o.entry.capped_by) for o in out] == [
        ("C1", fen("6300"), None), ("C2", fen("3700"), "cap:household"), ("C3", 0, "cap:household")]
    # again: replayed, nothing recorded; a claim of the household dated before C3: refused
    again = ledger.record_in_order([(c, place(c, HH)) for c in claims], HH)
    assert all(o.replayed for o in again)
    early = claim("C0", "S", "1000", "2024-04-01", household_id="H1")
    [problem] = ledger.record_in_order([(early, place(early, HH))], HH)
    assert isinstance(problem, medaid.Problem) and "before claim C3" in problem.message
    assert len(list(ledger.entries())) == 3 and ledger.verify().problems == ()


# -- shared cap, separate thresholds ------------------------------------------------------

SH = book(SHARED)


def test_a_shared_cap_keeps_each_plans_threshold(ledger):
    got = []
    year = [("O1", "2024-01-10", "outpatient", "800"), ("I1", "2024-02-01", "inpatient", "1000"),
            ("I2", "2024-03-01", "inpatient", "8000"), ("O2", "2024-04-01", "outpatient", "500")]
    for cid, day, kind, amount in year:
        e = ledger.settle(claim(cid, "P", amount, day, kind), SH).entry
        got.append((cid, e.ytd_self_pay, e.bracket_relief, e.relief, e.capped_by))
    assert got == [
        ("O1", fen("800"), fen("360"), fen("360"), None),  # (800 − 200) × 60%
        ("I1", fen("1000"), 0, 0, None),  # the outpatient 800 does not count toward the inpatient threshold
        ("I2", fen("9000"), fen("5600"), fen("4640"), "cap:medical"),  # 8,000 × 70%, 5,000 − 360 left
        ("O2", fen("1300"), fen("300"), 0, "cap:medical"),  # 1,100 × 60% − 360, nothing left
    ]
    # reversing I2 frees the cap: O2 gets its 300
    rev = ledger.reverse("I2", "wrong person", book=SH)
    assert [(a.claim_id, a.adjustment) for a in ledger.adjustments(rev)] == [("O2", fen("300"))]
    assert ledger.verify().problems == ()


# -- second stage -------------------------------------------------------------------------


def test_the_second_stage_relieves_the_years_burden_above_its_threshold(ledger):
    b = book(SECOND)
    a = ledger.settle(claim("A", "P", "30000", "2024-03-01"), b).entry
    # first 23,300, burden 6,700, second (6,700 − 5,000) × 50% = 850
    assert (a.relief, a.second_relief, a.burden, a.ytd_burden, a.patient_pays) == (
        fen("24150"), fen("850"), fen("6700"), fen("6700"), fen("5850"))
    bb = ledger.settle(claim("B", "P", "10000", "2024-05-01"), b).entry
    # first 6,300, burden 3,700, B = 10,400: 5,400 × 50% − 850 = 1,850
    assert (bb.relief, bb.second_relief, bb.burden, bb.ytd_burden, bb.ytd_second_relief, bb.patient_pays) == (
        fen("8150"), fen("1850"), fen("3700"), fen("10400"), fen("2700"), fen("1850"))
    history = [e.to_dict() for e in ledger.history("P")]
    assert [(h["second_relief"], h["second_pool"]) for h in history] == [("850.00", "burden"), ("1850.00", "burden")]
    # reversing A: B alone, burden 3,700 below 5,000: its second relief goes, −1,850
    rev = ledger.reverse("A", "duplicate", book=b)
    [adj] = ledger.adjustments(rev)
    assert (adj.claim_id, adj.adjustment, adj.relief, adj.second_relief, adj.ytd_burden) == (
        "B", -fen("1850"), fen("6300"), 0, fen("3700"))
    assert ledger.verify().problems == ()


def test_a_second_stage_counting_non_compliant_costs(ledger):
    c = ledger.settle(claim("N", "P", "10000", "2024-03-01", non_compliant="4000"), book(NON_COMPLIANT)).entry
    # burden 3,700 + 4,000 = 7,700: (7,700 − 5,000) × 50% = 1,350
    assert (c.relief - c.second_relief, c.burden, c.second_relief) == (fen("6300"), fen("7700"), fen("1350"))
    d = ledger.settle(claim("F", "Q", "2000", "2024-03-01", non_compliant="5000"), book(FULL)).entry
    # 100% of the burden 6,300, cut to what the patient still owes of the self-pay: 1,300
    assert (d.second_relief, d.second_capped_by, d.relief, d.patient_pays) == (fen("1300"), "self_pay", fen("2000"), 0)


# -- verify -------------------------------------------------------------------------------


def test_verify_reports_a_settlement_past_a_household_cap(ledger):
    ledger.settle(claim("C1", "M", "10000", "2024-03-01", household_id="H1"), HH)
    e = ledger.settle(claim("C2", "S", "10000", "2024-03-01", household_id="H1"), HH).entry
    # a row written past the cap (hashed and chained as the ledger writes, so only the cap check sees it)
    bad = e._replace(claim_id="C9", relief=fen("6300"), patient_pays=fen("3700"), ytd_self_pay=fen("20000"),
                     ytd_relief=fen("10000"), caps=(("household", fen("6300")),))
    with ledger._transaction() as con:
        ledger._append(con, bad)
    problems = ledger.verify().problems
    assert any(p.startswith("row 3: relief 6300.00 taken in cap pool household takes it from 10000.00 past its "
                            "annual amount (10000.00, per household)") for p in problems), problems


# -- generated sequences against the engine -----------------------------------------------

CB = book(COMBINED)
steps = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["inpatient", "outpatient"]),
              st.integers(0, 6_000_000), st.integers(0, 800_000), st.booleans(), st.integers(0, 30)),
    min_size=1, max_size=8,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_every_standing_claim_nets_to_the_engines_settlement_of_the_standing_claims(ledger, steps):
    """Persons a and b share a household, c has one of its own; claims are settled in order,
    earlier ones reversed now and then: every standing claim's relief (and second relief)
    net of its adjustments equals :func:`medaid.settle` of the standing claims in settlement
    order, and the ledger verifies."""
    run = f"R{next(_ids)}"
    homes = {"a": f"{run}-H1", "b": f"{run}-H1", "c": f"{run}-H2"}
    standing: dict[str, medaid.Claim] = {}
    for i, (who, kind, amount, nc, reverse, pick) in enumerate(steps):
        # the same date: the engine takes them in claim id order, which is the settlement order
        c = medaid.Claim(claim_id=f"{run}-{i:02d}", person_id=f"{run}-{who}", date="2024-05-03", self_pay=amount,
                         group="key", kind=kind, household_id=homes[who], non_compliant=nc)
        ledger.settle(c, CB)
        standing[c.claim_id] = c
        if reverse:
            cid = sorted(standing)[pick % len(standing)]
            ledger.reverse(cid, "test", book=CB)
            del standing[cid]
    expected = medaid.settle(list(standing.values()), CB)
    mine = {k: v for k, v in net_relief(ledger).items() if k.startswith(run + "-")}
    assert mine == {r.claim_id: r.relief for r in expected}
    current = {r["claim_id"]: r for r in ledger.results_rows() if r["claim_id"].startswith(run + "-")}
    assert {k: r["relief"] for k, r in current.items()} == {r.claim_id: r.relief for r in expected}
    # and the positions a results file of the standing claims gives (the limits' names,
    # capped_by and second_capped_by, are those of each claim's last row: a re-settlement that
    # changes no amount records no row)
    positions = ("ytd_self_pay", "ytd_relief", "ytd_burden", "ytd_second_relief")
    assert {k: tuple(r[f] for f in positions) for k, r in current.items()} == {
        r.claim_id: tuple(getattr(r, f) for f in positions) for r in expected}
    last = {}
    for e in ledger.entries():
        if e.claim_id.startswith(run + "-") and e.entry != "reversal":
            last[e.claim_id] = e
    assert {k: last[k].second_relief or 0 for k in standing} == {r.claim_id: r.second_relief for r in expected}
    assert ledger.verify().problems == ()


def test_a_reversal_with_rules_that_place_a_later_claim_elsewhere_is_refused(ledger):
    ledger.settle(claim("C1", "M", "10000", "2024-03-01", household_id="H1"), HH)
    ledger.settle(claim("C2", "S", "10000", "2024-03-01", household_id="H1"), HH)
    with pytest.raises(LedgerError, match="nothing was recorded"):
        ledger.reverse("C1", "typo", book=book(SECOND))
    assert len(list(ledger.entries())) == 2


# -- batch --record ------------------------------------------------------------------------


def test_batch_record_settles_a_household_file_as_the_engine_and_the_desk_sees_it(db, tmp_path):
    """``medaid batch FILE --record`` under HOUSEHOLD_SECOND (docs/desk.md's rules): C1 (M,
    10,000) 6,300; C2 (S, 10,000, 4,000 non-compliant) first 3,700, burden 10,300, second 2,650:
    6,350; C3 (M, 2,000) first 0 (the household's 10,000 is used), burden 3,700 + 2,000 = 5,700,
    second 350.  A desk settlement afterwards of S's 2,000 gets first 0, burden 10,300 + 2,000:
    second (12,300 − 5,000) × 50% − 2,650 = 1,000."""
    rules = tmp_path / "household.toml"
    rules.write_text(HOUSEHOLD_SECOND, encoding="utf-8")
    src = tmp_path / "claims.csv"
    src.write_text("claim_id,person_id,household_id,date,self_pay,non_compliant,group,kind\n"
                   "C3,M,H1,2024-05-01,2000,,key,inpatient\n"
                   "C1,M,H1,2024-03-01,10000,,key,inpatient\n"
                   "C2,S,H1,2024-03-01,10000,4000,key,inpatient\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["batch", str(src), "--ledger", db.location, "--record", "-o",
                                  str(tmp_path / "out.csv"), "--rules", str(rules)])
    assert r.exit_code == 0, r.output
    got = {x["claim_id"]: x["relief"] for x in read_results(tmp_path / "out.csv").iter_rows(named=True)}
    assert got == {"C1": fen("6300"), "C2": fen("6350"), "C3": fen("350")}
    # the same results file, byte for byte, as the batch's own (second stage and cap pool columns included)
    r = CliRunner().invoke(main, ["batch", str(src), "-o", str(tmp_path / "batch.csv"), "--rules", str(rules)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "batch.csv").read_bytes()
    b = book(HOUSEHOLD_SECOND)
    with open_ledger(db.location) as lg:
        claims = [e.claim() for e in lg.entries()]
        assert {s.claim_id: s.relief for s in medaid.settle(claims, b)} == got
        d = lg.settle(claim("D1", "S", "2000", "2024-06-01", household_id="H1"), b).entry
        assert (d.relief, d.second_relief, d.capped_by, d.ytd_burden) == (
            fen("1000"), fen("1000"), "cap:household", fen("12300"))
        assert lg.verify().problems == ()

"""Monthly periods (清算期) and each claim's channel and payee (docs/periods.md), on both ledger
backends (the ``db`` fixture of tests/conftest.py).

Figures are worked by hand from rules/chongqing-county-2019.toml (key / inpatient: nothing below
1,000 yuan, 70% of 1,000-10,000, 85% of 10,000-50,000, 95% above; annual cap 100,000):

* 30,000 → 6,300 + 17,000 = 23,300.00;   * 12,000 → 6,300 + 85% × 2,000 = 8,000.00;
* 100,000 → 6,300 + 34,000 + 47,500 = 87,800.00, leaving 12,200.00 of the cap.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from pathlib import Path
from typing import NamedTuple

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

import medaid
from medaid.domain.claims import mask_account, mask_name
from medaid.errors import ClaimError
from medaid.ledger import LedgerConflict, LedgerError, open_ledger
from medaid.ledger.periods import Periods, assign, next_period, parse_period

RULES = Path(__file__).resolve().parents[1] / "rules"
BOOK = medaid.load_rules(RULES)
ACCOUNT = "6222021234561234"
_years = itertools.count(2101, 2)  # each hypothesis example its own two years of periods
_people = itertools.count(1)


@pytest.fixture
def ledger(db):
    with open_ledger(db.location) as lg:
        yield lg


def claim(cid, amount, *, person="P1", day="2024-05-03", hospital="County People's Hospital", **payee):
    return medaid.Claim.from_yuan(claim_id=cid, person_id=person, date=day, self_pay=amount, group="key",
                                  kind="inpatient", hospital=hospital, **payee)


def bank(cid, amount, *, person="P2", day="2024-05-10", account=ACCOUNT, name="张三", **kw):
    return claim(cid, amount, person=person, day=day, hospital=None, channel="application",
                 bank_account=account, account_name=name, **kw)


# -- channel and payee ------------------------------------------------------------------------


@pytest.mark.parametrize("payee, field", [
    ({"channel": "application"}, "channel"),
    ({"channel": "application", "bank_account": ACCOUNT}, "channel"),
    ({"channel": "one-stop", "bank_account": ACCOUNT, "account_name": "张三"}, "channel"),
    ({"bank_account": ACCOUNT}, "channel"),
    ({"channel": "application", "bank_account": "6222-0212-3456-1234", "account_name": "张三"}, "bank_account"),
    ({"channel": "application", "bank_account": "1234567", "account_name": "张三"}, "bank_account"),
    ({"channel": "application", "bank_account": "1" * 31, "account_name": "张三"}, "bank_account"),
    ({"channel": "by-post"}, "channel"),
])
def test_a_payee_is_needed_exactly_for_an_application_and_never_echoed(payee, field):
    with pytest.raises(ClaimError) as e:
        claim("C1", "100", **payee)
    [p] = e.value.problems
    assert p.field == field
    text = str(e.value)
    assert "1234567" not in text and "3456" not in text and "张三" not in text


def test_an_account_is_tidied_and_masked():
    c = claim("C1", "100", channel="application", bank_account="６２２２ 0212 3456 1234", account_name=" 张三 ")
    assert (c.bank_account, c.account_name) == (ACCOUNT, "张三")
    assert ACCOUNT not in repr(c) and "张三" not in repr(c)
    assert (mask_account(ACCOUNT), mask_account("12345678"), mask_account("123456789")) == (
        "6222********1234", "********", "1234*6789")
    assert (mask_name("张三"), mask_name("欧阳小明"), mask_name("王")) == ("张*", "欧***", "*")


def test_the_ledger_records_the_channel_and_masks_the_payee(ledger):
    one = ledger.settle(claim("C1", "30000", channel="one-stop"), BOOK).entry
    two = ledger.settle(bank("C2", "12000"), BOOK).entry
    old = ledger.settle(claim("C3", "30000", person="P3"), BOOK).entry
    assert (one.channel, two.channel, old.channel) == ("one-stop", "application", None)
    assert (two.bank_account, two.account_name, two.relief) == (ACCOUNT, "张三", 800_000)
    d = two.to_dict()
    assert (d["channel"], d["bank_account"], d["account_name"]) == ("application", "6222********1234", "张*")
    assert ACCOUNT not in str(d) and "张三" not in str(d)
    # the same claim again: replayed; with another account: a conflict naming the field only
    assert ledger.settle(bank("C2", "12000"), BOOK).replayed
    with pytest.raises(LedgerConflict) as e:
        ledger.settle(bank("C2", "12000", account="6222021234569999"), BOOK)
    assert e.value.fields == ("bank_account",) and "9999" not in str(e.value)
    # a reversal carries the claim's channel and payee (its money goes back the same way)
    rev = ledger.reverse("C2", "typo", book=BOOK)
    assert (rev.channel, rev.bank_account, rev.account_name) == ("application", ACCOUNT, "张三")
    assert ledger.verify().problems == ()


# -- periods: states -------------------------------------------------------------------------


def test_a_period_goes_open_declared_reviewed_approved_paid_and_nothing_else(ledger):
    ps = Periods(ledger)
    with pytest.raises(LedgerError, match="is not opened; close needs a period that is open"):
        ps.close("2024-05", "alice")
    assert ps.open("2024-05", "alice").state == "open"
    with pytest.raises(LedgerError, match="is open; it is opened once"):
        ps.open("2024-05", "bob")
    for wrong in (ps.approve, ps.pay):
        with pytest.raises(LedgerError, match="is open; .* needs a period that is .* \\(next: close\\)"):
            wrong("2024-05", "bob")
    ledger.settle(claim("C1", "30000"), BOOK)
    closed = ps.close("2024-05", "bob")
    assert (closed.state, closed.by, closed.through_seq) == ("declared", "bob", 1)
    ps.review("2024-05", "carol", [], BOOK)
    ps.approve("2024-05", "dave")
    ps.pay("2024-05", "erin")
    with pytest.raises(LedgerError, match="is paid; .*\\(it is done\\)"):
        ps.pay("2024-05", "erin")
    events = ps.events("2024-05")
    assert [(e.state, e.by) for e in events] == [
        ("open", "alice"), ("declared", "bob"), ("reviewed", "carol"), ("approved", "dave"), ("paid", "erin")]
    assert all(e.at.endswith("+00:00") for e in events)
    assert ps.state("2024-05") == "paid" and ps.state("2024-06") is None
    assert [(p, s) for p, s, _ in ps.periods()] == [("2024-05", "paid")]


def test_period_records_are_append_only(ledger, db):
    Periods(ledger).open("2024-05", "alice")
    for sql in ("UPDATE period_events SET by_whom = 'mallory'", "DELETE FROM period_events"):
        with pytest.raises(db.integrity_error, match="never"):
            db.execute(sql)
    assert [e.by for e in Periods(ledger).events()] == ["alice"]


def test_a_month_is_yyyy_mm():
    assert parse_period(" 2024-05 ") == "2024-05" and next_period("2024-12") == "2025-01"
    for bad in ("2024-5", "2024-13", "24-05", "2024-05-01", "0999-01"):
        with pytest.raises(ValueError, match="write YYYY-MM"):
            parse_period(bad)


# -- which period a row belongs to -------------------------------------------------------------


def test_a_row_belongs_to_its_claims_month_until_that_month_is_declared(ledger):
    ps = Periods(ledger)
    ps.open("2024-05", "a")
    ledger.settle(claim("M1", "30000", day="2024-05-03"), BOOK)
    ledger.settle(claim("J1", "30000", person="P5", day="2024-06-03"), BOOK)  # June: not opened yet
    ps.close("2024-05", "a")
    # settled after May was declared, dated in May: late, it lands in June (still open)
    ledger.settle(claim("M2", "12000", person="P6", day="2024-05-20"), BOOK)
    assert [e.claim_id for e in ps.rows("2024-05")] == ["M1"]
    assert [e.claim_id for e in ps.rows("2024-06")] == ["J1", "M2"]
    # June declared too: a reversal of May's M1 now lands in July
    ps.open("2024-06", "a")
    ps.close("2024-06", "a")
    rev = ledger.reverse("M1", "wrong person", book=BOOK)
    assert [e.seq for e in ps.rows("2024-07")] == [rev.seq]
    assert [e.claim_id for e in ps.rows("2024-05")] == ["M1"]  # May unchanged
    lists = ps.lists("2024-07")
    assert (lists.total().net, lists.total().reversals) == (-2_330_000, 1)


def test_assign_moves_a_late_row_past_every_declared_month():
    class Row(NamedTuple):
        seq: int
        date: dt.date
        entry: str = "settlement"
        reversal: int | None = None

    rows = [Row(1, dt.date(2024, 5, 1)), Row(5, dt.date(2024, 5, 2)), Row(6, dt.date(2024, 6, 30)),
            Row(7, dt.date(2024, 4, 1), "reversal"), Row(8, dt.date(2024, 5, 1), "adjustment", reversal=7)]
    # May declared after row 4, June after row 5, April after row 2; row 7 is a reversal that
    # April's review recorded (its adjustment, row 8, follows it)
    got = assign(rows, {"2024-05": 4, "2024-06": 5, "2024-04": 2}, {7: "2024-04"})  # type: ignore[arg-type]
    # row 5 (May, late for May) was in the ledger when June was declared: June; row 6 is late
    # for June: July
    assert got == {1: "2024-05", 5: "2024-06", 6: "2024-07", 7: "2024-04", 8: "2024-04"}


# -- review ------------------------------------------------------------------------------------


def test_a_rejection_reverses_the_claim_in_the_reviewed_period_and_re_settles_later_claims(ledger, db):
    ps = Periods(ledger)
    ps.open("2024-05", "a")
    ledger.settle(claim("R1", "100000", day="2024-05-01"), BOOK)           # 87,800
    ledger.settle(claim("R2", "30000", day="2024-05-20"), BOOK)            # capped at 12,200
    ledger.settle(bank("B1", "12000"), BOOK)                               # 8,000 to P2's account
    ps.close("2024-05", "a")
    before = db.count()
    with pytest.raises(LedgerError, match="is not a standing settlement of period 2024-05"):
        ps.review("2024-05", "r", [("R1", "duplicate"), ("NOPE", "x")], BOOK)
    with pytest.raises(LedgerError, match="rejected twice"):
        ps.review("2024-05", "r", [("R1", "duplicate"), ("R1", "again")], BOOK)
    assert db.count() == before and ps.state("2024-05") == "declared"  # nothing written
    event, outcomes = ps.review("2024-05", "r", [("R1", "not an inpatient stay")], BOOK)
    assert [(o.claim_id, o.outcome, o.reason) for o in outcomes] == [
        ("R1", "rejected", "not an inpatient stay"), ("R2", "approved", None), ("B1", "approved", None)]
    assert ps.reviews("2024-05") == outcomes
    # R1's reversal (−87,800) and R2's adjustment (+11,100: 23,300 uncapped) are May's
    lists = ps.lists("2024-05")
    [hospital] = lists.hospitals
    assert (hospital.settled, hospital.reversed, hospital.adjusted, hospital.net) == (
        8_780_000 + 1_220_000, -8_780_000, 1_110_000, 2_330_000)
    [person] = lists.persons
    assert (person.person_id, person.bank_account, person.account_name, person.net) == ("P2", ACCOUNT, "张三", 800_000)
    assert lists.total().net == 2_330_000 + 800_000
    ps.approve("2024-05", "f")
    with pytest.raises(LedgerError, match="review needs a period that is declared"):
        ps.review("2024-05", "r", [("R2", "late")], BOOK)


# -- Σ payments over all periods = Σ relief net of reversals and adjustments ------------------

steps = st.lists(st.one_of(
    st.tuples(st.just("settle"), st.integers(1, 6), st.integers(0, 6_000_000), st.booleans(), st.integers(0, 1)),
    st.tuples(st.just("reverse"), st.integers(0, 50)),
    st.tuples(st.just("close"), st.integers(1, 6)),
    st.tuples(st.just("review"), st.integers(1, 6), st.integers(0, 50)),
), min_size=1, max_size=14)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_the_payments_of_all_periods_are_the_relief_net_of_reversals_and_adjustments(ledger, steps):
    """Random settlements (one-stop and application, two people sharing nothing, claims capped),
    reversals, closes and reviews with a rejection: the payments of every period add up to the
    relief :func:`medaid.settle` gives the claims that stand (each channel apart), a declared
    period's lists never change after its close (or its review), and the rows moved out of the
    periods are the ledger's rows, each in one period."""
    year, tag = next(_years), f"H{next(_people)}"
    ps = Periods(ledger)
    standing: dict[str, medaid.Claim] = {}
    frozen: dict[str, object] = {}
    n = 0
    for step in steps:
        if step[0] == "settle":
            _, month, fen, applied, who = step
            n += 1
            payee = ({"channel": "application", "bank_account": f"62220000{who:08d}", "account_name": f"人{who}"}
                     if applied else {"channel": "one-stop"})
            c = medaid.Claim(claim_id=f"{tag}-{n:02d}", person_id=f"{tag}-P{who}", date=f"{year}-{month:02d}-{n:02d}",
                             self_pay=fen, group="key", kind="inpatient", hospital=None if applied else f"H{who}",
                             **payee)
            ledger.settle(c, BOOK)
            standing[c.claim_id] = c
        elif step[0] == "reverse" and standing:
            cid = sorted(standing)[step[1] % len(standing)]
            ledger.reverse(cid, "test", book=BOOK)
            del standing[cid]
        elif step[0] == "close":
            p = f"{year}-{step[1]:02d}"
            if ps.state(p) is None:
                ps.open(p, "t")
            if ps.state(p) == "open":
                ps.close(p, "t")
                frozen[p] = ps.lists(p)[2:]
        elif step[0] == "review":
            p = f"{year}-{step[1]:02d}"
            if ps.state(p) == "declared":
                mine = [e.claim_id for e in ps.rows(p) if e.entry == "settlement" and e.claim_id in standing]
                reject = [mine[step[2] % len(mine)]] if mine else []
                ps.review(p, "t", [(c, "rejected") for c in reject], BOOK)
                for c in reject:
                    del standing[c]
                frozen[p] = ps.lists(p)[2:]
    periods = [f"{y}-{m:02d}" for y in (year, year + 1) for m in range(1, 13)]
    every = {p: ps.lists(p) for p in periods}
    for p, lists in frozen.items():
        assert every[p][2:] == lists, p  # nothing in a declared period changed
    # each of this example's rows is in exactly one period
    mine = [e.seq for e in ledger.entries() if e.claim_id.startswith(tag + "-")]
    placed = [e.seq for lists in every.values() for e in lists.rows]
    assert sorted(placed) == mine
    # the payments, per channel, against the settlement of the standing claims alone
    results = {r.claim_id: r.relief for r in medaid.settle(list(standing.values()), BOOK)}
    for channel in ("one-stop", "application"):
        want = sum(results[c] for c, cl in standing.items() if cl.channel == channel)
        got = sum(lists.total(channel).net for lists in every.values())
        assert got == want, channel
    # and against the ledger's own rows, summed here by their kind
    rows = [e for e in ledger.entries() if e.claim_id.startswith(tag + "-")]
    by_rows = (sum(e.relief for e in rows if e.entry == "settlement")
               - sum(e.relief for e in rows if e.entry == "reversal")
               + sum(e.adjustment for e in rows if e.entry == "adjustment"))
    assert sum(lists.total().net for lists in every.values()) == by_rows


# -- concurrency -------------------------------------------------------------------------------


def test_a_declaration_racing_settlements_splits_them_by_row_number_and_only_one_wins(db):
    """Desks settle May claims while May is declared, twice at once: one declaration is
    recorded, the other refused; the rows up to the declared row number are May's, the later
    ones June's; May's lists read right after the declaration are its lists at the end."""
    with open_ledger(db.location) as lg:
        Periods(lg).open("2024-05", "a")
    start = threading.Barrier(6)
    outcomes: list[object] = []
    snapshot: list[object] = []

    def desk(k: int) -> None:
        with open_ledger(db.location) as lg:
            start.wait()
            for i in range(6):
                lg.settle(claim(f"D{k}-{i}", "2000", person=f"C{k}", day="2024-05-15"), BOOK)

    def declare() -> None:
        with open_ledger(db.location) as lg:
            start.wait()
            try:
                outcomes.append(Periods(lg).close("2024-05", "b"))
                snapshot.append(Periods(lg).lists("2024-05")[2:])
            except LedgerError as e:
                outcomes.append(e)

    threads = [threading.Thread(target=desk, args=(k,)) for k in range(4)] + [
        threading.Thread(target=declare) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(events) == 1 and len(refused) == 1 and "is declared" in str(refused[0])
    through = events[0].through_seq  # type: ignore[attr-defined]
    with open_ledger(db.location) as lg:
        ps = Periods(lg)
        may, june = [e.seq for e in ps.rows("2024-05")], [e.seq for e in ps.rows("2024-06")]
        assert may == list(range(1, through + 1)) and june == list(range(through + 1, 25))
        assert ps.lists("2024-05")[2:] == snapshot[0]
        # 2,000 yuan each: 70% × 1,000 = 700.00 (the first of each person's 1,000 is the threshold:
        # claim mode, every claim its own threshold)
        assert ps.lists("2024-05").total().net + ps.lists("2024-06").total().net == 24 * 70_000


def test_verify_reports_a_period_trigger_dropped(ledger, db):
    ledger.close()
    on = "" if db.backend == "sqlite" else " ON period_events"
    db.execute(f"DROP TRIGGER period_events_never_updated{on}")
    with open_ledger(db.location) as lg:
        assert lg.verify().problems == (
            "the trigger period_events_never_updated that keeps rows append-only is missing",)

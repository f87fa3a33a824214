"""The ledger against a model, step by step (hypothesis ``RuleBasedStateMachine``).

Steps: settle a new claim, replay a settled claim unchanged, replay it with changed content,
reverse it, reverse it again, settle a reversed claim id again.  The model keeps which claims
are in force and each pool's year-to-date position, and works each relief out itself from the
bundled rules' figures (Fractions, half-up to the fen):

* key / inpatient, claim mode: 70% of 1,000-10,000, 85% of 10,000-50,000, 95% above;
* low-income / inpatient, claim mode: 60% of 2,000-50,000, 70% above;
  both in the ``inpatient`` pool, annual cap 100,000;
* key / outpatient-special, year mode: 70% above 200 of the year's self-pay,
  claim cap 3,000, annual cap 10,000, pool ``outpatient-special``.

After every step the ledger's positions, rows and results equal the model's, and no pool is
above its cap.  The machine runs on both backends (a fresh SQLite file or PostgreSQL schema per
example, tests/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
import tempfile
from collections.abc import Callable
from fractions import Fraction
from math import floor
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

import medaid
from medaid.ledger import open_ledger
from medaid.ledger.ledger import LedgerConflict, LedgerError

RULES = Path(__file__).resolve().parents[1] / "rules"
BOOK = medaid.load_rules(RULES)

PLANS = {  # (group, kind) → (pool, mode, brackets [(from, to, rate)], claim cap, annual cap), fen
    ("key", "inpatient"): ("inpatient", "claim", [
        (100_000, 1_000_000, Fraction(70, 100)), (1_000_000, 5_000_000, Fraction(85, 100)),
        (5_000_000, None, Fraction(95, 100))], None, 10_000_000),
    ("low-income", "inpatient"): ("inpatient", "claim", [
        (200_000, 5_000_000, Fraction(60, 100)), (5_000_000, None, Fraction(70, 100))], None, 10_000_000),
    ("key", "outpatient-special"): ("outpatient-special", "year", [
        (20_000, None, Fraction(70, 100))], 300_000, 1_000_000),
}


def f(x: int, brackets) -> Fraction:
    return sum((rate * max(0, (x if hi is None else min(x, hi)) - lo) for lo, hi, rate in brackets), Fraction(0))


def r_half_up(v: Fraction) -> int:
    return floor(v + Fraction(1, 2))


def model_relief(plan_key, s: int, c: int, g: int) -> int:
    pool, mode, brackets, claim_cap, annual_cap = PLANS[plan_key]
    inc = r_half_up(f(s, brackets)) if mode == "claim" else r_half_up(f(c + s, brackets)) - r_half_up(f(c, brackets))
    limits = [inc, annual_cap - g, s] + ([claim_cap] if claim_cap is not None else [])
    return max(0, min(limits))


DAYS = [dt.date(2024, 3, 1), dt.date(2024, 11, 30), dt.date(2025, 1, 2)]


class LedgerMachine(RuleBasedStateMachine):
    #: A fresh ledger's location, and what removes it (set per backend by the test below).
    where: Callable[[], tuple[str, Callable[[], None]]]

    def __init__(self) -> None:
        super().__init__()
        location, self.remove = self.where()
        # durability is the crash test's business; here synchronous=OFF keeps steps fast
        self.ledger = open_ledger(location, synchronous="OFF")
        self.claims: dict[str, dict] = {}  # claim id → {"claim", "key", "active", "relief"}
        self.pools: dict[tuple[str, int, str], list[int]] = {}
        self.rows = 0
        self.next_id = 0

    def teardown(self) -> None:
        try:
            assert self.ledger.verify().ok
        finally:
            self.ledger.close()
            self.remove()

    # -- helpers ------------------------------------------------------------------------
    def _settle_expected(self, c: medaid.Claim) -> None:
        key = (c.group, c.kind)
        pool = PLANS[key][0]
        pk = (c.person_id, c.date.year, pool)
        cs, gs = self.pools.get(pk, [0, 0])
        want = model_relief(key, c.self_pay, cs, gs)
        receipt = self.ledger.settle(c, BOOK)
        assert not receipt.replayed
        assert receipt.entry.relief == want
        assert (receipt.entry.ytd_self_pay, receipt.entry.ytd_relief) == (cs + c.self_pay, gs + want)
        self.pools[pk] = [cs + c.self_pay, gs + want]
        self.claims[c.claim_id] = {"claim": c, "pool": pk, "active": True, "relief": want}
        self.rows += 1

    def _pick(self, data, active: bool) -> str:
        ids = sorted(k for k, v in self.claims.items() if v["active"] == active)
        return data.draw(st.sampled_from(ids))

    def _any(self, active: bool) -> bool:
        return any(v["active"] == active for v in self.claims.values())

    # -- steps --------------------------------------------------------------------------
    @rule(
        person=st.sampled_from(["P1", "P2"]),
        plan=st.sampled_from(sorted(PLANS)),
        self_pay=st.one_of(st.integers(0, 6_000_000), st.sampled_from([100_000, 100_001, 20_000, 5_000_000])),
        day=st.sampled_from(DAYS),
    )
    def settle_new(self, person, plan, self_pay, day):
        self.next_id += 1
        c = medaid.Claim(claim_id=f"C{self.next_id}", person_id=person, date=day, self_pay=self_pay,
                         group=plan[0], kind=plan[1])
        self._settle_expected(c)

    @precondition(lambda self: self._any(True))
    @rule(data=st.data())
    def replay_same(self, data):
        cid = self._pick(data, True)
        m = self.claims[cid]
        receipt = self.ledger.settle(m["claim"], BOOK)
        assert receipt.replayed and receipt.entry.relief == m["relief"]

    @precondition(lambda self: self._any(True))
    @rule(data=st.data(), change=st.sampled_from(["self_pay", "hospital", "date", "person_id"]))
    def replay_changed(self, data, change):
        cid = self._pick(data, True)
        c = self.claims[cid]["claim"]
        new = {"self_pay": c.self_pay + 1, "hospital": "elsewhere",
               "date": c.date + dt.timedelta(days=1), "person_id": c.person_id + "x"}[change]
        with pytest.raises(LedgerConflict) as err:
            self.ledger.settle(c.model_copy(update={change: new}), BOOK)
        assert err.value.fields == (change,)

    @precondition(lambda self: self._any(True))
    @rule(data=st.data())
    def reverse(self, data):
        cid = self._pick(data, True)
        m = self.claims[cid]
        e = self.ledger.reverse(cid, "test")
        cs, gs = self.pools[m["pool"]]
        self.pools[m["pool"]] = [cs - m["claim"].self_pay, gs - m["relief"]]
        assert (e.ytd_self_pay, e.ytd_relief) == tuple(self.pools[m["pool"]])
        m["active"] = False
        self.rows += 1

    @precondition(lambda self: self._any(False))
    @rule(data=st.data())
    def reverse_again(self, data):
        cid = self._pick(data, False)
        with pytest.raises(LedgerError, match="already reversed"):
            self.ledger.reverse(cid, "again")

    @rule()
    def reverse_unknown(self):
        with pytest.raises(LedgerError, match="no such claim"):
            self.ledger.reverse("NOT-THERE", "test")

    @precondition(lambda self: self._any(False))
    @rule(data=st.data(), self_pay=st.integers(0, 3_000_000))
    def settle_reversed_again(self, data, self_pay):
        cid = self._pick(data, False)
        old = self.claims[cid]["claim"]
        self._settle_expected(old.model_copy(update={"self_pay": self_pay}))

    # -- invariants ---------------------------------------------------------------------
    @invariant()
    def positions_match_the_model_and_stay_under_the_cap(self):
        for (person, year, pool), (cs, gs) in self.pools.items():
            assert self.ledger.ytd(person, year, pool) == (cs, gs)
            cap = 10_000_000 if pool == "inpatient" else 1_000_000
            assert 0 <= gs <= cap

    @invariant()
    def rows_and_results_match_the_model(self):
        assert sum(1 for _ in self.ledger.entries()) == self.rows
        got = {r["claim_id"]: r["relief"] for r in self.ledger.results_rows()}
        assert got == {k: v["relief"] for k, v in self.claims.items() if v["active"]}


SETTINGS = settings(
    max_examples=25, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_schemas = itertools.count(1)


def _sqlite_file() -> tuple[str, Callable[[], None]]:
    folder = tempfile.mkdtemp(prefix="medaid-ledger-")
    return str(Path(folder) / "l.sqlite3"), lambda: shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_ledger_against_the_model(backend, request):
    if backend == "sqlite":
        where = _sqlite_file
    else:
        cluster = request.getfixturevalue("pg_cluster")

        def where() -> tuple[str, Callable[[], None]]:
            schema = f"machine{next(_schemas)}"
            cluster.sql(f"CREATE SCHEMA {schema}")
            return cluster.url(schema=schema), lambda: cluster.sql(f"DROP SCHEMA {schema} CASCADE")

    machine = type("Machine", (LedgerMachine,), {"where": staticmethod(where)})
    run_state_machine_as_test(machine, settings=SETTINGS)

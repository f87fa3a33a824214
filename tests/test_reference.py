"""The independent reference of docs/calculation.md (``tests/reference_schemes.py``, written with
``fractions.Fraction``), compared with ``medaid.settle`` and ``medaid.quote`` claim by claim on
generated rule sets and claim sequences of the rules every scheme has: brackets, gate,
marginal/whole modes, rounding, claim/year increments, caps, pools shared by plans, benefit-year
start month and version selection by date.

The reference reads the generated rule files itself (``tomllib``) and calls nothing of medaid.
The rules real schemes need (attributes, grants, cap pools, second stage) are compared in
``tests/test_schemes_reference.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

import medaid
import reference_schemes as ref
from strategies_schemes import amounts, bracket_specs, load, yuan_text

# --------------------------------------------------------------------------------------------
# generated rule sets, written as TOML text

GROUPS, KINDS = ("a", "b"), ("x", "y")
LAYOUTS = [  # ways to cover every (group, kind) with plans whose match is a product of lists
    [(["a", "b"], ["x", "y"])],
    [(["a"], ["x", "y"]), (["b"], ["x", "y"])],
    [(["a", "b"], ["x"]), (["a", "b"], ["y"])],
    [(["a"], ["x"]), (["a"], ["y"]), (["b"], ["x"]), (["b"], ["y"])],
]


@st.composite
def plan_dicts(draw, name: str, groups: list[str], kinds: list[str], pool: str,
               annual_cap: int | None) -> dict[str, Any]:
    spec = draw(bracket_specs(step=50_000, top=60, gate_hi=3_000_000))
    plan: dict[str, Any] = {"name": name, "match": {"group": groups, "kind": kinds}, "pool": pool, **spec}
    if annual_cap is not None:
        plan["annual_cap"] = yuan_text(annual_cap)
    if draw(st.booleans()):
        plan["claim_cap"] = yuan_text(draw(amounts(hi=3_000_000)))
    return plan


@st.composite
def rule_set_dicts(draw, version: str, valid_from: dt.date, valid_to: dt.date | None,
                   start_month: int = 1) -> dict[str, Any]:
    pools = draw(st.lists(st.sampled_from(["p1", "p2"]), min_size=4, max_size=4))
    caps = {p: draw(st.none() | amounts(hi=20_000_000)) for p in ("p1", "p2")}
    layout = draw(st.sampled_from(LAYOUTS))
    plans = [draw(plan_dicts(f"plan{i}", g, k, pools[i], caps[pools[i]])) for i, (g, k) in enumerate(layout)]
    rs: dict[str, Any] = {
        "id": "gen", "version": version, "valid_from": valid_from,
        "rounding": {"unit": draw(st.sampled_from(["fen", "jiao", "yuan"])),
                     "method": draw(st.sampled_from(["half-up", "half-even", "down"]))},
        "benefit_year_start_month": start_month,
        "plans": plans,
    }
    if valid_to is not None:
        rs["valid_to"] = valid_to
    return rs


@st.composite
def books(draw) -> list[dict[str, Any]]:
    """One or two versions of one scheme, the second starting the day after the first ends."""
    month = draw(st.sampled_from([1, 1, 4, 7, 12]))  # versions of one scheme share it
    if draw(st.booleans()):
        return [draw(rule_set_dicts("v1", dt.date(2020, 1, 1), None, month))]
    split = dt.date(2024, 1, 1) + dt.timedelta(days=draw(st.integers(0, 365)))
    return [draw(rule_set_dicts("v1", dt.date(2020, 1, 1), split - dt.timedelta(days=1), month)),
            draw(rule_set_dicts("v2", split, None, month))]


@st.composite
def claim_dicts(draw) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 25))
    out = []
    for i in range(n):
        out.append({
            "claim_id": f"C{draw(st.integers(0, 10**6))}-{i}",
            "person_id": draw(st.sampled_from(["P1", "P1", "P1", "P2", "P3"])),
            "date": dt.date(2023, 1, 1) + dt.timedelta(days=draw(st.integers(0, 3 * 365))),
            "self_pay": yuan_text(draw(amounts(hi=8_000_000))),
            "group": draw(st.sampled_from(GROUPS)),
            "kind": draw(st.sampled_from(KINDS)),
        })
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), claim_dicts())
def test_the_engine_equals_the_fraction_reference_claim_by_claim(rule_sets, claims):
    book, parsed = load(rule_sets)
    want = ref.settle(parsed, claims)
    got = medaid.settle([medaid.Claim.from_yuan(**c) for c in claims], book)
    assert [r.claim_id for r in got] == [c["claim_id"] for c in claims]
    for r in got:
        w = want[r.claim_id]
        assert (r.plan, r.pool, r.benefit_year, r.rule_version) == (w.plan, w.pool, w.benefit_year, w.rule_version)
        assert r.bracket_relief == w.bracket_relief, r.claim_id
        assert r.relief == w.relief, r.claim_id
        assert r.patient_pays == r.self_pay - w.relief
        assert (r.ytd_self_pay, r.ytd_relief) == (w.ytd_self_pay, w.ytd_relief)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), claim_dicts())
def test_quote_with_the_reference_state_gives_the_reference_relief(rule_sets, claims):
    # quote() takes the pool's year-to-date state from the caller (a ledger): feed it the
    # reference's state before each claim, in order, and it must give the reference relief
    book, parsed = load(rule_sets)
    want = ref.settle(parsed, claims)
    for c in sorted(claims, key=lambda c: (c["date"], c["claim_id"])):
        w = want[c["claim_id"]]
        state = medaid.PoolState(w.ytd_self_pay - w.self_pay, w.ytd_relief - w.relief)
        assert medaid.quote(medaid.Claim.from_yuan(**c), book, state).relief == w.relief


def test_the_reference_gives_the_source_policys_worked_examples():
    # guard for the reference itself: docs/calculation.md's worked examples, by the reference alone
    plan = {"brackets": [{"from": "1000", "to": "10000", "rate": "70%"},
                         {"from": "10000", "to": "50000", "rate": "85%"},
                         {"from": "50000", "rate": "95%"}]}
    for x, want in [("999.99", 0), ("1000.01", 1), ("12345.67", 829_382), ("30000", 2_330_000),
                    ("100000", 8_780_000)]:
        assert ref.rounded({}, ref.f(plan, ref.fen(x))) == want

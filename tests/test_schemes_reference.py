"""The rules real schemes need (docs/calculation.md, *Rules real schemes need*) on generated rule
sets and claims: ``medaid.settle`` equals the independent Fraction reference
(``tests/reference_schemes.py``) claim by claim, refuses what the reference refuses, and keeps the
spec's properties: cap pools (per person or household) never exceed their cap, and a year-mode
second stage telescopes: with no cap binding, the year's second relief is ``R₂(f₂(B_n))``
however the burden is split into claims.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

import medaid
import reference_schemes as ref
from strategies_schemes import (
    bracket_specs,
    claim_objects,
    claims_refused,
    load,
    raw_claims,
    scheme_books,
    scheme_claims,
    scheme_rule_sets,
    yuan_text,
)

FAST = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
LIGHT = settings(FAST, max_examples=80)  # the properties and second checks

COMPARED = ("rule_version", "plan", "pool", "benefit_year", "bracket_relief", "relief", "capped_by", "second_relief",
            "second_capped_by", "patient_pays", "ytd_self_pay", "ytd_relief")


def drawn(data: Any, max_claims: int = 30) -> tuple[medaid.RuleBook, dict[str, Any], list[dict[str, Any]]]:
    """A generated rule set loaded by medaid, as read back by tomllib, and placeable claims."""
    rs = data.draw(scheme_rule_sets(), "rule set")
    book, (parsed,) = load([rs])
    return book, parsed, data.draw(scheme_claims(rs, max_claims=max_claims), "claims")


def settled(data: Any) -> tuple[dict[str, Any], list[tuple[Any, dict[str, Any], dict[str, Any]]]]:
    """A generated rule set (as tomllib reads it) and each claim's settlement by medaid with its
    plan and claim."""
    book, parsed, claims = drawn(data)
    plans = {p["name"]: p for p in parsed["plans"]}
    by_id = {c["claim_id"]: c for c in claims}
    return parsed, [(r, plans[r.plan], by_id[r.claim_id]) for r in medaid.settle(claim_objects(claims), book)]


@FAST
@given(st.data())
def test_the_engine_equals_the_fraction_reference_claim_by_claim(data):
    # one version, or two with a change inside the claims' dates
    versions = data.draw(scheme_books(), "versions")
    book, parsed = load(versions)
    claims = data.draw(scheme_claims(versions, max_claims=20), "claims")
    want = ref.settle(parsed, claims)
    got = medaid.settle(claim_objects(claims), book)
    assert [r.claim_id for r in got] == [c["claim_id"] for c in claims]
    for r in got:
        w = want[r.claim_id]
        assert {k: getattr(r, k) for k in COMPARED} == {k: getattr(w, k) for k in COMPARED}, r.claim_id
        assert r.relief + r.patient_pays == r.self_pay


@LIGHT
@given(st.data())
def test_a_second_stage_on_burden_with_non_compliant_costs_pays_at_most_what_the_patient_owes(data):
    # every plan gets a second stage of 100% from 0 that includes non-compliant costs: its
    # increment passes what the patient still owes of the self-pay whenever a claim has some
    rs = data.draw(scheme_rule_sets(), "rule set")
    for plan in rs["plans"]:
        plan["second"] = {"pool": "b1", "accumulate": data.draw(st.sampled_from(["claim", "year"])),
                          "include_non_compliant": True, "brackets": [{"from": "0", "rate": "100%"}]}
    book, (parsed,) = load([rs])
    claims = data.draw(scheme_claims(rs, max_claims=12), "claims")
    want = ref.settle([parsed], claims)
    for r in medaid.settle(claim_objects(claims), book):
        w = want[r.claim_id]
        assert (r.relief, r.second_relief, r.second_capped_by) == (w.relief, w.second_relief, w.second_capped_by)
        assert 0 <= r.second_relief <= r.self_pay - (r.relief - r.second_relief)
        assert r.patient_pays >= 0


@LIGHT
@given(st.data())
def test_the_order_claims_are_given_in_changes_nothing(data):
    book, _, claims = drawn(data, max_claims=20)
    shuffled = data.draw(st.permutations(claims), "order")
    first = {r.claim_id: r for r in medaid.settle(claim_objects(claims), book)}
    again = {r.claim_id: r for r in medaid.settle(claim_objects(shuffled), book)}
    assert {k: (r.relief, r.second_relief) for k, r in first.items()} == \
        {k: (r.relief, r.second_relief) for k, r in again.items()}


@LIGHT
@given(st.data())
def test_claims_the_reference_refuses_are_refused_together_and_nothing_is_settled(data):
    rs = data.draw(scheme_rule_sets(), "rule set")
    book, (parsed,) = load([rs])
    claims = data.draw(raw_claims(rs), "claims")
    refused = claims_refused([parsed], claims)
    if not refused:
        assert len(medaid.settle(claim_objects(claims), book)) == len(claims)
        return
    try:
        medaid.settle(claim_objects(claims), book)
    except medaid.ClaimError as e:
        assert {p.source for p in e.problems} == {f"claim {c['claim_id']}" for c in refused}
        for c in refused:
            try:
                ref.place([parsed], c)
            except ref.Refused as why:
                if why.field == "household_id":
                    assert [p.field for p in e.problems if p.source == f"claim {c['claim_id']}"] == ["household_id"]
    else:
        raise AssertionError(f"settled, but the reference refuses {[c['claim_id'] for c in refused]}")


@LIGHT
@given(st.data())
def test_no_cap_pool_ever_exceeds_its_cap_for_a_person_or_a_household(data):
    parsed, rows = settled(data)
    total: dict[tuple[str, str, int], int] = defaultdict(int)
    for r, plan, c in rows:
        for stage_caps, amount in ((plan.get("caps", []), r.relief - r.second_relief),
                                   (plan.get("second", {}).get("caps", []), r.second_relief)):
            for name in stage_caps:
                per = parsed["caps"][name].get("per", "person")
                who = c["household_id"] if per == "household" else c["person_id"]
                total[(name, who, r.benefit_year)] += amount
    for (name, who, year), relief in total.items():
        assert relief <= ref.fen(parsed["caps"][name]["annual"]), (name, who, year)


@LIGHT
@given(st.data())
def test_a_year_mode_second_stage_gives_the_years_burden_its_relief_when_no_cap_binds(data):
    parsed, settlements = settled(data)
    by_id = {r.claim_id: c for r, _, c in settlements}
    years: dict[tuple[str, int, str], list[Any]] = defaultdict(list)
    for r, plan, _ in settlements:
        if "second" in plan:
            years[(r.person_id, r.benefit_year, plan["second"]["pool"])].append((r, plan["second"]))
    for rows in years.values():
        seconds = [s for _, s in rows]
        if any(s != seconds[0] for s in seconds) or seconds[0].get("accumulate", "year") != "year":
            continue  # the property is about one second stage in year mode
        if any(r.second_capped_by is not None for r, _ in rows):
            continue
        second = seconds[0]
        burden = sum(r.self_pay - (r.relief - r.second_relief) + (
            int(ref.fen(by_id[r.claim_id].get("non_compliant") or 0)) if second.get("include_non_compliant") else 0)
            for r, _ in rows)
        rounding = second.get("rounding", parsed.get("rounding", {}))
        assert sum(r.second_relief for r, _ in rows) == ref.rounded(rounding, ref.f(second, Fraction(burden)))


@FAST
@given(bracket_specs(step=20_000, top=50), st.lists(st.integers(0, 2_000_000), min_size=1, max_size=8),
       st.sampled_from(["fen", "jiao", "yuan"]), st.sampled_from(["half-up", "half-even", "down"]),
       st.randoms(use_true_random=False))
def test_however_a_years_burden_is_split_its_second_relief_is_the_same(spec, parts, unit, method, rnd):
    # a first stage that relieves nothing (0% from 0), so each claim's burden is its self-pay
    second = {"pool": "burden", **spec, "accumulate": "year", "rounding": {"unit": unit, "method": method}}
    rs = {"id": "t", "version": "1", "valid_from": dt.date(2024, 1, 1),
          "plans": [{"name": "p", "default": True, "pool": "main", "brackets": [{"from": "0", "rate": "0%"}],
                     "second": second}]}
    book, (parsed,) = load([rs])
    total = sum(parts)
    splits = [parts, [total], sorted(parts), _resplit(total, len(parts), rnd)]
    want = ref.rounded(parsed["plans"][0]["second"]["rounding"], ref.f(parsed["plans"][0]["second"], Fraction(total)))
    for split in splits:
        claims = [{"claim_id": f"C{i:02d}", "person_id": "P1", "date": f"2024-{1 + i % 12:02d}-{1 + i // 12:02d}",
                   "self_pay": yuan_text(x)} for i, x in enumerate(split)]
        got = medaid.settle(claim_objects(claims), book)
        if all(r.second_capped_by is None for r in got):  # (a gate, whole mode or rounding can
            assert sum(r.second_relief for r in got) == want, split  # give more than a claim's burden)


def _resplit(total: int, n: int, rnd: random.Random) -> list[int]:
    cuts = sorted(rnd.randint(0, total) for _ in range(n - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total])]

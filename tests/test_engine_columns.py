"""A large call of ``medaid.settle`` is computed in columns (issue 16; medaid.batch.objects):
the same settlements as the scalar loop, field by field, and the reliefs of the independent
reference; a call the columns cannot take (a duplicate id, a claim no plan matches) is refused
with the scalar loop's own messages.

The hand-worked case runs at the real threshold; the generated ones lower it so that every
generated call goes through the columns."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings

import medaid
import reference_schemes as ref
from extended_books import KEY_BRACKETS
from medaid import tuning
from medaid.batch import objects
from medaid.domain import engine
from strategies_schemes import load
from test_columnar import books_and_claims, load_texts
from test_reference import books, claim_dicts

#: a year-mode plan with the source policy's brackets and an annual cap of 40,000 yuan
YEAR_RULES = """id = "county"
version = "2024"
valid_from = 2024-01-01
rounding = { unit = "fen", method = "half-up" }

[[plans]]
name = "inpatient"
default = true
pool = "inpatient"
accumulate = "year"
annual_cap = "40000"
""" + KEY_BRACKETS


def every_call_in_columns():
    """Both thresholds at one claim, polars loaded: every call of the generated tests goes
    through the columns (the patch is checked by counting the calls that did)."""
    return mock.patch.multiple(tuning, FRAME_SETTLE_FROM=1, FRAME_SETTLE_COLD=1)


def scalar(claims, book, opening=None):
    """The scalar engine, the definition (every call below the threshold is settled by it)."""
    return engine.settle(claims, book, opening)


def outcome(fn, claims, book):
    try:
        return fn(claims, book)
    except medaid.ClaimError as e:
        return sorted(str(p) for p in e.problems)


@pytest.fixture
def book(tmp_path: Path) -> medaid.RuleBook:
    (tmp_path / "county.toml").write_text(YEAR_RULES, encoding="utf-8")
    return medaid.load_rules(tmp_path)


def fillers(n: int) -> list[medaid.Claim]:
    """``n`` stays of 500 yuan, each of a person of its own: below the 1,000 yuan threshold,
    no relief."""
    return [medaid.Claim.from_yuan(claim_id=f"F{i:05d}", person_id=f"Q{i:05d}", date="2024-03-01",
                                   self_pay="500") for i in range(n)]


def test_a_year_of_claims_in_one_call_settles_in_columns_as_the_policy_says(book):
    # P1's two stays: 30,000 yuan, then 25,000 yuan, among enough other claims to go through
    # the columns at the real threshold.
    # First: 9,000 × 70% + 20,000 × 85% = 6,300 + 17,000 = 23,300 yuan.
    # Second, year mode, on the span 30,000 → 55,000: 20,000 × 85% + 5,000 × 95% = 21,750 yuan,
    # above what the 40,000 annual cap leaves (40,000 − 23,300 = 16,700): 16,700, annual_cap.
    stays = [medaid.Claim.from_yuan(claim_id="B", person_id="P1", date="2024-09-01", self_pay="25000"),
             medaid.Claim.from_yuan(claim_id="A", person_id="P1", date="2024-05-01", self_pay="30000")]
    claims = [*fillers(tuning.FRAME_SETTLE_FROM), *stays]
    import polars  # noqa: F401  (a batch user's process has it loaded)

    with mock.patch.object(objects, "settle_claims", wraps=objects.settle_claims) as columns:
        got = medaid.settle(claims, book)
    assert columns.call_count == 1
    second, first = got[-2:]
    assert (first.claim_id, first.relief, first.capped_by) == ("A", 2_330_000, None)
    assert (first.base_from, first.base_to) == (0, 3_000_000)
    assert (first.ytd_self_pay, first.ytd_relief) == (3_000_000, 2_330_000)
    assert (second.claim_id, second.relief, second.capped_by) == ("B", 1_670_000, "annual_cap")
    assert second.bracket_relief == 2_175_000
    assert (second.base_from, second.base_to) == (3_000_000, 5_500_000)
    assert (second.ytd_self_pay, second.ytd_relief, second.patient_pays) == (5_500_000, 4_000_000, 830_000)
    assert [(s.lower, s.base, s.relief) for s in second.segments] == [  # 20,000 × 85%, 5,000 × 95%
        (1_000_000, 2_000_000, 1_700_000), (5_000_000, 500_000, 475_000)]
    assert second.rule_hash == book.versions()[0].content_hash  # the full sha256, as the engine gives
    assert (second.rule_version, second.plan, second.benefit_year) == ("2024", "inpatient", 2024)
    assert second.annual_cap == 4_000_000
    assert all(f.relief == 0 and f.capped_by is None for f in got[:-2])


def test_a_large_call_starts_from_the_opening_positions_given(book):
    # P1 has already had 30,000 yuan of self-pay and 23,300 yuan of relief this year (the
    # ledger's rows); the 25,000 yuan stay then gets what the cap leaves: 16,700 yuan.
    stay = medaid.Claim.from_yuan(claim_id="B", person_id="P1", date="2024-09-01", self_pay="25000")
    opening = {("P1", 2024, "inpatient"): medaid.PoolState(3_000_000, 2_330_000)}
    with every_call_in_columns(), mock.patch.object(objects, "settle_claims", wraps=objects.settle_claims) as columns:
        (got,) = medaid.settle([stay], book, opening)
    assert columns.call_count == 1
    assert (got.relief, got.capped_by, got.base_from, got.base_to, got.ytd_relief) == (
        1_670_000, "annual_cap", 3_000_000, 5_500_000, 4_000_000)


def test_a_duplicate_claim_id_in_a_large_call_is_refused_as_the_scalar_loop_refuses_it(book):
    claims = [*fillers(3), medaid.Claim.from_yuan(claim_id="F00001", person_id="P1", date="2024-05-01",
                                                  self_pay="30000")]
    with every_call_in_columns(), pytest.raises(medaid.ClaimError) as e:
        medaid.settle(claims, book)
    assert [str(p) for p in e.value.problems] == ["claim F00001: claim_id: duplicate claim id"]


def test_a_small_call_stays_in_the_scalar_loop_and_does_not_load_polars(book):
    # the desk settles one claim: polars is not imported for it (its import alone costs more
    # than the whole settlement)
    with mock.patch.dict(sys.modules), mock.patch.object(objects, "settle_claims") as columns:
        for name in [m for m in sys.modules if m == "polars" or m.startswith("polars.")]:
            del sys.modules[name]
        medaid.settle(fillers(tuning.FRAME_SETTLE_FROM - 1), book)
        assert "polars" not in sys.modules
    assert columns.call_count == 0


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books_and_claims())
def test_in_columns_every_field_equals_the_scalar_loops(case):
    texts, claims = case
    try:
        book = load_texts(texts)
    except medaid.RuleError:
        return  # a generated rule combination the rule checks refuse
    placeable = [c for c in claims if not isinstance(engine.placement(c, book), medaid.Problem)]
    with every_call_in_columns(), mock.patch.object(objects, "settle_claims", wraps=objects.settle_claims) as columns:
        got = outcome(medaid.settle, claims, book)
        got_placeable = medaid.settle(placeable, book)
    assert columns.call_count == 1 + bool(placeable)
    assert got == outcome(scalar, claims, book)  # the same settlements, or the same problems
    assert got_placeable == scalar(placeable, book)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), claim_dicts())
def test_in_columns_the_reliefs_equal_the_fraction_reference_claim_by_claim(rule_sets, claims):
    book, parsed = load(rule_sets)
    want = ref.settle(parsed, claims)
    with every_call_in_columns():
        got = medaid.settle([medaid.Claim.from_yuan(**c) for c in claims], book)
    assert [r.claim_id for r in got] == [c["claim_id"] for c in claims]
    for r in got:
        w = want[r.claim_id]
        assert (r.plan, r.pool, r.benefit_year, r.rule_version) == (w.plan, w.pool, w.benefit_year, w.rule_version)
        assert (r.relief, r.bracket_relief, r.capped_by) == (w.relief, w.bracket_relief, w.capped_by), r.claim_id
        assert (r.ytd_self_pay, r.ytd_relief) == (w.ytd_self_pay, w.ytd_relief)


def test_opening_positions_in_columns_equal_the_scalar_loops(book):
    # positions of several persons and years, some in a pool no claim touches
    claims = [medaid.Claim(claim_id=f"C{i}", person_id=f"P{i % 3}", date=dt.date(2024, 1 + i % 12, 1 + i % 27),
                           self_pay=(i * 7_919_993) % 4_000_000) for i in range(60)]
    opening = {("P0", 2024, "inpatient"): medaid.PoolState(1_000_000, 300_000),
               ("P1", 2024, "inpatient"): medaid.PoolState(6_000_000, 3_990_000),
               ("P2", 2023, "inpatient"): medaid.PoolState(9_000_000, 4_000_000),
               ("P2", 2024, "outpatient"): medaid.PoolState(1, 1)}
    with every_call_in_columns():
        got = medaid.settle(claims, book, opening)
    assert got == scalar(claims, book, opening)
    assert sum(r.relief for r in got if r.person_id == "P1") == 10_000  # what the cap left P1

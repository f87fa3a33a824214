"""The bracket function, gate, modes, caps and rounding units, worked out by hand
(docs/calculation.md#the-bracket-function, #rounding, #accumulation), and the engine's fast closure
equal to the readable arithmetic."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import medaid
from medaid.domain.brackets import CAP_ANNUAL, CAP_CLAIM, CAP_SELF_PAY, Schedule
from medaid.money import round_ratio
from strategies import schedules

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def book():
    return medaid.load_rules(ROOT / "rules")


def fen(yuan: str) -> int:
    return medaid.parse_yuan(yuan)


def stay(amount: str, *, cid: str = "C1", day: str = "2024-05-03", group: str = "key",
         kind: str = "inpatient", person: str = "P1") -> medaid.Claim:
    return medaid.Claim.from_yuan(claim_id=cid, person_id=person, date=day, self_pay=amount,
                                  group=group, kind=kind)


def write_rules(tmp_path: Path, plan: str, head: str = "") -> medaid.RuleBook:
    f = tmp_path / "r.toml"
    f.write_text(f'id = "t"\nversion = "1"\nvalid_from = 2024-01-01\n{head}\n[[plans]]\n'
                 f'name = "p"\ndefault = true\npool = "all"\n{plan}\n', encoding="utf-8")
    return medaid.load_rules(f)


def relief_of(book: medaid.RuleBook, *amounts: str) -> list[int]:
    claims = [medaid.Claim.from_yuan(claim_id=f"C{i}", person_id="P", date=dt.date(2024, 3, 1 + i),
                                     self_pay=a) for i, a in enumerate(amounts)]
    return [r.relief for r in medaid.settle(claims, book)]


# --------------------------------------------------------------------------------------------
# every edge of the shipped key-recipients inpatient plan: 70% / 85% / 95% from 1,000 / 10,000 /
# 50,000 yuan, marginal, claim mode, rounded half-up to the fen


@pytest.mark.parametrize(
    "self_pay, relief",
    [
        ("999.99", "0.00"),  # below the threshold
        ("1000.00", "0.00"),  # at the threshold: nothing above it yet
        ("1000.01", "0.01"),  # 0.01 × 70% = 0.007 yuan = 0.7 fen → 1 fen
        ("9999.99", "6299.99"),  # 8,999.99 × 70% = 6,299.993 → 6,299.99
        ("10000.00", "6300.00"),  # 9,000 × 70%
        ("10000.01", "6300.01"),  # 6,300 + 0.01 × 85% = 6,300.0085 → 6,300.01
        ("49999.99", "40299.99"),  # 6,300 + 39,999.99 × 85% = 6,300 + 33,999.9915 → 40,299.99
        ("50000.00", "40300.00"),  # 6,300 + 40,000 × 85% = 6,300 + 34,000
        ("50000.01", "40300.01"),  # 40,300 + 0.01 × 95% = 40,300.0095 → 40,300.01
    ],
)
def test_every_bracket_edge_of_the_source_policy(book, self_pay, relief):
    r = medaid.quote(stay(self_pay), book)
    assert r.relief == fen(relief)
    assert r.patient_pays == fen(self_pay) - fen(relief)
    assert r.capped_by is None
    assert r.plan == "key-inpatient"


def test_segments_add_up_to_the_exact_bracket_relief(book):
    r = medaid.quote(stay("50000.01"), book)
    # 9,000 at 70%, 40,000 at 85%, 0.01 at 95%
    assert [(s.base, s.rate) for s in r.segments] == [
        (900_000, Decimal("0.7")), (4_000_000, Decimal("0.85")), (1, Decimal("0.95"))]
    assert sum(s.relief for s in r.segments) == Decimal("4030000.95")


# --------------------------------------------------------------------------------------------
# whole mode: the containing bracket's rate on all of x − 1,000

WHOLE = """mode = "whole"
brackets = [
  { from = "1000",  to = "10000", rate = "70%" },
  { from = "10000", to = "50000", rate = "85%" },
  { from = "50000",               rate = "95%" },
]"""


@pytest.mark.parametrize(
    "self_pay, relief",
    [
        ("1000.00", "0.00"),
        ("1000.01", "0.01"),  # 0.01 × 70% → 0.7 fen → 0.01
        ("9999.99", "6299.99"),  # 8,999.99 × 70% = 6,299.993
        ("10000.00", "7650.00"),  # 9,000 × 85%: the whole base jumps to the next rate
        ("10000.01", "7650.01"),  # 9,000.01 × 85% = 7,650.0085
        ("49999.99", "41649.99"),  # 48,999.99 × 85% = 41,649.9915
        ("50000.00", "46550.00"),  # 49,000 × 95%
        ("100000", "94050.00"),  # 99,000 × 95%
    ],
)
def test_whole_mode_applies_the_containing_rate_to_the_whole_base(tmp_path, self_pay, relief):
    assert relief_of(write_rules(tmp_path, WHOLE), self_pay) == [fen(relief)]


def test_whole_mode_segment_is_the_whole_base_at_the_containing_rate(tmp_path):
    book = write_rules(tmp_path, WHOLE)
    (r,) = medaid.settle([stay("10000", group=None, kind=None)], book)  # type: ignore[arg-type]
    assert [(s.lower, s.base, s.rate) for s in r.segments] == [(1_000_000, 900_000, Decimal("0.85"))]


# --------------------------------------------------------------------------------------------
# gate: "threshold included" — brackets from 0, nothing unless x ≥ gate

GATE = """gate = "1000"
brackets = [
  { from = "0",     to = "10000", rate = "70%" },
  { from = "10000",               rate = "85%" },
]"""


@pytest.mark.parametrize(
    "self_pay, relief",
    [
        ("999.99", "0.00"),  # gate not met
        ("1000.00", "700.00"),  # gate met: 1,000 × 70% from 0
        ("1000.01", "700.01"),  # 1,000.01 × 70% = 700.007
        ("10000.01", "7000.01"),  # 7,000 + 0.0085
    ],
)
def test_a_gate_gives_nothing_below_it_and_everything_from_zero_once_met(tmp_path, self_pay, relief):
    assert relief_of(write_rules(tmp_path, GATE), self_pay) == [fen(relief)]


def test_a_gate_in_year_mode_releases_the_year_at_once_but_never_above_the_claim(tmp_path):
    book = write_rules(tmp_path, 'accumulate = "year"\ngate = "1000"\n'
                       'brackets = [{ from = "0", rate = "100%" }]')
    # C = 900 → gate not met → 0; C = 1,100 → f = 1,100, increment 1,100 > self-pay 200 → 200
    claims = [stay(a, cid=f"C{i}", day=f"2024-03-0{i}", group=None, kind=None)  # type: ignore[arg-type]
              for i, a in ((1, "900"), (2, "200"))]
    r1, r2 = medaid.settle(claims, book)
    assert (r1.relief, r2.relief) == (0, 20_000)
    assert (r2.bracket_relief, r2.capped_by) == (110_000, CAP_SELF_PAY)


# --------------------------------------------------------------------------------------------
# a closed last bracket: nothing more above it

CLOSED = """brackets = [
  { from = "1000",  to = "10000", rate = "70%" },
  { from = "10000", to = "20000", rate = "85%" },
]"""


@pytest.mark.parametrize(
    "self_pay, relief",
    [
        ("19999.99", "14799.99"),  # 6,300 + 9,999.99 × 85% = 6,300 + 8,499.9915
        ("20000.00", "14800.00"),  # 6,300 + 8,500
        ("20000.01", "14800.00"),  # nothing above the closed bracket
        ("1000000", "14800.00"),
    ],
)
def test_a_closed_last_bracket_relieves_nothing_above_it(tmp_path, self_pay, relief):
    assert relief_of(write_rules(tmp_path, CLOSED), self_pay) == [fen(relief)]


# --------------------------------------------------------------------------------------------
# caps


def test_the_claim_cap_binds_on_a_large_outpatient_visit(book):
    # shipped outpatient plan: year mode, 70% above 200 a year, 3,000 a visit, 10,000 a year.
    # C = 150 → 0; C = 300 → 100 × 70% = 70; C = 5,300 → 5,100 × 70% = 3,570, increment 3,500
    claims = [stay(a, cid=f"O{i}", day=f"2024-02-0{i}", kind="outpatient-special")
              for i, a in ((1, "150"), (2, "150"), (3, "5000"))]
    rs = medaid.settle(claims, book)
    assert [r.relief for r in rs] == [0, 7_000, 300_000]
    assert [r.capped_by for r in rs] == [None, None, CAP_CLAIM]
    assert rs[2].bracket_relief == 350_000
    assert rs[2].ytd_relief == 307_000 and rs[2].ytd_self_pay == 530_000


def test_the_annual_cap_binds_on_the_second_stay(book):
    # 100,000 → 87,800 (40,300 + 50,000 × 95%); 30,000 would give 23,300 but only
    # 100,000 − 87,800 = 12,200 is left of the example annual cap; then nothing is left
    claims = [stay(a, cid=f"C{i}", day=f"2024-0{i}-01") for i, a in ((1, "100000"), (2, "30000"), (3, "5000"))]
    rs = medaid.settle(claims, book)
    assert [r.relief for r in rs] == [8_780_000, 1_220_000, 0]
    assert [r.capped_by for r in rs] == [None, CAP_ANNUAL, CAP_ANNUAL]
    assert rs[2].ytd_relief == 10_000_000


def test_pools_are_separate_per_person_and_year_and_shared_by_plans(book):
    # low-income inpatient shares the inpatient pool (and its cap) with key recipients only for the
    # same person: a different person, a different year or the outpatient pool start afresh
    claims = [
        stay("100000", cid="A1", day="2024-01-10"),
        stay("30000", cid="A2", day="2024-02-10", group="low-income"),  # 60% of 28,000 = 16,800 > 12,200
        stay("30000", cid="B1", day="2024-02-10", person="P2"),
        stay("30000", cid="A3", day="2025-01-10"),
        stay("5000", cid="A4", day="2024-03-10", kind="outpatient-special"),  # 4,800 × 70% = 3,360 → 3,000
    ]
    rs = {r.claim_id: r for r in medaid.settle(claims, book)}
    assert rs["A2"].relief == 1_220_000 and rs["A2"].capped_by == CAP_ANNUAL
    assert rs["A2"].plan == "low-income-inpatient" and rs["A2"].pool == "inpatient"
    assert rs["B1"].relief == 2_330_000
    assert rs["A3"].relief == 2_330_000 and rs["A3"].benefit_year == 2025
    assert rs["A4"].relief == 300_000 and rs["A4"].pool == "outpatient-special"


# --------------------------------------------------------------------------------------------
# rounding units and methods through a rule file


@pytest.mark.parametrize(
    "unit, method, self_pay, relief",
    [
        # 50% of 0.50 yuan above 1,000 = 0.25 yuan = 2.5 jiao
        ("jiao", "half-up", "1000.50", "0.30"),
        ("jiao", "half-even", "1000.50", "0.20"),
        ("jiao", "down", "1000.50", "0.20"),
        # 50% of 0.70 = 0.35 yuan = 3.5 jiao: half-even goes to the even jiao, 4
        ("jiao", "half-even", "1000.70", "0.40"),
        # 50% of 3 yuan = 1.5 yuan
        ("yuan", "half-up", "1003", "2.00"),
        ("yuan", "half-even", "1003", "2.00"),
        ("yuan", "down", "1003", "1.00"),
        # 50% of 5 yuan = 2.5 yuan
        ("yuan", "half-up", "1005", "3.00"),
        ("yuan", "half-even", "1005", "2.00"),
        # 50% of 0.01 = half a fen
        ("fen", "half-up", "1000.01", "0.01"),
        ("fen", "half-even", "1000.01", "0.00"),
        ("fen", "half-even", "1000.03", "0.02"),  # 1.5 fen → 2
        ("fen", "down", "1000.03", "0.01"),
    ],
)
def test_rounding_unit_and_method_of_the_rule_set(tmp_path, unit, method, self_pay, relief):
    book = write_rules(tmp_path, 'brackets = [{ from = "1000", rate = "50%" }]',
                       head=f'rounding = {{ unit = "{unit}", method = "{method}" }}')
    assert relief_of(book, self_pay) == [fen(relief)]


def test_year_mode_rounds_the_cumulative_value_not_each_claim(tmp_path):
    # 50% above 1,000, fen half-up, year mode: C = 1,000.01 → 0.5 fen → 1; C = 1,000.02 → 1 fen,
    # increment 1 − 1 = 0; C = 1,000.03 → 1.5 → 2 fen, increment 1
    book = write_rules(tmp_path, 'accumulate = "year"\nbrackets = [{ from = "1000", rate = "50%" }]')
    assert relief_of(book, "1000.01", "0.01", "0.01") == [1, 0, 1]


# --------------------------------------------------------------------------------------------
# the bracket table: f and the gate as exact integer pieces, the one definition that the
# scalar engine and the columnar batch both evaluate


def test_the_shipped_key_inpatient_brackets_as_a_table_of_pieces():
    # 70% of 1,000-10,000, 85% of 10,000-50,000, 95% above, in fen, rates over 100:
    # f(x)·100 = intercept + slope·x on each piece; f(10,000 yuan)·100 = 70 × 900,000 = 63,000,000,
    # f(50,000 yuan)·100 = 63,000,000 + 85 × 4,000,000 = 403,000,000
    sched = Schedule(lowers=[100_000, 1_000_000, 5_000_000], uppers=[1_000_000, 5_000_000, None],
                     rates=[Decimal("0.70"), Decimal("0.85"), Decimal("0.95")])
    tb = sched.table
    assert (tb.scale, tb.gate, tb.lows) == (100, 0, (0, 100_000, 1_000_000, 5_000_000))
    assert tb.slopes == (0, 70, 85, 95)
    assert tb.intercepts == (0, -70 * 100_000, 63_000_000 - 85 * 1_000_000, 403_000_000 - 95 * 5_000_000)
    # a 30,000 yuan stay: (−22,000,000 + 85 × 3,000,000) / 100 = 2,330,000 fen = 23,300 yuan
    assert tb.scaled_value(3_000_000) == 233_000_000
    # the bracket reached inside each piece, and exactly at its lower end (not yet entered)
    assert tb.brackets == (0, 1, 2, 3)
    assert tb.brackets_at_low == (0, 0, 1, 2)
    with pytest.raises(AttributeError):
        tb.gate = 1  # frozen


# the compiled closure (Schedule.relieve_raw) equals R(f) by money.round_ratio and the cap rule
# written out here (docs/calculation.md, *Accumulation*, *Caps*)


@settings(max_examples=300)
@given(schedules(), st.integers(0, 6_000_000), st.integers(0, 6_000_000), st.integers(0, 4_000_000))
def test_the_compiled_arithmetic_is_r_of_f_then_the_caps(sched, s, c, g):
    def r_of_f(x: int) -> int:  # R(f(x)): the bracket table's exact value, the one rounding
        return round_ratio(sched.scaled_value(x), sched.scale, sched.unit, sched.method)

    if sched.accumulate == "claim":
        inc, span = r_of_f(s), (0, s)
    else:
        inc, span = r_of_f(c + s) - r_of_f(c), (c, c + s)
    limits = [inc, s]
    if sched.claim_cap is not None:
        limits.append(sched.claim_cap)
    if sched.annual_cap is not None:
        limits.append(sched.annual_cap - g)
    relief = max(0, min(limits))
    got = sched.relieve_raw(s, c, g)
    assert (got[0], got[1], got[3], got[4]) == (relief, inc, *span)
    assert tuple(sched.relieve(s, c, g)) == got


@settings(max_examples=200)
@given(schedules(), st.integers(0, 6_000_000))
def test_scaled_value_is_the_bracket_sum_exactly(sched, x):
    # f(x) = Σ rate_i × max(0, min(x, to_i) − from_i) (marginal) or rate_j × (x − from_1) (whole),
    # zero below the gate; computed here with Fractions from the schedule's own bounds
    if sched.gate is not None and x < sched.gate:
        want = Fraction(0)
    elif sched.mode == "marginal":
        want = sum((Fraction(r) * max(0, min(x, hi if hi is not None else x) - lo)
                    for lo, hi, r in zip(sched.lowers, sched.uppers, sched.rates)), Fraction(0))
    else:
        containing = [r for lo, hi, r in zip(sched.lowers, sched.uppers, sched.rates)
                      if lo <= x and (hi is None or x < hi)]
        want = Fraction(containing[0]) * (x - sched.lowers[0]) if x > sched.lowers[0] else Fraction(0)
    assert Fraction(sched.scaled_value(x), sched.scale) == want


@settings(max_examples=150)
@given(schedules(), st.integers(0, 6_000_000), st.integers(0, 6_000_000))
def test_marginal_segments_add_up_to_the_increment_of_f(sched, a, b):
    lo, hi = min(a, b), max(a, b)
    if sched.mode != "marginal" or (sched.gate is not None and lo < sched.gate):
        return
    total = sum((Fraction(s.relief) for s in sched.segments(lo, hi)), Fraction(0))
    assert total == Fraction(sched.scaled_value(hi) - sched.scaled_value(lo), sched.scale)


# --------------------------------------------------------------------------------------------
# "capped" and "bracket", defined once (docs/rules.md, "Version changes inside a benefit year")


def test_a_claim_is_not_capped_when_its_bracket_relief_is_0_though_the_pool_is_above_the_cap():
    # a later version lowered the cap to 50,000 while the pool already holds 68,800 of relief:
    # a 500 yuan claim is below the 1,000 threshold (bracket relief 0), so no limit reduced it;
    # a 20,000 yuan claim (bracket relief 6,300 + 10,000 × 85% = 14,800) is cut to 0 by the cap
    sched = Schedule(lowers=[100_000, 1_000_000, 5_000_000], uppers=[1_000_000, 5_000_000, None],
                     rates=[Decimal("0.70"), Decimal("0.85"), Decimal("0.95")], annual_cap=5_000_000)
    assert tuple(sched.relieve(50_000, 0, 6_880_000))[:3] == (0, 0, None)
    assert sched.relieve_raw(50_000, 0, 6_880_000)[:3] == (0, 0, None)
    assert tuple(sched.relieve(2_000_000, 0, 6_880_000))[:3] == (0, 1_480_000, CAP_ANNUAL)
    assert sched.relieve_raw(2_000_000, 0, 6_880_000)[:3] == (0, 1_480_000, CAP_ANNUAL)


@settings(max_examples=300)
@given(schedules(), st.integers(0, 6_000_000), st.integers(0, 6_000_000), st.integers(0, 4_000_000))
def test_capped_by_is_set_exactly_when_a_limit_made_the_relief_smaller(sched, s, c, g):
    # g may exceed the annual cap (a later version lowered it): relief is then 0
    relief, inc, capped, _, _ = sched.relieve_raw(s, c, g)
    assert (capped is not None) == (relief < inc)
    limits = {CAP_ANNUAL: None if sched.annual_cap is None else max(0, sched.annual_cap - g),
              CAP_CLAIM: sched.claim_cap, CAP_SELF_PAY: s}
    if capped is not None:
        assert relief == limits[capped]  # the named limit is the one the relief came down to


@settings(max_examples=300)
@given(schedules(), st.integers(0, 6_000_000))
def test_the_bracket_reached_is_the_last_bracket_of_the_explanation(sched, x):
    # the explanation from 0 to the base lists every bracket holding a positive part of it
    # (whole mode: the one containing it); the bracket reached is the last of them, 0 if none
    segs = [seg for seg in sched.segments(0, x) if seg.base > 0]
    want = sched.lowers.index(segs[-1].lower) + 1 if segs else 0
    assert sched.bracket_reached(x) == want

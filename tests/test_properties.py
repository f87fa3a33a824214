"""Properties docs/calculation.md says the rules must have, plan and version selection, benefit years,
and the package's promises (fast import, typed, complete ``__all__``)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import assume, given, settings, strategies as st

import medaid
from medaid.domain.brackets import CAP_ANNUAL
from strategies import schedules

ROOT = Path(__file__).resolve().parent.parent
UNIT = {1: "fen", 10: "jiao", 100: "yuan"}

fens = st.integers(0, 20_000_000)


@pytest.fixture(scope="module")
def book():
    return medaid.load_rules(ROOT / "rules")


def claim(cid: str, amount_fen: int, day: dt.date | str, *, person: str = "P1", group: str | None = "key",
          kind: str | None = "inpatient") -> medaid.Claim:
    if isinstance(day, str):
        day = dt.date.fromisoformat(day)
    return medaid.Claim(claim_id=cid, person_id=person, date=day, self_pay=amount_fen, group=group, kind=kind)


def write(tmp: Path, name: str, text: str) -> Path:
    f = tmp / name
    f.write_text(text, encoding="utf-8")
    return f


# --------------------------------------------------------------------------------------------
# the arithmetic of one plan


@settings(max_examples=200)
@given(schedules(), fens, fens, fens)
def test_relief_is_never_negative_nor_above_the_self_pay(sched, s, c, g):
    r = sched.relieve(s, c, g).relief
    assert 0 <= r <= s


@settings(max_examples=200)
@given(schedules(mode="marginal"), fens, fens, fens)
def test_marginal_relief_is_at_most_the_top_rate_times_the_self_pay_plus_one_unit(sched, s, c, g):
    # a gate crossed in year mode releases the year's whole f(C) at once: the bound does not hold
    # there (nor in whole mode, where the whole base jumps to the next rate); docs/calculation.md states
    # it for the marginal reading
    assume(sched.gate is None or sched.accumulate == "claim")
    r = sched.relieve(s, c, g).relief
    top = max(sched.rate_nums)
    assert r * sched.scale <= top * s + sched.unit * sched.scale


@settings(max_examples=200)
@given(schedules(accumulate="claim", ascending=True), fens, st.integers(1, 5_000_000))
def test_relief_does_not_fall_when_the_self_pay_rises(sched, s, more):
    # claim mode, a fresh pool, ascending rates; both modes, gate and caps included
    assert sched.relieve(s).relief <= sched.relieve(s + more).relief


@settings(max_examples=150)
@given(
    schedules(accumulate="year", gate=False, caps=False, max_rate=950, ascending=True),
    st.integers(0, 20_000_000),
    st.lists(st.integers(0, 1000), min_size=0, max_size=8),
)
def test_year_mode_total_is_the_same_however_the_year_is_split(sched, total, cuts):
    # cut the yearly self-pay at arbitrary points: the reliefs telescope to R(f(total))
    points = sorted({0, total, *(total * k // 1000 for k in cuts)})
    c = g = 0
    for lo, hi in zip(points, points[1:]):
        out = sched.relieve(hi - lo, c, g)
        assume(out.capped_by is None)  # a binding self-pay limit (rounding up a tiny claim) aside
        c, g = c + hi - lo, g + out.relief
    assert g == sched.relieve(total).relief


# --------------------------------------------------------------------------------------------
# a person's year through the engine

inpatient_amounts = st.lists(st.integers(0, 15_000_000), min_size=1, max_size=12)


@settings(max_examples=100)
@given(inpatient_amounts, st.randoms(use_true_random=False))
def test_a_persons_yearly_relief_never_exceeds_the_annual_cap_in_any_order(book, amounts, rnd):
    # shipped inpatient pool: example annual cap 100,000 yuan, shared by key and low-income plans
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=d) for d in rnd.sample(range(360), len(amounts))]
    groups = [rnd.choice(["key", "low-income"]) for _ in amounts]
    claims = [claim(f"C{i}", a, d, group=gr) for i, (a, d, gr) in enumerate(zip(amounts, days, groups))]
    results = medaid.settle(claims, book)
    assert sum(r.relief for r in results) <= 10_000_000
    assert max(r.ytd_relief for r in results) == sum(r.relief for r in results)
    # and the cap is what stopped it: no claim lost relief to anything but the annual cap
    assert all(r.relief == r.bracket_relief or r.capped_by == CAP_ANNUAL for r in results)


@settings(max_examples=100)
@given(
    st.lists(st.tuples(st.integers(0, 8_000_000), st.integers(0, 700), st.sampled_from(["P1", "P2"]),
                       st.sampled_from(["inpatient", "outpatient-special"])), min_size=1, max_size=15),
    st.randoms(use_true_random=False),
)
def test_results_are_the_same_whatever_order_the_claims_are_given_in(book, rows, rnd):
    claims = [claim(f"C{i:02d}", a, dt.date(2024, 1, 1) + dt.timedelta(days=d), person=p, kind=k)
              for i, (a, d, p, k) in enumerate(rows)]
    shuffled = claims[:]
    rnd.shuffle(shuffled)
    by_id = {r.claim_id: r for r in medaid.settle(claims, book)}
    again = medaid.settle(shuffled, book)
    assert [r.claim_id for r in again] == [c.claim_id for c in shuffled]  # results in input order
    for r in again:
        assert r == by_id[r.claim_id]
        assert r.to_dict() == by_id[r.claim_id].to_dict()


def test_claims_on_one_day_are_taken_in_claim_id_order(book):
    # same day: C1 (100,000) first takes 87,800; C2 (30,000) gets the 12,200 left, given either way
    a, b = claim("C1", 10_000_000, "2024-05-01"), claim("C2", 3_000_000, "2024-05-01")
    assert [r.relief for r in medaid.settle([b, a], book)] == [1_220_000, 8_780_000]


def test_an_opening_state_continues_a_pool(book):
    opening = {("P1", 2024, "inpatient"): medaid.PoolState(self_pay=10_000_000, relief=8_780_000)}
    (r,) = medaid.settle([claim("C1", 3_000_000, "2024-05-01")], book, opening)
    assert (r.relief, r.capped_by, r.ytd_relief, r.ytd_self_pay) == (1_220_000, CAP_ANNUAL, 10_000_000, 13_000_000)


# --------------------------------------------------------------------------------------------
# plan and version selection: errors name the claim


def test_a_claim_no_plan_matches_is_an_error_naming_the_claim(book):
    with pytest.raises(medaid.ClaimError) as info:
        medaid.settle([claim("C1", 100, "2024-05-01"), claim("C9", 100, "2024-05-01", group="tourist")], book)
    (p,) = info.value.problems
    assert p.source == "claim C9" and p.field == "group/kind"
    assert "'tourist'" in p.message and "'inpatient'" in p.message and "key/inpatient" in p.message


def test_a_claim_with_no_group_and_kind_goes_to_the_default_plan(book):
    r = medaid.quote(claim("C1", 3_000_000, "2024-05-01", group=None, kind=None), book)
    assert (r.plan, r.relief) == ("key-inpatient", 2_330_000)


def test_a_date_no_version_covers_is_an_error_not_a_zero(book):
    with pytest.raises(medaid.ClaimError) as info:
        medaid.quote(claim("C7", 3_000_000, "2018-12-31"), book)
    (p,) = info.value.problems
    assert p.source == "claim C7" and p.field == "date"
    assert "2018-12-31" in p.message and "2019-01-01" in p.message


def test_duplicate_claim_ids_are_refused_with_every_other_problem_and_nothing_settled(book):
    claims = [claim("C1", 100, "2024-05-01"), claim("C1", 200, "2024-05-02"), claim("C2", 100, "2018-01-01")]
    with pytest.raises(medaid.ClaimError) as info:
        medaid.settle(claims, book)
    assert sorted((p.source, p.field) for p in info.value.problems) == [("claim C1", "claim_id"), ("claim C2", "date")]
    assert "duplicate" in str(info.value)


def test_several_schemes_need_one_chosen(tmp_path):
    for i in (1, 2):
        write(tmp_path, f"s{i}.toml", f'id = "s{i}"\nversion = "1"\nvalid_from = 2024-01-01\n'
              '[[plans]]\nname = "p"\ndefault = true\npool = "x"\nbrackets = [{ from = "0", rate = "50%" }]\n')
    book = medaid.load_rules(tmp_path)
    with pytest.raises(medaid.RuleError, match="choose one"):
        medaid.quote(claim("C1", 100, "2024-05-01", group=None, kind=None), book)
    assert medaid.quote(claim("C1", 100, "2024-05-01", group=None, kind=None), book.select("s2")).rule_set_id == "s2"


# --------------------------------------------------------------------------------------------
# benefit years and versions

APRIL = """id = "t"
version = "{version}"
valid_from = {valid_from}
{valid_to}
benefit_year_start_month = 4
[[plans]]
name = "p"
default = true
pool = "inpatient"
annual_cap = "1000"
brackets = [{{ from = "0", rate = "{rate}" }}]
"""


def test_a_benefit_year_starting_in_april_restarts_the_pool_on_1_april(tmp_path):
    book = medaid.load_rules(write(tmp_path, "t.toml", APRIL.format(version="1", valid_from="2020-01-01",
                                                                     valid_to="", rate="100%")))
    days = ["2024-03-31", "2024-04-01", "2025-03-31", "2025-04-01"]
    rs = medaid.settle([claim(f"C{i}", 80_000, d, group=None, kind=None) for i, d in enumerate(days)], book)
    # 800 yuan each at 100%, cap 1,000 a benefit year: 2023-24 gets 800; 2024-25 gets 800 then 200
    assert [r.benefit_year for r in rs] == [2023, 2024, 2024, 2025]
    assert [r.relief for r in rs] == [80_000, 80_000, 20_000, 80_000]


def test_two_versions_within_one_year_continue_one_pool(tmp_path):
    write(tmp_path, "v1.toml",
          APRIL.format(version="1", valid_from="2020-01-01", valid_to="valid_to = 2024-06-30", rate="100%"))
    write(tmp_path, "v2.toml", APRIL.format(version="2", valid_from="2024-07-01", valid_to="", rate="50%"))
    book = medaid.load_rules(tmp_path)
    rs = medaid.settle([claim("C1", 60_000, "2024-06-30", group=None, kind=None),
                        claim("C2", 100_000, "2024-07-01", group=None, kind=None)], book)
    # v1: 600 × 100% = 600; v2: 1,000 × 50% = 500, but only 1,000 − 600 = 400 is left this year
    assert [(r.rule_version, r.relief) for r in rs] == [("1", 60_000), ("2", 40_000)]
    assert rs[1].capped_by == CAP_ANNUAL and rs[1].ytd_self_pay == 160_000
    assert rs[0].rule_hash != rs[1].rule_hash and len(rs[0].rule_hash) == 64


# --------------------------------------------------------------------------------------------
# the package


def test_import_medaid_does_not_import_polars_or_openpyxl():
    code = "import sys, medaid; print(sorted(m for m in ('polars', 'openpyxl', 'pyarrow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT / "src")})
    assert out.stdout.strip() == "[]"


def test_the_package_is_typed_and_ships_its_marker():
    assert (ROOT / "src" / "medaid" / "py.typed").is_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["medaid"]


def test_all_lists_every_public_name_and_only_names_that_exist():
    import types

    public = {n for n, v in vars(medaid).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public <= set(medaid.__all__)
    assert all(hasattr(medaid, n) for n in medaid.__all__)
    for needed in ("load_rules", "settle", "quote", "place", "Claim", "PoolState", "Settlement", "RuleBook",
                   "RuleSet", "Plan", "Segment", "Problem", "MedaidError", "RuleError", "ClaimError",
                   "MoneyError", "parse_yuan", "format_yuan"):
        assert needed in medaid.__all__


def test_every_public_function_says_which_rule_it_implements():
    for n in medaid.__all__:
        obj = getattr(medaid, n)
        if callable(obj) and not isinstance(obj, type):
            assert obj.__doc__ and len(obj.__doc__) > 40, n

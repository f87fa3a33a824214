"""Year-end indicators (docs/report.md, "The indicators") on a small year worked by hand.

The year: three persons, five claims (money in fen).

claim | person | date       | kind       | hosp | self-pay   | total cost | major  | relief    | pays      | capped | br
------|--------|------------|------------|------|------------|------------|--------|-----------|-----------|--------|---
C1    | P1     | 2024-01-10 | inpatient  | H1   | 30,000.00  | 100,000.00 | yes    | 23,300.00 | 6,700.00  |        | 2
C2    | P1     | 2024-03-05 | inpatient  | H1   | 100,000.00 | 250,000.00 | yes    | 76,700.00 | 23,300.00 | annual | 3
C3    | P2     | 2024-03-20 | inpatient  | H2   | 500.00     | 4,000.00   | no     | 0.00      | 500.00    |        | 0
C4    | P3     | 2024-03-21 | outpatient | H2   | 5,000.00   | (none)     | no     | 3,000.00  | 2,000.00  | claim  | 1
C5    | P2     | 2025-01-02 | inpatient  | H1   | 12,345.67  | 50,000.00  | (none) | 8,293.82  | 4,051.85  |        | 2

(C2: 87,800 by the brackets, but only 100,000 − 23,300 = 76,700 is left of the annual cap;
C4: 70% × (5,000 − 200) = 3,360, cut to the 3,000 claim cap.)
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import polars as pl
import pytest

from medaid.report.indicators import compute, figure_text, percent_text

D = dt.date
ROWS = [
    # claim, person, date, kind, hospital, self_pay, total_cost, major, relief, patient_pays, capped_by, bracket,
    # plan, group
    ("C1", "P1", D(2024, 1, 10), "inpatient", "H1", 3_000_000, 10_000_000, True, 2_330_000, 670_000, None, 2,
     "key-inpatient", "key"),
    ("C2", "P1", D(2024, 3, 5), "inpatient", "H1", 10_000_000, 25_000_000, True, 7_670_000, 2_330_000, "annual_cap", 3,
     "key-inpatient", "key"),
    ("C3", "P2", D(2024, 3, 20), "inpatient", "H2", 50_000, 400_000, False, 0, 50_000, None, 0,
     "low-income-inpatient", "low-income"),
    ("C4", "P3", D(2024, 3, 21), "outpatient-special", "H2", 500_000, None, False, 300_000, 200_000, "claim_cap", 1,
     "key-outpatient-special", "key"),
    ("C5", "P2", D(2025, 1, 2), "inpatient", "H1", 1_234_567, 5_000_000, None, 829_382, 405_185, None, 2,
     "low-income-inpatient", "low-income"),
]
COLS = ["claim_id", "person_id", "date", "kind", "hospital", "self_pay", "total_cost", "major_disease",
        "relief", "patient_pays", "capped_by", "bracket", "plan", "group"]
SCHEMA = {"claim_id": pl.String, "person_id": pl.String, "date": pl.Date, "kind": pl.String,
          "hospital": pl.String, "self_pay": pl.Int64, "total_cost": pl.Int64, "major_disease": pl.Boolean,
          "relief": pl.Int64, "patient_pays": pl.Int64, "capped_by": pl.String, "bracket": pl.Int8,
          "plan": pl.String, "group": pl.String}


def year_frame(rows=ROWS, drop=()) -> pl.DataFrame:
    df = pl.DataFrame([dict(zip(COLS, r)) for r in rows], schema=SCHEMA)
    return df.drop(list(drop))


def pct(num: int, den: int) -> str:
    """A percentage to 2 decimals, half-up, by Decimal: the test's own rounding."""
    return str((Decimal(num) * 100 / Decimal(den)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


@pytest.fixture(scope="module")
def rep():
    return compute(year_frame(), source="year", budget=10_000_000)


def fig(r, key):
    return r.figure(key)


def test_person_times_and_persons(rep):
    assert fig(rep, "claims").value == 5
    assert fig(rep, "assisted_claims").value == 4  # C3 got nothing
    assert fig(rep, "persons").value == 3
    assert fig(rep, "assisted_persons").value == 3  # P2 is assisted through C5


def test_totals_are_exact_sums_in_fen(rep):
    assert fig(rep, "self_pay_total").value == 3_000_000 + 10_000_000 + 50_000 + 500_000 + 1_234_567
    assert fig(rep, "relief_total").value == 11_129_382
    assert figure_text(fig(rep, "relief_total")) == "111,293.82"
    assert fig(rep, "patient_pays_total").value == 3_655_185  # = self-pay − relief


def test_fund_used_against_a_100000_yuan_budget(rep):
    used = fig(rep, "budget_used")
    assert used.ratio == (11_129_382, 10_000_000)
    assert figure_text(used) == "111.29%"
    assert figure_text(fig(rep, "budget_left")) == "-11,293.82"


def test_average_relief_rounds_half_up_to_the_fen(rep):
    # 11,129,382 / 5 = 2,225,876.4 fen → 22,258.76; / 4 = 2,782,345.5 fen → 27,823.46 (half-up)
    assert figure_text(fig(rep, "avg_relief_per_claim")) == "22,258.76"
    assert figure_text(fig(rep, "avg_relief_per_assisted")) == "27,823.46"


def test_self_pay_ratio_uses_only_rows_with_total_cost(rep):
    f = fig(rep, "self_pay_ratio")
    # C4 has no total cost: Σ pays = 670,000 + 2,330,000 + 50,000 + 405,185; Σ cost = 40,400,000
    assert f.ratio == (3_455_185, 40_400_000)
    assert figure_text(f) == "8.55%" == pct(3_455_185, 40_400_000) + "%"
    assert (f.rows, f.missing) == (4, 1)


def test_self_pay_ratio_by_claim_kind(rep):
    inpatient = fig(rep, "self_pay_ratio.inpatient")
    assert inpatient.ratio == (3_455_185, 40_400_000) and inpatient.missing == 0
    outpatient = fig(rep, "self_pay_ratio.outpatient-special")
    assert outpatient.ratio is None and (outpatient.rows, outpatient.missing) == (0, 1)
    assert figure_text(outpatient) == "n/a"


def test_major_disease_share_among_assisted_claims(rep):
    # assisted: C1 (yes), C2 (yes), C4 (no), C5 (flag missing)
    assert fig(rep, "major_disease_claims").value == 2
    share = fig(rep, "major_disease_share")
    assert share.ratio == (2, 3) and figure_text(share) == "66.67%"
    assert (share.rows, share.missing) == (3, 1)


def test_capped_claims_and_persons(rep):
    assert fig(rep, "capped_claims").value == 2
    assert fig(rep, "persons_capped_any_limit").value == 2
    assert fig(rep, "persons_at_annual_cap").value == 1  # only the annual-cap claim's person
    capped = {r[0]: r[1:] for r in rep.tables["capped"].rows}
    assert capped == {"annual_cap": (1, 1, 7_670_000), "claim_cap": (1, 1, 300_000)}


def test_claims_reaching_each_bracket(rep):
    t = rep.tables["brackets"]
    assert t.column("bracket") == [0, 1, 2, 3]
    assert t.column("col_claims") == [1, 1, 2, 1]  # highest bracket: C3 | C4 | C1, C5 | C2
    assert t.column("col_reached") == [None, 4, 3, 1]  # a claim at bracket 3 has reached 1 and 2
    assert t.column("col_relief") == [0, 300_000, 2_330_000 + 829_382, 7_670_000]


def test_monthly_series(rep):
    t = rep.tables["monthly"]
    assert t.column("month") == ["2024-01", "2024-03", "2025-01"]
    assert t.column("col_claims") == [1, 3, 1]
    assert t.column("col_persons") == [1, 3, 1]
    assert t.column("col_relief") == [2_330_000, 7_970_000, 829_382]


def test_every_figure_says_what_it_was_computed_from(rep):
    for f in rep.figures:
        assert f.source, f.key
        assert f.rows + f.missing <= 5 or f.key == "budget"


def test_the_year_keeps_only_that_benefit_year():
    r = compute(year_frame(), year=2024)
    assert r.rows_read == 5 and r.rows_in_scope == 4
    assert fig(r, "relief_total").value == 2_330_000 + 7_670_000 + 300_000
    assert fig(r, "persons").value == 3
    assert r.years == (2024,)


def test_benefit_year_column_wins_over_the_date():
    # A benefit year starting in July: a January 2025 claim belongs to benefit year 2024.
    df = year_frame().with_columns(pl.Series("benefit_year", [2024, 2024, 2024, 2024, 2024], dtype=pl.Int32))
    assert compute(df, year=2024).rows_in_scope == 5
    assert compute(df, year=2025).rows_in_scope == 0


@pytest.mark.parametrize("by, keys, reliefs", [
    ("hospital", ["H1", "H2"], [2_330_000 + 7_670_000 + 829_382, 300_000]),
    ("kind", ["inpatient", "outpatient-special"], [2_330_000 + 7_670_000 + 829_382, 300_000]),
    ("group", ["key", "low-income"], [2_330_000 + 7_670_000 + 300_000, 829_382]),
    ("plan", ["key-inpatient", "key-outpatient-special", "low-income-inpatient"], [10_000_000, 300_000, 829_382]),
    ("month", ["2024-01", "2024-03", "2025-01"], [2_330_000, 7_970_000, 829_382]),
])
def test_breakdown_by(by, keys, reliefs):
    t = compute(year_frame(), by=by).tables["by"]
    assert t.column(by) == keys
    assert t.column("col_relief") == reliefs
    assert sum(t.column("col_claims")) == 5
    assert t.column("col_persons")  # the chosen breakdown counts persons


def test_breakdown_share_of_relief_and_ratio_are_exact():
    t = compute(year_frame(), by="hospital").tables["by"]
    h2 = dict(zip(t.column("hospital"), t.column("col_relief_share")))["H2"]
    assert h2 == (300_000, 11_129_382)
    assert percent_text(h2) == pct(300_000, 11_129_382)  # 2.70
    ratio = dict(zip(t.column("hospital"), t.column("col_self_pay_ratio")))
    assert ratio["H2"] == (50_000, 400_000)  # C4 has no total cost
    assert percent_text(ratio["H2"]) == "12.50"


def test_absent_columns_are_counted_as_missing_on_every_row():
    r = compute(year_frame(drop=("total_cost", "major_disease", "capped_by", "hospital")))
    for key in ("self_pay_ratio", "total_cost_total", "capped_claims", "persons_capped_any_limit",
                "persons_at_annual_cap"):  # every figure made from capped_by is n/a without it
        f = fig(r, key)
        assert f.value is None and f.ratio is None, key
        assert (f.rows, f.missing) == (0, 5), key
    share = fig(r, "major_disease_share")
    assert share.ratio is None and share.missing == 4  # the four assisted claims lack the flag
    hosp = r.tables["hospital"]
    assert hosp.column("hospital") == [None] and hosp.missing == 5
    assert set(r.absent_columns) >= {"total_cost", "major_disease", "capped_by", "hospital"}


def test_missing_values_are_counted_per_figure():
    rows = [list(r) for r in ROWS]
    rows[0][1] = None  # C1 without a person id
    rows[2][11] = None  # C3 without a bracket
    rows[3][8] = None  # C4 without a relief
    r = compute(year_frame([tuple(x) for x in rows]))
    assert (fig(r, "persons").value, fig(r, "persons").missing) == (3, 1)  # P1 still has C2
    # assisted persons need both columns: C1 and C4 lack one each; P1 (C2) and P2 (C5) remain
    assert (fig(r, "assisted_persons").value, fig(r, "assisted_persons").missing) == (2, 2)
    assert (fig(r, "relief_total").rows, fig(r, "relief_total").missing) == (4, 1)
    assert r.tables["brackets"].missing == 1
    assert r.tables["brackets"].column("bracket")[-1] is None


def test_percentages_round_half_up_not_to_even():
    # 1 of 8 = 12.5% exactly, 1 of 16 = 6.25%, 1 of 32 = 3.125% → 3.13 (half-up), 1/3 → 33.33
    assert [percent_text((1, 8)), percent_text((1, 16)), percent_text((1, 32)), percent_text((1, 3))] == [
        "12.50", "6.25", "3.13", "33.33"]
    assert percent_text((2, 3)) == "66.67" and percent_text((0, 5)) == "0.00"


def test_empty_scope_gives_no_values_not_errors():
    r = compute(year_frame(), year=2030)
    assert r.rows_in_scope == 0
    assert fig(r, "claims").value == 0
    assert fig(r, "self_pay_ratio").ratio is None
    assert fig(r, "avg_relief_per_claim").ratio is None


def test_distinct_persons_match_a_plain_count_on_many_ids():
    n = 20_000
    df = pl.DataFrame({
        "claim_id": [f"C{i}" for i in range(n)],
        "person_id": [f"P{(i * 7919) % 6007}" for i in range(n)],
        "date": [D(2024, 1 + i % 12, 1) for i in range(n)],
        "relief": [i % 5 for i in range(n)],
    })
    r = compute(df)
    assert fig(r, "persons").value == len({f"P{(i * 7919) % 6007}" for i in range(n)})
    assisted = {f"P{(i * 7919) % 6007}" for i in range(n) if i % 5}
    assert fig(r, "assisted_persons").value == len(assisted)
    by_month = {}
    for i in range(n):
        by_month.setdefault(1 + i % 12, set()).add(f"P{(i * 7919) % 6007}")
    assert r.tables["monthly"].column("col_persons") == [len(by_month[m]) for m in range(1, 13)]


def test_exact_ratio_is_kept_unreduced_for_machines(rep):
    f = fig(rep, "relief_rate")
    assert Fraction(*f.ratio) == Fraction(11_129_382, 14_784_567)

"""The columnar indicators equal a slow, clearly correct count over the same rows in Python."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import polars as pl
from hypothesis import given, settings, strategies as st

from medaid.report.indicators import compute

row = st.fixed_dictionaries({
    "person_id": st.sampled_from(["P1", "P2", "P3", "P4", None]),
    "date": st.dates(dt.date(2024, 1, 1), dt.date(2025, 12, 31)),
    "self_pay": st.integers(0, 10**9),
    "relief_share": st.fractions(0, 1),
    "total_cost": st.one_of(st.none(), st.integers(0, 10**9)),
    "kind": st.sampled_from(["inpatient", "outpatient-special", None]),
    "capped_by": st.sampled_from([None, None, "annual_cap", "claim_cap"]),
    "major_disease": st.sampled_from([True, False, None]),
})


def frame(rows):
    out = []
    for i, r in enumerate(rows):
        relief = int(r["self_pay"] * r["relief_share"])
        out.append({
            "claim_id": f"C{i}", "person_id": r["person_id"], "date": r["date"], "self_pay": r["self_pay"],
            "relief": relief, "patient_pays": r["self_pay"] - relief, "total_cost": r["total_cost"],
            "kind": r["kind"], "capped_by": r["capped_by"], "major_disease": r["major_disease"],
        })
    schema = {"claim_id": pl.String, "person_id": pl.String, "date": pl.Date, "self_pay": pl.Int64,
              "relief": pl.Int64, "patient_pays": pl.Int64, "total_cost": pl.Int64, "kind": pl.String,
              "capped_by": pl.String, "major_disease": pl.Boolean}
    return out, pl.DataFrame(out, schema=schema)


@settings(max_examples=60, deadline=None)
@given(st.lists(row, min_size=0, max_size=40), st.sampled_from([None, 2024, 2025]))
def test_indicators_equal_a_plain_python_count(rows, year):
    dicts, df = frame(rows)
    r = compute(df, year=year)
    scope = [d for d in dicts if year is None or d["date"].year == year]
    assisted = [d for d in scope if d["relief"] > 0]
    assert r.figure("claims").value == len(scope)
    assert r.figure("assisted_claims").value == len(assisted)
    persons = {d["person_id"] for d in scope if d["person_id"] is not None}
    # no person id on any row in scope: the figure has no value (not a misleading 0)
    assert r.figure("persons").value == (len(persons) if persons or not scope else None)
    assert r.figure("relief_total").value == sum(d["relief"] for d in scope)
    costed = [d for d in scope if d["total_cost"] is not None]
    ratio = r.figure("self_pay_ratio").ratio
    den = sum(d["total_cost"] for d in costed)
    if den:
        assert Fraction(*ratio) == Fraction(sum(d["patient_pays"] for d in costed), den)
    else:
        assert ratio is None
    assert r.figure("self_pay_ratio").missing == len(scope) - len(costed)
    flagged = [d for d in assisted if d["major_disease"] is not None]
    share = r.figure("major_disease_share")
    assert share.missing == len(assisted) - len(flagged)
    if flagged:
        assert Fraction(*share.ratio) == Fraction(sum(1 for d in flagged if d["major_disease"]), len(flagged))
    capped = [d for d in scope if d["capped_by"] is not None]
    assert r.figure("capped_claims").value == len(capped)
    months = {}
    for d in scope:
        months[d["date"].strftime("%Y-%m")] = months.get(d["date"].strftime("%Y-%m"), 0) + d["relief"]
    t = r.tables["monthly"]
    assert dict(zip(t.column("month"), t.column("col_relief"))) == months

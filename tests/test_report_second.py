"""The report shows second-stage relief (倾斜救助) apart when the results carry ``second_relief``
(docs/report.md, *Second-stage relief*); results without the column report as before.

Figures by hand: the worked example of docs/calculation.md *Second stage*, claim A 30,000 →
23,300 + 850 = 24,150 and claim B 10,000 → 6,300 + 1,850 = 8,150 for person P1, and a claim of
person P2 without a second stage: 5,000 → 2,800 (the shipped brackets: 4,000 × 70%)."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from medaid.report.html import render_html
from medaid.report.indicators import compute
from medaid.report.text import render_json, render_text


def results(second: bool = True) -> pl.DataFrame:
    frame = pl.DataFrame({
        "claim_id": ["A", "B", "C"], "person_id": ["P1", "P1", "P2"],
        "date": [dt.date(2024, 1, 5), dt.date(2024, 2, 1), dt.date(2024, 2, 3)],
        "self_pay": [30_000_00, 10_000_00, 5_000_00], "relief": [24_150_00, 8_150_00, 2_800_00],
        "patient_pays": [5_850_00, 1_850_00, 2_200_00], "plan": ["s", "s", "key"],
        "capped_by": [None, None, None], "second_relief": [850_00, 1_850_00, 0],
    }, schema_overrides={"capped_by": pl.String})
    return frame if second else frame.drop("second_relief")


def figures(frame: pl.DataFrame) -> dict[str, object]:
    return {f.key: f.value for f in compute(frame).figures}


def test_second_stage_relief_is_a_figure_of_its_own_under_the_relief_paid():
    got = figures(results())
    # relief 24,150 + 8,150 + 2,800 = 35,100, of which second-stage 850 + 1,850 + 0 = 2,700, on 2 claims
    assert got["relief_total"] == 35_100_00
    assert (got["second_relief_total"], got["second_relief_claims"]) == (2_700_00, 2)
    keys = [f.key for f in compute(results()).figures]
    assert keys.index("second_relief_total") == keys.index("relief_total") + 1


@pytest.mark.parametrize("lang, line", [
    ("en", ["of", "which", "second-stage", "relief", "(倾斜救助)", "2,700.00", "Σ", "second_relief", "3", "0"]),
    ("zh", ["其中：倾斜救助金额", "2,700.00", "Σ", "倾斜救助金额", "3", "0"]),
])
def test_the_text_report_prints_the_line_in_both_languages(lang, line):
    text = render_text(compute(results()), lang)
    assert line in [ln.split() for ln in text.splitlines()]


def test_json_and_html_carry_it_too():
    rep = compute(results())
    by_key = {f["key"]: f for f in json.loads(render_json(rep, "en"))["figures"]}
    assert by_key["second_relief_total"]["value"] == "2700.00"
    html = render_html(rep, "zh")
    assert 'id="card-second_relief_total"' in html and "其中：倾斜救助金额" in html


def test_results_without_second_relief_report_as_before():
    rep = compute(results(second=False))
    assert "second_relief" not in rep.absent_columns
    assert not any(f.key.startswith("second_relief") for f in rep.figures)
    for lang in ("en", "zh"):
        text = render_text(rep, lang)
        assert "second" not in text and "倾斜" not in text
    assert "card-second_relief_total" not in render_html(rep, "en")


def test_the_breakdowns_get_a_column_of_second_stage_relief_only_when_the_results_carry_it():
    by_plan = compute(results(), by="plan").tables["by"]
    names = [c for c, _ in by_plan.columns]
    assert names.index("col_second_relief") == names.index("col_relief") + 1
    # plan s: 850 + 1,850; plan key: none
    assert dict(zip(by_plan.column("plan"), by_plan.column("col_second_relief"))) == {"key": 0, "s": 2_700_00}
    assert by_plan.column("col_relief") == [2_800_00, 32_300_00]
    without = compute(results(second=False), by="plan").tables
    assert all("col_second_relief" not in [c for c, _ in t.columns] for t in without.values())

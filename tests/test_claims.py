"""The claim record: Claim.from_yuan refuses bad input with located MedaidErrors, never a bare
ValueError or pydantic error (errors are values with locations)."""

from __future__ import annotations

import datetime as dt

import pytest

import medaid


def make(**over):
    args = dict(claim_id="C1", person_id="P1", date="2024-05-03", self_pay="30000", group="key", kind="inpatient")
    args.update(over)
    return medaid.Claim.from_yuan(**args)


def test_a_claim_reads_yuan_text_and_an_iso_date():
    c = make(self_pay="12,345.67", total_cost="２００００")
    assert (c.self_pay, c.total_cost, c.date) == (1_234_567, 2_000_000, dt.date(2024, 5, 3))


@pytest.mark.parametrize("day", ["2024-13-03", "2024-02-30", "03/05/2024", "", "yesterday"])
def test_a_bad_date_is_a_claim_error_naming_the_claim_and_field(day):
    with pytest.raises(medaid.ClaimError) as info:
        make(date=day)
    (p,) = info.value.problems
    assert (p.source, p.field) == ("claim C1", "date")
    assert "YYYY-MM-DD" in p.message


def test_a_bad_amount_is_a_money_error_naming_the_field():
    with pytest.raises(medaid.MoneyError) as info:
        make(self_pay="12.345")
    assert info.value.problems[0].field == "self_pay"


@pytest.mark.parametrize("field, value", [("claim_id", ""), ("person_id", ""), ("group", 5)])
def test_other_bad_fields_are_claim_errors_naming_the_field(field, value):
    with pytest.raises(medaid.ClaimError) as info:
        make(**{field: value})
    assert [p.field for p in info.value.problems] == [field]

"""The source policy's worked examples (docs/calculation.md#worked-examples), by hand."""

import datetime as dt

import pytest

import medaid

RULES = "rules"


def claim(amount: str, *, cid: str = "C1", day: str = "2024-05-03", kind: str = "inpatient"):
    return medaid.Claim.from_yuan(
        claim_id=cid, person_id="P1", date=day, self_pay=amount, group="key", kind=kind
    )


@pytest.fixture(scope="module")
def book():
    return medaid.load_rules(RULES)


@pytest.mark.parametrize(
    "self_pay, relief",
    [
        ("999.99", "0.00"),
        ("1000.00", "0.00"),
        ("1000.01", "0.01"),  # 0.01 × 70% = 0.007 → 0.01 (half-up to the fen)
        ("10000", "6,300.00"),  # 9,000 × 70%
        ("12345.67", "8,293.82"),  # 6,300 + 2,345.67 × 85% = 6,300 + 1,993.8195
        ("30000", "23,300.00"),  # 6,300 + 20,000 × 85%: the source report's example
        ("50000", "40,300.00"),  # 6,300 + 34,000
        ("100000", "87,800.00"),  # 40,300 + 50,000 × 95%
    ],
)
def test_a_stay_is_relieved_by_the_part_in_each_bracket(book, self_pay, relief):
    assert medaid.format_yuan(medaid.quote(claim(self_pay), book).relief) == relief


def test_a_30000_yuan_stay_leaves_the_patient_6700(book):
    r = medaid.quote(claim("30000"), book)
    assert r.patient_pays == 670_000
    assert [(s.lower, s.upper, s.base) for s in r.segments] == [
        (100_000, 1_000_000, 900_000),
        (1_000_000, 5_000_000, 2_000_000),
    ]


def test_year_mode_three_claims_of_600_give_0_140_420(tmp_path):
    rules = tmp_path / "year.toml"
    rules.write_text(
        """
id = "t"
version = "1"
valid_from = 2024-01-01
[[plans]]
name = "p"
default = true
pool = "all"
accumulate = "year"
brackets = [
  { from = "1000",  to = "10000", rate = "70%" },
  { from = "10000", to = "50000", rate = "85%" },
  { from = "50000",               rate = "95%" },
]
""",
        encoding="utf-8",
    )
    book = medaid.load_rules(rules)
    claims = [
        medaid.Claim.from_yuan(claim_id=f"C{i}", person_id="P", date=dt.date(2024, 3, i), self_pay="600")
        for i in (1, 2, 3)
    ]
    # cumulative 600 → 0; 1,200 → 200 × 70% = 140; 1,800 → 800 × 70% = 560, 560 − 140 = 420
    assert [r.relief for r in medaid.settle(claims, book)] == [0, 14_000, 42_000]

"""The worked examples of docs/calculation.md, *Rules real schemes need*, by hand: shared caps with
separate thresholds, a household cap, a second stage (倾斜救助), hospital level as a claim
attribute, fixed grants; and the rule-file mistakes these rules bring, refused naming file and key.

Every expected figure is written here in fen from the spec's tables, and each example is run
twice: by the independent reference (``tests/reference_schemes.py``, first, so a wrong hand figure
shows up there) and by ``medaid.settle`` on the rule file loaded with ``medaid.load_rules``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

import medaid
import reference_schemes as ref
from extended_books import (
    COUNTY_HEAD,
    COUNTY_HEAD as HEAD,
    KEY_BRACKETS,
    LEVELS,
    cap_pool,
    household,
    plan,
    second as second_stage,
    shared,
)


def claim(cid: str, self_pay: str, *, person: str = "P1", date: str = "2024-03-01", group: str = "key",
          kind: str = "inpatient", household: str | None = None, non_compliant: str | None = None,
          **attributes: str) -> dict[str, Any]:
    """Keyword arguments of ``medaid.Claim.from_yuan`` (also read by the reference)."""
    c: dict[str, Any] = {"claim_id": cid, "person_id": person, "date": date, "self_pay": self_pay,
                         "group": group, "kind": kind}
    if household is not None:
        c["household_id"] = household
    if non_compliant is not None:
        c["non_compliant"] = non_compliant
    if attributes:
        c["attributes"] = attributes
    return c


def write(tmp_path: Path, text: str, name: str = "county.toml") -> Path:
    path = tmp_path / name
    path.write_text(HEAD + text, encoding="utf-8")
    return path


def check(tmp_path: Path, text: str, claims: list[dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    """Each claim's figures in ``want`` (fen; ``capped_by`` names), by the reference, then by
    medaid: ``relief``, ``patient_pays``, ``capped_by``, ``second_relief``, ``second_capped_by``…"""
    path = write(tmp_path, text)
    by_ref = ref.settle([tomllib.loads(path.read_text(encoding="utf-8"))], claims)
    for cid, fields in want.items():
        assert {k: getattr(by_ref[cid], k) for k in fields} == fields, f"reference, claim {cid}"
    book = medaid.load_rules(path)
    got = {r.claim_id: r for r in medaid.settle([medaid.Claim.from_yuan(**c) for c in claims], book)}
    for cid, fields in want.items():
        assert {k: getattr(got[cid], k) for k in fields} == fields, f"medaid, claim {cid}"


# --------------------------------------------------------------------------------------------
# shared cap, separate thresholds

#: the inpatient and outpatient plans in pools named ``{inpatient_pool}`` and ``{outpatient_pool}``
SHARED_CAP = shared("{inpatient_pool}", "{outpatient_pool}")

ONE_YEAR = [
    claim("O1", "800", date="2024-01-10", kind="outpatient"),
    claim("I1", "1000", date="2024-02-01"),
    claim("I2", "8000", date="2024-03-01"),
    claim("O2", "500", date="2024-04-01", kind="outpatient"),
]


def test_outpatient_and_inpatient_share_one_cap_but_each_keeps_its_own_threshold(tmp_path):
    text = SHARED_CAP.replace("{inpatient_pool}", "inpatient").replace("{outpatient_pool}", "outpatient")
    check(tmp_path, text, ONE_YEAR, {
        "O1": {"relief": 36_000, "capped_by": None},  # (800 − 200) × 60%
        "I1": {"relief": 0, "capped_by": None},  # the inpatient C is 1,000: threshold not passed
        "I2": {"relief": 464_000, "capped_by": "cap:medical", "patient_pays": 336_000},  # 5,600 cut to 5,000 − 360
        "O2": {"relief": 0, "capped_by": "cap:medical", "patient_pays": 50_000},  # 1,100 × 60% − 360 = 300, no room
    })


def test_one_pool_for_both_would_have_let_outpatient_self_pay_meet_the_inpatient_threshold(tmp_path):
    text = SHARED_CAP.replace("{inpatient_pool}", "all").replace("{outpatient_pool}", "all")
    # C = 800 + 1,000 = 1,800 in the one pool: (1,800 − 1,000) × 70% = 560.00 for I1
    check(tmp_path, text, ONE_YEAR, {"O1": {"relief": 36_000}, "I1": {"relief": 56_000, "capped_by": None}})


# --------------------------------------------------------------------------------------------
# household cap

HOUSEHOLD = household()

MOTHER_AND_SON = [
    claim("C3", "2000", person="M", household="H1", date="2024-05-01"),
    claim("C2", "10000", person="S", household="H1", date="2024-03-01"),
    claim("C1", "10000", person="M", household="H1", date="2024-03-01"),
]


def test_a_household_of_two_shares_one_cap_in_date_then_claim_id_order(tmp_path):
    # given in reverse: C1 and C2 fall on one day, so the claim id orders them
    check(tmp_path, HOUSEHOLD, MOTHER_AND_SON, {
        "C1": {"relief": 630_000, "capped_by": None, "bracket_relief": 630_000},
        "C2": {"relief": 370_000, "capped_by": "cap:household", "bracket_relief": 630_000},
        "C3": {"relief": 0, "capped_by": "cap:household", "bracket_relief": 70_000, "patient_pays": 200_000},
    })


def test_with_c1_reversed_the_standing_claims_get_6300_and_700(tmp_path):
    # what the ledger's re-settlement after reversing C1 must equal (docs: Reversals with these
    # rules): C2 6,300.00 (+2,600.00), C3 700.00 (+700.00); the household holds 7,000.00
    check(tmp_path, HOUSEHOLD, MOTHER_AND_SON[:2], {
        "C2": {"relief": 630_000, "capped_by": None},
        "C3": {"relief": 70_000, "capped_by": None},
    })


def test_other_households_have_their_own_cap(tmp_path):
    claims = [*MOTHER_AND_SON, claim("D1", "10000", person="X", household="H2", date="2024-03-02")]
    check(tmp_path, HOUSEHOLD, claims, {"D1": {"relief": 630_000, "capped_by": None},
                                        "C2": {"relief": 370_000}})


def refused_without_household(tmp_path: Path, text: str) -> None:
    """A claim of M with no ``household_id`` is refused under ``text``, naming the field and
    the claim: by the reference, then by medaid."""
    path = write(tmp_path, text)
    c = claim("C9", "10000", person="M")
    with pytest.raises(ref.Refused) as by_ref:
        ref.settle([tomllib.loads(path.read_text(encoding="utf-8"))], [c])
    assert by_ref.value.field == "household_id"
    with pytest.raises(medaid.ClaimError) as info:
        medaid.settle([medaid.Claim.from_yuan(**c)], medaid.load_rules(path))
    assert [p.field for p in info.value.problems] == ["household_id"]
    assert "C9" in str(info.value)


def test_a_claim_without_household_id_under_a_household_cap_is_refused(tmp_path):
    refused_without_household(tmp_path, HOUSEHOLD)


def test_a_claim_whose_second_stage_binds_a_household_cap_needs_a_household_id_too(tmp_path):
    # the spec's step 1: "refuse it ... if its plan binds a household cap"; here only the second
    # stage lists the household pool
    text = HOUSEHOLD.replace('caps = ["household"]\n', "") + (
        '[plans.second]\npool = "burden"\nbrackets = [ { from = "5000", rate = "50%" } ]\ncaps = ["household"]\n')
    refused_without_household(tmp_path, text)


# --------------------------------------------------------------------------------------------
# second stage

def second(include: bool = False, cap: str = "20000") -> str:
    """The shipped inpatient brackets (claim mode, annual cap 100,000) with a second stage: 50% of
    the year's burden above 5,000, counting non-compliant costs when ``include``, at most ``cap``."""
    return plan("key-inpatient", "inpatient", "claim", 'annual_cap = "100000"\n' + KEY_BRACKETS) \
        + second_stage(f'annual_cap = "{cap}"\n', include=include)


A_AND_B = [claim("A", "30000", date="2024-02-01"), claim("B", "10000", date="2024-06-01")]


def test_the_second_stage_relieves_half_of_the_years_burden_above_5000(tmp_path):
    check(tmp_path, second(), A_AND_B, {
        # A: first 23,300; burden 6,700; (6,700 − 5,000) × 50% = 850
        "A": {"relief": 2_415_000, "second_relief": 85_000, "patient_pays": 585_000,
              "capped_by": None, "second_capped_by": None, "bracket_relief": 2_330_000},
        # B: first 6,300; burden 3,700; B = 10,400: 5,400 × 50% − 850 = 1,850
        "B": {"relief": 815_000, "second_relief": 185_000, "patient_pays": 185_000,
              "second_capped_by": None, "bracket_relief": 630_000},
    })


def test_the_second_stages_annual_cap_binds_on_its_own_relief(tmp_path):
    # second annual cap 1,000: A 850, B's 1,850 cut to the 150 left
    check(tmp_path, second(cap="1000"), A_AND_B, {
        "A": {"second_relief": 85_000, "second_capped_by": None},
        "B": {"relief": 645_000, "second_relief": 15_000, "second_capped_by": "annual_cap", "capped_by": None},
    })


#: one second stage declared once (``[second_stages.burden]``) and named by two plans
NAMED_SECOND = """
[second_stages.burden]
pool = "burden"
accumulate = "year"
annual_cap = "20000"
brackets = [ { from = "5000", rate = "50%" } ]
""" + plan("key-inpatient", "inpatient", "claim", 'annual_cap = "100000"\nsecond = "burden"\n' + KEY_BRACKETS) \
    + plan("key-outpatient", "outpatient", "year", 'second = "burden"\nbrackets = [ { from = "200", rate = "60%" } ]\n')


def test_a_second_stage_declared_once_counts_the_burden_of_every_plan_that_names_it(tmp_path):
    claims = [claim("A", "30000", date="2024-02-01"), claim("O", "1000", date="2024-06-01", kind="outpatient")]
    check(tmp_path, NAMED_SECOND, claims, {
        # A: first 23,300; burden 6,700; (6,700 − 5,000) × 50% = 850
        "A": {"relief": 2_415_000, "second_relief": 85_000},
        # O: first (1,000 − 200) × 60% = 480; burden 520; B = 7,220: 2,220 × 50% − 850 = 260
        "O": {"relief": 74_000, "second_relief": 26_000, "patient_pays": 26_000, "bracket_relief": 48_000},
    })
    (rs,) = medaid.load_rules(tmp_path / "county.toml").rule_sets
    assert rs.plans[0].second == rs.plans[1].second == rs.second_stages["burden"]


def test_a_named_second_stage_settles_as_the_same_stage_written_out_in_each_plan(tmp_path):
    claims = [claim("A", "30000", date="2024-02-01"), claim("O", "1000", date="2024-06-01", kind="outpatient"),
              claim("B", "10000", date="2024-07-01")]
    stage = second_stage('annual_cap = "20000"\n')
    written_out = plan("key-inpatient", "inpatient", "claim", 'annual_cap = "100000"\n' + KEY_BRACKETS) + stage \
        + plan("key-outpatient", "outpatient", "year", 'brackets = [ { from = "200", rate = "60%" } ]\n') + stage

    def results(text: str, name: str) -> list[dict[str, Any]]:
        # every field but the rule file's hash and the compiled arithmetic (objects of each book)
        book = medaid.load_rules(write(tmp_path, text, name))
        return [{k: v for k, v in r._asdict().items() if k != "rule_hash" and "schedule" not in k}
                for r in medaid.settle([medaid.Claim.from_yuan(**c) for c in claims], book)]

    assert results(NAMED_SECOND, "named.toml") == results(written_out, "written-out.toml")


def test_the_docs_example_of_a_shared_second_stage_loads_and_settles_by_hand(tmp_path):
    """docs/rules.md, *One second stage for several plans*: its TOML block, under a head, is a
    rule file whose two plans share one 倾斜救助 pool."""
    doc = (Path(__file__).parent.parent / "docs" / "rules.md").read_text(encoding="utf-8")
    after = doc.split("**One second stage for several plans.**", 1)[1]
    block = after.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "shared.toml"
    path.write_text(COUNTY_HEAD + block, encoding="utf-8")
    claims = [claim("D", "30500", group="dibao", date="2024-02-01"),
              claim("E", "21000", group="edge", person="P1", date="2024-05-01")]
    got = {r.claim_id: r for r in medaid.settle([medaid.Claim.from_yuan(**c) for c in claims],
                                                medaid.load_rules(path))}
    # D: first (30,500 − 500) × 70% = 21,000; burden 9,500, below 10,000: no second relief
    assert (got["D"].relief, got["D"].second_relief) == (2_100_000, 0)
    # E (same person, the same qingxie pool): first (21,000 − 1,000) × 50% = 10,000; burden
    # 11,000; B = 20,500: (20,500 − 10,000) × 50% = 5,250
    assert (got["E"].relief, got["E"].second_relief) == (1_525_000, 525_000)


def test_non_compliant_costs_count_in_the_burden_only_when_the_stage_includes_them(tmp_path):
    c = [claim("N", "10000", non_compliant="4000")]
    # burden 3,700 + 4,000 = 7,700: (7,700 − 5,000) × 50% = 1,350
    check(tmp_path, second(include=True), c, {"N": {"second_relief": 135_000, "relief": 765_000,
                                                      "patient_pays": 235_000}})


def test_non_compliant_costs_are_left_out_of_a_stage_that_does_not_include_them(tmp_path):
    c = [claim("N", "10000", non_compliant="4000")]
    # burden 3,700 only, below 5,000
    check(tmp_path, second(include=False), c, {"N": {"second_relief": 0, "relief": 630_000,
                                                       "second_capped_by": None}})


def test_the_second_stage_pays_at_most_what_the_patient_still_owes_of_the_self_pay(tmp_path):
    text = second(include=True).replace('brackets = [ { from = "5000", rate = "50%" } ]',
                                        'brackets = [ { from = "0", rate = "100%" } ]')
    # first 700; burden 1,300 + 5,000 = 6,300, increment 6,300, cut to 1,300
    check(tmp_path, text, [claim("S", "2000", non_compliant="5000")], {
        "S": {"relief": 200_000, "second_relief": 130_000, "second_capped_by": "self_pay",
              "patient_pays": 0, "capped_by": None},
    })


def test_a_cap_pool_listed_by_both_stages_counts_the_first_relief_before_the_second(tmp_path):
    # cap pool medical, 25,000 a year per person, listed by the first stage and by the second
    text = second().replace('annual_cap = "100000"\n', 'annual_cap = "100000"\ncaps = ["medical"]\n')
    text = text.replace('rate = "50%" } ]', 'rate = "50%" } ]\ncaps = ["medical"]')
    text = '[caps.medical]\nannual = "25000"\n' + text
    check(tmp_path, text, A_AND_B, {
        # A: first 23,300 (room 25,000); second 850 (room 25,000 − 23,300 = 1,700)
        "A": {"relief": 2_415_000, "second_relief": 85_000, "capped_by": None, "second_capped_by": None},
        # B: first 6,300 cut to 25,000 − 24,150 = 850; burden 10,000 − 850 = 9,150, B = 15,850:
        # 10,850 × 50% − 850 = 4,575, but the pool is spent: 0
        "B": {"relief": 85_000, "capped_by": "cap:medical", "bracket_relief": 630_000,
              "second_relief": 0, "second_capped_by": "cap:medical", "patient_pays": 915_000},
    })


# --------------------------------------------------------------------------------------------
# hospital level


def test_the_hospital_level_chooses_the_rate(tmp_path):
    check(tmp_path, LEVELS, [
        claim("L2", "10000", person="A", level="二级"),  # 9,000 × 80%
        claim("L3", "10000", person="B", level="三级"),  # 9,000 × 70%
        claim("T3", "10000", person="C", level="tertiary"),  # the code works as its name does
    ], {"L2": {"relief": 720_000}, "L3": {"relief": 630_000}, "T3": {"relief": 630_000}})
    got = medaid.settle([medaid.Claim.from_yuan(**claim("L2", "10000", level="二级"))],
                        medaid.load_rules(tmp_path / "county.toml"))
    assert got[0].plan == "county"


@pytest.mark.parametrize("attributes", [{}, {"level": ""}], ids=["no level", "empty level"])
def test_a_stay_with_no_level_is_refused_no_plan_covers_it(tmp_path, attributes):
    path = write(tmp_path, LEVELS)
    c = claim("L0", "10000", **attributes)
    with pytest.raises(ref.Refused):
        ref.settle([tomllib.loads(path.read_text(encoding="utf-8"))], [c])
    with pytest.raises(medaid.ClaimError) as info:
        medaid.settle([medaid.Claim.from_yuan(**c)], medaid.load_rules(path))
    assert "L0" in str(info.value)
    assert info.value.problems[0].field in ("group/kind", "level", "attributes.level")


def test_a_level_the_rule_set_does_not_declare_is_refused_naming_the_values_allowed(tmp_path):
    path = write(tmp_path, LEVELS)
    c = claim("L4", "10000", level="四级")
    with pytest.raises(ref.Refused):
        ref.settle([tomllib.loads(path.read_text(encoding="utf-8"))], [c])
    with pytest.raises(medaid.ClaimError) as info:
        medaid.settle([medaid.Claim.from_yuan(**c)], medaid.load_rules(path))
    text = str(info.value)
    assert "L4" in text and "level" in text and "四级" in text
    assert "三级" in text or "tertiary" in text


def test_an_attribute_the_rule_set_does_not_declare_is_not_read(tmp_path):
    check(tmp_path, LEVELS, [claim("L2", "10000", level="二级", place="异地")], {"L2": {"relief": 720_000}})


# --------------------------------------------------------------------------------------------
# a cap pool lowered by a later version


def lowered(version: str, valid: str, annual_cap: str, medical: str) -> str:
    """Version ``version`` of a rule set whose key-inpatient plan (100% from 0, its own pool,
    annual cap ``annual_cap``) is bound by the person cap pool ``medical`` of ``medical`` a year."""
    return (COUNTY_HEAD.replace('version = "2024.1"\nvalid_from = 2024-01-01', f'version = "{version}"\n{valid}')
            + cap_pool("medical", medical)
            + plan("key-inpatient", "inpatient", None,
                   f'annual_cap = "{annual_cap}"\ncaps = ["medical"]\n'
                   'brackets = [ { from = "0", rate = "100%" } ]\n'))


def test_a_cap_pool_lowered_below_what_it_granted_ties_at_zero_with_a_used_up_annual_cap(tmp_path):
    """From July the cap pool is 50.00 a year, but 80.00 of it was granted in March: its room is
    −30.00, the plan's annual cap's room 80 − 80 = 0.00. Both leave nothing; on a tie the first
    limit is named, ``annual_cap`` (docs/calculation.md, *Shared caps*)."""
    first = lowered("2024.1", "valid_from = 2024-01-01\nvalid_to = 2024-06-30", "1000", "100")
    later = lowered("2024.2", "valid_from = 2024-07-01", "80", "50")
    for name, text in (("v1.toml", first), ("v2.toml", later)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    claims = [claim("A", "80", date="2024-03-01"), claim("B", "10", date="2024-08-01")]
    want = {"A": {"relief": 8_000, "capped_by": None},  # 80 at 100%: rooms 1,000 and 100
            "B": {"relief": 0, "capped_by": "annual_cap", "patient_pays": 1_000}}
    by_ref = ref.settle([tomllib.loads(t) for t in (first, later)], claims)
    for cid, fields in want.items():
        assert {k: getattr(by_ref[cid], k) for k in fields} == fields, f"reference, claim {cid}"
    got = {r.claim_id: r for r in medaid.settle([medaid.Claim.from_yuan(**c) for c in claims],
                                                 medaid.load_rules(tmp_path))}
    for cid, fields in want.items():
        assert {k: getattr(got[cid], k) for k in fields} == fields, f"medaid, claim {cid}"


# --------------------------------------------------------------------------------------------
# fixed grants

GRANT = """
[[plans]]
name = "major-disease"
match = {{ group = ["key"], kind = ["major"] }}
pool = "major"
grant = {{ amount = "{amount}", per = "{per}" }}
"""


def test_a_grant_per_year_adds_up_to_its_amount_over_the_years_claims(tmp_path):
    check(tmp_path, GRANT.format(amount="10000", per="year"), [
        claim("G1", "6000", date="2024-01-05", kind="major"),
        claim("G2", "8000", date="2024-02-05", kind="major"),
        claim("G3", "5000", date="2024-03-05", kind="major"),
        claim("G4", "5000", date="2025-01-05", kind="major"),  # a new benefit year: the grant again
    ], {
        "G1": {"relief": 600_000, "capped_by": "self_pay"},  # 10,000 cut to the self-pay
        "G2": {"relief": 400_000, "capped_by": None, "patient_pays": 400_000},  # 10,000 − 6,000
        "G3": {"relief": 0, "capped_by": None},  # nothing left of the year's grant
        "G4": {"relief": 500_000, "capped_by": "self_pay"},
    })


def test_a_grant_per_claim_pays_its_amount_on_every_claim(tmp_path):
    check(tmp_path, GRANT.format(amount="3000", per="claim"), [
        claim("G1", "2000", date="2024-01-05", kind="major"),
        claim("G2", "5000", date="2024-02-05", kind="major"),
    ], {
        "G1": {"relief": 200_000, "capped_by": "self_pay"},
        "G2": {"relief": 300_000, "capped_by": None, "patient_pays": 200_000},
    })


# --------------------------------------------------------------------------------------------
# top-level worked examples in a rule file

EXAMPLES = HOUSEHOLD + """
[[examples]]
note = "a household of two shares one cap"
[[examples.claims]]
id = "C1"
person = "M"
household = "H1"
group = "key"
kind = "inpatient"
date = "2024-03-01"
self_pay = "10000"
relief = "6300"

[[examples.claims]]
id = "C2"
person = "S"
household = "H1"
group = "key"
kind = "inpatient"
date = "2024-03-01"
self_pay = "10000"
relief = "{c2}"
"""


def test_a_rule_files_worked_example_across_persons_is_run_at_load(tmp_path):
    path = write(tmp_path, EXAMPLES.replace("{c2}", "3700"))
    assert ref.example_mismatches(tomllib.loads(path.read_text(encoding="utf-8"))) == []
    assert medaid.load_rules(path)


def test_a_rule_files_worked_example_that_the_rules_do_not_give_is_refused(tmp_path):
    path = write(tmp_path, EXAMPLES.replace("{c2}", "6300"))
    assert ref.example_mismatches(tomllib.loads(path.read_text(encoding="utf-8"))) == [
        "examples[0]: claim C2: relief 370000, stated 630000"]
    with pytest.raises(medaid.RuleError) as info:
        medaid.load_rules(path)
    (p,) = info.value.problems
    assert p.source is not None and p.source.endswith("county.toml")
    assert p.field is not None and p.field.startswith("examples[0]")
    assert "3,700.00" in p.message and "6,300.00" in p.message


@pytest.mark.parametrize("path", sorted(Path("rules").glob("*.toml")), ids=lambda p: p.name)
def test_the_reference_gives_every_worked_example_of_the_shipped_rule_files(path):
    # the shipped files' own examples, by the independent reference (medaid checks them at load)
    rs = tomllib.loads(path.read_text(encoding="utf-8"))
    assert ref.examples(rs)
    assert ref.example_mismatches(rs) == []


# --------------------------------------------------------------------------------------------
# rule files refused, naming the file and the key

PLAN = """
[[plans]]
name = "key-inpatient"
match = { group = ["key"], kind = ["inpatient"] }
pool = "inpatient"
brackets = [ { from = "1000", rate = "70%" } ]
"""

REFUSED = {
    "unknown cap pool": (
        '[caps.medical]\nannual = "5000"\n' + PLAN + 'caps = ["medicl"]\n',
        "plans[0].caps", ["medicl", "medical"]),
    "undeclared level in match": (
        LEVELS.replace('level = ["tertiary"]', 'level = ["四级"]'),
        "plans[1].match.level", ["四级", ("tertiary", "三级")]),
    "brackets and a grant": (
        PLAN + 'grant = { amount = "1000", per = "year" }\n',
        "plans[0]", ["grant", "brackets"]),
    "plans overlapping on the level": (
        LEVELS.replace('level = ["tertiary"]', 'level = ["secondary", "tertiary"]'),
        "plans[1].match", ["plans[0]"]),
    "a level listed by one plan only does not tell plans apart": (
        LEVELS.replace(', level = ["tertiary"]', ""),
        "plans[1].match", ["plans[0]"]),
    "second pool is a first-stage pool": (
        PLAN + '[plans.second]\npool = "inpatient"\nbrackets = [ { from = "5000", rate = "50%" } ]\n',
        "plans[0].second.pool", ["inpatient"]),
    "grant per month": (
        PLAN.replace('brackets = [ { from = "1000", rate = "70%" } ]', 'grant = { amount = "1000", per = "month" }'),
        "plans[0].grant.per", ["month", "claim", "year"]),
    "second stages of one pool with different caps": (
        PLAN + '[plans.second]\npool = "burden"\nannual_cap = "20000"\nbrackets = [ { from = "5000", rate = "50%" } ]\n'
        + PLAN.replace("key-inpatient", "low-inpatient").replace('"key"', '"low"')
        + '[plans.second]\npool = "burden"\nannual_cap = "10000"\nbrackets = [ { from = "5000", rate = "50%" } ]\n',
        "plans[1].second.annual_cap", ["burden", "plans[0]"]),
    "household cap pool per family": (
        '[caps.medical]\nannual = "5000"\nper = "family"\n' + PLAN,
        "caps.medical.per", ["family", "person", "household"]),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_rule_file_using_the_new_rules_wrongly_is_refused_naming_file_and_key(tmp_path, case):
    text, field, words = REFUSED[case]
    path = write(tmp_path, text, "bad.toml")
    with pytest.raises(medaid.RuleError) as info:
        medaid.load_rules(path)
    problems = info.value.problems
    assert len(problems) == 1, [str(p) for p in problems]
    (p,) = problems
    assert p.source is not None and p.source.endswith("bad.toml")
    assert p.field is not None and p.field.startswith(field), (p.field, field)
    assert str(p).startswith(p.source) and p.field in str(p)
    for w in words:  # a tuple: any of its words
        assert any(x in p.message for x in ((w,) if isinstance(w, str) else w)), (w, str(p))


def test_a_disease_the_attribute_does_not_list_counts_as_no_disease_when_it_says_unlisted_none(tmp_path):
    # an export's 病种 column names every diagnosis; only 白血病 has a grant plan, the others settle
    # by the inpatient plan (70% above 1,000), and a grant claim of an unlisted disease has no plan
    text = '''
id = "d"
version = "1"
valid_from = 2024-01-01
[attributes.disease]
values = { leukemia = ["白血病"] }
unlisted = "none"
[[plans]]
name = "inpatient"
match = { group = ["key"], kind = ["inpatient"] }
pool = "inpatient"
brackets = [{ from = "1000", rate = "70%" }]
[[plans]]
name = "grant"
match = { group = ["key"], kind = ["grant"], disease = ["leukemia"] }
pool = "grant"
grant = { amount = "5000", per = "year" }
'''
    (tmp_path / "d.toml").write_text(text, encoding="utf-8")
    book = medaid.load_rules(tmp_path / "d.toml")

    def claim(cid: str, kind: str, disease: str) -> medaid.Claim:
        return medaid.Claim.from_yuan(claim_id=cid, person_id="P1", date="2024-03-01", self_pay="3000",
                                      group="key", kind=kind, attributes={"disease": disease})

    a, b = medaid.settle([claim("A", "inpatient", "肺炎"), claim("B", "grant", "白血病")], book)
    assert (a.plan, a.relief) == ("inpatient", 140000)  # 2,000 × 70%
    assert (b.plan, b.relief) == ("grant", 300000)  # the grant, cut to the self-pay
    try:
        medaid.settle([claim("C", "grant", "肺炎")], book)
    except medaid.ClaimError as e:
        assert e.problems[0].field == "group/kind"
    else:
        raise AssertionError("a grant claim of an unlisted disease has no plan")
    refusing = text.replace('unlisted = "none"\n', "")
    (tmp_path / "d.toml").write_text(refusing, encoding="utf-8")
    try:
        medaid.settle([claim("A", "inpatient", "肺炎")], medaid.load_rules(tmp_path / "d.toml"))
    except medaid.ClaimError as e:
        assert e.problems[0].field == "disease"
    else:
        raise AssertionError("by default an unlisted value refuses the claim")

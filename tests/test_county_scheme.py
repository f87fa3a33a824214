"""The shipped county scheme (rules/county/yuxian-2024.toml) and its example year
(examples/county-claims-2024.csv): every claim's relief and second-stage relief worked by hand
from the scheme's figures (docs/rules.md, *The county scheme*), household totals within the
household cap.

The scheme's figures (all example values): 特困人员 100% from 0; 低保对象 in 一级/二级 hospitals
70% of 500–20,000 and 80% above, in 三级 hospitals 60% of 1,000–20,000 and 70% above; 低保边缘
50% of 1,000–20,000 and 60% above; 门诊慢特病 (低保, 低保边缘) 60% of the year's self-pay above
300; a person cap `medical` of 50,000 shared by inpatient and outpatient first stages; a
household cap of 80,000 over everything; 倾斜救助 on the year's burden: 50% of 10,000–30,000,
60% above, at most 20,000 a year; a grant of 5,000 a person and year for 白血病 and 尿毒症透析.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

import medaid
from medaid.money import parse_yuan

ROOT = Path(__file__).resolve().parents[1]
RULE_FILE = ROOT / "rules" / "county" / "yuxian-2024.toml"
CLAIMS = ROOT / "examples" / "county-claims-2024.csv"

#: The household cap of the scheme (户年度限额, 80,000 yuan), in fen.
HOUSEHOLD_CAP = 80_000_00

# f₂(B), the second stage on the year's burden B: 0 up to 10,000; (B − 10,000) × 50% up to
# 30,000; 10,000 + (B − 30,000) × 60% above.
#: claim id → (relief, of which second-stage relief, capped_by, second_capped_by), yuan, by hand.
EXPECTED: dict[str, tuple[str, str, str | None, str | None]] = {
    # person A (低保对象, household H0001)
    # 门诊慢特病 800: outpatient C = 800, (800 − 300) × 60% = 300; burden 500, B = 500: no second stage
    "YX202401100001": ("300", "0", None, None),
    # 住院 400 at 一级: below the 500 threshold (the outpatient 800 does not count toward it); B = 900
    "YX202402010001": ("0", "0", None, None),
    # 住院 80,000 at 三级: 19,000 × 60% + 60,000 × 70% = 53,400, but the person cap has
    # 50,000 − 300 = 49,700 left; burden 30,300, B = 31,200: f₂(31,200) − f₂(900) = 10,000 + 720
    "YX202403010001": ("60420", "10720", "cap:medical", None),
    # 门诊慢特病 1,000: C = 1,800, 1,500 × 60% − 300 = 600, the person cap is used up: 0;
    # burden 1,000, B = 32,200: f₂ = 11,320 − 10,720 = 600
    "YX202404010001": ("600", "600", "cap:medical", None),
    # persons B1 and B2 (低保对象, household H0002, 二级 hospitals)
    # B1 住院 90,000: 19,500 × 70% + 70,000 × 80% = 69,650, person cap 50,000; burden 40,000:
    # f₂(40,000) = 10,000 + 6,000 = 16,000; household 66,000
    "YX202403010002": ("66000", "16000", "cap:medical", None),
    # B2 住院 30,000: 13,650 + 8,000 = 21,650, household cap leaves 80,000 − 66,000 = 14,000;
    # burden 16,000: f₂ = 3,000, household cap leaves 0
    "YX202403050001": ("14000", "0", "cap:household", "cap:household"),
    # B2 门诊慢特病 2,000: 1,700 × 60% = 1,020 and f₂(18,000) − f₂(16,000) = 1,000, nothing left in the household
    "YX202406100001": ("0", "0", "cap:household", "cap:household"),
    # person C (低保边缘, household H0003)
    # 定额救助 白血病 3,000: the grant 5,000 is more than the self-pay: 3,000
    "YX202405010001": ("3000", None, "self_pay", None),
    # 住院 40,000 (三级; 病种 does not matter to this plan): 19,000 × 50% + 20,000 × 60% = 21,500;
    # burden 18,500: (18,500 − 10,000) × 50% = 4,250
    "YX202406150001": ("25750", "4250", None, None),
    # 定额救助 4,000: 5,000 − 3,000 already granted this year = 2,000
    "YX202408010001": ("2000", None, None, None),
    # 定额救助 2,000: the year's 5,000 is granted
    "YX202411010001": ("0", None, None, None),
    # person D (特困人员, household H0004): 100% from 0
    "YX202401200001": ("150", None, None, None),
    "YX202404100001": ("30000", None, None, None),
    # 住院 25,000: the person cap has 50,000 − 30,150 = 19,850 left
    "YX202409010001": ("19850", None, "cap:medical", None),
    # 定额救助 尿毒症透析 6,000: 5,000 (the household has 80,000 − 50,000 left)
    "YX202410080001": ("5000", None, None, None),
    # person E (低保对象, household H0005): the same 10,500 at a 三级 and a 二级 hospital
    "YX202402200001": ("5700", "0", None, None),  # 9,500 × 60%; burden 4,800
    "YX202407020001": ("7000", "0", None, None),  # 10,000 × 70%; burden 3,500, B = 8,300
    # 门诊慢特病 3,000: 2,700 × 60% = 1,620; burden 1,380, B = 9,680: still below 10,000
    "YX202412150001": ("1620", "0", None, None),
    # person F (低保边缘, household H0006): the year's burden passes 10,000 on the second stay
    "YX202403180001": ("4750", "0", None, None),  # 9,500 × 50%; burden 5,750
    "YX202410200001": ("6625", "1125", None, None),  # 11,000 × 50% = 5,500; B = 12,250: 2,250 × 50%
}

#: household → its relief in 2024 by hand (the sums of EXPECTED).
HOUSEHOLDS = {
    "H0001": "61320",   # 300 + 0 + 60,420 + 600
    "H0002": "80000",   # 66,000 + 14,000 + 0: the household cap
    "H0003": "30750",   # 3,000 + 25,750 + 2,000 + 0
    "H0004": "55000",   # 150 + 30,000 + 19,850 + 5,000
    "H0005": "14320",   # 5,700 + 7,000 + 1,620
    "H0006": "11375",   # 4,750 + 6,625
}


@pytest.fixture(scope="module")
def book() -> medaid.RuleBook:
    return medaid.load_rules(RULE_FILE)


def claims_of_the_example_file() -> list[medaid.Claim]:
    """The example file read with the standard library (not medaid's readers), by its Chinese headers."""
    with CLAIMS.open(encoding="utf-8-sig", newline="") as f:
        return [medaid.Claim.from_yuan(
            claim_id=row["结算单号"], person_id=row["人员编号"], household_id=row["户号"],
            date=row["结算日期"], hospital=row["医疗机构"], group=row["救助对象类别"], kind=row["就诊类型"],
            self_pay=row["合规自付费用"], total_cost=row["医疗总费用"],
            attributes={"level": row["医院等级"], "disease": row["病种"]}) for row in csv.DictReader(f)]


def test_the_county_scheme_sits_beside_the_default_rules_and_is_not_loaded_with_them(book):
    assert medaid.load_rules(ROOT / "rules").schemes == ("cq-county-medical-aid",)
    assert medaid.load_rules(ROOT / "rules" / "county").schemes == ("yuxian-medical-aid",)
    rs = book.versions()[0]
    assert (rs.id, rs.version, str(rs.valid_from)) == ("yuxian-medical-aid", "2024.1", "2024-01-01")
    assert [p.name for p in rs.plans] == ["tekun", "dibao-inpatient", "dibao-inpatient-tertiary",
                                          "edge-inpatient", "outpatient-special", "major-disease-grant"]
    assert {n: (c.annual, c.per) for n, c in rs.caps.items()} == {
        "medical": (50_000_00, "person"), "household": (80_000_00, "household")}


def test_the_second_stage_is_written_once_and_shared_by_the_four_plans_that_have_one():
    """倾斜救助 is one rule of the policy: the file declares it once, as [second_stages.qingxie]."""
    (rs,) = medaid.load_rules(RULE_FILE).rule_sets
    assert [p.name for p in rs.plans if p.second is not None] == [
        "dibao-inpatient", "dibao-inpatient-tertiary", "edge-inpatient", "outpatient-special"]
    assert all(p.second == rs.second_stages["qingxie"] for p in rs.plans if p.second is not None)
    lines = RULE_FILE.read_text(encoding="utf-8").splitlines()
    assert "[plans.second]" not in lines
    assert sum(ln.startswith('second = "qingxie"') for ln in lines) == 4


def test_every_amount_of_the_county_scheme_is_marked_as_an_example_value():
    """The source gives none of the scheme's figures: each cap and grant line says so, and so does
    the first line of each bracket list (but 特困人员's 100% from 0, the policy's own words)."""
    lines = RULE_FILE.read_text(encoding="utf-8").splitlines()
    caps = [ln for ln in lines if ln.startswith(("annual", "grant ="))]
    firsts = [lines[i + 1] for i, ln in enumerate(lines) if ln.startswith("brackets = [")]
    assert len(caps) == 2 + 1 + 1 and len(firsts) == 5 + 1  # 2 cap pools, the second stage's cap, 1 grant
    for ln in caps + firsts:
        assert "示例值" in ln or '"100%"' in ln, ln


def test_rules_check_counts_the_worked_examples_across_plans_too():
    from medaid.cli.desk import rules

    out = CliRunner().invoke(rules, ["check", str(RULE_FILE)])
    assert out.exit_code == 0, out.output
    # 13 plan examples (2 + 4 + 3 + 2 + 1 + 1) and 4 across plans with 4 + 2 + 4 + 2 = 12 claims
    assert "(across plans: [[examples]])" in out.output
    row = next(ln for ln in out.output.splitlines() if "[[examples]]" in ln)
    assert row.split()[-2:] == ["4", "12"]
    assert out.output.rstrip().endswith("1 rule set(s), 6 plan(s), 17 example(s): all valid, all examples pass.")


def test_rules_show_lists_the_attributes_cap_pools_grant_and_second_stage():
    from medaid.cli.desk import rules

    out = CliRunner().invoke(rules, ["show", str(RULE_FILE), "--lang", "zh"])
    assert out.exit_code == 0, out.output
    for part in ["level", "医院等级", "primary (一级, 一级医院)", "cap:medical", "cap:household",
                 "80,000.00", "每年 5,000.00", "dibao/inpatient; level = primary, secondary",
                 "第二段：倾斜救助（累计池 qingxie）", "20,000.00"]:
        assert part in out.output, part


def test_every_claim_of_the_example_year_gets_its_hand_worked_relief(book):
    claims = claims_of_the_example_file()
    assert sorted(c.claim_id for c in claims) == sorted(EXPECTED)
    for r in medaid.settle(claims, book):
        relief, second, capped_by, second_capped_by = EXPECTED[r.claim_id]
        assert r.relief == parse_yuan(relief), r.claim_id
        assert r.patient_pays == r.self_pay - r.relief
        if second is None:  # 特困人员 and the grant: the plan has no second stage
            assert (r.second_pool, r.second_relief) == (None, 0), r.claim_id
        else:
            assert (r.second_pool, r.second_relief) == ("qingxie", parse_yuan(second)), r.claim_id
        assert (r.capped_by, r.second_capped_by) == (capped_by, second_capped_by), r.claim_id


def test_the_example_years_households_stay_within_the_household_cap(book):
    results = medaid.settle(claims_of_the_example_file(), book)
    by_household: dict[str, int] = defaultdict(int)
    for r in results:
        assert r.household_id is not None
        by_household[r.household_id] += r.relief
    assert by_household == {h: parse_yuan(v) for h, v in HOUSEHOLDS.items()}
    assert all(v <= HOUSEHOLD_CAP for v in by_household.values())
    # the year: 360,850 self-pay, 252,765 relief, of which 32,695 second-stage (10,720 + 600 + 16,000 + 4,250 + 1,125)
    assert sum(r.self_pay for r in results) == 360_850_00
    assert sum(r.relief for r in results) == 252_765_00
    assert sum(r.second_relief for r in results) == 32_695_00


def test_the_same_amount_gets_the_rate_of_its_hospital_level(book):
    """低保对象, 10,500 yuan: 一级/二级 (10,500 − 500) × 70% = 7,000; 三级 (10,500 − 1,000) × 60% = 5,700;
    a 低保对象 stay with no level is refused (no plan covers it), never settled at zero."""
    def stay(level: str | None) -> medaid.Claim:
        return medaid.Claim.from_yuan(claim_id="L", person_id="P", household_id="H", date="2024-06-01",
                                      self_pay="10500", group="低保对象", kind="住院",
                                      attributes={"level": level} if level else None)

    assert medaid.settle([stay("一级")], book)[0].relief == 7_000_00
    assert medaid.settle([stay("二级医院")], book)[0].relief == 7_000_00
    assert medaid.settle([stay("三级")], book)[0].relief == 5_700_00
    with pytest.raises(medaid.ClaimError) as e:
        medaid.settle([stay(None)], book)
    assert e.value.problems[0].field == "group/kind"


def test_a_grant_needs_a_listed_disease_and_every_claim_a_household(book):
    def grant(disease: str, household: str | None = "H") -> medaid.Claim:
        return medaid.Claim.from_yuan(claim_id="G", person_id="P", household_id=household, date="2024-06-01",
                                      self_pay="8000", group="dibao", kind="定额救助",
                                      attributes={"disease": disease})

    assert medaid.settle([grant("尿毒症")], book)[0].relief == 5_000_00
    with pytest.raises(medaid.ClaimError) as e:
        medaid.settle([grant("高血压")], book)  # an unlisted 病种 is no disease: no grant plan covers it
    assert e.value.problems[0].field == "group/kind"
    with pytest.raises(medaid.ClaimError) as e:
        medaid.settle([grant("白血病", household=None)], book)
    assert e.value.problems[0].field == "household_id"


def test_the_batch_settles_the_example_file_to_the_hand_worked_figures(tmp_path):
    """``medaid batch`` reads the file's Chinese headers (户号, 医院等级, 病种) and gives every claim
    the relief and second-stage relief above; the report of its results shows the second stage apart."""
    from medaid.batch import settle_file, write_run
    from medaid.report.indicators import build

    run = settle_file(CLAIMS, medaid.load_rules(RULE_FILE.parent))
    assert run.results.height == len(EXPECTED)
    for row in run.results.iter_rows(named=True):
        relief, second, capped_by, second_capped_by = EXPECTED[row["claim_id"]]
        assert row["relief"] == parse_yuan(relief), row["claim_id"]
        assert row["second_relief"] == parse_yuan(second or "0"), row["claim_id"]
        assert (row["capped_by"], row["second_capped_by"]) == (capped_by, second_capped_by), row["claim_id"]
    write_run(run, tmp_path / "results.csv")
    figures = {f.key: f.value for f in build(str(tmp_path / "results.csv")).figures}
    assert (figures["relief_total"], figures["second_relief_total"]) == (252_765_00, 32_695_00)
    assert figures["second_relief_claims"] == 5  # A's 住院 80,000 and 门诊 1,000; B1; C's stay; F's second stay


def test_the_independent_reference_agrees_with_the_hand_worked_figures():
    """tests/reference_schemes.py (Fraction arithmetic, nothing of medaid) on the rule file as
    tomllib reads it and the example file as the csv module reads it."""
    import tomllib

    import reference_schemes as ref

    rule_set = tomllib.loads(RULE_FILE.read_text(encoding="utf-8"))
    with CLAIMS.open(encoding="utf-8-sig", newline="") as f:
        claims = [{"claim_id": r["结算单号"], "person_id": r["人员编号"], "household_id": r["户号"],
                   "date": r["结算日期"], "self_pay": r["合规自付费用"], "group": r["救助对象类别"],
                   "kind": r["就诊类型"], "attributes": {"level": r["医院等级"], "disease": r["病种"]}}
                  for r in csv.DictReader(f)]
    got = ref.settle([rule_set], claims)
    assert {cid: (r.relief, r.second_relief, r.capped_by, r.second_capped_by) for cid, r in got.items()} == {
        cid: (parse_yuan(relief), parse_yuan(second or "0"), by, by2)
        for cid, (relief, second, by, by2) in EXPECTED.items()}

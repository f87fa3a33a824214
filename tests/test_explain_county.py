"""The desk explanation under the rules real schemes need (docs/desk.md, *Explaining a county
scheme*): the household and attributes, a fixed grant, each cap pool with what is used and left
(``cap:NAME``), and the second stage (倾斜救助) with its burden and its relief.  Figures by
hand from rules/county/yuxian-2024.toml (every amount an example value)."""

from __future__ import annotations

from pathlib import Path

import pytest

import medaid
from medaid.report.explain import explain, explain_dict

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def book() -> medaid.RuleBook:
    return medaid.load_rules(ROOT / "rules" / "county" / "yuxian-2024.toml")


#: the cap pools' titles in rules/county/yuxian-2024.toml, by which the desk names them
MEDICAL = "个人年度基本救助限额（住院、门诊慢特病共用）"
HOUSEHOLD = "户年度医疗救助限额"


def claim(cid: str, date: str, self_pay: str, kind: str, *, level: str | None = None, disease: str | None = None,
          person: str = "A", household: str = "HA", group: str = "低保对象") -> medaid.Claim:
    attrs = {k: v for k, v in (("level", level), ("disease", disease)) if v}
    return medaid.Claim.from_yuan(claim_id=cid, person_id=person, household_id=household, date=date,
                                  self_pay=self_pay, group=group, kind=kind, attributes=attrs)


@pytest.fixture(scope="module")
def year_of_a(book):
    """Person A's year (the file's first worked example): 门诊慢特病 800, 住院 400 (二级),
    住院 80,000 (三级), 门诊慢特病 1,000."""
    claims = [claim("O1", "2024-01-10", "800", "门诊慢特病"), claim("I1", "2024-02-01", "400", "住院", level="二级"),
              claim("I2", "2024-03-01", "80000", "住院", level="三级"), claim("O2", "2024-04-01", "1000", "门诊慢特病")]
    return claims, medaid.settle(claims, book)


def lines(text: str) -> list[list[str]]:
    return [ln.split() for ln in text.splitlines()]


def test_the_second_stage_and_the_cap_pools_are_explained_with_the_household(book, year_of_a):
    claims, results = year_of_a
    text = explain(results[2], claims[2], book, "en", "Settlement")
    rows = lines(text)
    # the header: the household and the hospital level as the rule file names it
    assert ["Household", "HA"] in rows and ["医院等级", "三级"] in rows
    # first stage at 三级: 19,000 × 60% = 11,400 and 60,000 × 70% = 42,000: 53,400 by brackets,
    # cut to what the person cap has left, 50,000 − 300 = 49,700
    assert ["20,000.00", "and", "above", "60,000.00", "70%", "42,000.00"] in rows
    assert ["Relief", "by", "brackets", "(rounded)", "53,400.00"] in rows
    # a cap pool is named by its title in the rule file, per person or household
    assert ["First-stage", "relief", "49,700.00", "(limited", "by", "the", "cap", "pool", MEDICAL, "(per",
            "person))"] in rows
    # the second stage: burden 80,000 − 49,700 = 30,300; the year's burden 500 + 400 + 30,300 =
    # 31,200: f₂(31,200) − f₂(900) = 10,000 + 1,200 × 60% = 10,720
    assert ["Burden", "after", "the", "first", "relief", "30,300.00"] in rows
    assert ["Second-stage", "relief", "(qingxie)", "10,720.00"] in rows
    assert ["Year-to-date", "burden,", "second-stage", "relief", "31,200.00,", "10,720.00"] in rows
    # both stages: 49,700 + 10,720 = 60,420; the patient pays 80,000 − 60,420 = 19,580
    assert ["Relief", "60,420.00"] in rows and ["Patient", "pays", "19,580.00"] in rows
    # the cap pools after the claim: the person's 300 + 49,700; the household's 300 + 49,700 + 10,720
    assert ["Cap", "pool", MEDICAL, "(per", "person)", "50,000.00", "used", "of", "50,000.00"] in rows
    assert ["Cap", "pool", HOUSEHOLD, "(per", "household)", "60,720.00", "used", "of", "80,000.00"] in rows
    assert "Legal basis of the second stage: 《渝县城乡医疗救助实施办法》（示例）第十二条" in text


def test_a_first_stage_capped_to_zero_still_shows_the_second_stage_in_chinese(book, year_of_a):
    claims, results = year_of_a
    rows = lines(explain(results[3], claims[3], book, "zh", "结算单"))
    # 门诊慢特病 1,000: the year's self-pay 800 → 1,800 above 300 at 60% = 600, but the person cap is used up
    assert ["分段救助合计（舍入后）", "600.00"] in rows
    assert ["基本救助金额", "0.00", f"(受共享限额「{MEDICAL}」（按人）所限)"] in rows
    assert [f"共享限额「{MEDICAL}」（按人）", "已用", "50,000.00，限额", "50,000.00"] in rows
    # burden 1,000, the year's burden 31,200 → 32,200, all above 30,000 at 60% = 600
    assert ["倾斜救助（qingxie）", "600.00"] in rows and ["救助金额", "600.00"] in rows
    assert ["年度累计负担、倾斜救助", "32,200.00,", "11,320.00"] in rows  # 10,720 + 600
    assert ["个人负担", "400.00"] in rows
    assert ["户号", "HA"] in rows


def test_a_fixed_grant_is_explained_in_place_of_the_bracket_relief(book):
    g = [claim("G1", "2024-05-01", "3000", "定额救助", disease="白血病", person="C", household="H3", group="低保边缘"),
         claim("G2", "2024-08-01", "4000", "定额救助", disease="白血病", person="C", household="H3", group="低保边缘")]
    results = medaid.settle(g, book)
    text = explain(results[1], g[1], book, "en", "Quote")
    rows = lines(text)
    assert ["病种", "白血病"] in rows
    assert "Segment" not in text and "Relief by brackets" not in text and "Second-stage" not in text
    # 5,000 a year, 3,000 already granted: 2,000 due and paid; the household has used 5,000 of 80,000
    assert ["Fixed", "grant", "5,000.00", "per", "year"] in rows
    assert ["Grant", "due", "(before", "caps)", "2,000.00"] in rows
    assert ["Relief", "2,000.00"] in rows and ["Patient", "pays", "2,000.00"] in rows
    assert ["Cap", "pool", HOUSEHOLD, "(per", "household)", "5,000.00", "used", "of", "80,000.00"] in rows
    first = explain(results[0], g[0], book, "zh", "Quote")
    assert "每年 5,000.00" in first and "3,000.00  (不超过合规自付费用)" in first


def test_the_household_cap_is_named_when_it_binds(book):
    """Two members of one household: 66,000 for the mother, then 14,000 of the son's 21,650."""
    m = claim("M1", "2024-03-01", "90000", "住院", level="二级", person="M", household="H2")
    s = claim("S1", "2024-03-05", "30000", "住院", level="二级", person="S", household="H2")
    results = medaid.settle([m, s], book)
    rows = lines(explain(results[1], s, book, "en", "Settlement"))
    assert ["First-stage", "relief", "14,000.00", "(limited", "by", "the", "cap", "pool", HOUSEHOLD, "(per",
            "household))"] in rows
    # burden 30,000 − 14,000 = 16,000 would get 3,000, but nothing is left in the household
    assert ["Second-stage", "relief", "(qingxie)", "0.00", "(limited", "by", "the", "cap", "pool", HOUSEHOLD,
            "(per", "household))"] in rows
    assert ["Cap", "pool", HOUSEHOLD, "(per", "household)", "80,000.00", "used", "of", "80,000.00"] in rows
    assert ["Cap", "pool", MEDICAL, "(per", "person)", "14,000.00", "used", "of", "50,000.00"] in rows


def test_the_json_carries_the_second_stages_basis(book, year_of_a):
    claims, results = year_of_a
    d = explain_dict(results[2], book)
    assert (d["relief"], d["second_relief"], d["burden"]) == ("60420.00", "10720.00", "30300.00")
    assert d["second_basis"].startswith("《渝县城乡医疗救助实施办法》（示例）第十二条")


def test_a_plan_without_the_new_rules_is_explained_as_before():
    """The shipped source policy: no household, cap pool or second-stage line appears."""
    book = medaid.load_rules(ROOT / "rules")
    c = medaid.Claim.from_yuan(claim_id="C", person_id="P1", date="2024-05-03", self_pay="30000",
                               group="key", kind="inpatient")
    text = explain(medaid.quote(c, book), c, book, "en", "Quote")
    for absent in ("Household", "Cap pool", "Second-stage", "First-stage", "Fixed grant", "second stage"):
        assert absent not in text
    assert ["Relief", "23,300.00"] in lines(text)
    assert "second_basis" not in explain_dict(medaid.quote(c, book), book)


def test_the_second_stage_is_explained_segment_by_segment():
    # 低保对象 at a 三级 hospital, 60,000.00: first stage 19,000 × 60% + 40,000 × 70% = 39,400.00,
    # burden 20,600.00; the second stage takes 50% of the year's burden from 10,000 to 30,000:
    # 10,600 × 50% = 5,300.00
    book = medaid.load_rules(ROOT / "rules" / "county")
    claim = medaid.Claim.from_yuan(claim_id="Q", person_id="P9", household_id="H9", date="2024-05-01",
                                   self_pay="60000", group="低保对象", kind="住院", attributes={"level": "三级"})
    r = medaid.quote(claim, book)
    lines = [" ".join(x.split()) for x in explain(r, claim, book, "en", "Quote").splitlines()]
    assert "Second stage: segment Burden in segment Rate Relief" in lines
    assert "10,000.00 – 30,000.00 10,600.00 50% 5,300.00" in lines
    assert "Second-stage relief (qingxie) 5,300.00" in lines
    zh = explain(r, claim, book, "zh", "试算")
    assert "倾斜救助分段" in zh and "段内个人负担" in zh

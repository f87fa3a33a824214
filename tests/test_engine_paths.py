"""The engine's two loops give the same fen: the plain loop for rule sets without the rules of
docs/calculation.md *Rules real schemes need*, and the general loop (``settle_at``) that rule
sets using them go through.  A rule set is sent down the general loop by declaring a cap pool
no plan lists (which changes nothing), or by a cap pool that repeats a pool's own annual cap
(which binds exactly where the annual cap binds, and ties name the annual cap)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings

import medaid
from test_columnar import books_and_claims, write_rules

FIELDS = ("claim_id", "relief", "patient_pays", "bracket_relief", "capped_by", "plan", "pool",
          "benefit_year", "ytd_self_pay", "ytd_relief", "base_from", "base_to", "bracket",
          "second_relief")


def outcome(texts: list[str], claims: list[medaid.Claim]) -> tuple[bool, object]:
    with tempfile.TemporaryDirectory() as d:
        try:
            book = write_rules(Path(d), *texts)
        except medaid.RuleError:
            return False, None
    try:
        return True, [tuple(getattr(r, f) for f in FIELDS) for r in medaid.settle(claims, book)]
    except medaid.ClaimError as e:
        return True, sorted(str(p) for p in e.problems)


def unused_cap_pool(text: str) -> str:
    return text + '\n[caps.unused]\nannual = "1"\n'


def annual_caps_as_cap_pools(text: str) -> str:
    """Every plan with an annual cap also lists a per-person cap pool of the same amount, one
    pool per plan pool (``pool-NAME``)."""
    pools: dict[str, str] = {}
    out = []
    for block in re.split(r"(?=\[\[plans\]\])", text):
        pool = re.search(r'^pool = "([^"]+)"', block, re.M)
        cap = re.search(r'^annual_cap = "([^"]+)"', block, re.M)
        if pool and cap:
            pools[pool.group(1)] = cap.group(1)
            block = block.replace(cap.group(0), cap.group(0) + f'\ncaps = ["pool-{pool.group(1)}"]')
        out.append(block)
    tables = "".join(f'\n[caps.pool-{p}]\nannual = "{a}"\n' for p, a in pools.items())
    return "".join(out) + tables


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books_and_claims())
def test_a_cap_pool_no_plan_lists_changes_nothing(case):
    texts, claims = case
    ok, plain = outcome(texts, claims)
    if not ok:
        return
    ok, general = outcome([unused_cap_pool(t) for t in texts], claims)
    assert ok
    assert general == plain


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books_and_claims())
def test_a_cap_pool_repeating_the_pools_annual_cap_binds_where_the_annual_cap_binds(case):
    texts, claims = case
    ok, plain = outcome(texts, claims)
    if not ok:
        return
    ok, general = outcome([annual_caps_as_cap_pools(t) for t in texts], claims)
    assert ok
    assert general == plain


def test_an_opening_carries_cap_pools_and_second_pools_into_the_year(tmp_path):
    # the shared cap and second stage of docs/calculation.md: a person who already took 4,640.00
    # of the 5,000.00 medical cap pool and carries a burden of 6,700.00 with 850.00 second relief
    (tmp_path / "r.toml").write_text('''
id = "t"
version = "1"
valid_from = 2024-01-01
[caps.medical]
annual = "5000"
[[plans]]
name = "inpatient"
match = { group = ["g"], kind = ["inpatient"] }
pool = "inpatient"
caps = ["medical"]
brackets = [{ from = "1000", rate = "70%" }]
second = { pool = "burden", annual_cap = "20000", brackets = [{ from = "5000", rate = "50%" }] }
''', encoding="utf-8")
    book = medaid.load_rules(tmp_path / "r.toml")
    opening = medaid.Positions(
        caps={("medical", "person", "P1", 2024): 464000},
        seconds={("P1", 2024, "burden"): medaid.PoolState(670000, 85000)})
    (r,) = medaid.settle([medaid.Claim.from_yuan(claim_id="X", person_id="P1", date="2024-06-01",
                                                 self_pay="3000", group="g", kind="inpatient")], book, opening)
    # first stage: 2,000 × 70% = 1,400.00, cut to the 360.00 left of the cap pool
    # second stage: burden 3,000 − 360 = 2,640.00; B = 9,340.00; (9,340 − 5,000) × 50% − 850 = 1,320.00
    assert (r.relief - r.second_relief, r.capped_by) == (36000, "cap:medical")
    assert (r.burden, r.ytd_burden, r.second_relief) == (264000, 934000, 132000)
    assert r.relief == 36000 + 132000 and r.patient_pays == 300000 - 168000

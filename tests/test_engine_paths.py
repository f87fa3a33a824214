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

"""An independent reference of docs/calculation.md, written here with ``fractions.Fraction``, compared
with ``medaid.settle`` claim by claim on generated rule sets and claim sequences.

The reference reads the generated rule files itself (``tomllib``) and calls nothing of medaid:
it has its own amount parsing, bracket function f(x), gate, marginal/whole modes, rounding
R(v), claim/year increments, caps, pools shared by plans, benefit-year start month and version
selection by date.  It is slow and plain on purpose.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

import medaid

# --------------------------------------------------------------------------------------------
# the reference


def ref_yuan(text: str | int) -> Fraction:
    """Yuan text ("1,000.50") or a whole number → yuan as a Fraction."""
    return Fraction(str(text).replace(",", ""))


def ref_rate(text: str) -> Fraction:
    return Fraction(text[:-1]) / 100 if text.endswith("%") else Fraction(text)


def ref_f(plan: dict[str, Any], x: Fraction) -> Fraction:
    """f(x) in yuan with the gate, marginal or whole."""
    if "gate" in plan and x < ref_yuan(plan["gate"]):
        return Fraction(0)
    brackets = [(ref_yuan(b["from"]), ref_yuan(b["to"]) if "to" in b else None, ref_rate(b["rate"]))
                for b in plan["brackets"]]
    if plan.get("mode", "marginal") == "marginal":
        total = Fraction(0)
        for lo, hi, rate in brackets:
            top = x if hi is None else min(x, hi)
            total += rate * max(Fraction(0), top - lo)
        return total
    first = brackets[0][0]
    if x <= first:
        return Fraction(0)
    for lo, hi, rate in brackets:
        if lo <= x and (hi is None or x < hi):
            return rate * (x - first)
    raise AssertionError("whole mode always has an open last bracket")


def ref_round(rule_set: dict[str, Any], v: Fraction) -> Fraction:
    """R(v) in yuan: to the unit (fen 0.01, jiao 0.1, yuan 1) with the method."""
    rounding = rule_set.get("rounding", {})
    unit = {"fen": Fraction(1, 100), "jiao": Fraction(1, 10), "yuan": Fraction(1)}[rounding.get("unit", "fen")]
    method = rounding.get("method", "half-up")
    n = v / unit
    if method == "down":
        q = math.floor(n)
    elif method == "half-up":
        q = math.floor(n + Fraction(1, 2))
    else:
        q = math.floor(n)
        if n - q > Fraction(1, 2) or (n - q == Fraction(1, 2) and q % 2 == 1):
            q += 1
    return q * unit


@dataclass
class RefResult:
    relief: Fraction
    bracket_relief: Fraction
    plan: str
    pool: str
    benefit_year: int
    version: str
    ytd_self_pay: Fraction
    ytd_relief: Fraction


def ref_settle(rule_sets: list[dict[str, Any]], claims: list[dict[str, Any]]) -> dict[str, RefResult]:
    """Settle claims in (date, claim id) order, per (person, benefit year, pool)."""
    pools: dict[tuple[str, int, str], tuple[Fraction, Fraction]] = {}
    out = {}
    for c in sorted(claims, key=lambda c: (c["date"], c["claim_id"])):
        day: dt.date = c["date"]
        (rs,) = [r for r in rule_sets
                 if r["valid_from"] <= day and ("valid_to" not in r or day <= r["valid_to"])]
        (plan,) = [p for p in rs["plans"] if c["group"] in p["match"]["group"] and c["kind"] in p["match"]["kind"]]
        start = rs.get("benefit_year_start_month", 1)
        year = day.year if day.month >= start else day.year - 1
        key = (c["person_id"], year, plan["pool"])
        before, granted = pools.get(key, (Fraction(0), Fraction(0)))
        s = ref_yuan(c["self_pay"])
        if plan.get("accumulate", "claim") == "claim":
            inc = ref_round(rs, ref_f(plan, s))
        else:
            inc = ref_round(rs, ref_f(plan, before + s)) - ref_round(rs, ref_f(plan, before))
        limits = [inc, s]
        if "claim_cap" in plan:
            limits.append(ref_yuan(plan["claim_cap"]))
        if "annual_cap" in plan:
            limits.append(ref_yuan(plan["annual_cap"]) - granted)
        relief = max(Fraction(0), min(limits))
        pools[key] = (before + s, granted + relief)
        out[c["claim_id"]] = RefResult(relief, inc, plan["name"], plan["pool"], year, rs["version"],
                                       before + s, granted + relief)
    return out


# --------------------------------------------------------------------------------------------
# generated rule sets, written as TOML text

GROUPS, KINDS = ("a", "b"), ("x", "y")
LAYOUTS = [  # ways to cover every (group, kind) with plans whose match is a product of lists
    [(["a", "b"], ["x", "y"])],
    [(["a"], ["x", "y"]), (["b"], ["x", "y"])],
    [(["a", "b"], ["x"]), (["a", "b"], ["y"])],
    [(["a"], ["x"]), (["a"], ["y"]), (["b"], ["x"]), (["b"], ["y"])],
]


def yuan_text(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


@st.composite
def amounts(draw, hi: int = 10_000_000) -> int:
    """Fen, often round, sometimes just off a round figure."""
    base = draw(st.integers(0, hi // 10_000)) * 10_000
    return max(0, base + draw(st.sampled_from([0, 0, 1, -1])) + draw(st.integers(-50, 50) | st.just(0)))


@st.composite
def rate_texts(draw) -> str:
    form = draw(st.integers(0, 2))
    if form == 0:
        return f"{draw(st.integers(0, 100))}%"
    if form == 1:
        return f"{draw(st.integers(0, 1000)) / 10:.1f}%"
    return f"0.{draw(st.integers(0, 999)):03d}"


@st.composite
def plan_dicts(draw, name: str, groups: list[str], kinds: list[str], pool: str,
               annual_cap: int | None) -> dict[str, Any]:
    n = draw(st.integers(1, 3))
    edges = sorted(draw(st.sets(st.integers(0, 60).map(lambda k: k * 100_000 // 2), min_size=n + 1, max_size=n + 1)))
    mode = draw(st.sampled_from(["marginal", "whole"]))
    brackets: list[dict[str, str]] = []
    for i in range(n):
        b = {"from": yuan_text(edges[i]), "to": yuan_text(edges[i + 1]), "rate": draw(rate_texts())}
        brackets.append(b)
    if mode == "whole":  # rates may not fall in whole mode (the rule files refuse it)
        for b, r in zip(brackets, sorted((b["rate"] for b in brackets), key=ref_rate)):
            b["rate"] = r
    if mode == "whole" or draw(st.booleans()):
        del brackets[-1]["to"]
    plan: dict[str, Any] = {
        "name": name, "match": {"group": groups, "kind": kinds}, "pool": pool,
        "accumulate": draw(st.sampled_from(["claim", "year"])), "mode": mode, "brackets": brackets,
    }
    if draw(st.booleans()):
        plan["gate"] = yuan_text(draw(amounts(hi=3_000_000)))
    if annual_cap is not None:
        plan["annual_cap"] = yuan_text(annual_cap)
    if draw(st.booleans()):
        plan["claim_cap"] = yuan_text(draw(amounts(hi=3_000_000)))
    return plan


@st.composite
def rule_set_dicts(draw, version: str, valid_from: dt.date, valid_to: dt.date | None,
                   start_month: int = 1) -> dict[str, Any]:
    pools = draw(st.lists(st.sampled_from(["p1", "p2"]), min_size=4, max_size=4))
    caps = {p: draw(st.none() | amounts(hi=20_000_000)) for p in ("p1", "p2")}
    layout = draw(st.sampled_from(LAYOUTS))
    plans = [draw(plan_dicts(f"plan{i}", g, k, pools[i], caps[pools[i]])) for i, (g, k) in enumerate(layout)]
    rs: dict[str, Any] = {
        "id": "gen", "version": version, "valid_from": valid_from,
        "rounding": {"unit": draw(st.sampled_from(["fen", "jiao", "yuan"])),
                     "method": draw(st.sampled_from(["half-up", "half-even", "down"]))},
        "benefit_year_start_month": start_month,
        "plans": plans,
    }
    if valid_to is not None:
        rs["valid_to"] = valid_to
    return rs


@st.composite
def books(draw) -> list[dict[str, Any]]:
    """One or two versions of one scheme, the second starting the day after the first ends."""
    month = draw(st.sampled_from([1, 1, 4, 7, 12]))  # versions of one scheme share it
    if draw(st.booleans()):
        return [draw(rule_set_dicts("v1", dt.date(2020, 1, 1), None, month))]
    split = dt.date(2024, 1, 1) + dt.timedelta(days=draw(st.integers(0, 365)))
    return [draw(rule_set_dicts("v1", dt.date(2020, 1, 1), split - dt.timedelta(days=1), month)),
            draw(rule_set_dicts("v2", split, None, month))]


def toml_value(v: Any) -> str:
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, dt.date)):
        return str(v) if not isinstance(v, dt.date) else v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def toml_text(rs: dict[str, Any]) -> str:
    lines = [f"{k} = {toml_value(v)}" for k, v in rs.items() if k != "plans"]
    for p in rs["plans"]:
        lines.append("\n[[plans]]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in p.items())
    return "\n".join(lines) + "\n"


@st.composite
def claim_dicts(draw) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 25))
    out = []
    for i in range(n):
        out.append({
            "claim_id": f"C{draw(st.integers(0, 10**6))}-{i}",
            "person_id": draw(st.sampled_from(["P1", "P1", "P1", "P2", "P3"])),
            "date": dt.date(2023, 1, 1) + dt.timedelta(days=draw(st.integers(0, 3 * 365))),
            "self_pay": yuan_text(draw(amounts(hi=8_000_000))),
            "group": draw(st.sampled_from(GROUPS)),
            "kind": draw(st.sampled_from(KINDS)),
        })
    return out


def load(rule_sets: list[dict[str, Any]]) -> tuple[medaid.RuleBook, list[dict[str, Any]]]:
    """Write the rule sets as files, load them with medaid, and read them back for the reference
    with tomllib (so both sides see the same text)."""
    with tempfile.TemporaryDirectory() as d:
        for rs in rule_sets:
            (Path(d) / f"{rs['version']}.toml").write_text(toml_text(rs), encoding="utf-8")
        book = medaid.load_rules(d)
        parsed = [tomllib.loads(f.read_text(encoding="utf-8")) for f in sorted(Path(d).glob("*.toml"))]
    return book, parsed


def fen_of(yuan: Fraction) -> int:
    assert (yuan * 100).denominator == 1
    return int(yuan * 100)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), claim_dicts())
def test_the_engine_equals_the_fraction_reference_claim_by_claim(rule_sets, claims):
    book, parsed = load(rule_sets)
    want = ref_settle(parsed, claims)
    got = medaid.settle([medaid.Claim.from_yuan(**c) for c in claims], book)
    assert [r.claim_id for r in got] == [c["claim_id"] for c in claims]
    for r in got:
        w = want[r.claim_id]
        assert (r.plan, r.pool, r.benefit_year, r.rule_version) == (w.plan, w.pool, w.benefit_year, w.version)
        assert r.bracket_relief == fen_of(w.bracket_relief), r.claim_id
        assert r.relief == fen_of(w.relief), r.claim_id
        assert r.patient_pays == r.self_pay - fen_of(w.relief)
        assert (r.ytd_self_pay, r.ytd_relief) == (fen_of(w.ytd_self_pay), fen_of(w.ytd_relief))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), claim_dicts())
def test_quote_with_the_reference_state_gives_the_reference_relief(rule_sets, claims):
    # quote() takes the pool's year-to-date state from the caller (a ledger): feed it the
    # reference's state before each claim, in order, and it must give the reference relief
    book, parsed = load(rule_sets)
    want = ref_settle(parsed, claims)
    for c in sorted(claims, key=lambda c: (c["date"], c["claim_id"])):
        w = want[c["claim_id"]]
        s = ref_yuan(c["self_pay"])
        state = medaid.PoolState(fen_of(w.ytd_self_pay - s), fen_of(w.ytd_relief - w.relief))
        assert medaid.quote(medaid.Claim.from_yuan(**c), book, state).relief == fen_of(w.relief)


def test_the_reference_gives_the_source_policys_worked_examples():
    # guard for the reference itself: docs/calculation.md's worked examples, by the reference alone
    plan = {"brackets": [{"from": "1000", "to": "10000", "rate": "70%"},
                         {"from": "10000", "to": "50000", "rate": "85%"},
                         {"from": "50000", "rate": "95%"}]}
    rs: dict[str, Any] = {}
    for x, want in [("999.99", "0"), ("1000.01", "0.01"), ("12345.67", "8293.82"),
                    ("30000", "23300"), ("100000", "87800")]:
        assert ref_round(rs, ref_f(plan, ref_yuan(x))) == ref_yuan(want)

"""An independent reference of the whole calculation of docs/calculation.md, written with
``fractions.Fraction`` on fen, including the section *Rules real schemes need*: claim attributes,
fixed grants, cap pools per person or household, and a second stage (倾斜救助).

It reads rule sets as the plain dicts ``tomllib`` gives for a rule file and calls nothing of
medaid: it has its own amounts, rates, bracket function f(x) (gate, marginal, whole), rounding
R(v), version choice by date, placement (group and kind with their name tables, attributes with
their value names, the default plan), benefit years, accumulation in claim and year mode, caps in
one ``min`` with ``capped_by``, and the second stage on the burden.  It is slow and plain on
purpose: each function is one sentence of the spec.

Readings of the spec where it leaves a choice (noted in the report of the helper who wrote this):

- a fixed grant's ``bracket_relief`` is the grant increment ``inc_k`` (the spec's ``inc_k`` is
  "the claim's bracket relief");
- a claim needs a household id when its plan's first stage *or* its second stage lists a
  household cap pool;
- a cap pool's room, the second pool and the first pool are carried across rule versions by
  name, like pools; the cap amount is the claim's own version's;
- the default plan, when its ``match`` lists attributes, takes a claim only if the claim's values
  are among them, as for any plan;
- a second stage's own ``rounding`` table, where it leaves out ``unit`` or ``method``, defaults them
  as a rule set's does (fen, half-up).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

UNITS = {"fen": 1, "jiao": 10, "yuan": 100}
ZERO = Fraction(0)


class Refused(Exception):
    """The reference refuses a claim: ``field`` as the spec names it (``date``, ``group/kind``,
    ``household_id``, ``attributes.NAME``)."""

    def __init__(self, claim_id: str, field: str, message: str) -> None:
        super().__init__(f"claim {claim_id}: {field}: {message}")
        self.claim_id, self.field = claim_id, field


# --------------------------------------------------------------------------------------------
# values


def fen(amount: str | int | Fraction) -> Fraction:
    """An amount of the rule file or of a claim (yuan text ``"1,000.50"`` or a whole number of
    yuan) → fen."""
    if isinstance(amount, Fraction):
        return amount
    return Fraction(str(amount).replace(",", "")) * 100


def rate(text: str | int) -> Fraction:
    """``"70%"`` or ``"0.70"`` (or 0, 1) → the exact rate."""
    text = str(text)
    return Fraction(text[:-1]) / 100 if text.endswith("%") else Fraction(text)


def day_of(v: dt.date | str) -> dt.date:
    return v if isinstance(v, dt.date) else dt.date.fromisoformat(v)


# --------------------------------------------------------------------------------------------
# the bracket function and rounding (docs/calculation.md: The bracket function, Rounding)


def f(spec: dict[str, Any], x: Fraction) -> Fraction:
    """f(x) in fen for the ``brackets``, ``mode`` and ``gate`` of a plan or a second stage:
    marginal Σ rate_i × max(0, min(x, to_i) − from_i); whole rate_j × (x − from_1); 0 under the
    gate."""
    if "gate" in spec and x < fen(spec["gate"]):
        return ZERO
    brackets = [(fen(b["from"]), fen(b["to"]) if "to" in b else None, rate(b["rate"])) for b in spec["brackets"]]
    if spec.get("mode", "marginal") == "marginal":
        total = ZERO
        for lo, hi, r in brackets:
            top = x if hi is None else min(x, hi)
            total += r * max(ZERO, top - lo)
        return total
    first = brackets[0][0]
    if x <= first:
        return ZERO
    for lo, hi, r in brackets:
        if lo <= x and (hi is None or x < hi):
            return r * (x - first)
    raise AssertionError("whole mode has an open last bracket")


def round_to(v: Fraction, unit: int, method: str) -> Fraction:
    """``v`` to a multiple of ``unit`` by ``method``: half-up ``u × ⌊v/u + 1/2⌋``, half-even (the
    nearest multiple, on a tie the even one), down ``u × ⌊v/u⌋``."""
    n = v / unit
    if method == "down":
        q = math.floor(n)
    elif method == "half-up":
        q = math.floor(n + Fraction(1, 2))
    else:
        q = math.floor(n)
        if n - q > Fraction(1, 2) or (n - q == Fraction(1, 2) and q % 2 == 1):
            q += 1
    return Fraction(q * unit)


def rounded(rounding: dict[str, Any], v: Fraction) -> Fraction:
    """R(v) of a ``rounding`` table: ``unit`` (fen 1, jiao 10, yuan 100; default fen) and
    ``method`` (default half-up)."""
    return round_to(v, UNITS[rounding.get("unit", "fen")], rounding.get("method", "half-up"))


def increment(spec: dict[str, Any], rounding: dict[str, Any], accumulate: str, before: Fraction,
              base: Fraction) -> Fraction:
    """``R(f(base))`` in claim mode; ``R(f(before + base)) − R(f(before))`` in year mode."""
    if accumulate == "claim":
        return rounded(rounding, f(spec, base))
    return rounded(rounding, f(spec, before + base)) - rounded(rounding, f(spec, before))


def limits_of(spec: dict[str, Any], granted: Fraction, rooms: list[tuple[str, Fraction]],
              owed: Fraction) -> list[tuple[str, Fraction]]:
    """A stage's limits in the spec's order: ``annual_cap − granted``, the cap pools' rooms,
    ``claim_cap``, and what is owed (``s_k``; ``s_k − r_k`` for a second stage)."""
    out = [("annual_cap", fen(spec["annual_cap"]) - granted)] if "annual_cap" in spec else []
    out += rooms
    if "claim_cap" in spec:
        out.append(("claim_cap", fen(spec["claim_cap"])))
    return [*out, ("self_pay", owed)]


def capped(inc: Fraction, limits: list[tuple[str, Fraction]]) -> tuple[Fraction, str | None]:
    """``max(0, min(inc, limits…))`` and the limit it came down to: the first of ``limits`` (in
    the spec's order) whose ``max(0, value)`` is the relief, ``None`` when nothing was taken off."""
    relief = max(ZERO, min([inc, *(v for _, v in limits)]))
    if relief == inc:
        return relief, None
    return relief, next(name for name, v in limits if max(ZERO, v) == relief)


# --------------------------------------------------------------------------------------------
# placement (docs/calculation.md: Placement; Claim attributes)


def version_for(rule_sets: list[dict[str, Any]], claim: dict[str, Any]) -> dict[str, Any]:
    day = day_of(claim["date"])
    found = [r for r in rule_sets
             if day_of(r["valid_from"]) <= day and ("valid_to" not in r or day <= day_of(r["valid_to"]))]
    if not found:
        raise Refused(claim["claim_id"], "date", "no rule version covers the date")
    (rs,) = found
    return rs


def code(table: dict[str, list[str]] | None, name: str) -> str:
    """A group or kind as its code: a name listed in the table stands for its code; any other
    text is its own code."""
    name = name.strip()
    for c, names in (table or {}).items():
        if name in [n.strip() for n in names]:
            return c
    return name


def attribute_code(rs: dict[str, Any], attr: str, value: str) -> str | None:
    """An attribute value as its code (a code, or a name of one); ``None`` if it is neither."""
    value = value.strip()
    values = rs["attributes"][attr]["values"]
    if value in values:
        return value
    for c, names in values.items():
        if value in [n.strip() for n in names]:
            return c
    return None


def claim_attributes(rs: dict[str, Any], claim: dict[str, Any]) -> dict[str, str]:
    """The claim's values of the attributes the version declares, as codes; others are not read;
    a value neither code nor name of its attribute refuses the claim."""
    given = claim.get("attributes") or {}
    out = {}
    for attr in rs.get("attributes", {}):
        v = given.get(attr)
        if v is None or not v.strip():
            continue
        c = attribute_code(rs, attr, v)
        if c is None and rs["attributes"][attr].get("unlisted", "refuse") == "none":
            continue  # docs/calculation.md: an unlisted value counts as no value
        if c is None:
            raise Refused(claim["claim_id"], f"attributes.{attr}",
                          f"{v!r} is not a value of {attr}: {sorted(rs['attributes'][attr]['values'])}")
        out[attr] = c
    return out


def covers(rs: dict[str, Any], plan: dict[str, Any], group: str | None, kind: str | None,
           attrs: dict[str, str]) -> bool:
    """The plan's ``match`` covers the given group and kind (one not given is not checked) and,
    for each attribute it lists, the claim's value is a listed one (no value: not covered)."""
    m = plan.get("match")
    if m is None:
        return False
    if group is not None and group not in {code(rs.get("groups"), g) for g in m["group"]}:
        return False
    if kind is not None and kind not in {code(rs.get("kinds"), k) for k in m["kind"]}:
        return False
    for attr, values in m.items():
        if attr in ("group", "kind"):
            continue
        if attrs.get(attr) not in {attribute_code(rs, attr, v) for v in values}:
            return False
    return True


def plan_for(rs: dict[str, Any], claim: dict[str, Any]) -> dict[str, Any]:
    """Both group and kind: the plan covering them; neither: the default plan; one: the default
    plan if it covers what is given; else refused (field ``group/kind``)."""
    group = code(rs.get("groups"), claim["group"]) if claim.get("group") else None
    kind = code(rs.get("kinds"), claim["kind"]) if claim.get("kind") else None
    attrs = claim_attributes(rs, claim)
    default = [p for p in rs["plans"] if p.get("default")]
    if group is not None and kind is not None:
        found = [p for p in rs["plans"] if covers(rs, p, group, kind, attrs)]
    elif group is None and kind is None:
        found = [p for p in default
                 if all(attrs.get(a) in {attribute_code(rs, a, v) for v in vs}
                        for a, vs in p.get("match", {}).items() if a not in ("group", "kind"))]
    else:
        found = [p for p in default if covers(rs, p, group, kind, attrs)]
    if not found:
        raise Refused(claim["claim_id"], "group/kind", "no plan covers the claim")
    (plan,) = found
    return plan


def benefit_year(rs: dict[str, Any], day: dt.date) -> int:
    start = rs.get("benefit_year_start_month", 1)
    return day.year if day.month >= start else day.year - 1


def second_of(rs: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any] | None:
    """A plan's second stage: its own ``second`` table, or the one it names (``second = "NAME"``:
    the rule set's ``[second_stages.NAME]``)."""
    stage = plan.get("second")
    return rs["second_stages"][stage] if isinstance(stage, str) else stage


def household_caps(rs: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    names = list(plan.get("caps", [])) + list((second_of(rs, plan) or {}).get("caps", []))
    return [n for n in names if rs["caps"][n].get("per", "person") == "household"]


@dataclass(frozen=True)
class Placed:
    rule_set: dict[str, Any]
    plan: dict[str, Any]
    benefit_year: int


def place(rule_sets: list[dict[str, Any]], claim: dict[str, Any]) -> Placed:
    """Version, plan and benefit year of a claim, or :class:`Refused`."""
    rs = version_for(rule_sets, claim)
    plan = plan_for(rs, claim)
    if household_caps(rs, plan) and not (claim.get("household_id") or "").strip():
        raise Refused(claim["claim_id"], "household_id", "the plan binds a household cap")
    return Placed(rs, plan, benefit_year(rs, day_of(claim["date"])))


# --------------------------------------------------------------------------------------------
# settling (docs/calculation.md: Accumulation, Caps, Rules real schemes need)


@dataclass(frozen=True)
class RefResult:
    """The reference's result of one claim; amounts are whole fen (ints)."""

    claim_id: str
    person_id: str
    plan: str
    pool: str
    benefit_year: int
    rule_version: str
    self_pay: int
    relief: int
    patient_pays: int
    bracket_relief: int
    capped_by: str | None
    second_relief: int
    second_capped_by: str | None
    ytd_self_pay: int
    ytd_relief: int
    burden: int  # b_k (0 without a second stage)


def whole(v: Fraction) -> int:
    assert v.denominator == 1, v
    return int(v)


CapKey = tuple[str, str, int]


def cap_key(rs: dict[str, Any], claim: dict[str, Any], year: int, name: str) -> CapKey:
    """Whom cap pool ``name`` counts for this claim: (name, the person or the household, year)."""
    if rs["caps"][name].get("per", "person") == "household":
        return (name, "H:" + claim["household_id"].strip(), year)
    return (name, "P:" + claim["person_id"], year)


def cap_rooms(rs: dict[str, Any], claim: dict[str, Any], year: int, names: list[str],
              used: dict[CapKey, Fraction]) -> list[tuple[str, Fraction]]:
    """``annual_P − U^P`` for each listed cap pool, named ``cap:NAME``, in the plan's order."""
    return [(f"cap:{n}", fen(rs["caps"][n]["annual"]) - used.get(cap_key(rs, claim, year, n), ZERO))
            for n in names]


def take(rs: dict[str, Any], claim: dict[str, Any], year: int, names: list[str],
         used: dict[CapKey, Fraction], relief: Fraction) -> None:
    """``U^P += relief`` for each listed cap pool."""
    for n in names:
        k = cap_key(rs, claim, year, n)
        used[k] = used.get(k, ZERO) + relief


def settle(rule_sets: list[dict[str, Any]], claims: list[dict[str, Any]],
           opening: dict[tuple[str, int, str], tuple[Fraction, Fraction]] | None = None) -> dict[str, RefResult]:
    """Settle claims in (date, claim id) order; ``opening`` gives pools' (C, G) before the first
    claim, by (person, benefit year, pool).  Raises :class:`Refused` for the first claim that
    cannot be placed (medaid refuses the whole call then)."""
    ids = [c["claim_id"] for c in claims]
    assert len(set(ids)) == len(ids), "claim ids are unique"
    placed = {c["claim_id"]: place(rule_sets, c) for c in claims}
    pools = dict(opening or {})  # (person, year, pool) → C, G
    seconds: dict[tuple[str, int, str], tuple[Fraction, Fraction]] = {}  # (person, year, pool) → B, H
    used: dict[CapKey, Fraction] = {}  # (cap pool, person or household, year) → U
    out: dict[str, RefResult] = {}
    for c in sorted(claims, key=lambda c: (day_of(c["date"]), c["claim_id"])):
        p = placed[c["claim_id"]]
        rs, plan, year = p.rule_set, p.plan, p.benefit_year
        person = c["person_id"]
        s = fen(c["self_pay"])
        key = (person, year, plan["pool"])
        before, granted = pools.get(key, (ZERO, ZERO))
        # the first increment: the grant, or the brackets in the plan's accumulate mode
        if "grant" in plan:
            amount = fen(plan["grant"]["amount"])
            inc = amount if plan["grant"]["per"] == "claim" else max(ZERO, amount - granted)
        else:
            inc = increment(plan, rs.get("rounding", {}), plan.get("accumulate", "claim"), before, s)
        r, capped_by = capped(inc, limits_of(plan, granted, cap_rooms(rs, c, year, plan.get("caps", []), used), s))
        pools[key] = (before + s, granted + r)
        take(rs, c, year, plan.get("caps", []), used, r)
        # the second stage on the burden
        r2, capped2, burden = ZERO, None, ZERO
        second = second_of(rs, plan)
        if second is not None:
            n_k = fen(c["non_compliant"]) if second.get("include_non_compliant") and c.get("non_compliant") else ZERO
            burden = s - r + n_k
            key2 = (person, year, second["pool"])
            b_before, h = seconds.get(key2, (ZERO, ZERO))
            inc2 = increment(second, second.get("rounding", rs.get("rounding", {})),
                             second.get("accumulate", "year"), b_before, burden)
            rooms = cap_rooms(rs, c, year, second.get("caps", []), used)
            r2, capped2 = capped(inc2, limits_of(second, h, rooms, s - r))
            seconds[key2] = (b_before + burden, h + r2)
            take(rs, c, year, second.get("caps", []), used, r2)
        out[c["claim_id"]] = RefResult(
            claim_id=c["claim_id"], person_id=person, plan=plan["name"], pool=plan["pool"], benefit_year=year,
            rule_version=rs["version"], self_pay=whole(s), relief=whole(r + r2), patient_pays=whole(s - r - r2),
            bracket_relief=whole(inc), capped_by=capped_by, second_relief=whole(r2),
            second_capped_by=capped2, ytd_self_pay=whole(before + s), ytd_relief=whole(granted + r),
            burden=whole(burden),
        )
    return out


# --------------------------------------------------------------------------------------------
# worked examples in rule files (docs/rules.md: Examples; Worked examples across plans)


@dataclass(frozen=True)
class Example:
    """One worked example of a rule file: where it is, its claims, the pools' opening position,
    and the stated figures by claim id (relief, and second relief where stated)."""

    at: str
    claims: list[dict[str, Any]]
    opening: dict[tuple[str, int, str], tuple[Fraction, Fraction]]
    relief: dict[str, int]
    second_relief: dict[str, int]


def examples(rs: dict[str, Any]) -> list[Example]:
    """Every worked example of a rule set: each plan's (one claim, or a sequence in its pool from
    ``ytd_self_pay``/``ytd_relief``; claims of person P1 of household H1 on ``valid_from``
    matching the plan's first group, kind and attribute values) and the top-level ``[[examples]]`` (claims with their
    ``id`` (default E1, E2, …), ``person`` (P1), ``household``, ``group``, ``kind``, ``date``
    (``valid_from``), ``non_compliant`` and attribute values by name)."""
    out = []
    day = day_of(rs["valid_from"])
    for i, plan in enumerate(rs["plans"]):
        match = plan.get("match", {})
        base: dict[str, Any] = {"person_id": "P1", "household_id": "H1", "date": day}
        if "group" in match:
            base.update(group=match["group"][0], kind=match["kind"][0])
        attrs = {a: vs[0] for a, vs in match.items() if a not in ("group", "kind")}
        if attrs:
            base["attributes"] = attrs
        for j, ex in enumerate(plan.get("examples", [])):
            pays, reliefs = (ex["claims"], ex["reliefs"]) if "claims" in ex else ([ex["self_pay"]], [ex["relief"]])
            claims = [{**base, "claim_id": f"E{k:03d}", "self_pay": x} for k, x in enumerate(pays)]
            opening = {("P1", benefit_year(rs, day), plan["pool"]): (fen(ex.get("ytd_self_pay", 0)),
                                                                      fen(ex.get("ytd_relief", 0)))}
            out.append(Example(f"plans[{i}].examples[{j}]", claims, opening,
                               {c["claim_id"]: int(fen(r)) for c, r in zip(claims, reliefs)}, {}))
    keys = {"id": "claim_id", "person": "person_id", "household": "household_id", "group": "group",
            "kind": "kind", "date": "date", "self_pay": "self_pay", "non_compliant": "non_compliant"}
    for j, ex in enumerate(rs.get("examples", [])):
        claims, relief, second = [], {}, {}
        for k, given in enumerate(ex["claims"], start=1):
            c: dict[str, Any] = {"claim_id": f"E{k}", "person_id": "P1", "date": day}
            c.update({keys[key]: v for key, v in given.items() if key in keys})
            c["date"] = day_of(c["date"])
            c["attributes"] = {a: v for a, v in given.items() if a in rs.get("attributes", {})}
            claims.append(c)
            relief[c["claim_id"]] = int(fen(given["relief"]))
            if "second_relief" in given:
                second[c["claim_id"]] = int(fen(given["second_relief"]))
        out.append(Example(f"examples[{j}]", claims, {}, relief, second))
    return out


def example_mismatches(rs: dict[str, Any]) -> list[str]:
    """The worked examples of ``rs`` whose stated figures the reference does not give."""
    wrong = []
    for ex in examples(rs):
        got = settle([rs], ex.claims, ex.opening)
        for cid, want in ex.relief.items():
            if got[cid].relief != want:
                wrong.append(f"{ex.at}: claim {cid}: relief {got[cid].relief}, stated {want}")
        for cid, want in ex.second_relief.items():
            if got[cid].second_relief != want:
                wrong.append(f"{ex.at}: claim {cid}: second relief {got[cid].second_relief}, stated {want}")
    return wrong

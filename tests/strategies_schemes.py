"""Hypothesis strategies for rule sets that use the rules real schemes need (docs/calculation.md,
*Rules real schemes need*) and for claims under them; shared by the tests that compare a path
of medaid (the engine, the batch, Spark, the ledger) with ``tests/reference_schemes.py``.

- :func:`scheme_rule_sets` draws one rule set as the dict a rule file holds (amounts as yuan
  text, dates as ``datetime.date``); :func:`scheme_books` one or two versions of a scheme (a
  version change inside the claims' dates); :func:`toml_text` renders any such dict as TOML.
- :func:`scheme_claims` draws claims for them as keyword dicts of ``medaid.Claim.from_yuan``
  (every one placeable by the reference; :func:`raw_claims` before that filter, and
  :func:`claims_refused` for the others); :func:`claim_objects` makes them ``medaid.Claim``.
- :func:`load` writes rule sets to a temporary folder, loads them with ``medaid.load_rules`` and
  reads them back with ``tomllib`` for the reference (so both sides see the same text).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import reject, strategies as st

import medaid
from reference_schemes import Refused, fen, place, rate

# --------------------------------------------------------------------------------------------
# TOML


def yuan_text(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else '"' + k + '"'


def toml_value(v: Any) -> str:
    """A value written inline (text, bool, int, date, array, inline table)."""
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def _is_tables(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def toml_text(doc: dict[str, Any]) -> str:
    """A rule set dict as TOML: top-level values first, then each table as a ``[section]`` (its
    tables as ``[section.sub]``), then each array of tables (``plans``, ``examples``) as
    ``[[name]]`` with its values inline."""
    lines: list[str] = []

    def section(prefix: str, d: dict[str, Any]) -> None:
        lines.append(f"\n[{prefix}]")
        lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in d.items() if not isinstance(v, dict))
        for k, v in d.items():
            if isinstance(v, dict):
                section(f"{prefix}.{toml_key(k)}", v)

    lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in doc.items()
                 if not isinstance(v, dict) and not _is_tables(v))
    for k, v in doc.items():
        if isinstance(v, dict):
            section(toml_key(k), v)
    for k, v in doc.items():
        if _is_tables(v):
            for item in v:
                lines.append(f"\n[[{toml_key(k)}]]")
                lines.extend(f"{toml_key(x)} = {toml_value(y)}" for x, y in item.items())
    return "\n".join(lines) + "\n"


def load(rule_sets: list[dict[str, Any]]) -> tuple[medaid.RuleBook, list[dict[str, Any]]]:
    """Write the rule sets as files, load them with medaid, and read them back with tomllib."""
    with tempfile.TemporaryDirectory() as d:
        for rs in rule_sets:
            (Path(d) / f"{rs['version']}.toml").write_text(toml_text(rs), encoding="utf-8")
        book = medaid.load_rules(d)
        parsed = [tomllib.loads(f.read_text(encoding="utf-8")) for f in sorted(Path(d).glob("*.toml"))]
    return book, parsed


# --------------------------------------------------------------------------------------------
# amounts, rates, brackets


_OFF_BY_ONE = st.sampled_from([0, 0, 1, -1])
_OFF_A_LITTLE = st.integers(-50, 50) | st.just(0)
#: caps of a few round figures, so that limits often tie (and ``capped_by`` must take the first)
_ROUND_CAPS = st.sampled_from([0, 100_000, 200_000, 500_000])
_START_MONTHS = st.sampled_from([1, 1, 4, 7])
_UNITS = st.sampled_from(["fen", "jiao", "yuan"])
_METHODS = st.sampled_from(["half-up", "half-even", "down"])


@st.composite
def amounts(draw, hi: int = 10_000_000) -> int:
    """Fen, often round, sometimes just off a round figure."""
    base = draw(st.integers(0, hi // 10_000)) * 10_000
    return max(0, base + draw(_OFF_BY_ONE) + draw(_OFF_A_LITTLE))


def small_caps(hi: int) -> st.SearchStrategy[int]:
    """A cap in fen: a round figure shared with other caps, or any amount up to ``hi``."""
    return _ROUND_CAPS | amounts(hi=hi)


@st.composite
def rate_texts(draw) -> str:
    form = draw(st.integers(0, 2))
    if form == 0:
        return f"{draw(st.integers(0, 100))}%"
    if form == 1:
        return f"{draw(st.integers(0, 1000)) / 10:.1f}%"
    return f"0.{draw(st.integers(0, 999)):03d}"


@st.composite
def bracket_specs(draw, step: int = 50_000, top: int = 60, gate_hi: int | None = None,
                  rates: st.SearchStrategy[str] | None = None) -> dict[str, Any]:
    """``accumulate``, ``mode``, ``brackets`` and maybe ``gate`` of a plan or a second stage:
    1-3 contiguous brackets on multiples of ``step`` fen up to ``top`` steps; in whole mode rising
    rates and an open last bracket; a gate up to ``gate_hi`` fen (default half the top bound);
    rates from ``rates`` (default :func:`rate_texts`)."""
    n = draw(st.integers(1, 3))
    edges = sorted(draw(st.sets(st.integers(0, top).map(lambda k: k * step), min_size=n + 1, max_size=n + 1)))
    mode = draw(st.sampled_from(["marginal", "whole"]))
    rates = rate_texts() if rates is None else rates
    brackets: list[dict[str, str]] = [
        {"from": yuan_text(edges[i]), "to": yuan_text(edges[i + 1]), "rate": draw(rates)} for i in range(n)
    ]
    if mode == "whole":  # rates may not fall in whole mode (the rule files refuse it)
        for b, r in zip(brackets, sorted((b["rate"] for b in brackets), key=rate)):
            b["rate"] = r
    if mode == "whole" or draw(st.booleans()):
        del brackets[-1]["to"]
    spec: dict[str, Any] = {
        "accumulate": draw(st.sampled_from(["claim", "year"])), "mode": mode, "brackets": brackets,
    }
    if draw(st.booleans()):
        spec["gate"] = yuan_text(draw(amounts(hi=step * top // 2 if gate_hi is None else gate_hi)))
    return spec


# --------------------------------------------------------------------------------------------
# rule sets with attributes, cap pools, grants and second stages

GROUPS = {"a": ["甲类"], "b": ["乙类"]}
KINDS = {"x": ["住院"], "y": ["门诊"]}
ATTRIBUTES = {
    "level": {"l1": ["一级", "一级医院"], "l2": ["二级"], "l3": ["三级"]},
    "place": {"in": ["县域内"], "out": ["县域外"], "far": ["异地"]},
}
CAP_POOLS = ("medical", "family")
SECOND_POOLS = ("b1", "b2")


def _name_or_code(draw, table: dict[str, list[str]] | None, code: str) -> str:
    if table and draw(_DIE) < 2:
        return draw(st.sampled_from(table[code]))
    return code


def _parts(draw, values: list[str], n: int) -> list[list[str]]:
    """``values`` split into ``n`` non-empty parts, in a drawn order."""
    values = list(draw(st.permutations(values)))
    cuts = sorted(draw(st.sets(st.integers(1, len(values) - 1), min_size=n - 1, max_size=n - 1))) if n > 1 else []
    bounds = [0, *cuts, len(values)]
    return [values[bounds[i]:bounds[i + 1]] for i in range(n)]


@st.composite
def scheme_rule_sets(draw, version: str = "v1", valid_from: dt.date = dt.date(2020, 1, 1),
                     valid_to: dt.date | None = None, start_month: int | None = None) -> dict[str, Any]:
    """One rule set: 0-2 attributes of 2-3 values (with names), names for groups and kinds
    (sometimes), 0-2 cap pools per person or household with small caps, 1-3 plans disjoint by
    group, kind or an attribute, each with brackets or a grant, its pool, caps and maybe a second
    stage with its own pool, rounding, mode, gate and accumulate."""
    rs: dict[str, Any] = {
        "id": "gen", "version": version, "valid_from": valid_from,
        "rounding": {"unit": draw(_UNITS), "method": draw(_METHODS)},
        "benefit_year_start_month": draw(_START_MONTHS) if start_month is None else start_month,
    }
    if valid_to is not None:
        rs["valid_to"] = valid_to
    groups = GROUPS if draw(st.booleans()) else None
    kinds = KINDS if draw(st.booleans()) else None
    if groups:
        rs["groups"] = groups
    if kinds:
        rs["kinds"] = kinds
    attrs: dict[str, dict[str, list[str]]] = {}
    for name in draw(st.lists(st.sampled_from(sorted(ATTRIBUTES)), max_size=2, unique=True)):
        codes = draw(st.lists(st.sampled_from(sorted(ATTRIBUTES[name])), min_size=2, max_size=3, unique=True))
        attrs[name] = {c: ATTRIBUTES[name][c] for c in sorted(codes)}
    if attrs:
        rs["attributes"] = {n: {"columns": [f"col_{n}"], "values": v} for n, v in attrs.items()}
    caps = {n: {"annual": yuan_text(draw(small_caps(3_000_000))),
                "per": draw(st.sampled_from(["person", "household"]))}
            for n in draw(st.lists(st.sampled_from(CAP_POOLS), max_size=2, unique=True))}
    if caps:
        rs["caps"] = caps

    # the plans: split one dimension's values into 1-3 parts, one plan each
    dims: dict[str, list[str]] = {"group": sorted(GROUPS), "kind": sorted(KINDS)}
    dims.update({n: sorted(v) for n, v in attrs.items()})
    split = draw(st.sampled_from(sorted(dims)))
    parts = _parts(draw, dims[split], draw(st.integers(1, min(3, len(dims[split])))))
    pool_caps = {p: draw(st.none() | small_caps(5_000_000)) for p in ("p1", "p2")}
    second_caps = {p: draw(st.none() | small_caps(2_000_000)) for p in SECOND_POOLS}
    plans = []
    for i, part in enumerate(parts):
        match: dict[str, list[str]] = {
            "group": [_name_or_code(draw, groups, g) for g in (part if split == "group" else sorted(GROUPS))],
            "kind": [_name_or_code(draw, kinds, k) for k in (part if split == "kind" else sorted(KINDS))],
        }
        for name, values in attrs.items():
            listed = part if name == split else (
                draw(st.lists(st.sampled_from(sorted(values)), min_size=1, unique=True))
                if draw(st.integers(0, 3)) == 0 else None)
            if listed is not None:
                match[name] = [_name_or_code(draw, values, v) for v in listed]
        pool = draw(st.sampled_from(["p1", "p2"]))
        plan: dict[str, Any] = {"name": f"plan{i}", "match": match, "pool": pool}
        if draw(st.integers(0, 3)) == 0:
            plan["grant"] = {"amount": yuan_text(draw(amounts(hi=2_000_000))),
                             "per": draw(st.sampled_from(["claim", "year"]))}
        else:
            plan.update(draw(bracket_specs()))
        if pool_caps[pool] is not None:
            plan["annual_cap"] = yuan_text(pool_caps[pool])
        if draw(st.integers(0, 3)) == 0:
            plan["claim_cap"] = yuan_text(draw(small_caps(2_000_000)))
        if caps:
            plan["caps"] = draw(st.lists(st.sampled_from(sorted(caps)), unique=True))
        if draw(st.booleans()):
            plan["second"] = draw(second_stages(caps, second_caps))
        plans.append(plan)
    # sometimes the first plan is also the default (only when it matches no attribute)
    if set(plans[0]["match"]) == {"group", "kind"} and draw(st.integers(0, 3)) == 0:
        plans[0]["default"] = True
    rs["plans"] = plans
    return rs


@st.composite
def scheme_books(draw) -> list[dict[str, Any]]:
    """One version of a scheme, or two (the second starting on a day inside the claims' dates,
    with its own attributes, plans, pools and caps): cap pools, pools and second pools carry on
    by name into the new version within a benefit year."""
    month = draw(_START_MONTHS)  # versions of one scheme share it
    if draw(st.booleans()):
        return [draw(scheme_rule_sets("v1", start_month=month))]
    split = dt.date(2024, month, 1) + dt.timedelta(days=draw(st.integers(1, 365)))
    v1 = draw(scheme_rule_sets("v1", valid_to=split - dt.timedelta(days=1), start_month=month))
    if draw(st.booleans()):
        return [v1, draw(scheme_rule_sets("v2", valid_from=split, start_month=month))]
    # the same plans with new figures: cap pools, pools' annual caps and the rounding
    v2 = copy.deepcopy(v1)
    v2.update(version="v2", valid_from=split, rounding={"unit": draw(_UNITS), "method": draw(_METHODS)})
    del v2["valid_to"]
    for cap in v2.get("caps", {}).values():
        cap["annual"] = yuan_text(draw(small_caps(3_000_000)))
    pool_caps = {p: draw(st.none() | small_caps(5_000_000)) for p in ("p1", "p2")}
    for plan in v2["plans"]:
        plan.pop("annual_cap", None)
        if pool_caps[plan["pool"]] is not None:
            plan["annual_cap"] = yuan_text(pool_caps[plan["pool"]])
    return [v1, v2]


@st.composite
def second_stages(draw, caps: dict[str, Any], second_caps: dict[str, int | None]) -> dict[str, Any]:
    pool = draw(st.sampled_from(SECOND_POOLS))
    second: dict[str, Any] = {"pool": pool}
    # high rates are frequent: then the second stage often meets what the patient still owes
    spec = draw(bracket_specs(step=20_000, top=50, rates=st.sampled_from(["100%", "90%", "0.75"]) | rate_texts()))
    if draw(_DIE) == 0:  # 100% from the first fen of burden: more than the patient still owes
        spec["brackets"][0]["from"] = "0.00"
        for b in spec["brackets"]:
            b["rate"] = "100%"
    if draw(st.booleans()):
        del spec["accumulate"]  # the default: year
    second.update(spec)
    if second_caps[pool] is not None:
        second["annual_cap"] = yuan_text(second_caps[pool])
    if draw(st.integers(0, 3)) == 0:
        second["claim_cap"] = yuan_text(draw(small_caps(1_000_000)))
    if caps and draw(st.booleans()):
        second["caps"] = draw(st.lists(st.sampled_from(sorted(caps)), unique=True))
    if draw(st.booleans()):
        second["include_non_compliant"] = draw(st.sampled_from([True, True, False]))
    if draw(st.booleans()):
        second["rounding"] = {"unit": draw(_UNITS),
                              "method": draw(_METHODS)}
    return second


# --------------------------------------------------------------------------------------------
# claims


def bounds_of(rs: dict[str, Any]) -> list[int]:
    """Every bracket bound, gate and cap of the rule set, in fen: amounts worth trying ± 1 fen."""
    out = set()
    for p in rs["plans"]:
        for spec in (p, p.get("second", {})):
            for b in spec.get("brackets", []):
                out.update(int(fen(b[k])) for k in ("from", "to") if k in b)
            for k in ("gate", "annual_cap", "claim_cap"):
                if k in spec:
                    out.add(int(fen(spec[k])))
    return sorted(out)


@st.composite
def self_pays(draw, rs: dict[str, Any]) -> int:
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return 0
    if choice <= 2 and bounds_of(rs):
        return max(0, draw(st.sampled_from(bounds_of(rs))) + draw(st.sampled_from([-1, 0, 0, 1])))
    return draw(amounts(hi=6_000_000))


_ID = st.integers(0, 99)
_DIE = st.integers(0, 4)
_GROUP = st.sampled_from(sorted(GROUPS))
_KIND = st.sampled_from(sorted(KINDS))
_NON_COMPLIANT = amounts(hi=3_000_000)


@st.composite
def raw_claims(draw, rs: dict[str, Any], max_claims: int = 20) -> list[dict[str, Any]]:
    """Claims for ``rs`` before placement: 2-4 persons in 1-2 households (P1 and P2 in one, the
    others sometimes in none), dates in one or two benefit years (ties on a day are frequent), self-pay 0, near a
    bound or anywhere, optional non-compliant cost, group/kind/attribute values as codes or names
    (or left out), and now and then an attribute the rule set does not declare."""
    persons = [f"P{i}" for i in range(1, draw(st.integers(2, 4)) + 1)]
    households = ["H1", "H2"][: draw(st.integers(1, 2))]
    home = {p: draw(st.sampled_from(households) | st.none()) for p in persons}
    home["P1"] = home["P2"] = households[0]  # two persons always share a household
    start = dt.date(2024, rs.get("benefit_year_start_month", 1), 1)
    span = draw(st.sampled_from([365, 730]))
    days = draw(st.lists(st.integers(0, span - 1), min_size=3, max_size=8))
    groups, kinds = rs.get("groups"), rs.get("kinds")
    attrs = {n: a["values"] for n, a in rs.get("attributes", {}).items()}
    has_default = any(p.get("default") for p in rs["plans"])
    pick_person, pick_day, pay = st.sampled_from(persons), st.sampled_from(days), self_pays(rs)
    pick_value = {name: st.sampled_from(sorted(values)) for name, values in attrs.items()}
    out = []
    for i in range(draw(st.integers(min(3, max_claims), max_claims))):
        person = draw(pick_person)
        c: dict[str, Any] = {
            "claim_id": f"K{draw(_ID):02d}-{i}",
            "person_id": person,
            "date": start + dt.timedelta(days=draw(pick_day)),
            "self_pay": yuan_text(draw(pay)),
        }
        if not (has_default and draw(_DIE) == 0):
            c["group"] = _name_or_code(draw, groups, draw(_GROUP))
        if not (has_default and draw(_DIE) == 0):
            c["kind"] = _name_or_code(draw, kinds, draw(_KIND))
        if home[person] is not None:
            c["household_id"] = home[person]
        if draw(_DIE) < 3:
            c["non_compliant"] = yuan_text(draw(_NON_COMPLIANT))
        given = {}
        for name, values in attrs.items():
            if draw(_DIE):
                given[name] = _name_or_code(draw, values, draw(pick_value[name]))
        if draw(_DIE) == 0 and draw(_DIE) == 0:
            given["colour"] = "red"  # not declared: not read
        if given:
            c["attributes"] = given
        out.append(c)
    return out


def placeable(rule_sets: list[dict[str, Any]], claim: dict[str, Any]) -> bool:
    try:
        place(rule_sets, claim)
    except Refused:
        return False
    return True


@st.composite
def scheme_claims(draw, rule_sets: dict[str, Any] | list[dict[str, Any]], max_claims: int = 20) -> list[dict[str, Any]]:
    """Claims of :func:`raw_claims` (for the first of ``rule_sets``, one rule set or a list of
    versions) that the reference places (a version and a plan cover them and they carry a
    household id where their plan needs one); at least one."""
    versions = rule_sets if isinstance(rule_sets, list) else [rule_sets]
    claims = [c for c in draw(raw_claims(versions[0], max_claims)) if placeable(versions, c)]
    if not claims:
        claims = [c for c in draw(raw_claims(versions[0], max_claims)) if placeable(versions, c)]
    if not claims:  # a rule set whose plans need attribute values every raw claim missed
        reject()
    return claims


def claims_refused(rule_sets: list[dict[str, Any]], claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The claims the reference refuses (no version, no plan, no household id where needed)."""
    return [c for c in claims if not placeable(rule_sets, c)]


def claim_objects(claims: list[dict[str, Any]]) -> list[medaid.Claim]:
    return [medaid.Claim.from_yuan(**c) for c in claims]

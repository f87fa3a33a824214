"""Rule sets: dated data files in ``rules/``, validated, frozen, and picked by claim date.

A rule file is TOML (read with ``tomllib``) holding one rule set: a scheme ``id``, a
``version``, ``valid_from``/``valid_to``, ``rounding``, ``benefit_year_start_month`` and its
``plans``.  Each plan says whom it covers (``match``, or ``default = true``), which ``pool`` it
counts into, how it accumulates (``claim`` | ``year``), its bracket ``mode`` (``marginal`` |
``whole``), an optional ``gate``, its ``brackets``, optional ``annual_cap`` and ``claim_cap``,
its legal ``basis`` and worked ``examples``.  See README.md, *Rule files*, for the format.

Validation refuses, naming the file, the key path and what is allowed: unknown keys, wrong
types, rates outside [0, 1], brackets not ascending / overlapping / gapped, a closed last
bracket or a falling rate in ``whole`` mode, negative caps, bad dates, ``valid_to`` before ``valid_from``,
duplicate plan names, two plans matching one (group, kind), two versions of one scheme
overlapping in time, plans of one pool with different annual caps, and examples whose stated
relief the plan does not give.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)

from ..errors import MedaidError, Problem, RuleError
from ..money import (
    RoundingMethod,
    RoundingUnit,
    ascii_or_full_width,
    describe_character,
    format_rate,
    format_yuan,
    parse_yuan,
)
from .brackets import Accumulate, Mode, Schedule

# --------------------------------------------------------------------------------------------
# field types


_AMOUNT_ALLOWED = 'allowed: an amount in yuan, 0 or more, with at most two decimals ("1000.50" or 1000)'


def _money(v: Any) -> int:
    """A rule-file amount (yuan, as text or integer) → fen."""
    if isinstance(v, float):
        raise ValueError("amounts must be quoted text or whole numbers, not floats (write \"1000.50\")")
    if isinstance(v, (str, int)) and not isinstance(v, bool):
        try:
            return parse_yuan(v)
        except MedaidError as e:
            raise ValueError(f"{e.problems[0].message}; {_AMOUNT_ALLOWED}") from None
    raise ValueError(f"expected an amount in yuan as text, got {type(v).__name__}")


#: The most decimal places a rate may have (as a fraction: ``"33.3333%"`` has 6).
MAX_RATE_PLACES = 50
_RATE_RE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?P<pct>%?)")
_RATE_ALLOWED = 'write "0.70" or "70%" with digits 0-9'


def _shown(v: str) -> str:
    """A rule-file value as a message quotes it: at most 24 characters."""
    return repr(v if len(v) <= 24 else v[:21] + "...")


def _rate(v: Any) -> Decimal:
    """A rate as exact decimal text ``"0.70"`` or percent text ``"70%"``; 0 ≤ rate ≤ 1.

    Digits are read as amounts are (:func:`medaid.money.parse_yuan`): ASCII 0-9, or full-width
    digits normalised with NFKC; other scripts' digits, signs, exponents (``"7E-1"``), NaN and
    infinities are refused, and so is a rate of more than :data:`MAX_RATE_PLACES` decimal
    places (no rate needs them; a longer one would only slow the arithmetic down)."""
    if isinstance(v, float):
        raise ValueError('rates must be quoted text ("0.70" or "70%"), not floats')
    if isinstance(v, int) and not isinstance(v, bool):
        if not 0 <= v <= 1:
            raise ValueError(f"rate {v!r} is outside [0, 1]; allowed: 0 to 1 (0% to 100%)")
        return Decimal(v)
    if not isinstance(v, str):
        raise ValueError(f'expected a rate as text ("0.70" or "70%"), got {type(v).__name__}')
    if not ascii_or_full_width(v):
        what = describe_character(v.strip(), "0123456789.% ")
        raise ValueError(f"{_shown(v)} is not a rate: {what}; {_RATE_ALLOWED}")
    m = _RATE_RE.fullmatch(unicodedata.normalize("NFKC", v).strip())
    if m is None:
        raise ValueError(f"{_shown(v)} is not a rate; {_RATE_ALLOWED}")
    num, pct = m.group("num"), bool(m.group("pct"))
    places = len(num.partition(".")[2]) + (2 if pct else 0)
    if places > MAX_RATE_PLACES:
        raise ValueError(f"rate {_shown(v)} has {places} decimal places; at most {MAX_RATE_PLACES} are allowed")
    if len(num.partition(".")[0].lstrip("0")) > 3:  # ≥ 1000: outside [0, 1] even as a percent
        raise ValueError(f"rate {_shown(v)} is outside [0, 1]; allowed: 0 to 1 (0% to 100%)")
    d = Decimal(num)
    if pct:  # exact: shift the exponent (dividing would round to 28 digits)
        sign, digits, exp = d.as_tuple()
        assert isinstance(exp, int)  # finite: digits matched by _RATE_RE
        d = Decimal((sign, digits, exp - 2))
    if not (0 <= d <= 1):
        raise ValueError(f"rate {_shown(v)} is outside [0, 1]; allowed: 0 to 1 (0% to 100%)")
    return d


def _strict_date(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        raise ValueError("expected a date (YYYY-MM-DD), got a date-time")
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a date; write YYYY-MM-DD") from None
    raise ValueError(f"expected a date (YYYY-MM-DD), got {type(v).__name__}")


Fen = Annotated[int, BeforeValidator(_money)]
Rate = Annotated[Decimal, BeforeValidator(_rate)]
Date = Annotated[dt.date, BeforeValidator(_strict_date)]
Names = tuple[Annotated[str, Field(min_length=1)], ...]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, populate_by_name=True)


class Rounding(_Frozen):
    """``unit``: fen | jiao | yuan; ``method``: half-up (四舍五入) | half-even | down."""

    unit: RoundingUnit = "fen"
    method: RoundingMethod = "half-up"


class Bracket(_Frozen):
    """A segment ``[from, to)`` of the base (fen) and its exact ``rate``; ``to`` absent = open."""

    lower: Fen = Field(alias="from")
    upper: Fen | None = Field(default=None, alias="to")
    rate: Rate


class Match(_Frozen):
    """Which claims a plan covers: every (group, kind) pair of these lists, and, for each
    declared claim attribute named here (docs/calculation.md, *Claim attributes*), only claims
    whose value is one of those listed (``level = ["tertiary"]``)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    group: Names = Field(min_length=1)
    kind: Names = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _attribute_lists(cls, v: Any) -> Any:
        """An attribute's values are a non-empty array of text."""
        if isinstance(v, dict):
            for k, vals in v.items():
                if k in ("group", "kind"):
                    continue
                if not (isinstance(vals, (list, tuple)) and vals
                        and all(isinstance(x, str) and x for x in vals)):
                    raise ValueError(f"match.{k} must be a non-empty array of text (the attribute's values)")
        return v

    @property
    def attributes(self) -> dict[str, tuple[str, ...]]:
        """The attribute conditions: attribute name → the values listed (as written)."""
        return {k: tuple(v) for k, v in (self.model_extra or {}).items()}


#: What an attribute of a claim may be called: lower-case letters, digits, ``_`` and ``-``.
ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_-]*")
#: Names an attribute may not take: the claim's own fields and the match's.
RESERVED_ATTRIBUTES = frozenset(
    "claim_id person_id date self_pay group kind hospital total_cost channel bank_account "
    "account_name household_id non_compliant attributes".split())


class Attribute(_Frozen):
    """A claim attribute plans may match on (医院等级, 就医地, 病种…): its allowed ``values``
    (code → the names exports use for it) and the input ``columns`` it is read from besides
    its own name (docs/calculation.md, *Claim attributes*)."""

    title: str | None = None
    columns: Names = ()
    values: dict[Annotated[str, Field(min_length=1)], Names] = Field(min_length=1)
    unlisted: Literal["refuse", "none"] = "refuse"


class CapPool(_Frozen):
    """A cap pool (docs/calculation.md, *Shared caps*): the most relief per person or per
    household (户) and benefit year over every plan (or second stage) that lists it."""

    title: str | None = None
    annual: Fen
    per: Literal["person", "household"] = "person"


class Grant(_Frozen):
    """A fixed grant (定额救助): ``amount`` per claim, or per benefit year in the plan's pool."""

    amount: Fen
    per: Literal["claim", "year"]


class SecondStage(_Frozen):
    """A plan's second stage (倾斜救助 / 再救助) on the burden its first relief leaves
    (docs/calculation.md, *Second stage*): its own pool, brackets, caps and rounding."""

    title: str | None = None
    pool: str = Field(min_length=1)
    accumulate: Accumulate = "year"
    mode: Mode = "marginal"
    gate: Fen | None = None
    brackets: tuple[Bracket, ...] = Field(min_length=1)
    annual_cap: Fen | None = None
    claim_cap: Fen | None = None
    caps: Names = ()
    include_non_compliant: StrictBool = False
    rounding: Rounding | None = None
    basis: str | None = None


class Example(_Frozen):
    """A worked example travelling with the rules (docs/calculation.md).

    Either one claim (``self_pay`` → ``relief``, optionally after ``ytd_self_pay`` and
    ``ytd_relief`` already in the pool) or a sequence (``claims`` → ``reliefs``) in one pool.
    """

    self_pay: Fen | None = None
    relief: Fen | None = None
    claims: tuple[Fen, ...] | None = None
    reliefs: tuple[Fen, ...] | None = None
    ytd_self_pay: Fen = 0
    ytd_relief: Fen = 0
    note: str | None = None


class Plan(_Frozen):
    """One set of brackets and caps for a beneficiary group and claim kind (救助方案).

    Attributes:
        name: unique within the rule set.
        match: the (group, kind) pairs it covers; ``default`` marks the plan used for claims
            that carry no group and no kind.
        pool: the accumulator it counts into (per person and benefit year); plans may share one.
        accumulate: ``claim`` (brackets per claim) or ``year`` (brackets on the year's
            cumulative self-pay).
        mode: ``marginal`` (the part from … to …) or ``whole`` (the containing bracket's rate on
            the whole base above the first ``from``).
        gate: no relief unless the base reaches it (fen).
        brackets: ascending, contiguous; the last may be open.
        annual_cap / claim_cap: most relief per person, pool and benefit year / per claim (fen).
        basis: the legal basis cited in every explanation.
        examples: worked examples checked at load time.
    """

    name: str = Field(min_length=1)
    title: str | None = None
    match: Match | None = None
    default: StrictBool = False
    pool: str = Field(min_length=1)
    accumulate: Accumulate = "claim"
    mode: Mode = "marginal"
    gate: Fen | None = None
    brackets: tuple[Bracket, ...] = ()
    grant: Grant | None = None
    annual_cap: Fen | None = None
    claim_cap: Fen | None = None
    caps: Names = ()
    second: SecondStage | None = None
    basis: str | None = None
    examples: tuple[Example, ...] = ()

    @property
    def extended(self) -> bool:
        """Whether the plan uses a rule of docs/calculation.md *Rules real schemes need*
        (a grant, cap pools, a second stage, or attribute conditions)."""
        return bool(self.grant is not None or self.caps or self.second is not None
                    or (self.match is not None and self.match.attributes))


class ExampleClaim(_Frozen):
    """One claim of a rule set's top-level worked example (docs/rules.md): its facts, any
    declared attribute's value under the attribute's name, and the expected ``relief`` (and
    ``second_relief`` when given)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    id: str | None = None
    person: str = "P1"
    household: str | None = None
    group: str | None = None
    kind: str | None = None
    date: Date | None = None
    self_pay: Fen
    non_compliant: Fen | None = None
    relief: Fen
    second_relief: Fen | None = None


class Scenario(_Frozen):
    """A worked example across plans, persons and households (``[[examples]]`` at the top)."""

    note: str | None = None
    claims: tuple[ExampleClaim, ...] = Field(min_length=1)


#: A plan's match as codes: the plan, its groups, its kinds, its attribute conditions.
_Matching = tuple[Plan, frozenset[str], frozenset[str], tuple[tuple[str, frozenset[str]], ...]]


class RuleSet(_Frozen):
    """One dated version of one scheme (规则版本): the plans in force from ``valid_from``
    (inclusive) to ``valid_to`` (inclusive, or open).  ``source`` and ``content_hash``
    (sha256 of the file's bytes) identify exactly which file produced a result."""

    id: str = Field(min_length=1)
    version: str = Field(min_length=1)
    title: str | None = None
    valid_from: Date
    valid_to: Date | None = None
    rounding: Rounding = Rounding()
    benefit_year_start_month: StrictInt = Field(default=1, ge=1, le=12)
    notes: str | None = None
    groups: dict[Annotated[str, Field(min_length=1)], Names] = {}
    kinds: dict[Annotated[str, Field(min_length=1)], Names] = {}
    attributes: dict[Annotated[str, Field(min_length=1)], Attribute] = {}
    caps: dict[Annotated[str, Field(min_length=1)], CapPool] = {}
    second_stages: dict[Annotated[str, Field(min_length=1)], SecondStage] = {}
    plans: tuple[Plan, ...] = Field(min_length=1)
    examples: tuple[Scenario, ...] = ()
    source: str = Field(default="<memory>", exclude=True)
    content_hash: str = Field(default="", exclude=True)
    _group_code: dict[str, str] = PrivateAttr(default_factory=dict)
    _kind_code: dict[str, str] = PrivateAttr(default_factory=dict)
    _matches: tuple[_Matching, ...] = PrivateAttr(default=())
    _attr_code: dict[str, dict[str, str]] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any) -> None:
        """Index the names: every alias (and every code) → its code; each plan's match as codes."""
        for table, index in ((self.groups, self._group_code), (self.kinds, self._kind_code)):
            for code, aliases in table.items():
                for name in aliases:
                    index.setdefault(name, code)
            for code in table:
                index[code] = code
        for attr, spec in self.attributes.items():
            index = self._attr_code[attr] = {}
            for code, aliases in spec.values.items():
                for name in aliases:
                    index.setdefault(name, code)
            for code in spec.values:
                index[code] = code
        self._matches = tuple(
            (p, frozenset(self.group_code(g) for g in p.match.group),
             frozenset(self.kind_code(k) for k in p.match.kind),
             tuple((a, frozenset(self._attr_code.get(a, {}).get(v, v) for v in vals))
                   for a, vals in p.match.attributes.items())) if p.match is not None
            else (p, frozenset(), frozenset(), ())
            for p in self.plans)

    @property
    def extended(self) -> bool:
        """Whether this version uses any rule of docs/calculation.md *Rules real schemes need*."""
        return bool(self.attributes or self.caps or any(p.extended for p in self.plans))

    def attribute_codes(self, attributes: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...] | Problem:
        """A claim's attribute values as codes, for the attributes this version declares
        (others are not read); a value that is neither a code nor a name of its attribute is a
        problem naming the attribute and the values allowed, or, where the attribute says
        ``unlisted = "none"``, no value."""
        out = []
        for name, value in attributes:
            index = self._attr_code.get(name)
            if index is None:
                continue
            code = index.get(value)
            if code is None and self.attributes[name].unlisted == "none":
                continue  # a value the attribute does not list counts as no value
            if code is None:
                allowed = "; ".join(f"{c} ({', '.join(a)})" if a else c
                                    for c, a in self.attributes[name].values.items())
                return Problem(f"{_shown(value)} is not a value of attribute {name!r} in {self.label}; "
                               f"allowed: {allowed}", field=name)
            out.append((name, code))
        return tuple(out)

    def household_caps(self, plan: Plan) -> tuple[str, ...]:
        """The per-household cap pools binding ``plan`` (its own ``caps`` and its second stage's)."""
        names = plan.caps + (plan.second.caps if plan.second is not None else ())
        return tuple(n for n in names if n in self.caps and self.caps[n].per == "household")

    def group_code(self, name: str) -> str:
        """The code of a beneficiary group named by its code or an alias (``特困人员`` → ``key``
        with the shipped file); any other name is its own code."""
        return self._group_code.get(name, name)

    def kind_code(self, name: str) -> str:
        """The code of a claim kind named by its code or an alias (``住院`` → ``inpatient``)."""
        return self._kind_code.get(name, name)

    def codes(self, group: str | None, kind: str | None) -> tuple[str | None, str | None]:
        """(group, kind) as their codes (``None`` stays ``None``): what results record."""
        return (None if group is None else self.group_code(group),
                None if kind is None else self.kind_code(kind))

    def covers(self, day: dt.date) -> bool:
        """Whether this version is in force on ``day``."""
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def benefit_year(self, day: dt.date) -> int:
        """The benefit year of ``day``: its calendar year, or the year in which the benefit year
        that contains it started when ``benefit_year_start_month`` is not January."""
        return day.year if day.month >= self.benefit_year_start_month else day.year - 1

    def plan(self, group: str | None, kind: str | None,
             attributes: tuple[tuple[str, str], ...] = ()) -> Plan | None:
        """The plan covering (group, kind); claims with neither go to the default plan; a claim
        naming only one of them goes to the default plan if that plan covers what it names.
        Group and kind are compared by their codes, so an alias (``groups``/``kinds`` tables)
        finds the plan of its code.  A plan whose match lists attributes covers only claims
        whose value (as a code, :meth:`attribute_codes`) of each is one of those listed."""
        group, kind = self.codes(group, kind)
        values = dict(attributes)

        def fits(conds: tuple[tuple[str, frozenset[str]], ...]) -> bool:
            return all(values.get(a) in codes for a, codes in conds)

        if group is not None and kind is not None:
            for p, groups, kinds, conds in self._matches:
                if group in groups and kind in kinds and fits(conds):
                    return p
            return None
        for p, groups, kinds, conds in self._matches:
            if p.default and fits(conds):
                if p.match is None:
                    return p if group is None and kind is None else None
                if (group is None or group in groups) and (kind is None or kind in kinds):
                    return p
        return None

    @property
    def label(self) -> str:
        """``id@version``."""
        return f"{self.id}@{self.version}"


def schedule_of(plan: Plan | SecondStage, rounding: Rounding) -> Schedule:
    """Compile a plan, or a plan's second stage, into its exact arithmetic
    (:class:`medaid.domain.brackets.Schedule`); a second stage with its own ``rounding``
    rounds by it."""
    grant = plan.grant if isinstance(plan, Plan) else None
    if isinstance(plan, SecondStage) and plan.rounding is not None:
        rounding = plan.rounding
    return Schedule(
        lowers=[b.lower for b in plan.brackets],
        uppers=[b.upper for b in plan.brackets],
        rates=[b.rate for b in plan.brackets],
        mode=plan.mode,
        gate=plan.gate,
        accumulate=plan.accumulate,
        annual_cap=plan.annual_cap,
        claim_cap=plan.claim_cap,
        unit=rounding.unit,
        method=rounding.method,
        grant=None if grant is None else grant.amount,
        grant_per="claim" if grant is None else grant.per,
    )


class PlacedPlan(NamedTuple):
    """A plan as claims settle under it: the rule version, the plan and its compiled arithmetic
    (:meth:`RuleBook.schedule`), and its second stage's (``None``: none)."""

    rule_set: RuleSet
    plan: Plan
    schedule: Schedule
    second: Schedule | None = None


# --------------------------------------------------------------------------------------------
# the rule book


class RuleBook:
    """Every rule set loaded from a file or folder: several schemes, several versions each.

    ``scheme`` names the scheme claims are settled under; it may be left out when only one
    scheme is loaded.  Compiled schedules are cached per (rule set, plan), placed plans per
    (rule set, group, kind) (:meth:`plan_for`).
    """

    def __init__(self, rule_sets: Iterable[RuleSet], scheme: str | None = None) -> None:
        self.rule_sets: tuple[RuleSet, ...] = tuple(
            sorted(rule_sets, key=lambda r: (r.id, r.valid_from))
        )
        if not self.rule_sets:
            raise RuleError("no rule sets were loaded")
        schemes = sorted({r.id for r in self.rule_sets})
        if scheme is None:
            if len(schemes) == 1:
                scheme = schemes[0]
            # else none is chosen until :meth:`select`; settlement refuses until then
        elif scheme not in schemes:
            raise RuleError(f"unknown scheme {scheme!r}; loaded: {', '.join(schemes)}")
        self.scheme = scheme
        self.schemes = tuple(schemes)
        self._schedules: dict[tuple[int, str], Schedule] = {}
        self._by_date: dict[dt.date, RuleSet | None] = {}
        self._plans: dict[tuple[int, str | None, str | None, tuple[tuple[str, str], ...]], PlacedPlan | None] = {}

    def select(self, scheme: str) -> RuleBook:
        """The same rule sets with ``scheme`` chosen for settlement (what ``--scheme ID`` does on
        the command line; docs/calculation.md)."""
        return RuleBook(self.rule_sets, scheme)

    def versions(self) -> tuple[RuleSet, ...]:
        """The versions of the chosen scheme, oldest first."""
        self._need_scheme()
        return tuple(r for r in self.rule_sets if r.id == self.scheme)

    def _need_scheme(self) -> None:
        if self.scheme is None:
            raise RuleError(
                "several schemes are loaded (" + ", ".join(self.schemes) + "); choose one with --scheme")

    def for_date(self, day: dt.date) -> RuleSet | None:
        """The version of the chosen scheme in force on ``day`` (rule *Rule versions*)."""
        try:
            return self._by_date[day]
        except KeyError:
            pass
        self._need_scheme()
        found = None
        for r in self.rule_sets:
            if r.id == self.scheme and r.covers(day):
                found = r
                break
        self._by_date[day] = found
        return found

    def schedule(self, rule_set: RuleSet, plan: Plan) -> Schedule:
        """The compiled arithmetic of ``plan`` under ``rule_set``'s rounding (cached)."""
        key = (id(rule_set), plan.name)
        s = self._schedules.get(key)
        if s is None:
            s = self._schedules[key] = schedule_of(plan, rule_set.rounding)
        return s

    def plan_for(self, rule_set: RuleSet, group: str | None, kind: str | None,
                 attributes: tuple[tuple[str, str], ...] = ()) -> PlacedPlan | None:
        """The plan of ``rule_set`` covering (group, kind) (:meth:`RuleSet.plan`) with its
        compiled arithmetic, or ``None`` when no plan covers them; cached per (rule set, group,
        kind), so placing a claim costs a dictionary lookup once its kind has been seen."""
        key = (id(rule_set), group, kind, attributes)
        try:
            return self._plans[key]
        except KeyError:
            pass
        plan = rule_set.plan(group, kind, attributes)
        found = None if plan is None else self.placed(rule_set, plan)
        self._plans[key] = found
        return found

    def placed(self, rule_set: RuleSet, plan: Plan) -> PlacedPlan:
        """``plan`` of ``rule_set`` with its compiled arithmetic and its second stage's."""
        second = None
        if plan.second is not None:
            key = (id(rule_set), plan.name + "\x00second")
            second = self._schedules.get(key)
            if second is None:
                second = self._schedules[key] = schedule_of(plan.second, rule_set.rounding)
        return PlacedPlan(rule_set, plan, self.schedule(rule_set, plan), second)

    @property
    def extended(self) -> bool:
        """Whether any loaded version uses a rule of docs/calculation.md *Rules real schemes
        need* (claims are then settled by :func:`medaid.domain.engine.settle`'s general loop)."""
        return any(r.extended for r in self.rule_sets)

    def __repr__(self) -> str:
        return f"RuleBook({', '.join(r.label for r in self.rule_sets)}; scheme={self.scheme!r})"


# --------------------------------------------------------------------------------------------
# loading and validation


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_PYDANTIC_HINTS = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def _pydantic_problems(err: ValidationError, source: str, raw: dict[str, Any]) -> list[Problem]:
    problems = []
    errors = []
    for e in err.errors():
        # pydantic appends validator names such as 'function-before[...]'; drop them
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and "[" in p and p.endswith("]")))
        errors.append((loc, e))
    inner = {loc for loc, _ in errors}
    for loc, e in errors:
        kind = e["type"]
        if kind == "too_short" and any(o[: len(loc)] == loc and len(o) > len(loc) for o in inner):
            # a list whose bad items were dropped: pydantic also calls it too short; noise
            continue
        msg = _PYDANTIC_HINTS.get(kind, e["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if kind == "extra_forbidden":
            msg += "; allowed here: " + ", ".join(_allowed_keys(loc))
        elif kind.startswith(("int_", "string_", "bool_", "tuple_", "list_", "model_", "dict_")):
            msg += f" (got {type(e.get('input')).__name__})"
        elif kind == "literal_error":
            msg = f"{e.get('input')!r} is not allowed; " + msg[0].lower() + msg[1:]
        problems.append(Problem(msg, source=source, field=_key_path(loc)))
    return problems


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys a table at ``loc`` (the location of the unknown key) accepts."""
    model: Any = RuleSet
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            # alias lookup
            field = next((f for f in model.model_fields.values() if f.alias == part), None)
        if field is None:
            return []
        ann = field.annotation
        model = _model_in(ann)
        if model is None:
            return []
    return sorted(
        (f.alias or n)
        for n, f in model.model_fields.items()
        if n not in _COMPUTED
    )


#: RuleSet fields medaid fills in itself; a rule file may not set them.
_COMPUTED = ("source", "content_hash")


def _model_in(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in get_args(ann):
        m = _model_in(a)
        if m is not None:
            return m
    return None


def _cross_checks(rs: RuleSet) -> list[Problem]:
    """Checks that span fields: brackets, caps, names, matching, examples."""
    src = rs.source
    out: list[Problem] = []

    def bad(field: str, msg: str) -> None:
        out.append(Problem(msg, source=src, field=field))

    if rs.valid_to is not None and rs.valid_to < rs.valid_from:
        bad("valid_to", f"{rs.valid_to} is before valid_from {rs.valid_from}; valid_to must be on or after it")
    for key, table in (("groups", rs.groups), ("kinds", rs.kinds)):
        seen: dict[str, str] = {}
        for code, aliases in table.items():
            for j, name in enumerate(aliases):
                at = f"{key}.{code}[{j}]"
                if name in table and name != code:
                    bad(at, f"{name!r} is a code of its own in [{key}]; a name may stand for one code only")
                elif name in seen:
                    also = "again" if seen[name] == code else f"also under {seen[name]!r}"
                    bad(at, f"{name!r} is listed {also}; a name may stand for one code only")
                seen.setdefault(name, code)
    for name, spec in rs.attributes.items():
        at = f"attributes.{name}"
        if not ATTRIBUTE_NAME.fullmatch(name):
            bad(at, f"{_shown(name)} is not an attribute name; allowed: lower-case letters, digits, '_' and '-', "
                "starting with a letter")
        elif name in RESERVED_ATTRIBUTES:
            bad(at, f"{name!r} is a claim field; an attribute needs a name of its own")
        seen_values: dict[str, str] = {}
        for code, aliases in spec.values.items():
            for j, alias in enumerate(aliases):
                if (alias in spec.values and alias != code) or seen_values.get(alias, code) != code:
                    bad(f"{at}.values.{code}[{j}]",
                        f"{alias!r} stands for another value too; a name may stand for one value only")
                seen_values.setdefault(alias, code)
    names: dict[str, int] = {}
    defaults = []
    pool_caps: dict[str, tuple[int, int | None]] = {}
    second_caps: dict[str, tuple[int, int | None]] = {}
    first_pools = {p.pool for p in rs.plans}
    for i, p in enumerate(rs.plans):
        at = f"plans[{i}]"
        if p.name in names:
            bad(f"{at}.name",
                f"duplicate plan name {p.name!r} (also plans[{names[p.name]}]); plan names must be unique")
        names.setdefault(p.name, i)
        if p.default:
            defaults.append(i)
        if p.match is None and not p.default:
            bad(f"{at}.match", "a plan needs a match (group and kind lists) unless it is the default plan")
        if p.match is not None:
            for a, vals in p.match.attributes.items():
                if a not in rs.attributes:
                    declared = ", ".join(rs.attributes) or "none"
                    bad(f"{at}.match.{a}", f"unknown key: {a!r} is neither group, kind nor a declared attribute "
                        f"(declared attributes: {declared}; declare one under [attributes.{a}])")
                    continue
                for j, v in enumerate(vals):
                    if v not in rs._attr_code[a]:
                        allowed = ", ".join(rs.attributes[a].values)
                        bad(f"{at}.match.{a}[{j}]",
                            f"{_shown(v)} is not a value of attribute {a!r}; allowed: {allowed} (or their names)")
        for cap in ("annual_cap", "claim_cap", "gate"):
            v = getattr(p, cap)
            if v is not None and v < 0:  # parse_yuan refuses negatives; kept for models built in code
                bad(f"{at}.{cap}", "must not be negative")
        if p.grant is not None:
            if p.brackets:
                bad(f"{at}.grant", "a plan gives either brackets or a grant, not both")
            for key in ("mode", "gate", "accumulate"):
                if key in p.model_fields_set:
                    bad(f"{at}.{key}", f"a grant plan has no {key}: the grant is paid as it is "
                        "(per claim or per year), then the caps")
        elif not p.brackets:
            bad(f"{at}.brackets", "required key is missing (a plan gives brackets, or a grant)")
        _bracket_problems(bad, at, p.brackets, p.mode)
        _cap_list_problems(bad, rs, f"{at}.caps", p.caps)
        _same_cap(bad, pool_caps, p.pool, p.annual_cap, i, f"{at}.annual_cap", "plans")
        if p.second is not None:
            sat = f"{at}.second"
            if p.second.pool in first_pools:
                bad(f"{sat}.pool", f"{p.second.pool!r} is a plan's pool; a second stage accumulates the burden "
                    "in a pool of its own")
            _bracket_problems(bad, sat, p.second.brackets, p.second.mode)
            _cap_list_problems(bad, rs, f"{sat}.caps", p.second.caps)
            _same_cap(bad, second_caps, p.second.pool, p.second.annual_cap, i, f"{sat}.annual_cap",
                      "second stages")
    out.extend(_overlap_problems(rs))
    if len(defaults) > 1:
        bad(f"plans[{defaults[1]}].default",
            f"only one plan may be the default (plans[{defaults[0]}] is already)")
    if not out:
        out.extend(_example_problems(rs))
    if not out:
        out.extend(_scenario_problems(rs))
    return out


def _bracket_problems(bad: Callable[[str, str], None], at: str, brackets: tuple[Bracket, ...], mode: str) -> None:
    """Brackets ascending, contiguous, only the last open; in whole mode the last open and the
    rates not falling."""
    prev_upper: int | None = None
    for j, b in enumerate(brackets):
        bat = f"{at}.brackets[{j}]"
        if j > 0 and b.lower <= brackets[j - 1].lower:
            bad(f"{bat}.from", f"from ({format_yuan(b.lower)}) is not above the previous bracket's from "
                f"({format_yuan(brackets[j - 1].lower)}); list brackets in ascending order of from")
            break
        if b.upper is not None and b.upper <= b.lower:
            bad(f"{bat}.to",
                f"to ({format_yuan(b.upper)}) must be above from ({format_yuan(b.lower)}); brackets must ascend")
        if j > 0:
            if prev_upper is None:
                bad(f"{at}.brackets[{j - 1}].to", "only the last bracket may be open-ended (no 'to')")
            elif b.lower < prev_upper:
                bad(f"{bat}.from", f"from ({format_yuan(b.lower)}) overlaps the previous bracket, which ends "
                    f"at {format_yuan(prev_upper)}; brackets must be contiguous and ascending")
            elif b.lower > prev_upper:
                bad(f"{bat}.from", f"from ({format_yuan(b.lower)}) leaves a gap after the previous bracket, "
                    f"which ends at {format_yuan(prev_upper)}; brackets must be contiguous")
        prev_upper = b.upper
    if mode == "whole" and brackets and brackets[-1].upper is not None:
        bad(f"{at}.brackets[{len(brackets) - 1}].to",
            "in whole mode the last bracket must be open-ended (remove 'to')")
    if mode == "whole":
        for j in range(1, len(brackets)):
            lo, hi = brackets[j - 1].rate, brackets[j].rate
            if hi < lo:
                bad(f"{at}.brackets[{j}].rate", f"in whole mode rates must not fall from one bracket to the "
                    f"next ({format_rate(hi)} after {format_rate(lo)}): a larger self-pay would get less relief")


def _cap_list_problems(bad: Callable[[str, str], None], rs: RuleSet, at: str, caps: tuple[str, ...]) -> None:
    """Each cap pool a plan (or second stage) lists is declared, and listed once."""
    for j, name in enumerate(caps):
        if name not in rs.caps:
            declared = ", ".join(rs.caps) or "none"
            bad(f"{at}[{j}]", f"{_shown(name)} is not a declared cap pool (declared: {declared}; declare one "
                f"under [caps.{name}])")
        elif name in caps[:j]:
            bad(f"{at}[{j}]", f"cap pool {name!r} is listed twice")


def _same_cap(bad: Callable[[str, str], None], seen: dict[str, tuple[int, int | None]], pool: str,
              cap: int | None, i: int, at: str, what: str) -> None:
    """Plans (or second stages) sharing a pool state one annual cap: the cap belongs to the pool."""
    first = seen.setdefault(pool, (i, cap))
    if first[1] != cap:
        bad(at, f"{what} of pool {pool!r} must share one annual cap; plans[{first[0]}] has another")


def _overlap_problems(rs: RuleSet) -> list[Problem]:
    """No two plans may both cover one claim: they overlap when their groups meet, their kinds
    meet, and for every attribute both list, their values (as codes) meet."""
    out = []
    matches = [m for m in rs._matches if m[0].match is not None]
    for b_at, (pb, gb, kb, cb) in enumerate(matches):
        for pa, ga, ka, ca in matches[:b_at]:
            if not (ga & gb and ka & kb):
                continue
            conds_a = dict(ca)
            if all(conds_a[a] & codes for a, codes in cb if a in conds_a):
                i_a, i_b = rs.plans.index(pa), rs.plans.index(pb)
                g, k = sorted(ga & gb)[0], sorted(ka & kb)[0]
                shared = [a for a, _ in cb if a in conds_a]
                also = (f" and the same values of {', '.join(shared)}" if shared else "")
                out.append(Problem(
                    f"(group {g!r}, kind {k!r}){also} is matched by plans[{i_a}] too; each (group, kind) may be "
                    "matched by one plan only, unless the plans list different values of an attribute",
                    source=rs.source, field=f"plans[{i_b}].match"))
    return out


def _scenario_problems(rs: RuleSet) -> list[Problem]:
    """Run the rule set's top-level worked examples through the engine (docs/rules.md, *Worked
    examples across plans*): each example's claims, in (date, claim id) order, must get the
    stated ``relief`` (and ``second_relief`` where stated)."""
    from .claims import Claim  # the engine's inputs and the engine: same layer, loaded on use
    from .engine import settle

    out: list[Problem] = []
    book = RuleBook([rs])
    fields = set(ExampleClaim.model_fields)
    for j, ex in enumerate(rs.examples):
        at = f"examples[{j}]"
        claims = []
        for k, c in enumerate(ex.claims):
            extra = {a: v for a, v in (c.model_extra or {}).items() if a not in fields}
            unknown = [a for a in extra if a not in rs.attributes]
            if unknown:
                out.append(Problem(f"unknown key {unknown[0]!r}; allowed here: " + ", ".join(
                    sorted(fields | set(rs.attributes))), source=rs.source, field=f"{at}.claims[{k}]"))
                continue
            try:
                claims.append(Claim(
                    claim_id=c.id or f"E{k + 1}", person_id=c.person, household_id=c.household,
                    date=c.date or rs.valid_from, self_pay=c.self_pay, group=c.group, kind=c.kind,
                    non_compliant=c.non_compliant, attributes=tuple((a, str(v)) for a, v in extra.items())))
            except ValidationError as e:
                out.append(Problem(e.errors()[0]["msg"], source=rs.source, field=f"{at}.claims[{k}]"))
        if len(claims) != len(ex.claims):
            continue
        try:
            results = settle(claims, book)
        except MedaidError as e:
            out.append(Problem(f"the example cannot be settled: {e.problems[0]}", source=rs.source, field=at))
            continue
        for k, (c, r) in enumerate(zip(ex.claims, results)):
            for key, want, got in (("relief", c.relief, r.relief),
                                   ("second_relief", c.second_relief, r.second_relief)):
                if want is not None and got != want:
                    out.append(Problem(
                        f"the rules give {format_yuan(got)} for claim {r.claim_id} ({format_yuan(r.self_pay)} "
                        f"self-pay), but the example states {format_yuan(want)}",
                        source=rs.source, field=f"{at}.claims[{k}].{key}"))
    return out


def _one_persons_year(rs: RuleSet, plan: Plan) -> Callable[[int, int, int], int]:
    """A plan's example claims as one person's (of one household's) claims in one benefit year
    through the engine's :func:`medaid.domain.engine.settle_at`: the relief (both stages), the
    plan's pool starting at ``(C, G)`` and its cap pools and second pool at what its earlier
    example claims took."""
    from .claims import Claim
    from .engine import Placement, PoolState, Positions, settle_at

    book = RuleBook([rs])
    placed = book.placed(rs, plan)
    at = Placement(rs, plan, rs.benefit_year(rs.valid_from), placed.schedule, placed.second)
    state = Positions()
    n = 0

    def relief(s: int, c: int, g: int) -> int:
        nonlocal n
        n += 1
        claim = Claim(claim_id=f"E{n}", person_id="P1", household_id="H1", date=rs.valid_from, self_pay=s)
        state.pools[(claim.person_id, at.benefit_year, plan.pool)] = PoolState(c, g)
        r = settle_at(claim, at, state.position(claim, at))
        state.take(claim, at, r)
        return r.relief

    return relief


def _example_problems(rs: RuleSet) -> list[Problem]:
    """Run each plan's worked examples (docs/calculation.md#examples-in-rule-files): one
    person's claims in one pool and benefit year; for a plan with cap pools or a second stage,
    through the whole engine (the relief of both stages, the cap pools counting the example's
    claims)."""
    out: list[Problem] = []
    for i, p in enumerate(rs.plans):
        sched = schedule_of(p, rs.rounding)
        for j, ex in enumerate(p.examples):
            at = f"plans[{i}].examples[{j}]"
            claims: tuple[int, ...]
            wanted: tuple[int, ...]
            no_single = ex.self_pay is None and ex.relief is None
            no_sequence = ex.claims is None and ex.reliefs is None
            if ex.self_pay is not None and ex.relief is not None and no_sequence:
                single, claims, wanted = True, (ex.self_pay,), (ex.relief,)
            elif ex.claims is not None and ex.reliefs is not None and no_single and (
                len(ex.claims) == len(ex.reliefs)
            ):
                single, claims, wanted = False, ex.claims, ex.reliefs
            else:
                out.append(Problem(
                    "an example gives either self_pay and relief, or claims and reliefs of equal length",
                    source=rs.source, field=at))
                continue
            c, g = ex.ytd_self_pay, ex.ytd_relief
            whole = _one_persons_year(rs, p) if p.extended else None
            for k, (s, want) in enumerate(zip(claims, wanted)):
                got = sched.relieve(s, c, g).relief if whole is None else whole(s, c, g)
                if got != want:
                    what = f"{at}.relief" if single else f"{at}.reliefs[{k}]"
                    out.append(Problem(
                        f"the plan gives {format_yuan(got)} for a self-pay of {format_yuan(s)}, "
                        f"but the example states {format_yuan(want)}",
                        source=rs.source, field=what))
                    break
                c, g = c + s, g + got
    return out


_TOO_DEEP = ("arrays or tables are nested too deeply to be read; a rule file nests at most a few "
             "levels (plans → brackets → a bracket)")


def _shared_second_stages(raw: dict[str, Any], source: str) -> tuple[dict[str, Any], set[int], list[Problem]]:
    """A plan's ``second = "NAME"``: the second stage declared once as ``[second_stages.NAME]``
    and shared by every plan that names it (docs/rules.md, *Second stage*).  Returns the file's
    data with each such name replaced by its table (the plans then hold the same second stage,
    as if each had written it out), the indexes of the plans so given one, and a problem for
    each name that is not declared (that plan's ``second`` then left out, so that it is not
    also reported as not being a table)."""
    plans = raw.get("plans")
    if not isinstance(plans, list):
        return raw, set(), []
    named = raw.get("second_stages")
    stages = named if isinstance(named, dict) else {}
    shared: set[int] = set()
    problems: list[Problem] = []
    out = []
    for i, plan in enumerate(plans):
        name = plan.get("second") if isinstance(plan, dict) else None
        if isinstance(name, str):
            if isinstance(stages.get(name), dict):
                plan = {**plan, "second": stages[name]}
                shared.add(i)
            else:
                declared = ", ".join(repr(n) for n in stages) or "none"
                problems.append(Problem(f"no second stage named {name!r}; declared under [second_stages]: {declared}",
                                        source=source, field=f"plans[{i}].second"))
                plan = {k: v for k, v in plan.items() if k != "second"}
        out.append(plan)
    return {**raw, "plans": out}, shared, problems


def parse_rule_set(data: bytes, source: str = "<memory>") -> RuleSet:
    """Read and validate one rule file's bytes; raises :class:`RuleError` with every problem."""
    try:
        raw = tomllib.loads(data.decode("utf-8-sig"))  # -sig: Notepad writes a BOM
    except UnicodeDecodeError as e:
        raise RuleError(Problem(f"not UTF-8 text ({e.reason} at byte {e.start})", source=source)) from None
    except tomllib.TOMLDecodeError as e:
        raise RuleError(Problem(f"not valid TOML: {e}", source=source)) from None
    except RecursionError:  # tomllib reads nested arrays and tables by recursion
        raise RuleError(Problem(_TOO_DEEP, source=source)) from None
    digest = hashlib.sha256(data).hexdigest()
    reserved = [Problem(
        "unknown key; allowed here: " + ", ".join(_allowed_keys((k,))) + f" ({k} is set by medaid)",
        source=source, field=k) for k in _COMPUTED if k in raw]
    raw, shared, unknown = _shared_second_stages(raw, source)
    try:
        rs = RuleSet.model_validate({**raw, "source": source, "content_hash": digest})
    except ValidationError as e:
        # a shared second stage's problems are reported once, where it is declared
        inside = tuple(f"plans[{i}].second" for i in shared)
        found = [p for p in _pydantic_problems(e, source, raw) if not (p.field or "").startswith(inside)]
        raise RuleError(reserved + unknown + found) from None
    except RecursionError:
        raise RuleError(Problem(_TOO_DEEP, source=source)) from None
    if reserved or unknown:
        raise RuleError(reserved + unknown)
    problems = _cross_checks(rs)
    if problems:
        raise RuleError(problems)
    return rs


def load_rules(path: str | Path, scheme: str | None = None) -> RuleBook:
    """Load a rule file, or every ``*.toml`` in a folder, into a :class:`RuleBook`.

    Every file is validated (see the module docstring) and its examples run; versions of one
    scheme must not overlap in time.  All problems of all files are raised together as one
    :class:`RuleError`.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.toml"))
        if not files:
            raise RuleError(Problem("no *.toml rule files in this folder", source=str(path)))
    elif path.exists():
        files = [path]
    else:
        raise RuleError(Problem("no such rule file or folder", source=str(path)))
    sets: list[RuleSet] = []
    problems: list[Problem] = []
    for f in files:
        try:
            sets.append(parse_rule_set(f.read_bytes(), str(f)))
        except RuleError as e:
            problems.extend(e.problems)
    problems.extend(_overlaps(sets))
    if problems:
        raise RuleError(problems)
    return RuleBook(sets, scheme)


def _overlaps(sets: list[RuleSet]) -> list[Problem]:
    out = []
    by_id: dict[str, list[RuleSet]] = {}
    for r in sets:
        by_id.setdefault(r.id, []).append(r)
    for versions in by_id.values():
        versions.sort(key=lambda r: r.valid_from)
        labels: dict[str, RuleSet] = {}
        for b in versions:
            a = labels.setdefault(b.version, b)
            if a is not b:
                out.append(Problem(
                    f"version {b.version!r} of scheme {b.id!r} is also in {a.source}; each version "
                    "of a scheme needs its own label", source=b.source, field="version"))
        for a, b in zip(versions, versions[1:]):
            if a.benefit_year_start_month != b.benefit_year_start_month:
                out.append(Problem(
                    f"benefit_year_start_month {b.benefit_year_start_month} differs from "
                    f"{a.benefit_year_start_month} in version {a.version!r} of scheme {a.id!r} "
                    f"({a.source}); versions of one scheme must share it, or a person's benefit "
                    "year would split at the version change", source=b.source,
                    field="benefit_year_start_month"))
            if a.valid_to is None or a.valid_to >= b.valid_from:
                end = "open-ended" if a.valid_to is None else f"valid to {a.valid_to}"
                out.append(Problem(
                    f"version {b.version!r} (valid from {b.valid_from}) overlaps version "
                    f"{a.version!r} of scheme {a.id!r} in {a.source} ({end}); versions of one "
                    "scheme must not overlap in time: give the earlier one a valid_to",
                    source=b.source, field="valid_from"))
    return out

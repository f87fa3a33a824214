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
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NamedTuple, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    ValidationError,
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
    """Which claims a plan covers: every (group, kind) pair of these lists."""

    group: Names = Field(min_length=1)
    kind: Names = Field(min_length=1)


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
    brackets: tuple[Bracket, ...] = Field(min_length=1)
    annual_cap: Fen | None = None
    claim_cap: Fen | None = None
    basis: str | None = None
    examples: tuple[Example, ...] = ()


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
    plans: tuple[Plan, ...] = Field(min_length=1)
    source: str = Field(default="<memory>", exclude=True)
    content_hash: str = Field(default="", exclude=True)
    _group_code: dict[str, str] = PrivateAttr(default_factory=dict)
    _kind_code: dict[str, str] = PrivateAttr(default_factory=dict)
    _matches: tuple[tuple[Plan, frozenset[str], frozenset[str]], ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any) -> None:
        """Index the names: every alias (and every code) → its code; each plan's match as codes."""
        for table, index in ((self.groups, self._group_code), (self.kinds, self._kind_code)):
            for code, aliases in table.items():
                for name in aliases:
                    index.setdefault(name, code)
            for code in table:
                index[code] = code
        self._matches = tuple(
            (p, frozenset(self.group_code(g) for g in p.match.group),
             frozenset(self.kind_code(k) for k in p.match.kind)) if p.match is not None
            else (p, frozenset(), frozenset())
            for p in self.plans)

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

    def plan(self, group: str | None, kind: str | None) -> Plan | None:
        """The plan covering (group, kind); claims with neither go to the default plan; a claim
        naming only one of them goes to the default plan if that plan covers what it names.
        Group and kind are compared by their codes, so an alias (``groups``/``kinds`` tables)
        finds the plan of its code."""
        group, kind = self.codes(group, kind)
        if group is not None and kind is not None:
            for p, groups, kinds in self._matches:
                if group in groups and kind in kinds:
                    return p
            return None
        for p, groups, kinds in self._matches:
            if p.default:
                if p.match is None:
                    return p if group is None and kind is None else None
                if (group is None or group in groups) and (kind is None or kind in kinds):
                    return p
        return None

    @property
    def label(self) -> str:
        """``id@version``."""
        return f"{self.id}@{self.version}"


def schedule_of(plan: Plan, rounding: Rounding) -> Schedule:
    """Compile a plan into its exact arithmetic (:class:`medaid.domain.brackets.Schedule`)."""
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
    )


class PlacedPlan(NamedTuple):
    """A plan as claims settle under it: the rule version, the plan and its compiled arithmetic
    (:meth:`RuleBook.schedule`)."""

    rule_set: RuleSet
    plan: Plan
    schedule: Schedule


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
        self._plans: dict[tuple[int, str | None, str | None], PlacedPlan | None] = {}

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

    def plan_for(self, rule_set: RuleSet, group: str | None, kind: str | None) -> PlacedPlan | None:
        """The plan of ``rule_set`` covering (group, kind) (:meth:`RuleSet.plan`) with its
        compiled arithmetic, or ``None`` when no plan covers them; cached per (rule set, group,
        kind), so placing a claim costs a dictionary lookup once its kind has been seen."""
        key = (id(rule_set), group, kind)
        try:
            return self._plans[key]
        except KeyError:
            pass
        plan = rule_set.plan(group, kind)
        found = None if plan is None else PlacedPlan(rule_set, plan, self.schedule(rule_set, plan))
        self._plans[key] = found
        return found

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
    names: dict[str, int] = {}
    defaults = []
    pairs: dict[tuple[str, str], int] = {}
    pool_caps: dict[str, tuple[int, int | None]] = {}
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
        if p.match is not None:  # compared by code: an alias and its code are one group
            for g in dict.fromkeys(map(rs.group_code, p.match.group)):
                for k in dict.fromkeys(map(rs.kind_code, p.match.kind)):
                    if (g, k) in pairs and pairs[(g, k)] != i:
                        bad(
                            f"{at}.match",
                            f"(group {g!r}, kind {k!r}) is matched by plans[{pairs[(g, k)]}] too; "
                            "each (group, kind) may be matched by one plan only",
                        )
                    pairs.setdefault((g, k), i)
        for cap in ("annual_cap", "claim_cap", "gate"):
            v = getattr(p, cap)
            if v is not None and v < 0:  # parse_yuan refuses negatives; kept for models built in code
                bad(f"{at}.{cap}", "must not be negative")
        prev_upper: int | None = None
        for j, b in enumerate(p.brackets):
            bat = f"{at}.brackets[{j}]"
            if j > 0 and b.lower <= p.brackets[j - 1].lower:
                bad(f"{bat}.from", f"from ({format_yuan(b.lower)}) is not above the previous bracket's from "
                    f"({format_yuan(p.brackets[j - 1].lower)}); list brackets in ascending order of from")
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
        if p.mode == "whole" and p.brackets[-1].upper is not None:
            bad(f"{at}.brackets[{len(p.brackets) - 1}].to",
                "in whole mode the last bracket must be open-ended (remove 'to')")
        if p.mode == "whole":
            for j in range(1, len(p.brackets)):
                lo, hi = p.brackets[j - 1].rate, p.brackets[j].rate
                if hi < lo:
                    bad(f"{at}.brackets[{j}].rate", f"in whole mode rates must not fall from one bracket to the "
                        f"next ({format_rate(hi)} after {format_rate(lo)}): a larger self-pay would get less relief")
        if p.annual_cap is not None or p.pool in pool_caps:
            first = pool_caps.get(p.pool)
            if first is not None and first[1] != p.annual_cap:
                bad(f"{at}.annual_cap",
                    f"plans of pool {p.pool!r} must share one annual cap; plans[{first[0]}] has another")
            pool_caps.setdefault(p.pool, (i, p.annual_cap))
        else:
            pool_caps[p.pool] = (i, None)
    if len(defaults) > 1:
        bad(f"plans[{defaults[1]}].default",
            f"only one plan may be the default (plans[{defaults[0]}] is already)")
    if not out:
        out.extend(_example_problems(rs))
    return out


def _example_problems(rs: RuleSet) -> list[Problem]:
    """Run each plan's worked examples (docs/calculation.md#examples-in-rule-files)."""
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
            for k, (s, want) in enumerate(zip(claims, wanted)):
                got = sched.relieve(s, c, g).relief
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
    try:
        rs = RuleSet.model_validate({**raw, "source": source, "content_hash": digest})
    except ValidationError as e:
        raise RuleError(reserved + _pydantic_problems(e, source, raw)) from None
    except RecursionError:
        raise RuleError(Problem(_TOO_DEEP, source=source)) from None
    if reserved:
        raise RuleError(reserved)
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

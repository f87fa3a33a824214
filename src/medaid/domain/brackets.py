"""The bracket function, gate, accumulation increment and caps of one plan, exact.

Rules implemented (docs/calculation.md):

* *Bracket function* ``f(x) = Σ rate_i × max(0, min(x, to_i) − from_i)`` (mode ``marginal``);
  mode ``whole`` applies the rate of the bracket containing ``x`` to all of ``x − from_1``;
  below the first ``from`` nothing is relieved; above a closed last bracket nothing more.
* *Gate*: no relief unless the base ``x ≥ gate``.
* *Accumulation*: ``claim`` → ``inc_k = R(f(s_k))``; ``year`` →
  ``inc_k = R(f(C_k)) − R(f(C_{k−1}))``.
* *Caps*: ``relief_k = max(0, min(inc_k, claim_cap, annual_cap − G_{k−1}, s_k))``.
* *Capped* (``capped_by``, docs/rules.md): set only when the relief is below the bracket
  relief (``relief_k < inc_k``), naming the limit that made it so; a claim whose bracket relief
  is 0 is never capped, even when an earlier version's relief already exceeds a lowered cap.
* *Bracket reached* (``bracket``): :meth:`Schedule.bracket_reached`, the one definition used by
  the engine, the columnar batch, Spark, the ledger and the report.

Arithmetic: rates are exact decimals; a :class:`Schedule` scales them all to integers over one
power of ten (``0.70`` → ``70 / 100``) and tabulates ``f`` as exact integer pieces
(:class:`BracketTable`, the one definition of the bracket function, the gate and the bracket
reached, evaluated here and by the columnar batch), so ``f(x)`` is an exact integer ratio and
``R`` is one integer division by the constants of :func:`medaid.money.rounding_step` (the one
definition of rounding).  No float, no Fraction on the hot path.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, NamedTuple

from ..money import UNITS, RoundingMethod, RoundingUnit, exact_yuan_text, format_yuan, rounding_step

#: A plan's bracket mode (docs/rules.md *Brackets*): the part of the base in each bracket at its
#: rate, or the rate of the bracket containing the base on all of it.
Mode = Literal["marginal", "whole"]
#: A plan's accumulation (docs/calculation.md#accumulation): brackets per claim, or on the year's
#: cumulative self-pay.
Accumulate = Literal["claim", "year"]

#: Which limit made the relief smaller than the bracket relief (``None``: none did, which
#: includes every claim whose bracket relief is 0).
CAP_ANNUAL = "annual_cap"
CAP_CLAIM = "claim_cap"
CAP_SELF_PAY = "self_pay"


class Segment(NamedTuple):
    """One bracket's share of a claim, for the explanation shown to the patient.

    Attributes:
        lower: the bracket's lower bound, fen (``from``).
        upper: its upper bound, fen, or ``None`` when open-ended.
        base: how much of this claim's base (fen) falls in the bracket (``whole`` mode: the
            whole base ``x − from_1`` at the rate of the bracket that contains ``x``).
        rate: the bracket's exact rate.
        relief: ``rate × base`` in fen, exact (before rounding and caps).
    """

    lower: int
    upper: int | None
    base: int
    rate: Decimal
    relief: Decimal

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready: amounts as yuan text (``from``, ``to``, ``base`` with two decimals, the
        exact ``relief`` with four), the rate as written."""
        return {
            "from": format_yuan(self.lower, thousands=False),
            "to": None if self.upper is None else format_yuan(self.upper, thousands=False),
            "base": format_yuan(self.base, thousands=False),
            "rate": str(self.rate),
            "relief": exact_yuan_text(self.relief),
        }


class Outcome(NamedTuple):
    """What one claim gets under one plan, given the pool's state before it.

    Attributes:
        relief: fen granted, after rounding and caps.
        bracket_relief: ``inc_k`` in fen, before caps.
        capped_by: ``"annual_cap"``, ``"claim_cap"``, ``"self_pay"``: the limit that made
            ``relief`` smaller than ``bracket_relief``; ``None`` when relief = bracket relief.
        base_from: where this claim's base starts: ``0`` (claim mode) or ``C_{k−1}`` (year mode).
        base_to: where it ends: ``s_k`` or ``C_k``.
    """

    relief: int
    bracket_relief: int
    capped_by: str | None
    base_from: int
    base_to: int


def capped(inc: int, limits: tuple[tuple[int | None, str], ...], s: int) -> tuple[int, str | None]:
    """The caps in one ``min`` (docs/calculation.md, *Caps* and *Shared caps*):
    ``relief = max(0, min(inc, limit_1, …, limit_n, s))``, an absent limit (``None``) being
    infinite, and ``capped_by`` naming the limit the relief came down to: the first of
    ``limits`` (in the order given: ``annual_cap``, the cap pools as ``cap:NAME``,
    ``claim_cap``), then ``self_pay``, on a tie; ``None`` when nothing was taken off ``inc``.
    A tie is counted on the relief a limit leaves (``max(0, limit)``): a room below zero (a cap
    pool whose annual amount a later version lowered under what was already granted) ties with
    a room of zero, and the first of them is named.

    The plan's compiled closure (:meth:`Schedule.relieve_raw`) is this rule specialised to the
    limits ``annual_cap − G``, ``claim_cap`` and ``s`` (plans without cap pools)."""
    relief, by = inc, None
    for limit, name in limits:
        if limit is not None and limit < relief:
            relief, by = limit, name
            if relief <= 0:  # no later limit can leave less than nothing
                break
    if s < relief:
        relief, by = s, CAP_SELF_PAY
    if relief < 0:
        relief = 0
    if relief >= inc:
        by = None
    return relief, by


def _rate_parts(rates: list[Decimal]) -> tuple[list[int], int]:
    """Scale exact decimal rates to integers over a common power of ten.

    Integer arithmetic on the decimal digits: ``Decimal`` products and ``normalize`` round to
    the context's 28 digits, which would silently change a long rate."""
    parts = []
    for r in rates:
        sign, digits, exp = r.as_tuple()
        assert isinstance(exp, int)  # finite
        assert not sign or not any(digits), "rates are never negative"
        parts.append((int("".join(map(str, digits)) or "0"), exp))
    places = max([0] + [-exp for n, exp in parts if n])
    nums = [n * 10 ** (exp + places) if n else 0 for n, exp in parts]
    scale = 10**places
    # the smallest common power of ten: drop zeros every numerator and the scale share
    while scale > 1 and all(n % 10 == 0 for n in nums):
        scale //= 10
        nums = [n // 10 for n in nums]
    return nums, scale


@dataclass(frozen=True, slots=True)
class BracketTable:
    """A plan's bracket function and gate as exact integer pieces: the one definition that the
    scalar engine (:class:`Schedule`) and the columnar batch
    (:mod:`medaid.batch.columnar`) both evaluate.

    The base axis ``[0, ∞)`` is cut into pieces at ``lows``: ``[0, from_1]`` (the threshold,
    nothing relieved), then one piece per bracket from its ``from`` and, for a closed last
    bracket in ``marginal`` mode, a flat piece from ``to_last`` holding ``f(to_last)``.  On the
    piece ``j`` containing ``x`` (the last ``j`` with ``lows[j] ≤ x``; a base equal to ``from_1``
    is worth 0 on either side), ``f(x) × scale = intercepts[j] + slopes[j] × x`` exactly:

    * marginal bracket ``i``: ``slope = rate_i·scale``,
      ``intercept = f(from_i)·scale − slope·from_i`` (``f(from_i)`` the sum of the brackets below);
    * whole bracket ``i``: ``slope = rate_i·scale``, ``intercept = −slope·from_1``.

    Below ``gate`` (fen; 0 = no gate) the value is 0.

    ``brackets[j]`` is the bracket reached (1-based, :meth:`bracket_reached` without the gate)
    by a base inside piece ``j`` (above its low end), ``brackets_at_low[j]`` by a base exactly at
    ``lows[j]`` (marginal: a base at a bracket's ``from`` has not entered it).

    Attributes:
        mode: ``marginal`` or ``whole``.
        gate: fen; 0 when the plan has none.
        scale: the power of ten the rates are scaled by (``0.70`` → ``70 / 100``).
        lowers: the brackets' ``from`` (fen), ascending.
        lows, intercepts, slopes, brackets, brackets_at_low: one entry per piece.
    """

    mode: Mode
    gate: int
    scale: int
    lowers: tuple[int, ...]
    lows: tuple[int, ...]
    intercepts: tuple[int, ...]
    slopes: tuple[int, ...]
    brackets: tuple[int, ...]
    brackets_at_low: tuple[int, ...]

    @classmethod
    def build(
        cls, lowers: list[int], uppers: list[int | None], rate_nums: list[int], scale: int,
        mode: Mode = "marginal", gate: int | None = None,
    ) -> BracketTable:
        """The table of brackets ``[lowers_i, uppers_i)`` at rates ``rate_nums_i / scale``."""
        marginal = mode == "marginal"
        first = lowers[0]
        lows, icpts, slopes = [0], [0], [0]
        total = 0  # f(from_i) × scale
        for lo, hi, num in zip(lowers, uppers, rate_nums):
            lows.append(lo)
            slopes.append(num)
            icpts.append(total - num * lo if marginal else -num * first)
            if hi is not None:
                total += num * (hi - lo)
        if marginal and uppers[-1] is not None:
            lows.append(uppers[-1])
            slopes.append(0)
            icpts.append(total)

        def reached(x: int) -> int:  # the definition of the bracket reached (gate left out)
            if x <= first:
                return 0
            return bisect_left(lowers, x) if marginal else bisect_right(lowers, x)

        return cls(
            mode, gate or 0, scale, tuple(lowers), tuple(lows), tuple(icpts), tuple(slopes),
            tuple(reached(lo + 1) for lo in lows), tuple(reached(lo) for lo in lows),
        )

    def scaled_value(self, x: int) -> int:
        """``f(x) × scale``, an exact integer, with the gate applied (x in fen)."""
        if x < self.gate:
            return 0
        j = bisect_right(self.lows, x) - 1
        return self.intercepts[j] + self.slopes[j] * x

    def bracket_reached(self, x: int, *, gated: bool = True) -> int:
        """The bracket the base ``x`` (fen) reached; see :meth:`Schedule.bracket_reached`."""
        if gated and x < self.gate:
            return 0
        j = bisect_right(self.lows, x) - 1
        return self.brackets_at_low[j] if x == self.lows[j] else self.brackets[j]


class Schedule:
    """The compiled arithmetic of one plan: its :class:`BracketTable` (brackets, mode, gate),
    accumulation, caps and rounding (a :class:`medaid.money.RoundingStep` over the table's
    scale).

    All amounts are fen.  ``uppers[i]`` is ``None`` for an open-ended last bracket.
    """

    __slots__ = (
        "lowers", "uppers", "rates", "rate_nums", "scale", "mode", "gate", "accumulate",
        "annual_cap", "claim_cap", "unit", "method", "table", "rounding", "relieve_raw",
        "grant", "grant_per", "increment_raw",
    )

    def __init__(
        self,
        *,
        lowers: list[int],
        uppers: list[int | None],
        rates: list[Decimal],
        mode: Mode = "marginal",
        gate: int | None = None,
        accumulate: Accumulate = "claim",
        annual_cap: int | None = None,
        claim_cap: int | None = None,
        unit: RoundingUnit = "fen",
        method: RoundingMethod = "half-up",
        grant: int | None = None,
        grant_per: Literal["claim", "year"] = "claim",
    ) -> None:
        #: a fixed grant (定额救助) in fen instead of brackets (docs/calculation.md, *Fixed
        #: grants*); the bracket table is then one bracket at rate 0, never used
        self.grant = grant
        self.grant_per = grant_per
        if grant is not None:
            lowers, uppers, rates = [0], [None], [Decimal(0)]
        self.lowers = tuple(lowers)
        self.uppers = tuple(uppers)
        self.rates = tuple(rates)
        nums, self.scale = _rate_parts(list(rates))
        self.rate_nums = tuple(nums)
        self.mode = mode
        self.gate = gate
        self.accumulate = accumulate
        self.annual_cap = annual_cap
        self.claim_cap = claim_cap
        self.unit = UNITS[unit]
        self.method = method
        #: the bracket function and gate, exact (shared with the columnar batch)
        self.table = BracketTable.build(list(lowers), list(uppers), nums, self.scale, mode, gate)
        #: ``R`` for values over the table's scale
        self.rounding = rounding_step(self.scale, self.unit, method)
        #: :meth:`relieve` as a plain tuple ``(relief, inc, capped_by, base_from, base_to)``:
        #: the compiled closure itself (the engine's hot path calls it directly)
        self.relieve_raw: Callable[[int, int, int], tuple[int, int, str | None, int, int]]
        #: the increment alone, ``(inc, base_from, base_to)`` for ``(s, C, G)``: what the caps
        #: of cap pools and second stages take from (:func:`capped`)
        self.increment_raw: Callable[[int, int, int], tuple[int, int, int]]
        self.relieve_raw, self.increment_raw = self._compile()

    # -- the bracket function -------------------------------------------------------------
    def scaled_value(self, x: int) -> int:
        """``f(x) × scale``, an exact integer, with the gate applied (x in fen):
        :meth:`BracketTable.scaled_value`.

        Marginal: ``f(from_j) + rate_j × (x − from_j)`` for the bracket ``j`` containing ``x``
        (equal to the sum over brackets, since brackets are contiguous), ``f(to_last)`` above
        a closed last bracket.  Whole: ``rate_j × (x − from_1)``."""
        return self.table.scaled_value(x)

    def bracket_reached(self, x: int, *, gated: bool = True) -> int:
        """The bracket the base ``x`` (fen) reached: the 1-based index of the highest bracket
        whose rate applies to a positive part of the base; 0 when nothing is above the
        threshold (``x ≤ from_1``) or the gate is not met (``x < gate``).

        It is the bracket of the last segment of the explanation ``segments(0, x)``:

        * ``marginal``: the highest bracket ``i`` with ``from_i < x``.  A base exactly at a
          bound has not entered the bracket starting there: with 1,000 / 10,000 / 50,000 yuan,
          10,000 → 1 and 50,000 → 2 (the part from 10,000 is 0), 10,000.01 → 2; above a closed
          last bracket, the last.
        * ``whole``: the bracket containing ``x`` (``from_i ≤ x < to_i``), whose rate applies
          to all of ``x − from_1``: 10,000 → 2.

        In year mode ``x`` is the cumulative base ``C_k``; in claim mode the self-pay ``s_k``.
        ``gated=False`` leaves the gate out (the columnar batch applies it as a column).
        The values are tabulated per piece in :class:`BracketTable` (``brackets``).
        """
        if self.grant is not None:
            return 0
        return self.table.bracket_reached(x, gated=gated)

    # -- one claim ----------------------------------------------------------------------------
    def relieve(self, self_pay: int, ytd_self_pay: int = 0, ytd_relief: int = 0) -> Outcome:
        """Relief for a claim of ``self_pay`` fen when the pool already holds ``ytd_self_pay``
        (``C_{k−1}``) and ``ytd_relief`` (``G_{k−1}``): increment by accumulation mode, then
        ``max(0, min(inc, claim_cap, annual_cap − G, s))``."""
        return Outcome(*self.relieve_raw(self_pay, ytd_self_pay, ytd_relief))

    def _compile(self) -> tuple[Callable[[int, int, int], tuple[int, int, str | None, int, int]],
                                Callable[[int, int, int], tuple[int, int, int]]]:
        """The one scalar evaluation of the plan: the claim's relief as a closure over ``R(f(x))``,
        every constant bound (the engine's hot path): ``f`` by the :class:`BracketTable`,
        ``R`` by the :class:`medaid.money.RoundingStep`, then the increment of the
        accumulation mode and the caps, ``max(0, min(inc, claim_cap, annual_cap − G, s))``,
        ``capped_by`` naming the last limit that lowered the relief below ``inc``."""
        tb, rnd = self.table, self.rounding
        first, gate = tb.lows[1], tb.gate
        lows, icpts, slopes = tb.lows, tb.intercepts, tb.slopes
        step, unit, offset, to_even = rnd.step, rnd.unit, rnd.offset, rnd.ties_to_even
        annual_cap, claim_cap, per_claim = self.annual_cap, self.claim_cap, self.accumulate == "claim"
        bisect = bisect_right

        def r_of_f(x: int) -> int:
            if x <= first or x < gate:
                return 0
            j = bisect(lows, x) - 1
            q, r = divmod(icpts[j] + slopes[j] * x + offset, step)
            if to_even and not r and q & 1:
                q -= 1
            return q * unit

        grant, grant_per_year = self.grant, self.grant_per == "year"

        def increment(s: int, c: int, g: int) -> tuple[int, int, int]:
            """The increment: ``R(f(s))``, ``R(f(C_k)) − R(f(C_{k−1}))``, or the grant
            (per claim ``A``; per year ``max(0, A − G_{k−1})``)."""
            if grant is not None:
                return (max(0, grant - g) if grant_per_year else grant), 0, s
            if per_claim:
                return r_of_f(s), 0, s
            return r_of_f(c + s) - r_of_f(c), c, c + s

        def relieve(s: int, c: int, g: int) -> tuple[int, int, str | None, int, int]:
            if grant is not None:
                inc, base_from, base_to = increment(s, c, g)
            elif per_claim:
                inc = r_of_f(s)
                base_from, base_to = 0, s
            else:
                base_from, base_to = c, c + s
                inc = r_of_f(base_to) - r_of_f(c)
            relief, capped = inc, None
            if annual_cap is not None and annual_cap - g < relief:
                relief, capped = annual_cap - g, CAP_ANNUAL
            if claim_cap is not None and claim_cap < relief:
                relief, capped = claim_cap, CAP_CLAIM
            if s < relief:
                relief, capped = s, CAP_SELF_PAY
            if relief < 0:
                relief = 0
            if relief >= inc:
                capped = None  # nothing was taken off the bracket relief (it may be 0)
            return relief, inc, capped, base_from, base_to

        return relieve, increment

    def segments(self, base_from: int, base_to: int) -> list[Segment]:
        """The brackets' shares of the base span ``[base_from, base_to)`` (the explanation).

        Marginal mode: the part of the span in each bracket at that bracket's rate; their
        reliefs add up exactly to ``f(base_to) − f(base_from)``.  Whole mode: one segment, the
        whole ``base_to − from_1`` at the rate of the bracket containing ``base_to`` (the relief
        of earlier claims in the year is subtracted from it by the increment rule).
        A gate not met gives no segments; a grant has none.
        """
        if self.grant is not None:
            return []
        if self.gate is not None and base_to < self.gate:
            return []
        out: list[Segment] = []
        if self.mode == "whole":
            first = self.lowers[0]
            if base_to <= first:
                return []
            for lo, hi, rate in zip(self.lowers, self.uppers, self.rates):
                if hi is None or base_to < hi:
                    base = base_to - first
                    return [Segment(lo, hi, base, rate, rate * base)]
            return []
        if self.gate is not None and base_from < self.gate:
            base_from = 0  # crossing the gate releases everything below it at once
        for lo, hi, rate in zip(self.lowers, self.uppers, self.rates):
            top = base_to if hi is None else min(base_to, hi)
            bottom = max(base_from, lo)
            if top > bottom:
                out.append(Segment(lo, hi, top - bottom, rate, rate * (top - bottom)))
        return out

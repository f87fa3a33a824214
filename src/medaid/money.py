"""Money: the one door for amounts.

Rule (docs/calculation.md#money): amounts are integers of fen internally.  Inputs are yuan with at
most two decimals; more decimals, negatives, NaN, infinities and empty required fields are
errors.  Thousands separators (``12,345.67``) and full-width digits (``１２３４５．６７``,
normalised with NFKC) are accepted; every other script's digits, currency words and signs are
refused.  No ``float`` ever touches an amount: parsing is by regular expression on text and
integer arithmetic; rounding is integer division.

Rounding (docs/calculation.md#rounding): :func:`round_ratio` rounds an exact non-negative value
given as ``numerator / denominator`` fen to a unit (fen, jiao, yuan) with a method (half-up
四舍五入, half-even, down), by the constants of :func:`rounding_step`: the only rounding of the
money path (the report's percentages and averages included).

Text (docs/calculation.md#money): :func:`format_yuan` writes fen as yuan with two decimals (with
or without thousands separators), :func:`format_exact_yuan` / :func:`exact_yuan_text` an exact
amount that holds fractions of a fen (a bracket's share), :func:`format_percent` an exact ratio
as a percentage, :func:`format_rate` a rule's rate; :func:`format_fixed` is the integer arithmetic
under them.

Maximum (docs/calculation.md#money): one amount (a claim's self-pay or total cost, a rule's
cap, gate, bracket bound or example, a desk option) is at most :data:`MAX_FEN` =
9,999,999.99 yuan (just under ten million yuan, 一千万元).  Larger amounts are refused where they
are read, naming the field.  The bound is chosen so that no sum medaid forms can leave 64-bit
integers of fen: a batch holds fewer than 2^32 claims
(:func:`medaid.batch.columnar.settle_frame` refuses more), and
2^32 × (10^9 − 1) fen < 4.3 × 10^18 < 2^63 − 1 ≈ 9.2 × 10^18, so totals, a person's year-to-date
and every sum of a report are exact in ``Int64``.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal
from typing import Final, Literal, NamedTuple, get_args

from .errors import MoneyError, Problem

FEN_PER_YUAN: Final = 100

#: The largest amount medaid reads, in fen: 9,999,999.99 yuan (see the module doc).
MAX_FEN: Final = 10**9 - 1
#: Digits of the integer part (yuan) of :data:`MAX_FEN`.
MAX_YUAN_DIGITS: Final = len(str(MAX_FEN // FEN_PER_YUAN))

#: A rule set's rounding unit (docs/calculation.md#rounding) and its size in fen (:data:`UNITS`).
RoundingUnit = Literal["fen", "jiao", "yuan"]
UNITS: Final[dict[RoundingUnit, int]] = {"fen": 1, "jiao": 10, "yuan": 100}
#: A rule set's rounding method: half-up (四舍五入), half-even or down (truncate).
RoundingMethod = Literal["half-up", "half-even", "down"]
METHODS: Final[tuple[RoundingMethod, ...]] = get_args(RoundingMethod)

# ASCII digits only (after NFKC): other scripts' digits are refused on purpose.
_PLAIN = re.compile(r"(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]*))?")
_GROUPED = re.compile(r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+)(?:\.(?P<frac>[0-9]*))?")


_NOT_AN_AMOUNT: Final = (
    "write digits 0-9, optional thousands separators and at most two decimals, e.g. 12,345.67"
)


def ascii_or_full_width(text: str) -> bool:
    """Only ASCII, full-width forms (U+FF01..FF5E) and spaces may reach NFKC, which would
    also turn superscripts, circled and mathematical digits into 0-9."""
    return text.isascii() or all(
        ch < "\x80" or "\uff01" <= ch <= "\uff5e" or ch.isspace() for ch in text
    )


def too_large(limit: int = MAX_FEN) -> str:
    """The message for an amount above ``limit`` fen (the value itself is never repeated)."""
    return f"is too large: amounts are at most {format_yuan(limit)} yuan"


def parse_yuan(text: str | int | Decimal, *, field: str = "amount", limit: int = MAX_FEN) -> int:
    """Read an amount in yuan and return it in fen (docs/calculation.md#money).

    Accepts ``"12345.67"``, ``"12,345.67"``, full-width ``"１２，３４５．６７"``, an ``int`` (yuan) or
    a finite ``Decimal`` (yuan) with at most two decimals, up to ``limit`` fen (by default
    :data:`MAX_FEN`, 9,999,999.99 yuan).  Raises :class:`MoneyError` naming ``field`` for
    anything else: empty text, negatives, more than two decimals, too large, other digits,
    currency signs or words, NaN and infinities.  ``float`` is refused outright.  Text of any
    length is refused in time proportional to its length (no huge integer is ever made).
    """
    if isinstance(text, bool) or isinstance(text, float):
        raise MoneyError(_problem(field, "must be given as text or an exact number, not a float"))
    if isinstance(text, int):
        if text < 0:
            raise MoneyError(_problem(field, "must not be negative"))
        if text > limit // FEN_PER_YUAN:
            raise MoneyError(_problem(field, too_large(limit)))
        return text * FEN_PER_YUAN
    if isinstance(text, Decimal):
        if not text.is_finite():
            raise MoneyError(_problem(field, "must be a finite amount"))
        if text < 0:
            raise MoneyError(_problem(field, "must not be negative"))
        # on the digits, exactly (Decimal products round to the context's 28 digits), and
        # without leading or trailing zeros, so that no integer longer than the limit is made
        _sign, digits, exp = text.as_tuple()
        assert isinstance(exp, int)
        text_digits = "".join(map(str, digits)).lstrip("0")
        kept = text_digits.rstrip("0")
        if not kept:
            return 0
        exp += len(text_digits) - len(kept)
        if len(kept) + exp + 2 > len(str(limit)):  # at least 10^len(limit) fen
            raise MoneyError(_problem(field, too_large(limit)))
        if exp < -2:
            raise MoneyError(_problem(field, "has more than two decimals"))
        scale: int = 10 ** (exp + 2)  # exp ≥ −2 here: a whole power of ten
        fen = int(kept) * scale
        if fen > limit:
            raise MoneyError(_problem(field, too_large(limit)))
        return fen
    if not isinstance(text, str):
        raise MoneyError(_problem(field, f"must be text, got {type(text).__name__}"))
    if not ascii_or_full_width(text):
        raise MoneyError(_problem(
            field, f"is not an amount in yuan: {describe_character(text.strip())}; {_NOT_AN_AMOUNT}"))
    s = unicodedata.normalize("NFKC", text).strip()
    if not s:
        raise MoneyError(_problem(field, "is empty"))
    if s.startswith("-"):
        raise MoneyError(_problem(field, "must not be negative"))
    m = _PLAIN.fullmatch(s) or _GROUPED.fullmatch(s)
    if m is None:
        raise MoneyError(
            _problem(
                field,
                f"is not an amount in yuan: {describe_character(s)}; {_NOT_AN_AMOUNT}",
            )
        )
    frac = m.group("frac") or ""
    if len(frac) > 2:
        raise MoneyError(_problem(field, f"has more than two decimals ({len(frac)})"))
    whole = m.group("int").replace(",", "").lstrip("0")
    if len(whole) > len(str(limit // FEN_PER_YUAN)):  # before int(): 5,000 digits stay text
        raise MoneyError(_problem(field, too_large(limit)))
    fen = int(whole or "0") * FEN_PER_YUAN + int(frac.ljust(2, "0"))
    if fen > limit:
        raise MoneyError(_problem(field, too_large(limit)))
    return fen


def describe_character(s: str, allowed: str = "0123456789,. ") -> str:
    """What is wrong with a bad amount, without repeating it: the value is patient data, so
    only its first offending character (not in ``allowed``, nor full-width) is named (e.g.
    ``ARABIC-INDIC DIGIT THREE``)."""
    for i, ch in enumerate(s, start=1):
        if not (ch.isascii() and (ch in allowed)) and not ("\uff01" <= ch <= "\uff5e"):
            name = unicodedata.name(ch, "an unnamed character")
            return f"character {i} is {name} (U+{ord(ch):04X})"
    return "its thousands separators or decimal point are misplaced"


def _problem(field: str, message: str) -> Problem:
    return Problem(message, field=field)


def format_fixed(value: int, places: int = 2, *, thousands: bool = True) -> str:
    """``value × 10^−places`` as decimal text with exactly ``places`` decimals (none: no point),
    exact: ``(2330000, 2)`` → ``"23,300.00"``, ``(859, 2, thousands=False)`` → ``"8.59"``."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**places)
    text = f"{whole:,}" if thousands else str(whole)
    return f"{sign}{text}.{frac:0{places}d}" if places else sign + text


def format_yuan(fen: int, *, thousands: bool = True) -> str:
    """Format fen as yuan with two decimals: ``2330000`` → ``"23,300.00"`` (``"23300.00"``
    without thousands separators, as results files and JSON carry amounts)."""
    return format_fixed(fen, 2, thousands=thousands)


def format_exact_yuan(fen: Decimal) -> str:
    """An exact amount of fen that may hold fractions of a fen (a bracket's share ``rate ×
    base``) as yuan, as explanations show it: thousands separators, two decimals and more only
    where it has them: ``Decimal('199381.95')`` → ``"1,993.8195"``."""
    whole = int(fen)
    if fen == whole:
        return format_yuan(whole)
    return format_yuan(whole) + format(fen.normalize(), "f").split(".")[1]


def exact_yuan_text(fen: Decimal) -> str:
    """The same amount as JSON carries it: yuan with four decimals, no separators
    (``"1993.8195"``; the decimal context rounds what lies beyond them)."""
    return str((fen / FEN_PER_YUAN).quantize(Decimal("0.0001")))


def format_percent(numerator: int, denominator: int) -> str:
    """The exact ratio ``numerator / denominator`` (both ≥ 0) as a percentage with two
    decimals, rounded half-up by :func:`round_ratio`, without the sign: ``(859, 10000)`` →
    ``"8.59"``."""
    hundredths = round_ratio(numerator * 10_000, denominator)  # of a percent
    return format_fixed(hundredths, 2, thousands=False)


def format_rate(rate: Decimal) -> str:
    """An exact rate (docs/calculation.md#rates) as a percentage with the digits it has:
    ``Decimal("0.875")`` → ``"87.5%"``."""
    return format((rate * 100).normalize(), "f") + "%"


def fen_to_decimal(fen: int) -> Decimal:
    """Fen as an exact ``Decimal`` of yuan (``2330000`` → ``Decimal('23300.00')``)."""
    return Decimal(fen).scaleb(-2)


class RoundingStep(NamedTuple):
    """``R(v)`` for values over one denominator, as integer constants (the one definition of
    the rounding methods, used by :func:`round_ratio`, the scalar engine's compiled arithmetic
    and the columnar batch's expressions alike).

    The value ``v / denominator`` fen rounded to ``unit`` fen is
    ``q × unit`` with ``q = ⌊(v + offset) / step⌋``, less one when ``ties_to_even`` and the
    division is exact (``(v + offset) mod step = 0``: ``v`` was exactly half way) and ``q`` is odd.

    Attributes:
        step: ``denominator × unit``.
        unit: the rounding unit in fen (1, 10 or 100).
        offset: ``⌊step / 2⌋`` for half-up and half-even (a half and more goes up), 0 for down.
        ties_to_even: half-even with an even step (an odd step has no exact half).
    """

    step: int
    unit: int
    offset: int
    ties_to_even: bool

    def apply(self, v: int) -> int:
        """``R(v / denominator)`` in fen, ``v ≥ 0``."""
        q, r = divmod(v + self.offset, self.step)
        if self.ties_to_even and not r and q & 1:
            q -= 1
        return q * self.unit


def rounding_step(denominator: int, unit: int = 1, method: RoundingMethod = "half-up") -> RoundingStep:
    """The constants of ``R`` for values ``v / denominator`` fen: ``unit`` fen, ``method``
    half-up (四舍五入: a half goes up), half-even (a half goes to the even multiple) or down
    (truncate) (docs/calculation.md#rounding)."""
    if denominator <= 0 or unit <= 0:
        raise ValueError("rounding takes a positive denominator and unit")
    step = denominator * unit
    if method == "down":
        return RoundingStep(step, unit, 0, False)
    if method not in ("half-up", "half-even"):
        raise ValueError(f"unknown rounding method {method!r}; allowed: {', '.join(METHODS)}")
    return RoundingStep(step, unit, step // 2, method == "half-even" and step % 2 == 0)


def round_ratio(
    numerator: int, denominator: int, unit: int = 1, method: RoundingMethod = "half-up"
) -> int:
    """Round the exact value ``numerator / denominator`` fen to a multiple of ``unit`` fen.

    This is the rule set's ``R(v)`` (docs/calculation.md#rounding), by the constants of
    :func:`rounding_step`.  ``method`` is ``half-up`` (四舍五入: a half goes up), ``half-even``
    (a half goes to the even multiple) or ``down`` (truncate).  Values are never negative on
    the money path; a negative value is refused.
    """
    if numerator < 0 or denominator <= 0:
        raise ValueError("round_ratio takes a non-negative value and a positive denominator")
    return rounding_step(denominator, unit, method).apply(numerator)

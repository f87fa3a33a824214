"""Money: the one door for amounts (docs/calculation.md#money and #rounding), worked by hand."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from medaid.errors import MoneyError
from medaid.money import MAX_FEN, RoundingStep, format_yuan, parse_yuan, round_ratio, rounding_step
from reference_schemes import round_to

# --------------------------------------------------------------------------------------------
# parse_yuan: what is accepted


@pytest.mark.parametrize(
    "text, fen",
    [
        ("0", 0),
        ("0.01", 1),
        ("1000", 100_000),
        ("1000.5", 100_050),
        ("12345.67", 1_234_567),
        ("12,345.67", 1_234_567),  # thousands separators
        ("1,234,567.89", 123_456_789),
        ("999,999", 99_999_900),
        ("１２３４５．６７", 1_234_567),  # full-width digits and point (NFKC)
        ("１２，３４５．６７", 1_234_567),  # full-width comma too
        ("  12.50 ", 1_250),  # surrounding spaces are not part of the amount
        ("\u300012.50\u3000", 1_250),  # ideographic spaces
    ],
)
def test_amounts_in_yuan_are_read_to_fen(text, fen):
    assert parse_yuan(text) == fen


def test_exact_numbers_are_read_as_yuan():
    assert parse_yuan(5) == 500
    assert parse_yuan(Decimal("12.34")) == 1234
    assert parse_yuan(Decimal("12.340")) == 1234  # a trailing zero is not a third decimal
    assert parse_yuan(Decimal("1E+2")) == 10_000
    assert parse_yuan(Decimal("-0.00")) == 0


def test_a_decimal_with_many_digits_is_read_exactly():
    # 37 digits: more than Decimal's default context keeps (28); the trailing zeros are exact
    assert parse_yuan(Decimal("1234567.910000000000000000000000000000")) == 123456791


# --------------------------------------------------------------------------------------------
# the one maximum (issue #11): 9,999,999.99 yuan, so that 2**32 claims sum below 2**63 fen


def test_the_maximum_amount_is_9_999_999_99_yuan_and_sums_of_a_batch_stay_in_int64():
    assert MAX_FEN == 999_999_999
    # the most claims a batch settles (2**32 − 1) at the maximum each: 4.29e18 < 9.22e18
    assert (2**32 - 1) * MAX_FEN < 2**63 - 1


@pytest.mark.parametrize("value", [
    "9999999.99", "9,999,999.99", "０９９９９９９９．９９", "0009999999.99", Decimal("9999999.99"),
    Decimal("9999999.990000"),
])
def test_the_largest_amount_is_read(value):
    assert parse_yuan(value) == 999_999_999


@pytest.mark.parametrize("value", [
    "10000000", "10,000,000.00", "10000000.00", "999999999999999.99", "100000000000000000",
    "9" * 5000, "1" + "0" * 5000 + ".00", 10_000_000, 10**400, Decimal("10000000.00"),
    Decimal("1E+999999999"), Decimal("9999999.991"),
])
def test_an_amount_above_the_maximum_is_refused_naming_the_field_not_the_value(value):
    with pytest.raises(MoneyError) as info:
        parse_yuan(value, field="self_pay")
    (p,) = info.value.problems
    assert p.field == "self_pay"
    assert p.message in ("is too large: amounts are at most 9,999,999.99 yuan", "has more than two decimals")
    assert "99999999" not in p.message and "10000000" not in p.message


def test_a_5000_digit_amount_is_refused_at_once():
    import time
    t = time.perf_counter()
    for _ in range(100):
        with pytest.raises(MoneyError, match="too large"):
            parse_yuan("9" * 5000)
        with pytest.raises(MoneyError, match="too large"):
            parse_yuan(Decimal("9" * 5000))
    assert time.perf_counter() - t < 1.0


# --------------------------------------------------------------------------------------------
# parse_yuan: what is refused, with the field named


@pytest.mark.parametrize(
    "text",
    [
        "١٢٣",  # Arabic-Indic digits
        "۱۲۳",  # Extended Arabic-Indic (Persian)
        "१२३",  # Devanagari
        "๑๒๓",  # Thai
        "²³",  # superscripts: NFKC would turn them into 23
        "①②",  # circled digits: NFKC would turn them into 12
        "𝟏𝟐",  # mathematical bold digits: NFKC would turn them into 12
        "一百",  # Chinese numerals
        "¥12",
        "￥12",
        "$12",
        "＄12",
        "12元",
        "12 yuan",
        "RMB 12",
        "CNY12",
        "+5",
        "1e3",
        "0x10",
        "1_000",
        "1,2345",  # separators must group by three
        "12,34.5",
        ",123",
        "12.3.4",
        "12 345",
        "NaN",
        "inf",
        "Infinity",
        ".5",
    ],
)
def test_other_digits_signs_and_words_are_refused(text):
    with pytest.raises(MoneyError) as info:
        parse_yuan(text, field="self_pay")
    (p,) = info.value.problems
    assert p.field == "self_pay"
    assert "not an amount in yuan" in p.message
    assert "0-9" in p.message  # says what is allowed


@pytest.mark.parametrize("text", ["-5", "-0.01", "－5", "-0"])
def test_negatives_are_refused(text):
    with pytest.raises(MoneyError, match="must not be negative"):
        parse_yuan(text)


@pytest.mark.parametrize("text", ["12.345", "0.001", "1,000.000", "１．２３４"])
def test_three_decimals_are_refused(text):
    with pytest.raises(MoneyError, match="more than two decimals"):
        parse_yuan(text)


@pytest.mark.parametrize("text", ["", "   ", "\u3000"])
def test_empty_is_refused(text):
    with pytest.raises(MoneyError, match="is empty"):
        parse_yuan(text, field="self_pay")


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_nan_and_infinite_decimals_are_refused(value):
    with pytest.raises(MoneyError, match="finite"):
        parse_yuan(value)


def test_negative_and_over_precise_decimals_and_ints_are_refused():
    with pytest.raises(MoneyError, match="negative"):
        parse_yuan(Decimal("-1"))
    with pytest.raises(MoneyError, match="more than two decimals"):
        parse_yuan(Decimal("12.345"))
    with pytest.raises(MoneyError, match="negative"):
        parse_yuan(-1)


@pytest.mark.parametrize("value", [1.5, 1.0, 0.1, math.nan, math.inf, True, False])
def test_floats_and_booleans_are_refused(value):
    with pytest.raises(MoneyError, match="not a float"):
        parse_yuan(value)  # type: ignore[arg-type]


def test_other_types_are_refused():
    with pytest.raises(MoneyError, match="must be text"):
        parse_yuan(b"12")  # type: ignore[arg-type]


def test_a_bad_amount_is_not_echoed_at_length():
    with pytest.raises(MoneyError) as info:
        parse_yuan("x" * 200)
    assert len(str(info.value)) < 200


@settings(max_examples=200)
@given(st.integers(0, MAX_FEN // 100), st.integers(0, 99))
def test_yuan_text_reads_back_what_format_yuan_wrote(yuan, fen):
    text = f"{yuan}.{fen:02d}"
    assert parse_yuan(text) == yuan * 100 + fen
    assert parse_yuan(format_yuan(yuan * 100 + fen)) == yuan * 100 + fen
    assert format_yuan(parse_yuan(text), thousands=False) == text


# --------------------------------------------------------------------------------------------
# format_yuan


@pytest.mark.parametrize(
    "fen, text",
    [(0, "0.00"), (1, "0.01"), (10, "0.10"), (100, "1.00"), (2_330_000, "23,300.00"),
     (123_456_789, "1,234,567.89"), (-1, "-0.01"), (-123_456, "-1,234.56")],
)
def test_fen_are_written_as_yuan_with_two_decimals(fen, text):
    assert format_yuan(fen) == text
    assert format_yuan(fen, thousands=False) == text.replace(",", "")


# --------------------------------------------------------------------------------------------
# round_ratio: R(v) for value = numerator / denominator fen, by hand

FEN, JIAO, YUAN = 1, 10, 100


@pytest.mark.parametrize(
    "num, den, unit, half_up, half_even, down",
    [
        # half a fen: 0.5 → 1 / 0 / 0; 1.5 → 2 / 2 / 1; 2.5 → 3 / 2 / 2
        (1, 2, FEN, 1, 0, 0),
        (3, 2, FEN, 2, 2, 1),
        (5, 2, FEN, 3, 2, 2),
        # 0.01 yuan × 70% = 0.7 fen (docs/calculation.md: 1,000.01 → 0.01)
        (7, 10, FEN, 1, 1, 0),
        # 0.49 fen and 0.51 fen: not halves
        (49, 100, FEN, 0, 0, 0),
        (51, 100, FEN, 1, 1, 0),
        # 2,345.67 yuan × 85% = 199,381.95 fen, 6,300 yuan before it: 829,381.95 fen → …382
        (82_938_195, 100, FEN, 829_382, 829_382, 829_381),
        # 0.01 yuan × 50% = 0.5 fen on top of 100 fen: 100.5 → 101 / 100 / 100
        (201, 2, FEN, 101, 100, 100),
        # exact values are left alone
        (700, 1, FEN, 700, 700, 700),
        (0, 7, FEN, 0, 0, 0),
        # half a jiao: 15 fen → 20 / 20 (1 jiao is odd → 2) / 10; 25 fen → 30 / 20 / 20
        (15, 1, JIAO, 20, 20, 10),
        (25, 1, JIAO, 30, 20, 20),
        (249, 10, JIAO, 20, 20, 20),  # 24.9 fen
        (251, 10, JIAO, 30, 30, 20),  # 25.1 fen
        (50, 1, JIAO, 50, 50, 50),
        # half a yuan: 150 fen → 200 / 200 / 100; 250 fen → 300 / 200 / 200; 249 fen → 200
        (150, 1, YUAN, 200, 200, 100),
        (250, 1, YUAN, 300, 200, 200),
        (249, 1, YUAN, 200, 200, 200),
        (501, 2, YUAN, 300, 300, 200),  # 250.5 fen
        (49, 1, YUAN, 0, 0, 0),
    ],
)
def test_rounding_methods_by_hand(num, den, unit, half_up, half_even, down):
    assert round_ratio(num, den, unit, "half-up") == half_up
    assert round_ratio(num, den, unit, "half-even") == half_even
    assert round_ratio(num, den, unit, "down") == down


def test_half_up_is_the_default_method_and_fen_the_default_unit():
    assert round_ratio(1, 2) == 1


@pytest.mark.parametrize("args", [(-1, 2), (1, 0), (1, -2)])
def test_negative_values_and_bad_denominators_are_refused(args):
    with pytest.raises(ValueError):
        round_ratio(*args)


def test_an_unknown_method_is_refused_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="half-up, half-even, down"):
        round_ratio(1, 2, 1, "ceiling")


def _reference_round(v: Fraction, unit: int, method: str) -> int:
    return int(round_to(v, unit, method))  # the Fraction reference's rounding (tests/reference_schemes.py)


@settings(max_examples=200)
@given(
    st.integers(0, 10**15),
    st.sampled_from([1, 2, 4, 10, 100, 1000, 10**6]),
    st.sampled_from([FEN, JIAO, YUAN]),
    st.sampled_from(["half-up", "half-even", "down"]),
)
def test_round_ratio_equals_rounding_the_exact_fraction(num, den, unit, method):
    assert round_ratio(num, den, unit, method) == _reference_round(Fraction(num, den), unit, method)


@pytest.mark.parametrize("text, named", [
    ("١٢٣", "ARABIC-INDIC DIGIT ONE (U+0661)"),
    ("¥100", "YEN SIGN (U+00A5)"),
    ("12 yuan", "LATIN SMALL LETTER Y"),
])
def test_a_bad_amount_is_explained_without_repeating_the_value(text, named):
    """The bad text is patient data: the message names the offending character, not the value."""
    with pytest.raises(MoneyError) as info:
        parse_yuan(text, field="self_pay")
    message = str(info.value)
    assert named in message
    assert text not in message


# rounding_step: the integer constants of R, the one rounding the engine, the columnar batch
# and round_ratio share (q = ⌊(v + offset) / step⌋, less one on an exact half that lands odd)


def test_rounding_constants_for_rates_in_hundredths_to_the_jiao():
    # rates in hundredths (v over 100) to the jiao: step 100 × 10 = 1,000; a half is 500
    assert rounding_step(100, JIAO, "half-up") == RoundingStep(1_000, 10, 500, False)
    assert rounding_step(100, JIAO, "half-even") == RoundingStep(1_000, 10, 500, True)
    assert rounding_step(100, JIAO, "down") == RoundingStep(1_000, 10, 0, False)
    # 1.5 jiao (v = 1,500) and 2.5 jiao (v = 2,500), half-even: both 2 jiao = 20 fen
    assert rounding_step(100, JIAO, "half-even").apply(1_500) == 20
    assert rounding_step(100, JIAO, "half-even").apply(2_500) == 20


def test_an_odd_step_has_no_exact_half_so_half_even_rounds_as_half_up():
    # thirds of a fen: 4/3 = 1.33 → 1, 5/3 = 1.67 → 2 under both; a step of 1 rounds nothing
    assert rounding_step(3, FEN, "half-even") == RoundingStep(3, 1, 1, False)
    assert [round_ratio(v, 3, FEN, "half-even") for v in (4, 5)] == [1, 2]
    assert [round_ratio(v, 3, FEN, "half-up") for v in (4, 5)] == [1, 2]
    assert rounding_step(1, FEN, "half-even") == RoundingStep(1, 1, 0, False)


def test_an_unknown_rounding_method_is_refused():
    with pytest.raises(ValueError, match="unknown rounding method 'bankers'"):
        rounding_step(100, FEN, "bankers")

"""The columnar path settles exactly as the scalar engine does, claim by claim, to the fen.

Expected values come from :func:`medaid.domain.engine.settle` (the slower, clearly correct reference)
or are worked out by hand in the test; never from :func:`medaid.batch.settle.settle_frame` itself.
"""

from __future__ import annotations

import datetime as dt
import itertools
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import medaid
from medaid.batch import arithmetic, ordering
from medaid.batch.settle import settle_frame
from medaid.io.columns import RESULT_FIELDS

# ---------------------------------------------------------------------------------------------
# helpers


def frame_of(claims: list[medaid.Claim]) -> pl.DataFrame:
    """The input frame batch readers hand over: fen, dates, line numbers from 2 (header = 1)."""
    return pl.DataFrame(
        {
            "row": list(range(2, len(claims) + 2)),
            "claim_id": [c.claim_id for c in claims],
            "person_id": [c.person_id for c in claims],
            "date": [c.date for c in claims],
            "self_pay": [c.self_pay for c in claims],
            "group": [c.group for c in claims],
            "kind": [c.kind for c in claims],
            "hospital": [c.hospital for c in claims],
        },
        schema={
            "row": pl.Int64, "claim_id": pl.String, "person_id": pl.String, "date": pl.Date,
            "self_pay": pl.Int64, "group": pl.String, "kind": pl.String, "hospital": pl.String,
        },
    )


def bracket_index(sched, base_to: int) -> int:
    """The contract's ``bracket`` (docs/rules.md), by counting bounds: the highest bracket whose
    rate applies to a positive part of the base.  Marginal: the brackets starting below the
    base (one starting exactly at it holds none of it); whole: the bracket containing it.
    0 at or below the threshold or under the gate."""
    if base_to <= sched.lowers[0] or (sched.gate is not None and base_to < sched.gate):
        return 0
    if sched.mode == "whole":
        return len([lo for lo in sched.lowers if lo <= base_to])
    return len([lo for lo in sched.lowers if lo < base_to])


def assert_same_as_engine(claims: list[medaid.Claim], book: medaid.RuleBook, categories: bool = False) -> None:
    placeable, rejected = [], []
    for c in claims:
        try:
            medaid.place(c, book)
            placeable.append(c)
        except medaid.ClaimError as e:
            rejected.append((c, e.problems[0]))
    expected = medaid.settle(placeable, book)
    frame = frame_of(claims)
    if categories:  # as the batch readers keep them
        frame = frame.with_columns(pl.col("person_id", "group", "kind").cast(pl.Categorical))
    results, rejects = settle_frame(frame, book)
    if categories:
        results = results.with_columns(pl.col("person_id", "group", "kind").cast(pl.String))

    assert results.columns == [*frame_of([]).columns, *RESULT_FIELDS]
    assert results["claim_id"].to_list() == [c.claim_id for c in placeable]
    got = results.to_dicts()
    for want, row in zip(expected, got):
        assert row["claim_id"] == want.claim_id
        assert (
            row["relief"], row["patient_pays"], row["bracket_relief"], row["capped_by"],
            row["ytd_self_pay"], row["ytd_relief"],
        ) == (
            want.relief, want.patient_pays, want.bracket_relief, want.capped_by,
            want.ytd_self_pay, want.ytd_relief,
        ), want.claim_id
        assert (row["plan"], row["pool"], row["benefit_year"]) == (want.plan, want.pool, want.benefit_year)
        assert (row["rule_set_id"], row["rule_version"], row["rule_hash"]) == (
            want.rule_set_id, want.rule_version, want.rule_hash,
        )
        assert row["bracket"] == bracket_index(want.schedule, want.base_to), want.claim_id
    assert rejects.columns == ["row", "claim_id", "field", "message"]
    rows = {c.claim_id: i + 2 for i, c in enumerate(claims)}
    assert rejects.to_dicts() == [
        {"row": rows[c.claim_id], "claim_id": c.claim_id, "field": p.field, "message": p.message}
        for c, p in rejected
    ]
    dtypes = dict(zip(results.columns, results.dtypes))
    assert dtypes["benefit_year"] == pl.Int32 and dtypes["bracket"] == pl.Int8
    assert all(dtypes[f] == pl.Int64 for f in medaid.io.columns.RESULT_MONEY_FIELDS)


def write_rules(folder: Path, *texts: str) -> medaid.RuleBook:
    for i, text in enumerate(texts):
        (folder / f"r{i}.toml").write_text(text, encoding="utf-8")
    return medaid.load_rules(folder)


def claim(cid: str, person: str, day: str, yuan: str, group: str | None = None, kind: str | None = None):
    return medaid.Claim.from_yuan(
        claim_id=cid, person_id=person, date=day, self_pay=yuan, group=group, kind=kind
    )


# ---------------------------------------------------------------------------------------------
# hand-worked examples


@pytest.fixture(scope="module")
def book():
    return medaid.load_rules("rules")


def test_the_source_policy_examples_come_out_as_worked_by_hand(book):
    claims = [
        claim("A", "P1", "2024-03-01", "30000", "key", "inpatient"),   # 6,300 + 17,000
        claim("B", "P2", "2024-03-01", "12345.67", "key", "inpatient"),  # 6,300 + 1,993.82
        claim("C", "P3", "2024-03-01", "999.99", "key", "inpatient"),    # below the threshold
        claim("D", "P3", "2024-03-02", "1000.01", "key", "inpatient"),   # 0.007 → 0.01
    ]
    results, rejects = settle_frame(frame_of(claims), book)
    assert results["relief"].to_list() == [2_330_000, 829_382, 0, 1]
    assert results["patient_pays"].to_list() == [670_000, 405_185, 99_999, 100_000]
    assert results["bracket"].to_list() == [2, 2, 0, 1]
    assert rejects.height == 0


def one_plan(folder: Path, plan: str) -> medaid.RuleBook:
    """A rule set of one default plan (pool ``all``) with the given lines."""
    return write_rules(folder, f'id = "t"\nversion = "1"\nvalid_from = 2024-01-01\n'
                               f'[[plans]]\nname = "p"\ndefault = true\npool = "all"\n{plan}\n')


@pytest.mark.parametrize("mode, want", [
    # marginal: 10,000 relieves 9,000 × 70% and nothing at 85%, so it reached bracket 1;
    # 10,000.01 puts 0.01 in bracket 2.  Whole: 10,000 gets 85% on all 9,000: bracket 2.
    # 1,000 is the threshold itself: 0 in both.
    ("marginal", [0, 1, 1, 1, 2, 2, 3]),
    ("whole", [0, 1, 1, 2, 2, 3, 3]),
])
def test_a_base_exactly_at_a_bracket_bound_has_not_entered_the_bracket_starting_there(tmp_path, mode, want):
    book = one_plan(tmp_path, f"""mode = "{mode}"
brackets = [
  {{ from = "1000",  to = "10000", rate = "70%" }},
  {{ from = "10000", to = "50000", rate = "85%" }},
  {{ from = "50000",               rate = "95%" }},
]""")
    amounts = ["1000", "1000.01", "9999.99", "10000", "10000.01", "50000", "50000.01"]
    claims = [claim(f"K{i}", f"P{i}", "2024-03-01", a) for i, a in enumerate(amounts)]
    results, _ = settle_frame(frame_of(claims).drop("group", "kind"), book)
    assert results["bracket"].to_list() == want
    assert [s.bracket for s in medaid.settle(claims, book)] == want


def test_the_bracket_is_0_under_the_gate_and_counts_from_0_once_it_is_met(tmp_path):
    # brackets from 0 (70% to 1,000, 90% above) with a gate of 1,500: 1,499.99 → 0; 1,500 → 2
    # (bracket 2 holds 500 of it); 1,000 is not reachable without the gate being met
    book = one_plan(tmp_path, 'gate = "1500"\n'
                    'brackets = [ { from = "0", to = "1000", rate = "70%" }, { from = "1000", rate = "90%" } ]')
    claims = [claim(f"K{i}", f"P{i}", "2024-03-01", a) for i, a in enumerate(["500", "1499.99", "1500"])]
    results, _ = settle_frame(frame_of(claims).drop("group", "kind"), book)
    assert results["bracket"].to_list() == [0, 0, 2]
    assert results["relief"].to_list() == [0, 0, 70_000 + 45_000]  # 1,000 × 70% + 500 × 90%
    assert [s.bracket for s in medaid.settle(claims, book)] == [0, 0, 2]


def test_brackets_from_0_without_a_gate_start_at_the_first_fen(tmp_path):
    # 70% from 0 to 1,000, 90% above: 0 → 0 (nothing relieved), 0.01 → 1, 1,000 → 1, 1,000.01 → 2
    book = one_plan(tmp_path,
                    'brackets = [ { from = "0", to = "1000", rate = "70%" }, { from = "1000", rate = "90%" } ]')
    claims = [claim(f"K{i}", f"P{i}", "2024-03-01", a) for i, a in enumerate(["0", "0.01", "1000", "1000.01"])]
    results, _ = settle_frame(frame_of(claims).drop("group", "kind"), book)
    assert results["bracket"].to_list() == [0, 1, 1, 2]


def test_the_annual_cap_binds_on_the_second_stay_even_when_listed_first(book):
    claims = [
        claim("S2", "P1", "2024-09-01", "30000", "key", "inpatient"),
        claim("S1", "P1", "2024-02-01", "100000", "key", "inpatient"),
    ]
    results, _ = settle_frame(frame_of(claims), book)
    # 100,000 → 87,800 first (earlier date); then 23,300 is cut to the 12,200 left of 100,000
    assert results["relief"].to_list() == [1_220_000, 8_780_000]
    assert results["capped_by"].to_list() == ["annual_cap", None]
    assert results["ytd_relief"].to_list() == [10_000_000, 8_780_000]
    assert results["ytd_self_pay"].to_list() == [13_000_000, 10_000_000]


def test_same_day_claims_take_claim_id_order_and_the_claim_cap_binds(book):
    # outpatient special: year mode, 70% above 200 a year, 3,000 per visit at most
    claims = [
        claim("V3", "P1", "2024-04-01", "5000", "key", "outpatient-special"),
        claim("V1", "P1", "2024-04-01", "150", "key", "outpatient-special"),
        claim("V2", "P1", "2024-04-01", "150", "key", "outpatient-special"),
    ]
    results, _ = settle_frame(frame_of(claims), book)
    # V1: 150 < 200 → 0; V2: C = 300 → 70% of 100 = 70; V3: 70% of 5,100 − 70 = 3,500 → 3,000
    assert results["relief"].to_list() == [300_000, 0, 7_000]
    assert results["capped_by"].to_list() == ["claim_cap", None, None]
    assert results["bracket_relief"].to_list() == [350_000, 0, 7_000]


def test_unplaceable_rows_are_rejected_with_the_engines_words_and_do_not_accumulate(book):
    claims = [
        claim("X", "P1", "2018-06-01", "50000", "key", "inpatient"),
        claim("Y", "P1", "2024-06-01", "50000", "nobody", "inpatient"),
        claim("Z", "P1", "2024-07-01", "10000", "key", "inpatient"),
    ]
    results, rejects = settle_frame(frame_of(claims), book)
    assert results["claim_id"].to_list() == ["Z"]
    assert results["ytd_self_pay"].to_list() == [1_000_000]
    assert rejects["row"].to_list() == [2, 3]
    assert rejects["field"].to_list() == ["date", "group/kind"]
    assert rejects["message"][0].startswith("no version of scheme 'cq-county-medical-aid' covers 2018-06-01")
    assert "matches group 'nobody' and kind 'inpatient'" in rejects["message"][1]


def one_plan_of_year_mode(tmp_path: Path, rule_set: str = "t", version: str = "1", plan: str = "p") -> medaid.RuleBook:
    """A rule set of one plan: year mode, 70% from 1,000 yuan, no cap."""
    return write_rules(tmp_path, f"""
id = "{rule_set}"
version = "{version}"
valid_from = 2024-01-01
[[plans]]
name = "{plan}"
default = true
pool = "all"
accumulate = "year"
brackets = [ {{ from = "1000", rate = "0.70" }} ]
""")


@pytest.mark.parametrize("safe", [None, 1000], ids=["prefix sums", "sequential path"])
def test_year_mode_three_claims_of_600_give_0_140_420(tmp_path, monkeypatch, safe):
    """A book of one plan: the arithmetic is given no plan index (every row's is 0), on the
    prefix-sum form and on the sequential path alike."""
    if safe is not None:
        monkeypatch.setattr("medaid.batch.arithmetic.SAFE", safe)
    book = one_plan_of_year_mode(tmp_path)
    claims = [claim(f"C{i}", "P1", f"2024-0{i}-01", "600") for i in (1, 2, 3)]
    results, _ = settle_frame(frame_of(claims).drop("group", "kind"), book)
    assert results["relief"].to_list() == [0, 14_000, 42_000]


def test_a_pool_continues_across_versions_and_the_new_cap_applies(tmp_path):
    common = """
[[plans]]
name = "p"
default = true
pool = "all"
accumulate = "claim"
brackets = [ { from = "0", rate = "1" } ]
"""
    book = write_rules(
        tmp_path,
        'id = "t"\nversion = "1"\nvalid_from = 2024-01-01\nvalid_to = 2024-06-30\n'
        + common + 'annual_cap = "1000"\n',
        'id = "t"\nversion = "2"\nvalid_from = 2024-07-01\n' + common + 'annual_cap = "1500"\n',
    )
    claims = [
        claim("A", "P1", "2024-03-01", "800"),
        claim("B", "P1", "2024-05-01", "800"),   # cap 1,000: 200 left
        claim("C", "P1", "2024-08-01", "800"),   # cap 1,500 now: 500 more
        claim("D", "P1", "2025-01-02", "800"),   # a new benefit year
    ]
    results, _ = settle_frame(frame_of(claims).drop("group", "kind"), book)
    assert results["relief"].to_list() == [80_000, 20_000, 50_000, 80_000]
    assert results["rule_version"].to_list() == ["1", "1", "2", "2"]
    assert results["capped_by"].to_list() == [None, "annual_cap", "annual_cap", None]


# ---------------------------------------------------------------------------------------------
# generated rule sets and claim sets

GROUPS = ("g1", "g2")
KINDS = ("k1", "k2")


@st.composite
def plan_texts(draw, name: str, pairs: list[tuple[str, str]], default: bool, pool: str, cap: str | None):
    mode = draw(st.sampled_from(["marginal", "marginal", "whole"]))
    bounds = sorted(draw(st.sets(st.integers(0, 3000), min_size=1, max_size=4)))
    closed = mode == "marginal" and draw(st.booleans())
    if closed and len(bounds) < 2:
        bounds.append(bounds[0] + 500)
    rate = st.one_of(
        st.integers(0, 100).map(lambda r: f"{r}%"),
        st.integers(0, 1000).map(lambda r: f"{r // 1000}.{r % 1000:03d}"),
        st.sampled_from(["0.5", "0.70", "0.85", "0.95", "1", "0.333"]),
    )
    brackets = []
    tops = bounds[1:] + [None] if not closed else bounds[1:]
    for lo, hi in zip(bounds, tops):
        to = "" if hi is None else f', to = "{hi}"'
        brackets.append(f'{{ from = "{lo}"{to}, rate = "{draw(rate)}" }}')
    lines = [
        "[[plans]]",
        f'name = "{name}"',
        f'pool = "{pool}"',
        f'accumulate = "{draw(st.sampled_from(["claim", "year"]))}"',
        f'mode = "{mode}"',
        f"brackets = [{', '.join(brackets)}]",
    ]
    if pairs:
        gs = sorted({g for g, _ in pairs})
        ks = sorted({k for _, k in pairs})
        lines.append(f"match = {{ group = {gs!r}, kind = {ks!r} }}".replace("'", '"'))
    if default:
        lines.append("default = true")
    if cap is not None:
        lines.append(f'annual_cap = "{cap}"')
    if draw(st.booleans()):
        lines.append(f'claim_cap = "{draw(st.integers(0, 2000))}"')
    if draw(st.integers(0, 3)) == 0:
        lines.append(f'gate = "{draw(st.integers(0, 3000))}"')
    return "\n".join(lines)


@st.composite
def rule_set_texts(draw, version: str, valid_from: dt.date, valid_to: dt.date | None, start_month: int = 1):
    # plans partition the (group, kind) grid: each plan takes whole rows or one cell
    n_plans = draw(st.integers(1, 3))
    cells = list(itertools.product(GROUPS, KINDS))
    pools = {p: draw(st.one_of(st.none(), st.integers(50, 2000).map(str))) for p in ("a", "b")}
    texts = []
    for i in range(n_plans):
        if i == n_plans - 1:
            pairs = cells
        else:
            pairs = [cells[i]] if i < len(cells) else []
        cells = [c for c in cells if c not in pairs]
        if len(pairs) > 1:  # a match is a product of group and kind lists
            gs = sorted({g for g, _ in pairs})
            ks = sorted({k for _, k in pairs})
            pairs = [p for p in itertools.product(gs, ks)] if len(pairs) == len(gs) * len(ks) else pairs[:1]
        pool = draw(st.sampled_from(["a", "b"]))
        texts.append(draw(plan_texts(f"plan{i}", pairs, default=(i == 0 and draw(st.booleans())),
                                     pool=pool, cap=pools[pool])))
    head = [
        'id = "gen"',
        f'version = "{version}"',
        f"valid_from = {valid_from.isoformat()}",
        f'rounding = {{ unit = "{draw(st.sampled_from(["fen", "jiao", "yuan"]))}", '
        f'method = "{draw(st.sampled_from(["half-up", "half-even", "down"]))}" }}',
        f"benefit_year_start_month = {start_month}",
    ]
    if valid_to is not None:
        head.append(f"valid_to = {valid_to.isoformat()}")
    return "\n".join(head) + "\n\n" + "\n\n".join(texts) + "\n"


@st.composite
def books_and_claims(draw):
    start = dt.date(2023, 1, 1)
    two = draw(st.booleans())
    month = draw(st.sampled_from([1, 1, 4, 7]))  # versions of one scheme share it
    if two:
        cut = start + dt.timedelta(days=draw(st.integers(30, 500)))
        texts = [draw(rule_set_texts("1", start, cut - dt.timedelta(days=1), month)),
                 draw(rule_set_texts("2", cut, None, month))]
    else:
        texts = [draw(rule_set_texts("1", start, None, month))]
    n = draw(st.integers(1, 40))
    ids = draw(st.lists(st.text("ABC0123", min_size=1, max_size=4), min_size=n, max_size=n, unique=True))
    claims = []
    for cid in ids:
        day = dt.date(2022, 12, 20) + dt.timedelta(days=draw(st.integers(0, 800)))
        cents = draw(st.one_of(
            st.integers(0, 300_000),
            st.sampled_from([0, 1, 100_000, 100_001, 99_999, 50_000, 200_000]),
        ))
        claims.append(medaid.Claim(
            claim_id=cid,
            person_id=draw(st.sampled_from(["P1", "P2", "P10"])),
            date=day,
            self_pay=cents,
            group=draw(st.sampled_from([*GROUPS, *GROUPS, *GROUPS, None, "zz"])),
            kind=draw(st.sampled_from([*KINDS, *KINDS, None])),
        ))
    return texts, claims


def load_texts(texts: list[str]) -> medaid.RuleBook:
    with tempfile.TemporaryDirectory() as d:
        return write_rules(Path(d), *texts)


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_with(case, patches: dict | None = None, categories: bool = False) -> None:  # type: ignore[no-untyped-def]
    """``assert_same_as_engine`` on a generated case with some of the columnar modules' settings
    patched, named by dotted path (a generated rule combination the rule checks refuse is skipped)."""
    texts, claims = case
    try:
        book = load_texts(texts)
    except medaid.RuleError:  # a generated combination the rule checks refuse (e.g. pool caps)
        return
    mp = pytest.MonkeyPatch()
    try:
        for name, value in (patches or {}).items():
            mp.setattr(name, value)
        assert_same_as_engine(claims, book, categories)
    finally:
        mp.undo()


@SETTINGS
@given(books_and_claims())
def test_columnar_equals_the_engine_on_generated_rules_and_claims(case):
    _check_with(case)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books_and_claims(), st.booleans())
def test_ids_kept_as_categories_and_placement_without_the_day_table_change_nothing(case, by_expression):
    """The batch keeps person ids (and group, kind) as categories, whose codes order the
    persons; the version and benefit year come from a table of days, or, for dates spread
    over too many days, from date expressions: every claim still equals the engine."""
    _check_with(case, {"medaid.batch.placement.DAY_TABLE_DAYS": 0} if by_expression else {}, categories=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books_and_claims())
def test_person_hash_collisions_and_the_arg_sort_path_change_nothing(case):
    # every person of one id length collides; the packed key is given up for arg_sort
    _check_with(case, {
        "medaid.batch.ordering.person_hash":
            lambda frame: (pl.col("person_id").str.len_bytes().cast(pl.UInt64) * (1 << 60), None),
        "medaid.batch.ordering.MIN_HASH_BITS": 65})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books_and_claims(), st.sampled_from([("1", "2", "10"), ("0", "18446744073709551615", "9"),
                                            ("1", "01", "+1")]))
def test_person_ids_of_digits_are_ordered_by_their_number_and_change_nothing(case, ids):
    """Person ids that are all plain decimal numbers are sorted by their number (no hash, no
    collision check; the person numbers come from the sort's runs); ids that only look like
    numbers (``01`` and ``+1`` beside ``1``) are hashed as text: every claim equals the engine,
    and the person numbers tell persons apart exactly."""
    texts, claims = case
    rename = dict(zip(["P1", "P2", "P10"], ids))
    claims = [c.model_copy(update={"person_id": rename[c.person_id]}) for c in claims]
    _check_with((texts, claims))
    try:
        book = load_texts(texts)
    except medaid.RuleError:
        return
    frame = frame_of(claims).sample(fraction=1.0, shuffle=True, seed=len(claims))  # (not in order)
    got, _ = settle_frame(frame, book, person_codes=True)
    plain, _ = settle_frame(frame, book)
    if "__person" in got.columns:
        _same_persons(got)
        got = got.drop("__person")
    assert got.equals(plain)


def test_decimal_ids_are_numbers_only_when_the_text_is_the_numbers_own():
    def numbers(values: list[str | None]) -> list[int] | None:
        got = ordering.decimal_ids(pl.Series(values, dtype=pl.String))
        return None if got is None else got.to_list()

    assert numbers(["10194974", "7", "0", "18446744073709551615"]) == [10194974, 7, 0, 2**64 - 1]
    assert numbers(["10000000000000000000", "9", "10", "99", "100"]) == [10**19, 9, 10, 99, 100]
    for bad in (["7", "07"], ["+7"], ["7", " 7"], ["7 "], ["18446744073709551616"], ["7", None], ["7", "x"],
                ["-7"], ["7.0"], ["１２"], ["1e2"], ["100", "0100"], ["+10"], ["00"], ["+0"],
                ["99999999999999999999"], ["+18446744073709551615"], []):
        assert numbers(bad) is None, bad


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books_and_claims(), st.integers(1, 5))
def test_arithmetic_in_slices_cut_at_group_starts_gives_the_same_fen(case, rows):
    """Large frames are computed slice by slice (memory): with slices of a few rows, cut only
    where a (person, benefit year, pool) group starts, every claim still equals the engine."""
    _check_with(case, {"medaid.tuning.SLICE_ROWS": rows})


def _skewed(seed: int, n: int, persons: int, alpha: float, top: int, prefix: str) -> list[medaid.Claim]:
    """``n`` claims of Pareto-skewed persons over one year (a few persons hold most claims)."""
    import random

    rnd = random.Random(seed)
    return [
        medaid.Claim(
            claim_id=f"{prefix}{i:05d}", person_id=f"P{int(rnd.paretovariate(alpha)) % persons}",
            date=dt.date(2024, 1, 1) + dt.timedelta(days=rnd.randrange(366)),
            self_pay=rnd.randrange(0, top),
            group=rnd.choice(["key", "low-income"]), kind=rnd.choice(["inpatient", "outpatient-special"]),
        )
        for i in range(n)
    ]


def test_slices_of_a_skewed_batch_equal_the_engine(book, monkeypatch):
    claims = _skewed(5, 2000, 50, 1.2, 4_000_000, "S")
    calls = []
    real = arithmetic.relieve
    monkeypatch.setattr(arithmetic, "relieve", lambda w, t, need=None: calls.append(w.height) or real(w, t, need))
    monkeypatch.setattr("medaid.tuning.SLICE_ROWS", 300)
    assert_same_as_engine(claims, book)
    assert len(calls) >= 3  # cut in several slices


def test_a_large_frame_is_cut_for_every_core_and_equals_the_engine(book, monkeypatch):
    """From PARALLEL_ROWS rows on, the arithmetic runs on as many slices as polars has
    threads (at least two), in parallel, even when one slice would hold the frame."""
    claims = _skewed(11, 1500, 40, 1.1, 6_000_000, "Q")
    calls = []
    real = arithmetic.relieve
    monkeypatch.setattr(arithmetic, "relieve", lambda w, t, need=None: calls.append(w.height) or real(w, t, need))
    monkeypatch.setattr("medaid.tuning.PARALLEL_ROWS", 100)
    monkeypatch.setattr(pl, "thread_pool_size", lambda: 3)
    assert_same_as_engine(claims, book)
    assert len(calls) == 3 and min(calls) > 0


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books_and_claims())
def test_the_sequential_overflow_path_gives_the_same_fen(case):
    _check_with(case, {"medaid.batch.arithmetic.SAFE": 1000})  # every group counts as at risk of overflow


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books_and_claims(), st.booleans())
def test_input_already_in_group_order_is_settled_without_sorting(case, swap):
    texts, claims = case
    try:
        book = load_texts(texts)
    except medaid.RuleError:
        return

    def key(c):
        try:
            at = medaid.place(c, book)
        except medaid.ClaimError:
            return ("", 0, "", c.date, c.claim_id)
        return (c.person_id, at.benefit_year, at.pool, c.date, c.claim_id)

    claims = sorted(claims, key=key)
    if swap and len(claims) > 1:  # one pair out of order: must be noticed and sorted
        claims[0], claims[-1] = claims[-1], claims[0]
    calls = []
    mp = pytest.MonkeyPatch()
    real = ordering.sorted_order
    try:
        mp.setattr(ordering, "sorted_order", lambda *a: calls.append(1) or real(*a))
        assert_same_as_engine(claims, book)
    finally:
        mp.undo()
    if not swap:
        assert calls == []


def test_many_claims_of_skewed_persons_equal_the_engine(book):
    import random

    rnd = random.Random(7)
    claims = [
        medaid.Claim(
            claim_id=f"C{rnd.randrange(10**9):09d}",
            person_id=f"P{int(rnd.paretovariate(1.2)) % 300}",
            date=dt.date(2023, 1, 1) + dt.timedelta(days=rnd.randrange(730)),
            self_pay=rnd.randrange(0, 4_000_000),
            group=rnd.choice(["key", "low-income"]),
            kind=rnd.choice(["inpatient", "outpatient-special"]),
        )
        for _ in range(3000)
    ]
    seen: set[str] = set()
    claims = [c for c in claims if not (c.claim_id in seen or seen.add(c.claim_id))]
    assert_same_as_engine(claims, book)


def test_numbered_export_with_many_claims_of_one_person_a_day_equals_the_engine(book):
    """Claim ids ascending in file order (as numbered exports come), the file in date order, a
    few persons with several claims on the same day: same-day claims are taken in claim-id
    order (the tie the sort resolves by row when ids ascend), exactly as the engine does."""
    import random

    rnd = random.Random(11)
    days = sorted(rnd.randrange(60) for _ in range(2500))
    claims = [
        medaid.Claim(
            claim_id=f"C{i:06d}",
            person_id=f"P{int(rnd.paretovariate(1.1)) % 40}",
            date=dt.date(2024, 1, 1) + dt.timedelta(days=d),
            self_pay=rnd.randrange(0, 3_000_000),
            group=rnd.choice(["key", "low-income"]),
            kind=rnd.choice(["inpatient", "outpatient-special"]),
        )
        for i, d in enumerate(days)
    ]
    assert_same_as_engine(claims, book)
    # and the same claims shuffled (ids no longer ascending): the exact re-sort of ties
    rnd.shuffle(claims)
    assert_same_as_engine(claims, book)


def test_bracket_bounds_far_above_every_claim_do_not_confuse_the_plans(tmp_path):
    book = write_rules(tmp_path, """
id = "t"
version = "1"
valid_from = 2024-01-01
[[plans]]
name = "rich"
match = { group = ["r"], kind = ["k"] }
pool = "a"
brackets = [ { from = "0", to = "9000000", rate = "0.5" }, { from = "9000000", rate = "1" } ]
[[plans]]
name = "plain"
match = { group = ["p"], kind = ["k"] }
pool = "a"
brackets = [ { from = "100", rate = "0.5" } ]
""")
    claims = [claim("A", "P1", "2024-01-02", "300", "r", "k"), claim("B", "P1", "2024-01-03", "300", "p", "k")]
    results, _ = settle_frame(frame_of(claims), book)
    assert results["relief"].to_list() == [15_000, 10_000]
    assert results["bracket"].to_list() == [1, 1]


def test_versions_rounding_to_fen_and_to_yuan_half_even_each_keep_their_own_rule(tmp_path):
    plan = """
[[plans]]
name = "p"
default = true
pool = "all"
brackets = [ { from = "0", rate = "1" } ]
"""
    book = write_rules(
        tmp_path,
        'id = "t"\nversion = "1"\nvalid_from = 2024-01-01\nvalid_to = 2024-06-30\n'
        'rounding = { unit = "fen", method = "half-even" }\n' + plan,
        'id = "t"\nversion = "2"\nvalid_from = 2024-07-01\n'
        'rounding = { unit = "yuan", method = "half-even" }\n' + plan,
    )
    claims = [
        claim("A", "P1", "2024-03-01", "0.01"),    # fen: 1 fen stays 1 fen
        claim("B", "P2", "2024-08-01", "2.50"),    # yuan: 2.50 → 2 (half to even)
        claim("C", "P3", "2024-08-01", "3.50"),    # yuan: 3.50 → 4
        claim("D", "P4", "2024-03-01", "0.03"),
    ]
    results, _ = settle_frame(frame_of(claims), book)
    assert results["relief"].to_list() == [1, 200, 350, 3]
    assert results["bracket_relief"].to_list() == [1, 200, 400, 3]
    assert results["capped_by"].to_list() == [None, None, "self_pay", None]


def test_compact_results_hold_the_same_text_as_enums(book):
    claims = [
        claim("A", "P1", "2024-03-01", "100000", "key", "inpatient"),
        claim("B", "P1", "2024-04-01", "30000", "low-income", "inpatient"),
    ]
    plain, _ = settle_frame(frame_of(claims), book)
    compact, _ = settle_frame(frame_of(claims), book, compact=True)
    for name in ("plan", "pool", "capped_by", "rule_set_id", "rule_version", "rule_hash"):
        assert isinstance(compact.schema[name], pl.Enum)
        assert plain.schema[name] == pl.String
        assert compact[name].cast(pl.String).to_list() == plain[name].to_list()
    assert compact["capped_by"].to_list() == [None, "annual_cap"]


def test_absurd_amounts_are_refused_never_wrapped(book):
    """A frame given to settle_frame directly (Python API, Spark) with a self-pay above the
    documented maximum (9,999,999.99 yuan = 999,999,999 fen) or below zero: those rows are
    rejected naming self_pay; the others settle as the engine settles them."""
    frame = pl.DataFrame({
        "row": [2, 3, 4, 5], "claim_id": ["A", "B", "C", "D"], "person_id": ["P1"] * 4,
        "date": [dt.date(2024, 1, d) for d in (1, 2, 3, 4)],
        "self_pay": [2**62, 3_000_000, -1, 999_999_999],
        "group": ["key"] * 4, "kind": ["inpatient"] * 4,
    })
    results, rejects = settle_frame(frame, book)
    assert rejects.select("row", "field").rows() == [(2, "self_pay"), (4, "self_pay")]
    assert rejects["message"].to_list() == [
        "is too large: amounts are at most 9,999,999.99 yuan", "must not be negative"]
    # B: 30,000 yuan → 23,300; D: 9,999,999.99 yuan → the 100,000 annual cap leaves 76,700
    assert results["claim_id"].to_list() == ["B", "D"]
    assert results["relief"].to_list() == [2_330_000, 7_670_000]


def test_an_empty_frame_gives_empty_results(book):
    results, rejects = settle_frame(frame_of([]), book)
    assert results.height == 0 and rejects.height == 0
    assert results.columns[-len(RESULT_FIELDS):] == list(RESULT_FIELDS)



def test_person_ids_as_categories_with_a_missing_id_settle_as_text_does(book):
    """``settle_frame`` called directly may get a missing person id: kept as a category or as
    text, the claims settle the same (a missing id has no category code to order by)."""
    frame = pl.DataFrame({
        "row": [2, 3, 4], "claim_id": ["A", "B", "C"], "person_id": [None, "P1", None],
        "date": [dt.date(2024, 3, 1)] * 3, "self_pay": [3_000_000, 2_000_000, 100_000],
        "group": ["key"] * 3, "kind": ["inpatient"] * 3,
    })
    as_text, _ = settle_frame(frame, book)
    as_codes, _ = settle_frame(frame.with_columns(pl.col("person_id").cast(pl.Categorical)), book)
    assert as_codes["relief"].to_list() == as_text["relief"].to_list() == [2_330_000, 1_480_000, 0]
    assert as_codes["ytd_self_pay"].to_list() == as_text["ytd_self_pay"].to_list()


def test_results_in_many_pieces_go_back_to_input_order_row_by_row():
    """Results held in processing order, each column in several chunks (as the streaming
    arithmetic leaves them), and an odd number of columns: input row i gets the values of
    processing row inv[i]."""
    inv = pl.Series([2, 0, 3, 1], dtype=pl.UInt32)  # input row 0 was processed third, ...
    pieces = [pl.DataFrame({"relief": [10, 11], "bracket": pl.Series([0, 1], dtype=pl.Int8),
                            "ytd_relief": [100, 110]}),
              pl.DataFrame({"relief": [12], "bracket": pl.Series([2], dtype=pl.Int8), "ytd_relief": [120]}),
              pl.DataFrame({"relief": [13], "bracket": pl.Series([3], dtype=pl.Int8), "ytd_relief": [130]})]
    held = [pl.concat(pieces, rechunk=False)]
    assert held[0]["relief"].n_chunks() == 3
    back = ordering.unpermute(held, inv)
    assert back["relief"].to_list() == [12, 10, 13, 11]
    assert back["bracket"].to_list() == [2, 0, 3, 1] and back["bracket"].dtype == pl.Int8
    assert back["ytd_relief"].to_list() == [120, 100, 130, 110]
    assert back.columns == ["relief", "bracket", "ytd_relief"] and held == []


# the result fields asked for and those a run's totals read (medaid.batch.run.TOTALS_FIELDS)
FIELD_SETS = (
    {"relief"},
    {"relief", "plan", "patient_pays", "capped_by"},
    {"relief", "ytd_self_pay"},
    {"relief", "bracket", "bracket_relief"},
    {"relief", "ytd_relief", "rule_hash", "benefit_year", "pool"},
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books_and_claims(), st.sampled_from(FIELD_SETS), st.integers(1, 5))
def test_results_with_only_the_fields_asked_equal_the_full_results_in_those_fields(case, fields, rows):
    """``--columns``: only the result fields needed are computed; each of them is, row for row,
    the same as when every field is (generated versions, caps, claim caps, both modes; slices
    of a few rows to cross the groups' edges)."""
    texts, claims = case
    try:
        book = load_texts(texts)
    except medaid.RuleError:
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("medaid.tuning.SLICE_ROWS", rows)
        full, full_rejects = settle_frame(frame_of(claims), book)
        part, part_rejects = settle_frame(frame_of(claims), book, need=fields)
    inputs = list(frame_of(claims).columns)
    assert part.columns == inputs + [f for f in RESULT_FIELDS if f in fields]
    assert part.equals(full.select(part.columns))
    assert part_rejects.equals(full_rejects)


def test_a_claim_mode_run_without_the_year_to_date_leaves_out_its_sum(tmp_path, monkeypatch):
    """In ``claim`` mode nothing but ``ytd_self_pay`` reads the running self-pay: asked for
    ``relief`` alone, the arithmetic does not compute it (nor the bracket reached)."""
    book = one_plan(tmp_path, '''accumulate = "claim"
annual_cap = "20000"
brackets = [{ from = "1000", rate = "70%" }]''')
    claims = [claim(f"K{i}", f"P{i % 3}", "2024-03-01", "9000") for i in range(12)]
    seen: list[list[str]] = []
    real = pl.LazyFrame.collect

    def spy(self, *a, **k):  # the columns of every frame the settlement collects
        out = real(self, *a, **k)
        seen.append(out.columns)
        return out

    monkeypatch.setattr(pl.LazyFrame, "collect", spy)
    frame = frame_of(claims).drop("group", "kind")
    part, _ = settle_frame(frame, book, need={"relief"})
    assert seen and not any("C" in cols or "bracket" in cols for cols in seen)
    seen.clear()
    full, _ = settle_frame(frame, book)
    assert any("C" in cols for cols in seen) and any("bracket" in cols for cols in seen)
    # 9,000 relieves 5,600 a claim; a person's fourth claim in (date, claim id) order meets the
    # 20,000 cap (3,200): K9 of P0 (K0 K3 K6 K9), K7 of P1 (K1 K10 K4 K7), K8 of P2 (K11 K2 K5 K8)
    assert part["relief"].to_list() == full["relief"].to_list() == [560000] * 7 + [320000] * 3 + [560000] * 2


def _same_persons(results: pl.DataFrame) -> None:
    """The person numbers are equal for two rows exactly when their person ids are."""
    from medaid.batch.settle import PERSON_CODE

    pairs = results.select("person_id", PERSON_CODE).unique()
    assert pairs["person_id"].n_unique() == pairs[PERSON_CODE].n_unique() == pairs.height


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books_and_claims(), st.sampled_from(["len", "first", "none"]), st.booleans())
def test_the_sorts_person_numbers_tell_persons_apart_exactly_even_when_hashes_collide(case, collide, packed):
    """``person_codes=True``: text person ids get a number from the sort (for the totals); with
    every person of one id length (or one first letter) colliding in the hash, on both sort
    paths, two rows have the same number exactly when they have the same person; the results
    are those without the numbers."""
    texts, claims = case
    try:
        book = load_texts(texts)
    except medaid.RuleError:
        return
    hashes = {
        "len": lambda frame: (pl.col("person_id").str.len_bytes().cast(pl.UInt64) * (1 << 60), None),
        "first": lambda frame: (pl.col("person_id").str.slice(0, 2).hash(1) // 8 * 8, None),
    }
    with pytest.MonkeyPatch.context() as mp:
        if collide in hashes:
            mp.setattr("medaid.batch.ordering.person_hash", hashes[collide])
        if not packed:
            mp.setattr("medaid.batch.ordering.MIN_HASH_BITS", 65)
        frame = frame_of(claims).sample(fraction=1.0, shuffle=True, seed=len(claims))  # (not in order)
        got, _ = settle_frame(frame, book, person_codes=True)
        plain, _ = settle_frame(frame, book)
    if "__person" in got.columns:
        _same_persons(got)
        assert got.drop("__person").equals(plain)
    else:
        assert got.equals(plain)


def test_many_persons_colliding_in_the_hash_are_numbered_apart(tmp_path, monkeypatch):
    """Persons P1 … P30 share three hash values (by their last digit mod 3): each run of a hash
    holds ten persons, interleaved by benefit year and pool; every person still gets one number
    and the totals count 30 persons."""
    from medaid.report.totals import summarise

    book = one_plan(tmp_path, 'accumulate = "year"\nbrackets = [{ from = "1000", rate = "70%" }]')
    claims = [claim(f"K{i:03d}", f"P{1 + i % 30}", f"2024-0{1 + i % 9}-01", "2000") for i in range(300)]
    frame = frame_of(claims).drop("group", "kind")
    want, _ = settle_frame(frame, book)
    monkeypatch.setattr("medaid.batch.ordering.person_hash",
                        lambda frame: ((pl.col("person_id").str.slice(-1).cast(pl.UInt64) % 3) * (1 << 62), None))
    got, _ = settle_frame(frame, book, person_codes=True)
    _same_persons(got)
    codes = got.drop_in_place("__person")
    # (claim ids ascending: the repair orders the colliding runs by the day the key holds)
    assert got.equals(want)
    assert summarise(got, codes)["total"]["persons"] == summarise(got)["total"]["persons"] == 30


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet", ".jsonl"])
def test_one_plan_and_one_benefit_year_are_written_on_every_row(tmp_path, suffix):
    """A book of one plan, claims of one benefit year: the settlement keeps the plan's fields
    and the year as one value each (not one a row); every row of every format still carries
    them, and the amounts beside them are the hand-worked ones."""
    from medaid.batch.run import settle_file, write_run
    from medaid.io.results import read_results

    book = one_plan_of_year_mode(tmp_path, rule_set="one", version="7", plan="only")
    (tmp_path / "claims.csv").write_text(
        "claim_id,person_id,date,self_pay\nC1,P1,2024-01-01,600\nC2,P1,2024-02-01,600\nC3,P2,2024-03-01,1600\n")
    run = settle_file(tmp_path / "claims.csv", book)
    out = tmp_path / f"results{suffix}"
    write_run(run, out)
    back = read_results(out)
    assert back["plan"].to_list() == ["only"] * 3
    assert back["pool"].to_list() == ["all"] * 3
    assert back["benefit_year"].to_list() == [2024] * 3
    assert back["rule_set_id"].to_list() == ["one"] * 3 and back["rule_version"].to_list() == ["7"] * 3
    assert back["relief"].to_list() == [0, 14_000, 42_000]  # 600 → 0, 1,200 → 140, 1,600 → 420

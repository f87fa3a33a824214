"""The batch totals (the payment list finance needs) equal totals counted claim by claim in
plain Python: claims, distinct persons, self-pay, relief, patient pays, relief share, claims
capped and persons at an annual cap — overall, by plan, by month and by hospital, in the
order the tables show them (names sorted, the claims without a hospital last)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from medaid.report import totals  # MASK_BITS: the totals engine's switch
from medaid.report.totals import summarise

CAPS = [None, "annual_cap", "claim_cap", "self_pay"]


@st.composite
def result_rows(draw: st.DrawFn) -> tuple[list[dict], bool, bool]:
    n = draw(st.integers(0, 60))
    persons = draw(st.lists(st.text("PQ0123", min_size=1, max_size=3), min_size=1, max_size=8))
    plans = draw(st.lists(st.sampled_from(["key-inpatient", "low-income", "outpatient", "z"]),
                          min_size=1, max_size=4, unique=True))
    hospitals = draw(st.lists(st.one_of(st.none(), st.sampled_from(["县人民医院", "H1", "H2", "a"])),
                              min_size=1, max_size=4))
    rows = []
    for _ in range(n):
        self_pay = draw(st.integers(0, 10**9))
        relief = draw(st.integers(0, self_pay))
        rows.append({
            "person_id": draw(st.sampled_from(persons)),
            "date": dt.date(draw(st.sampled_from([2023, 2024, 2025])), draw(st.integers(1, 12)),
                            draw(st.integers(1, 28))),
            "self_pay": self_pay, "relief": relief, "patient_pays": self_pay - relief,
            "capped_by": draw(st.sampled_from(CAPS)),
            "plan": draw(st.sampled_from(plans)),
            "hospital": draw(st.sampled_from(hospitals)),
        })
    return rows, draw(st.booleans()), draw(st.booleans())


def _frame(rows: list[dict], categories: bool, with_hospital: bool) -> pl.DataFrame:
    schema = {"person_id": pl.Categorical if categories else pl.String, "date": pl.Date,
              "self_pay": pl.Int64, "relief": pl.Int64, "patient_pays": pl.Int64,
              "capped_by": pl.Enum(["annual_cap", "claim_cap", "self_pay"]) if categories else pl.String,
              "plan": pl.Enum(sorted({r["plan"] for r in rows}) or ["x"]) if categories else pl.String,
              "hospital": pl.Categorical if categories else pl.String}
    frame = pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)
    return frame if with_hospital else frame.drop("hospital")


def _share(relief: int, self_pay: int) -> str:
    if not self_pay:
        return "0.00%"
    basis_points = (relief * 10000 * 2 + self_pay) // (2 * self_pay)  # half up
    return f"{basis_points // 100}.{basis_points % 100:02d}%"


def _expected(rows: list[dict], with_hospital: bool) -> dict:
    def table(key) -> dict:  # type: ignore[no-untyped-def]
        acc: dict = defaultdict(lambda: {"claims": 0, "persons": set(), "self_pay": 0, "relief": 0,
                                         "patient_pays": 0, "claims_capped": 0, "persons_at_annual_cap": set()})
        for r in rows:
            a = acc[key(r)]
            a["claims"] += 1
            a["persons"].add(r["person_id"])
            a["self_pay"] += r["self_pay"]
            a["relief"] += r["relief"]
            a["patient_pays"] += r["patient_pays"]
            a["claims_capped"] += r["capped_by"] is not None
            if r["capped_by"] == "annual_cap":
                a["persons_at_annual_cap"].add(r["person_id"])
        return {k: {**a, "persons": len(a["persons"]), "persons_at_annual_cap": len(a["persons_at_annual_cap"]),
                    "relief_share": _share(a["relief"], a["self_pay"])} for k, a in acc.items()}

    total = table(lambda r: "all").get("all") or {
        "claims": 0, "persons": 0, "self_pay": 0, "relief": 0, "patient_pays": 0,
        "claims_capped": 0, "persons_at_annual_cap": 0, "relief_share": "0.00%"}

    def listed(name: str, key, order) -> list[dict]:  # type: ignore[no-untyped-def]
        return [{name: k, **v} for k, v in sorted(table(key).items(), key=lambda kv: order(kv[0]))]

    return {
        "total": total,
        "by_plan": listed("plan", lambda r: r["plan"], lambda k: k),
        "by_month": listed("month", lambda r: r["date"].strftime("%Y-%m"), lambda k: k),
        "by_hospital": listed("hospital", lambda r: r["hospital"] if with_hospital else None,
                              lambda k: (k is None, k or "")),
    }


@pytest.mark.parametrize("bits", [totals.MASK_BITS, 0])
@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=result_rows())
def test_totals_equal_a_claim_by_claim_count(case, bits: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways of counting persons (a bit per plan, month and hospital; or distinct pairs
    when there are too many of those) give the counts of a set per table row."""
    rows, categories, with_hospital = case
    monkeypatch.setattr(totals, "MASK_BITS", bits)
    assert summarise(_frame(rows, categories, with_hospital)) == _expected(rows, with_hospital)


@pytest.mark.parametrize("bits", [totals.MASK_BITS, 0])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=result_rows(), spread=st.integers(1, 2**40))
def test_persons_told_apart_by_numbers_count_as_by_their_ids(case, spread: int, bits: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``summarise(results, persons=...)``: a number per row, equal exactly when the person id
    is (as the batch's sort gives them), counts the persons as their ids do."""
    rows, categories, with_hospital = case
    monkeypatch.setattr(totals, "MASK_BITS", bits)
    ids = sorted({r["person_id"] for r in rows})
    numbers = pl.Series([ids.index(r["person_id"]) * spread for r in rows], dtype=pl.UInt64)
    assert summarise(_frame(rows, categories, with_hospital), numbers) == _expected(rows, with_hospital)


def test_person_numbers_must_cover_every_row() -> None:
    rows = [{"person_id": "P", "date": dt.date(2024, 1, 1), "self_pay": 5, "relief": 1, "patient_pays": 4,
             "capped_by": None, "plan": "p", "hospital": None}]
    with pytest.raises(ValueError, match="one number for every row"):
        summarise(_frame(rows, False, False), pl.Series([1, 2], dtype=pl.UInt64))


#: P1: two claims in January, the second at the annual cap; P2: one in February.
TWO_PERSONS = [
    {"person_id": "P1", "date": dt.date(2024, 1, 5), "self_pay": 1000_00, "relief": 0,
     "patient_pays": 1000_00, "capped_by": None, "plan": "key", "hospital": "H1"},
    {"person_id": "P1", "date": dt.date(2024, 1, 9), "self_pay": 3000_00, "relief": 1400_00,
     "patient_pays": 1600_00, "capped_by": "annual_cap", "plan": "key", "hospital": "H2"},
    {"person_id": "P2", "date": dt.date(2024, 2, 1), "self_pay": 500_00, "relief": 0,
     "patient_pays": 500_00, "capped_by": None, "plan": "other", "hospital": None},
]


def test_a_person_counted_once_per_table_row_however_many_claims() -> None:
    rows = TWO_PERSONS
    s = summarise(_frame(rows, True, True))
    assert (s["total"]["claims"], s["total"]["persons"], s["total"]["persons_at_annual_cap"]) == (3, 2, 1)
    assert s["total"]["relief_share"] == "31.11%"  # 1,400 of 4,500 yuan
    assert [(r["plan"], r["claims"], r["persons"]) for r in s["by_plan"]] == [("key", 2, 1), ("other", 1, 1)]
    assert [(r["month"], r["persons"], r["persons_at_annual_cap"]) for r in s["by_month"]] == [
        ("2024-01", 1, 1), ("2024-02", 1, 0)]
    assert [(r["hospital"], r["relief"]) for r in s["by_hospital"]] == [("H1", 0), ("H2", 1400_00), (None, 0)]


@pytest.mark.parametrize("numbers", [[0, 0, 1], [7, 7, 2], [0, 0, 1000], [2**33, 2**33, 5]])
def test_persons_numbered_by_the_sort_are_counted_by_a_table_or_by_grouping(numbers: list[int]) -> None:
    """Numbers 0, 0, 1 and 7, 7, 2 are few enough for a table of them (one bit a number) and for
    one table of (month, person) places, 0, 0, 1000 for the first only (a table per month then),
    2³³ for neither (grouped instead): the counts are the hand-counted ones every way.  P1 has
    two claims in January, one at the annual cap; P2 one in February."""
    rows = TWO_PERSONS
    s = summarise(_frame(rows, False, True), pl.Series(numbers, dtype=pl.UInt64))
    assert (s["total"]["persons"], s["total"]["persons_at_annual_cap"]) == (2, 1)
    assert [(r["plan"], r["persons"], r["persons_at_annual_cap"]) for r in s["by_plan"]] == [
        ("key", 1, 1), ("other", 1, 0)]
    assert [(r["month"], r["persons"], r["persons_at_annual_cap"]) for r in s["by_month"]] == [
        ("2024-01", 1, 1), ("2024-02", 1, 0)]
    assert [(r["hospital"], r["persons"], r["persons_at_annual_cap"]) for r in s["by_hospital"]] == [
        ("H1", 1, 0), ("H2", 1, 1), (None, 1, 0)]


@settings(max_examples=50, deadline=None)
@given(case=result_rows(), cut=st.integers(0, 60))
def test_partial_sums_of_partitions_combine_into_the_totals_of_the_whole(case, cut: int) -> None:
    """What Spark does (medaid.report.totals.combine): each partition's sums per (plan, month,
    hospital) cell, computed with the engine's own measures, added up exactly, with the distinct
    persons counted per plan, month and hospital, give the claim-by-claim totals."""
    from medaid.report.totals import DIMS, DISTINCT, SUMS, combine, polars_measure

    rows, categories, with_hospital = case
    frame = _frame(rows, categories, with_hospital).with_columns(
        pl.col("date").dt.strftime("%Y-%m").alias("month"),
        *([] if with_hospital else [pl.lit(None, pl.String).alias("hospital")]))
    sums = [n for n, _, _ in SUMS]
    cells = []
    for part in (frame[:cut], frame[cut:]):  # two partitions; a cell may be in both
        got = part.group_by(*DIMS).agg(*map(polars_measure, sums)).with_columns(pl.col(DIMS).cast(pl.String))
        cells += [({d: r[d] for d in DIMS}, [r[n] for n in sums]) for r in got.iter_rows(named=True)]
    distinct = [n for n, _ in DISTINCT]
    persons: dict = {"total": frame.select(*map(polars_measure, distinct)).row(0)} if frame.height else {}
    for d in DIMS:
        got = frame.group_by(pl.col(d).cast(pl.String)).agg(*map(polars_measure, distinct))
        persons[d] = {r[0]: tuple(r[1:]) for r in got.iter_rows()}
    assert combine(cells, persons) == _expected(rows, with_hospital)


# -- the totals' tables are tabulate's, drawn without it when their text is ASCII ----------------


def _tabulated(summary: dict, lang: str) -> str:
    """The totals as tabulate draws them (what ``summary_tables`` printed before it drew them)."""
    from tabulate import tabulate

    from medaid.money import format_yuan
    from medaid.report.batch_text import _COLS, MONEY_KEYS, _total_rows
    from medaid.report.labels import labels_of

    lab = labels_of("totals")[lang]

    def cell(k, v):  # type: ignore[no-untyped-def]
        return format_yuan(v) if k in MONEY_KEYS else v

    t = summary["total"]
    parts = [lab["total"] + "\n" + tabulate([[lab[k], cell(k, t[k])] for k in _total_rows(t)],
                                            tablefmt="simple", disable_numparse=True, colalign=("left", "right"))]
    for key, by in (("by_plan", "plan"), ("by_month", "month"), ("by_hospital", "hospital")):
        rows = [[r[by] if r[by] is not None else lab["none"]] + [cell(k, r[k]) for k in _COLS] for r in summary[key]]
        parts.append(lab[key] + "\n" + tabulate(rows, headers=[lab[by]] + [lab[k] for k in _COLS], tablefmt="simple",
                                                disable_numparse=True, colalign=("left",) + ("right",) * len(_COLS)))
    return "\n\n".join(parts)


@settings(max_examples=60, deadline=None)
@given(case=result_rows(), lang=st.sampled_from(["en", "zh"]), second=st.none() | st.integers(0, 10**10))
def test_the_totals_tables_are_drawn_exactly_as_tabulate_draws_them(case, lang: str, second: int | None) -> None:
    from medaid.report.batch_text import summary_tables
    from medaid.report.totals import AT_CAP_POOL

    rows, categories, with_hospital = case
    s = summarise(_frame(rows, categories, with_hospital))
    if second is not None:  # a second stage's relief and persons at a cap pool (with_second_stage)
        s["total"] = {**s["total"], "second_relief": second, AT_CAP_POOL: second % 7}
    assert summary_tables(s, lang) == _tabulated(s, lang)


def test_english_totals_of_ascii_names_are_drawn_without_tabulate() -> None:
    from unittest import mock

    from medaid.report.batch_text import summary_tables

    rows = [{"person_id": "P1", "date": dt.date(2024, 5, 3), "self_pay": 3_000_000, "relief": 1_330_000,
             "patient_pays": 1_670_000, "capped_by": None, "plan": "key-inpatient", "hospital": "H1"},
            {"person_id": "P2", "date": dt.date(2024, 6, 1), "self_pay": 5_000, "relief": 0,
             "patient_pays": 5_000, "capped_by": "annual_cap", "plan": "low-income", "hospital": None}]
    s = summarise(_frame(rows, False, True))
    expected = _tabulated(s, "en")
    with mock.patch("tabulate.tabulate", side_effect=AssertionError("tabulate was used")), \
            mock.patch("medaid.report.tables._cell_width", side_effect=AssertionError("wcwidth was used")):
        drawn = summary_tables(s, "en")
    assert drawn == expected
    assert "key-inpatient" in drawn and "30,000.00" in drawn and "(none)" in drawn
    assert summary_tables(s, "zh") == _tabulated(s, "zh")  # Chinese labels: measured by wcwidth

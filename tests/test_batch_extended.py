"""The batch on rule sets that use the rules real schemes need (docs/calculation.md, *Rules real
schemes need*; docs/batch.md, *Extended rule sets*): ``settle_frame`` and ``medaid batch`` give,
claim by claim, what the engine gives and what the independent Fraction reference
(``tests/reference_schemes.py``) gives, on generated rule sets and claims; the refused claims are
rejects with their line and field; the spec's worked examples come out of a CSV file as worked
by hand.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import medaid
import reference_schemes as ref
from medaid.batch.settle import settle_frame
from medaid.io.columns import EXTENDED_RESULT_FIELDS, RESULT_FIELDS
from strategies_schemes import claims_refused, load, raw_claims, scheme_rule_sets, toml_text

FAST = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


def fen_of(text: str | None) -> int | None:
    return None if text is None else medaid.parse_yuan(text)


def claims_frame(claims: list[dict[str, Any]], attributes: list[str]) -> pl.DataFrame:
    """The claims as a batch frame: ``row`` (line 2 onwards), the claim fields (money in fen) and
    a column per attribute named by it (as the readers name them)."""
    cols: dict[str, Any] = {
        "row": pl.Series([i + 2 for i in range(len(claims))], dtype=pl.Int64),
        "claim_id": pl.Series([c["claim_id"] for c in claims], dtype=pl.String),
        "person_id": pl.Series([c["person_id"] for c in claims], dtype=pl.String),
        "date": pl.Series([c["date"] for c in claims], dtype=pl.Date),
        "self_pay": pl.Series([fen_of(c["self_pay"]) for c in claims], dtype=pl.Int64),
        "group": pl.Series([c.get("group") for c in claims], dtype=pl.String),
        "kind": pl.Series([c.get("kind") for c in claims], dtype=pl.String),
        "household_id": pl.Series([c.get("household_id") for c in claims], dtype=pl.String),
        "non_compliant": pl.Series([fen_of(c.get("non_compliant")) for c in claims], dtype=pl.Int64),
    }
    for a in attributes:
        cols[a] = pl.Series([c.get("attributes", {}).get(a) for c in claims], dtype=pl.String)
    return pl.DataFrame(cols)


#: Result columns compared with the engine's Settlement of the same name.
SAME_AS_ENGINE = ("plan", "pool", "benefit_year", "relief", "patient_pays", "bracket_relief", "capped_by",
                  "bracket", "ytd_self_pay", "ytd_relief", "rule_set_id", "rule_version", "second_relief",
                  "second_capped_by", "second_pool", "burden", "ytd_burden", "ytd_second_relief")
#: Result columns compared with the Fraction reference.
SAME_AS_REFERENCE = ("plan", "pool", "benefit_year", "relief", "patient_pays", "bracket_relief",
                     "capped_by", "second_relief", "second_capped_by", "ytd_self_pay", "ytd_relief")


@FAST
@given(st.data())
def test_settle_frame_equals_the_engine_and_the_reference_claim_by_claim(data):
    rs = data.draw(scheme_rule_sets(), "rule set")
    book, (parsed,) = load([rs])
    claims = data.draw(raw_claims(rs), "claims")
    refused = {c["claim_id"] for c in claims_refused([parsed], claims)}
    good = [c for c in claims if c["claim_id"] not in refused]
    frame = claims_frame(claims, sorted(rs.get("attributes", {})))
    results, rejects = settle_frame(frame, book)
    assume(book.extended)  # (nearly every rule set drawn uses a rule of its kind)
    assert results.columns == [*frame.columns, *RESULT_FIELDS, *EXTENDED_RESULT_FIELDS]
    # refused claims are rejects on their own line, naming the field the engine names
    assert sorted(rejects["claim_id"].to_list()) == sorted(refused)
    line = {c["claim_id"]: i + 2 for i, c in enumerate(claims)}
    assert all(line[cid] == row for row, cid in rejects.select("row", "claim_id").iter_rows())
    assert set(rejects["field"].to_list()) <= {"group/kind", "household_id", "date", "level", "place"} | set(
        rs.get("attributes", {}))
    # the rest: as the engine settles them, and as the reference does
    assert results["claim_id"].to_list() == [c["claim_id"] for c in good]
    engine = medaid.settle([medaid.Claim.from_yuan(**c) for c in good], book)
    want = ref.settle([parsed], good)
    for row, r in zip(results.iter_rows(named=True), engine):
        assert {k: row[k] for k in SAME_AS_ENGINE} == {k: getattr(r, k) for k in SAME_AS_ENGINE}, r.claim_id
        assert row["rule_hash"] == r.rule_hash
        w = want[r.claim_id]
        assert {k: row[k] for k in SAME_AS_REFERENCE} == {k: getattr(w, k) for k in SAME_AS_REFERENCE}
        assert row["relief"] + row["patient_pays"] == row["self_pay"]


@FAST
@given(st.data())
def test_order_of_the_rows_changes_no_claims_relief(data):
    rs = data.draw(scheme_rule_sets(), "rule set")
    book, (parsed,) = load([rs])
    claims = data.draw(raw_claims(rs), "claims")
    shuffled = data.draw(st.permutations(claims), "order")
    attrs = sorted(rs.get("attributes", {}))
    a, _ = settle_frame(claims_frame(claims, attrs), book)
    b, _ = settle_frame(claims_frame(shuffled, attrs), book)
    key = [c for c in ("claim_id", "relief", "second_relief", "capped_by", "caps") if c in a.columns]
    assert a.select(key).sort("claim_id").equals(b.select(key).sort("claim_id"))

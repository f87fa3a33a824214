"""Recalculation under new rules: per claim the old relief (from a previous results file), the
new relief (a :class:`medaid.batch.run.BatchRun` under the new rules) and the adjustment;
Σ old + Σ adjustment = Σ new to the fen, checked on every run (docs/batch.md, *Recalculation*).

Its tables are :func:`medaid.report.batch_text.recalc_tables`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from ..errors import MedaidError, Problem
from ..io.columns import ID_FIELDS
from ..io.ids import tidy_ids
from ..money import MAX_FEN, format_yuan
from .run import BatchRun


@dataclass(frozen=True)
class Recalc:
    """A recalculation against a previous results file (amounts fen).

    Attributes:
        claims: per claim ``claim_id``, ``person_id``, ``hospital``, ``old_relief``,
            ``new_relief``, ``adjustment`` and ``status`` (``same``, ``changed``, ``new``: not in
            the previous file, ``dropped``: in the previous file only, new relief 0); where
            either side carries ``second_relief`` (rules with a second stage) also
            ``old_second_relief`` and ``new_second_relief``, the second stage's part of each
            relief (null: not in that file).
        totals: Σ old, Σ new, Σ adjustment and the count of claims by status (with a second
            stage also Σ old and Σ new second-stage relief, ``None`` when a side has none).
        by_hospital, by_person: adjustments summed (rows with a non-zero adjustment only).
    """

    claims: pl.DataFrame
    totals: dict[str, Any]
    by_hospital: list[dict[str, Any]]
    by_person: list[dict[str, Any]]


#: Columns a previous results file must have for a recalculation.
PREVIOUS_FIELDS = ("claim_id", "person_id", "relief")


def recalculate(run: BatchRun, previous: pl.DataFrame) -> Recalc:
    """Compare a run's relief with a previous results frame (from
    :func:`medaid.io.readers.read_results`), claim by claim; Σ old + Σ adj = Σ new is checked."""

    second = "second_relief" in run.results.columns or "second_relief" in previous.columns

    def pick(frame: pl.DataFrame, prefix: str) -> pl.DataFrame:
        cols = {"claim_id": pl.col("claim_id"), "person_id": pl.col("person_id").cast(pl.String),
                "relief": pl.col("relief")}
        if second:  # not in a file: unknown (null), never taken as 0
            cols["second_relief"] = (pl.col("second_relief").cast(pl.Int64) if "second_relief" in frame.columns
                                     else pl.lit(None, pl.Int64))
        cols["hospital"] = (pl.col("hospital").cast(pl.String) if "hospital" in frame.columns
                            else pl.lit(None, pl.String))
        return frame.select(
            [e.alias(k if k == "claim_id" else f"{prefix}{k}") for k, e in cols.items()]
        ).with_row_index(f"{prefix}order")

    # the previous file's ids as the run's are (an older file may hold them keyed otherwise)
    previous = previous.with_columns(
        tidy_ids(previous[c].cast(pl.String)) for c in ID_FIELDS if c in previous.columns)
    new = pick(run.results, "new_")
    old = pick(previous, "old_")
    odd = old.filter((pl.col("old_relief") < 0) | (pl.col("old_relief") > MAX_FEN))
    if odd.height:  # an amount medaid never gives: the sums below could leave 64 bits
        raise MedaidError(Problem(
            f"the previous results give claim {odd['claim_id'][0]!r} a relief that is negative or "
            f"above the maximum amount ({format_yuan(MAX_FEN)} yuan)", field="relief"))
    dup = old.filter(pl.col("claim_id").is_duplicated())
    if dup.height:
        raise MedaidError(Problem(
            f"the previous results list claim {dup['claim_id'][0]!r} more than once"))
    j = new.join(old, on="claim_id", how="full", coalesce=True)
    out = j.select(
        "claim_id",
        pl.coalesce("new_person_id", "old_person_id").alias("person_id"),
        pl.coalesce("new_hospital", "old_hospital").alias("hospital"),
        pl.col("old_relief").fill_null(0),
        pl.col("new_relief").fill_null(0),
        (pl.col("new_relief").fill_null(0) - pl.col("old_relief").fill_null(0)).alias("adjustment"),
        pl.when(pl.col("old_relief").is_null()).then(pl.lit("new"))
        .when(pl.col("new_relief").is_null()).then(pl.lit("dropped"))
        .when(pl.col("new_relief") == pl.col("old_relief")).then(pl.lit("same"))
        .otherwise(pl.lit("changed")).alias("status"),
        *([pl.col("old_second_relief"), pl.col("new_second_relief")] if second else []),
        pl.col("new_order"), pl.col("old_order"),
    ).sort(["new_order", "old_order"], nulls_last=True).drop("new_order", "old_order")
    s_old, s_new, s_adj = (int(out[c].sum()) for c in ("old_relief", "new_relief", "adjustment"))
    if s_old + s_adj != s_new:  # pragma: no cover - integer arithmetic; a guard, not a branch
        raise MedaidError(Problem("recalculation does not reconcile"))
    counts = dict(out.group_by("status").len().iter_rows())
    totals: dict[str, Any] = {"claims": out.height, "old_relief": s_old, "new_relief": s_new, "adjustment": s_adj,
              **{f"{k}": int(counts.get(k, 0)) for k in ("same", "changed", "new", "dropped")}}
    if second:  # the second stage's part of each side (docs/batch.md, *Recalculation*)
        for side in ("old", "new"):
            part = out[f"{side}_second_relief"]
            totals[f"{side}_second_relief"] = None if part.null_count() == out.height else int(part.sum())
    moved = out.filter(pl.col("adjustment") != 0)

    def by(col: str) -> list[dict[str, Any]]:
        return (moved.group_by(col).agg(pl.len().alias("claims"), pl.col("adjustment").sum())
                .sort(col, nulls_last=True).to_dicts())

    return Recalc(out, totals, by("hospital"), by("person_id"))

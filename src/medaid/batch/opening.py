"""Opening balances: the year-to-date positions a batch starts from (docs/batch.md, *Opening
balances*).

Rule: the position of a (person, benefit year, pool) before a batch is the sum of the
``self_pay`` and the sum of the ``relief`` (plus ``adjustment`` where the rows carry one) of the
earlier results' rows of that person, benefit year and pool; the batch's accumulation
(docs/calculation.md, *Accumulation*) starts there instead of at zero, so a claim's
``C_{k−1}`` and ``G_{k−1}`` include the earlier claims.  A claim id already present in the
earlier results is not settled again: it is reported (counted apart from the settled and the
rejected rows, listed with the reason ``already settled in <source>``), not rejected.  A claim
whose settlement a ledger reversed is not among the earlier results (a reversal takes its
self-pay and relief back out of the position): it is settled as a new claim, as the ledger
itself settles a claim id again after its reversal.  Positions whose benefit year and pool no
claim of the batch has play no part.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from ..errors import MedaidError, Problem

#: The key of a position.
POSITION_KEYS = ("person_id", "benefit_year", "pool")
#: Fields an earlier results frame must carry to give opening positions.
OPENING_FIELDS = ("claim_id", "person_id", "benefit_year", "pool", "self_pay", "relief")
#: How many already-settled claim ids the warning names.
NAMED = 5


@dataclass(frozen=True)
class Opening:
    """Opening positions and the claims they came from.

    Attributes:
        positions: ``person_id`` (String), ``benefit_year`` (Int32), ``pool`` (String),
            ``c0`` (self-pay so far, Int64 fen), ``g0`` (relief so far, Int64 fen); one row a key.
        claims: ``claim_id`` (String) and ``source`` (the first source holding it), one row a
            claim id.
    """

    positions: pl.DataFrame
    claims: pl.DataFrame


def opening_from(frames: Iterable[tuple[str, pl.DataFrame]]) -> Opening:
    """The opening of earlier results, each ``(source, frame)`` with :data:`OPENING_FIELDS`
    (money as Int64 fen, as :func:`medaid.io.results.read_results` gives it), by the module's
    rule."""
    parts, ids = [], []
    for source, f in frames:
        missing = [c for c in OPENING_FIELDS if c not in f.columns]
        if missing:
            raise MedaidError(Problem(
                "cannot give opening balances: no " + ", ".join(missing) + " column", source=source))
        relief = pl.col("relief").fill_null(0)
        if "adjustment" in f.columns:
            relief = relief + pl.col("adjustment").fill_null(0)
        parts.append(f.select(
            pl.col("person_id").cast(pl.String), pl.col("benefit_year").cast(pl.Int32),
            pl.col("pool").cast(pl.String), pl.col("self_pay").fill_null(0).cast(pl.Int64).alias("c0"),
            relief.cast(pl.Int64).alias("g0")))
        ids.append(f.select(pl.col("claim_id").cast(pl.String), pl.lit(source).alias("source")))
    if not parts:
        return Opening(
            pl.DataFrame(schema={"person_id": pl.String, "benefit_year": pl.Int32, "pool": pl.String,
                                 "c0": pl.Int64, "g0": pl.Int64}),
            pl.DataFrame(schema={"claim_id": pl.String, "source": pl.String}))
    positions = (pl.concat(parts).drop_nulls(list(POSITION_KEYS))
                 .group_by(list(POSITION_KEYS)).agg(pl.col("c0").sum(), pl.col("g0").sum()))
    claims = pl.concat(ids).drop_nulls("claim_id").unique("claim_id", keep="first", maintain_order=True)
    return Opening(positions, claims)


def already_settled(frame: pl.DataFrame, opening: Opening, source: str) -> tuple[pl.DataFrame, Problem | None]:
    """The rows of ``frame`` (``row``, ``claim_id``) whose claim id the opening holds
    (``row``, ``claim_id``, ``field``, ``message`` = ``already settled in <source>``), and the
    warning naming how many and the first :data:`NAMED`."""
    hit = (frame.select("row", pl.col("claim_id").cast(pl.String))
           .join(opening.claims, on="claim_id", how="inner", maintain_order="left"))
    if not hit.height:
        return hit.select("row", "claim_id", pl.lit(None, pl.String).alias("field"),
                          pl.lit(None, pl.String).alias("message")), None
    rejects = hit.select("row", "claim_id", pl.lit("claim_id").alias("field"),
                         ("already settled in " + pl.col("source")).alias("message"))
    first = hit["claim_id"].head(NAMED).to_list()
    more = " ..." if hit.height > NAMED else ""
    n = hit.height
    warning = Problem(
        f"{n} claim{'' if n == 1 else 's'} already settled in the opening, reported, "
        f"not settled twice: {', '.join(first)}{more}", source=source)
    return rejects, warning


def seeds(persons: pl.Series, years: pl.Series, pools: pl.Series, positions: pl.DataFrame) -> pl.DataFrame:
    """Each row's opening ``c0`` and ``g0`` (0 where there is no position), in the rows' order."""
    rows = pl.DataFrame([persons.cast(pl.String).alias("person_id"),
                         years.cast(pl.Int32).alias("benefit_year"), pools.cast(pl.String).alias("pool")])
    got = rows.join(positions, on=list(POSITION_KEYS), how="left", maintain_order="left")
    return got.select(pl.col("c0").fill_null(0), pl.col("g0").fill_null(0))

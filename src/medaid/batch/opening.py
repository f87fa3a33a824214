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

For a rule book that uses the rules of docs/calculation.md *Rules real schemes need*
(``RuleBook.extended``; docs/batch.md, *Opening balances with extended rule sets*) the earlier
results also give, summed the same way over their rows:

* a pool's relief so far is the first stage's: ``relief − second_relief`` (a second stage counts
  in its own pool);
* each second pool (person, benefit year, ``second_pool``): ``Σ burden`` (``B``) and
  ``Σ second_relief`` (``H``);
* each cap pool (cap pool, person or household, benefit year): ``Σ`` of the relief each row
  counted in it (its ``caps`` column, ``NAME=yuan;…``), per household for a cap pool the rule
  book declares ``per = "household"`` (the row's ``household_id``), else per person.

Earlier results without those columns (written under a rule book without these rules, or with
``--columns`` leaving them out) cannot give them: such an opening is refused for an extended
rule book, naming the file and the columns, rather than settling against empty cap pools.

A ledger (``--ledger``) gives them always (:func:`ledger_frame`): its results carry the columns
for every claim a second stage or a cap pool counted (:meth:`medaid.ledger.backend.LedgerBase.results_rows`,
adjusted claims at their current result, reversed ones not at all), and a claim without them was
counted in no second pool and no cap pool, as the desk reads the same rows (its positions are
the same sums); the household of a household cap pool is the ledger row's ``household_id``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from ..domain.engine import PoolState, Positions
from ..domain.rules import RuleBook
from ..errors import MedaidError, Problem
from ..io.results_frame import results_dtypes

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
    #: Extended results' second pools: ``person_id``, ``benefit_year``, ``second_pool``, ``b0``,
    #: ``h0`` (fen), one row a key; and their cap pools: ``cap``, ``person_id``,
    #: ``household_id``, ``benefit_year``, ``used`` (fen), summed per key.
    seconds: pl.DataFrame | None = None
    caps: pl.DataFrame | None = None
    #: Sources without the columns :data:`EXTENDED_OPENING_FIELDS`: ``(source, missing)``.
    lacking: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def for_book(self, book: RuleBook) -> pl.DataFrame | Positions:
        """What :func:`medaid.batch.settle.settle_frame` opens with under ``book``: the pools'
        frame (:attr:`positions`), or, for an extended book, the engine's
        :class:`medaid.domain.engine.Positions` (:func:`engine_positions`)."""
        return engine_positions(self, book) if book.extended else self.positions


def opening_from(frames: Iterable[tuple[str, pl.DataFrame]]) -> Opening:
    """The opening of earlier results, each ``(source, frame)`` with :data:`OPENING_FIELDS`
    (money as Int64 fen, as :func:`medaid.io.results.read_results` gives it), by the module's
    rule."""
    parts, ids, seconds, caps, lacking = [], [], [], [], []
    for source, f in frames:
        missing = [c for c in OPENING_FIELDS if c not in f.columns]
        if missing:
            raise MedaidError(Problem(
                "cannot give opening balances: no " + ", ".join(missing) + " column", source=source))
        relief = pl.col("relief").fill_null(0)
        if "adjustment" in f.columns:
            relief = relief + pl.col("adjustment").fill_null(0)
        absent = tuple(c for c in EXTENDED_OPENING_FIELDS if c not in f.columns)
        if absent:
            lacking.append((source, absent))
        else:
            relief = relief - pl.col("second_relief").fill_null(0)
            seconds.append(f.filter(pl.col("second_pool").is_not_null()).select(
                pl.col("person_id").cast(pl.String), pl.col("benefit_year").cast(pl.Int32),
                pl.col("second_pool").cast(pl.String), pl.col("burden").fill_null(0).cast(pl.Int64).alias("b0"),
                pl.col("second_relief").fill_null(0).cast(pl.Int64).alias("h0")))
            caps.append(_cap_rows(f, source))
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
    second_keys = ["person_id", "benefit_year", "second_pool"]
    cap_keys = ["cap", "person_id", "household_id", "benefit_year"]
    return Opening(
        positions, claims,
        pl.concat(seconds).drop_nulls(second_keys).group_by(second_keys).agg(
            pl.col("b0").sum(), pl.col("h0").sum()) if seconds else None,
        pl.concat(caps).drop_nulls(["cap", "person_id", "benefit_year"]).group_by(cap_keys).agg(
            pl.col("used").sum()) if caps else None,
        tuple(lacking))


#: Columns earlier results must carry to open a batch under an extended rule book.
EXTENDED_OPENING_FIELDS = ("second_relief", "second_pool", "burden", "caps")
_CAP_ENTRY = r"^([^=;]+)=([0-9]+)\.([0-9]{2})$"


def ledger_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """A ledger's results frame (:func:`medaid.ledger.export.load_ledger_results`) as an
    opening's source: with every column of :data:`OPENING_FIELDS` and
    :data:`EXTENDED_OPENING_FIELDS`, those no row of the ledger has added empty (no claim of it
    was counted in a second pool or a cap pool; an empty ledger has no rows at all), so that a
    ledger opens a batch under any rule book (the module's rule)."""
    types = results_dtypes()
    return frame.with_columns(pl.lit(None, types[c]).alias(c) for c in (*OPENING_FIELDS, *EXTENDED_OPENING_FIELDS)
                              if c not in frame.columns)


def _cap_rows(f: pl.DataFrame, source: str) -> pl.DataFrame:
    """The ``caps`` column of results (``NAME=yuan;…``) as rows: ``cap``, ``person_id``,
    ``household_id``, ``benefit_year``, ``used`` (fen); an entry of another shape is refused,
    naming the file and the field."""
    home = pl.col("household_id").cast(pl.String) if "household_id" in f.columns else pl.lit(None, pl.String)
    rows = (f.filter(pl.col("caps").is_not_null())
            .select(pl.col("caps").cast(pl.String).str.split(";").alias("entry"),
                    pl.col("person_id").cast(pl.String), home.alias("household_id"),
                    pl.col("benefit_year").cast(pl.Int32))
            .explode("entry"))
    parts = rows.select(
        pl.col("entry").str.extract(_CAP_ENTRY, 1).alias("cap"),
        "person_id", "household_id", "benefit_year",
        (pl.col("entry").str.extract(_CAP_ENTRY, 2).cast(pl.Int64) * 100
         + pl.col("entry").str.extract(_CAP_ENTRY, 3).cast(pl.Int64)).alias("used"))
    if parts["cap"].null_count():
        raise MedaidError(Problem("cannot give opening balances: a caps value is not NAME=yuan;… "
                                  "(as medaid batch writes it)", source=source, field="caps"))
    return parts


def _lacking(source: str, missing: tuple[str, ...]) -> Problem:
    """Why results ``source`` cannot open a batch under rules with cap pools or a second stage:
    they lack the columns (field ``--opening``; a ledger never does, :func:`ledger_frame`)."""
    return Problem(
        "cannot give opening balances under rules with cap pools or a second stage: no "
        + ", ".join(missing) + " column (results that medaid batch wrote under such rules carry "
        "them, unless --columns left them out)", source=source, field="--opening")


def engine_positions(opening: Opening, book: RuleBook) -> Positions:
    """The engine's :class:`medaid.domain.engine.Positions` of ``opening`` under the extended
    ``book`` (the module's rule): pools, second pools, and cap pools keyed per person or per
    household as ``book`` declares each.  Refuses an opening whose sources lack
    :data:`EXTENDED_OPENING_FIELDS` when ``book`` has cap pools or second stages."""
    versions = book.versions()
    needs = any(rs.caps or any(p.second is not None for p in rs.plans) for rs in versions)
    if opening.lacking and needs:
        raise MedaidError([_lacking(source, missing) for source, missing in opening.lacking])
    pools = {(p, y, pool): PoolState(c, g) for p, y, pool, c, g in
             opening.positions.select(*POSITION_KEYS, "c0", "g0").iter_rows()}
    seconds = {} if opening.seconds is None else {
        (p, y, pool): PoolState(b, h) for p, y, pool, b, h in
        opening.seconds.select("person_id", "benefit_year", "second_pool", "b0", "h0").iter_rows()}
    per = {name: cap.per for rs in reversed(versions) for name, cap in rs.caps.items()}
    caps: dict[tuple[str, str, str, int], int] = {}
    if opening.caps is not None:
        for name, person, home, year, used in opening.caps.iter_rows():
            kind = per.get(name)
            if kind is None:  # a cap pool these rules do not declare binds none of their plans
                continue
            key = (name, kind, (home or person) if kind == "household" else person, year)
            caps[key] = caps.get(key, 0) + used
    return Positions(pools, caps, seconds)


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

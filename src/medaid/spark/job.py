"""Scale-out: the same batch on Apache Spark, identical to the local batch to the fen.

Rules implemented: all of docs/calculation.md, by running the local batch's own columnar
evaluator (:func:`medaid.batch.columnar.settle_frame`) inside Spark, once per bucket of persons.
Accumulation is per (person, benefit year, pool), so every claim of one person must reach the
same call: claims are shuffled by ``pmod(xxhash64(person_id), buckets)`` and each bucket is
settled by ``groupBy(bucket).applyInArrow`` (one call per bucket, not per person, so that the
per-call cost of Python is paid a few hundred times, not millions).  Totals are the one totals
engine's (:mod:`medaid.report.totals`).  README.md *Reliability*: every row read is either
settled or rejected with its file, line and reason, and ``read = settled + rejected`` is checked.

Reading is :mod:`.read`, writing :mod:`.write`, the session and the frames' plumbing
:mod:`.frames`, the command line :mod:`.cli`; their public names are re-exported here, where
they used to be defined.

Requires the ``spark`` extra (``pip install 'medaid[spark]'``): pyspark ≥ 4.0 (for
``applyInArrow``), pandas (pyspark insists on it for Arrow UDFs), pyarrow and polars, on the
driver and on every executor, together with medaid itself.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import time
from collections.abc import Callable, Iterator
from typing import Any

import polars as pl
import pyarrow as pa
from pyspark.sql import Column, DataFrame, functions as F
from pyspark.sql.types import StringType, StructField, StructType

# Rules and totals come from two imports only: the batch package's columnar evaluator
# (settle_frame) and the one totals engine (report.totals, below); nothing here re-derives a rule.
from ..batch import manifest
from ..batch.columnar import settle_frame
from ..batch.opening import Opening
from ..domain.engine import Positions
from ..domain.rules import RuleBook, load_rules
from ..errors import ClaimError, MedaidError, Problem
from ..io.attributes import attribute_titles, declared_attributes
from ..io.columns import EXTENDED_RESULT_FIELDS, REQUIRED_FIELDS, RESULT_FIELDS, chosen_columns
from ..io.validation import REJECT_COLUMNS, tidy_ids
from ..report.totals import AT_CAP_POOL, DIMS, DISTINCT, SUMS, combine, spark_measure, spark_persons_at_cap_pool
from .frames import (
    BUCKET,
    CLAIM_TYPES,
    REJECT_FIELD,
    REJECT_MESSAGE,
    RESULT_TYPES,
    arrow_schema,
    as_arrow,
    spark_session,
    spark_type,
)
from .read import column_names, raw_frame, read_claims
from .summary import Summary, Totals
from .write import layout_columns, out_format, output_frame, rejects_frame, write_atomic

__all__ = [
    "CLAIMS_PER_BUCKET", "CLAIM_TYPES", "MAX_QUOTED", "REJECT_FIELDS", "RESULT_TYPES", "Summary",
    "Totals", "book_payload", "column_names", "output_frame", "read_claims", "run_batch",
    "settle_spark", "spark_session", "summarize", "tidy_claim_ids", "write_atomic",
]

#: Columns of a rejects frame: where the row is, which claim, which field, what is wrong.
REJECT_FIELDS = ("source", *REJECT_COLUMNS)
#: How many claims one bucket should hold at most when :func:`run_batch` chooses the count.
CLAIMS_PER_BUCKET = 500_000
#: The most rejects quoted in the error when ``on_error="fail"``.
MAX_QUOTED = 20
#: The column marking rows already settled in the opening balances (``run_batch`` counts them
#: apart from the rejects).
ALREADY = "_already_settled"
#: The fields a claim needs, with their Spark types, checked before settling.
_REQUIRED = {f: CLAIM_TYPES[f] for f in REQUIRED_FIELDS}

_raw_frame = raw_frame  # the reader's old name here (tests read a Parquet file through it)


# --------------------------------------------------------------------------------------------
# shipping the rule book


def book_payload(rules: RuleBook) -> bytes:
    """The rule book as bytes for the executors: its validated rule sets (with their source
    and content hash, so results name the same rule file) and the chosen scheme."""
    return pickle.dumps((tuple(rules.rule_sets), rules.scheme), protocol=pickle.HIGHEST_PROTOCOL)


_BOOKS: dict[str, RuleBook] = {}


def _book(payload: bytes) -> RuleBook:
    """The rule book of ``payload``, rebuilt once per Python worker."""
    key = hashlib.sha256(payload).hexdigest()
    book = _BOOKS.get(key)
    if book is None:
        rule_sets, scheme = pickle.loads(payload)
        book = _BOOKS[key] = RuleBook(rule_sets, scheme)
    return book


# --------------------------------------------------------------------------------------------
# settling


_POSITIONS: dict[str, pl.DataFrame | Positions] = {}


def _positions(payload: bytes | None) -> pl.DataFrame | Positions | None:
    """The opening positions of ``payload``, read once per Python worker: Arrow IPC bytes of
    the pools' frame, or (an extended rule book) the pickled :class:`medaid.domain.engine.Positions`."""
    if payload is None:
        return None
    key = hashlib.sha256(payload).hexdigest()
    found = _POSITIONS.get(key)
    if found is None:
        found = _POSITIONS[key] = (pickle.loads(payload[len(_PICKLED):]) if payload.startswith(_PICKLED)
                                   else pl.read_ipc(payload))
    return found


#: The prefix of a pickled :class:`Positions` payload (Arrow IPC files start ``ARROW1``).
_PICKLED = b"medaid-positions:"


def _settle_bucket(payload: bytes, names: list[str], schema: pa.Schema,
                   positions: bytes | None = None) -> Callable[[pa.Table], pa.Table]:
    """The function each bucket of persons runs: ``columnar.settle_frame`` on all its claims,
    each group starting at its opening position (``positions``: Arrow IPC bytes of
    :attr:`medaid.batch.opening.Opening.positions`; docs/batch.md, *Opening balances*);
    rows already rejected (``_reject_message`` set) pass through untouched."""

    def settle_bucket(table: pa.Table) -> pa.Table:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.drop(BUCKET)
        bad = frame.filter(pl.col(REJECT_MESSAGE).is_not_null())
        good = frame.filter(pl.col(REJECT_MESSAGE).is_null()).drop(REJECT_FIELD, REJECT_MESSAGE)
        parts = [bad]
        if good.height:
            results, rejects = settle_frame(good, _book(payload), opening=_positions(positions))
            parts.append(results)
            if rejects.height:
                why = rejects.select(
                    "claim_id", pl.col("field").alias(REJECT_FIELD), pl.col("message").alias(REJECT_MESSAGE)
                )
                parts.append(good.join(why, on="claim_id", how="inner"))
        return as_arrow(pl.concat(parts, how="diagonal_relaxed"), names, schema)

    return settle_bucket


def settle_spark(
    claims: DataFrame, rules: RuleBook, *, buckets: int | None = None, opening: Opening | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Settle a Spark DataFrame of claims exactly as the local batch does (docs/calculation.md).

    ``claims`` has ``claim_id``, ``person_id`` (string), ``date`` (date), ``self_pay`` (bigint
    fen), optionally ``group``, ``kind`` (string), ``row`` (bigint; line numbers, added when
    absent) and ``source``; other columns pass through.  Rows missing a required value or
    with a negative self-pay, and every repeat of a claim id after its first (by ``source``,
    ``row``), are rejected; the rest are shuffled into ``buckets`` buckets of persons (default:
    the shuffle partitions) and each bucket is settled by
    :func:`medaid.batch.columnar.settle_frame`.

    Claim and person ids are tidied first (:func:`medaid.domain.claims.tidy_id`, as the local batch
    does), before claims are shuffled by person: one person keyed two ways is one person.

    ``opening`` (:func:`medaid.batch.opening.opening_from`: earlier results or a ledger; docs/batch.md,
    *Opening balances*): each (person, benefit year, pool) starts at its position there, as in
    the local batch; a claim id it holds is not settled again (its row is among the rejects with
    ``already settled in <source>``; :func:`run_batch` counts such rows apart).

    Returns ``(results, rejects)``: results are the input columns plus ``RESULT_FIELDS``,
    rejects have ``REJECT_FIELDS``.  Both are filters of one persisted computation (one
    shuffle, one pass of the settlement); ``results.unpersist()`` releases it.
    """
    return _split(_settled(tidy_claim_ids(claims), rules, buckets, opening))


def _split(settled: DataFrame) -> tuple[DataFrame, DataFrame]:
    """``(results, rejects)`` of a settled frame (:func:`_settled`); rows already settled in
    the opening are among the rejects."""
    results = settled.filter(F.col(REJECT_MESSAGE).isNull()).drop(REJECT_FIELD, REJECT_MESSAGE, ALREADY)
    rejects = settled.filter(F.col(REJECT_MESSAGE).isNotNull()).select(
        F.col("source"), F.col("row"), F.col("claim_id"), F.col(REJECT_FIELD).alias("field"),
        F.col(REJECT_MESSAGE).alias("message"))
    return results, rejects


def tidy_claim_ids(claims: DataFrame) -> DataFrame:
    """``claims`` with ``claim_id`` and ``person_id`` tidied by :func:`medaid.domain.claims.tidy_id`
    (empty afterwards: null, which the settlement rejects as empty), on the executors, by
    :func:`medaid.io.validation.tidy_ids` (only the values that need it take the Python path).
    Frames from :func:`read_claims` are tidy already (the readers' validation tidies them)."""
    ids = [c for c in ("claim_id", "person_id") if c in claims.columns]
    if not ids:
        return claims
    schema = arrow_schema(claims.schema)

    def tidy(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            frame = frame.with_columns(tidy_ids(frame[c]) for c in ids).with_columns(
                pl.when(pl.col(c).str.len_bytes() > 0).then(pl.col(c)).alias(c) for c in ids)
            yield from frame.to_arrow().cast(schema).to_batches()

    return claims.mapInArrow(tidy, claims.schema)


def _settled(claims: DataFrame, rules: RuleBook, buckets: int | None, opening: Opening | None = None) -> DataFrame:
    """Results and rejects in one persisted frame: the input columns, ``RESULT_FIELDS`` and
    ``_reject_field``/``_reject_message`` (null for settled rows).  Input rows that already
    carry a reject message (from reading) pass through.  With ``opening``, rows whose claim id
    it holds carry ``already settled in <source>`` and :data:`ALREADY` true; the others start
    from its positions."""
    if rules.scheme is None:
        rules.versions()  # raises: several schemes, none chosen
    types = dict(claims.dtypes)
    for name, want in _REQUIRED.items():
        if name not in types:
            raise MedaidError(Problem("column is missing", source="claims", field=name))
        if types[name] != want:
            raise MedaidError(Problem(f"must be {want} (got {types[name]}); amounts are fen as bigint",
                                      source="claims", field=name))
    spark = claims.sparkSession
    df = claims.drop(*[c for c in (*RESULT_FIELDS, *EXTENDED_RESULT_FIELDS) if c in types])
    if "row" not in types:
        df = df.withColumn("row", F.monotonically_increasing_id() + F.lit(1))
    if "source" not in types:
        df = df.withColumn("source", F.lit(None).cast("string"))
    if REJECT_MESSAGE not in types:
        df = df.withColumn(REJECT_FIELD, F.lit(None).cast("string")).withColumn(
            REJECT_MESSAGE, F.lit(None).cast("string"))
    df = _repeats_rejected(_empty_rejected(df))
    positions = None
    if opening is not None:
        df = _already_settled(df, opening)
        if rules.extended:
            positions = _PICKLED + pickle.dumps(opening.for_book(rules), protocol=pickle.HIGHEST_PROTOCOL)
        else:
            sink = io.BytesIO()
            opening.positions.write_ipc(sink)
            positions = sink.getvalue()

    n = buckets or int(spark.conf.get("spark.sql.shuffle.partitions") or "200")
    df = df.withColumn(BUCKET, F.pmod(F.xxhash64(_bucket_key(df, rules)), F.lit(n)))
    in_fields = [f for f in df.schema.fields if f.name not in (BUCKET, REJECT_FIELD, REJECT_MESSAGE)]
    added = (*RESULT_FIELDS, *EXTENDED_RESULT_FIELDS) if rules.extended else RESULT_FIELDS
    out_fields = in_fields + [StructField(c, spark_type(RESULT_TYPES[c]), True) for c in added] + [
        StructField(REJECT_FIELD, StringType(), True), StructField(REJECT_MESSAGE, StringType(), True)]
    out_schema = StructType(out_fields)
    names = [f.name for f in out_fields]
    fn = _settle_bucket(book_payload(rules), names, arrow_schema(out_schema), positions)
    return df.groupBy(BUCKET).applyInArrow(fn, out_schema).persist()


def household_caps(rules: RuleBook) -> bool:
    """Whether any version of the book declares a cap pool counted per household."""
    return any(cap.per == "household" for rs in rules.versions() for cap in rs.caps.values())


def _bucket_key(df: DataFrame, rules: RuleBook) -> Column:
    """What claims are bucketed by: the person (accumulation is per person), or, when the book
    has a cap pool per household, the household (docs/spark.md, *Extended rule sets*): every
    claim of a person goes with the smallest household id among the person's claims (the
    person's id when none has one), so that a household's members, each with all their claims,
    meet in one bucket.  A person found in two households in one run would tie the households
    together: then every claim goes to one bucket (always right, not parallel), and the job
    says so in its log."""
    if not household_caps(rules) or "household_id" not in df.columns:
        return F.col("person_id")
    from pyspark.sql import Window

    several = (df.filter(F.col("household_id").isNotNull()).groupBy("person_id")
               .agg(F.countDistinct("household_id").alias("n")).filter(F.col("n") > 1).limit(1).count())
    if several:
        return F.lit("all")
    home = F.min("household_id").over(Window.partitionBy("person_id"))
    return F.coalesce(home, F.col("person_id"))


def _already_settled(df: DataFrame, opening: Opening) -> DataFrame:
    """Rows not rejected yet whose claim id ``opening`` holds get ``already settled in <source>``
    (field ``claim_id``) and :data:`ALREADY` true (docs/batch.md, *Opening balances*: reported,
    not settled twice); the others :data:`ALREADY` false."""
    held = df.sparkSession.createDataFrame(opening.claims.to_arrow()).select(
        F.col("claim_id"), F.col("source").alias("_opening_source"))
    df = df.join(F.broadcast(held), on="claim_id", how="left")
    hit = F.col(REJECT_MESSAGE).isNull() & F.col("_opening_source").isNotNull()
    return df.select(
        *[c for c in df.columns if c not in (REJECT_FIELD, REJECT_MESSAGE, "_opening_source")],
        hit.alias(ALREADY),
        F.when(hit, F.lit("claim_id")).otherwise(F.col(REJECT_FIELD)).alias(REJECT_FIELD),
        F.when(hit, F.concat(F.lit("already settled in "), F.col("_opening_source")))
        .otherwise(F.col(REJECT_MESSAGE)).alias(REJECT_MESSAGE))


def _empty_rejected(df: DataFrame) -> DataFrame:
    """Rows missing a required value (``is empty``) or with a negative self-pay (``must not be
    negative``) get their reject reason, as the readers' validation words them; rows already
    rejected keep theirs."""
    missing: Column = F.when(F.col(REJECT_MESSAGE).isNotNull(), F.col(REJECT_FIELD))
    empty: Column = F.lit(False)
    for name in _REQUIRED:
        missing = missing.when(F.col(name).isNull(), F.lit(name))
        empty = empty | F.col(name).isNull()
    missing = missing.when(F.col("self_pay") < 0, F.lit("self_pay"))
    message = (F.when(F.col(REJECT_MESSAGE).isNotNull(), F.col(REJECT_MESSAGE)).when(empty, F.lit("is empty"))
               .when(F.col("self_pay") < 0, F.lit("must not be negative")))
    return df.select(*[c for c in df.columns if c not in (REJECT_FIELD, REJECT_MESSAGE)], missing.alias(REJECT_FIELD),
                     message.alias(REJECT_MESSAGE))


def _repeats_rejected(df: DataFrame) -> DataFrame:
    """Every occurrence of a claim id after its first (by source, then line) is rejected,
    naming the first: ``duplicate claim id (first on line N)`` within a file, as the readers'
    validation words it, ``(first in FILE, line N)`` across files.  The claim ids seen more
    than once are counted by a hash aggregation, then the place of their first occurrence
    found among their few rows (the joins become broadcasts, or vanish, once adaptive
    execution has seen how few they are)."""
    place = F.struct(F.coalesce(F.col("source"), F.lit("")).alias("s"), F.col("row").alias("r"))
    live = df.filter(F.col(REJECT_MESSAGE).isNull())
    repeated = live.groupBy("claim_id").count().filter(F.col("count") > 1).select("claim_id")
    firsts = live.join(repeated, on="claim_id", how="left_semi").groupBy("claim_id").agg(
        F.min(place).alias("_first"))
    df = df.join(firsts, on="claim_id", how="left")
    line = F.col("_first.r").cast("string")
    first_at = F.when(F.col("_first.s") == F.coalesce(F.col("source"), F.lit("")), F.concat(F.lit("on line "), line)) \
        .otherwise(F.concat(F.lit("in "), F.col("_first.s"), F.lit(", line "), line))
    dup = F.col(REJECT_MESSAGE).isNull() & F.col("_first").isNotNull() & (place != F.col("_first"))
    return df.select(
        *[c for c in df.columns if c not in (REJECT_FIELD, REJECT_MESSAGE, "_first")],
        F.when(dup, F.lit("claim_id")).otherwise(F.col(REJECT_FIELD)).alias(REJECT_FIELD),
        F.when(dup, F.concat(F.lit("duplicate claim id (first "), first_at, F.lit(")")))
        .otherwise(F.col(REJECT_MESSAGE)).alias(REJECT_MESSAGE),
    )


# --------------------------------------------------------------------------------------------
# totals


def summarize(results: DataFrame) -> tuple[Totals, tuple[Totals, ...], tuple[Totals, ...], tuple[Totals, ...]]:
    """Totals of a results frame computed in Spark: overall, by plan, by month of the claim date,
    by hospital, through the one totals engine (:mod:`medaid.report.totals`).  Spark collects the
    partial sums of each (plan, month, hospital) cell and the exact distinct persons of each
    plan, month and hospital (the engine's measures, :func:`~medaid.report.totals.spark_measure`);
    :func:`~medaid.report.totals.combine` adds the cells up exactly (integers of fen)."""
    hosp = F.col("hospital") if "hospital" in results.columns else F.lit(None).cast("string")
    keys = {"plan": F.col("plan"), "month": F.date_format("date", "yyyy-MM"), "hospital": hosp}
    sums = [n for n, _, _ in SUMS]
    cells = [({d: r[d] for d in DIMS}, [r[n] for n in sums]) for r in
             results.groupBy(*(k.alias(d) for d, k in keys.items())).agg(*map(spark_measure, sums)).collect()]
    dims = F.array(
        F.struct(F.lit("total").alias("dim"), F.lit(None).cast("string").alias("key")),
        *(F.struct(F.lit(d).alias("dim"), k.alias("key")) for d, k in keys.items()),
    )
    long = results.select("person_id", "capped_by", F.explode(dims).alias("d"))
    distinct = [n for n, _ in DISTINCT]
    # results of the rules real schemes need: the persons a cap pool stopped (the overall line)
    pooled = "second_relief" in results.columns
    persons: dict[str, Any] = {d: {} for d in DIMS}
    at_pool = 0 if pooled else None  # (no rows: no total row)
    aggs = [*map(spark_measure, distinct), *([spark_persons_at_cap_pool()] if pooled else [])]
    for r in long.groupBy("d.dim", "d.key").agg(*aggs).collect():
        counts = tuple(int(r[n]) for n in distinct)
        if r["dim"] == "total":
            persons["total"] = counts
            at_pool = int(r[AT_CAP_POOL]) if pooled else None
        else:
            persons[r["dim"]][r["key"]] = counts
    s = combine(cells, persons)

    def totals(key: str | None, t: dict[str, Any], at_pool: int | None = None) -> Totals:
        return Totals(key, t["claims"], t["persons"], t["self_pay"], t["relief"], t["patient_pays"],
                      t["claims_capped"], t["persons_at_annual_cap"], at_pool)

    by_plan, by_month, by_hospital = (tuple(totals(r[d], r) for r in s[f"by_{d}"]) for d in DIMS)
    return totals(None, s["total"], at_pool), by_plan, by_month, by_hospital


# --------------------------------------------------------------------------------------------
# the batch


def run_batch(
    input_path: str,
    output_path: str,
    rules_path: str,
    *,
    master: str | None = "local[2]",
    rejects_path: str | None = None,
    on_error: str = "fail",
    scheme: str | None = None,
    input_format: str | None = None,
    output_format: str | None = None,
    buckets: int | None = None,
    max_errors: int = MAX_QUOTED,
    lang: str = "en",
    opening: Opening | None = None,
    columns: str | list[str] | None = None,
    full_rule_hash: bool = False,
) -> Summary:
    """Settle a file or folder of CSV or Parquet claims on Spark and write the results
    (docs/calculation.md on every claim, README.md#reliability reconciliation).

    Every row is validated; rows that cannot be settled are rejects with file, line, field and
    reason.  ``on_error="fail"`` refuses the batch when any row is rejected (nothing is
    written; the first ``max_errors`` rejects are quoted in the :class:`ClaimError`);
    ``"skip"`` settles the rest and writes the rejects to ``rejects_path`` if given.  Output is
    a folder of CSV (path ending ``.csv``; Chinese headers with ``lang="zh"``) or Parquet
    files, written whole or not at all.  ``master=None`` uses the session that
    ``spark-submit`` configures.

    ``opening`` (docs/batch.md, *Opening balances*): the positions the batch continues, as the
    local batch's ``--opening`` / ``--ledger``; rows whose claim id it holds are counted apart
    (``already_settled``), not rejected: they do not fail the batch, and are listed in the
    rejects file with their reason.
    ``columns`` (``--columns``: ``"claim_id,relief"`` or a list) chooses the results' columns,
    checked before anything is settled (an unknown name raises :class:`MedaidError` listing the
    allowed ones); ``rule_hash`` holds the rule file's first 12 hex digits unless
    ``full_rule_hash``.  ``OUTPUT.manifest.json`` is written beside a local output folder
    (:mod:`medaid.batch.manifest`; docs/batch.md, *Run manifest*).
    """
    if on_error not in ("fail", "skip"):
        raise ValueError("on_error is 'fail' or 'skip'")
    started = time.perf_counter()
    started_at = manifest.now()
    book = load_rules(rules_path, scheme)
    spark = spark_session(master)
    parsed, layout = read_claims(spark, input_path, input_format, declared_attributes(book))
    chosen = None
    if columns is not None:
        try:
            chosen = chosen_columns(columns, layout_columns(parsed, layout, book.extended))
        except ValueError as e:
            raise MedaidError(Problem(str(e), field="--columns")) from None
    parsed = parsed.persist()
    settled = None
    try:
        unreadable = parsed.filter(F.col("field") == "file").select("source", "message").collect()
        if unreadable:
            raise MedaidError([Problem(r["message"], source=r["source"]) for r in unreadable])
        rows_read = parsed.count()
        if buckets is None:
            shuffle = int(spark.conf.get("spark.sql.shuffle.partitions") or "200")
            buckets = max(shuffle, -(-rows_read // CLAIMS_PER_BUCKET))
        settled = _settled(parsed.withColumnRenamed("field", REJECT_FIELD).withColumnRenamed("message", REJECT_MESSAGE),
                           book, buckets, opening)
        results, rejects = _split(settled)
        twice = F.col(ALREADY) if opening is not None else F.lit(False)
        counts: dict[tuple[bool, bool], int] = {
            (r["ok"], r["twice"]): r["count"] for r in settled.groupBy(
                F.col(REJECT_MESSAGE).isNull().alias("ok"), twice.alias("twice")).count().collect()}
        parsed.unpersist()
        n_settled, already = counts.get((True, False), 0), counts.get((False, True), 0)
        rejected = counts.get((False, False), 0)
        if n_settled + already + rejected != rows_read:
            raise MedaidError(Problem(
                f"rows do not reconcile: read {rows_read}, settled {n_settled}, already settled {already}, "
                f"rejected {rejected}", source=input_path))
        in_order = rejects.orderBy(F.col("source").asc_nulls_first(), "row")
        bad = _split(settled.filter(~twice))[1].orderBy(F.col("source").asc_nulls_first(), "row")
        sample = [
            Problem(r["message"] + ("" if r["claim_id"] is None else f" (claim {r['claim_id']})"),
                    source=r["source"], line=r["row"], field=r["field"])
            for r in (bad.limit(max_errors).collect() if rejected else [])
        ]
        if rejected and on_error == "fail":
            more = rejected - len(sample)
            if more:
                sample.append(Problem(f"... and {more} more rejected rows", source=input_path))
            raise ClaimError(sample)
        out_fmt = out_format(output_path, output_format)
        written = chosen or layout_columns(results, layout, book.extended)
        write_atomic(output_frame(results, out_fmt, layout, lang, chosen, full_rule_hash,
                                  attribute_titles(book)), output_path, out_fmt)
        if rejects_path:
            rej_fmt = out_format(rejects_path, None)
            write_atomic(rejects_frame(in_order, rej_fmt).coalesce(1), rejects_path, rej_fmt)
        total, by_plan, by_month, by_hospital = summarize(results)
        _manifest(output_path, started_at, input_path, book, rows_read, n_settled, rejected, total, {
            "engine": "spark", "on_error": on_error, "columns": chosen,
            "full_rule_hash": full_rule_hash, "lang": lang}, {
            "results": output_path, "format": out_fmt, "columns": written,
            "rule_hash": "sha256" if full_rule_hash else "sha256, first 12 hex digits",
            "rejects": rejects_path})
        return Summary(
            rows_read=rows_read, settled=n_settled, rejected=rejected, total=total, by_plan=by_plan,
            by_month=by_month, by_hospital=by_hospital, output=output_path,
            rejects_output=rejects_path, seconds=round(time.perf_counter() - started, 3),
            rejects_sample=tuple(str(p) for p in sample), already_settled=None if opening is None else already,
        )
    finally:
        parsed.unpersist()
        if settled is not None:
            settled.unpersist()


def _manifest(output_path: str, started: str, input_path: str, book: RuleBook, rows_read: int,
              settled: int, rejected: int, total: Totals, options: dict[str, Any],
              outputs: dict[str, Any]) -> None:
    """Write ``OUTPUT.manifest.json`` beside a local output folder (docs/batch.md, *Run
    manifest*); an output on another file system (``hdfs://``, ``s3a://``) gets none."""
    if "://" in output_path and not output_path.startswith("file://"):
        return
    inputs = manifest.input_entries(input_path)
    for entry in inputs:  # rows are counted for the whole input, not per file
        entry["rows_read"] = rows_read if len(inputs) == 1 else None
    line = f"rows read {rows_read} = settled {settled} + rejected {rejected}"
    manifest.write_manifest(output_path.removeprefix("file://"), manifest.build_manifest(
        started=started, inputs=inputs, rules=manifest.rule_entries(book), options=options,
        outputs=outputs,
        reconciliation={"rows_read": rows_read, "settled": settled, "rejected": rejected, "line": line},
        totals={k: getattr(total, k) for k in manifest.TOTAL_KEYS if getattr(total, k) is not None}))


def __getattr__(name: str) -> Any:
    """``medaid.spark.job.main``: the command line (:func:`medaid.spark.cli.main`), re-exported
    on first use, as the command line imports this module."""
    if name == "main":
        from .cli import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Scale-out: the same batch on Apache Spark, identical to the local batch to the fen.

Rules implemented: all of docs/calculation.md, by running the local batch's own columnar code
(:func:`medaid.batch.columnar.settle_frame`) inside Spark, once per bucket of persons.  Accumulation
is per (person, benefit year, pool), so every claim of one person must reach the same call:
claims are shuffled by ``pmod(xxhash64(person_id), buckets)`` and each bucket is settled by
``groupBy(bucket).applyInArrow`` (one call per bucket, not per person, so that the per-call cost
of Python is paid a few hundred times, not millions).  README.md *Reliability*: every row read is either
settled or rejected with its file, line and reason, and ``read = settled + rejected`` is checked.

Money stays integers of fen from the reader to the writer (Arrow int64, Spark ``bigint``);
files get ``decimal(18,2)`` yuan (Parquet) or yuan text with two decimals (CSV), converted by
exact decimal arithmetic in Spark, never through a float.

Requires the ``spark`` extra (``pip install 'medaid[spark]'``): pyspark ≥ 4.0 (for
``applyInArrow``), pandas (pyspark insists on it for Arrow UDFs), pyarrow and polars, on the
driver and on every executor, together with medaid itself.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import ClaimError, MedaidError, Problem
from ..io.columns import (
    CLAIM_FIELDS,
    CLAIM_MONEY_FIELDS,
    RESULT_FIELDS,
    alias_field,
)
from ..io.validation import REJECT_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.lib
    from pyspark.sql import DataFrame, SparkSession

    from ..domain.rules import RuleBook

#: Spark types of the columns :func:`medaid.batch.columnar.settle_frame` adds (``RESULT_FIELDS``).
RESULT_TYPES: dict[str, str] = {
    "plan": "string", "pool": "string", "benefit_year": "int", "relief": "bigint",
    "patient_pays": "bigint", "bracket_relief": "bigint", "capped_by": "string",
    "bracket": "tinyint", "ytd_self_pay": "bigint", "ytd_relief": "bigint",
    "rule_set_id": "string", "rule_version": "string", "rule_hash": "string",
}
#: Spark types of the claim columns after reading and validation (money in fen).
CLAIM_TYPES: dict[str, str] = {
    "claim_id": "string", "person_id": "string", "date": "date", "self_pay": "bigint",
    "group": "string", "kind": "string", "hospital": "string", "total_cost": "bigint",
}
#: Columns of a rejects frame: where the row is, which claim, which field, what is wrong.
REJECT_FIELDS = ("source", *REJECT_COLUMNS)
#: How many claims one bucket should hold at most when :func:`run_batch` chooses the count.
CLAIMS_PER_BUCKET = 500_000
#: The most rejects quoted in the error when ``on_error="fail"``.
MAX_QUOTED = 20

_FIELD, _MESSAGE, _BUCKET = "_reject_field", "_reject_message", "_bucket"


# --------------------------------------------------------------------------------------------
# session


def spark_session(master: str | None = "local[2]", app_name: str = "medaid", **conf: str) -> "SparkSession":
    """A Spark session for medaid (the active one if there is one).

    ``master=None`` leaves the master to ``spark-submit``.  For a local master the Python
    workers run this interpreter, shuffles use few partitions and logs are quiet; ``conf``
    entries (``spark.sql.shuffle.partitions="8"``) override the defaults.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    b = SparkSession.builder.appName(app_name)
    settings: dict[str, str] = {}
    if master is not None:
        b = b.master(master)
        if master.startswith("local"):
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
            cores = master[len("local["):-1] if master.startswith("local[") else "1"
            n = int(cores) if cores.isdigit() else (os.cpu_count() or 2)
            settings = {
                "spark.sql.shuffle.partitions": str(max(2, 2 * n)),
                "spark.ui.enabled": "false",
                "spark.ui.showConsoleProgress": "false",
            }
    settings.update(conf)
    for k, v in settings.items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# --------------------------------------------------------------------------------------------
# shipping the rule book


def book_payload(rules: "RuleBook") -> bytes:
    """The rule book as bytes for the executors: its validated rule sets (with their source
    and content hash, so results name the same rule file) and the chosen scheme."""
    return pickle.dumps((tuple(rules.rule_sets), rules.scheme), protocol=pickle.HIGHEST_PROTOCOL)


_BOOKS: dict[str, "RuleBook"] = {}


def _book(payload: bytes) -> "RuleBook":
    """The rule book of ``payload``, rebuilt once per Python worker."""
    key = hashlib.sha256(payload).hexdigest()
    book = _BOOKS.get(key)
    if book is None:
        from ..domain.rules import RuleBook

        rule_sets, scheme = pickle.loads(payload)
        book = _BOOKS[key] = RuleBook(rule_sets, scheme)
    return book


# --------------------------------------------------------------------------------------------
# settling


def _arrow_schema(schema: Any) -> "pa.Schema":
    import pyarrow as pa

    kinds = {
        "string": pa.string(), "bigint": pa.int64(), "int": pa.int32(), "tinyint": pa.int8(),
        "date": pa.date32(), "boolean": pa.bool_(), "double": pa.float64(),
    }
    fields = []
    for f in schema.fields:
        t = f.dataType.simpleString()
        if t.startswith("decimal("):
            p, s = t[len("decimal("):-1].split(",")
            at = pa.decimal128(int(p), int(s))
        elif t in kinds:
            at = kinds[t]
        else:
            raise MedaidError(Problem(f"column type {t} cannot pass through the settlement", field=f.name))
        fields.append(pa.field(f.name, at, nullable=True))
    return pa.schema(fields)


def _settle_bucket(payload: bytes, names: Sequence[str], schema: "pa.Schema"):  # type: ignore[no-untyped-def]
    """The function each bucket of persons runs: ``columnar.settle_frame`` on all its claims;
    rows already rejected (``_reject_message`` set) pass through untouched."""

    def settle_bucket(table: "pa.Table") -> "pa.Table":
        import polars as pl

        from ..batch.columnar import settle_frame

        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.drop(_BUCKET)
        bad = frame.filter(pl.col(_MESSAGE).is_not_null())
        good = frame.filter(pl.col(_MESSAGE).is_null()).drop(_FIELD, _MESSAGE)
        parts = [bad]
        if good.height:
            results, rejects = settle_frame(good, _book(payload))
            parts.append(results)
            if rejects.height:
                why = rejects.select(
                    "claim_id", pl.col("field").alias(_FIELD), pl.col("message").alias(_MESSAGE)
                )
                parts.append(good.join(why, on="claim_id", how="inner"))
        out = pl.concat(parts, how="diagonal_relaxed")
        for c in names:
            if c not in out.columns:
                out = out.with_columns(pl.lit(None).alias(c))
        return out.select(names).to_arrow().cast(schema)

    return settle_bucket


def settle_spark(
    claims: "DataFrame", rules: "RuleBook", *, buckets: int | None = None
) -> tuple["DataFrame", "DataFrame"]:
    """Settle a Spark DataFrame of claims exactly as the local batch does (docs/calculation.md).

    ``claims`` has ``claim_id``, ``person_id`` (string), ``date`` (date), ``self_pay`` (bigint
    fen), optionally ``group``, ``kind`` (string), ``row`` (bigint; line numbers, added when
    absent) and ``source``; other columns pass through.  Rows missing a required value or
    with a negative self-pay, and every repeat of a claim id after its first (by ``source``, ``row``), are rejected; the rest
    are shuffled into ``buckets`` buckets of persons (default: the shuffle partitions) and each
    bucket is settled by :func:`medaid.batch.columnar.settle_frame`.

    Claim and person ids are tidied first (:func:`medaid.domain.claims.tidy_id`, as the local batch
    does), before claims are shuffled by person: one person keyed two ways is one person.

    Returns ``(results, rejects)``: results are the input columns plus ``RESULT_FIELDS``,
    rejects have ``REJECT_FIELDS``.  Both are filters of one persisted computation (one
    shuffle, one pass of the settlement); ``results.unpersist()`` releases it.
    """
    from pyspark.sql import functions as F

    settled = _settled(tidy_claim_ids(claims), rules, buckets)
    results = settled.filter(F.col(_MESSAGE).isNull()).drop(_FIELD, _MESSAGE)
    rejects = settled.filter(F.col(_MESSAGE).isNotNull()).select(*_reject_cols())
    return results, rejects


def tidy_claim_ids(claims: "DataFrame") -> "DataFrame":
    """``claims`` with ``claim_id`` and ``person_id`` tidied by :func:`medaid.domain.claims.tidy_id`
    (empty afterwards: null, which the settlement rejects as empty), on the executors, by
    :func:`medaid.io.validation.tidy_ids` (only the values that need it take the Python path).
    Frames from :func:`read_claims` are tidy already (the readers' validation tidies them)."""
    ids = [c for c in ("claim_id", "person_id") if c in claims.columns]
    if not ids:
        return claims
    schema = _arrow_schema(claims.schema)

    def tidy(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        import polars as pl

        from ..io.validation import tidy_ids

        for batch in batches:
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            frame = frame.with_columns(tidy_ids(frame[c]) for c in ids).with_columns(
                pl.when(pl.col(c).str.len_bytes() > 0).then(pl.col(c)).alias(c) for c in ids)
            yield from frame.to_arrow().cast(schema).to_batches()

    return claims.mapInArrow(tidy, claims.schema)


def _settled(claims: "DataFrame", rules: "RuleBook", buckets: int | None) -> "DataFrame":
    """Results and rejects in one persisted frame: the input columns, ``RESULT_FIELDS`` and
    ``_reject_field``/``_reject_message`` (null for settled rows).  Input rows that already
    carry a reject message (from reading) pass through."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    if rules.scheme is None:
        rules.versions()  # raises: several schemes, none chosen
    types = dict(claims.dtypes)
    for name, want in (("claim_id", "string"), ("person_id", "string"), ("date", "date"), ("self_pay", "bigint")):
        if name not in types:
            raise MedaidError(Problem("column is missing", source="claims", field=name))
        if types[name] != want:
            raise MedaidError(Problem(f"must be {want} (got {types[name]}); amounts are fen as bigint",
                                      source="claims", field=name))
    spark = claims.sparkSession
    df = claims.drop(*[c for c in RESULT_FIELDS if c in types])
    if "row" not in types:
        df = df.withColumn("row", F.monotonically_increasing_id() + F.lit(1))
    if "source" not in types:
        df = df.withColumn("source", F.lit(None).cast("string"))
    if _MESSAGE not in types:
        df = df.withColumn(_FIELD, F.lit(None).cast("string")).withColumn(_MESSAGE, F.lit(None).cast("string"))

    # required values, then repeats of a claim id: rejected in Spark before the settlement
    missing = F.when(F.col(_MESSAGE).isNotNull(), F.col(_FIELD))
    for name in ("claim_id", "person_id", "date", "self_pay"):
        missing = missing.when(F.col(name).isNull(), F.lit(name))
    empty = F.lit(False)
    for name in ("claim_id", "person_id", "date", "self_pay"):
        empty = empty | F.col(name).isNull()
    missing = missing.when(F.col("self_pay") < 0, F.lit("self_pay"))
    message = (F.when(F.col(_MESSAGE).isNotNull(), F.col(_MESSAGE)).when(empty, F.lit("is empty"))
               .when(F.col("self_pay") < 0, F.lit("must not be negative")))
    df = df.select(*[c for c in df.columns if c not in (_FIELD, _MESSAGE)], missing.alias(_FIELD),
                   message.alias(_MESSAGE))
    # repeats: the claim ids seen more than once, counted by a hash aggregation, then the place
    # of their first occurrence among their few rows (the joins become broadcasts, or vanish,
    # once adaptive execution has seen how few they are)
    place = F.struct(F.coalesce(F.col("source"), F.lit("")).alias("s"), F.col("row").alias("r"))
    live = df.filter(F.col(_MESSAGE).isNull())
    repeated = live.groupBy("claim_id").count().filter(F.col("count") > 1).select("claim_id")
    firsts = live.join(repeated, on="claim_id", how="left_semi").groupBy("claim_id").agg(
        F.min(place).alias("_first"))
    df = df.join(firsts, on="claim_id", how="left")
    line = F.col("_first.r").cast("string")
    first_at = F.when(F.col("_first.s") == F.coalesce(F.col("source"), F.lit("")), F.concat(F.lit("on line "), line)) \
        .otherwise(F.concat(F.lit("in "), F.col("_first.s"), F.lit(", line "), line))
    dup = F.col(_MESSAGE).isNull() & F.col("_first").isNotNull() & (place != F.col("_first"))
    df = df.select(
        *[c for c in df.columns if c not in (_FIELD, _MESSAGE, "_first")],
        F.when(dup, F.lit("claim_id")).otherwise(F.col(_FIELD)).alias(_FIELD),
        F.when(dup, F.concat(F.lit("duplicate claim id (first "), first_at, F.lit(")")))
        .otherwise(F.col(_MESSAGE)).alias(_MESSAGE),
    )

    n = buckets or int(spark.conf.get("spark.sql.shuffle.partitions") or "200")
    df = df.withColumn(_BUCKET, F.pmod(F.xxhash64("person_id"), F.lit(n)))
    in_fields = [f for f in df.schema.fields if f.name not in (_BUCKET, _FIELD, _MESSAGE)]
    out_fields = in_fields + [StructField(c, _spark_type(RESULT_TYPES[c]), True) for c in RESULT_FIELDS] + [
        StructField(_FIELD, StringType(), True), StructField(_MESSAGE, StringType(), True)]
    out_schema = StructType(out_fields)
    names = [f.name for f in out_fields]
    fn = _settle_bucket(book_payload(rules), names, _arrow_schema(out_schema))
    return df.groupBy(_BUCKET).applyInArrow(fn, out_schema).persist()


def _reject_cols() -> list[Any]:
    from pyspark.sql import functions as F

    return [F.col("source"), F.col("row"), F.col("claim_id"), F.col(_FIELD).alias("field"),
            F.col(_MESSAGE).alias("message")]


def _spark_type(ddl: str) -> Any:
    from pyspark.sql import types as T

    return {"string": T.StringType(), "bigint": T.LongType(), "int": T.IntegerType(),
            "tinyint": T.ByteType(), "date": T.DateType()}[ddl]


# --------------------------------------------------------------------------------------------
# reading


_RESERVED = frozenset(RESULT_FIELDS) | {"row", "source", "field", "message"}


def column_names(headers: Sequence[str]) -> list[str]:
    """A file's headers as the batch names them: a field's aliases
    (:func:`medaid.io.columns.alias_field`, the local readers' matching) become the field name;
    any other column keeps its header (``_input`` appended when it is named like a result column,
    a number appended when repeated), so that it passes through as text.  A second column naming
    a field is refused before (:func:`_layout`)."""
    names: list[str] = []
    for h in headers:
        field = alias_field(h)
        if field is not None and field not in names:
            names.append(field)
            continue
        name = str(h).strip() or f"column_{len(names) + 1}"
        if name in _RESERVED or name in CLAIM_TYPES:
            name = f"{name}_input"
        base, k = name, 1
        while name in names:
            k += 1
            name = f"{base}_{k}"
        names.append(name)
    return names


def _names(cells: Sequence[str], line: int = 1) -> list[str]:
    """:func:`column_names` as the local reader's header search calls it."""
    del line
    return column_names(cells)


def _raw_frame(content: bytes, fmt: str, source: str = "") -> tuple[Any, Any]:
    """One file as text columns named by :func:`column_names`, plus ``row``: the line number
    for CSV, the record number from 1 for Parquet; and, as a rejects frame, the rows that are
    not in the frame.  A CSV file is read by the local batch's whole-file reader
    (:func:`medaid.io.readers.read_csv_data`): the header found below title lines, lines ended by
    CR alone read as lines, blank lines not rows, every other line a row or a located problem
    (a stray quote, a row longer or shorter than the header).  Parquet IDs held as numbers that
    cannot be exact are rejected (:func:`medaid.io.readers.numeric_id_problems`)."""
    import polars as pl

    from ..io.encodings import SNIFF_BYTES, as_utf8, detect_encoding
    from ..io.readers import (
        numeric_id_problems,
        problems_frame,
        read_csv_data,
        text_columns,
    )

    if fmt == "csv":
        if detect_encoding(content[:SNIFF_BYTES]) != "utf-8":
            content = as_utf8(content)
        got = read_csv_data(content, source, _names)
        return got.frame, problems_frame(got.problems)
    typed = pl.read_parquet(io.BytesIO(content))
    names = column_names(typed.columns)
    bad = numeric_id_problems(typed, names, first=1)
    frame = text_columns(typed)
    frame.columns = names
    frame = frame.with_row_index("row", offset=1).with_columns(pl.col("row").cast(pl.Int64))
    if bad.height:
        frame = frame.filter(~pl.col("row").is_in(bad["row"].implode()))
    text = [c for c in frame.columns if c != "row"]
    if text:
        frame = frame.filter(~pl.all_horizontal(pl.col(text).is_null()))
    return frame, bad


def _read_file_fn(fmt: str, names: Sequence[str], schema: "pa.Schema"):  # type: ignore[no-untyped-def]
    """The function each partition of files runs: read each file, validate its rows."""

    def read_files(batches: Iterator["pa.RecordBatch"]) -> Iterator["pa.RecordBatch"]:
        import polars as pl

        from ..io.readers import validate_frame

        for batch in batches:
            paths = batch.column("path").to_pylist()
            contents = batch.column("content").to_pylist()
            for path, content in zip(paths, contents):
                source = _source(path)
                try:
                    raw, bad = _raw_frame(content, fmt, source)
                except Exception as e:  # noqa: BLE001 - a file the reader refuses refuses the run
                    what = "CSV" if fmt == "csv" else "Parquet"
                    out = pl.DataFrame({"source": [source], _FIELD: ["file"],
                                        _MESSAGE: [f"cannot be read as {what} ({type(e).__name__})"]})
                    for c in names:
                        if c not in out.columns:
                            out = out.with_columns(pl.lit(None).alias(c))
                    yield from out.select(names).to_arrow().cast(schema).to_batches()
                    continue
                clean, rejects = validate_frame(raw, source)
                if bad.height:  # lines that are not rows, IDs that cannot be exact: rejected
                    rejects = pl.concat([bad, rejects]).sort("row", maintain_order=True)
                # one record per problem → one per row: fields joined by ", ", reasons by "; "
                rej = rejects.group_by("row", maintain_order=True).agg(
                    pl.col("claim_id").first(),
                    pl.col("field").str.join(", ").alias(_FIELD),
                    pl.col("message").str.join("; ").alias(_MESSAGE),
                )
                clean = clean.select([c for c in clean.columns if c in names])
                out = pl.concat([clean, rej], how="diagonal_relaxed")
                out = out.with_columns(pl.lit(source).alias("source"))
                for c in names:
                    if c not in out.columns:
                        out = out.with_columns(pl.lit(None).alias(c))
                yield from out.select(names).to_arrow().cast(schema).to_batches()

    return read_files


def _source(path: str) -> str:
    """A file's name as problems show it (``file:`` dropped from local paths)."""
    return path[len("file:"):] if path.startswith("file:") else path


def read_claims(spark: "SparkSession", path: str, fmt: str | None = None) -> tuple["DataFrame", list[str]]:
    """Read CSV or Parquet claim files (a file or a folder of them) and validate every row with
    :func:`medaid.io.readers.validate_frame`, one file per call, on the executors.

    Headers are checked on the driver first: a file without a required column refuses the run
    (:class:`MedaidError` naming the file and the column), as in the local batch.  Returns the
    frame (``source``, ``row``, the claim fields typed as in :data:`CLAIM_TYPES`, the other
    columns as text, and ``field``/``message``: null for good rows, the reason for rejected
    ones) and the columns in the files' order (claim fields by their field names).
    """
    from pyspark.sql.types import StructType

    fmt = fmt or _format_of(spark, path)
    files = (spark.read.format("binaryFile").option("pathGlobFilter", f"*.{fmt}")
             .option("recursiveFileLookup", "true").load(path))
    layout = _layout(spark, [r[0] for r in files.select("path").collect()], fmt, path)
    extras = [c for c in layout if c not in CLAIM_TYPES]
    ddl = ", ".join(["source string", "row bigint"] + [f"`{c}` {t}" for c, t in CLAIM_TYPES.items()]
                    + [f"`{c}` string" for c in extras] + [f"{_FIELD} string", f"{_MESSAGE} string"])
    schema = StructType.fromDDL(ddl)
    names = [f.name for f in schema.fields]
    parsed = files.select("path", "content").mapInArrow(_read_file_fn(fmt, names, _arrow_schema(schema)), schema)
    return parsed.withColumnRenamed(_FIELD, "field").withColumnRenamed(_MESSAGE, "message"), layout


def _csv_header(text: str, source: str) -> tuple[int, list[str]]:
    """The header line of a CSV file and its cells, from the file's first characters, found
    as the local reader finds it (:func:`medaid.io.readers.find_csv_header`: below title lines,
    CR-only line ends read as lines); else its first line."""
    import csv

    from ..io.readers import cr_only, find_csv_header

    data = text.encode("utf-8")
    if cr_only(data):
        data = data.replace(b"\r", b"\n")
    seen: dict[int, list[str]] = {}

    def name_of(cells: Sequence[str], line: int = 1) -> list[str]:
        seen[line] = list(cells)
        return column_names(cells)

    found = find_csv_header(data, name_of, None, source)
    if found is None:
        return 1, next(csv.reader(io.StringIO(text)), [])
    return found[0], seen[found[0]]


def _layout(spark: "SparkSession", paths: list[str], fmt: str, where: str) -> list[str]:
    """The union of the files' columns (as :func:`column_names` names them) in order of first
    appearance; refuses files without a required column or with two columns naming one field
    (:func:`medaid.io.headers.header_problems`, as the local readers).  Reads only headers (CSV: the first
    64 KiB through Hadoop's file system, the header found below any title lines; Parquet: the
    footer)."""
    if not paths:
        raise MedaidError(Problem(f"no .{fmt} files here", source=where))
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    from ..io.encodings import detect_encoding
    from ..io.headers import header_problems

    layout: list[str] = []
    problems: list[Problem] = []
    for p in sorted(paths):
        if fmt == "csv":
            hp = jvm.org.apache.hadoop.fs.Path(p)
            fs = hp.getFileSystem(conf)
            stream = fs.open(hp)
            try:
                head = bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(
                    stream, min(1 << 16, fs.getFileStatus(hp).getLen())))
            finally:
                stream.close()
            text = head.decode(detect_encoding(head), errors="ignore").lstrip("\ufeff")
            line, headers = _csv_header(text, _source(p))
        else:
            try:
                headers = spark.read.parquet(p).columns
            except Exception:  # noqa: BLE001 - Spark's own error is a long Java trace
                problems.append(Problem("cannot be read as Parquet (no valid footer)", source=_source(p)))
                continue
            line = 1
        # a second column naming a field, a required field missing: refused, as locally
        problems += header_problems(headers, [alias_field(h) for h in headers], _source(p), line,
                                    with_map=False)
        layout += [n for n in column_names(headers) if n not in layout]
    if problems:
        raise MedaidError(problems)
    return layout


def _format_of(spark: "SparkSession", path: str) -> str:
    """``csv`` or ``parquet``, from the path's suffix or from the files in the folder."""
    low = path.rstrip("/").lower()
    for fmt in ("csv", "parquet"):
        if low.endswith("." + fmt):
            return fmt
    found = set()
    listing = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(path).select("path")
    for row in listing.collect():
        p = row[0].lower()
        for fmt in ("csv", "parquet"):
            if p.endswith("." + fmt):
                found.add(fmt)
    if len(found) != 1:
        raise MedaidError(Problem(
            "holds " + ("both CSV and Parquet files" if found else "no .csv or .parquet files")
            + "; give a folder of one format", source=path))
    return found.pop()


# --------------------------------------------------------------------------------------------
# totals


@dataclass(frozen=True)
class Totals:
    """Totals of settled claims in fen: ``claims``, distinct ``persons``, ``self_pay``,
    ``relief`` and ``patient_pays``, ``claims_capped`` (relief reduced by a cap or by the
    self-pay) and ``persons_at_annual_cap`` (persons who reached an annual cap); ``key`` names the
    plan, month (YYYY-MM) or hospital (``None`` for the overall line)."""

    key: str | None
    claims: int
    persons: int
    self_pay: int
    relief: int
    patient_pays: int
    claims_capped: int = 0
    persons_at_annual_cap: int = 0


@dataclass(frozen=True)
class Summary:
    """What a Spark batch did: rows read = settled + rejected (README.md#reliability), totals (fen),
    totals by plan, month and hospital, the output locations and the wall time."""

    rows_read: int
    settled: int
    rejected: int
    total: Totals
    by_plan: tuple[Totals, ...] = ()
    by_month: tuple[Totals, ...] = ()
    by_hospital: tuple[Totals, ...] = ()
    output: str | None = None
    rejects_output: str | None = None
    seconds: float = 0.0
    rejects_sample: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: amounts stay integers of fen."""
        return asdict(self)

    def reconcile(self) -> str:
        """``rows read N = settled S + rejected R``, as the local batch prints it."""
        return f"rows read {self.rows_read} = settled {self.settled} + rejected {self.rejected}"


def summarize(results: "DataFrame") -> tuple[Totals, tuple[Totals, ...], tuple[Totals, ...], tuple[Totals, ...]]:
    """Totals of a results frame computed in Spark: overall, by plan, by month of the claim date,
    by hospital, through the one totals engine (:mod:`medaid.report.totals`).  Spark collects the
    partial sums of each (plan, month, hospital) cell and the exact distinct persons of each
    plan, month and hospital (the engine's measures, :func:`~medaid.report.totals.spark_measure`);
    :func:`~medaid.report.totals.combine` adds the cells up exactly (integers of fen)."""
    from pyspark.sql import functions as F

    from ..report.totals import DIMS, DISTINCT, SUMS, combine, spark_measure

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
    persons: dict[str, Any] = {d: {} for d in DIMS}
    for r in long.groupBy("d.dim", "d.key").agg(*map(spark_measure, distinct)).collect():
        counts = tuple(int(r[n]) for n in distinct)
        if r["dim"] == "total":
            persons["total"] = counts
        else:
            persons[r["dim"]][r["key"]] = counts
    s = combine(cells, persons)

    def totals(key: str | None, t: dict[str, Any]) -> Totals:
        return Totals(key, t["claims"], t["persons"], t["self_pay"], t["relief"], t["patient_pays"],
                      t["claims_capped"], t["persons_at_annual_cap"])

    by_plan, by_month, by_hospital = (tuple(totals(r[d], r) for r in s[f"by_{d}"]) for d in DIMS)
    return totals(None, s["total"]), by_plan, by_month, by_hospital


# --------------------------------------------------------------------------------------------
# writing


def _yuan(col: Any) -> Any:
    """Fen (bigint) → ``decimal(18,2)`` yuan, by exact decimal multiplication."""
    from pyspark.sql import functions as F

    return (col.cast("decimal(20,0)") * F.lit(Decimal("0.01"))).cast("decimal(18,2)")


def _formula_safe(col: Any) -> Any:
    """A text column for CSV: cells a spreadsheet would run as a formula get a leading ``'``
    (as :func:`medaid.io.writers.neutralise`, with its pattern, which Java reads alike)."""
    from pyspark.sql import functions as F

    from ..io.writers import _FORMULA_RE

    return F.when(col.rlike(_FORMULA_RE), F.concat(F.lit("'"), col)).otherwise(col)


def output_frame(results: "DataFrame", fmt: str, layout: Sequence[str] | None = None,
                 lang: str = "en") -> "DataFrame":
    """Results as written to files: the input's columns (``layout``, default the claim fields)
    then ``RESULT_FIELDS``, rows in file order (by source and line), money as yuan (``decimal(18,2)`` in Parquet, two-decimal text in
    CSV), and in CSV text cells that a spreadsheet would run as a formula prefixed with ``'``,
    header cells too (:func:`medaid.io.writers.sheet_headers`: Chinese with ``lang="zh"``)."""
    from pyspark.sql import functions as F

    from ..io.writers import sheet_headers

    money = set(CLAIM_MONEY_FIELDS) | {"relief", "patient_pays", "bracket_relief", "ytd_self_pay", "ytd_relief"}
    first = layout if layout is not None else [c for c in CLAIM_FIELDS if c in results.columns]
    cols = [c for c in first if c in results.columns] + list(RESULT_FIELDS)
    df = results.orderBy(F.col("source").asc_nulls_first(), "row")
    names = sheet_headers(cols, lang) if fmt == "csv" else cols
    out = []
    for c, name in zip(cols, names):
        col = F.col(c)
        if c in money:
            col = _yuan(col)
            if fmt == "csv":
                col = col.cast("string")
        elif fmt == "csv" and dict(results.dtypes)[c] == "string":
            col = _formula_safe(col)
        out.append(col.alias(name))
    return df.select(*out)


def _rejects_frame(rejects: "DataFrame", fmt: str) -> "DataFrame":
    """Rejects as written: in CSV, text cells (file, claim id, message) neutralised like the
    results' (:func:`_formula_safe`)."""
    from pyspark.sql import functions as F

    if fmt != "csv":
        return rejects
    return rejects.select(*[_formula_safe(F.col(c)).alias(c) if t == "string" else F.col(c)
                            for c, t in rejects.dtypes])


def write_atomic(df: "DataFrame", path: str, fmt: str) -> None:
    """Write ``df`` as a folder of ``fmt`` files at ``path``: into a temporary sibling first,
    then renamed into place (an existing folder is replaced only once the new one is whole).

    Results and rejects hold ID numbers (README.md#reliability): the files are written inside a staging
    folder only its owner may enter (``0700``), then the folder is made ``0700`` and every file
    in it ``0600`` before it is moved into place (where the file system has permissions)."""
    spark = df.sparkSession
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[attr-defined]
    hpath = jvm.org.apache.hadoop.fs.Path
    perm = jvm.org.apache.hadoop.fs.permission.FsPermission
    target = hpath(path)
    fs = target.getFileSystem(conf)
    tag = uuid.uuid4().hex[:8]
    staging = hpath(f"{path.rstrip('/')}.tmp-{tag}")
    tmp = hpath(staging, "data")
    private_dir, private_file = perm.valueOf("drwx------"), perm.valueOf("-rw-------")
    fs.mkdirs(staging, private_dir)
    _set_permission(fs, staging, private_dir)
    try:
        writer = df.write.mode("errorifexists")
        if fmt == "csv":
            writer.options(header="true", emptyValue="", escape='"').csv(tmp.toString())
        else:
            writer.parquet(tmp.toString())
        _set_permission(fs, tmp, private_dir)
        files = fs.listFiles(tmp, True)
        while files.hasNext():
            _set_permission(fs, files.next().getPath(), private_file)
        old = None
        if fs.exists(target):
            old = hpath(f"{path.rstrip('/')}.old-{tag}")
            fs.rename(target, old)
        if not fs.rename(tmp, target):
            if old is not None:
                fs.rename(old, target)
            raise MedaidError(Problem("could not move the finished output into place", source=path))
        if old is not None:
            fs.delete(old, True)
    finally:
        fs.delete(staging, True)


def _set_permission(fs: Any, path: Any, permission: Any) -> None:
    """``fs.setPermission``, where the file system has permissions (object stores have none)."""
    try:
        fs.setPermission(path, permission)
    except Exception as e:  # noqa: BLE001 - py4j's error wraps the Java one
        if "UnsupportedOperationException" not in str(e):
            raise


def _out_format(path: str, fmt: str | None) -> str:
    if fmt:
        return fmt
    return "csv" if path.rstrip("/").lower().endswith(".csv") else "parquet"


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
) -> Summary:
    """Settle a file or folder of CSV or Parquet claims on Spark and write the results
    (docs/calculation.md on every claim, README.md#reliability reconciliation).

    Every row is validated; rows that cannot be settled are rejects with file, line, field and
    reason.  ``on_error="fail"`` refuses the batch when any row is rejected (nothing is
    written; the first ``max_errors`` rejects are quoted in the :class:`ClaimError`); ``"skip"`` settles the
    rest and writes the rejects to ``rejects_path`` if given.  Output is a folder of CSV (path
    ending ``.csv``; Chinese headers with ``lang="zh"``) or Parquet files, written whole or not at all.  ``master=None`` uses the
    session that ``spark-submit`` configures.
    """
    from pyspark.sql import functions as F

    from ..domain.rules import load_rules

    if on_error not in ("fail", "skip"):
        raise ValueError("on_error is 'fail' or 'skip'")
    started = time.perf_counter()
    book = load_rules(rules_path, scheme)
    spark = spark_session(master)
    parsed, layout = read_claims(spark, input_path, input_format)
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
        settled = _settled(parsed.withColumnRenamed("field", _FIELD).withColumnRenamed("message", _MESSAGE),
                           book, buckets)
        results = settled.filter(F.col(_MESSAGE).isNull()).drop(_FIELD, _MESSAGE)
        rejects = settled.filter(F.col(_MESSAGE).isNotNull()).select(*_reject_cols())
        counts = dict(settled.groupBy(F.col(_MESSAGE).isNull().alias("ok")).count().collect())
        parsed.unpersist()
        n_settled, rejected = counts.get(True, 0), counts.get(False, 0)
        if n_settled + rejected != rows_read:
            raise MedaidError(Problem(
                f"rows do not reconcile: read {rows_read}, settled {n_settled}, rejected {rejected}",
                source=input_path))
        sample = [
            Problem(r["message"] + ("" if r["claim_id"] is None else f" (claim {r['claim_id']})"),
                    source=r["source"], line=r["row"], field=r["field"])
            for r in (rejects.orderBy(F.col("source").asc_nulls_first(), "row").limit(max_errors).collect()
                      if rejected else [])
        ]
        if rejected and on_error == "fail":
            more = rejected - len(sample)
            if more:
                sample.append(Problem(f"... and {more} more rejected rows", source=input_path))
            raise ClaimError(sample)
        out_fmt = _out_format(output_path, output_format)
        write_atomic(output_frame(results, out_fmt, layout, lang), output_path, out_fmt)
        if rejects_path:
            rej_fmt = _out_format(rejects_path, None)
            rej = _rejects_frame(rejects.orderBy(F.col("source").asc_nulls_first(), "row"), rej_fmt)
            write_atomic(rej.coalesce(1), rejects_path, rej_fmt)
        total, by_plan, by_month, by_hospital = summarize(results)
        return Summary(
            rows_read=rows_read, settled=n_settled, rejected=rejected, total=total, by_plan=by_plan,
            by_month=by_month, by_hospital=by_hospital, output=output_path,
            rejects_output=rejects_path, seconds=round(time.perf_counter() - started, 3),
            rejects_sample=tuple(str(p) for p in sample),
        )
    finally:
        parsed.unpersist()
        if settled is not None:
            settled.unpersist()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m medaid.spark`` / ``spark-submit examples/spark_job.py``: run one batch."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="medaid.spark", description="Settle a claim batch on Apache Spark.")
    ap.add_argument("input", help="CSV or Parquet file or folder (local, hdfs://, s3a:// ...)")
    ap.add_argument("-o", "--output", required=True, help="output folder; ends in .csv for CSV, else Parquet")
    ap.add_argument("--rules", default=os.environ.get("MEDAID_RULES", "rules"), help="rule file or folder (driver side)")
    ap.add_argument("--scheme", default=None)
    ap.add_argument("--master", default=None,
                    help="e.g. local[2]; default: what spark-submit configures, else local[2]")
    ap.add_argument("--rejects", default=None, help="folder for rejected rows (CSV if it ends in .csv)")
    ap.add_argument("--on-error", choices=("fail", "skip"), default="fail")
    ap.add_argument("--buckets", type=int, default=None, help="buckets of persons (default: by size)")
    ap.add_argument("--max-errors", type=int, default=MAX_QUOTED, help="how many problems to list when refusing")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    try:
        # under spark-submit the driver runs with a gateway to the JVM spark-submit started
        master = args.master or (None if os.environ.get("PYSPARK_GATEWAY_PORT") else "local[2]")
        summary = run_batch(args.input, args.output, args.rules, master=master, rejects_path=args.rejects,
                            on_error=args.on_error, scheme=args.scheme, buckets=args.buckets,
                            max_errors=args.max_errors)
    except MedaidError as e:
        print(str(e), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
    else:
        from ..money import format_yuan

        t = summary.total
        print(summary.reconcile())
        print(f"{t.claims} claims of {t.persons} persons: self-pay {format_yuan(t.self_pay)}, "
              f"relief {format_yuan(t.relief)}, patient pays {format_yuan(t.patient_pays)}")
        for p in summary.by_plan:
            print(f"  {p.key}: {p.claims} claims, relief {format_yuan(p.relief)}")
        print(f"wrote {summary.output} in {summary.seconds:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

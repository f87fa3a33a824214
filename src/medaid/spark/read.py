"""Reading claim files into Spark with the local readers: one whole file per call, on the executors.

Rules implemented (README.md#reliability; docs/spark.md, *What is identical to the local
batch*): a CSV file is read by the local whole-file reader (:func:`medaid.io.readers.read_csv_data`:
the header found below title lines, lines ended by CR alone read as lines, every other line a
row or a located problem), in the encoding the local readers detect
(:func:`medaid.io.encodings.detect_encoding`); a Parquet file's typed columns become text as
locally (:func:`medaid.io.readers.text_columns`, :func:`medaid.io.readers.numeric_id_problems`);
headers are named by the local readers' one naming (:func:`medaid.io.headers.canonical_names`:
the aliases of :mod:`medaid.io.columns`, other columns passed through) and refused by the same
checks (:func:`medaid.io.headers.header_problems`); every row is validated by
:func:`medaid.io.readers.validate_frame`.  Each row keeps its file and line.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable, Iterator, Sequence

import polars as pl
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from ..errors import MedaidError, Problem
from ..io.attributes import Declared, attribute_columns, name_attributes
from ..io.columns import EXTENDED_RESULT_FIELDS, RESULT_FIELDS, alias_field
from ..io.encodings import HEAD_BYTES, SNIFF_BYTES, as_utf8, cr_only, detect_encoding
from ..io.headers import canonical_names, header_problems
from ..io.raw import ReadError
from ..io.readers import (
    find_csv_header,
    numeric_id_problems,
    problems_frame,
    read_csv_data,
    text_columns,
    validate_frame,
)
from ..io.validation import ROW
from .frames import BUCKET, CLAIM_TYPES, REJECT_FIELD, REJECT_MESSAGE, arrow_schema, as_arrow, jvm_of, source_of

#: Column names the Spark job uses itself: an input column so named (and naming no field) is
#: passed through as ``NAME_input`` (:func:`medaid.io.headers.canonical_names`).
RESERVED = frozenset(RESULT_FIELDS) | frozenset(EXTENDED_RESULT_FIELDS) | {
    ROW, "source", "field", "message", REJECT_FIELD, REJECT_MESSAGE, BUCKET, "_first"}


def column_names(headers: Sequence[str], source: str = "", line: int = 1) -> list[str]:
    """A file's headers as the batch names them (:func:`medaid.io.headers.canonical_names`): a
    field's aliases become the field name; any other column keeps its header (``_input``
    appended when it is named like a column of :data:`RESERVED`, a number appended when
    repeated), so that it passes through as text.  Raises :class:`medaid.io.raw.ReadError` for
    a header with two columns naming one field or without a required field (:func:`_layout`
    refuses such files first, naming every file)."""
    return canonical_names(list(headers), None, source, reserved=RESERVED, line=line)


def raw_frame(content: bytes, fmt: str, source: str = "") -> tuple[pl.DataFrame, pl.DataFrame]:
    """One file as text columns named by :func:`column_names`, plus ``row``: the line number
    for CSV, the record number from 1 for Parquet; and, as a rejects frame, the rows that are
    not in the frame (a stray quote, a row longer or shorter than the header; Parquet IDs held
    as numbers that cannot be exact).  Parquet records with no value at all are not rows."""
    names_of: Callable[..., list[str]] = functools.partial(column_names, source=source)
    if fmt == "csv":
        if detect_encoding(content[:SNIFF_BYTES]) != "utf-8":
            content = as_utf8(content)
        got = read_csv_data(content, source, names_of)
        return got.frame, problems_frame(got.problems)
    typed = pl.read_parquet(io.BytesIO(content))
    names = names_of(typed.columns)
    bad = numeric_id_problems(typed, names, first=1)
    frame = text_columns(typed)
    frame.columns = names
    frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    if bad.height:
        frame = frame.filter(~pl.col(ROW).is_in(bad[ROW].implode()))
    text = [c for c in frame.columns if c != ROW]
    if text:
        frame = frame.filter(~pl.all_horizontal(pl.col(text).is_null()))
    return frame, bad


def _read_files(fmt: str, names: list[str], schema: pa.Schema, declared: Declared | None = None,
                ) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function each partition of files runs: read each file, validate its rows, name and
    tidy the columns of the ``declared`` attributes (:func:`medaid.io.attributes.name_attributes`);
    a file the reader refuses becomes one row with field ``file``, which refuses the run."""

    def read_files(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for path, content in zip(batch.column("path").to_pylist(), batch.column("content").to_pylist()):
                source = source_of(path)
                try:
                    raw, bad = raw_frame(content, fmt, source)
                except Exception as e:  # noqa: BLE001 - a file the reader refuses refuses the run
                    what = "CSV" if fmt == "csv" else "Parquet"
                    out = pl.DataFrame({"source": [source], REJECT_FIELD: ["file"],
                                        REJECT_MESSAGE: [f"cannot be read as {what} ({type(e).__name__})"]})
                    yield from as_arrow(out, names, schema).to_batches()
                    continue
                clean, rejects = validate_frame(raw, source)
                clean = name_attributes(clean, declared or {}, source)
                if bad.height:  # lines that are not rows, IDs that cannot be exact: rejected
                    rejects = pl.concat([bad, rejects]).sort(ROW, maintain_order=True)
                # one record per problem → one per row: fields joined by ", ", reasons by "; "
                rej = rejects.group_by(ROW, maintain_order=True).agg(
                    pl.col("claim_id").first(),
                    pl.col("field").str.join(", ").alias(REJECT_FIELD),
                    pl.col("message").str.join("; ").alias(REJECT_MESSAGE),
                )
                clean = clean.select([c for c in clean.columns if c in names])
                out = pl.concat([clean, rej], how="diagonal_relaxed").with_columns(pl.lit(source).alias("source"))
                yield from as_arrow(out, names, schema).to_batches()

    return read_files


def read_claims(spark: SparkSession, path: str, fmt: str | None = None,
                declared: Declared | None = None) -> tuple[DataFrame, list[str]]:
    """Read CSV or Parquet claim files (a file or a folder of them) and validate every row with
    :func:`medaid.io.readers.validate_frame`, one file per call, on the executors.  The columns
    of the ``declared`` attributes (``{name: (alias, …)}``: :mod:`medaid.io.attributes`) are
    named by the attribute and their values tidied, as in the local batch.

    Headers are checked on the driver first: a file without a required column refuses the run
    (:class:`MedaidError` naming the file and the column), as in the local batch.  Returns the
    frame (``source``, ``row``, the claim fields typed as in :data:`CLAIM_TYPES`, the other
    columns as text, and ``field``/``message``: null for good rows, the reason for rejected
    ones) and the columns in the files' order (claim fields by their field names).
    """
    fmt = fmt or _format_of(spark, path)
    files = (spark.read.format("binaryFile").option("pathGlobFilter", f"*.{fmt}")
             .option("recursiveFileLookup", "true").load(path))
    layout = _layout(spark, [r[0] for r in files.select("path").collect()], fmt, path, declared or {})
    extras = [c for c in layout if c not in CLAIM_TYPES]
    ddl = ", ".join(["source string", "row bigint"] + [f"`{c}` {t}" for c, t in CLAIM_TYPES.items()]
                    + [f"`{c}` string" for c in extras] + [f"{REJECT_FIELD} string", f"{REJECT_MESSAGE} string"])
    schema = StructType.fromDDL(ddl)
    assert isinstance(schema, StructType)
    names = [f.name for f in schema.fields]
    parsed = files.select("path", "content").mapInArrow(_read_files(fmt, names, arrow_schema(schema), declared), schema)
    return parsed.withColumnRenamed(REJECT_FIELD, "field").withColumnRenamed(REJECT_MESSAGE, "message"), layout


def _csv_header(text: str, source: str) -> tuple[int, list[str]]:
    """The header line of a CSV file and its cells, from the file's first characters, found
    as the local reader finds it (:func:`medaid.io.readers.find_csv_header`: below title lines,
    CR-only line ends read as lines); else its first line."""
    data = text.encode("utf-8")
    if cr_only(data):
        data = data.replace(b"\r", b"\n")

    def cells_of(cells: Sequence[str], line: int = 1) -> list[str]:
        del line
        return list(cells)

    found = find_csv_header(data, cells_of, None, source)
    if found is None:
        return 1, next(csv.reader(io.StringIO(text)), [])
    return found[0], found[3]


def _layout(spark: SparkSession, paths: list[str], fmt: str, where: str, declared: Declared | None = None,
            ) -> list[str]:
    """The union of the files' columns (as :func:`column_names` names them) in order of first
    appearance; refuses files without a required column or with two columns naming one field
    (:func:`medaid.io.headers.header_problems`, as the local readers).  Reads only headers (CSV:
    the first 64 KiB through Hadoop's file system, the header found below any title lines;
    Parquet: the footer)."""
    if not paths:
        raise MedaidError(Problem(f"no .{fmt} files here", source=where))
    jvm, conf = jvm_of(spark)
    layout: list[str] = []
    problems: list[Problem] = []
    for p in sorted(paths):
        if fmt == "csv":
            hp = jvm.org.apache.hadoop.fs.Path(p)
            fs = hp.getFileSystem(conf)
            stream = fs.open(hp)
            try:
                head = bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(
                    stream, min(HEAD_BYTES, fs.getFileStatus(hp).getLen())))
            finally:
                stream.close()
            text = head.decode(detect_encoding(head), errors="ignore").lstrip("\ufeff")
            line, headers = _csv_header(text, source_of(p))
        else:
            try:
                headers = spark.read.parquet(p).columns
            except Exception:  # noqa: BLE001 - Spark's own error is a long Java trace
                problems.append(Problem("cannot be read as Parquet (no valid footer)", source=source_of(p)))
                continue
            line = 1
        # a second column naming a field, a required field missing: refused, as locally
        found = header_problems(headers, [alias_field(h) for h in headers], source_of(p), line, with_map=False)
        if found:
            problems += found
            continue
        names = column_names(headers, source_of(p), line)
        try:  # the attribute columns by the attribute's name; two giving one: refused, as locally
            named = attribute_columns(names, declared or {}, source_of(p), line)
        except ReadError as e:
            problems += e.problems
            continue
        layout += [m for m in (named.get(n, n) for n in names) if m not in layout]
    if problems:
        raise MedaidError(problems)
    return layout


def _format_of(spark: SparkSession, path: str) -> str:
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

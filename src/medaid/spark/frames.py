"""The Spark session, and the columns of the frames that cross between Spark, Arrow and polars.

Money stays integers of fen from the reader to the writer: Spark ``bigint``, Arrow ``int64``,
polars ``Int64`` (docs/spark.md, *Install*).  The Python functions Spark runs on the executors
(:mod:`.read`, :mod:`.job`) receive Arrow batches, work on polars frames and hand back Arrow
batches of exactly the Spark schema they declared: :func:`arrow_schema` and :func:`as_arrow`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import polars as pl
import pyarrow as pa
from pyspark.sql import SparkSession, types as T

from ..errors import MedaidError, Problem

#: Spark types of the columns :func:`medaid.batch.columnar.settle_frame` adds (``RESULT_FIELDS``,
#: and ``EXTENDED_RESULT_FIELDS`` for an extended rule book).
RESULT_TYPES: dict[str, str] = {
    "plan": "string", "pool": "string", "benefit_year": "int", "relief": "bigint",
    "patient_pays": "bigint", "bracket_relief": "bigint", "capped_by": "string",
    "bracket": "tinyint", "ytd_self_pay": "bigint", "ytd_relief": "bigint",
    "rule_set_id": "string", "rule_version": "string", "rule_hash": "string",
    # EXTENDED_RESULT_FIELDS: rule books using the rules real schemes need (docs/spark.md)
    "second_relief": "bigint", "second_capped_by": "string", "second_pool": "string",
    "burden": "bigint", "ytd_burden": "bigint", "ytd_second_relief": "bigint", "caps": "string",
}
#: Spark types of the claim columns after reading and validation (money in fen).
CLAIM_TYPES: dict[str, str] = {
    "claim_id": "string", "person_id": "string", "date": "date", "self_pay": "bigint",
    "group": "string", "kind": "string", "hospital": "string", "total_cost": "bigint",
    "household_id": "string", "non_compliant": "bigint",
}

#: Columns the job adds to frames for its own use: why a row is rejected (null for a good row),
#: and the bucket of persons a row is settled in.  Input columns so named are renamed
#: (:data:`medaid.spark.read.RESERVED`).
REJECT_FIELD, REJECT_MESSAGE, BUCKET = "_reject_field", "_reject_message", "_bucket"

_SPARK_TYPES: dict[str, T.DataType] = {
    "string": T.StringType(), "bigint": T.LongType(), "int": T.IntegerType(),
    "tinyint": T.ByteType(), "date": T.DateType(),
}
_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "bigint": pa.int64(), "int": pa.int32(), "tinyint": pa.int8(),
    "date": pa.date32(), "boolean": pa.bool_(), "double": pa.float64(),
}


def spark_session(master: str | None = "local[2]", app_name: str = "medaid", **conf: str) -> SparkSession:
    """A Spark session for medaid (the active one if there is one).

    ``master=None`` leaves the master to ``spark-submit``.  For a local master the Python
    workers run this interpreter, shuffles use few partitions and logs are quiet; ``conf``
    entries (``spark.sql.shuffle.partitions="8"``) override the defaults.
    """
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


def spark_type(ddl: str) -> T.DataType:
    """The Spark type of a name of :data:`RESULT_TYPES` or :data:`CLAIM_TYPES`."""
    return _SPARK_TYPES[ddl]


def arrow_schema(schema: T.StructType) -> pa.Schema:
    """The Arrow schema of a Spark schema, every field nullable; a column of another type than
    text, integers, dates, decimals, booleans and doubles cannot pass through the settlement."""
    fields = []
    for f in schema.fields:
        t = f.dataType.simpleString()
        if t.startswith("decimal("):
            p, s = t[len("decimal("):-1].split(",")
            at = pa.decimal128(int(p), int(s))
        elif t in _ARROW_TYPES:
            at = _ARROW_TYPES[t]
        else:
            raise MedaidError(Problem(f"column type {t} cannot pass through the settlement", field=f.name))
        fields.append(pa.field(f.name, at, nullable=True))
    return pa.schema(fields)


def as_arrow(frame: pl.DataFrame, names: list[str], schema: pa.Schema) -> pa.Table:
    """``frame`` as the Arrow table a Python function promised Spark: the columns ``names`` in
    that order (those ``frame`` lacks: null), cast to ``schema``."""
    missing = [pl.lit(None).alias(c) for c in names if c not in frame.columns]
    if missing:
        frame = frame.with_columns(missing)
    return frame.select(names).to_arrow().cast(schema)


def source_of(path: str) -> str:
    """A file's name as problems show it (``file:`` dropped from local paths)."""
    return path[len("file:"):] if path.startswith("file:") else path


def jvm_of(spark: SparkSession) -> tuple[Any, Any]:
    """The session's JVM gateway and its Hadoop configuration (headers are read, and output
    moved into place, through Hadoop's file system on the driver)."""
    sc: Any = spark.sparkContext
    return sc._jvm, sc._jsc.hadoopConfiguration()

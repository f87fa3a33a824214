"""Writing a Spark batch's results and rejects: folders of CSV or Parquet part files, whole or not at all.

Rules implemented (README.md#reliability; the local writer's, :mod:`medaid.io.writers`):

* Money columns (fen ``bigint``) are written as yuan: ``decimal(18,2)`` in Parquet, text with
  two decimals and no separators in CSV (``23300.00``, as :func:`medaid.money.format_yuan` with
  ``thousands=False``), by :func:`yuan`: the exact decimal product fen × one fen in yuan
  (:func:`medaid.money.fen_to_decimal`), in Spark, never through a float.
* Formula injection: in CSV, text cells (header cells too) that start like a formula
  (:data:`medaid.io.writers.FORMULA_LEADS`) get a leading ``'``.
* Headers: field names, or the Chinese headers of :func:`medaid.io.writers.sheet_headers` in
  CSV with ``lang="zh"``.
* Results and rejects hold ID numbers: a folder is written inside a staging folder only its
  owner may enter and moved into place once whole (:func:`write_atomic`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import Column, DataFrame, functions as F

from ..errors import MedaidError, Problem
from ..io.columns import (
    ACCOUNT_FIELD,
    CLAIM_EXTRA_HEADERS,
    CLAIM_FIELDS,
    CLAIM_MONEY_FIELDS,
    EXTENDED_MONEY_FIELDS,
    EXTENDED_RESULT_FIELDS,
    MASKED_FIELDS,
    RESULT_FIELDS,
    RESULT_MONEY_FIELDS,
    RULE_HASH_SHORT,
    normalise_header,
)
from ..io.writers import FORMULA_LEADS, sheet_headers
from ..money import fen_to_decimal
from .frames import jvm_of

#: The type of yuan in Parquet files, as the local writer's (:func:`medaid.io.writers.yuan_decimal`).
YUAN_TYPE = "decimal(18,2)"
#: Text a spreadsheet would run as a formula (a Java regular expression, as Spark runs it).
FORMULA_PATTERN = "^[" + re.escape("".join(FORMULA_LEADS)) + "]"
_MONEY = frozenset(CLAIM_MONEY_FIELDS + RESULT_MONEY_FIELDS + EXTENDED_MONEY_FIELDS)


def yuan(col: Column) -> Column:
    """Fen (``bigint``) → ``decimal(18,2)`` yuan: the exact product fen × 0.01
    (:func:`medaid.money.fen_to_decimal` of one fen); cast to text, two decimals, as
    :func:`medaid.money.format_yuan` writes them without separators."""
    return (col.cast("decimal(20,0)") * F.lit(fen_to_decimal(1))).cast(YUAN_TYPE)


def formula_safe(col: Column) -> Column:
    """A text column for CSV: cells a spreadsheet would run as a formula get a leading ``'``
    (as :func:`medaid.io.writers.neutralise`)."""
    return F.when(col.rlike(FORMULA_PATTERN), F.concat(F.lit("'"), col)).otherwise(col)


_MASKS = {normalise_header(a): f for f in MASKED_FIELDS for a in CLAIM_EXTRA_HEADERS[f]}


def masked(col: Column, field: str) -> Column:
    """A payee column as every results file shows it: the local path's one rule
    (:func:`medaid.domain.claims.mask_account` / :func:`~medaid.domain.claims.mask_name`, as
    :func:`medaid.batch.run.masked_accounts` applies it) run as a Spark UDF; empty stays empty."""
    from pyspark.sql.types import StringType

    from ..domain.claims import mask_account, mask_name

    fn = mask_account if field == ACCOUNT_FIELD else mask_name
    rule = F.udf(lambda text: fn(text), StringType())  # no type hints: a plain Python UDF, no eval-type guess
    text = F.trim(col.cast("string"))
    return F.when(text.isNull() | (text == ""), text).otherwise(rule(text))


def output_frame(results: DataFrame, fmt: str, layout: Sequence[str] | None = None,
                 lang: str = "en", columns: Sequence[str] | None = None,
                 full_rule_hash: bool = False, titles: Mapping[str, str] | None = None) -> DataFrame:
    """Results as written to files: the input's columns (``layout``, default the claim fields)
    then ``RESULT_FIELDS``, rows in file order (by source and line), money as yuan
    (:func:`yuan`: ``decimal(18,2)`` in Parquet, two-decimal text in CSV), a bank account
    masked (:func:`masked`), and in CSV text
    cells that a spreadsheet would run as a formula prefixed with ``'``, header cells too
    (:func:`medaid.io.writers.sheet_headers`: Chinese with ``lang="zh"``, a claim attribute's
    column its title in ``titles``).  ``columns``
    (``--columns``, checked by :func:`layout_columns`) chooses and orders the columns;
    ``rule_hash`` is the rule file's short reference (:func:`medaid.io.columns.rule_ref`)
    unless ``full_rule_hash``."""
    cols = list(columns) if columns is not None else layout_columns(results, layout)
    types = dict(results.dtypes)
    df = results.orderBy(F.col("source").asc_nulls_first(), "row")
    names = sheet_headers(cols, lang, titles) if fmt == "csv" else cols
    out = []
    for c, name in zip(cols, names):
        col = F.col(c)
        if c == "rule_hash" and not full_rule_hash:
            col = F.substring(col, 1, RULE_HASH_SHORT)
        if c in _MONEY:
            col = yuan(col)
            if fmt == "csv":
                col = col.cast("string")
        elif normalise_header(c) in _MASKS:
            col = masked(col, _MASKS[normalise_header(c)])
        elif fmt == "csv" and types[c] == "string":
            col = formula_safe(col)
        out.append(col.alias(name))
    return df.select(*out)


def layout_columns(results: DataFrame, layout: Sequence[str] | None = None,
                   extended: bool | None = None) -> list[str]:
    """The columns of a results output by default: the input's columns (``layout``, default the
    claim fields) then ``RESULT_FIELDS``, and ``EXTENDED_RESULT_FIELDS`` for an extended rule
    book (``extended``; ``None``: when ``results`` has them)."""
    first = layout if layout is not None else [c for c in CLAIM_FIELDS if c in results.columns]
    if extended is None:
        extended = "second_relief" in results.columns
    return ([c for c in first if c in results.columns] + list(RESULT_FIELDS)
            + (list(EXTENDED_RESULT_FIELDS) if extended else []))


def rejects_frame(rejects: DataFrame, fmt: str) -> DataFrame:
    """Rejects as written: in CSV, text cells (file, claim id, message) neutralised like the
    results' (:func:`formula_safe`)."""
    if fmt != "csv":
        return rejects
    return rejects.select(*[formula_safe(F.col(c)).alias(c) if t == "string" else F.col(c)
                            for c, t in rejects.dtypes])


def out_format(path: str, fmt: str | None) -> str:
    """``fmt``, else ``csv`` for a path ending in ``.csv``, else ``parquet``."""
    if fmt:
        return fmt
    return "csv" if path.rstrip("/").lower().endswith(".csv") else "parquet"


def write_atomic(df: DataFrame, path: str, fmt: str) -> None:
    """Write ``df`` as a folder of ``fmt`` files at ``path``: into a temporary sibling first,
    then renamed into place (an existing folder is replaced only once the new one is whole).

    Results and rejects hold ID numbers (README.md#reliability): the files are written inside a
    staging folder only its owner may enter (``0700``), then the folder is made ``0700`` and
    every file in it ``0600`` before it is moved into place (where the file system has
    permissions)."""
    jvm, conf = jvm_of(df.sparkSession)
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

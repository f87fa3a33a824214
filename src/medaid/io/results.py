"""Reading results files: the one reader of what medaid wrote.

``medaid report`` (:func:`load_results`) and ``medaid recalc --previous``
(:func:`read_results`) read results files here, so that both accept the same files: the same
encodings (UTF-8, UTF-8 with BOM, GBK/GB18030 for CSV), formats, headers and amounts.  What a
file holds becomes the results frame of :mod:`medaid.io.results_frame` (its columns and types;
:func:`medaid.io.results_frame.normalise` converts the values).

Files (docs/calculation.md#money; docs/report.md; README.md#reliability):

* CSV and JSONL carry money as yuan text with at most two decimals (signed for ``adjustment``,
  in a recalculation's adjustments file).  Plain text (``12345.67``) is converted column-wise
  with integer arithmetic; anything else (thousands separators, full-width digits, bad text)
  goes through :func:`medaid.money.parse_yuan`, the one door for amounts, so that the same
  values are accepted and refused everywhere.
* Parquet carries money as ``Decimal(18, 2)`` yuan; it is scaled to fen exactly
  (:func:`medaid.io.amounts.decimal_fen`).
* XLSX carries money as numeric cells.  Excel stores numbers as binary doubles, so a cell is
  read back through its shortest decimal text (``repr``), which is the text Excel was given
  for any amount of at most 15 significant digits, and then through ``parse_yuan``.  XLSX files
  are read by the claim files' reader (:func:`medaid.io.claim_readers.read_raw`); so are JSON
  Lines files whose amounts are JSON numbers (never through a float), while medaid's own JSON
  Lines (amounts as text) are read by polars at once.
* An ID held as a number (an XLSX numeric cell, a JSON or Parquet number) is read by the rule
  of the claim readers (:func:`medaid.io.ids.number_as_id`): its exact digits, or refused.
* Text that the export neutralised against formula injection (CSV, XLSX: a leading ``'``
  before ``=``, ``+``, ``-``, ``@``, tab or CR) gets the ``'`` removed.

Every bad value is reported with the file, the line (as the user sees it: the header is line 1)
and the field; never with the amount itself.  Headers may be English or the Chinese aliases of
:data:`medaid.io.columns.HEADER_ALIASES`.

A ledger (a path ending in one of :data:`LEDGER_SUFFIXES`) is not read here: the ledger sits
above this package and gives its rows to the same frame builder itself
(:func:`medaid.ledger.export.load_ledger_results`); :func:`medaid.report.load_results` takes
either.
"""

from __future__ import annotations

import io
import json
import mmap
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import Problem
from .amounts import decimal_fen
from .cells import NEUTRALISED_RE
from .claim_readers import read_raw
from .columns import ROW
from .encodings import SNIFF_BYTES, as_utf8, detect_encoding
from .raw import ReadError
from .results_frame import (
    ADJUSTMENT_FIELDS,
    FALSE_WORDS,
    KNOWN_FIELDS,
    LINE,
    MAX_PROBLEMS,
    MONEY_FIELDS,
    PER_CLAIM_MONEY,
    REQUIRED_RESULT_FIELDS,
    SIGNED_MONEY_FIELDS,
    TRUE_WORDS,
    ResultsError,
    canonical_header,
    frame_from_rows,
    normalise,
    results_dtypes,
)

__all__ = [
    "ADJUSTMENT_FIELDS", "FALSE_WORDS", "KNOWN_FIELDS", "LEDGER_SUFFIXES", "MONEY_FIELDS",
    "PER_CLAIM_MONEY", "REQUIRED_RESULT_FIELDS", "SIGNED_MONEY_FIELDS", "TRUE_WORDS",
    "ResultsError", "canonical_header", "frame_from_rows", "is_ledger_path",
    "load_results", "normalise", "read_results", "results_dtypes",
]

#: File suffixes read as a ledger rather than a results file.
LEDGER_SUFFIXES: tuple[str, ...] = (".sqlite3", ".sqlite", ".db")


def is_ledger_path(path: str | Path) -> bool:
    """True when ``path`` names a ledger (``.sqlite3``, ``.sqlite`` or ``.db``)."""
    return str(path).lower().endswith(LEDGER_SUFFIXES)


def load_results(
    path: str | Path, fields: Iterable[str] | None = None, *,
    required: Iterable[str] = REQUIRED_RESULT_FIELDS, others: bool = False,
) -> pl.DataFrame:
    """Read a results file (CSV, JSONL, Parquet or XLSX, by suffix) into the results frame.

    ``fields`` limits the columns read and converted (the report passes the ones it uses);
    the ``required`` ones (by default claim id, person id, date, relief) are always checked.
    ``others=True`` keeps the columns that name no known field too (as read; text for CSV).
    Raises :class:`ResultsError` naming the file, line and field of each bad value (at most
    20), or naming the missing columns when the file is not batch results.  A ledger path is
    refused: the ledger is above this package; :func:`medaid.report.load_results` reads both.
    """
    p = Path(path)
    if is_ledger_path(p):
        raise ResultsError(Problem(
            "is a ledger, not a results file: read it with `medaid report --ledger` "
            "(medaid.report.load_results)", source=str(p)))
    if not p.is_file():
        raise ResultsError(Problem("no such results file", source=str(p)))
    required = tuple(required)
    want = None if fields is None else frozenset(fields) | frozenset(required)
    suffix = p.suffix.lower()
    neutralised = suffix not in (".jsonl", ".ndjson", ".json", ".parquet", ".pq")
    try:
        if suffix in (".csv", ".txt", ".tsv"):
            raw, first_line = _read_csv(p, "\t" if suffix == ".tsv" else ",", want, others), 2
        elif suffix in (".jsonl", ".ndjson", ".json"):
            raw, first_line = _read_jsonl(p, want, others), 1
        elif suffix in (".parquet", ".pq"):
            raw, first_line = _read_parquet(p, want, others), 1
        elif suffix in (".xlsx", ".xlsm"):
            raw, first_line = _read_xlsx(p, want, others), 2
        else:
            raise ResultsError(Problem(
                f"unknown results format {suffix or '(no suffix)'!r}; expected .csv, .jsonl, "
                ".parquet, .xlsx, or a ledger (.sqlite3/.db)", source=str(p)))
    except ReadError as e:  # from the claim files' readers
        raise ResultsError(e.problems) from None
    return normalise(raw, source=str(p), first_line=first_line, required=required,
                     neutralised=neutralised)


def read_results(path: str | Path, *, required: Iterable[str] = ()) -> pl.DataFrame:
    """Read back a file ``medaid batch`` or ``medaid recalc`` wrote (any format), through the
    one reader of results files, :func:`load_results` (``medaid report`` reads them there too,
    so both accept the same files, e.g. a results CSV saved as GBK).

    Money → ``Int64`` fen (exactly; ``adjustment`` may be negative), ``date`` → Date,
    ``benefit_year`` → Int32, ``bracket`` → Int8; every column is kept, in the file's order;
    text that the export neutralised against formula injection gets its leading ``'`` removed.
    ``required``: fields the file must have (a clear refusal names the missing ones).  Raises
    :class:`ResultsError` naming file, line and field of bad values."""
    return load_results(path, required=required, others=True)


# ---------------------------------------------------------------------------------------------
# per-format raw readers: columns renamed to fields, values still as read


def _rename(names: list[str], source: str, want: frozenset[str] | None = None,
            others: bool = False) -> dict[str, str]:
    """File column name → output name: the field a column names (if wanted), or with
    ``others`` the column's own name when it names no known field (a header the export
    neutralised against formula injection, ``'=x``, gets its ``'`` removed).  A column named
    exactly by the field name wins over a Chinese header or alias of the same field (a results
    file written with ``--lang zh`` keeps the field name for a result column whose Chinese
    header an input column already has); that other column is then kept under its own name."""
    mapping: dict[str, str] = {}
    taken: dict[str, str] = {}
    exact = set(names)
    for n in names:
        # a header repeated in a CSV file, which polars names ``x_duplicated_0``: a field given
        # twice is refused (which column is meant is not for the report to guess)
        twin = re.fullmatch(r"(.+)_duplicated_[0-9]+", n)
        if twin and twin[1] in exact and canonical_header(twin[1]) is not None:
            raise ResultsError(Problem(f"two columns are named {twin[1]!r}", source=source, line=1))
        f = canonical_header(n)
        if f is None or (f != n and f in exact):
            if others and n not in KNOWN_FIELDS:
                mapping[n] = n[1:] if re.match(NEUTRALISED_RE, n) and n[1:] not in exact else n
            continue
        if want is not None and f not in want:
            continue
        if f in taken:
            raise ResultsError(Problem(
                f"columns {taken[f]!r} and {n!r} both name the field {f!r}", source=source, line=1))
        taken[f] = n
        mapping[n] = f
    return mapping


def _named_by_readers(p: Path, want: frozenset[str] | None, others: bool) -> pl.DataFrame:
    """A file read by the claim files' reader (:func:`medaid.io.claim_readers.read_raw`: XLSX cells and
    JSON numbers as exact text, IDs held as numbers by the one rule), columns renamed as
    :func:`_rename` says, with its ``row`` column (the line as the user sees it)."""
    def names(headers: list[str]) -> list[str]:
        m = _rename(headers, str(p), want, others)
        out: list[str] = []
        for i, h in enumerate(headers):
            n = m.get(h, f"\0{i}")  # \0: not wanted, dropped
            out.append(n if n not in out else f"{n}_{i + 1}")  # a repeated header
        return out

    raw, problems = read_raw(p, names=names)
    if problems:
        raise ResultsError(problems[:MAX_PROBLEMS])
    return raw.select(pl.col(ROW).alias(LINE), *[c for c in raw.columns if c != ROW and not c.startswith("\0")])


def _read_csv(p: Path, sep: str, want: frozenset[str] | None = None, others: bool = False) -> pl.DataFrame:
    src: Any = p
    with open(p, "rb") as fh:
        if detect_encoding(fh.read(SNIFF_BYTES)) != "utf-8":
            src = _gb18030(p)
    try:
        try:
            header = pl.read_csv(src, separator=sep, infer_schema=False, encoding="utf8", n_rows=0).columns
            m = _rename(header, str(p), want, others)
            if isinstance(src, io.BytesIO):
                src.seek(0)
            # Only the wanted columns are parsed (a results file carries hashes the report never reads).
            raw = pl.read_csv(src, separator=sep, infer_schema=False, encoding="utf8", columns=list(m) or None)
        except pl.exceptions.ComputeError as e:
            if isinstance(src, io.BytesIO) or "utf-8" not in str(e).lower():
                raise
            # UTF-8 at the start, GBK later on (Chinese text only in later rows): read it as GBK
            src = _gb18030(p)
            raw = pl.read_csv(src, separator=sep, infer_schema=False, encoding="utf8", columns=list(m) or None)
    except pl.exceptions.NoDataError:
        raise ResultsError(Problem("the file is empty", source=str(p))) from None
    except pl.exceptions.ComputeError as e:
        raise ResultsError(Problem(f"not readable as CSV ({str(e).splitlines()[0]})", source=str(p))) from None
    return raw.select([pl.col(k).alias(v) for k, v in m.items()])


def _gb18030(p: Path) -> io.BytesIO:
    """A CSV file that is not UTF-8, as Chinese spreadsheet exports write it (GBK/GB18030),
    recoded to UTF-8; anything else is refused."""
    try:
        return io.BytesIO(as_utf8(p.read_bytes()))
    except UnicodeDecodeError:
        raise ResultsError(Problem("is neither UTF-8 nor GB18030 text", source=str(p))) from None


def _read_jsonl(p: Path, want: frozenset[str] | None = None, others: bool = False) -> pl.DataFrame:
    """JSON Lines.  medaid writes amounts as text: polars reads such a file at once.  A file
    whose amounts are JSON numbers (polars would read them through a float), or that polars
    cannot read, is read by the claim files' reader (numbers as their exact text)."""
    try:
        raw = pl.read_ndjson(p, infer_schema_length=None)
    except pl.exceptions.PolarsError:
        return _named_by_readers(p, want, others)
    m = _rename(raw.columns, str(p), want, others)
    if _json_numbers(p, [k for k, f in m.items() if f in MONEY_FIELDS]):
        return _named_by_readers(p, want, others)
    return raw.select([pl.col(k).alias(v) for k, v in m.items()])


def _json_numbers(p: Path, keys: list[str]) -> bool:
    """Whether some value of these keys is a JSON number (not text) somewhere in the file: a
    byte search for ``"key": <digit or ->``, the key as JSON writes it (escaped or not)."""
    if not keys or not p.stat().st_size:
        return False
    written = {json.dumps(k, ensure_ascii=a).encode() for k in keys for a in (True, False)}
    pattern = re.compile(b"(?:" + b"|".join(re.escape(k) for k in sorted(written)) + rb")\s*:\s*[-0-9]")
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return pattern.search(mm) is not None


def _read_parquet(p: Path, want: frozenset[str] | None = None, others: bool = False) -> pl.DataFrame:
    try:
        m = _rename(list(pl.read_parquet_schema(p)), str(p), want, others)
        raw = pl.read_parquet(p, columns=list(m))
    except Exception as e:  # pyarrow/polars raise many kinds for a bad file
        raise ResultsError(Problem(f"not readable as Parquet ({str(e).splitlines()[0]})", source=str(p))) from None
    raw = raw.select([pl.col(k).alias(v) for k, v in m.items()])
    exprs = []
    for f in raw.columns:
        dtype = raw.schema[f]
        if f in MONEY_FIELDS and dtype != pl.String:
            if not isinstance(dtype, pl.Decimal):
                raise ResultsError(Problem(
                    f"money in Parquet must be Decimal(18,2) yuan (or yuan text), not {dtype}",
                    source=str(p), field=f))
            fen, too_fine = decimal_fen(pl.col(f), dtype.scale or 0)
            if too_fine is not None:
                bad = raw.select(too_fine.arg_true().first()).item()
                if bad is not None:
                    raise ResultsError(Problem("has more than two decimals", source=str(p),
                                               line=bad + 1, field=f))
            exprs.append(fen.alias(f))
        elif f == "date" and isinstance(dtype, pl.Datetime):
            exprs.append(pl.col(f).dt.date())
        else:
            exprs.append(pl.col(f))
    return raw.select(exprs)


def _read_xlsx(p: Path, want: frozenset[str] | None = None, others: bool = False) -> pl.DataFrame:
    """XLSX, by the claim files' reader: numeric cells as their shortest decimal text (an
    amount with a third decimal is then refused, never rounded), date cells as ISO text."""
    return _named_by_readers(p, want, others)

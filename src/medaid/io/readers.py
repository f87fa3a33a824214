"""Claim files → validated frames: CSV, XLSX, JSON Lines and Parquet, with per-row errors.

Rules implemented (docs/calculation.md#money, README.md#reliability; issue #4 *Validation per row*):

* Every file is first read as text: all columns are ``String``, named by the canonical field
  names of :data:`medaid.io.columns.HEADER_ALIASES` (English or Chinese headers, case-folded) or
  by ``--map column=field``; other columns pass through unchanged.  A ``row`` column (``Int64``)
  holds the line as the user sees it: the header is line 1 of a CSV file, the sheet row of an
  XLSX file, the line of a JSON Lines file, the record number (from 1) of a Parquet file.
* :func:`medaid.io.validation.validate_frame` (re-exported here) then types the text, vectorised.
* XLSX numeric cells arrive from openpyxl as floats: this module turns them into text with
  ``repr()`` at once (``1234.5`` → ``"1234.5"``) and parses that text like any other; this is the
  one place a float is seen, and a float that is not an exact amount with two decimals
  (``1234.5600000000001``) is refused, never rounded.
* An ID (claim or person) that an XLSX cell, a JSON number or a Parquet numeric column holds
  as a number is its exact digits when it is a whole number of at most 15 digits, and the row
  is refused otherwise (:func:`medaid.io.validation.number_as_id`: a spreadsheet keeps 15
  significant digits, so an 18-digit ID typed as a number has lost its last ones).
* JSON Lines files must be UTF-8 (as JSON is); GBK is read from CSV only.

The work is split by format: headers (:mod:`.headers`), encodings (:mod:`.encodings`), CSV
read whole (:mod:`.csv_readers`) or in pieces (:mod:`.csv_pieces`), XLSX (:mod:`.sheet_readers`),
JSON Lines and Parquet (:mod:`.record_readers`); this module is the entry and re-exports them.

Problems are data: every refused row is a record (``row``, ``claim_id``, ``field``,
``message``); only whole-file problems (unreadable file, missing required columns) raise
:class:`ReadError`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import Problem
from .columns import MONEY_COLUMNS
from .csv_pieces import CHUNK_BYTES, CsvPieces, NotChunkable, csv_pieces
from .csv_readers import find_csv_header, read_csv, read_csv_data
from .encodings import cr_only, utf8_copy
from .headers import HEADER_SEARCH_ROWS, canonical_names, parse_mapping, pick_header
from .raw import FORMATS, RawFile, ReadError, file_format
from .record_readers import numeric_id_problems, read_jsonl, read_parquet, text_columns
from .sheet_readers import read_xlsx
from .validation import (
    REJECT_COLUMNS,
    ROW,
    empty_rejects,
    problems_frame,
    validate_frame,
    yuan_to_fen,
)

__all__ = [
    "CHUNK_BYTES", "FORMATS", "HEADER_SEARCH_ROWS", "MONEY_COLUMNS", "REJECT_COLUMNS", "ROW",
    "CsvPieces", "NotChunkable", "RawFile", "ReadError", "canonical_names", "cr_only",
    "csv_pieces", "empty_rejects", "file_format", "find_csv_header", "numeric_id_problems",
    "parse_mapping", "pick_header", "problems_frame", "read_claims", "read_csv_data", "read_raw",
    "read_raw_file", "read_results", "text_columns", "utf8_copy", "validate_frame", "yuan_to_fen",
]

if TYPE_CHECKING:
    import polars as pl


def read_raw(
    path: str | Path,
    *,
    encoding: str | None = None,
    sheet: str | None = None,
    mapping: Mapping[str, str] | None = None,
    reserved: frozenset[str] | None = None,
    names: Callable[[list[str]], list[str]] | None = None,
) -> tuple["pl.DataFrame", list[Problem]]:
    """Read a claim file as text: ``(frame, problems)`` of :func:`read_raw_file`."""
    got = read_raw_file(path, encoding=encoding, sheet=sheet, mapping=mapping, reserved=reserved,
                        names=names)
    return got.frame, got.problems



def read_raw_file(
    path: str | Path,
    *,
    encoding: str | None = None,
    sheet: str | None = None,
    mapping: Mapping[str, str] | None = None,
    reserved: frozenset[str] | None = None,
    names: Callable[[list[str]], list[str]] | None = None,
) -> RawFile:
    """Read a claim file as text (:class:`RawFile`): the rows, the rows that could not be split
    into fields or that hold an ID as a number that cannot be exact, where the header is and
    how many blank lines were skipped.

    Columns are renamed to canonical field names, or by ``names``, a function from the
    headers to the column names (how results files are read, :mod:`medaid.io.results`).
    The header of a CSV file or an XLSX sheet is found among its first rows
    (:func:`pick_header`): titles above it are not rows, and line numbers stay the file's.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ReadError(Problem("no such file", source=source))
    fmt = file_format(path)
    name_of: Callable[..., list[str]]
    if names is not None:
        def name_of(cells: list[str], line: int = 1) -> list[str]:
            del line
            return names(cells)
    else:
        name_of = functools.partial(canonical_names, mapping=mapping, source=source, reserved=reserved)
    if fmt == "csv":
        return read_csv(path, source, encoding, name_of, mapping)
    if fmt == "xlsx":
        return read_xlsx(path, source, sheet, name_of, mapping)
    if fmt == "jsonl":
        return read_jsonl(path, source, name_of)
    return RawFile(*read_parquet(path, source, name_of), 0)


def read_claims(
    path: str | Path,
    *,
    encoding: str | None = None,
    sheet: str | None = None,
    mapping: Mapping[str, str] | None = None,
) -> tuple["pl.DataFrame", "pl.DataFrame", "pl.DataFrame"]:
    """Read and validate a claim file: ``(raw, clean, rejects)``.

    ``raw`` is the text frame (kept for the rejects file), ``clean`` the typed valid rows and
    ``rejects`` every problem (structural ones first merged in line order)."""
    import polars as pl

    raw, problems = read_raw(path, encoding=encoding, sheet=sheet, mapping=mapping)
    clean, rejects = validate_frame(raw, str(path))
    if problems:
        rejects = pl.concat([problems_frame(problems), rejects]).sort(ROW, maintain_order=True)
    return raw, clean, rejects


# --------------------------------------------------------------------------------------------
# results files, read back


def read_results(path: str | Path, *, required: Iterable[str] = ()) -> "pl.DataFrame":
    """Read back a file ``medaid batch`` or ``medaid recalc`` wrote (any format), through the
    one reader of results files, :func:`medaid.io.results.load_results` (``medaid report``
    reads them there too, so both accept the same files, e.g. a results CSV saved as GBK).

    Money → ``Int64`` fen (exactly; ``adjustment`` may be negative), ``date`` → Date,
    ``benefit_year`` → Int32, ``bracket`` → Int8; every column is kept, in the file's order;
    text that the export neutralised against formula injection gets its leading ``'`` removed.
    ``required``: fields the file must have (a clear refusal names the missing ones).  Raises
    :class:`medaid.io.results.ResultsError` naming file, line and field of bad values."""
    from .results import load_results

    return load_results(path, required=required, others=True)

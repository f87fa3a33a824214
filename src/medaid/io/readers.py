"""Claim files → validated frames: CSV, XLSX, JSON Lines and Parquet, with per-row errors.

Rules implemented (docs/calculation.md#money, README.md#reliability; docs/batch.md, *Input files*):

* Every file is first read as text: all columns are ``String``, named by the canonical field
  names of :data:`medaid.io.columns.HEADER_ALIASES` (English or Chinese headers, case-folded) or
  by ``--map column=field``; other columns pass through unchanged.  A ``row`` column (``Int64``)
  holds the line as the user sees it: the header is line 1 of a CSV file, the sheet row of an
  XLSX file, the line of a JSON Lines file, the record number (from 1) of a Parquet file.
* :func:`medaid.io.validation.validate_frame` (re-exported here) then types the text, vectorised.
* XLSX numeric cells arrive from openpyxl as floats: :mod:`.sheet_readers` turns them into
  text with ``repr()`` at once (``1234.5`` → ``"1234.5"``), which is parsed like any other;
  this is the one place a float is seen, and a float that is not an exact amount with two
  decimals (``1234.5600000000001``) is refused, never rounded.
* An ID (claim or person) that an XLSX cell, a JSON number or a Parquet numeric column holds
  as a number is its exact digits when it is a whole number of at most 15 digits, and the row
  is refused otherwise (:func:`medaid.io.ids.number_as_id`: a spreadsheet keeps 15
  significant digits, so an 18-digit ID typed as a number has lost its last ones).
* JSON Lines files must be UTF-8 (as JSON is); GBK is read from CSV only.

The work is split by format: headers (:mod:`.headers`), encodings (:mod:`.encodings`), CSV
read whole (:mod:`.csv_readers`) or in pieces (:mod:`.csv_pieces`), XLSX (:mod:`.sheet_readers`),
JSON Lines and Parquet (:mod:`.record_readers`); the entry is :mod:`.claim_readers`
(:func:`read_raw_file`, :func:`read_claims`).  Results files are read back by
:mod:`.results` (:func:`read_results`).  This module re-exports them all: import from here.

Problems are data: every refused row is a record (``row``, ``claim_id``, ``field``,
``message``); only whole-file problems (unreadable file, missing required columns) raise
:class:`ReadError`.
"""

from __future__ import annotations

from .amounts import yuan_to_fen
from .claim_readers import read_claims, read_raw, read_raw_file
from .columns import MONEY_COLUMNS, REJECT_COLUMNS, ROW
from .csv_pieces import CHUNK_BYTES, CsvPieces, NotChunkable, csv_pieces
from .csv_readers import find_csv_header, read_csv_data
from .encodings import cr_only, utf8_copy
from .headers import HEADER_SEARCH_ROWS, canonical_names, parse_mapping, pick_header
from .raw import FORMATS, RawFile, ReadError, file_format
from .record_readers import numeric_id_problems, text_columns
from .rejects import empty_rejects, problems_frame
from .results import read_results
from .validation import validate_frame

__all__ = [
    "CHUNK_BYTES", "FORMATS", "HEADER_SEARCH_ROWS", "MONEY_COLUMNS", "REJECT_COLUMNS", "ROW",
    "CsvPieces", "NotChunkable", "RawFile", "ReadError", "canonical_names", "cr_only",
    "csv_pieces", "empty_rejects", "file_format", "find_csv_header", "numeric_id_problems",
    "parse_mapping", "pick_header", "problems_frame", "read_claims", "read_csv_data", "read_raw",
    "read_raw_file", "read_results", "text_columns", "utf8_copy", "validate_frame", "yuan_to_fen",
]

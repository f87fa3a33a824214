"""Claim files → text frames (:func:`read_raw_file`) → validated frames (:func:`read_claims`).

The entry of the claim readers: a file is read by the reader of its format (CSV whole,
:mod:`.csv_readers`; XLSX, :mod:`.sheet_readers`; JSON Lines and Parquet,
:mod:`.record_readers`) as text, every column ``String`` named by field, with a ``row`` column
(the line as the user sees it), then typed by :func:`medaid.io.validation.validate_frame`.
The rules are those of :mod:`medaid.io.readers`, which re-exports these functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path

import polars as pl

from ..errors import Problem
from .columns import ROW
from .csv_readers import read_csv
from .headers import canonical_names
from .raw import RawFile, ReadError, file_format
from .record_readers import read_jsonl, read_parquet
from .rejects import problems_frame
from .sheet_readers import read_xlsx
from .validation import validate_frame


def read_raw(
    path: str | Path,
    *,
    encoding: str | None = None,
    sheet: str | None = None,
    mapping: Mapping[str, str] | None = None,
    reserved: frozenset[str] | None = None,
    names: Callable[[list[str]], list[str]] | None = None,
) -> tuple[pl.DataFrame, list[Problem]]:
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
    (:func:`medaid.io.headers.pick_header`): titles above it are not rows, and line numbers stay the file's.
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
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Read and validate a claim file: ``(raw, clean, rejects)``.

    ``raw`` is the text frame (kept for the rejects file), ``clean`` the typed valid rows and
    ``rejects`` every problem (structural ones first merged in line order)."""
    raw, problems = read_raw(path, encoding=encoding, sheet=sheet, mapping=mapping)
    clean, rejects = validate_frame(raw, str(path))
    if problems:
        rejects = pl.concat([problems_frame(problems), rejects]).sort(ROW, maintain_order=True)
    return raw, clean, rejects

"""What every claim-file reader returns and refuses with: :class:`RawFile`, :class:`ReadError`,
the formats by extension (:func:`file_format`) and the text frame built from columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import polars as pl

from ..errors import MedaidError, Problem
from .columns import ROW

#: File formats by extension.
FORMATS: dict[str, str] = {
    ".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet",
}


class ReadError(MedaidError):
    """A claim file cannot be read at all (format, encoding, missing columns)."""


def file_format(path: str | Path) -> str:
    """The format of ``path`` by its extension (``csv``, ``xlsx``, ``jsonl``, ``parquet``)."""
    ext = Path(path).suffix.lower()
    try:
        return FORMATS[ext]
    except KeyError:
        raise ReadError(Problem(
            f"unknown file type {ext or '(none)'!r}; use .csv, .xlsx, .jsonl or .parquet",
            source=str(path))) from None


class RawFile(NamedTuple):
    """A claim file read as text (:func:`read_raw_file`).

    Attributes:
        frame: a ``row`` column (``Int64``, the line as the user sees it: the physical line of
            a CSV or JSON Lines file, the sheet row of an XLSX file, the record number of a
            Parquet file) and every other column as ``String``, named by field.
        problems: rows that could not be split into fields (ragged rows, a stray quote, bad
            JSON), one :class:`Problem` each, located; those rows are not in ``frame``.
        header_line: the header's line (sheet row); the lines above it are titles, not rows
            (0 for formats without a header line: JSON Lines, Parquet).
        blank_lines: blank lines (empty sheet rows between rows) skipped: they are not rows.
    """

    frame: pl.DataFrame
    problems: list[Problem]
    header_line: int = 1
    blank_lines: int = 0

    @property
    def above_header(self) -> int:
        """Lines (sheet rows) above the header: titles, dates, blank lines before it."""
        return max(self.header_line - 1, 0)


def frame_from_columns(
    names: list[str], cols: list[list[Any]], rows: list[int],
) -> pl.DataFrame:
    """The text frame of a reader: ``row`` (``Int64``) and one ``String`` column per name."""
    data: dict[str, Any] = {ROW: pl.Series(ROW, rows, dtype=pl.Int64)}
    for n, c in zip(names, cols):
        data[n] = pl.Series(n, c, dtype=pl.String)
    return pl.DataFrame(data)

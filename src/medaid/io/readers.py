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

Problems are data: every refused row is a record (``row``, ``claim_id``, ``field``,
``message``); only whole-file problems (unreadable file, missing required columns) raise
:class:`ReadError`.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import itertools
import json
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import MedaidError, Problem
from .columns import (
    CLAIM_FIELDS,
    CLAIM_MONEY_FIELDS,
    HEADER_ALIASES,
    ID_FIELDS,
    REQUIRED_FIELDS,
    RESULT_FIELDS,
    RESULT_MONEY_FIELDS,
)
from .validation import (
    REJECT_COLUMNS,
    ROW,
    empty_rejects,
    id_number_problem,
    number_as_id,
    problems_frame,
    validate_frame,
    yuan_to_fen,
)

__all__ = [
    "FORMATS", "MONEY_COLUMNS", "REJECT_COLUMNS", "ROW", "ReadError", "canonical_names",
    "empty_rejects", "file_format", "parse_mapping", "problems_frame", "read_claims",
    "read_raw", "read_results", "validate_frame", "yuan_to_fen",
]

if TYPE_CHECKING:
    import polars as pl

#: File formats by extension.
FORMATS: dict[str, str] = {
    ".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet",
}
#: Column names the batch adds; input columns so named are renamed ``NAME_input``.
_RESERVED = frozenset(RESULT_FIELDS) | {ROW, "old_relief", "new_relief", "adjustment", "status"}


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


# --------------------------------------------------------------------------------------------
# headers


def _norm_header(h: str) -> str:
    return unicodedata.normalize("NFKC", str(h)).strip().casefold()


_ALIAS_INDEX: dict[str, str] = {
    _norm_header(a): field for field, aliases in HEADER_ALIASES.items() for a in aliases
}


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["金额=self_pay", ...]`` (``--map column=field``) → ``{"金额": "self_pay"}``."""
    out: dict[str, str] = {}
    for p in pairs:
        col, sep, field = p.partition("=")
        if not sep or not col.strip() or field.strip() not in HEADER_ALIASES:
            raise ReadError(Problem(
                f"--map {p!r}: write COLUMN=FIELD with FIELD one of {', '.join(HEADER_ALIASES)}"))
        out[col.strip()] = field.strip()
    return out


def _field_of(h: Any, mapping: Mapping[str, str], by_norm: Mapping[str, str]) -> str | None:
    """The field a header names (``--map`` first, then the aliases), or ``None``."""
    h = "" if h is None else str(h)
    return mapping.get(h) or by_norm.get(_norm_header(h)) or _ALIAS_INDEX.get(_norm_header(h))


def canonical_names(
    headers: list[str], mapping: Mapping[str, str] | None, source: str,
    reserved: frozenset[str] | None = None, line: int = 1,
) -> list[str]:
    """Rename headers to field names (``--map`` first, then the aliases); others unchanged.

    Raises :class:`ReadError` when two columns name the same field or a required field has no
    column, naming the file, the header's ``line`` and what is missing."""
    mapping = mapping or {}
    by_norm = {_norm_header(k): v for k, v in mapping.items()}
    names: list[str] = []
    taken: dict[str, str] = {}
    problems: list[Problem] = []
    for h in headers:
        h = "" if h is None else str(h)
        field = _field_of(h, mapping, by_norm)
        if field is not None:
            if field in taken:
                problems.append(Problem(
                    f"columns {taken[field]!r} and {h!r} both give {field}; drop one or use --map",
                    source=source, line=line, field=field))
                field = h
            else:
                taken[field] = h
        name = field or h.strip() or f"column_{len(names) + 1}"
        if field is None and name in (_RESERVED if reserved is None else reserved):  # an input column named like a result column
            name = f"{name}_input"
        names.append(name)
    missing = [f for f in REQUIRED_FIELDS if f not in taken]
    if missing:
        problems.append(Problem(
            "missing required column(s): " + ", ".join(missing)
            + f"; found {', '.join(repr(str(h)) for h in headers)}. Name them in English or "
            "Chinese (e.g. 结算单号, 人员编号, 结算日期, 合规自付费用) or use --map COLUMN=FIELD",
            source=source, line=line))
    if problems:
        raise ReadError(problems)
    seen: dict[str, int] = {}
    for i, n in enumerate(names):  # duplicate pass-through headers get a suffix
        if n in seen:
            seen[n] += 1
            names[i] = f"{n}_{seen[n]}"
        else:
            seen[n] = 1
    return names


#: How much of a CSV file's start is looked at for its header.
_HEAD_BYTES = 1 << 16
#: The header is looked for among this many first non-blank lines (sheet rows): exports put
#: a title, a date range or a unit line above it.
HEADER_SEARCH_ROWS = 10


def pick_header(
    candidates: Iterable[tuple[int, list[Any]]], name_of: Callable[..., list[str]],
    mapping: Mapping[str, str] | None, source: str,
) -> tuple[int, list[str]]:
    """The header among the first rows of a file: ``(line, names)``.

    ``candidates`` are ``(line, cells)`` of the first non-blank lines (sheet rows), in order;
    the first :data:`HEADER_SEARCH_ROWS` are looked at.  The header is the first of them that
    names every required field (English or Chinese, or by ``--map``); the lines above it are
    titles, not rows.  When none does, the candidate naming the most known fields (the first
    of equals) is taken as the header the user meant, and ``name_of`` (``canonical_names``)
    raises its :class:`ReadError` naming that line and the required columns it lacks."""
    mapping = mapping or {}
    by_norm = {_norm_header(k): v for k, v in mapping.items()}
    best: tuple[int, int, list[Any]] | None = None
    for i, (line, cells) in enumerate(candidates):
        if i >= HEADER_SEARCH_ROWS:
            break
        fields = {_field_of(h, mapping, by_norm) for h in cells} - {None}
        if all(f in fields for f in REQUIRED_FIELDS):
            return line, name_of(cells, line=line)
        if best is None or len(fields) > best[0]:
            best = (len(fields), line, cells)
    if best is None:
        raise ReadError(Problem("the file is empty", source=source))
    return best[1], name_of(best[2], line=best[1])


def find_csv_header(
    head: bytes, name_of: Callable[..., list[str]], mapping: Mapping[str, str] | None, source: str,
) -> "tuple[int, int, int, list[str]] | None":
    """The header of a UTF-8 CSV file whose first bytes are ``head``: ``(line, start, end,
    names)``, ``start`` and ``end`` the byte offsets of the header line (``end`` after its line
    break); found by :func:`pick_header` among
    the first lines (``name_of`` names the columns, or raises naming the line).  ``None`` when
    the first lines cannot be placed with certainty before the header is found (a quote left
    open on a line, a line longer than ``head``, a line break other than ``\\n``/``\\r\\n``,
    bytes that are not UTF-8): then the file is read the careful way, which says what is wrong."""
    found: list[tuple[int, list[str]]] = []
    ends: dict[int, tuple[int, int]] = {}
    pos, line, sure = 0, 1, True
    while len(found) < HEADER_SEARCH_ROWS:
        nl = head.find(b"\n", pos)
        if nl < 0:
            sure = not head[pos:].strip()  # the first lines are the whole file
            break
        raw = head[pos:nl + 1]
        if raw.count(b'"') % 2 or b"\r" in raw[:-2]:
            sure = False
            break
        try:
            text = raw.decode("utf-8-sig" if pos == 0 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            return None
        if text.strip():
            found.append((line, next(csv.reader([text]))))
            ends[line] = (pos, nl + 1)
        pos, line = nl + 1, line + 1
    if not found:
        return None
    try:
        at, names = pick_header(found, name_of, mapping, source)
    except ReadError:
        if sure:
            raise
        return None
    return at, ends[at][0], ends[at][1], names


# --------------------------------------------------------------------------------------------
# reading raw text frames


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

    frame: "pl.DataFrame"
    problems: list[Problem]
    header_line: int = 1
    blank_lines: int = 0

    @property
    def above_header(self) -> int:
        """Lines (sheet rows) above the header: titles, dates, blank lines before it."""
        return max(self.header_line - 1, 0)


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
        return _read_csv(path, source, encoding, name_of, mapping)
    if fmt == "xlsx":
        return _read_xlsx(path, source, sheet, name_of, mapping)
    if fmt == "jsonl":
        return _read_jsonl(path, source, name_of)
    return RawFile(*_read_parquet(path, source, name_of), 0)


def _sniff_encoding(path: Path, encoding: str | None, source: str) -> str:
    """``utf-8`` (with or without BOM) or ``gb18030``, judged on the first megabyte."""
    if encoding:
        try:
            import codecs

            return codecs.lookup(encoding).name
        except LookupError:
            raise ReadError(Problem(f"unknown encoding {encoding!r}", source=source)) from None
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    import codecs

    dec = codecs.getincrementaldecoder("utf-8")()
    try:
        dec.decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"


def cr_only(head: bytes) -> bool:
    """Whether text whose first bytes are ``head`` ends its lines with a carriage return alone
    (Excel's "CSV (Macintosh)"): a ``\\r`` and no ``\\n``.  Such files are read with each
    ``\\r`` taken as a line break (see :func:`utf8_copy`)."""
    return b"\r" in head and b"\n" not in head


def _read_csv(
    path: Path, source: str, encoding: str | None, name_of: Callable[..., list[str]],
    mapping: Mapping[str, str] | None = None,
) -> RawFile:

    enc = _sniff_encoding(path, encoding, source)
    data: bytes | Path
    if enc == "utf-8":
        data = path
    else:
        try:
            data = path.read_bytes().decode(enc).encode("utf-8")
        except UnicodeDecodeError as e:
            raise ReadError(Problem(
                f"cannot be decoded as {enc} at byte {e.start}; give --encoding", source=source)) from None
    try:
        return read_csv_data(data, source, name_of, mapping)
    except UnicodeError:
        if enc == "utf-8" and encoding is None:  # a GBK file with an ASCII first megabyte
            return _read_csv(path, source, "gb18030", name_of, mapping)
        raise ReadError(Problem(f"cannot be decoded as {enc}; give --encoding", source=source)) from None


def read_csv_data(
    data: bytes | Path, source: str, name_of: Callable[..., list[str]],
    mapping: Mapping[str, str] | None = None,
) -> RawFile:
    """A UTF-8 CSV file (a path, or its bytes) read whole as text (:class:`RawFile`), exactly:
    lines ended by CR alone are read as lines (:func:`cr_only`), the header is found among the
    first lines (:func:`pick_header`), a file with one line per row is read by polars and
    checked field by field, any other by the careful reader (:func:`_read_csv_careful`).
    Raises :class:`UnicodeError` for bytes that are not UTF-8 (the caller knows the encoding).
    The Spark reader reads each file with it too."""
    import polars as pl

    if isinstance(data, Path):
        with open(data, "rb") as f:
            head = f.read(_HEAD_BYTES)
    else:
        head = data[:_HEAD_BYTES]
    if cr_only(head):  # lines ended by CR alone: each CR is a line break
        data = (data.read_bytes() if isinstance(data, Path) else data).replace(b"\r", b"\n")
        head = data[:_HEAD_BYTES]
    full = data
    found = find_csv_header(head, name_of, mapping, source)
    if found is not None:
        header_line, start = found[0], found[1]
        if start:  # titles above the header: read from the header on, lines numbered as the file's
            data = (data.read_bytes() if isinstance(data, Path) else data)[start:]
        newlines, quoted, commas, ends_nl = _scan(data)
        try:
            frame = pl.read_csv(data, infer_schema=False, raise_if_empty=False)
        except pl.exceptions.ComputeError as e:
            if "utf-8" in str(e).lower() or "utf8" in str(e).lower():
                raise UnicodeError(str(e)) from None
            frame = None  # ragged: more fields than the header; located by the careful path
        lines = newlines + (0 if ends_nl else 1)
        names = found[3]
        if frame is not None and frame.width == len(names) and lines == frame.height + 1:
            # one line per row (no newline inside quotes); now check every row has every field
            blank: "pl.Series | None" = None
            if not quoted:
                n_blank = frame.select(pl.all_horizontal(pl.all().is_null()).sum()).item()
                if commas == (frame.width - 1) * (frame.height - n_blank + 1):
                    blank = (frame.select(pl.all_horizontal(pl.all().is_null())).to_series()
                             if n_blank else pl.Series([], dtype=pl.Boolean))
            else:
                blank = _quoted_blank_lines(data, frame.width, frame.height)
            if blank is not None:
                frame.columns = names
                frame = frame.with_row_index(ROW, offset=header_line + 1).with_columns(pl.col(ROW).cast(pl.Int64))
                n = int(blank.sum()) if blank.len() else 0
                if n:
                    frame = frame.filter(~blank)
                return RawFile(frame, [], header_line, n)
    text = (full.read_bytes() if isinstance(full, Path) else full).decode("utf-8-sig", errors="strict")
    return _read_csv_careful(text, source, name_of, mapping)


#: Large CSV files are read and typed in pieces of about this many bytes, so that the text of
#: the whole file is never in memory at once (README.md#performance-measured, peak memory).
CHUNK_BYTES = 8 << 20


class NotChunkable(Exception):
    """The file cannot be read piece by piece exactly; read it whole instead."""


class CsvPieces:
    """A UTF-8 CSV file read in pieces cut at line ends (outside quoted fields).

    Iterating yields raw text frames like :func:`read_raw`'s (``row`` = line number, String
    columns with canonical names, blank lines dropped), one per piece; each piece is checked as
    the whole-file reader checks the file (one line per row, every row with every field), and
    :class:`NotChunkable` is raised at the first piece that is not so (then the caller reads
    the file whole, which locates the problem).  :meth:`rows` reads given lines again.
    ``header_line`` is the header's line (lines above it are titles, not rows);
    ``blank_lines`` counts the blank lines of the pieces read so far."""

    def __init__(self, path: Path, names: list[str], header_end: int, chunk_bytes: int,
                 categories: Iterable[str] = (), header_line: int = 1) -> None:
        self.path, self.names, self.chunk_bytes = path, names, chunk_bytes
        self.categories = frozenset(categories)
        self.header_end, self.header_line = header_end, header_line
        self.blank_lines = 0
        self.spans: list[tuple[int, int, int, int]] = []  # start, end, first line, lines

    def __iter__(self) -> Iterator["pl.DataFrame"]:
        with open(self.path, "rb") as f:
            f.seek(self.header_end)
            pos, line = self.header_end, self.header_line + 1
            while True:
                buf = f.read(self.chunk_bytes)
                if not buf:
                    return
                if not buf.endswith(b"\n"):
                    buf += f.readline()
                n = buf.count(b"\n") + (0 if buf.endswith(b"\n") else 1)
                self.spans.append((pos, pos + len(buf), line, n))
                frame = self._frame(buf, line, n, check=True)
                self.blank_lines += n - frame.height
                yield frame
                pos += len(buf)
                line += n

    def _frame(self, buf: bytes, line: int, lines: int, check: bool) -> "pl.DataFrame":
        import polars as pl

        width = len(self.names)
        quotes = buf.count(b'"')
        if check and quotes % 2:
            # every field's quotes come in pairs ("" inside a quoted field too), so an even
            # count before each cut means no cut falls inside a quoted field
            raise NotChunkable
        try:
            frame = pl.read_csv(buf, has_header=False, raise_if_empty=False,
                                schema={n: pl.Categorical if n in self.categories else pl.String
                                        for n in self.names}, missing_columns="insert")
        except pl.exceptions.PolarsError:
            raise NotChunkable from None
        if frame.width != width or frame.height != lines:
            raise NotChunkable
        frame = frame.with_row_index(ROW, offset=line).with_columns(pl.col(ROW).cast(pl.Int64))
        if quotes:
            # every line's quoted sections closed on that line, and its commas outside them
            # counted (as the whole-file reader checks a quoted file)
            blank = _quoted_piece_lines(buf, width, frame.height)
            if blank is None:
                raise NotChunkable
            return frame.filter(~blank) if bool(blank.any()) else frame
        if not frame[self.names[-1]].null_count():
            # a short row or a blank line would leave the last column empty: neither is here
            return frame
        blank = frame.select(pl.all_horizontal(pl.exclude(ROW).is_null())).to_series()
        n_blank = int(blank.sum())
        if check and buf.count(b",") != (width - 1) * (frame.height - n_blank):
            raise NotChunkable
        return frame.filter(~blank) if n_blank else frame

    def rows(self, lines: "pl.Series") -> "pl.DataFrame":
        """The raw text rows at the given line numbers (from pieces already read)."""
        import polars as pl

        out = []
        want = set(lines.to_list())
        with open(self.path, "rb") as f:
            for start, end, line, n in self.spans:
                if any(line <= x < line + n for x in want):
                    f.seek(start)
                    frame = self._frame(f.read(end - start), line, n, check=False)
                    out.append(frame.filter(pl.col(ROW).is_in(lines.implode())))
        return pl.concat(out)


def _quoted_piece_lines(buf: bytes, width: int, height: int) -> "pl.Series | None":
    """For a piece holding quote characters: which of its ``height`` rows are blank lines, or
    ``None`` unless every line is one whole row: its quoted sections closed on the line (no
    quote left once they are removed) and ``width − 1`` commas outside them."""
    import polars as pl

    try:
        lines = pl.read_csv(buf, has_header=False, separator="\x1f", quote_char=None,
                            new_columns=["line"], infer_schema=False, raise_if_empty=False)
    except pl.exceptions.PolarsError:
        return None
    if lines.height != height or lines.width != 1:
        return None
    bare = pl.col("line").str.replace_all(r'"[^"]*"', "")
    check = lines.select(
        pl.col("line").is_null().alias("blank"),
        bare.str.count_matches(",", literal=True).alias("commas"),
        bare.str.contains('"', literal=True).alias("open"),
    )
    bad = check.filter(~pl.col("blank") & ((pl.col("commas") != width - 1) | pl.col("open"))).height
    return None if bad else check["blank"]


def csv_pieces(
    path: str | Path, *, encoding: str | None = None, mapping: Mapping[str, str] | None = None,
    reserved: frozenset[str] | None = None, chunk_bytes: int | None = None,
    categories: Iterable[str] = (), source: str | None = None,
) -> CsvPieces | None:
    """A :class:`CsvPieces` reader for a UTF-8 CSV file, or ``None`` when the file must be
    read whole by :func:`read_raw` (another format or encoding, no data lines, a header
    spanning lines).  Columns named in ``categories`` are parsed as ``Categorical`` (the same
    text, hashed once by the parser).  ``source``: the file name messages give (default: the
    path; another name when ``path`` is a UTF-8 copy, see :func:`utf8_copy`)."""

    path = Path(path)
    if not path.is_file() or file_format(path) != "csv":
        return None
    source = source or str(path)
    if _sniff_encoding(path, encoding, source) != "utf-8":
        return None
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    name_of = functools.partial(canonical_names, mapping=mapping, source=source, reserved=reserved)
    found = find_csv_header(head, name_of, mapping, source)
    if found is None:
        return None
    line, _, end, names = found
    return CsvPieces(path, names, end, chunk_bytes or CHUNK_BYTES, categories, header_line=line)


def utf8_copy(path: str | Path, encoding: str | None = None) -> Path | None:
    """A temporary UTF-8 copy of a CSV file written in another encoding (GB18030/GBK as Chinese
    Excel writes it: detected, or ``encoding``) or with lines ended by a carriage return alone
    (:func:`cr_only`; each ``\\r`` becomes ``\\n``), made piece by piece so that the file is
    never in memory whole; ``None`` when the file is UTF-8 with ``\\n`` line ends already, is
    not a CSV file, or does not decode (the whole-file reader then says where).  Lines stay
    lines, so line numbers are the original's.  The caller removes the copy (it is created readable by its owner only,
    in the system's temporary folder)."""
    import codecs
    import os
    import tempfile

    path = Path(path)
    if not path.is_file() or file_format(path) != "csv":
        return None
    try:
        enc = _sniff_encoding(path, encoding, str(path))
    except ReadError:
        return None
    with open(path, "rb") as f:
        cr = cr_only(f.read(_HEAD_BYTES))
    if enc == "utf-8" and not cr:
        return None
    decoder = codecs.getincrementaldecoder(enc)(errors="strict")

    def text(chunk: bytes, final: bool = False) -> bytes:
        t = decoder.decode(chunk, final=final)
        return (t.replace("\r", "\n") if cr else t).encode("utf-8")

    try:
        fd, name = tempfile.mkstemp(prefix="medaid-", suffix=".csv")
    except OSError as e:
        raise _no_copy(path, e) from None
    try:
        with open(path, "rb") as f, os.fdopen(fd, "wb") as out:
            while chunk := f.read(1 << 22):
                out.write(text(chunk))
            out.write(text(b"", final=True))
    except UnicodeDecodeError:
        os.unlink(name)
        return None
    except OSError as e:  # a full disk (ENOSPC), a quota: the copy goes, the run is refused
        os.unlink(name)
        raise _no_copy(path, e) from None
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _no_copy(path: Path, e: OSError) -> ReadError:
    """The run is refused: the UTF-8 copy of a GBK file could not be written (disk full...)."""
    import tempfile

    return ReadError(Problem(
        f"is not UTF-8, and its temporary UTF-8 copy cannot be written in "
        f"{tempfile.gettempdir()} ({e.strerror or type(e).__name__}); free space there, set "
        "TMPDIR to a folder with room for a copy of the file, or save the file as UTF-8",
        source=str(path)))


def _quoted_blank_lines(data: bytes | Path, width: int, height: int) -> "pl.Series | None":
    """For a quoted CSV with one line per row: which rows are blank lines, or ``None`` when some
    line does not hold exactly ``width`` fields (then the careful reader locates it).  Fields are
    counted by removing quoted sections and counting commas, vectorised."""
    import polars as pl

    try:
        lines = pl.read_csv(data, has_header=False, separator="\x1f", quote_char=None,
                            new_columns=["line"], infer_schema=False, raise_if_empty=False)
    except pl.exceptions.ComputeError:
        return None
    if lines.height != height + 1:
        return None
    check = lines.select(
        pl.col("line").is_null().alias("blank"),
        pl.col("line").str.replace_all(r'"[^"]*"', "").str.count_matches(",", literal=True).alias("commas"),
    )
    bad = check.filter(~pl.col("blank") & (pl.col("commas") != width - 1)).height
    return None if bad else check["blank"][1:]


def _scan(data: bytes | Path) -> tuple[int, bool, int, bool]:
    """Newline count, whether any quote appears, comma count, whether it ends with a newline."""
    if isinstance(data, bytes):
        return data.count(b"\n"), b'"' in data, data.count(b","), data.endswith(b"\n")
    n = c = 0
    quoted = False
    last = b""
    with open(data, "rb") as f:
        while chunk := f.read(1 << 24):
            n += chunk.count(b"\n")
            c += chunk.count(b",")
            quoted = quoted or b'"' in chunk
            last = chunk[-1:]
    return n, quoted, c, last == b"\n"


class _Lines:
    """The physical lines of a text, line breaks kept (``\\n``, ``\\r\\n`` or ``\\r``, as
    Python's csv module reads them), for a csv reader that may give some back: ``taken`` holds
    the lines handed out since it was last emptied."""

    def __init__(self, text: str) -> None:
        self._lines = iter(io.StringIO(text, newline=""))
        self._back: list[str] = []
        self.taken: list[str] = []

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        line = self._back.pop() if self._back else next(self._lines)
        self.taken.append(line)
        return line

    def give_back(self, lines: list[str]) -> None:
        self._back.extend(reversed(lines))


def _stray_quote(rec: list[str], lines: list[str], names: list[str]) -> bool:
    """Whether a record read over several lines is a quote left open by mistake rather than a
    field that holds a line break (a note written over lines): its field count is wrong, a
    line break sits in a claim field (ids, date, amounts, group, kind and hospital never hold
    one), or a line it swallowed whole (not its first or last) holds a row's fields alone."""
    width = len(names)
    if len(rec) != width:
        return True
    if any(("\n" in v or "\r" in v) and n in CLAIM_FIELDS for v, n in zip(rec, names)):
        return True
    return any(len(next(csv.reader([ln.rstrip("\r\n")]), [])) >= width for ln in lines[1:-1])


def _read_csv_careful(
    text: str, source: str, name_of: Callable[..., list[str]],
    mapping: Mapping[str, str] | None = None,
) -> RawFile:
    """The exact path for quoted or irregular files: Python's csv module, line by line.

    Every physical line is accounted for: the header (found among the first lines by
    :func:`pick_header`; the lines above it are titles), a blank line, a row, a line of a
    quoted field that holds a line break, or a problem with its line.  A quote left open by
    mistake (``A2,"P2,2024-01-01,30000``; see :func:`_stray_quote`) would swallow the lines
    after it into one field: that line is refused instead and the lines after it are read on
    their own.  So is a line the csv module cannot read (a field over its size limit)."""
    lines = _Lines(text)
    problems: list[Problem] = []
    line = 1  # the physical line the next record starts on
    blank = 0

    def records() -> Iterator[tuple[int, list[str]]]:
        nonlocal line, blank
        reader = csv.reader(lines)
        while True:
            lines.taken = []
            try:
                rec = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                problems.append(Problem(f"cannot be read as CSV ({e})", source=source, line=line,
                                        field="row"))
                lines.give_back(lines.taken[1:])
                line += 1
                reader = csv.reader(lines)
                continue
            first, taken = line, lines.taken
            if names is not None and len(taken) > 1 and _stray_quote(rec, taken, names):
                problems.append(Problem(
                    'has a quote (") that opens a field and is not closed on this line; the line '
                    "is refused and the lines after it are read on their own", source=source,
                    line=first, field="row"))
                lines.give_back(taken[1:])
                line += 1
                reader = csv.reader(lines)
                continue
            line += len(taken)
            if not rec or (len(rec) == 1 and not rec[0].strip() and "\n" not in rec[0]):
                if names is not None:
                    blank += 1  # an empty line is not a row
                continue
            yield first, rec

    names: list[str] | None = None
    it = records()
    header_line, names = pick_header(it, name_of, mapping, source)
    width = len(names)
    cols: list[list[str | None]] = [[] for _ in range(width)]
    rows: list[int] = []
    for at, rec in it:
        if len(rec) != width:
            problems.append(Problem(
                f"has {len(rec)} fields, the header has {width}", source=source, line=at,
                field="row"))
            continue
        rows.append(at)
        for j, v in enumerate(rec):
            cols[j].append(v if v != "" else None)
    problems.sort(key=lambda p: p.line or 0)
    return RawFile(_frame_from_columns(names, cols, rows), problems, header_line, blank)


def _frame_from_columns(
    names: list[str], cols: list[list[Any]], rows: list[int],
) -> "pl.DataFrame":
    import polars as pl

    data: dict[str, Any] = {ROW: pl.Series(ROW, rows, dtype=pl.Int64)}
    for n, c in zip(names, cols):
        data[n] = pl.Series(n, c, dtype=pl.String)
    return pl.DataFrame(data)


def _cell_text(v: Any) -> str | None:
    """An XLSX cell value as text.  Floats go through ``repr()`` here and nowhere else."""
    if v is None:
        return None
    if isinstance(v, str):
        return v if v.strip() else None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if isinstance(v, dt.datetime):
        return v.date().isoformat() if v.time() == dt.time(0) else v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def _numeric_ids(cells: Any, values: list[str | None], ids: list[tuple[int, str]], source: str,
                 line: int) -> Problem | None:
    """ID cells of an XLSX row that hold numbers: their exact digits put in ``values``
    (:func:`medaid.io.validation.number_as_id`), or the problem refusing the row."""
    for j, field in ids:
        v = cells[j].value if j < len(cells) else None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            text, message = number_as_id(v)
            if message is not None:
                return Problem(message, source=source, line=line, field=field)
            values[j] = text
    return None


def _read_xlsx(
    path: Path, source: str, sheet: str | None, name_of: Callable[..., list[str]],
    mapping: Mapping[str, str] | None = None,
) -> RawFile:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types for a broken file
        raise ReadError(Problem(f"cannot be read as XLSX ({type(e).__name__})", source=source)) from None
    try:
        if sheet is not None:
            if sheet not in wb.sheetnames:
                raise ReadError(Problem(
                    f"no sheet {sheet!r}; sheets: {', '.join(wb.sheetnames)}", source=source))
            ws = wb[sheet]
        else:
            ws = wb.worksheets[0]
        ws.reset_dimensions()  # some exporters write a wrong sheet size; read every row
        def filled() -> Iterator[tuple[int, list[str | None], Any]]:
            for cells in ws.iter_rows():
                r = next((c.row for c in cells if getattr(c, "row", None)), None)
                values = [_cell_text(c.value) for c in cells]
                if r is None or all(v is None for v in values):
                    continue
                yield r, values, cells

        it = filled()
        # the first rows, kept: the header is looked for among them, and the rows below it
        # are data whichever row it turns out to be
        head = list(itertools.islice(it, HEADER_SEARCH_ROWS))
        if not head:
            raise ReadError(Problem("the sheet is empty", source=source))

        def trimmed(values: list[str | None]) -> list[str]:
            values = list(values)
            while values and values[-1] is None:
                values.pop()
            return [h or "" for h in values]

        header_row, names = pick_header(((r, trimmed(v)) for r, v, _ in head), name_of, mapping, source)
        it = itertools.chain((h for h in head if h[0] > header_row), it)
        ids = [(j, n) for j, n in enumerate(names) if n in ID_FIELDS]
        cols: list[list[str | None]] = [[] for _ in names]
        rows: list[int] = []
        problems: list[Problem] = []
        width = len(names)
        blank = 0  # empty sheet rows between the header and the last row
        previous = header_row
        for r, values, cells in it:
            blank += r - previous - 1
            previous = r
            if len(values) > width and any(v is not None for v in values[width:]):
                problems.append(Problem(
                    f"has values beyond the {width} headed columns", source=source, line=r, field="row"))
                continue
            values = (values + [None] * width)[:width]
            bad = _numeric_ids(cells, values, ids, source, r)
            if bad is not None:
                problems.append(bad)
                continue
            rows.append(r)
            for j, v in enumerate(values):
                cols[j].append(v)
        return RawFile(_frame_from_columns(names, cols, rows), problems, header_row, blank)
    finally:
        wb.close()


class _JsonNumber(str):
    """The text of a number in a JSON Lines file, as written (never a float)."""


def _utf8_problem(path: Path, source: str) -> ReadError:
    """A JSON Lines file that is not UTF-8: refused, naming the first line that is not."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return ReadError(Problem(
                    f"is not UTF-8 (byte {e.start + 1} of the line); JSON Lines files must be "
                    "UTF-8: save the file as UTF-8 (GBK/GB18030 is read only from CSV)",
                    source=source, line=n))
    return ReadError(Problem("is not UTF-8; JSON Lines files must be UTF-8", source=source))


def _read_jsonl(
    path: Path, source: str, name_of: Callable[[list[str]], list[str]],
) -> RawFile:
    """JSON Lines (UTF-8, as JSON requires); numbers are kept as the text written in the file
    (never a float); an ID written as a number goes through
    :func:`medaid.io.validation.number_as_id`; blank lines are counted, not rows."""
    try:
        records, rows, problems, keys, blank = _jsonl_records(path, source)
    except UnicodeDecodeError:
        raise _utf8_problem(path, source) from None
    headers = list(keys)
    if not headers and not problems:
        raise ReadError(Problem("the file is empty", source=source))
    names = name_of(headers)
    ids = [(h, n) for h, n in zip(headers, names) if n in ID_FIELDS]
    if ids:
        kept: list[dict[str, Any]] = []
        kept_rows: list[int] = []
        for rec, n in zip(records, rows):
            bad = _json_ids(rec, ids, source, n)
            if bad is None:
                kept.append(rec)
                kept_rows.append(n)
            else:
                problems.append(bad)
        records, rows = kept, kept_rows
    cols: list[list[str | None]] = []
    for h in headers:
        col: list[str | None] = []
        for rec in records:
            v = rec.get(h)
            if v is None:
                col.append(None)
            elif isinstance(v, bool):
                col.append("true" if v else "false")
            elif isinstance(v, (dict, list)):
                col.append(json.dumps(v, ensure_ascii=False))
            else:
                col.append(str(v))
        cols.append(col)
    return RawFile(_frame_from_columns(names, cols, rows), problems, 0, blank)


def _json_ids(rec: dict[str, Any], ids: list[tuple[str, str]], source: str, line: int) -> Problem | None:
    """ID values of a JSON Lines record written as numbers: their exact digits put in ``rec``
    (:func:`medaid.io.validation.number_as_id`), or the problem refusing the record."""
    for key, field in ids:
        v = rec.get(key)
        if isinstance(v, _JsonNumber):
            text, message = number_as_id(str(v))
            if message is not None:
                return Problem(message, source=source, line=line, field=field)
            rec[key] = text
    return None


def _jsonl_records(
    path: Path, source: str,
) -> tuple[list[dict[str, Any]], list[int], list[Problem], dict[str, None], int]:
    """The objects of a JSON Lines file with their lines, the lines that are not objects,
    every key in order of first appearance, and the number of blank lines."""
    records: list[dict[str, Any]] = []
    rows: list[int] = []
    problems: list[Problem] = []
    keys: dict[str, None] = {}
    blank = 0
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                blank += 1
                continue
            try:
                obj = json.loads(line, parse_float=_JsonNumber, parse_int=_JsonNumber,
                                 parse_constant=lambda s: s)
            except json.JSONDecodeError as e:
                problems.append(Problem(f"is not valid JSON ({e.msg})", source=source, line=n, field="row"))
                continue
            if not isinstance(obj, dict):
                problems.append(Problem("is not a JSON object", source=source, line=n, field="row"))
                continue
            for k in obj:
                keys.setdefault(k, None)
            records.append(obj)
            rows.append(n)
    return records, rows, problems, keys, blank


def _read_parquet(
    path: Path, source: str, name_of: Callable[[list[str]], list[str]],
) -> tuple["pl.DataFrame", list[Problem]]:
    import polars as pl

    try:
        frame = pl.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - any failure of the reader is a refused file
        raise ReadError(Problem(f"cannot be read as Parquet ({type(e).__name__})", source=source)) from None
    names = name_of(frame.columns)
    bad = numeric_id_problems(frame, names, first=1)
    out = text_columns(frame)
    out.columns = names
    out = out.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    if not bad.height:
        return out, []
    out = out.filter(~pl.col(ROW).is_in(bad[ROW].implode()))
    return out, [Problem(m, source=source, line=r, field=f)
                 for r, f, m in bad.select(ROW, "field", "message").iter_rows()]


def numeric_id_problems(frame: "pl.DataFrame", names: list[str], first: int) -> "pl.DataFrame":
    """Rows of a typed frame (Parquet) whose ID column holds a number that cannot be an exact
    ID (:func:`medaid.io.validation.id_number_problem`), as a rejects frame (``row`` counted from
    ``first``; one record per row, the first such ID).  ``names`` are the columns' field names.
    Local and Spark readers both use it."""
    import polars as pl

    checks = [id_number_problem(pl.col(c), t).alias(n)
              for c, n, t in zip(frame.columns, names, frame.dtypes)
              if n in ID_FIELDS and t.is_numeric()]
    if not checks:
        return empty_rejects()
    found = frame.select(checks).with_row_index(ROW, offset=first).with_columns(pl.col(ROW).cast(pl.Int64))
    ids = [n for n in ID_FIELDS if n in found.columns]
    found = found.filter(pl.any_horizontal(pl.col(ids).is_not_null()))
    if not found.height:
        return empty_rejects()
    field = pl.coalesce([pl.when(pl.col(n).is_not_null()).then(pl.lit(n)) for n in ids])
    return found.select(
        ROW, pl.lit(None, pl.String).alias("claim_id"), field.alias("field"),
        pl.coalesce([pl.col(n) for n in ids]).alias("message"))


def text_columns(frame: "pl.DataFrame") -> "pl.DataFrame":
    """Every column of a typed frame (Parquet) as text, as a claim file would hold it: dates
    ISO, date-times without a zero time, floats through :func:`_cell_text` (``repr()``: the one
    float boundary, as for XLSX, so ``1234.567`` is then refused, never rounded), the rest by
    polars' own cast.  The local reader and the Spark reader both use it."""
    import polars as pl

    exprs = []
    for name, dtype in frame.schema.items():
        e = pl.col(name)
        if dtype == pl.Date:
            e = e.dt.strftime("%Y-%m-%d")
        elif dtype == pl.Datetime:
            e = e.dt.strftime("%Y-%m-%d %H:%M:%S").str.replace(" 00:00:00", "", literal=True)
        elif dtype.is_float():
            e = e.map_elements(_cell_text, return_dtype=pl.String)
        else:
            e = e.cast(pl.String)
        exprs.append(e.alias(name))
    return frame.select(exprs)


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


#: Money columns of results and recalculation files.
MONEY_COLUMNS = frozenset(CLAIM_MONEY_FIELDS + RESULT_MONEY_FIELDS) | {
    "old_relief", "new_relief", "adjustment",
}


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

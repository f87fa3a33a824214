"""Claim files → validated frames: CSV, XLSX, JSON Lines and Parquet, with per-row errors.

Rules implemented (docs/calculation.md#money, README.md#reliability; issue #4 *Validation per row*):

* Every file is first read as text: all columns are ``String``, named by the canonical field
  names of :data:`medaid.columns.HEADER_ALIASES` (English or Chinese headers, case-folded) or
  by ``--map column=field``; other columns pass through unchanged.  A ``row`` column (``Int64``)
  holds the line as the user sees it: the header is line 1 of a CSV file, the sheet row of an
  XLSX file, the line of a JSON Lines file, the record number (from 1) of a Parquet file.
* :func:`medaid.validation.validate_frame` (re-exported here) then types the text, vectorised.
* XLSX numeric cells arrive from openpyxl as floats: this module turns them into text with
  ``repr()`` at once (``1234.5`` → ``"1234.5"``) and parses that text like any other; this is the
  one place a float is seen, and a float that is not an exact amount with two decimals
  (``1234.5600000000001``) is refused, never rounded.
* An ID (claim or person) that an XLSX cell, a JSON number or a Parquet numeric column holds
  as a number is its exact digits when it is a whole number of at most 15 digits, and the row
  is refused otherwise (:func:`medaid.validation.number_as_id`: a spreadsheet keeps 15
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
import json
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping

from .columns import (
    CLAIM_MONEY_FIELDS,
    HEADER_ALIASES,
    ID_FIELDS,
    REQUIRED_FIELDS,
    RESULT_FIELDS,
    RESULT_MONEY_FIELDS,
)
from .errors import MedaidError, Problem
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


def canonical_names(
    headers: list[str], mapping: Mapping[str, str] | None, source: str,
    reserved: frozenset[str] | None = None,
) -> list[str]:
    """Rename headers to field names (``--map`` first, then the aliases); others unchanged.

    Raises :class:`ReadError` when two columns name the same field or a required field has no
    column, naming the file and what is missing."""
    mapping = mapping or {}
    by_norm = {_norm_header(k): v for k, v in mapping.items()}
    names: list[str] = []
    taken: dict[str, str] = {}
    problems: list[Problem] = []
    for h in headers:
        h = "" if h is None else str(h)
        field = mapping.get(h) or by_norm.get(_norm_header(h)) or _ALIAS_INDEX.get(_norm_header(h))
        if field is not None:
            if field in taken:
                problems.append(Problem(
                    f"columns {taken[field]!r} and {h!r} both give {field}; drop one or use --map",
                    source=source, line=1, field=field))
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
            source=source, line=1))
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


# --------------------------------------------------------------------------------------------
# reading raw text frames


def read_raw(
    path: str | Path,
    *,
    encoding: str | None = None,
    sheet: str | None = None,
    mapping: Mapping[str, str] | None = None,
    reserved: frozenset[str] | None = None,
    names: Callable[[list[str]], list[str]] | None = None,
) -> tuple["pl.DataFrame", list[Problem]]:
    """Read a claim file as text: ``(frame, problems)``.

    ``frame`` has a ``row`` column (``Int64``, line as the user sees it) and every other column
    as ``String``, renamed to canonical field names (or by ``names``, a function from the
    headers to the column names: how results files are read, :mod:`medaid.report_input`).
    ``problems`` lists rows that could not be split into fields (ragged rows, bad JSON) or
    that hold an ID as a number that cannot be exact; those rows are not in the frame.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ReadError(Problem("no such file", source=source))
    fmt = file_format(path)
    name_of = names or functools.partial(canonical_names, mapping=mapping, source=source, reserved=reserved)
    if fmt == "csv":
        return _read_csv(path, source, encoding, name_of)
    if fmt == "xlsx":
        return _read_xlsx(path, source, sheet, name_of)
    if fmt == "jsonl":
        return _read_jsonl(path, source, name_of)
    return _read_parquet(path, source, name_of)


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


def _read_csv(
    path: Path, source: str, encoding: str | None, name_of: Callable[[list[str]], list[str]],
) -> tuple["pl.DataFrame", list[Problem]]:
    import polars as pl

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
    newlines, quoted, commas, ends_nl = _scan(data)
    try:
        frame = pl.read_csv(data, infer_schema=False, raise_if_empty=False)
    except pl.exceptions.ComputeError as e:
        if "utf-8" in str(e).lower() or "utf8" in str(e).lower():
            if enc == "utf-8" and encoding is None:  # a GBK file with an ASCII first megabyte
                return _read_csv(path, source, "gb18030", name_of)
            raise ReadError(Problem(f"cannot be decoded as {enc}; give --encoding", source=source)) from None
        frame = None  # ragged: more fields than the header; located by the careful path
    lines = newlines + (0 if ends_nl else 1)
    if frame is not None and frame.width and lines == frame.height + 1:
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
            names = name_of(frame.columns)
            frame = frame.rename(dict(zip(frame.columns, names)))
            frame = frame.with_row_index(ROW, offset=2).with_columns(pl.col(ROW).cast(pl.Int64))
            if blank.len() and blank.any():
                frame = frame.filter(~blank)
            return frame, []
    text = (path.read_bytes() if isinstance(data, Path) else data).decode("utf-8-sig", errors="strict")
    return _read_csv_careful(text, source, name_of)


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
    the file whole, which locates the problem).  :meth:`rows` reads given lines again."""

    def __init__(self, path: Path, names: list[str], header_end: int, chunk_bytes: int,
                 categories: Iterable[str] = ()) -> None:
        self.path, self.names, self.chunk_bytes = path, names, chunk_bytes
        self.categories = frozenset(categories)
        self.header_end = header_end
        self.spans: list[tuple[int, int, int, int]] = []  # start, end, first line, lines

    def __iter__(self) -> Iterator["pl.DataFrame"]:
        with open(self.path, "rb") as f:
            f.seek(self.header_end)
            pos, line = self.header_end, 2
            while True:
                buf = f.read(self.chunk_bytes)
                if not buf:
                    return
                if not buf.endswith(b"\n"):
                    buf += f.readline()
                n = buf.count(b"\n") + (0 if buf.endswith(b"\n") else 1)
                self.spans.append((pos, pos + len(buf), line, n))
                yield self._frame(buf, line, n, check=True)
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
    import polars as pl

    path = Path(path)
    if not path.is_file() or file_format(path) != "csv":
        return None
    source = source or str(path)
    if _sniff_encoding(path, encoding, source) != "utf-8":
        return None
    with open(path, "rb") as f:
        head = f.readline()
    if not head.endswith(b"\n") or head.count(b'"') % 2:
        return None
    try:
        columns = pl.read_csv(head, infer_schema=False, raise_if_empty=False).columns
    except pl.exceptions.PolarsError:
        return None
    if not columns:
        return None
    names = canonical_names(columns, mapping, source, reserved)
    return CsvPieces(path, names, len(head), chunk_bytes or CHUNK_BYTES, categories)


def utf8_copy(path: str | Path, encoding: str | None = None) -> Path | None:
    """A temporary UTF-8 copy of a CSV file written in another encoding (GB18030/GBK as Chinese
    Excel writes it: detected, or ``encoding``), decoded piece by piece so that the file is
    never in memory whole; ``None`` when the file is UTF-8 already, is not a CSV file, or does
    not decode (the whole-file reader then says where).  Lines stay lines, so line numbers
    are the original's.  The caller removes the copy (it is created readable by its owner only,
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
    if enc == "utf-8":
        return None
    decoder = codecs.getincrementaldecoder(enc)(errors="strict")
    try:
        fd, name = tempfile.mkstemp(prefix="medaid-", suffix=".csv")
    except OSError as e:
        raise _no_copy(path, e) from None
    try:
        with open(path, "rb") as f, os.fdopen(fd, "wb") as out:
            while chunk := f.read(1 << 22):
                out.write(decoder.decode(chunk).encode("utf-8"))
            out.write(decoder.decode(b"", final=True).encode("utf-8"))
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


def _read_csv_careful(
    text: str, source: str, name_of: Callable[[list[str]], list[str]],
) -> tuple["pl.DataFrame", list[Problem]]:
    """The exact path for quoted or irregular files: Python's csv module, line by line."""
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[Problem] = []
    try:
        header = next(reader)
    except StopIteration:
        raise ReadError(Problem("the file is empty", source=source)) from None
    names = name_of(header)
    width = len(names)
    cols: list[list[str | None]] = [[] for _ in range(width)]
    rows: list[int] = []
    start = reader.line_num + 1
    try:
        for rec in reader:
            line = start
            start = reader.line_num + 1
            if not rec or (len(rec) == 1 and not rec[0].strip() and "\n" not in rec[0]):
                continue  # an empty line is not a row
            if len(rec) != width:
                problems.append(Problem(
                    f"has {len(rec)} fields, the header has {width}", source=source, line=line,
                    field="row"))
                continue
            rows.append(line)
            for j, v in enumerate(rec):
                cols[j].append(v if v != "" else None)
    except csv.Error as e:
        problems.append(Problem(f"cannot be read as CSV ({e}); rows after it were not read",
                                source=source, line=start, field="row"))
    return _frame_from_columns(names, cols, rows), problems


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
    (:func:`medaid.validation.number_as_id`), or the problem refusing the row."""
    for j, field in ids:
        v = cells[j].value if j < len(cells) else None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            text, message = number_as_id(v)
            if message is not None:
                return Problem(message, source=source, line=line, field=field)
            values[j] = text
    return None


#: How many non-empty rows above the header (titles, dates) an XLSX sheet may have.
_TITLE_ROWS = 5


def _read_xlsx(
    path: Path, source: str, sheet: str | None, name_of: Callable[[list[str]], list[str]],
) -> tuple["pl.DataFrame", list[Problem]]:
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
        header: list[Any] | None = None
        names: list[str] = []
        ids: list[tuple[int, str]] = []
        cols: list[list[str | None]] = []
        rows: list[int] = []
        problems: list[Problem] = []
        skipped: list[ReadError] = []
        for cells in ws.iter_rows():
            r = next((c.row for c in cells if getattr(c, "row", None)), None)
            values = [_cell_text(c.value) for c in cells]
            if r is None or all(v is None for v in values):
                continue
            if header is None:
                while values and values[-1] is None:
                    values.pop()
                try:
                    names = name_of([h or "" for h in values])
                except ReadError as e:  # a title row above the header: try the next rows
                    skipped.append(e)
                    if len(skipped) < _TITLE_ROWS:
                        continue
                    raise skipped[0] from None
                header = values
                cols = [[] for _ in names]
                ids = [(j, n) for j, n in enumerate(names) if n in ID_FIELDS]
                continue
            width = len(names)
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
        if header is None:
            if skipped:
                raise skipped[0]
            raise ReadError(Problem("the sheet is empty", source=source))
        return _frame_from_columns(names, cols, rows), problems
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
) -> tuple["pl.DataFrame", list[Problem]]:
    """JSON Lines (UTF-8, as JSON requires); numbers are kept as the text written in the file
    (never a float); an ID written as a number goes through
    :func:`medaid.validation.number_as_id`."""
    try:
        records, rows, problems, keys = _jsonl_records(path, source)
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
    return _frame_from_columns(names, cols, rows), problems


def _json_ids(rec: dict[str, Any], ids: list[tuple[str, str]], source: str, line: int) -> Problem | None:
    """ID values of a JSON Lines record written as numbers: their exact digits put in ``rec``
    (:func:`medaid.validation.number_as_id`), or the problem refusing the record."""
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
) -> tuple[list[dict[str, Any]], list[int], list[Problem], dict[str, None]]:
    """The objects of a JSON Lines file with their lines, the lines that are not objects, and
    every key in order of first appearance."""
    records: list[dict[str, Any]] = []
    rows: list[int] = []
    problems: list[Problem] = []
    keys: dict[str, None] = {}
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
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
    return records, rows, problems, keys


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
    ID (:func:`medaid.validation.id_number_problem`), as a rejects frame (``row`` counted from
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
    one reader of results files, :func:`medaid.report_input.load_results` (``medaid report``
    reads them there too, so both accept the same files, e.g. a results CSV saved as GBK).

    Money → ``Int64`` fen (exactly; ``adjustment`` may be negative), ``date`` → Date,
    ``benefit_year`` → Int32, ``bracket`` → Int8; every column is kept, in the file's order;
    text that the export neutralised against formula injection gets its leading ``'`` removed.
    ``required``: fields the file must have (a clear refusal names the missing ones).  Raises
    :class:`medaid.report_input.ResultsError` naming file, line and field of bad values."""
    from .report_input import load_results

    return load_results(path, required=required, others=True)

"""CSV claim files read whole as text, exactly: the header found below title lines, a file with
one line per row read by polars and checked field by field (vectorised), any other (fields
holding line breaks, a quote left open, ragged rows) by the careful line-by-line reader, which
locates every problem.  Large UTF-8 files are read in pieces instead (:mod:`.csv_pieces`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import polars as pl

from ..errors import Problem
from .columns import CLAIM_FIELDS, ROW
from .encodings import GB18030, HEAD_BYTES, as_utf8, cr_only, sniff_encoding
from .headers import HEADER_SEARCH_ROWS, pick_header
from .raw import RawFile, ReadError, frame_from_columns


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


def read_csv(
    path: Path, source: str, encoding: str | None, name_of: Callable[..., list[str]],
    mapping: Mapping[str, str] | None = None,
) -> RawFile:
    """A CSV file read whole as text (:func:`read_csv_data`), in its encoding
    (:func:`medaid.io.encodings.sniff_encoding`; ``encoding`` when given)."""
    enc = sniff_encoding(path, encoding, source)
    data: bytes | Path
    if enc == "utf-8":
        data = path
    else:
        try:
            data = as_utf8(path.read_bytes(), enc)
        except UnicodeDecodeError as e:
            raise ReadError(Problem(
                f"cannot be decoded as {enc} at byte {e.start}; give --encoding", source=source)) from None
    try:
        return read_csv_data(data, source, name_of, mapping)
    except UnicodeError:
        if enc == "utf-8" and encoding is None:  # a GBK file with an ASCII first megabyte
            return read_csv(path, source, GB18030, name_of, mapping)
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
    if isinstance(data, Path):
        with open(data, "rb") as f:
            head = f.read(HEAD_BYTES)
    else:
        head = data[:HEAD_BYTES]
    if cr_only(head):  # lines ended by CR alone: each CR is a line break
        data = (data.read_bytes() if isinstance(data, Path) else data).replace(b"\r", b"\n")
        head = data[:HEAD_BYTES]
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
            blank: pl.Series | None = None
            n_blank = 0 if quoted else frame.select(pl.all_horizontal(pl.all().is_null()).sum()).item()
            if quoted or n_blank:
                # an empty line and a line of empty fields (",,,") both read as nulls: tell them
                # apart line by line (a count of all commas could let a short row and a line of
                # empty fields make up for each other)
                blank = _quoted_blank_lines(data, frame.width, frame.height)
            elif commas == (frame.width - 1) * (frame.height + 1):
                blank = pl.Series([], dtype=pl.Boolean)
            if blank is not None:
                frame.columns = names
                frame = frame.with_row_index(ROW, offset=header_line + 1).with_columns(pl.col(ROW).cast(pl.Int64))
                n = int(blank.sum()) if blank.len() else 0
                if n:
                    frame = frame.filter(~blank)
                return RawFile(frame, [], header_line, n)
    text = (full.read_bytes() if isinstance(full, Path) else full).decode("utf-8-sig", errors="strict")
    return _read_csv_careful(text, source, name_of, mapping)


def _quoted_blank_lines(data: bytes | Path, width: int, height: int) -> pl.Series | None:
    """For a CSV with one line per row: which rows are blank lines, or ``None`` when some
    line does not hold exactly ``width`` fields (then the careful reader locates it).  Fields are
    counted by removing quoted sections and counting commas, vectorised."""
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
    return RawFile(frame_from_columns(names, cols, rows), problems, header_line, blank)

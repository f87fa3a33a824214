"""Large UTF-8 CSV claim files read in pieces cut at line ends, so that the text of the whole
file is never in memory at once (README.md#performance-measured, peak memory); a piece that is
not one line per row stops it (:class:`NotChunkable`), and the file is read whole instead."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import polars as pl

from .columns import ROW
from .csv_readers import find_csv_header
from .encodings import HEAD_BYTES, sniff_encoding
from .headers import canonical_names
from .raw import file_format

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

    def __iter__(self) -> Iterator[pl.DataFrame]:
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

    def _frame(self, buf: bytes, line: int, lines: int, check: bool) -> pl.DataFrame:
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
        if not quotes and not frame[self.names[-1]].null_count():
            # a short row or a blank line would leave the last column empty: neither is here
            return frame
        if not quotes and not frame.select(pl.all_horizontal(pl.exclude(ROW).is_null()).any()).item():
            # no line reads as all empty, so no blank line: a short row shows as too few commas
            if check and buf.count(b",") != (width - 1) * frame.height:
                raise NotChunkable
            return frame
        # quotes, or a line that reads as all empty (an empty line, or a line of empty fields
        # ",,,", which is a row): every line checked on its own, as the whole-file reader does,
        # so that a short row and a line of empty fields cannot make up for each other's commas
        blank = _piece_blank_lines(buf, width, frame.height)
        if blank is None:
            raise NotChunkable
        return frame.filter(~blank) if bool(blank.any()) else frame

    def rows(self, lines: pl.Series) -> pl.DataFrame:
        """The raw text rows at the given line numbers (from pieces already read)."""
        out = []
        want = set(lines.to_list())
        with open(self.path, "rb") as f:
            for start, end, line, n in self.spans:
                if any(line <= x < line + n for x in want):
                    f.seek(start)
                    frame = self._frame(f.read(end - start), line, n, check=False)
                    out.append(frame.filter(pl.col(ROW).is_in(lines.implode())))
        return pl.concat(out)


def _piece_blank_lines(buf: bytes, width: int, height: int) -> pl.Series | None:
    """Which of a piece's ``height`` lines are blank lines (empty: a line of empty fields
    ``,,,`` is a row, as for every reader), or ``None`` unless every other line is one whole
    row: its quoted sections closed on the line (no quote left once they are removed) and
    ``width − 1`` commas outside them."""
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
    if sniff_encoding(path, encoding, source) != "utf-8":
        return None
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    name_of = functools.partial(canonical_names, mapping=mapping, source=source, reserved=reserved)
    found = find_csv_header(head, name_of, mapping, source)
    if found is None:
        return None
    line, _, end, names = found
    return CsvPieces(path, names, end, chunk_bytes or CHUNK_BYTES, categories, header_line=line)

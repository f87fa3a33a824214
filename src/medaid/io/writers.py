"""Writing results, rejects and recalculations: CSV, XLSX, JSON Lines, Parquet; atomically.

Rules implemented (README.md#reliability; docs/batch.md, *Output files*):

* The format is chosen by the output's extension.  Money columns (fen ``Int64`` in frames) are
  written as yuan with two decimals: text ``12345.67`` (no separators) in CSV and JSON Lines,
  ``Decimal(18, 2)`` in Parquet, numeric cells with number format ``#,##0.00`` in XLSX.  The
  conversion is integer arithmetic on fen (:mod:`medaid.io.amounts`); no float is made but the
  XLSX cell's own (:mod:`medaid.io.xlsx_writer`).
* Every file is written to a temporary file in the same folder, flushed to disk and renamed over
  the target with ``os.replace``: a reader sees the old file or the new one, never a part.
  :func:`atomic_path` is the one writer that does this, for every output medaid writes (the
  HTML report too).
* Personal data (README.md#reliability): results, rejects and recalculations hold ID numbers, so
  they are created ``0600`` (owner only), whatever the umask; files without (the HTML report)
  are ordinary files, ``0666`` less the umask (``atomic_path(..., private=False)``).
* Formula injection and header cells (:mod:`medaid.io.cells`): in CSV and XLSX, text cells
  starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return get a leading ``'``;
  numbers (money, years) stay numbers; header cells are text cells too.
* Headers: the field names; with ``lang="zh"``, CSV and XLSX (the files people open) carry the
  Chinese headers of :data:`medaid.io.columns.ZH_HEADERS` instead (``救助金额`` for ``relief``),
  which the results readers accept back.  JSON Lines and Parquet always carry field names.
* CSV is UTF-8 with a byte-order mark by default, so that Excel (which reads BOM-less CSV as
  the local code page, GBK on Chinese Windows) shows Chinese text correctly; ``bom=False``
  writes plain UTF-8 (:mod:`medaid.io.csv_writer`).

The formats' writers, split off this module, are re-exported here under their old names.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import threading
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path

import polars as pl

from ..errors import MedaidError, Problem
from .amounts import yuan_decimal, yuan_text
from .cells import FORMULA_LEADS, FORMULA_RE, neutralise, safe_text, sheet_headers
from .columns import MONEY_COLUMNS
from .csv_writer import (
    CSV_BATCH_ROWS,
    DATE_TABLE_DAYS,
    write_csv as _write_csv,  # (looked up here when called: tests replace it)
)
from .raw import file_format
from .xlsx_writer import (
    XLSX_DATE_FORMAT,
    XLSX_MAX_FEN,
    XLSX_MONEY_FORMAT,
    write_xlsx,
    xlsx_money_problem,
)

__all__ = [
    "CSV_BATCH_ROWS", "DATE_TABLE_DAYS", "FORMULA_LEADS", "PRIVATE_MODE", "XLSX_DATE_FORMAT",
    "XLSX_MAX_FEN", "XLSX_MONEY_FORMAT", "WriteError", "atomic_path", "neutralise", "safe_text",
    "sheet_headers", "write_frame", "yuan_decimal", "yuan_text",
]

#: The formula pattern under its old name (the Spark job neutralises its CSV cells with it).
_FORMULA_RE = FORMULA_RE


class WriteError(MedaidError):
    """An output file could not be written."""


#: Mode of files holding personal data (ID numbers): results, rejects, recalculations.
PRIVATE_MODE = 0o600


@contextlib.contextmanager
def atomic_path(path: str | Path, *, private: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and ``os.replace`` it onto
    ``path``; on failure remove it, leaving any previous ``path`` untouched.

    ``private`` (personal data): the file is ``0600`` from its creation to the end, whatever
    the umask; otherwise it gets an ordinary file's mode, ``0666`` less the umask."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise WriteError(Problem("the output folder does not exist", source=str(path)))
    # (the name's first 100 characters: a name near the file system's limit of 255 bytes
    # would otherwise make a temporary name past it)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name[:100]}.", suffix=".part")  # 0600
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _flushing(tmp_path):
            yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
            # (a writer may have made the file anew under the umask: the mode is set last)
            os.fchmod(f.fileno(), PRIVATE_MODE if private else 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename durable too
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _flushing(path: Path, every: float = 0.02) -> Iterator[None]:
    """While the body writes ``path``, a thread hands what is written so far to the disk every
    ``every`` seconds (``fdatasync``) and then lets the kernel drop those pages from memory
    (``posix_fadvise(DONTNEED)``, where the system has it): the final ``fsync`` has little left
    to wait for, and the written pages do not pile up in the page cache, which slows a large
    write down (measured: a 2.2 GB CSV is written in 4.4 s so, 8.3 s with no flushing)."""
    stop = threading.Event()
    fd = os.open(path, os.O_RDONLY)
    sync = getattr(os, "fdatasync", os.fsync)
    drop = getattr(os, "posix_fadvise", None)

    def run() -> None:
        while not stop.wait(every):
            with contextlib.suppress(OSError):  # an early flush is only a help
                sync(fd)
                if drop is not None:
                    drop(fd, 0, 0, os.POSIX_FADV_DONTNEED)

    thread = threading.Thread(target=run, name="medaid-flush", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        os.close(fd)


def _money_cols(frame: pl.DataFrame) -> list[str]:
    return [c for c, t in frame.schema.items() if c in MONEY_COLUMNS and t.is_integer()]


def write_frame(frame: pl.DataFrame, path: str | Path, *, bom: bool = True,
                text_values: Mapping[str, pl.Series] | None = None, lang: str = "en",
                headers: Mapping[str, str] | None = None, money: list[str] | None = None,
                titles: Mapping[str, str] | None = None, digit_columns: Collection[str] = ()) -> None:
    """Write ``frame`` to ``path`` in the format of its extension, atomically (see module doc).

    Columns named in :data:`medaid.io.columns.MONEY_COLUMNS` holding integers are fen.
    ``text_values`` may give, for category columns, text that includes every value of the
    column (as :attr:`medaid.batch.run.BatchRun.text_values`): CSV's checks then look at those
    instead of finding the column's distinct values; ``digit_columns`` may name text columns
    whose every value is ASCII digits, perhaps after a ``+``
    (:attr:`medaid.batch.run.BatchRun.digit_columns`), which the look for cells to quote then
    skips.  ``lang="zh"`` gives CSV and XLSX files
    Chinese headers (:func:`medaid.io.cells.sheet_headers`), a claim attribute's column its
    title in ``titles`` (attribute → title, :attr:`medaid.batch.run.BatchRun.titles`).  Raises :class:`WriteError`
    naming the file (and the reason: the disk's words, or the column XLSX cannot hold).
    ``headers`` (column → header cell) and ``money`` (its fen columns) are for frames that are
    not results (a period's payment lists, docs/periods.md)."""
    fmt = file_format(path)
    money = _money_cols(frame) if money is None else money
    cells = (sheet_headers(frame.columns, lang, titles) if headers is None
             else sheet_headers([headers.get(c, c) for c in frame.columns]))
    if fmt != "csv":  # input text kept as categories (memory) is written as the text it is
        frame = frame.with_columns(
            pl.col(c).cast(pl.String) for c, t in frame.schema.items() if t == pl.Categorical)
    if fmt == "xlsx":
        problem = xlsx_money_problem(frame, money, str(path))
        if problem is not None:
            raise WriteError(problem)
    try:
        with atomic_path(path) as tmp:
            if fmt == "csv":
                _write_csv(frame, tmp, money, bom, text_values or {}, cells, digit_columns)
            elif fmt == "jsonl":
                frame.lazy().with_columns([yuan_text(c) for c in money]).sink_ndjson(
                    tmp, check_extension=False)
            elif fmt == "parquet":
                frame.lazy().with_columns([yuan_decimal(c) for c in money]).sink_parquet(tmp)
            else:
                write_xlsx(frame, tmp, money, cells)
    except (OSError, pl.exceptions.PolarsError) as e:  # polars reports the disk's errors (ENOSPC) as its own
        raise cannot_write(e, path) from None


def cannot_write(e: Exception, path: str | Path) -> WriteError:
    """The refusal of a file that could not be written, naming it, with the disk's words
    (:func:`_io_reason`; an ``OSError``'s own, when it has them)."""
    reason = (e.strerror if isinstance(e, OSError) else None) or _io_reason(e, path)
    return WriteError(Problem(f"cannot be written ({reason})", source=str(path)))


def _io_reason(e: Exception, path: str | Path) -> str:
    """The operating system's words in an error (``No space left on device``), else, when the
    output's disk is full (polars sometimes words that as a broken file), those words, else
    the error's first line."""
    text = str(e)
    m = re.search(r"(?:^|: )([^:(\n]*?) \(os error \d+\)", text)
    if m:
        return m.group(1)
    with contextlib.suppress(OSError):
        st = os.statvfs(Path(path).parent if str(Path(path).parent) else ".")
        if st.f_bavail * st.f_frsize < 1 << 20:
            return os.strerror(errno.ENOSPC)
    return (text.splitlines() or [type(e).__name__])[0]

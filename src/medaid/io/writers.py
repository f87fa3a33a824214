"""Writing results, rejects and recalculations: CSV, XLSX, JSON Lines, Parquet; atomically.

Rules implemented (README.md#reliability; issue #4 *Output*):

* The format is chosen by the output's extension.  Money columns (fen ``Int64`` in frames) are
  written as yuan with two decimals: text ``12345.67`` (no separators) in CSV and JSON Lines,
  ``Decimal(18, 2)`` in Parquet, numeric cells with number format ``#,##0.00`` in XLSX.  The
  conversion is integer arithmetic on fen; no float is made.
* Every file is written to a temporary file in the same folder, flushed to disk and renamed over
  the target with ``os.replace``: a reader sees the old file or the new one, never a part.
  :func:`atomic_path` is the one writer that does this, for every output medaid writes.
* Personal data (README.md#reliability): results, rejects and recalculations hold ID numbers, so they
  are created ``0600`` (owner only), whatever the umask; files without (the HTML report) are
  ordinary files, ``0666`` less the umask.
* Formula injection: in CSV and XLSX, text cells starting with ``=``, ``+``, ``-``, ``@``, a tab
  or a carriage return get a leading ``'``; numbers (money, years) stay numbers.  Header cells
  are text cells too: an input column named ``=1+2`` is written ``'=1+2``.
* Headers: the field names; with ``lang="zh"``, CSV and XLSX (the files people open) carry the
  Chinese headers of :data:`medaid.io.columns.ZH_HEADERS` instead (``救助金额`` for ``relief``),
  which the results readers accept back.  JSON Lines and Parquet always carry field names.
* CSV is UTF-8 with a byte-order mark by default, so that Excel (which reads BOM-less CSV as
  the local code page, GBK on Chinese Windows) shows Chinese text correctly; ``bom=False``
  writes plain UTF-8.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MedaidError, Problem
from ..money import fen_to_decimal
from .columns import MONEY_COLUMNS, header
from .raw import file_format

if TYPE_CHECKING:
    import polars as pl

#: Leading characters that make a spreadsheet read text as a formula.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_RE = r"^[=+\-@\t\r]"
#: A CSV cell needs quotes when it holds one of these (the separator, a quote, a line break),
#: or is empty text (written ``""`` to tell it from a missing value, written as nothing).
_QUOTE_CHARS = (",", '"', "\r", "\n")
XLSX_MONEY_FORMAT = "#,##0.00"
XLSX_DATE_FORMAT = "yyyy-mm-dd"
#: Rows a CSV writer thread turns into text at a time (polars' default is 1,024; measured 5-10%
#: faster with 8,192 on 1 M and 10 M results).
CSV_BATCH_ROWS = 8192


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
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")  # 0600
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
    import threading

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


def yuan_decimal(column: str) -> "pl.Expr":
    """Fen ``Int64`` → exact ``Decimal(18, 2)`` yuan (``-1205`` → ``-12.05``): a decimal product
    ``fen × 0.01`` (scales add, nothing is rounded)."""
    import polars as pl

    cent = pl.lit("0.01").cast(pl.Decimal(3, 2))
    return (pl.col(column).cast(pl.Decimal(38, 0)) * cent).cast(pl.Decimal(18, 2)).alias(column)


def yuan_text(column: str) -> "pl.Expr":
    """Fen ``Int64`` → yuan text with two decimals and no separators (``-1205`` → ``-12.05``)."""
    import polars as pl

    return yuan_decimal(column).cast(pl.String)


def neutralise(column: str, text: "pl.Expr | None" = None) -> "pl.Expr":
    """Prefix ``'`` to text starting like a formula (``=``, ``+``, ``-``, ``@``, tab, CR)."""
    import polars as pl

    e = pl.col(column) if text is None else text
    return pl.when(e.str.contains(_FORMULA_RE)).then(pl.lit("'") + e).otherwise(e).alias(column)


def _money_cols(frame: "pl.DataFrame") -> list[str]:
    return [c for c, t in frame.schema.items() if c in MONEY_COLUMNS and t.is_integer()]


def write_frame(frame: "pl.DataFrame", path: str | Path, *, bom: bool = True,
                text_values: "Mapping[str, pl.Series] | None" = None, lang: str = "en") -> None:
    """Write ``frame`` to ``path`` in the format of its extension, atomically (see module doc).

    Columns named in :data:`medaid.io.readers.MONEY_COLUMNS` holding integers are fen.
    ``text_values`` may give, for category columns, text that includes every value of the
    column (as :attr:`medaid.batch.run.BatchRun.text_values`): CSV's checks then look at those
    instead of finding the column's distinct values.  ``lang="zh"`` gives CSV and XLSX files
    Chinese headers (:func:`sheet_headers`)."""
    import polars as pl

    fmt = file_format(path)
    money = _money_cols(frame)
    if fmt != "csv":  # input text kept as categories (memory) is written as the text it is
        frame = frame.with_columns(
            pl.col(c).cast(pl.String) for c, t in frame.schema.items() if t == pl.Categorical)
    if fmt == "xlsx":
        _check_xlsx_money(frame, path, money)
    try:
        with atomic_path(path) as tmp:
            if fmt == "csv":
                _write_csv(frame, tmp, money, bom, text_values or {}, sheet_headers(frame.columns, lang))
            elif fmt == "jsonl":
                frame.lazy().with_columns([yuan_text(c) for c in money]).sink_ndjson(
                    tmp, check_extension=False)
            elif fmt == "parquet":
                _write_parquet(frame, tmp, money)
            else:
                _write_xlsx(frame, tmp, money, sheet_headers(frame.columns, lang))
    except OSError as e:
        raise WriteError(Problem(f"cannot be written ({e.strerror or _io_reason(e, path)})", source=str(path))) from None
    except pl.exceptions.PolarsError as e:  # polars reports the disk's errors (ENOSPC) as its own
        raise WriteError(Problem(f"cannot be written ({_io_reason(e, path)})", source=str(path))) from None


def _io_reason(e: Exception, path: str | Path) -> str:
    """The operating system's words in an error (``No space left on device``), else, when the
    output's disk is full (polars sometimes words that as a broken file), those words, else
    the error's first line."""
    import re

    text = str(e)
    m = re.search(r"(?:^|: )([^:(\n]*?) \(os error \d+\)", text)
    if m:
        return m.group(1)
    with contextlib.suppress(OSError):
        st = os.statvfs(Path(path).parent if str(Path(path).parent) else ".")
        if st.f_bavail * st.f_frsize < 1 << 20:
            return os.strerror(errno.ENOSPC)
    return (text.splitlines() or [type(e).__name__])[0]


def sheet_headers(columns: list[str], lang: str = "en") -> list[str]:
    """The header cells of a CSV or XLSX file for ``columns``: each field's header in ``lang``
    (:func:`medaid.io.columns.header`; a field keeps its name where its Chinese header is already
    another column's), every header neutralised like a text cell (:func:`safe_text`)."""
    taken = set(columns)
    out = []
    for c in columns:
        h = header(c, lang)
        out.append(h if h == c or h not in taken else c)
    safe = [safe_text(h) for h in out]
    seen = set(out)
    for i, (h, s) in enumerate(zip(out, safe)):
        if s != h:  # ``'=x`` may itself be a column's name: add a number until unique
            base, k = s, 1
            while s in seen:
                k += 1
                s = f"{base}_{k}"
            seen.add(s)
            safe[i] = s
    return safe


def _write_csv(frame: "pl.DataFrame", tmp: Path, money: list[str], bom: bool,
               known: "Mapping[str, pl.Series]", headers: list[str]) -> None:
    import polars as pl

    fix, quote = _csv_checks(frame, known, headers)
    schema = frame.schema
    convert = ([yuan_decimal(c) for c in money]
               + [neutralise(c, None if schema[c] == pl.String else pl.col(c).cast(pl.String)) for c in fix]
               + _dates_as_text(frame))
    renames = {c: h for c, h in zip(frame.columns, headers) if c != h}
    # streamed: the converted columns only ever exist for the rows being written; when no cell
    # needs quotes (proved by the checks) the writer is told so and does not look at every cell
    frame.lazy().with_columns(convert).rename(renames).sink_csv(
        tmp, include_bom=bom, include_header=True, date_format="%Y-%m-%d", batch_size=CSV_BATCH_ROWS,
        quote_style="necessary" if quote else "never")


def _csv_checks(frame: "pl.DataFrame", known: "Mapping[str, pl.Series]",
                headers: list[str] | None = None) -> tuple[list[str], bool]:
    """``(columns with a cell to neutralise, whether any cell needs quotes)`` of a frame to be
    written as CSV.  Text columns are looked at in one parallel streaming pass; category columns
    once per distinct value (from ``known`` when given, else found in the same pass); enum
    columns by their categories; the header by ``headers`` (default: the column names)."""
    import polars as pl

    schema = frame.schema
    text = [c for c, t in schema.items() if t == pl.String]
    cats = [c for c, t in schema.items() if t == pl.Categorical]
    to_find = [c for c in cats if c not in known]
    may_lead = _may_lead_with_formula(frame, text)
    checks = ([pl.col(c).str.contains(_FORMULA_RE).any().alias(f"f{i}") for i, c in enumerate(may_lead)]
              + [_needs_quotes(pl.col(c)).any().alias(f"q{i}") for i, c in enumerate(text)]
              + [pl.col(c).unique().cast(pl.String).implode().alias(f"u{i}") for i, c in enumerate(to_find)])
    seen = frame.lazy().select(checks).collect(engine="streaming") if checks else pl.DataFrame()
    fix = [c for i, c in enumerate(may_lead) if seen[f"f{i}"].item()]
    quote = any(seen[f"q{i}"].item() for i in range(len(text)))
    found = {c: seen[f"u{i}"].explode() for i, c in enumerate(to_find)}
    values = {c: found[c] if c in found else known[c] for c in cats}
    values |= {c: pl.Series(t.categories, dtype=pl.String) for c, t in schema.items() if isinstance(t, pl.Enum)}
    for c, v in values.items():
        if v.str.contains(_FORMULA_RE).any():
            fix.append(c)
        quote = quote or bool(v.to_frame("v").select(_needs_quotes(pl.col("v")).any()).item())
    quote = quote or any(not c or any(q in c for q in _QUOTE_CHARS) for c in headers or frame.columns)
    return fix, quote


def _needs_quotes(text: "pl.Expr") -> "pl.Expr":
    """Whether a text cell needs quotes in CSV: it holds one of :data:`_QUOTE_CHARS` or is
    empty text (a substring search: 0.11 s on 10 M claim ids, against 0.18 s for a pattern)."""
    return text.str.contains_any(list(_QUOTE_CHARS)) | (text.str.len_bytes() == 0)


#: Date columns spanning at most this many days are written from a table of their ISO text.
DATE_TABLE_DAYS = 20_000


def _dates_as_text(frame: "pl.DataFrame") -> "list[pl.Expr]":
    """Each date column spanning at most :data:`DATE_TABLE_DAYS` days as categories of its ISO
    text (``2024-05-03``, the text the writer's ``%Y-%m-%d`` gives), looked up in a table of
    the days from the first to the last: the writer then copies text instead of formatting a
    calendar date per row (a missing date stays missing)."""
    import polars as pl

    out = []
    for c, t in frame.schema.items():
        if t != pl.Date:
            continue
        first, last = frame.select(pl.col(c).min().alias("a"), pl.col(c).max().alias("b")).row(0)
        if first is None or (last - first).days >= DATE_TABLE_DAYS:
            continue
        days = [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
        table = pl.Series(days, dtype=pl.Enum(days))
        out.append(pl.lit(table).gather((pl.col(c) - pl.lit(first)).dt.total_days()).alias(c))
    return out


def _may_lead_with_formula(frame: "pl.DataFrame", cols: list[str]) -> list[str]:
    """The text columns of ``cols`` where some value may start with a formula character, by
    their least and greatest values (one cheap pass): text is ordered by its UTF-8 bytes, the
    order of its characters, so every value's first character lies between the first
    characters of the least and the greatest, and a column where that range holds none of
    :data:`FORMULA_LEADS` needs nothing neutralised.  (An empty least value says nothing of the
    others: the column is kept for the full check.)"""
    import polars as pl

    if not cols or not frame.height:
        return cols
    ends = frame.select([pl.col(c).min().alias(f"{c}\x00lo") for c in cols]
                        + [pl.col(c).max().alias(f"{c}\x00hi") for c in cols]).row(0)
    leads = [ord(x) for x in FORMULA_LEADS]
    keep = []
    for c, lo, hi in zip(cols, ends[:len(cols)], ends[len(cols):]):
        if lo is None:  # every value missing
            continue
        if not lo or any(ord(lo[0]) <= b <= ord(hi[0]) for b in leads):
            keep.append(c)
    return keep


def _write_parquet(frame: "pl.DataFrame", tmp: Path, money: list[str]) -> None:

    frame.lazy().with_columns([yuan_decimal(c) for c in money]).sink_parquet(tmp)


def _write_xlsx(frame: "pl.DataFrame", tmp: Path, money: list[str], headers: list[str]) -> None:
    """XLSX via xlsxwriter (constant memory) when installed, else openpyxl's write-only mode.

    XLSX stores every number as a binary double: a money cell holds the double nearest to the
    exact yuan amount (``fen / 100``, correctly rounded), which Excel keeps to 15 significant
    digits: amounts beyond :data:`XLSX_MAX_FEN` are refused (:func:`_check_xlsx_money`), never
    rounded.  This is the format's one float boundary."""
    try:
        import xlsxwriter  # noqa: F401
    except ImportError:  # pragma: no cover - xlsxwriter is in the batch extra
        _write_xlsx_openpyxl(frame, tmp, money, headers)
    else:
        with _quiet_closing():
            failure = _write_xlsx_xlsxwriter(frame, tmp, money, headers)
        if failure is not None:
            raise failure


#: The largest amount, in fen, an XLSX number cell holds exactly: 15 significant digits
#: (9,999,999,999,999.99 yuan), the digits Excel shows and keeps.
XLSX_MAX_FEN = 10**15 - 1


def _check_xlsx_money(frame: "pl.DataFrame", path: str | Path, money: list[str]) -> None:
    """Refuse (naming the file and column) money an XLSX cell would round: beyond 15
    significant digits.  Only year-to-date columns of very large batches can get there (one
    claim's amounts are at most ``money.MAX_FEN``); CSV, JSON Lines and Parquet write them
    exactly."""
    import polars as pl

    if not money or not frame.height:
        return
    top = frame.select(pl.col(c).abs().max() for c in money).row(0)
    for c, v in zip(money, top):
        if v is not None and v > XLSX_MAX_FEN:
            raise WriteError(Problem(
                "holds an amount of 10,000,000,000,000 yuan or more, which an XLSX number cell "
                "would round; write .csv, .jsonl or .parquet instead", source=str(path), field=c))


@contextlib.contextmanager
def _quiet_closing() -> Iterator[None]:
    """While an XLSX file is written and its objects are freed, errors that Python can only
    print (a zip file closing again on a full disk, from its finaliser) are dropped: the
    write's own error is reported instead, once."""
    import gc
    import sys

    before = sys.unraisablehook

    def hook(u: "sys.UnraisableHookArgs") -> None:
        if not isinstance(u.exc_value, OSError):
            before(u)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = before


def _xlsx_plan(frame: "pl.DataFrame", money: list[str]) -> list[str]:
    import polars as pl

    kinds = []
    for c, t in frame.schema.items():
        if c in money:
            kinds.append("money")
        elif t == pl.Date:
            kinds.append("date")
        elif t == pl.String:
            kinds.append("text")
        elif t.is_numeric():
            kinds.append("number")
        else:
            kinds.append("other")
    return kinds


def safe_text(v: str) -> str:
    """Text for a spreadsheet cell: ``'`` before text starting like a formula (see
    :data:`FORMULA_LEADS`), as :func:`neutralise` does column-wise."""
    return "'" + v if v.startswith(FORMULA_LEADS) else v


def _write_xlsx_xlsxwriter(frame: "pl.DataFrame", tmp: Path, money: list[str],
                           headers: list[str]) -> OSError | None:
    """Write the sheet; a disk error (xlsxwriter wraps it) is returned as a plain ``OSError``
    with no traceback attached, so that the half-built zip file it holds is freed at once."""
    import xlsxwriter
    from xlsxwriter.exceptions import XlsxFileError

    failure: OSError | None = None
    try:
        _xlsxwriter_rows(frame, tmp, money, headers)
    except XlsxFileError as e:
        cause = e.args[0] if e.args and isinstance(e.args[0], OSError) else None
        failure = OSError(cause.errno, cause.strerror) if cause is not None else OSError(str(e))
    except OSError as e:
        failure = OSError(e.errno, e.strerror or str(e))
    del xlsxwriter
    return failure


def _xlsxwriter_rows(frame: "pl.DataFrame", tmp: Path, money: list[str], headers: list[str]) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(str(tmp), {
        "constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
        "strings_to_urls": False,
    })
    try:
        ws = wb.add_worksheet("results")
        money_fmt = wb.add_format({"num_format": XLSX_MONEY_FORMAT})
        date_fmt = wb.add_format({"num_format": XLSX_DATE_FORMAT})
        for j, c in enumerate(headers):
            ws.write_string(0, j, c)
        kinds = _xlsx_plan(frame, money)
        ws_num, ws_str, ws_dt = ws.write_number, ws.write_string, ws.write_datetime
        for i, rec in enumerate(frame.iter_rows(), start=1):
            for j, v in enumerate(rec):
                if v is None:
                    continue
                k = kinds[j]
                if k == "money":
                    ws_num(i, j, v / 100, money_fmt)
                elif k == "text":
                    ws_str(i, j, safe_text(v))
                elif k == "date":
                    ws_dt(i, j, dt.datetime(v.year, v.month, v.day), date_fmt)
                elif k == "number":
                    ws_num(i, j, v)
                else:
                    ws_str(i, j, safe_text(str(v)))
    except BaseException:
        with contextlib.suppress(Exception):  # the temporary files; the first error is the one
            wb.close()
        raise
    wb.close()


def _write_xlsx_openpyxl(frame: "pl.DataFrame", tmp: Path, money: list[str], headers: list[str]) -> None:
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("results")
    ws.append(list(headers))
    kinds = _xlsx_plan(frame, money)
    for rec in frame.iter_rows():
        cells: list[object] = []
        for j, v in enumerate(rec):
            k = kinds[j]
            if v is None:
                cells.append(None)
            elif k == "money":
                cell = WriteOnlyCell(ws, value=fen_to_decimal(v))
                cell.number_format = XLSX_MONEY_FORMAT
                cells.append(cell)
            elif k == "text":
                cells.append(WriteOnlyCell(ws, value=safe_text(v)))
            elif k == "date":
                cell = WriteOnlyCell(ws, value=v)
                cell.number_format = XLSX_DATE_FORMAT
                cells.append(cell)
            elif k == "number":
                cells.append(v)
            else:
                cells.append(WriteOnlyCell(ws, value=safe_text(str(v))))
        ws.append(cells)
    wb.save(tmp)

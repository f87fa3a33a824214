"""A frame written as an XLSX sheet (to a temporary path; :func:`medaid.io.writers.write_frame`
makes the write atomic): xlsxwriter in constant memory when installed, else openpyxl's
write-only mode.

Rules implemented (docs/batch.md, *Output files*): money cells are numbers with the number
format ``#,##0.00``, dates are date cells, text cells starting like a formula get a leading
``'`` (:func:`medaid.io.cells.safe_text`).  XLSX stores every number as a binary double: a
money cell holds the double nearest to the exact yuan amount (the ``Decimal`` of
:func:`medaid.money.fen_to_decimal`, correctly rounded), which Excel keeps to 15 significant
digits: amounts beyond :data:`XLSX_MAX_FEN` are refused (:func:`xlsx_money_problem`), never
rounded.  This is the format's one float boundary.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from ..errors import Problem
from ..money import fen_to_decimal
from .cells import safe_text

XLSX_MONEY_FORMAT = "#,##0.00"
XLSX_DATE_FORMAT = "yyyy-mm-dd"
#: The largest amount, in fen, an XLSX number cell holds exactly: 15 significant digits
#: (9,999,999,999,999.99 yuan), the digits Excel shows and keeps.
XLSX_MAX_FEN = 10**15 - 1


def xlsx_money_problem(frame: pl.DataFrame, money: list[str], source: str) -> Problem | None:
    """The problem (naming the file and column) of money an XLSX cell would round: beyond 15
    significant digits; ``None`` when there is none.  Only year-to-date columns of very large
    batches can get there (one claim's amounts are at most ``money.MAX_FEN``); CSV, JSON
    Lines and Parquet write them exactly."""
    if not money or not frame.height:
        return None
    top = frame.select(pl.col(c).abs().max() for c in money).row(0)
    for c, v in zip(money, top):
        if v is not None and v > XLSX_MAX_FEN:
            return Problem(
                "holds an amount of 10,000,000,000,000 yuan or more, which an XLSX number cell "
                "would round; write .csv, .jsonl or .parquet instead", source=source, field=c)
    return None


def write_xlsx(frame: pl.DataFrame, tmp: Path, money: list[str], headers: list[str]) -> None:
    """Write ``frame`` as the sheet ``results`` of an XLSX file at ``tmp`` under the header
    cells ``headers``; ``money`` are its fen columns.  A disk error is raised as an
    ``OSError``, once."""
    try:
        import xlsxwriter  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:  # pragma: no cover - xlsxwriter is in the batch extra
        _write_xlsx_openpyxl(frame, tmp, money, headers)
    else:
        with _quiet_closing():
            failure = _write_xlsx_xlsxwriter(frame, tmp, money, headers)
        if failure is not None:
            raise failure


@contextlib.contextmanager
def _quiet_closing() -> Iterator[None]:
    """While an XLSX file is written and its objects are freed, errors that Python can only
    print (a zip file closing again on a full disk, from its finaliser) are dropped: the
    write's own error is reported instead, once."""
    before = sys.unraisablehook

    def hook(u: sys.UnraisableHookArgs) -> None:
        if not isinstance(u.exc_value, OSError):
            before(u)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = before


def _xlsx_plan(frame: pl.DataFrame, money: list[str]) -> list[str]:
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


def _write_xlsx_xlsxwriter(frame: pl.DataFrame, tmp: Path, money: list[str],
                           headers: list[str]) -> OSError | None:
    """Write the sheet; a disk error (xlsxwriter wraps it) is returned as a plain ``OSError``
    with no traceback attached, so that the half-built zip file it holds is freed at once."""
    import xlsxwriter
    from xlsxwriter.exceptions import XlsxFileError  # type: ignore[import-untyped]

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


def _xlsxwriter_rows(frame: pl.DataFrame, tmp: Path, money: list[str], headers: list[str]) -> None:
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
                    ws_num(i, j, float(fen_to_decimal(v)), money_fmt)
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


def _write_xlsx_openpyxl(frame: pl.DataFrame, tmp: Path, money: list[str], headers: list[str]) -> None:
    import openpyxl  # type: ignore[import-untyped]
    from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]

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

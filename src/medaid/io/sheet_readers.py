"""XLSX claim files (openpyxl, read-only) as text: numeric cells arrive as floats and are turned
into text with ``repr()`` here (:func:`cell_text`), the one place a float is seen; a float
that is not an exact amount with two decimals is then refused by validation, never rounded."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import Problem
from .columns import ID_FIELDS
from .headers import HEADER_SEARCH_ROWS, pick_header
from .ids import number_as_id
from .raw import RawFile, ReadError, frame_from_columns


def cell_text(v: Any) -> str | None:
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
    (:func:`medaid.io.ids.number_as_id`), or the problem refusing the row."""
    for j, field in ids:
        v = cells[j].value if j < len(cells) else None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            text, message = number_as_id(v)
            if message is not None:
                return Problem(message, source=source, line=line, field=field)
            values[j] = text
    return None


def read_xlsx(
    path: Path, source: str, sheet: str | None, name_of: Callable[..., list[str]],
    mapping: Mapping[str, str] | None = None,
) -> RawFile:
    """The first sheet (or ``sheet``) of an XLSX workbook as text: the header found among its
    first rows, cells as text (:func:`cell_text`), IDs held as numbers by
    :func:`medaid.io.ids.number_as_id`, empty sheet rows counted, not rows."""
    import openpyxl  # type: ignore[import-untyped]

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
        elif not wb.worksheets:
            raise ReadError(Problem("the workbook has no sheet", source=source))
        else:
            ws = wb.worksheets[0]
        ws.reset_dimensions()  # some exporters write a wrong sheet size; read every row
        def filled() -> Iterator[tuple[int, list[str | None], Any]]:
            for cells in ws.iter_rows():
                r = next((c.row for c in cells if getattr(c, "row", None)), None)
                values = [cell_text(c.value) for c in cells]
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
        return RawFile(frame_from_columns(names, cols, rows), problems, header_row, blank)
    except ReadError:
        raise
    except Exception as e:  # noqa: BLE001 - a sheet openpyxl cannot parse (broken XML, a NaN cell...)
        raise ReadError(Problem(f"cannot be read as XLSX ({type(e).__name__}: a part of the workbook cannot be parsed)",
                                source=source)) from None
    finally:
        wb.close()

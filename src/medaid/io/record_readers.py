"""Claim files of records: JSON Lines (UTF-8, as JSON requires; numbers kept as the text
written, never a float) and Parquet (typed columns turned into text as a claim file would hold
them, :func:`text_columns`).  An ID held as a number goes through
:func:`medaid.io.ids.number_as_id` (JSON) or :func:`numeric_id_problems` (Parquet)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import Problem
from .columns import ID_FIELDS, ROW
from .ids import id_number_problem, number_as_id
from .raw import RawFile, ReadError, frame_from_columns
from .rejects import as_rejects, empty_rejects
from .sheet_readers import cell_text


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


def read_jsonl(
    path: Path, source: str, name_of: Callable[[list[str]], list[str]],
) -> RawFile:
    """JSON Lines (UTF-8, as JSON requires); numbers are kept as the text written in the file
    (never a float); an ID written as a number goes through
    :func:`medaid.io.ids.number_as_id`; blank lines are counted, not rows."""
    try:
        records, rows, problems, keys, blank = _jsonl_records(path, source)
    except UnicodeDecodeError:
        raise _utf8_problem(path, source) from None
    headers = list(keys)
    if not headers and not problems:
        raise ReadError(Problem("the file is empty", source=source))
    if not headers:  # no line is an object to read: the file is refused with its lines' problems
        first = problems[0]
        more = f" (and {len(problems) - 1} more line(s) like it)" if len(problems) > 1 else ""
        raise ReadError(Problem(f"no line holds a JSON object to read: line {first.line} {first.message}{more}",
                                source=source, line=first.line))
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
    return RawFile(frame_from_columns(names, cols, rows), problems, 0, blank)


def _json_ids(rec: dict[str, Any], ids: list[tuple[str, str]], source: str, line: int) -> Problem | None:
    """ID values of a JSON Lines record written as numbers: their exact digits put in ``rec``
    (:func:`medaid.io.ids.number_as_id`), or the problem refusing the record."""
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
                                 parse_constant=lambda s: s, object_pairs_hook=_once_each)
            except _KeyTwice as e:
                problems.append(Problem(f"has the key {e.key!r} twice in one object: which value is meant is "
                                        "not for medaid to guess", source=source, line=n, field="row"))
                continue
            except json.JSONDecodeError as e:
                problems.append(Problem(f"is not valid JSON ({e.msg})", source=source, line=n, field="row"))
                continue
            except RecursionError:
                problems.append(Problem("is nested too deeply to read", source=source, line=n, field="row"))
                continue
            if not isinstance(obj, dict):
                problems.append(Problem("is not a JSON object", source=source, line=n, field="row"))
                continue
            if _has_lone_surrogate(obj):
                problems.append(Problem("holds an escaped lone surrogate (\\ud800-\\udfff): not a character",
                                        source=source, line=n, field="row"))
                continue
            for k in obj:
                keys.setdefault(k, None)
            records.append(obj)
            rows.append(n)
    return records, rows, problems, keys, blank


class _KeyTwice(ValueError):
    """A JSON object with a key twice (JSON allows it; Python's reader keeps the last value)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a key given twice (:class:`_KeyTwice`)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _KeyTwice(k)
        out[k] = v
    return out


def _has_lone_surrogate(obj: dict[str, Any]) -> bool:
    """Whether a key or a text value of a JSON object is not Unicode text: JSON may escape half
    of a surrogate pair alone (``"\\ud800"``), which no UTF-8 text can hold."""
    def bad(x: Any) -> bool:
        if isinstance(x, str):
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                return True
            return False
        if isinstance(x, dict):
            return any(bad(k) or bad(v) for k, v in x.items())
        if isinstance(x, list):
            return any(bad(v) for v in x)
        return False
    return bad(obj)


def read_parquet(
    path: Path, source: str, name_of: Callable[[list[str]], list[str]],
) -> tuple[pl.DataFrame, list[Problem]]:
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


def numeric_id_problems(frame: pl.DataFrame, names: list[str], first: int) -> pl.DataFrame:
    """Rows of a typed frame (Parquet) whose ID column holds a number that cannot be an exact
    ID (:func:`medaid.io.ids.id_number_problem`), as a rejects frame (``row`` counted from
    ``first``; one record per row, the first such ID).  ``names`` are the columns' field names.
    Local and Spark readers both use it."""
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
    return as_rejects(found.select(
        ROW, pl.lit(None, pl.String).alias("claim_id"), field.alias("field"),
        pl.coalesce([pl.col(n) for n in ids]).alias("message")))


def text_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column of a typed frame (Parquet) as text, as a claim file would hold it: dates
    ISO, date-times without a zero time, floats through :func:`medaid.io.sheet_readers.cell_text` (``repr()``: the one
    float boundary, as for XLSX, so ``1234.567`` is then refused, never rounded), the rest by
    polars' own cast.  The local reader and the Spark reader both use it."""
    exprs = []
    for name, dtype in frame.schema.items():
        e = pl.col(name)
        if dtype == pl.Date:
            e = e.dt.strftime("%Y-%m-%d")
        elif dtype == pl.Datetime:
            e = e.dt.strftime("%Y-%m-%d %H:%M:%S").str.replace(" 00:00:00", "", literal=True)
        elif dtype.is_float():
            e = e.map_elements(cell_text, return_dtype=pl.String)
        else:
            e = e.cast(pl.String)
        exprs.append(e.alias(name))
    return frame.select(exprs)

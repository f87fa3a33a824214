"""Reading batch results (and, through a hook, the ledger) into the report's results frame.

The report works on one polars frame with the columns of :mod:`medaid.columns`: the claim's
fields (``claim_id, person_id, date, self_pay, group, kind, hospital, total_cost`` and optional
``major_disease``) followed by the result fields (``plan, pool, benefit_year, relief,
patient_pays, bracket_relief, capped_by, bracket, ytd_self_pay, ytd_relief, rule_set_id,
rule_version, rule_hash``).  Money is ``Int64`` fen; ``date`` is ``Date``; ``bracket`` is
``Int8``; ``benefit_year`` is ``Int32``; ``major_disease`` is ``Boolean``.

Files (DESIGN.md §2, *Money*; §5 *Reliability*):

* CSV and JSONL carry money as yuan text with at most two decimals.  Canonical text
  (``12345.67``) is converted column-wise with integer arithmetic; anything else (thousands
  separators, full-width digits, bad text) goes through :func:`medaid.money.parse_yuan`, the one
  door for amounts, so that the same values are accepted and refused everywhere.
* Parquet carries money as ``Decimal(18, 2)`` yuan; it is scaled to fen exactly.
* XLSX carries money as numeric cells.  Excel stores numbers as binary doubles, so a cell is
  read back through its shortest decimal text (``repr``), which is the text Excel was given
  for any amount of at most 15 significant digits, and then through ``parse_yuan``.

Every bad value is reported with the file, the line (as the user sees it: the header is line 1)
and the field; never with the amount itself.  Headers may be English or the Chinese aliases of
:data:`medaid.columns.HEADER_ALIASES`.

This module is the report's own reader until the shared readers and the ledger are wired in;
:func:`load_ledger_results` is the hook for the ledger.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from .columns import CLAIM_FIELDS, CLAIM_MONEY_FIELDS, RESULT_FIELDS, RESULT_MONEY_FIELDS, result_field
from .errors import MedaidError, Problem
from .money import parse_yuan

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

#: Every column the report knows, in order.
KNOWN_FIELDS: tuple[str, ...] = (*CLAIM_FIELDS, "major_disease", *RESULT_FIELDS)
MONEY_FIELDS: frozenset[str] = frozenset((*CLAIM_MONEY_FIELDS, *RESULT_MONEY_FIELDS))
#: Columns a file must have to be taken as results at all.
REQUIRED_RESULT_FIELDS: tuple[str, ...] = ("claim_id", "person_id", "date", "relief")
#: File suffixes read as a ledger rather than a results file.
LEDGER_SUFFIXES: tuple[str, ...] = (".sqlite3", ".sqlite", ".db")

#: Text accepted for the major-disease flag (after stripping and case-folding).
TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "是", "有", "✓"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "否", "无", ""})

_MAX_PROBLEMS = 20
_CANONICAL_YUAN = r"^[0-9]{1,16}(\.[0-9]{1,2})?$"


class ResultsError(MedaidError):
    """A results file (or ledger) could not be read as batch results."""


def _dtypes() -> dict[str, Any]:
    import polars as pl

    d: dict[str, Any] = {f: pl.String for f in KNOWN_FIELDS}
    d.update({f: pl.Int64 for f in MONEY_FIELDS})
    d.update(date=pl.Date, bracket=pl.Int8, benefit_year=pl.Int32, major_disease=pl.Boolean)
    return d


def is_ledger_path(path: str | Path) -> bool:
    """True when ``path`` names a ledger (``.sqlite3``, ``.sqlite`` or ``.db``)."""
    return str(path).lower().endswith(LEDGER_SUFFIXES)


def canonical_header(name: str) -> str | None:
    """The field a header names (English name, a Chinese alias, or the Chinese header that
    ``--lang zh`` writes), or ``None`` if unknown."""
    field = result_field(name)
    return field if field in KNOWN_FIELDS else None


def load_results(path: str | Path, fields: Iterable[str] | None = None) -> "pl.DataFrame":
    """Read a results file (CSV, JSONL, Parquet or XLSX, by suffix) into the results frame.

    ``fields`` limits the columns read and converted (the report passes the ones it uses);
    the required ones (claim id, person id, date, relief) are always checked.  Raises :class:`ResultsError` naming the file, line and field of each bad value (at most
    20), or naming the missing columns when the file is not batch results.  A ledger path is
    refused here: use :func:`load_ledger_results`.
    """
    p = Path(path)
    if is_ledger_path(p):
        return load_ledger_results(p)
    if not p.is_file():
        raise ResultsError(Problem("no such results file", source=str(p)))
    want = None if fields is None else frozenset(fields) | frozenset(REQUIRED_RESULT_FIELDS)
    suffix = p.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        raw, first_line = _read_csv(p, "\t" if suffix == ".tsv" else ",", want), 2
    elif suffix in (".jsonl", ".ndjson", ".json"):
        raw, first_line = _read_jsonl(p, want), 1
    elif suffix in (".parquet", ".pq"):
        raw, first_line = _read_parquet(p, want), 1
    elif suffix == ".xlsx":
        raw, first_line = _read_xlsx(p, want), 2
    else:
        raise ResultsError(Problem(
            f"unknown results format {suffix or '(no suffix)'!r}; expected .csv, .jsonl, "
            ".parquet, .xlsx, or a ledger (.sqlite3/.db)", source=str(p)))
    return normalise(raw, source=str(p), first_line=first_line)


def load_ledger_results(path: str | Path, year: int | None = None) -> "pl.DataFrame":
    """Read a ledger's settlements as a results frame, through ``Ledger(path).results_rows``.

    The hook for the desk ledger: until :mod:`medaid.ledger` is part of this build, a clear
    :class:`ResultsError` says so (no traceback).  The rows are dicts with the results
    columns, money in fen (``int``) and ``date`` as a date or ISO text.
    """
    p = Path(path)
    try:
        from .ledger import Ledger  # type: ignore[import-not-found,attr-defined]
    except ImportError:
        raise ResultsError(Problem(
            "reading a ledger needs medaid.ledger, which this build does not include yet; "
            "export the year's results to CSV or Parquet (medaid batch) and report on that file",
            source=str(p))) from None
    if not p.is_file():
        raise ResultsError(Problem("no such ledger", source=str(p)))
    rows = Ledger(p).results_rows(year) if year is not None else Ledger(p).results_rows()
    return frame_from_rows(rows, source=str(p))


def frame_from_rows(rows: Iterable[Mapping[str, Any]], source: str = "<rows>") -> "pl.DataFrame":
    """Build the results frame from dicts (money as ``int`` fen), e.g. a ledger's rows."""
    import polars as pl

    cols: dict[str, list[Any]] = {f: [] for f in KNOWN_FIELDS}
    seen: set[str] = set()
    for n, row in enumerate(rows, start=1):
        for f in KNOWN_FIELDS:
            if f in row:
                seen.add(f)  # a key present with None (capped_by: not capped) is data, not absent
            v = row.get(f)
            if v is not None:
                try:
                    v = _row_value(f, v)
                except (TypeError, ValueError) as e:
                    raise ResultsError(Problem(str(e), source=source, line=n, field=f)) from None
            cols[f].append(v)
    dtypes = _dtypes()
    present = [f for f in KNOWN_FIELDS if f in seen or f in REQUIRED_RESULT_FIELDS]
    return pl.DataFrame({f: pl.Series(f, cols[f], dtype=dtypes[f]) for f in present})


def _row_value(f: str, v: Any) -> Any:
    """One value of a result row dict, checked and typed for the frame."""
    if f in MONEY_FIELDS:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"money must be int fen in result rows, not {type(v).__name__}")
        return v
    if f == "date":
        if isinstance(v, dt.datetime):
            return v.date()
        return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)[:10])
    if f == "major_disease":
        try:
            return _flag(v)
        except ValueError:
            raise ValueError("is not a yes/no flag (1/0, true/false, yes/no, 是/否)") from None
    return v


# ---------------------------------------------------------------------------------------------
# per-format raw readers: columns renamed to fields, values still as read


def _rename(names: list[str], source: str, want: frozenset[str] | None = None) -> dict[str, str]:
    """File column name → field, for the columns that name a known (and wanted) field.  A
    column named exactly by the field name wins over a Chinese header or alias of the same
    field (a results file written with ``--lang zh`` keeps the field name for a result column
    whose Chinese header an input column already has)."""
    mapping: dict[str, str] = {}
    taken: dict[str, str] = {}
    exact = set(names)
    for n in names:
        f = canonical_header(n)
        if f is None or (want is not None and f not in want) or (f != n and f in exact):
            continue
        if f in taken:
            raise ResultsError(Problem(
                f"columns {taken[f]!r} and {n!r} both name the field {f!r}", source=source, line=1))
        taken[f] = n
        mapping[n] = f
    return mapping


def _read_csv(p: Path, sep: str, want: frozenset[str] | None = None) -> "pl.DataFrame":
    import polars as pl

    src: Any = p
    with open(p, "rb") as fh:
        head = fh.read(1 << 16)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        # Chinese spreadsheet exports are often GBK/GB18030: read those too, refuse the rest.
        try:
            src = io.BytesIO(p.read_bytes().decode("gb18030").encode("utf-8"))
        except UnicodeDecodeError:
            raise ResultsError(Problem("is neither UTF-8 nor GB18030 text", source=str(p))) from None
    try:
        header = pl.read_csv(src, separator=sep, infer_schema=False, encoding="utf8", n_rows=0).columns
        m = _rename(header, str(p), want)
        if isinstance(src, io.BytesIO):
            src.seek(0)
        # Only the wanted columns are parsed (a results file carries hashes the report never reads).
        raw = pl.read_csv(src, separator=sep, infer_schema=False, encoding="utf8", columns=list(m) or None)
    except pl.exceptions.NoDataError:
        raise ResultsError(Problem("the file is empty", source=str(p))) from None
    except pl.exceptions.ComputeError as e:
        raise ResultsError(Problem(f"not readable as CSV ({str(e).splitlines()[0]})", source=str(p))) from None
    return raw.select([pl.col(k).alias(v) for k, v in m.items()])


def _read_jsonl(p: Path, want: frozenset[str] | None = None) -> "pl.DataFrame":
    import polars as pl

    keys: list[str] = []
    with open(p, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    first = json.loads(line)
                except ValueError:
                    raise ResultsError(Problem("not a JSON object", source=str(p), line=1)) from None
                keys = list(first) if isinstance(first, dict) else []
                break
    # Money fields are read as text: yuan text stays exactly as written.
    money = {k: pl.String for k in keys if canonical_header(k) in MONEY_FIELDS}
    try:
        raw = pl.read_ndjson(p, schema_overrides=money or None, infer_schema_length=None)
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError) as e:
        raise ResultsError(Problem(f"not readable as JSON lines ({str(e).splitlines()[0]})", source=str(p))) from None
    m = _rename(raw.columns, str(p), want)
    return raw.select([pl.col(k).alias(v) for k, v in m.items()])


def _read_parquet(p: Path, want: frozenset[str] | None = None) -> "pl.DataFrame":
    import polars as pl

    try:
        m = _rename(list(pl.read_parquet_schema(p)), str(p), want)
        raw = pl.read_parquet(p, columns=list(m))
    except Exception as e:  # pyarrow/polars raise many kinds for a bad file
        raise ResultsError(Problem(f"not readable as Parquet ({str(e).splitlines()[0]})", source=str(p))) from None
    raw = raw.select([pl.col(k).alias(v) for k, v in m.items()])
    exprs = []
    for f in raw.columns:
        dtype = raw.schema[f]
        if f in MONEY_FIELDS and dtype != pl.String:
            if not isinstance(dtype, pl.Decimal):
                raise ResultsError(Problem(
                    f"money in Parquet must be Decimal(18,2) yuan (or yuan text), not {dtype}",
                    source=str(p), field=f))
            # A Decimal's physical value is an integer of 10^-scale yuan: fen by integer scaling.
            scale = dtype.scale or 0
            units = pl.col(f).to_physical()
            if scale > 2:
                step = 10 ** (scale - 2)
                bad = raw.select((units % step != 0).arg_true().first()).item()
                if bad is not None:
                    raise ResultsError(Problem("has more than two decimals", source=str(p),
                                               line=bad + 1, field=f))
                units = units // step
            elif scale < 2:
                units = units * 10 ** (2 - scale)
            exprs.append(units.cast(pl.Int64).alias(f))
        elif f == "date" and isinstance(dtype, pl.Datetime):
            exprs.append(pl.col(f).dt.date())
        else:
            exprs.append(pl.col(f))
    return raw.select(exprs)


def _read_xlsx(p: Path, want: frozenset[str] | None = None) -> "pl.DataFrame":
    import polars as pl
    from openpyxl import load_workbook

    try:
        wb = load_workbook(p, read_only=True, data_only=True)
    except Exception as e:
        raise ResultsError(Problem(f"not readable as XLSX ({e.__class__.__name__})", source=str(p))) from None
    try:
        rows = wb.active.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise ResultsError(Problem("the sheet is empty", source=str(p)))
        names = ["" if h is None else str(h) for h in header]
        m = _rename(names, str(p), want)
        index = {m[n]: i for i, n in enumerate(names) if n in m}
        cols: dict[str, list[Any]] = {f: [] for f in index}
        problems: list[Problem] = []
        for line, row in enumerate(rows, start=2):
            if row is None or all(v is None or v == "" for v in row):
                continue
            for f, i in index.items():
                v = row[i] if i < len(row) else None
                if f in MONEY_FIELDS:
                    v = _xlsx_money(v, str(p), line, f, problems)
                elif f == "date":
                    v = _xlsx_date(v, str(p), line, problems)
                elif v is not None and not isinstance(v, str):
                    v = str(v) if not isinstance(v, float) or not v.is_integer() else str(int(v))
                cols[f].append(v)
            if len(problems) >= _MAX_PROBLEMS:
                break
        if problems:
            raise ResultsError(problems)
    finally:
        wb.close()
    dtypes = _dtypes()
    return pl.DataFrame({
        f: pl.Series(f, v, dtype=dtypes[f] if f in MONEY_FIELDS or f == "date" else pl.String)
        for f, v in cols.items()
    })


def _xlsx_money(v: Any, source: str, line: int, field: str, problems: list[Problem]) -> int | None:
    """A numeric (or text) cell → fen, through the cell's shortest decimal text."""
    if v is None or v == "":
        return None
    try:
        if isinstance(v, float):
            return parse_yuan(repr(v), field=field)
        return parse_yuan(v if isinstance(v, (int, str)) else str(v), field=field)
    except MedaidError as e:
        problems.append(Problem(e.problems[0].message, source=source, line=line, field=field))
        return None


def _xlsx_date(v: Any, source: str, line: int, problems: list[Problem]) -> dt.date | None:
    if v is None or v == "":
        return None
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v).strip())
    except ValueError:
        problems.append(Problem("is not a date (YYYY-MM-DD)", source=source, line=line, field="date"))
        return None


# ---------------------------------------------------------------------------------------------
# column-wise conversion of text columns to the results frame's types


def normalise(raw: "pl.DataFrame", *, source: str, first_line: int = 2) -> "pl.DataFrame":
    """Convert a frame of result columns (text or already typed) to the results frame.

    Text money goes to fen, text dates to ``Date``, ``bracket``/``benefit_year`` to integers,
    ``major_disease`` to ``Boolean``; empty text is a missing value.  Bad values raise
    :class:`ResultsError` with ``source``, the line (row ``i`` is line ``first_line + i``) and
    the field.

    One columnar pass converts everything; a second pass counts, per column, the values that
    did not convert.  Only money text outside the plain ``digits[.dd]`` form goes through
    :func:`medaid.money.parse_yuan` row by row (it either reads it, e.g. ``12,345.67``, or
    says why not).
    """
    import polars as pl

    missing = [f for f in REQUIRED_RESULT_FIELDS if f not in raw.columns]
    if missing:
        raise ResultsError(Problem(
            f"not a results file: missing column(s) {', '.join(missing)} "
            "(run medaid batch on the claims first)", source=source, line=1 if first_line == 2 else None))
    dtypes = _dtypes()
    fields = [c for c in KNOWN_FIELDS if c in raw.columns]
    texts: dict[str, pl.Expr] = {}  # text columns converted to another type: their cleaned text
    exprs: list[pl.Expr] = []
    for f in fields:
        dtype, want, col = raw.schema[f], dtypes[f], pl.col(f)
        if dtype == pl.String:
            text = pl.when(col.str.len_bytes() > 0).then(col)  # empty text is a missing value
            if want == pl.String:
                exprs.append(text.alias(f))
                continue
            texts[f] = text
            if f in MONEY_FIELDS:
                conv = _fen_fast(text)
            elif f == "major_disease":
                conv = _flag_expr(text)
            elif want == pl.Date:  # a settlement time (2024-05-03 10:15:00) counts by its day
                day = pl.when(text.str.len_bytes() > 10).then(
                    text.str.replace(r"[ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?$", "")).otherwise(text)
                conv = day.str.to_date("%Y-%m-%d", strict=False)
            else:
                conv = text.cast(want, strict=False)
            exprs.append(conv.alias(f))
        elif f == "major_disease" and dtype != pl.Boolean:
            texts[f] = col.cast(pl.String)
            exprs.append(_flag_expr(col.cast(pl.String)).alias(f))
        elif f in MONEY_FIELDS and not dtype.is_integer():
            raise ResultsError(Problem(f"money must be yuan text, not {dtype}", source=source, field=f))
        else:
            try:
                exprs.append(col.cast(want).alias(f))
            except Exception:  # pragma: no cover - defensive
                raise ResultsError(Problem(f"cannot be read as {want}", source=source, field=f)) from None
    out = raw.select(exprs)
    # Second pass: per converted column, how many values did not convert (and negatives).
    checks = [
        (t.is_not_null() & pl.lit(out[f]).is_null()).sum().alias(f) for f, t in texts.items()
    ] + [(pl.lit(out[f]) < 0).sum().alias(f"-{f}") for f in fields if f in MONEY_FIELDS]
    counts = raw.select(checks).row(0, named=True) if checks else {}
    problems: list[Problem] = []
    fixes: dict[str, pl.Series] = {}
    for f, t in texts.items():
        if not counts.get(f):
            continue
        idx = _rows(raw, t.is_not_null() & pl.lit(out[f]).is_null())
        if f in MONEY_FIELDS:
            fixes[f] = _fen_slow(raw, out[f], f, t, idx, source, first_line, problems)
        else:
            message = {"major_disease": "is not a yes/no flag (1/0, true/false, yes/no, 是/否)",
                       "date": "is not a date (YYYY-MM-DD)"}.get(f, "is not a whole number")
            problems += [Problem(message, source=source, line=first_line + i, field=f) for i in idx]
    if fixes:
        out = out.with_columns(list(fixes.values()))
    for f in fields:
        if counts.get(f"-{f}") or (f in fixes and (fixes[f] < 0).any()):
            idx = _rows(out, pl.col(f) < 0)
            problems += [Problem("must not be negative", source=source, line=first_line + i, field=f) for i in idx]
    if problems:
        problems.sort(key=lambda p: (p.line or 0, fields.index(p.field) if p.field in fields else 0))
        raise ResultsError(problems[:_MAX_PROBLEMS])
    return out


def _rows(frame: "pl.DataFrame", mask: "pl.Expr", limit: int = _MAX_PROBLEMS) -> list[int]:
    """Indexes of the first ``limit`` rows where ``mask`` holds."""
    import polars as pl

    return frame.select(mask.fill_null(False).arg_true().head(limit).cast(pl.Int64)).to_series().to_list()


def _fen_fast(text: "pl.Expr") -> "pl.Expr":
    """Plain yuan text → Int64 fen, column-wise: ``12345.67``, ``12345.6`` or ``12345`` (as
    spreadsheets export them); anything else (spaces, signs, separators, three decimals, other
    digits) gives null here and is left to :func:`medaid.money.parse_yuan`."""
    import polars as pl

    plain = text.str.contains(_CANONICAL_YUAN)
    digits = text.str.replace(".", "", literal=True).cast(pl.Int64, strict=False)
    decimals = text.str.len_bytes().cast(pl.Int64) - 1 - text.str.find(".", literal=True).cast(pl.Int64)
    scale = pl.when(decimals.is_null()).then(100).when(decimals == 1).then(10).otherwise(1)
    return pl.when(plain).then(digits * scale)


def _fen_slow(raw: "pl.DataFrame", fast: "pl.Series", f: str, text: "pl.Expr", idx: list[int], source: str,
              first_line: int, problems: list[Problem]) -> "pl.Series":
    """Money text the fast path left: read each through ``parse_yuan`` (all of them when they
    are few; the first problems otherwise) and return the completed column."""
    import polars as pl

    odd = raw.select(pl.int_range(pl.len()).alias("i"), text.alias("t")).filter(
        pl.col("t").is_not_null() & pl.lit(fast).is_null())
    at: list[int] = []
    fens: list[int] = []
    for i, t in odd.iter_rows():
        try:
            fen = parse_yuan(t, field=f)
            if fen >= 1 << 63:
                raise MedaidError(Problem("is too large", field=f))
            fens.append(fen)
            at.append(i)
        except MedaidError as e:
            problems.append(Problem(e.problems[0].message, source=source, line=first_line + i, field=f))
            if len(problems) >= _MAX_PROBLEMS:
                break
    if not at:
        return fast
    return fast.scatter(at, pl.Series(fens, dtype=pl.Int64))


def _flag(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        if v in (0, 1):
            return bool(v)
        raise ValueError(v)
    s = str(v).strip().casefold()
    if s in TRUE_WORDS:
        return True
    if s in FALSE_WORDS:
        return None if s == "" else False
    raise ValueError(v)


def _flag_expr(text: "pl.Expr") -> "pl.Expr":
    """The major-disease flag: 1/0, true/false, yes/no, 是/否 → Boolean (empty = missing)."""
    import polars as pl

    low = text.str.strip_chars().str.to_lowercase()
    return (
        pl.when(low.is_in(sorted(TRUE_WORDS))).then(True)
        .when(low.is_in(sorted(FALSE_WORDS - {""}))).then(False)
        .otherwise(None)
    )


__all__ = [
    "KNOWN_FIELDS",
    "MONEY_FIELDS",
    "ResultsError",
    "canonical_header",
    "frame_from_rows",
    "is_ledger_path",
    "load_ledger_results",
    "load_results",
    "normalise",
]

"""Reading results files (and, through a hook, the ledger): the one reader of what medaid wrote.

``medaid report`` (:func:`load_results`) and ``medaid recalc --previous`` (through
:func:`medaid.io.readers.read_results`) read results files here, so that both accept the same
files: the same encodings (UTF-8, UTF-8 with BOM, GBK/GB18030 for CSV), formats, headers and
amounts.

The report works on one polars frame with the columns of :mod:`medaid.io.columns`: the claim's
fields (``claim_id, person_id, date, self_pay, group, kind, hospital, total_cost`` and optional
``major_disease``) followed by the result fields (``plan, pool, benefit_year, relief,
patient_pays, bracket_relief, capped_by, bracket, ytd_self_pay, ytd_relief, rule_set_id,
rule_version, rule_hash``).  Money is ``Int64`` fen; ``date`` is ``Date``; ``bracket`` is
``Int8``; ``benefit_year`` is ``Int32``; ``major_disease`` is ``Boolean``.

Files (docs/calculation.md#money; README.md#reliability):

* CSV and JSONL carry money as yuan text with at most two decimals (signed for ``adjustment``,
  in a recalculation's adjustments file).  Canonical text
  (``12345.67``) is converted column-wise with integer arithmetic; anything else (thousands
  separators, full-width digits, bad text) goes through :func:`medaid.money.parse_yuan`, the one
  door for amounts, so that the same values are accepted and refused everywhere.
* Parquet carries money as ``Decimal(18, 2)`` yuan; it is scaled to fen exactly.
* XLSX carries money as numeric cells.  Excel stores numbers as binary doubles, so a cell is
  read back through its shortest decimal text (``repr``), which is the text Excel was given
  for any amount of at most 15 significant digits, and then through ``parse_yuan``.  XLSX files
  are read by the claim files' reader (:func:`medaid.io.readers.read_raw`); so are JSON Lines
  files whose amounts are JSON numbers (never through a float), while medaid's own JSON Lines
  (amounts as text) are read by polars at once.
* An ID held as a number (an XLSX numeric cell, a JSON or Parquet number) is read by the rule
  of the claim readers (:func:`medaid.io.validation.number_as_id`): its exact digits, or refused.
* Text that the export neutralised against formula injection (CSV, XLSX: a leading ``'``
  before ``=``, ``+``, ``-``, ``@``, tab or CR) gets the ``'`` removed.

Every bad value is reported with the file, the line (as the user sees it: the header is line 1)
and the field; never with the amount itself.  Headers may be English or the Chinese aliases of
:data:`medaid.io.columns.HEADER_ALIASES`.

:func:`load_ledger_results` is the hook for the ledger.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MedaidError, Problem
from ..money import MAX_FEN, parse_yuan, too_large
from .columns import CLAIM_FIELDS, ID_FIELDS, MONEY_COLUMNS, RESULT_FIELDS, result_field
from .encodings import SNIFF_BYTES, as_utf8, detect_encoding
from .raw import ReadError
from .validation import id_number_problem, plain_yuan_fen

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl

#: Columns of a recalculation's adjustments file (``medaid recalc -o``) besides the claim's.
ADJUSTMENT_FIELDS: tuple[str, ...] = ("old_relief", "new_relief", "adjustment", "status")
#: Every column the report knows, in order.
KNOWN_FIELDS: tuple[str, ...] = (*CLAIM_FIELDS, "major_disease", *RESULT_FIELDS, *ADJUSTMENT_FIELDS)
MONEY_FIELDS: frozenset[str] = frozenset(MONEY_COLUMNS)
#: Money columns that may be negative (an adjustment takes relief back).
SIGNED_MONEY_FIELDS: frozenset[str] = frozenset({"adjustment"})
#: Columns a file must have to be taken as results at all.
REQUIRED_RESULT_FIELDS: tuple[str, ...] = ("claim_id", "person_id", "date", "relief")
#: File suffixes read as a ledger rather than a results file.
LEDGER_SUFFIXES: tuple[str, ...] = (".sqlite3", ".sqlite", ".db")

#: Text accepted for the major-disease flag (after stripping and case-folding).
TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "是", "有", "✓"})
FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "否", "无", ""})

_MAX_PROBLEMS = 20
#: Money read per claim, at most :data:`medaid.money.MAX_FEN` each (so that the report's sums
#: of them stay exact in ``Int64``); the year-to-date, bracket and recalculation columns only
#: have to fit 64 bits.
PER_CLAIM_MONEY: frozenset[str] = frozenset(("self_pay", "total_cost", "relief", "patient_pays"))
_INT64_MAX = 2**63 - 1


def _limit(field: str) -> int:
    return MAX_FEN if field in PER_CLAIM_MONEY else _INT64_MAX
#: The column of a raw frame holding each row's line as the user sees it (when rows were
#: skipped: blank lines), not a column of the file.
_LINE = "\0line"
_CANONICAL_YUAN = r"^[0-9]{1,16}(\.[0-9]{1,2})?$"
_SIGNED_YUAN = r"^-?[0-9]{1,16}(\.[0-9]{1,2})?$"


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


def load_results(
    path: str | Path, fields: Iterable[str] | None = None, *,
    required: Iterable[str] = REQUIRED_RESULT_FIELDS, others: bool = False,
) -> "pl.DataFrame":
    """Read a results file (CSV, JSONL, Parquet or XLSX, by suffix) into the results frame.

    ``fields`` limits the columns read and converted (the report passes the ones it uses);
    the ``required`` ones (by default claim id, person id, date, relief) are always checked.
    ``others=True`` keeps the columns that name no known field too (as read; text for CSV).
    Raises :class:`ResultsError` naming the file, line and field of each bad value (at most
    20), or naming the missing columns when the file is not batch results.  A ledger path is
    read through :func:`load_ledger_results`.
    """
    p = Path(path)
    if is_ledger_path(p):
        return load_ledger_results(p)
    if not p.is_file():
        raise ResultsError(Problem("no such results file", source=str(p)))
    required = tuple(required)
    want = None if fields is None else frozenset(fields) | frozenset(required)
    suffix = p.suffix.lower()
    neutralised = suffix not in (".jsonl", ".ndjson", ".json", ".parquet", ".pq")
    try:
        if suffix in (".csv", ".txt", ".tsv"):
            raw, first_line = _read_csv(p, "\t" if suffix == ".tsv" else ",", want, others), 2
        elif suffix in (".jsonl", ".ndjson", ".json"):
            raw, first_line = _read_jsonl(p, want, others), 1
        elif suffix in (".parquet", ".pq"):
            raw, first_line = _read_parquet(p, want, others), 1
        elif suffix in (".xlsx", ".xlsm"):
            raw, first_line = _read_xlsx(p, want, others), 2
        else:
            raise ResultsError(Problem(
                f"unknown results format {suffix or '(no suffix)'!r}; expected .csv, .jsonl, "
                ".parquet, .xlsx, or a ledger (.sqlite3/.db)", source=str(p)))
    except ReadError as e:  # from the claim files' readers
        raise ResultsError(e.problems) from None
    return normalise(raw, source=str(p), first_line=first_line, required=required,
                     neutralised=neutralised)


def load_ledger_results(path: str | Path, year: int | None = None) -> "pl.DataFrame":
    """Read a ledger's settlements as a results frame, through ``Ledger(path).results_rows``.

    The rows are dicts with the results columns, money in fen (``int``) and ``date`` as a date
    or ISO text.
    """
    from ..ledger.ledger import Ledger

    p = Path(path)
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


def _rename(names: list[str], source: str, want: frozenset[str] | None = None,
            others: bool = False) -> dict[str, str]:
    """File column name → output name: the field a column names (if wanted), or with
    ``others`` the column's own name when it names no known field (a header the export
    neutralised against formula injection, ``'=x``, gets its ``'`` removed).  A column named
    exactly by the field name wins over a Chinese header or alias of the same field (a results
    file written with ``--lang zh`` keeps the field name for a result column whose Chinese
    header an input column already has); that other column is then kept under its own name."""
    mapping: dict[str, str] = {}
    taken: dict[str, str] = {}
    exact = set(names)
    for n in names:
        f = canonical_header(n)
        if f is None or (f != n and f in exact):
            if others and n not in KNOWN_FIELDS:
                mapping[n] = n[1:] if re.match(_NEUTRALISED, n) and n[1:] not in exact else n
            continue
        if want is not None and f not in want:
            continue
        if f in taken:
            raise ResultsError(Problem(
                f"columns {taken[f]!r} and {n!r} both name the field {f!r}", source=source, line=1))
        taken[f] = n
        mapping[n] = f
    return mapping


def _named_by_readers(p: Path, want: frozenset[str] | None, others: bool) -> "pl.DataFrame":
    """A file read by the claim files' reader (:func:`medaid.io.readers.read_raw`: XLSX cells and
    JSON numbers as exact text, IDs held as numbers by the one rule), columns renamed as
    :func:`_rename` says, with its ``row`` column (the line as the user sees it)."""
    import polars as pl

    from .readers import ROW, read_raw

    def names(headers: list[str]) -> list[str]:
        m = _rename(headers, str(p), want, others)
        out: list[str] = []
        for i, h in enumerate(headers):
            n = m.get(h, f"\0{i}")  # \0: not wanted, dropped
            out.append(n if n not in out else f"{n}_{i + 1}")  # a repeated header
        return out

    raw, problems = read_raw(p, names=names)
    if problems:
        raise ResultsError(problems[:_MAX_PROBLEMS])
    return raw.select(pl.col(ROW).alias(_LINE), *[c for c in raw.columns if c != ROW and not c.startswith("\0")])


def _read_csv(p: Path, sep: str, want: frozenset[str] | None = None, others: bool = False) -> "pl.DataFrame":
    import polars as pl

    src: Any = p
    with open(p, "rb") as fh:
        if detect_encoding(fh.read(SNIFF_BYTES)) != "utf-8":
            src = _gb18030(p)
    try:
        try:
            header = pl.read_csv(src, separator=sep, infer_schema=False, encoding="utf8", n_rows=0).columns
            m = _rename(header, str(p), want, others)
            if isinstance(src, io.BytesIO):
                src.seek(0)
            # Only the wanted columns are parsed (a results file carries hashes the report never reads).
            raw = pl.read_csv(src, separator=sep, infer_schema=False, encoding="utf8", columns=list(m) or None)
        except pl.exceptions.ComputeError as e:
            if isinstance(src, io.BytesIO) or "utf-8" not in str(e).lower():
                raise
            # UTF-8 at the start, GBK later on (Chinese text only in later rows): read it as GBK
            src = _gb18030(p)
            raw = pl.read_csv(src, separator=sep, infer_schema=False, encoding="utf8", columns=list(m) or None)
    except pl.exceptions.NoDataError:
        raise ResultsError(Problem("the file is empty", source=str(p))) from None
    except pl.exceptions.ComputeError as e:
        raise ResultsError(Problem(f"not readable as CSV ({str(e).splitlines()[0]})", source=str(p))) from None
    return raw.select([pl.col(k).alias(v) for k, v in m.items()])


def _gb18030(p: Path) -> io.BytesIO:
    """A CSV file that is not UTF-8, as Chinese spreadsheet exports write it (GBK/GB18030),
    recoded to UTF-8; anything else is refused."""
    try:
        return io.BytesIO(as_utf8(p.read_bytes()))
    except UnicodeDecodeError:
        raise ResultsError(Problem("is neither UTF-8 nor GB18030 text", source=str(p))) from None


def _read_jsonl(p: Path, want: frozenset[str] | None = None, others: bool = False) -> "pl.DataFrame":
    """JSON Lines.  medaid writes amounts as text: polars reads such a file at once.  A file
    whose amounts are JSON numbers (polars would read them through a float), or that polars
    cannot read, is read by the claim files' reader (numbers as their exact text)."""
    import polars as pl

    try:
        raw = pl.read_ndjson(p, infer_schema_length=None)
    except pl.exceptions.PolarsError:
        return _named_by_readers(p, want, others)
    m = _rename(raw.columns, str(p), want, others)
    if _json_numbers(p, [k for k, f in m.items() if f in MONEY_FIELDS]):
        return _named_by_readers(p, want, others)
    return raw.select([pl.col(k).alias(v) for k, v in m.items()])


def _json_numbers(p: Path, keys: list[str]) -> bool:
    """Whether some value of these keys is a JSON number (not text) somewhere in the file: a
    byte search for ``"key": <digit or ->``, the key as JSON writes it (escaped or not)."""
    import json
    import mmap
    import re

    if not keys or not p.stat().st_size:
        return False
    written = {json.dumps(k, ensure_ascii=a).encode() for k in keys for a in (True, False)}
    pattern = re.compile(b"(?:" + b"|".join(re.escape(k) for k in sorted(written)) + rb")\s*:\s*[-0-9]")
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return pattern.search(mm) is not None  # type: ignore[call-overload]


def _read_parquet(p: Path, want: frozenset[str] | None = None, others: bool = False) -> "pl.DataFrame":
    import polars as pl

    try:
        m = _rename(list(pl.read_parquet_schema(p)), str(p), want, others)
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


def _read_xlsx(p: Path, want: frozenset[str] | None = None, others: bool = False) -> "pl.DataFrame":
    """XLSX, by the claim files' reader: numeric cells as their shortest decimal text (an
    amount with a third decimal is then refused, never rounded), date cells as ISO text."""
    return _named_by_readers(p, want, others)


# ---------------------------------------------------------------------------------------------
# column-wise conversion of text columns to the results frame's types


def normalise(raw: "pl.DataFrame", *, source: str, first_line: int = 2,
              required: Iterable[str] = REQUIRED_RESULT_FIELDS, neutralised: bool = False) -> "pl.DataFrame":
    """Convert a frame of result columns (text or already typed) to the results frame.

    Text money goes to fen, text dates to ``Date``, ``bracket``/``benefit_year`` to integers,
    ``major_disease`` to ``Boolean``; empty text is a missing value; an ID held as a number
    becomes its exact digits or is refused (:func:`medaid.io.validation.id_number_problem`).
    Columns that name no known field are kept as they are (categories as text).  With
    ``neutralised`` (CSV, XLSX) a text cell the export neutralised against formula injection
    loses its leading ``'``.  Bad values raise :class:`ResultsError` with ``source``, the line
    (the frame's :data:`_LINE` column if it has one, else row ``i`` is line ``first_line + i``) and
    the field.

    One columnar pass converts everything; a second pass counts, per column, the values that
    did not convert.  Only money text outside the plain ``digits[.dd]`` form goes through
    :func:`medaid.money.parse_yuan` row by row (it either reads it, e.g. ``12,345.67``, or
    says why not).
    """
    import polars as pl

    missing = [f for f in required if f not in raw.columns]
    if missing:
        raise ResultsError(Problem(
            f"not a results file: missing column(s) {', '.join(missing)} "
            "(run medaid batch on the claims first)", source=source, line=1 if first_line == 2 else None))
    lines = raw[_LINE].to_list() if _LINE in raw.columns else None

    def line_of(i: int) -> int:
        return lines[i] if lines is not None else first_line + i

    dtypes = _dtypes()
    columns = [c for c in raw.columns if c != _LINE]
    fields = [c for c in columns if c in KNOWN_FIELDS]
    texts: dict[str, pl.Expr] = {}  # text columns converted to another type: their cleaned text
    numeric_ids: dict[str, pl.Expr] = {}  # ID columns held as numbers: why a value is refused
    exprs: list[pl.Expr] = []
    for f in columns:
        dtype, col = raw.schema[f], pl.col(f)
        if f not in KNOWN_FIELDS:
            if dtype == pl.String:
                exprs.append((_unneutralised(col) if neutralised else col).alias(f))
            else:
                exprs.append(col.cast(pl.String) if isinstance(dtype, (pl.Categorical, pl.Enum)) else col)
            continue
        want = dtypes[f]
        if dtype == pl.String:
            text = pl.when(col.str.len_bytes() > 0).then(col)  # empty text is a missing value
            if want == pl.String:
                exprs.append((_unneutralised(text) if neutralised else text).alias(f))
                continue
            texts[f] = text
            if f in MONEY_FIELDS:
                conv = _fen_fast(text, signed=f in SIGNED_MONEY_FIELDS)
            elif f == "major_disease":
                conv = _flag_expr(text)
            elif want == pl.Date:  # a settlement time (2024-05-03 10:15:00) counts by its day
                day = pl.when(text.str.len_bytes() > 10).then(
                    text.str.replace(r"[ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?$", "")).otherwise(text)
                conv = day.str.to_date("%Y-%m-%d", strict=False)
            else:
                conv = text.cast(want, strict=False)
            exprs.append(conv.alias(f))
        elif f in ID_FIELDS and dtype.is_numeric():
            numeric_ids[f] = id_number_problem(col, dtype)
            exprs.append(col.cast(pl.Int64, strict=False).cast(pl.String).alias(f))
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
    ] + [(pl.lit(out[f]) < 0).sum().alias(f"-{f}") for f in fields
         if f in MONEY_FIELDS and f not in SIGNED_MONEY_FIELDS
         ] + [(pl.lit(out[f]) > MAX_FEN).sum().alias(f"+{f}") for f in fields if f in PER_CLAIM_MONEY
         ] + [e.is_not_null().sum().alias(f"#{f}") for f, e in numeric_ids.items()]
    counts = raw.select(checks).row(0, named=True) if checks else {}
    problems: list[Problem] = []
    fixes: dict[str, pl.Series] = {}
    for f, t in texts.items():
        if not counts.get(f):
            continue
        idx = _rows(raw, t.is_not_null() & pl.lit(out[f]).is_null())
        if f in MONEY_FIELDS:
            fixes[f] = _fen_slow(raw, out[f], f, t, idx, source, line_of, problems)
        else:
            message = {"major_disease": "is not a yes/no flag (1/0, true/false, yes/no, 是/否)",
                       "date": "is not a date (YYYY-MM-DD)"}.get(f, "is not a whole number")
            problems += [Problem(message, source=source, line=line_of(i), field=f) for i in idx]
    for f, e in numeric_ids.items():
        if counts.get(f"#{f}"):
            why = raw.select(e.alias("m"))["m"]
            problems += [Problem(why[i], source=source, line=line_of(i), field=f)
                         for i in _rows(raw, e.is_not_null())]
    if fixes:
        out = out.with_columns(list(fixes.values()))
    for f in fields:
        if f in SIGNED_MONEY_FIELDS:
            continue
        if counts.get(f"-{f}") or (f in fixes and (fixes[f] < 0).any()):
            idx = _rows(out, pl.col(f) < 0)
            problems += [Problem("must not be negative", source=source, line=line_of(i), field=f) for i in idx]
        if counts.get(f"+{f}") or (f in fixes and f in PER_CLAIM_MONEY and (fixes[f] > MAX_FEN).any()):
            idx = _rows(out, pl.col(f) > MAX_FEN)
            problems += [Problem(too_large(), source=source, line=line_of(i), field=f) for i in idx]
    if problems:
        problems.sort(key=lambda p: (p.line or 0, fields.index(p.field) if p.field in fields else 0))
        raise ResultsError(problems[:_MAX_PROBLEMS])
    return out


#: A text cell the export neutralised against formula injection (medaid.io.writers.neutralise).
_NEUTRALISED = r"^'[=+\-@\t\r]"


def _unneutralised(text: "pl.Expr") -> "pl.Expr":
    """Text as it was before the export neutralised it: the leading ``'`` removed."""
    import polars as pl

    return pl.when(text.str.contains(_NEUTRALISED)).then(text.str.slice(1)).otherwise(text)


def _rows(frame: "pl.DataFrame", mask: "pl.Expr", limit: int = _MAX_PROBLEMS) -> list[int]:
    """Indexes of the first ``limit`` rows where ``mask`` holds."""
    import polars as pl

    return frame.select(mask.fill_null(False).arg_true().head(limit).cast(pl.Int64)).to_series().to_list()


def _fen_fast(text: "pl.Expr", signed: bool = False) -> "pl.Expr":
    """Plain yuan text → Int64 fen, column-wise: ``12345.67``, ``12345.6`` or ``12345`` (as
    spreadsheets export them; with ``signed``, also after a ``-``), by
    :func:`medaid.io.validation.plain_yuan_fen`; anything else (spaces, separators, three
    decimals, other digits) gives null here and is left to :func:`_signed_yuan`."""
    import polars as pl

    plain = text.str.contains(_SIGNED_YUAN if signed else _CANONICAL_YUAN)
    return pl.when(plain).then(plain_yuan_fen(text))


def _signed_yuan(text: str, field: str) -> int:
    """:func:`medaid.money.parse_yuan`, and for a signed column (``adjustment``) also after a
    leading ``-``."""
    t = text.strip()
    if field in SIGNED_MONEY_FIELDS and t.startswith("-"):
        return -parse_yuan(t[1:], field=field, limit=_limit(field))
    return parse_yuan(text, field=field, limit=_limit(field))


def _fen_slow(raw: "pl.DataFrame", fast: "pl.Series", f: str, text: "pl.Expr", idx: list[int], source: str,
              line_of: Any, problems: list[Problem]) -> "pl.Series":
    """Money text the fast path left: read each through ``parse_yuan`` (all of them when they
    are few; the first problems otherwise) and return the completed column."""
    import polars as pl

    odd = raw.select(pl.int_range(pl.len()).alias("i"), text.alias("t")).filter(
        pl.col("t").is_not_null() & pl.lit(fast).is_null())
    at: list[int] = []
    fens: list[int] = []
    for i, t in odd.iter_rows():
        try:
            fens.append(_signed_yuan(t, f))
            at.append(i)
        except MedaidError as e:
            problems.append(Problem(e.problems[0].message, source=source, line=line_of(i), field=f))
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

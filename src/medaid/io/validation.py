"""Validation of claim rows read as text: typed, vectorised, every refusal located.

Rules implemented (docs/calculation.md#money, README.md#reliability; issue #4 *Validation per row*):

* Amounts follow the rules of :func:`medaid.money.parse_yuan` exactly (thousands separators,
  full-width digits after NFKC, nothing else; no negatives, at most two decimals).  ASCII text is
  checked by one regular expression and converted by an exact decimal cast, in polars; only the
  rows this refuses (full-width digits, errors) go through ``parse_yuan`` itself, which also
  words their message.  A hypothesis test proves the two agree.
* Dates are ISO ``2024-05-03``, also ``2024/05/03``, ``20240503`` and ``2024-05-03 00:00:00``.
* Text is trimmed; claim and person ids are tidied by :func:`medaid.domain.claims.tidy_id` (NFKC,
  invisible characters removed, trimmed, an ID number's check character upper-cased), so one
  person keyed two ways is one person.  Only the values that need it take that (Python) path:
  one vectorised look (:func:`untidy`) finds them.  An empty claim or person id is an error; a
  duplicate claim id is an error on every occurrence after the first, naming the first line.
* An ID a file holds as a number (an XLSX numeric cell, a JSON number, a Parquet integer or
  float column) is its exact digits when it is a whole number of at most
  :data:`MAX_ID_DIGITS` digits; any other number is refused (:func:`number_as_id`): a spreadsheet
  keeps 15 significant digits, so an 18-digit ID number typed as a number has lost its last
  digits, and two people could become one.

Problems are data: one record (``row``, ``claim_id``, ``field``, ``message``) per problem.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from ..domain.claims import LOWER_CHECK_PATTERN, PLAIN_ID_PATTERN, tidy_id
from ..errors import MoneyError, Problem
from ..money import MAX_YUAN_DIGITS, parse_yuan
from .columns import CLAIM_MONEY_FIELDS, REQUIRED_FIELDS

if TYPE_CHECKING:
    import polars as pl

#: Column holding the line number of each row.
ROW = "row"
#: Schema of a rejects frame.
REJECT_COLUMNS = ("row", "claim_id", "field", "message")
#: Characters Python's ``str.strip()`` removes from ASCII text (parse_yuan strips this way).
_ASCII_SPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
#: Integer parts (yuan) the fast path takes: at most the digits of ``money.MAX_FEN``'s yuan
#: (7: 9,999,999); longer text (leading zeros, or too large) goes through ``parse_yuan``.
_INT_DIGITS = MAX_YUAN_DIGITS
assert _INT_DIGITS == 7, "the grouped form below writes out 7 digits: 1,234 to 9,999,999"
_YUAN_RE = r"^(?:[0-9]{1,7}|[0-9]{1,3},[0-9]{3}|[0-9],[0-9]{3},[0-9]{3})(?:\.[0-9]{0,2})?$"


def plain_yuan_fen(text: "pl.Expr") -> "pl.Expr":
    """Yuan text of a plain shape → ``Int64`` fen, column-wise: the one column-wise amount
    parser of claim files, the fast CSV scan and results files.  The caller has checked the
    shape (digits, an optional leading ``-``, at most two decimals, at most 16 integer digits):
    such text is exact in ``Decimal(18, 2)``, whose integer form is the amount in fen
    (``"12345.6"`` → 1234560); any other text gives null or a value the caller discards."""
    import polars as pl

    return text.cast(pl.Decimal(18, 2), strict=False).to_physical().cast(pl.Int64)


def yuan_to_fen(text: "pl.Expr", separators: bool = True) -> tuple["pl.Expr", "pl.Expr"]:
    """Vectorised :func:`medaid.money.parse_yuan` for ASCII text: ``(fen, ok)`` expressions.

    ``ok`` is true where the fast path accepts the text: after stripping ASCII white space, digits
    with optional thousands separators in groups of three and at most two decimals, at most 7
    integer digits (every such amount is at most ``money.MAX_FEN``).  Then ``fen`` equals ``parse_yuan`` (the shape is checked by the regular
    expression first, so the decimal cast only ever sees well-formed text).  Where ``ok`` is
    false the row must go through ``parse_yuan`` (non-ASCII text such as full-width digits,
    empty, negative, malformed, more than two decimals, too large) for its value or message.
    ``separators=False`` skips removing thousands separators (for columns known to have none).
    """
    import polars as pl

    s = text.str.strip_chars(_ASCII_SPACE)
    ok = s.str.contains(_YUAN_RE)
    if separators:
        s = s.str.replace_all(",", "", literal=True)
    return pl.when(ok).then(plain_yuan_fen(s)), ok.fill_null(False)


#: The most digits an ID held as a number may have: a spreadsheet keeps 15 significant digits
#: of a number (Excel turns 500233196505051123 into 500233196505051000), and a double holds
#: every whole number of 15 digits exactly.
MAX_ID_DIGITS = 15
_ID_AS_TEXT = ("; store IDs as text (in Excel: format the column as Text before typing or "
               "pasting them; in other files: write them as strings)")
#: Why a number is refused as an ID (never the number itself: IDs are personal data).
ID_FRACTION = "is a number with a fraction, not an ID" + _ID_AS_TEXT
ID_TOO_LONG = (f"is a number of more than {MAX_ID_DIGITS} digits, which a spreadsheet or a "
               "float does not keep exactly (its last digits may be lost)" + _ID_AS_TEXT)


def number_as_id(v: "int | float | str") -> tuple[str | None, str | None]:
    """An ID a file holds as a number → ``(digits, None)``, or ``(None, message)``.

    ``v`` is an ``int``, a ``float`` (a spreadsheet cell) or the text of a JSON number.  A whole
    number of at most :data:`MAX_ID_DIGITS` digits gives its exact digits (``1001.0`` →
    ``"1001"``); a fraction, more digits (``5.002331965050511e+17``), or a non-finite float is
    refused with a message saying to store IDs as text.  :func:`id_number_problem` is the same
    rule for a column of numbers."""
    if isinstance(v, float):
        if v != v:  # NaN
            return None, ID_FRACTION
        if v in (float("inf"), float("-inf")):
            return None, ID_TOO_LONG
        if not v.is_integer():
            return None, ID_FRACTION
        n = int(v)
    elif isinstance(v, int):
        n = v
    else:
        try:
            d = Decimal(v)
        except InvalidOperation:
            return None, ID_FRACTION
        if not d.is_finite():
            return None, ID_TOO_LONG
        if d != d.to_integral_value():
            return None, ID_FRACTION
        if d.adjusted() >= MAX_ID_DIGITS:  # before int(): 1e999999 would be a huge integer
            return None, ID_TOO_LONG
        n = int(d)
    if abs(n) >= 10 ** MAX_ID_DIGITS:
        return None, ID_TOO_LONG
    return str(n), None


def id_number_problem(column: "pl.Expr", dtype: "pl.DataType") -> "pl.Expr":
    """:func:`number_as_id` for a numeric column (Parquet): the message for each value that
    cannot be an exact ID, null where it can (or is null).  Integers: at most
    :data:`MAX_ID_DIGITS` digits; floats: whole and below ``10**MAX_ID_DIGITS``."""
    import polars as pl

    limit = 10 ** MAX_ID_DIGITS
    if dtype.is_integer():
        return pl.when((column >= limit) | (column <= -limit)).then(pl.lit(ID_TOO_LONG))
    whole = column == column.floor()  # false for NaN
    big = column.abs() >= float(limit)  # inf too
    return (pl.when(column.is_nan() | ~whole).then(pl.lit(ID_FRACTION))
            .when(big).then(pl.lit(ID_TOO_LONG)))


def _slow_yuan(v: str | None, field: str) -> tuple[int | None, str | None]:
    """``parse_yuan`` for the rows the fast path does not take: (fen, None) or (None, message)."""
    if v is None:
        return None, "is empty"
    try:
        return parse_yuan(v, field=field), None
    except MoneyError as e:
        return None, e.problems[0].message


def _date_expr(field: str) -> "pl.Expr":
    """Every accepted date form (ISO ``2024-05-03``, ``2024/05/03``, ``20240503``, and an ISO
    date with a zero time as spreadsheets write it) → Date, else null."""
    import polars as pl

    s = pl.col(field).str.strip_chars()
    return pl.coalesce(
        s.str.to_date("%Y-%m-%d", strict=False),
        s.str.to_date("%Y/%m/%d", strict=False),
        pl.when(s.str.len_bytes() == 8).then(s.str.to_date("%Y%m%d", strict=False)),
        pl.when(s.str.contains(r"^\d{4}-\d{2}-\d{2}[ T]00:00(:00)?$"))
        .then(s.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)),
    )


def _text(field: str) -> "pl.Expr":
    """Text stripped of surrounding white space; empty → null."""
    import polars as pl

    e = pl.col(field).str.strip_chars()
    return pl.when(e.str.len_bytes() > 0).then(e).alias(field)


def validate_frame(raw: "pl.DataFrame", source: str) -> tuple["pl.DataFrame", "pl.DataFrame"]:
    """Type a raw text frame: ``(clean, rejects)`` (issue #4, *Validation per row*).

    ``raw`` has String columns named by field (``claim_id``, ``person_id``, ``date``,
    ``self_pay``, optional ``group``, ``kind``, ``hospital``, ``total_cost``, anything else
    passed through) and ``row`` (``Int64``).  ``clean`` holds the rows without problems, typed:
    ``date`` Date, money ``Int64`` fen, text stripped (empty → null).  ``rejects`` holds one
    record per problem: ``row``, ``claim_id``, ``field``, ``message``, ordered by row.

    One parallel polars pass types every row the common way (ISO dates, ASCII amounts); only
    the rows it refuses are looked at again, one by one, for their value or their message.
    A large file may be typed in pieces (:func:`type_rows` on each, then
    :func:`finish_validation` on the whole): the result is the same.
    """
    del source  # problems carry the row; the caller renders them with the file name
    typed, problems = type_rows(raw)
    return finish_validation(typed, [problems])


#: Text fields whose values repeat (may be kept as categories: :func:`type_rows`).
FEW_VALUES = ("person_id", "group", "kind", "hospital")
#: Amounts as most files write them: digits, at most two decimals, nothing around them.
_PLAIN_YUAN_RE = rf"^[0-9]{{1,{_INT_DIGITS}}}(?:\.[0-9]{{0,2}})?$"


#: Identifier fields: tidied by :func:`medaid.domain.claims.tidy_id`, not only trimmed.
ID_FIELDS = ("claim_id", "person_id")


def untidy(text: "pl.Expr", field: str) -> "pl.Expr":
    """Per value, whether it needs tidying: for :data:`ID_FIELDS` whether
    :func:`medaid.domain.claims.tidy_id` may change it (anything but printable ASCII without spaces
    around it, or an ID number with a lower-case check character), for other text whether it
    has white space around it; empty text needs it too (it becomes null)."""
    if field in ID_FIELDS:
        return ~text.str.contains(PLAIN_ID_PATTERN) | text.str.contains(LOWER_CHECK_PATTERN)
    return (text.str.strip_chars().str.len_bytes() != text.str.len_bytes()) | (text.str.len_bytes() == 0)


def needs_tidying(values: "pl.Series") -> bool:
    """Whether some of these (distinct) text values needs tidying (:func:`untidy`, by the rule
    of the field the series is named after)."""
    import polars as pl

    return bool(values.to_frame().select(untidy(pl.col(values.name), values.name).any()).item())


def tidy_ids(col: "pl.Series") -> "pl.Series":
    """A text column of identifiers tidied by :func:`medaid.domain.claims.tidy_id`; only the values
    :func:`untidy` finds go through it (nulls stay null)."""
    import polars as pl

    idx = col.to_frame().select(untidy(pl.col(col.name), col.name).fill_null(False)).to_series().arg_true()
    if not len(idx):
        return col
    return col.scatter(idx, pl.Series([tidy_id(v) for v in col.gather(idx).to_list()], dtype=pl.String))


def _few_values(col: "pl.Series") -> "pl.Series":
    """A text column whose values repeat as ``Categorical``, tidied (ids by
    :func:`medaid.domain.claims.tidy_id`, other text stripped), empty → null; the text is looked at
    once per distinct value."""
    import polars as pl

    cat = col.cast(pl.Categorical)
    if needs_tidying(cat.unique().cast(pl.String).alias(col.name)):
        text = col.cast(pl.String)
        text = tidy_ids(text) if col.name in ID_FIELDS else text.str.strip_chars()
        cat = pl.select(pl.when(text.str.len_bytes() > 0).then(text)).to_series().cast(pl.Categorical)
    return cat.alias(col.name)


class _Nulls:
    """A String column of nulls of a given length, made when first asked for."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.made: "pl.Series | None" = None

    def __call__(self) -> "pl.Series":
        import polars as pl

        if self.made is None:
            self.made = pl.repeat(None, self.n, dtype=pl.String, eager=True)
        return self.made.clone()


#: The problem of an id holding a quote character: ids never do; a quote left open by mistake
#: (see :func:`medaid.io.csv_readers._stray_quote`) leaves one there.
STRAY_QUOTE_IN_ID = 'holds a quote character ("); is a quote left open by mistake on this line?'


def _has_quote(col: "pl.Series") -> "pl.Series":
    """Which values hold a ``"`` (looked at once per distinct value of a category column)."""
    import polars as pl

    if col.dtype == pl.Categorical:
        values = col.unique().cast(pl.String).drop_nulls()
        bad = values.filter(values.str.contains('"', literal=True))
        return col.cast(pl.String).is_in(bad.implode()) if bad.len() else pl.Series([False] * col.len(), dtype=pl.Boolean)
    return col.str.contains('"', literal=True).fill_null(False)


def type_rows(
    raw: "pl.DataFrame", *, categories: bool = False,
) -> tuple["pl.DataFrame", dict[str, "pl.DataFrame"]]:
    """Type every row of a raw text frame (all rows kept, bad values null) and list the
    problems found row by row, by field: ``{field: frame(row, claim_id, message)}``.
    Duplicate claim ids are not looked for here (see :func:`finish_validation`).
    ``categories=True`` returns :data:`FEW_VALUES` as ``Categorical`` (same text, less memory)."""
    import polars as pl

    cols = raw.columns
    few: dict[str, pl.Series] = {}
    if categories:
        few = {f: _few_values(raw[f]) for f in FEW_VALUES if f in cols}
    text_fields = [f for f in ("claim_id", "person_id", "group", "kind", "hospital")
                   if f in cols and f not in few]
    money_fields = [f for f in CLAIM_MONEY_FIELDS if f in cols]
    # one parallel look first: which amount columns are all plain digits, which text columns
    # have something to tidy (only those are tidied: no copy of clean columns)
    looks = raw.select(
        [pl.col(f).str.contains(_PLAIN_YUAN_RE).fill_null(False).all().alias(f"m{i}")
         for i, f in enumerate(money_fields)]
        + [untidy(pl.col(f), f).any().alias(f"t{i}") for i, f in enumerate(text_fields)]
    ).row(0) if raw.height else [False] * (len(money_fields) + len(text_fields))
    plain, padded = looks[:len(money_fields)], looks[len(money_fields):]
    exprs: list[pl.Expr] = [  # (ids are tidied below, value by value)
        pl.col(f).str.strip_chars() if pad and f not in ID_FIELDS else pl.col(f)
        for f, pad in zip(text_fields, padded)
    ]
    exprs.append(pl.col("date").str.to_date("%Y-%m-%d", strict=False).alias("date"))
    for f, is_plain in zip(money_fields, plain):
        if is_plain:  # every cell plain digits (no null either): the exact decimal cast alone
            fen = plain_yuan_fen(pl.col(f))
            exprs += [fen.alias(f), pl.lit(False).alias(f"{f}__slow")]
            continue
        fen, ok = yuan_to_fen(pl.col(f), separators=bool(raw[f].str.contains(",", literal=True).any()))
        blank = pl.col(f).is_null() | (pl.col(f).str.strip_chars(_ASCII_SPACE) == "")
        slow = ~ok if f in REQUIRED_FIELDS else ~ok & ~blank
        exprs += [fen.alias(f), slow.fill_null(True).alias(f"{f}__slow")]
    fast = raw.select(exprs)

    typed: dict[str, pl.Series] = dict(few)
    for f, pad in zip(text_fields, padded):  # tidied to nothing → null
        col = tidy_ids(fast[f]) if pad and f in ID_FIELDS else fast[f]
        typed[f] = (pl.select(pl.when(col.str.len_bytes() > 0).then(col)).to_series().alias(f)
                    if (col.str.len_bytes() == 0).any() else col)
    msgs: dict[str, pl.Series] = {}
    none = _Nulls(raw.height)
    for f in ("claim_id", "person_id"):
        empty = typed[f].is_null().arg_true()
        quoted = _has_quote(typed[f]).arg_true()
        if len(empty) or len(quoted):
            m = none()
            if len(quoted):  # a stray quote, whose line the careful reader read on its own
                m = m.scatter(quoted, STRAY_QUOTE_IN_ID)
            msgs[f] = m.scatter(empty, "is empty") if len(empty) else m
    # dates: other forms only where ISO was refused
    dates = fast["date"]
    redo = (dates.is_null() & raw["date"].is_not_null()).arg_true()
    if len(redo):
        dates = dates.scatter(redo, raw.select(pl.col("date").gather(redo)).select(_date_expr("date"))["date"])
    typed["date"] = dates
    bad_date = dates.is_null().arg_true()
    if len(bad_date):
        text = raw["date"].gather(bad_date).to_list()
        msgs["date"] = none().scatter(bad_date, pl.Series([
            "is empty" if t is None or not t.strip() else "is not a date; write YYYY-MM-DD (e.g. 2024-05-03)"
            for t in text], dtype=pl.String))
    # amounts: parse_yuan itself for the rows the fast path did not take
    for f in money_fields:
        fen_s = fast[f]
        idx = fast[f"{f}__slow"].arg_true()
        if len(idx):
            got = [_slow_yuan(v, f) for v in raw[f].gather(idx).to_list()]
            fen_s = fen_s.scatter(idx, pl.Series([g[0] for g in got], dtype=pl.Int64))
            msgs[f] = none().scatter(idx, pl.Series([g[1] for g in got], dtype=pl.String))
        typed[f] = fen_s
    del fast
    problems: dict[str, pl.DataFrame] = {}
    for f, m in msgs.items():
        pf = pl.DataFrame({ROW: raw[ROW], "claim_id": typed["claim_id"], "message": m})
        problems[f] = pf.filter(pl.col("message").is_not_null())
    return raw.with_columns([typed[c].alias(c) for c in cols if c in typed]), problems


def finish_validation(
    typed: "pl.DataFrame", problems: list[dict[str, "pl.DataFrame"]],
) -> tuple["pl.DataFrame", "pl.DataFrame"]:
    """``(clean, rejects)`` from the typed rows of a whole file and the problems of its pieces
    (:func:`type_rows`): adds the duplicate claim ids (every occurrence after the first, naming
    the first line), orders the problems by row (in field order within a row) and drops the
    rows that have any."""
    import polars as pl

    # duplicate claim ids: every occurrence after the first, naming the first line
    ids = typed["claim_id"]
    n = ids.len()
    if ids.null_count() == 0 and (n < 2 or bool(
            pl.DataFrame({"a": ids.slice(1), "b": ids.slice(0, n - 1)}).lazy()
            .select((pl.col("a") > pl.col("b")).all()).collect(engine="streaming").item())):
        first = None  # ids strictly ascending (numbered exports): none repeats
    elif ids.null_count() == 0 and ids.is_sorted():  # neighbours suffice
        first = (ids != ids.shift(1)).fill_null(True)
    else:
        first = ids.is_first_distinct()
    dup = pl.Series([], dtype=pl.UInt32) if first is None else (ids.is_not_null() & ~first).arg_true()
    dups = None
    if len(dup):
        dup_ids = ids.gather(dup)
        firsts = dict(
            pl.DataFrame({"id": ids, ROW: typed[ROW]}).filter(first & ids.is_in(dup_ids.implode())).iter_rows()
        )
        dups = pl.DataFrame({
            ROW: typed[ROW].gather(dup), "claim_id": dup_ids,
            "message": pl.Series([f"duplicate claim id (first on line {firsts[i]})" for i in dup_ids.to_list()],
                                 dtype=pl.String),
        })
    # field order within a row as one whole-file pass gives it: claim id (empty; duplicates
    # join it there when some id is empty, else they come last), person id, date, amounts
    rank = {f: i for i, f in enumerate(("claim_id", "person_id", "date", *CLAIM_MONEY_FIELDS))}
    order = sorted({f for part in problems for f in part}, key=lambda f: rank.get(f, len(rank)))
    frames = []

    def add(frame: "pl.DataFrame", f: str) -> None:
        frames.append(as_rejects(frame.with_columns(pl.lit(f).alias("field"))))

    for f in order:
        for part in problems:
            if f in part and part[f].height:
                add(part[f], f)
        if f == "claim_id" and dups is not None:
            add(dups, f)
            dups = None
    if dups is not None:
        add(dups, "claim_id")
    rejects = pl.concat(frames).sort(ROW, maintain_order=True) if frames else empty_rejects()
    clean = typed
    if rejects.height:
        clean = clean.filter(~pl.col(ROW).is_in(rejects[ROW].unique().implode()))
    return clean, rejects


def reject_schema() -> "dict[str, pl.DataType]":
    """The one schema of a rejects frame: :data:`REJECT_COLUMNS` with their types (``row``
    ``Int64``, the others ``String``).  The readers, validation, the columnar settlement and
    the Spark job (which adds ``source`` in front) build their rejects to it."""
    import polars as pl

    return {ROW: pl.Int64, "claim_id": pl.String, "field": pl.String, "message": pl.String}


def as_rejects(frame: "pl.DataFrame") -> "pl.DataFrame":
    """``frame``'s :data:`REJECT_COLUMNS` in order, typed by :func:`reject_schema`: the rejects
    frame of any frame holding those columns (others are dropped)."""
    import polars as pl

    return frame.select([pl.col(c).cast(t) for c, t in reject_schema().items()])


def empty_rejects() -> "pl.DataFrame":
    """A rejects frame with no rows."""
    import polars as pl

    return pl.DataFrame(schema=reject_schema())


def problems_frame(problems: list[Problem]) -> "pl.DataFrame":
    """Structural problems from :func:`read_raw` as a rejects frame."""
    import polars as pl

    if not problems:
        return empty_rejects()
    return pl.DataFrame(
        {ROW: [p.line for p in problems], "claim_id": [None] * len(problems),
         "field": [p.field for p in problems], "message": [p.message for p in problems]},
        schema=reject_schema(),
    )


# --------------------------------------------------------------------------------------------
# totals rows


#: What a totals row says in one of its cells, compared after NFKC, with white space and a
#: trailing colon removed and case-folded (``合 计：`` and ``Total:`` too).  Subtotals
#: (``小计``, ``Subtotal``) sum the claims since the totals row before them; totals sum every
#: claim since the previous total (subtotals are not claims).
TOTALS_LABELS = frozenset({"合计", "总计", "总合计", "合計", "總計", "total", "totals", "grandtotal"})
SUBTOTAL_LABELS = frozenset({"小计", "小計", "subtotal", "sub-total"})
#: A first look, on the raw text, for ids that may be a label (the exact test follows).
_MAYBE_LABEL = r"(?i)^[\s\u3000]*[合总總小tｔsｓgｇ]"


def _label(e: "pl.Expr") -> "pl.Expr":
    import polars as pl

    return (e.cast(pl.String).str.normalize("NFKC").str.replace_all(r"[\s:]+", "")
            .str.to_lowercase())


def totals_rows(raw: "pl.DataFrame") -> "pl.Series":
    """Which rows of a raw text frame are totals rows (合计/小计/总计/Total/Subtotal ...): a
    cell holds only one of :data:`TOTALS_LABELS` or :data:`SUBTOTAL_LABELS`, and the claim id
    and the person id are each empty or such a label.  Such a row sums the claims above it; it
    is not a claim, neither settled nor rejected (see :func:`check_totals`)."""
    import polars as pl

    labels = list(TOTALS_LABELS | SUBTOTAL_LABELS)

    def idle(f: str, strict: bool) -> "pl.Expr":
        c = pl.col(f)
        if not strict:
            return c.is_null() | c.cast(pl.String).str.contains(_MAYBE_LABEL)
        lab = _label(c)
        return c.is_null() | (lab == "") | lab.is_in(labels)

    if not raw.height or "claim_id" not in raw.columns or "person_id" not in raw.columns:
        return pl.Series(ROW, [False] * raw.height, dtype=pl.Boolean)
    maybe = raw.select(idle("claim_id", False) & idle("person_id", False)).to_series()
    if not maybe.any():
        return maybe
    cand = raw.filter(maybe)
    text = [c for c in cand.columns if c != ROW]
    sure = cand.select(idle("claim_id", True) & idle("person_id", True)
                       & pl.any_horizontal(_label(pl.col(c)).is_in(labels) for c in text))
    lines = cand.filter(sure.to_series())[ROW]
    return raw[ROW].is_in(lines.implode())


def check_totals(
    totals: "pl.DataFrame", claims: "pl.DataFrame", rejected: "pl.Series", source: str,
) -> list[Problem]:
    """Warnings for totals rows (:func:`totals_rows`, raw text with ``row``) whose amounts are
    not the sum of the claims above them: for a subtotal the claims since the previous totals
    row of either kind, for a total those since the previous total.  ``claims`` are the typed
    rows read without a problem (``row``, amounts in fen); rows ``rejected`` above a totals row
    are not in its sum, and the warning says how many there are.  An amount cell of a totals
    row that is not an amount is a warning too.  Amounts are compared exactly, in fen."""
    import polars as pl

    from ..money import format_yuan

    if not totals.height:
        return []
    out: list[Problem] = []
    text = [c for c in totals.columns if c != ROW]
    kinds = totals.select(
        ROW, pl.any_horizontal(_label(pl.col(c)).is_in(list(SUBTOTAL_LABELS)) for c in text).alias("sub"))
    money = [f for f in CLAIM_MONEY_FIELDS if f in totals.columns and f in claims.columns]
    last_any = last_total = 0
    for (line, sub), values in zip(kinds.sort(ROW).iter_rows(),
                                   totals.sort(ROW).select(money).iter_rows()):
        start = last_any if sub else last_total
        part = claims.filter((pl.col(ROW) > start) & (pl.col(ROW) < line))
        n_rejected = int(((rejected > start) & (rejected < line)).sum())
        what = "subtotal" if sub else "totals"
        for f, v in zip(money, values):
            if v is None or not str(v).strip():
                continue
            try:
                stated = parse_yuan(str(v), field=f)
            except MoneyError:
                out.append(Problem(f"{what} row: {v!r} is not an amount", source=source, line=line,
                                   field=f))
                continue
            got = int(part[f].sum() or 0)
            if stated != got:
                note = (f"; {n_rejected} rejected row(s) above it are not in the sum"
                        if n_rejected else "")
                out.append(Problem(
                    f"{what} row says {format_yuan(stated)}, the {part.height} claim(s) above it "
                    f"sum to {format_yuan(got)}{note}", source=source, line=line, field=f))
        last_any = line
        if not sub:
            last_total = line
    return out

"""Validation of claim rows read as text: typed, vectorised, every refusal located.

Rules implemented (docs/calculation.md#money, README.md#reliability; docs/batch.md, *Input
files*, **Values**):

* Amounts follow the rules of :func:`medaid.money.parse_yuan` exactly (thousands separators,
  full-width digits after NFKC, nothing else; no negatives, at most two decimals).  ASCII text
  is checked by one regular expression and converted by an exact decimal cast, in polars
  (:mod:`medaid.io.amounts`); only the rows this refuses (full-width digits, errors) go through
  ``parse_yuan`` itself, which also words their message.  A hypothesis test proves the two
  agree.
* Dates are ISO ``2024-05-03``, also ``2024/05/03``, ``20240503`` and ``2024-05-03 00:00:00``.
* Text is trimmed; claim, person and household ids are tidied (:mod:`medaid.io.ids`: NFKC, invisible
  characters removed, an ID number's check character upper-cased), so one person keyed two
  ways is one person; an ID a file holds as a number is read by :func:`medaid.io.ids.number_as_id`.
  An empty claim or person id is an error; a duplicate claim id is an error on every occurrence
  after the first, naming the first line (:func:`finish_validation`).

Problems are data: one record (``row``, ``claim_id``, ``field``, ``message``) per problem, in
the one rejects frame of :mod:`medaid.io.rejects`.  Totals rows (合计, 小计 ...) are found and
checked by :mod:`medaid.io.totals_rows`.  The names this module had before those were split
off are re-exported here.
"""

from __future__ import annotations

import polars as pl

from .amounts import ASCII_SPACE, PLAIN_YUAN_RE, plain_yuan_fen, yuan_or_problem, yuan_to_fen
from .columns import CLAIM_MONEY_FIELDS, ID_FIELDS, REJECT_COLUMNS, REQUIRED_FIELDS, ROW
from .ids import (
    ID_FRACTION,
    ID_TOO_LONG,
    MAX_ID_DIGITS,
    STRAY_QUOTE_IN_ID,
    has_quote,
    id_number_problem,
    needs_tidying,
    number_as_id,
    tidy_ids,
    untidy,
)
from .rejects import as_rejects, empty_rejects, problems_frame, reject_schema
from .totals_rows import SUBTOTAL_LABELS, TOTALS_LABELS, check_totals, totals_rows

__all__ = [
    "FEW_VALUES", "ID_FIELDS", "ID_FRACTION", "ID_TOO_LONG", "MAX_ID_DIGITS", "REJECT_COLUMNS",
    "ROW", "STRAY_QUOTE_IN_ID", "SUBTOTAL_LABELS", "TOTALS_LABELS", "as_rejects", "check_totals",
    "empty_rejects", "few_values", "finish_validation", "id_number_problem", "needs_tidying",
    "number_as_id", "plain_yuan_fen", "problems_frame", "reject_schema", "tidy_ids",
    "totals_rows", "type_rows", "untidy", "validate_frame", "yuan_to_fen",
]

#: Text fields whose values repeat (may be kept as categories: :func:`type_rows`).
#: Text columns read as ``Categorical`` (the same text, four bytes a row): those whose values
#: repeat a lot.  Not ``person_id``: a year of claims has about a third as many persons as
#: claims, and building categories of millions of distinct values is slow and grows faster than
#: the file (polars 2.1, peer benchmark's 10 M claims of 3.3 M persons: the scan with
#: ``person_id`` as ``Categorical`` took 26.8 s against 4.7 s as text; 1 M claims 1.9 s against
#: 0.5 s).  Person ids stay text, checked row by row like claim ids.
FEW_VALUES = ("group", "kind", "hospital")


def validate_frame(raw: pl.DataFrame, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Type a raw text frame: ``(clean, rejects)`` (docs/batch.md, *Input files*).

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


def iso_date(text: pl.Expr) -> pl.Expr:
    """ISO date text (``2024-05-03``) → Date, null where the text is not one: the one ISO date
    parser of the readers (the fast CSV scan, the pieces, results files).  Without polars'
    cache of distinct values (``cache=False``, which changes no value): parsing the fixed format
    again costs less than looking each text up (the peer benchmark's 10 M claims, the date
    column alone, 3 runs each: 0.38 s against 0.43–0.45 s)."""
    return text.str.to_date("%Y-%m-%d", strict=False, cache=False)


def _date_expr(field: str) -> pl.Expr:
    """Every accepted date form (ISO ``2024-05-03``, ``2024/05/03``, ``20240503``, and an ISO
    date with a zero time as spreadsheets write it) → Date, else null."""
    s = pl.col(field).str.strip_chars()
    return pl.coalesce(
        iso_date(s),
        s.str.to_date("%Y/%m/%d", strict=False),
        pl.when(s.str.len_bytes() == 8).then(s.str.to_date("%Y%m%d", strict=False)),
        pl.when(s.str.contains(r"^\d{4}-\d{2}-\d{2}[ T]00:00(:00)?$"))
        .then(iso_date(s.str.slice(0, 10))),
    )


def few_values(col: pl.Series) -> pl.Series:
    """A text column whose values repeat as ``Categorical``, tidied (ids by
    :func:`medaid.io.ids.tidy_ids`, other text stripped), empty → null; the text is looked at
    once per distinct value."""
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
        self.made: pl.Series | None = None

    def __call__(self) -> pl.Series:
        if self.made is None:
            self.made = pl.repeat(None, self.n, dtype=pl.String, eager=True)
        return self.made.clone()


def type_rows(
    raw: pl.DataFrame, *, categories: bool = False,
) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """Type every row of a raw text frame (all rows kept, bad values null) and list the
    problems found row by row, by field: ``{field: frame(row, claim_id, message)}``.
    Duplicate claim ids are not looked for here (see :func:`finish_validation`).
    ``categories=True`` returns :data:`FEW_VALUES` as ``Categorical`` (same text, less memory)."""
    cols = raw.columns
    few: dict[str, pl.Series] = {}
    if categories:
        few = {f: few_values(raw[f]) for f in FEW_VALUES if f in cols}
    text_fields: list[str] = [f for f in ("claim_id", "person_id", "group", "kind", "hospital", "household_id")
                              if f in cols and f not in few]
    money_fields: list[str] = [f for f in CLAIM_MONEY_FIELDS if f in cols]
    # one parallel look first: which amount columns are all plain digits, which text columns
    # have something to tidy (only those are tidied: no copy of clean columns)
    looks = raw.select(
        [pl.col(f).str.contains(PLAIN_YUAN_RE).fill_null(False).all().alias(f"m{i}")
         for i, f in enumerate(money_fields)]
        + [untidy(pl.col(f), f).any().alias(f"t{i}") for i, f in enumerate(text_fields)]
    ).row(0) if raw.height else [False] * (len(money_fields) + len(text_fields))
    plain, padded = looks[:len(money_fields)], looks[len(money_fields):]
    exprs: list[pl.Expr] = [  # (ids are tidied below, value by value)
        pl.col(f).str.strip_chars() if pad and f not in ID_FIELDS else pl.col(f)
        for f, pad in zip(text_fields, padded)
    ]
    exprs.append(iso_date(pl.col("date")).alias("date"))
    for f, is_plain in zip(money_fields, plain):
        if is_plain:  # every cell plain digits (no null either): the exact decimal cast alone
            fen = plain_yuan_fen(pl.col(f))
            exprs += [fen.alias(f), pl.lit(False).alias(f"{f}__slow")]
            continue
        fen, ok = yuan_to_fen(pl.col(f), separators=bool(raw[f].str.contains(",", literal=True).any()))
        blank = pl.col(f).is_null() | (pl.col(f).str.strip_chars(ASCII_SPACE) == "")
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
        quoted = has_quote(typed[f]).arg_true()
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
            got = [yuan_or_problem(v, f) for v in raw[f].gather(idx).to_list()]
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
    typed: pl.DataFrame, problems: list[dict[str, pl.DataFrame]],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(clean, rejects)`` from the typed rows of a whole file and the problems of its pieces
    (:func:`type_rows`): adds the duplicate claim ids (every occurrence after the first, naming
    the first line), orders the problems by row (in field order within a row) and drops the
    rows that have any."""
    # duplicate claim ids: every occurrence after the first, naming the first line
    ids = typed["claim_id"]
    n = ids.len()
    if ids.null_count() == 0 and (n < 2 or bool(
            pl.DataFrame({"a": ids.slice(1), "b": ids.slice(0, n - 1)}).lazy()
            .select((pl.col("a") > pl.col("b")).all()).collect(engine="streaming").item())):
        first = None  # ids strictly ascending (numbered exports): none repeats
        # (said on the column, so that the sort's look at their order is free: 0.08 s at 10 M)
        typed = pl.DataFrame([ids.set_sorted() if c.name == "claim_id" else c for c in typed.get_columns()])
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

    def add(frame: pl.DataFrame, f: str) -> None:
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

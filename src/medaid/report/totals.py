"""Totals of settled results (合计): the one definition used by the batch, Spark and the report.

Rules implemented (docs/batch.md *Totals*):

* The measures of a set of claims: ``claims`` (rows), ``self_pay``, ``relief`` and
  ``patient_pays`` (integer sums of fen), ``claims_capped`` (claims whose relief some limit made
  smaller: ``capped_by`` set), ``persons`` (distinct ``person_id``), ``persons_at_annual_cap``
  (distinct persons with a claim whose ``capped_by`` is ``annual_cap``) and ``relief_share``
  (Σ relief ÷ Σ self-pay as a percentage, two decimals, rounded half-up on exact integers by
  :func:`medaid.money.format_percent`).  Results of the rules real schemes need (they carry
  ``second_relief``: cap pools, a second stage) add to the total (:func:`with_second_stage`)
  ``second_relief``, the part of ``relief`` the second stage paid, and
  ``persons_at_cap_pool``, distinct persons with a claim whose ``capped_by`` is a cap pool's
  ``cap:NAME`` (:func:`persons_at_cap_pool`: the report's figure of that name is this
  aggregation, docs/report.md *Cap pools*); other results' totals do not have them.
  :data:`SUMS` and :data:`DISTINCT` define them once; :func:`polars_measure` and
  :func:`spark_measure` translate a definition into a polars or a Spark aggregation.
* Totals overall and by plan, by month (``YYYY-MM`` of the claim date) and by hospital (the
  payment list): sums are taken once per cell (plan, month, hospital) and added up exactly by
  :func:`combine`; distinct persons cannot be added up, so they are counted per grouping value.
  The groups are sorted by name, the missing name (no hospital) last.
* :func:`summarise` computes them from a polars results frame (``medaid batch``);
  :func:`medaid.spark.job.summarize` from a Spark frame: Spark collects the cells' partial sums
  and the per-value distinct counts, and :func:`combine` finishes them into the same totals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, Final

import polars as pl

from ..money import format_percent

#: Summed measures: name → (operation, column).  ``count``: rows; ``sum``: Σ column (fen);
#: ``count_set``: rows where the column is set.
SUMS: Final[tuple[tuple[str, str, str | None], ...]] = (
    ("claims", "count", None),
    ("self_pay", "sum", "self_pay"),
    ("relief", "sum", "relief"),
    ("patient_pays", "sum", "patient_pays"),
    ("claims_capped", "count_set", "capped_by"),
)
#: Distinct-person measures: name → the ``capped_by`` a claim must have to count (``None``: any).
DISTINCT: Final[tuple[tuple[str, str | None], ...]] = (
    ("persons", None),
    ("persons_at_annual_cap", "annual_cap"),
)
#: The groupings of the totals, and the key of each in the summary.
DIMS: Final = ("plan", "month", "hospital")
BY_KEYS: Final = {"plan": "by_plan", "month": "by_month", "hospital": "by_hospital"}
#: The measures in the order the tables show them.
COLUMNS: Final = ("claims", "persons", "self_pay", "relief", "patient_pays", "relief_share",
                  "claims_capped", "persons_at_annual_cap")
#: Every measure but the share, in the order of a summary row.
_ZERO_KEYS: Final = ("claims", "persons", "self_pay", "relief", "patient_pays", "claims_capped",
                     "persons_at_annual_cap")
_SUM_NAMES: Final = tuple(name for name, _, _ in SUMS)

#: The column :func:`summarise` gives its ``persons`` while it works.
_PERSON = "\x00person"

#: Persons are counted with one bit per plan, month and hospital while these fit in a word.
MASK_BITS = 63


def relief_share(relief: int, self_pay: int) -> str:
    """Relief as a percentage of self-pay, two decimals, rounded half-up (exact integers);
    ``0.00%`` when there is no self-pay."""
    return (format_percent(relief, self_pay) if self_pay else "0.00") + "%"


# --------------------------------------------------------------------------------------------
# the measures as aggregations


def polars_measure(name: str, person: "pl.Expr | None" = None) -> "pl.Expr":
    """The polars aggregation of measure ``name`` (of :data:`SUMS` or :data:`DISTINCT`), aliased
    ``name``.  ``person`` is the expression persons are told apart by (default ``person_id``;
    nulls are not a person)."""
    for n, op, col in SUMS:
        if n == name:
            if op == "count":
                return pl.len().alias(name)
            assert col is not None  # "sum" and "count_set" name their column
            if op == "sum":
                return pl.col(col).sum().alias(name)
            return pl.col(col).is_not_null().sum().alias(name)
    cause = dict(DISTINCT)[name]
    who = pl.col("person_id") if person is None else person
    if cause is not None:
        who = pl.when(at_cause(cause)).then(who)
    return who.drop_nulls().n_unique().alias(name)


def at_cause(cause: str) -> "pl.Expr":
    """polars: the claim's relief was capped by ``cause`` (``capped_by == cause``, never null)."""
    return (pl.col("capped_by") == cause).fill_null(False)


#: What ``capped_by`` starts with when a cap pool cut the relief (``cap:NAME``, docs/rules.md).
CAP_POOL: Final = "cap:"
#: The measure of the persons a cap pool stopped (:func:`persons_at_cap_pool`).
AT_CAP_POOL: Final = "persons_at_cap_pool"


def at_cap_pool() -> "pl.Expr":
    """polars: the claim's relief was cut by a cap pool (``capped_by`` is ``cap:NAME``; never
    null)."""
    return pl.col("capped_by").cast(pl.String).str.starts_with(CAP_POOL).fill_null(False)


def persons_at_cap_pool(person: "pl.Expr | None" = None) -> "pl.Expr":
    """polars: distinct persons with a claim a cap pool cut (:func:`at_cap_pool`), aliased
    :data:`AT_CAP_POOL`: the totals' and the report's one definition.  A line of its own, not
    part of ``persons_at_annual_cap``.  ``person`` as in :func:`polars_measure`."""
    who = pl.col("person_id") if person is None else person
    return pl.when(at_cap_pool()).then(who).drop_nulls().n_unique().alias(AT_CAP_POOL)


def spark_persons_at_cap_pool() -> Any:
    """The Spark aggregation of :func:`persons_at_cap_pool` (the same definition)."""
    from pyspark.sql import functions as F

    return F.countDistinct(F.when(F.col("capped_by").startswith(CAP_POOL), F.col("person_id"))).alias(AT_CAP_POOL)


def spark_measure(name: str) -> Any:
    """The Spark aggregation of measure ``name`` (of :data:`SUMS` or :data:`DISTINCT`), aliased
    ``name``: the same definition as :func:`polars_measure`.  pyspark (the spark extra) is
    imported here: the local batch and the report use this module where it need not be
    installed."""
    from pyspark.sql import functions as F

    for n, op, col in SUMS:
        if n == name:
            if op == "count":
                return F.count(F.lit(1)).alias(name)
            assert col is not None  # "sum" and "count_set" name their column
            if op == "sum":
                return F.sum(col).alias(name)
            return F.count(F.col(col)).alias(name)
    cause = dict(DISTINCT)[name]
    who = F.col("person_id")
    if cause is not None:
        who = F.when(F.col("capped_by") == cause, who)
    return F.countDistinct(who).alias(name)


# --------------------------------------------------------------------------------------------
# finishing


def combine(cells: Iterable[tuple[Mapping[str, Any], Iterable[int | None]]],
            persons: Mapping[str, Any]) -> dict[str, Any]:
    """The totals from the cells' partial sums and the distinct-person counts.

    ``cells``: per cell (plan, month, hospital) its key (``{"plan": ..., "month": "2024-01",
    "hospital": ...}``) and its sums in the order of :data:`SUMS` (``None`` = 0);
    ``persons``: ``{"total": (persons, at_cap), "plan": {name: (persons, at_cap)}, ...}``.
    Returns ``{"total": {...}, "by_plan": [...], "by_month": [...], "by_hospital": [...]}``,
    amounts in fen."""
    zero = dict.fromkeys(_ZERO_KEYS, 0)
    rows = [(key, tuple(int(x or 0) for x in sums)) for key, sums in cells]

    def finish(r: dict[str, Any]) -> dict[str, Any]:
        r["relief_share"] = relief_share(r["relief"], r["self_pay"])
        return r

    total = dict(zero)
    for _, v in rows:
        for k, x in zip(_SUM_NAMES, v):
            total[k] += x
    total["persons"], total["persons_at_annual_cap"] = persons.get("total", (0, 0))
    out: dict[str, Any] = {"total": finish(total)}
    for dim in DIMS:
        acc: dict[Any, dict[str, Any]] = {}
        for key, v in rows:
            r = acc.setdefault(key[dim], {dim: key[dim], **zero})
            for k, x in zip(_SUM_NAMES, v):
                r[k] += x
        for name, r in acc.items():
            r["persons"], r["persons_at_annual_cap"] = persons[dim][name]
        out[BY_KEYS[dim]] = sorted((finish(r) for r in acc.values()),
                                   key=lambda r: (r[dim] is None, r[dim] or ""))
    return out


# --------------------------------------------------------------------------------------------
# the local engine (polars)


def summarise(results: "pl.DataFrame", persons: "pl.Series | None" = None) -> dict[str, Any]:
    """Totals of settled results (money in fen): overall, by plan, by month, by hospital.

    Sums are taken once per cell (plan, month, hospital) and added up exactly (:func:`combine`);
    persons are counted by one pass over the persons, each with a bit for every plan, month and
    hospital it was seen in (or, with more than :data:`MASK_BITS` of those, by distinct
    (key, person) pairs).

    ``persons``: a number per row of ``results``, equal for two rows exactly when their
    ``person_id`` is (:attr:`medaid.batch.run.BatchRun.persons`, which the batch's sort gives):
    persons are told apart by it instead of by their text (hashing millions of distinct ids
    is most of this function's time on large batches)."""
    if persons is not None:
        if persons.len() != results.height or persons.null_count():
            raise ValueError("summarise: persons must give one number for every row")
        results = results.with_columns(persons.alias(_PERSON))

    def code(c: str, wide: bool = True) -> "pl.Expr":  # text → small integer codes (one hash pass); enums as is
        t = results.schema[c]
        e = pl.col(c) if isinstance(t, (pl.Enum, pl.Categorical)) else pl.col(c).cast(pl.Categorical)
        return e.to_physical().cast(pl.UInt64) if wide else e.to_physical()

    def text(c: str) -> "pl.Expr":
        return pl.col(c) if c in results.columns else pl.lit(None, pl.String)

    def person() -> "pl.Expr":
        # category codes when the ids are categories (a narrower key hashes faster); text ids are
        # grouped as text: making categories of millions of distinct ids costs far more than
        # hashing them (medaid.io.validation.FEW_VALUES)
        if _PERSON in results.columns:
            return pl.col(_PERSON)
        t = results.schema["person_id"]
        return code("person_id", wide=False) if isinstance(t, (pl.Enum, pl.Categorical)) else pl.col("person_id")

    has_h = "hospital" in results.columns
    hosp = code("hospital") if has_h else pl.lit(None, pl.UInt64)
    if not results.height:
        return combine([], {"total": (0, 0)})
    # one integer a cell: plan, month (from the first), hospital (null → a code of its own)
    first, last, top = results.lazy().select(
        pl.col("date").min().alias("d0"), pl.col("date").max().alias("d1"), hosp.max().alias("h"),
    ).collect().row(0)
    hosp_null = int(top or 0) + 1
    H = hosp_null + 1
    m0 = first.year * 12 + first.month - 1
    M = last.year * 12 + last.month - m0
    # the month of each day, looked up in a table of the days from the first to the last
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    table = pl.Series([d.year * 12 + d.month - 1 - m0 for d in days], dtype=pl.UInt64)
    month = pl.lit(table).gather((pl.col("date") - pl.lit(first)).dt.total_days())
    (cause,) = (c for _, c in DISTINCT if c is not None)
    keyed = results.lazy().select(
        (code("plan") * (M * H) + month * H + hosp.fill_null(hosp_null)).alias("cell"),
        person().alias("person"),
        at_cause(cause).alias("at_cap"),
        "self_pay", "relief", "patient_pays", "capped_by",
        text("plan").alias("plan_name"), text("hospital").alias("hospital_name"),
    )  # lazy: each query below computes the columns it needs
    cells = keyed.group_by("cell").agg(
        *(polars_measure(n) for n in _SUM_NAMES),
        pl.col("plan_name").first(), pl.col("hospital_name").first(),
    ).collect().with_columns(pl.col("plan_name", "hospital_name").cast(pl.String))  # once per cell
    dims: dict[str, dict[int, Any]] = {"plan": {}, "month": {}, "hospital": {}}
    rows = []
    for c, *sums, pn, hn in cells.iter_rows():
        code_ = {"plan": c // (M * H), "month": c // H % M, "hospital": c % H}
        dims["plan"][code_["plan"]] = pn
        dims["month"][code_["month"]] = f"{(m0 + code_['month']) // 12}-{(m0 + code_['month']) % 12 + 1:02d}"
        dims["hospital"][code_["hospital"]] = hn
        rows.append((code_, sums))
    counted = _persons(keyed, dims, M, H)
    named: dict[str, Any] = {"total": counted["total"]}
    for dim in DIMS:  # codes → names
        named[dim] = {dims[dim][k]: v for k, v in counted[dim].items()}
    out = combine((({d: dims[d][k[d]] for d in DIMS}, sums) for k, sums in rows), named)
    return with_second_stage(out, results)


def with_second_stage(summary: dict[str, Any], results: "pl.DataFrame") -> dict[str, Any]:
    """The summary with ``second_relief`` (Σ second-stage relief, fen: part of ``relief``) and
    ``persons_at_cap_pool`` (:func:`persons_at_cap_pool`) in its total, when the results carry
    ``second_relief`` (the rules real schemes need, docs/batch.md *Totals*); as it is
    otherwise."""
    if "second_relief" in results.columns:
        total = summary["total"]
        total["second_relief"] = int(results["second_relief"].sum() or 0)
        person = pl.col(_PERSON) if _PERSON in results.columns else None
        total[AT_CAP_POOL] = int(results.lazy().select(persons_at_cap_pool(person)).collect().item())
    return summary


#: A table of person numbers (:func:`_seen`) is used while the largest number is below this many
#: times the rows (one bit a number: at 10 M claims 10 MB at most); so is a dimension's table
#: of (code, person) places while it has no more places than that.
SEEN_SPREAD = 8


def _seen(rows: "pl.DataFrame", dims: dict[str, dict[int, Any]]) -> dict[str, Any] | None:
    """Of ``rows`` (``person`` numbers, ``at_cap``, and a column of codes for each dimension of
    ``dims`` with more than one code), the distinct persons, in total and for each code of each
    dimension, ``(every, capped)``: over all rows, and over the ``at_cap`` rows alone (the shape
    :func:`_persons` gives).  ``None`` when the numbers are too large or too spread for tables
    of them (:data:`SEEN_SPREAD`).

    Each count is the number of places set in a table of booleans indexed by the person's
    number (no hashing: grouping 10 M rows by 3.3 M persons took 0.85–3.5 s of CPU, the tables
    0.2 s).  A dimension's codes share one table, a slice of it per code (place
    ``code × persons + person``: one pass over the rows, where a table per code took a pass per
    code); a dimension with one code has every person.  The peer benchmark's 10 M claims (one
    plan, 12 months, no hospital), :func:`summarise` with the sort's numbers, 8 runs of each
    alternated: 0.33 s (0.25–0.35) against 0.45 s (0.40–0.54) with a table per code."""
    person = rows["person"]
    top = person.max()
    size = 0 if top is None else int(top) + 1  # type: ignore[arg-type]
    if size >= 2**32 or size > SEEN_SPREAD * rows.height + 1024:
        return None
    person = person.cast(pl.UInt32)

    def places(at: "pl.Series", width: int = 1) -> "pl.Series":
        return pl.zeros(width * size, pl.Boolean, eager=True).scatter(at, True)

    def counts(who: "pl.DataFrame") -> dict[str, Any]:
        everyone = int(places(who["person"]).sum()) if who.height else 0
        out: dict[str, Any] = {"total": everyone}
        for dim, codes in dims.items():
            if len(codes) == 1:
                out[dim] = {code: everyone for code in codes}
                continue
            width = max(codes) + 1
            if not who.height:
                out[dim] = {code: 0 for code in codes}
            elif width * size < min(2**32, SEEN_SPREAD * rows.height + 1024):
                at = who.select(pl.col(dim).cast(pl.UInt32) * size + pl.col("person")).to_series()
                table = places(at, width)
                out[dim] = {code: int(table.slice(code * size, size).sum()) for code in codes}
            else:
                out[dim] = {code: int(places(who["person"].filter(who[dim] == code)).sum()) for code in codes}
        return out

    frame = pl.DataFrame([person, *(rows[d] for d in rows.columns if d in dims)])
    every, capped = counts(frame), counts(frame.filter(rows["at_cap"]))
    return {"total": (every["total"], capped["total"]),
            **{dim: {code: (every[dim][code], capped[dim][code]) for code in codes} for dim, codes in dims.items()}}


def _narrowest(top: int) -> "pl.DataType":
    """The narrowest unsigned integer type that holds ``0..top``."""
    return next(t for t, b in ((pl.UInt8(), 8), (pl.UInt16(), 16), (pl.UInt32(), 32), (pl.UInt64(), 64))
                if top < 1 << b)


def _persons(keyed: "pl.LazyFrame", dims: dict[str, dict[int, Any]], M: int, H: int) -> dict[str, Any]:
    """Distinct persons and distinct persons with an annual-cap claim: in total and for every
    code of every dimension (``{"total": (n, capped), "plan": {code: (n, capped)}, ...}``)."""
    parts = {"plan": pl.col("cell") // (M * H), "month": pl.col("cell") // H % M,
             "hospital": pl.col("cell") % H}
    width = sum(len(v) for v in dims.values())
    out: dict[str, Any] = {}
    if width <= MASK_BITS:
        if keyed.collect_schema()["person"] in (pl.UInt32, pl.UInt64):
            # (each dimension's codes in the narrowest word that holds them: at 10 M claims one
            # byte a row for the months instead of eight, while the results are being written)
            coded = {d: _narrowest(max(codes)) for d, codes in dims.items() if len(codes) > 1}
            counted = _seen(keyed.select("person", "at_cap", *(parts[d].cast(t).alias(d) for d, t in coded.items()))
                            .collect(), dims)
            if counted is not None:  # numbers few enough for tables of them
                return counted
        # each person's bits: a lookup of each part's bit, added (the bits are distinct)
        names = [(dim, v) for dim, values in dims.items() for v in sorted(values)]  # bit j
        # the narrowest word that holds the bits: the grouping keeps one per row and person
        # (at 10 M claims, 14 bits: 2 bytes a row instead of 8; the totals' transient 219 → 153 MiB;
        # up to 8 bits, 1 byte)
        word = _narrowest((1 << len(names)) - 1)
        mask: Any = None
        for dim, values in dims.items():
            table = [0] * (max(values) + 1)
            for j, (d, v) in enumerate(names):
                if d == dim:
                    table[v] = 1 << j
            bit = pl.lit(pl.Series(table, dtype=word)).gather(parts[dim])
            mask = bit if mask is None else mask + bit
        # each person's bits over all claims, and over its annual-cap claims alone: two
        # groupings, the second of the few capped rows only (one grouping of every row with a
        # second, masked column: 0.26 s more at 10 M claims)
        m = keyed.select("person", "at_cap", mask.alias("m"))
        every, capped_only = pl.collect_all([
            m.group_by("person").agg(pl.col("m").bitwise_or()).select(
                [pl.len()] + [((pl.col("m") & (1 << j)) != 0).sum().alias(f"b{j}") for j in range(len(names))]),
            m.filter(pl.col("at_cap")).group_by("person").agg(pl.col("m").bitwise_or()).select(
                [pl.len()] + [((pl.col("m") & (1 << j)) != 0).sum().alias(f"b{j}") for j in range(len(names))]),
        ])
        s, c = every.row(0), capped_only.row(0)
        out["total"] = (int(s[0]), int(c[0]))
        for j, (dim, v) in enumerate(names):
            out.setdefault(dim, {})[v] = (int(s[1 + j]), int(c[1 + j]))
        return out
    # many keys: distinct (key, person) pairs
    lazy = keyed
    capped = lazy.filter(pl.col("at_cap"))
    queries = [lazy.select(pl.col("person").n_unique()), capped.select(pl.col("person").n_unique())]
    for dim in dims:
        for frame in (lazy, capped):
            queries.append(frame.select(parts[dim].alias("k"), "person").unique()
                           .group_by("k").len())
    got = pl.collect_all(queries)
    out["total"] = (int(got[0].item()), int(got[1].item()))
    for i, dim in enumerate(dims):
        seen = dict(got[2 + 2 * i].iter_rows())
        cap = dict(got[3 + 2 * i].iter_rows())
        out[dim] = {v: (int(seen.get(v, 0)), int(cap.get(v, 0))) for v in dims[dim]}
    return out

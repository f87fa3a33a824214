"""The columnar settlement: the engine's rules on a whole polars frame, exactly and fast.

Rules implemented (docs/calculation.md; how, in docs/columnar.md), the same as
:func:`medaid.domain.engine.settle`: version by claim date, plan by (group, kind), benefit year
by the version's start month, accumulation per (person, benefit year, pool) in (date, claim id)
order, the ``claim`` / ``year`` increment, the gate, the ``marginal`` / ``whole`` bracket
function, rounding to the rule set's unit and method, and the caps
``max(0, min(inc, claim_cap, annual_cap − G, s))`` with the engine's ``capped_by`` precedence.

:func:`settle_frame` runs the flow; each step is a module of its own:
:mod:`.placement` (version, benefit year, plan; rejects) → :mod:`.ordering` (processing order)
→ :mod:`.arithmetic` (relief, caps; the sequential fallback) → back to input order and the
result columns (:func:`finish`, here).  :mod:`.tables` holds the rule book as the steps read it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import polars as pl

from ..domain.engine import Positions
from ..domain.rules import RuleBook
from ..errors import ClaimError, Problem
from ..io.columns import RESULT_FIELDS, rule_ref
from ..tuning import mark, on_the_side
from . import arithmetic, ordering, placement
from .tables import DType, PlanTables, lookup

#: The column of person numbers ``settle_frame(person_codes=True)`` may add.
PERSON_CODE = "__person"


def settle_frame(
    frame: pl.DataFrame, rules: RuleBook, *, compact: bool = False,
    opening: pl.DataFrame | Positions | None = None, full_rule_hash: bool = True,
    need: Collection[str] | None = None, person_codes: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Settle every claim of ``frame`` by the engine's rules (docs/calculation.md), columnar.

    ``frame`` has ``row``, ``claim_id``, ``person_id``, ``date``, ``self_pay`` (fen) and optional
    ``group`` and ``kind``; other columns pass through.  Returns ``(results, rejects)``:
    ``results`` are the placeable rows in input order with :data:`medaid.io.columns.RESULT_FIELDS`
    appended; ``rejects`` (``row``, ``claim_id``, ``field``, ``message``) are the rows no rule
    version covers or no plan matches, worded as the engine words them, and the rows whose
    self-pay is negative or above :data:`medaid.money.MAX_FEN`.  Each result equals
    :func:`medaid.domain.engine.settle` on the placeable claims, to the fen.

    ``compact=True`` returns the text result columns (``plan``, ``pool``, ``capped_by``,
    ``rule_set_id``, ``rule_version``, ``rule_hash``) as ``pl.Enum`` instead of ``String``:
    the same values, written the same to CSV, one byte a row instead of sixteen (about 0.9 GB
    less at 10 M claims).

    ``opening``: positions before the first claim, one row per (``person_id``,
    ``benefit_year``, ``pool``) with ``c0`` (self-pay so far) and ``g0`` (relief so far), in
    fen (:attr:`medaid.batch.opening.Opening.positions`; docs/batch.md, *Opening balances*):
    each group's accumulation starts there instead of at zero, as the engine's ``opening``.

    ``full_rule_hash=False`` gives ``rule_hash`` as the rule file's short reference
    (:func:`medaid.io.columns.rule_ref`: the first 12 hex digits of its sha256), as results
    files carry it by default; ``True`` (the default here) the whole sha256, as the engine.

    ``need``: the result fields to give (``None``: all of ``RESULT_FIELDS``); the others are
    left out of ``results`` and not computed (``--columns``, docs/batch.md *Output files*).  The
    fields given are the same, row for row, as when all are.

    ``person_codes=True``: when the sort told the persons apart on the way (text person ids
    sorted by their hash), ``results`` ends with a column :data:`PERSON_CODE`, an unsigned
    integer per row, equal for two rows exactly when their ``person_id`` is: the totals
    count persons by it instead of hashing the ids again (:attr:`medaid.batch.run.BatchRun.persons`).

    Its steps are timed under :func:`medaid.tuning.trace_steps` (benchmarks).

    A rule book that uses the rules of docs/calculation.md *Rules real schemes need*
    (``rules.extended``) is settled by the scalar engine instead (:mod:`medaid.batch.extended`;
    docs/columnar.md, *Extended rule sets*): the same result columns, then
    :data:`medaid.io.columns.EXTENDED_RESULT_FIELDS`; ``opening`` may then be a
    :class:`medaid.domain.engine.Positions` (pools, cap pools and second pools); every result
    field is given whatever ``need`` says, and no :data:`PERSON_CODE` column.
    """
    if rules.extended:  # issue 15: kept apart, at the top, so the columnar flow below is untouched
        from .extended import opening_positions, settle_frame_extended

        return settle_frame_extended(frame, rules, compact=compact, opening=opening_positions(opening),
                                     full_rule_hash=full_rule_hash)
    assert not isinstance(opening, Positions)
    t = PlanTables(rules)
    frame, over = placement.over_limit(frame)

    # --- placement: version, benefit year, plan; the sort key's parts in the same pass ---------
    span = placement.span_of(frame)
    exact_bits = None
    parts: list[pl.Expr] = []
    if span is not None:
        hashed, exact_bits = ordering.person_hash(frame)
        parts = ordering.key_parts(t, span.first, hashed)
    keys = placement.place(frame, t, rules, span, parts)
    mark("place")
    placed, keys, rejects = placement.split(frame, keys, rules, t, over)
    n = placed.height
    if n >= 2**32:
        raise ClaimError(Problem("more than 4,294,967,295 claims in one frame; split the batch"))
    if n == 0 or span is None:
        return finish(placed, keys, t, None, compact, full_rule_hash, need), rejects

    # --- order by (person, benefit year, pool, date, claim id) -------------------------------
    top_bp = keys["bp"].max()
    bits_bp = (top_bp if isinstance(top_bp, int) else 0).bit_length()
    bits_d = span.days.bit_length()
    bits_i = (n - 1).bit_length()
    # (frames of the columns themselves: ``select`` went through a query and took 0.1 s at
    # 10 M rows)
    low = pl.DataFrame([keys[c] for c in ("bp", "d", "h")]).rechunk()
    keys = pl.DataFrame([keys["__p"], keys["__by"]])  # the sort key's parts live on in ``low`` only
    mark("keyparts")
    seed = None
    if opening is not None and opening.height:
        from .opening import seeds

        pools = keys.select(lookup([x.plan.pool for x in t.plans], pl.col("__p"), pl.String))
        seed = seeds(placed["person_id"], keys["__by"], pools.to_series(), opening)
        if not ((seed["c0"] != 0).any() or (seed["g0"] != 0).any()):
            seed = None
    keys, same = _constants_out(keys, t)
    start = ordering.in_order(placed, low, bits_bp)
    perm = persons = None
    held = [low]
    del low  # (the sort frees the key's parts once the key is made: memory)
    if start is None:
        perm, start, persons = ordering.sorted_order(placed, held, bits_bp, bits_d, bits_i, exact_bits)
    del held

    # --- arithmetic in processing order ------------------------------------------------------
    # (the way back to input order is worked out alongside)
    inverse = None if perm is None else on_the_side(ordering.inverse, perm, n, name="medaid-inverse")
    # (the plan index only where there are plans to tell apart: with one, every row's is 0)
    taken = {"s": placed["self_pay"], **({"p": keys["__p"]} if "__p" in keys.columns else {})}
    if seed is not None:
        taken |= {"c0": seed["c0"], "g0": seed["g0"]}
        del seed
    work = ordering.permuted(taken, perm).with_columns(start.alias("b"))
    del taken
    mark("gather")
    res, seq = arithmetic.in_slices(work, t, need)
    mark("arithmetic")
    if seq is not None:
        res = arithmetic.sequential(res, work, seq, t)
    del work
    if person_codes and persons is not None:  # (back to input order with the results)
        res = res.with_columns(persons.alias(PERSON_CODE))
    del persons  # (only ``res`` holds them now: freed as they are put back, 40 MB at 10 M rows)
    mark("sequential")
    if inverse is None:
        res_in = res
    else:
        back = inverse.result()
        del perm, start, inverse  # (before the results are put back: their peak, 40 MB at 10 M rows)
        held = [res]
        del res  # unpermute frees the processing-order columns once they are put back
        res_in = ordering.unpermute(held, back)
        del back
    mark("unpermute")
    code = res_in.drop_in_place(PERSON_CODE) if PERSON_CODE in res_in.columns else None
    done = finish(placed, keys, t, res_in, compact, full_rule_hash, need, same)
    if code is not None:
        done = done.with_columns(code)
    mark("finish")
    return done, rejects


def _constants_out(keys: pl.DataFrame, t: PlanTables) -> tuple[pl.DataFrame, dict[str, int]]:
    """``keys`` (``__p``, ``__by``: each placed row's plan index and benefit year) without the
    columns that hold one value on every row, and those values: the plan index of a book of
    one plan (one version, one plan: every placed row's is 0), the benefit year of a frame of
    one.  Such a column is not kept a value a row (at 10 M claims 38 MB each, from the sort to
    the end of the settlement): :func:`finish` gives the result fields read from it (the plan's
    five text fields, the benefit year) as constant columns, which polars holds as the one
    value and writes as every row's."""
    same: dict[str, int] = {}
    if len(t.plans) == 1:
        same["__p"] = 0
    lo, hi = keys["__by"].min(), keys["__by"].max()
    if isinstance(lo, int) and lo == hi:
        same["__by"] = lo
    return (keys.drop(list(same)) if same else keys), same


def finish(
    out: pl.DataFrame, keys: pl.DataFrame, t: PlanTables, res: pl.DataFrame | None, compact: bool,
    full_rule_hash: bool = True, need: Collection[str] | None = None, same: Mapping[str, int] | None = None,
) -> pl.DataFrame:
    """Input columns, then :data:`medaid.io.columns.RESULT_FIELDS` (those of ``need``, when
    given), in input order: the text columns looked up by each row's plan index (which never
    left input order), the amounts from ``res`` (the arithmetic's results in input order;
    ``None``: no rows).  ``same``: the columns of ``keys`` taken out as one value for every row
    (:func:`_constants_out`); the fields read from them are constant columns."""
    same = same or {}
    keep = [c for c in out.columns if c not in RESULT_FIELDS]

    def text(values: list[str | None]) -> DType:
        if compact:
            return pl.Enum(sorted({v for v in values if v is not None}))
        return pl.String

    def by_plan(values: list[str]) -> pl.Expr:
        if "__p" in same:
            return pl.lit(values[same["__p"]], text(list(values)))
        return lookup(values, pl.col("__p"), text(list(values)))

    if res is None:
        res = arithmetic.blank(0, arithmetic.outputs(need))
    # the result columns in one parallel pass over the plan index and the results
    parts = pl.DataFrame([*([keys["__p"].rechunk()] if "__p" not in same else []),
                          *([keys["__by"]] if "__by" not in same else []),
                          out["self_pay"].alias("__s"), *res.get_columns()])
    fields = {
        "plan": lambda: by_plan([x.plan.name for x in t.plans]),
        "pool": lambda: by_plan([x.plan.pool for x in t.plans]),
        "benefit_year": lambda: pl.lit(same["__by"], pl.Int32) if "__by" in same else pl.col("__by").cast(pl.Int32),
        "relief": lambda: pl.col("relief"),
        "patient_pays": lambda: pl.col("__s") - pl.col("relief"),
        "bracket_relief": lambda: pl.col("bracket_relief"),
        "capped_by": lambda: lookup(list(arithmetic.CAPPED_BY), pl.col("capped"), text(list(arithmetic.CAPPED_BY))),
        "bracket": lambda: pl.col("bracket"),
        "ytd_self_pay": lambda: pl.col("ytd_self_pay"),
        "ytd_relief": lambda: pl.col("ytd_relief"),
        "rule_set_id": lambda: by_plan([x.rule_set.id for x in t.plans]),
        "rule_version": lambda: by_plan([x.rule_set.version for x in t.plans]),
        "rule_hash": lambda: by_plan([rule_ref(x.rule_set.content_hash, full_rule_hash) for x in t.plans]),
    }
    assert tuple(fields) == RESULT_FIELDS
    wanted = [f for f in fields if need is None or f in need]
    # the fields of a constant (one plan, one benefit year) stay one value: given to the frame
    # itself, outside the query, which would write it out on every row
    constant = {f for f in wanted if fields[f]().meta.is_literal()}
    # the arithmetic's own columns are taken as they are: a query would copy them (at 10 M
    # claims, with every field, 320 MB more at the settlement's peak)
    computed = [f for f in wanted if f not in res.columns and f not in constant]
    extra = parts.lazy().select(fields[f]().alias(f) for f in computed).collect(engine="streaming")
    del parts
    if len(keep) < out.width:  # selecting realigns (copies) every column: only when needed
        out = out.select(keep)
    return out.with_columns(res[f] if f in res.columns else fields[f]().alias(f) if f in constant else extra[f]
                            for f in wanted)

"""The columnar settlement core: the engine's rules on a whole polars frame, exactly and fast.

Rules implemented (docs/calculation.md; how, in docs/columnar.md), the same as
:func:`medaid.domain.engine.settle`:
version by claim date, plan by (group, kind), benefit year by the version's start month,
accumulation per (person, benefit year, pool) in (date, claim id) order, the ``claim`` /
``year`` increment, the gate, the ``marginal`` / ``whole`` bracket function, rounding to the
rule set's unit and method, and the caps ``max(0, min(inc, claim_cap, annual_cap − G, s))``
with the engine's ``capped_by`` precedence.

How (docs/columnar.md has the proofs):

* *Placement* is a few vectorised lookups: the version by a ``when`` chain on the date, the plan
  from a small table indexed by (version, group code, kind code), built by calling
  :meth:`medaid.domain.rules.RuleSet.plan` for every code pair, so plan selection is the engine's own.
* *Ordering*: one unsigned 64-bit key per row, ``hash(person) | (benefit year, pool) | day |
  row``, sorted with a radix sort; the row index is read back from the low bits.  Rows whose
  key ties (same person hash, pool, year and day) or whose person hash collides with another
  person are re-sorted exactly by (person, day, claim id): that subset is small.
  Input already in such an order is detected and not sorted at all.
* *Arithmetic*: ``f(x)·S = icpt[j] + num[j]·x`` on the piece ``j`` holding ``x`` (found by
  comparing ``x`` with the plan's bounds), then rounded by one integer division.  With ``r'_k = max(0,
  min(inc_k, claim_cap, s_k))`` and a constant annual cap ``A`` in a group,
  ``G_k = min(A, Σ_{j≤k} r'_j)``, so relief is ``min(A, P_k) − min(A, P_{k−1})``: segmented
  prefix sums, no sequential pass.  Groups whose annual cap changes within the group (two
  versions with different caps in one benefit year) or whose amounts could overflow 64-bit
  arithmetic are settled by the scalar engine's own per-claim function, in Python.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from ..domain.brackets import CAP_ANNUAL, CAP_CLAIM, CAP_SELF_PAY
from ..domain.engine import no_plan, no_version
from ..domain.rules import PlacedPlan, RuleBook, RuleSet
from ..errors import ClaimError, Problem
from ..io.columns import RESULT_FIELDS
from ..io.validation import REJECT_COLUMNS, empty_rejects
from ..money import MAX_FEN, rounding_step, too_large

if TYPE_CHECKING:  # polars is imported inside the functions: `import medaid` stays light
    import polars as pl

#: ``capped_by`` codes used inside frames (0 = none).
CAPPED_BY = (None, CAP_ANNUAL, CAP_CLAIM, CAP_SELF_PAY)
#: Columns of the rejects frame (:func:`medaid.io.validation.reject_schema`).
REJECT_FIELDS = REJECT_COLUMNS
#: Products and sums are kept below this bound so that int64 arithmetic never wraps.
_SAFE = 2**62
#: A key packs the row index when at least this many bits remain for the person hash.
_MIN_HASH_BITS = 28
_SEED = 0x6D656461
#: When a list, :func:`settle_frame` appends ``(step, seconds)`` to it (benchmarks read it).
TRACE: list[tuple[str, float]] | None = None
TRACE_CPU = False


def _mark(step: str, t0: list[float]) -> None:
    if TRACE is not None:
        import time

        now = time.process_time() if TRACE_CPU else time.perf_counter()
        TRACE.append((step, now - t0[0]))
        t0[0] = now


class _Tables:
    """The rule book flattened into small arrays indexed by version, plan and bracket."""

    def __init__(self, rules: RuleBook) -> None:
        self.versions: tuple[RuleSet, ...] = rules.versions()
        self.plans: list[PlacedPlan] = []
        for rs in self.versions:
            for p in rs.plans:
                self.plans.append(PlacedPlan(rs, p, rules.schedule(rs, p)))
        self.pools = sorted({x.plan.pool for x in self.plans})
        groups: set[str] = set()
        kinds: set[str] = set()
        for x in self.plans:
            if x.plan.match is not None:
                groups.update(x.plan.match.group)
                kinds.update(x.plan.match.kind)
        for rs in self.versions:  # the names standing for codes: placed by RuleSet.plan as codes
            for code, aliases in rs.groups.items():
                groups.update((code, *aliases))
            for code, aliases in rs.kinds.items():
                kinds.update((code, *aliases))
        #: whether some name stands for a code (then results carry the codes: :func:`_as_codes`)
        self.aliases = any(rs.groups or rs.kinds for rs in self.versions)
        self.groups = sorted(groups)
        self.kinds = sorted(kinds)
        # codes: known names 0..n-1, then null (n), then any other value (n+1)
        ng, nk = len(self.groups) + 2, len(self.kinds) + 2
        self.ng, self.nk = ng, nk
        unknown = "\x00not-a-name"
        gnames: list[str | None] = [*self.groups, None, unknown]
        knames: list[str | None] = [*self.kinds, None, unknown]
        index = {(id(x.rule_set), x.plan.name): i for i, x in enumerate(self.plans)}
        combo: list[int | None] = []
        for rs in self.versions:
            for g in gnames:
                for k in knames:
                    p = rs.plan(g, k)
                    combo.append(None if p is None else index[(id(rs), p.name)])
        self.combo = combo
        # per-plan arithmetic: the plans' bracket tables (medaid.domain.brackets.BracketTable,
        # the scalar engine's own: on each piece f(x)·S = icpt + num·x exactly) laid end to end,
        # rescaled to one scale S for every plan (scales are powers of ten, so the largest is a
        # multiple of each, and the rounding step S·unit is one constant when the units agree)
        self.scale = max(x.schedule.table.scale for x in self.plans)
        self.piece_lo: list[int] = []
        self.piece_num: list[int] = []
        self.piece_icpt: list[int] = []
        self.plan_of_piece: list[int] = []
        # the contract's ``bracket`` (Schedule.bracket_reached, the gate left to the caller)
        # for a base inside the piece, and for a base exactly at its lower bound
        self.piece_bracket: list[int] = []
        self.piece_bracket_at_lo: list[int] = []
        for i, x in enumerate(self.plans):
            tb = x.schedule.table
            k = self.scale // tb.scale
            self.piece_lo.extend(tb.lows)
            self.piece_num.extend(m * k for m in tb.slopes)
            self.piece_icpt.extend(c * k for c in tb.intercepts)
            self.plan_of_piece.extend([i] * len(tb.lows))
            self.piece_bracket.extend(tb.brackets)
            self.piece_bracket_at_lo.extend(tb.brackets_at_low)
        #: each plan's rounding over the common scale (medaid.money.rounding_step)
        self.rounding = [rounding_step(self.scale, x.schedule.unit, x.schedule.method)
                         for x in self.plans]

    def safe_base(self, i: int) -> int:
        """The largest base ``x`` for which plan ``i``'s ``icpt + num·x`` stays within ±2**62."""
        nums = [n for n, p in zip(self.piece_num, self.plan_of_piece) if p == i]
        icpts = [abs(c) for c, p in zip(self.piece_icpt, self.plan_of_piece) if p == i]
        return (_SAFE - max(icpts)) // max(max(nums), 1)


def settle_frame(
    frame: "pl.DataFrame", rules: RuleBook, *, compact: bool = False
) -> tuple["pl.DataFrame", "pl.DataFrame"]:
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
    """
    import polars as pl

    t0 = [0.0]
    _mark("start", t0)
    t = _Tables(rules)
    frame, over = _over_limit(pl, frame)
    cols = frame.columns
    group = pl.col("group") if "group" in cols else pl.lit(None, dtype=pl.String)
    kind = pl.col("kind") if "kind" in cols else pl.lit(None, dtype=pl.String)
    date = pl.col("date")

    # --- placement: version, benefit year, plan ------------------------------------------
    v_expr: Any = None
    for i, rs in enumerate(t.versions):
        cond = date >= pl.lit(rs.valid_from)
        if rs.valid_to is not None:
            cond = cond & (date <= pl.lit(rs.valid_to))
        v_expr = pl.when(cond).then(pl.lit(i, pl.Int32)) if v_expr is None else v_expr.when(cond).then(pl.lit(i, pl.Int32))
    v_expr = v_expr.otherwise(pl.lit(None, pl.Int32))
    starts = [rs.benefit_year_start_month for rs in t.versions]
    v = pl.col("__v")
    month_start = _lookup(pl, starts, v, pl.Int8)
    by_expr = (date.dt.year() - (date.dt.month() < month_start).cast(pl.Int32)).cast(pl.Int32)
    code = (v * (t.ng * t.nk) + _codes(pl, group, t.groups) * t.nk + _codes(pl, kind, t.kinds))
    plan_expr = _lookup(pl, t.combo, code, pl.Int32)

    # the placement and the sort key's parts, in one pass and a frame of their own (the
    # input's columns are never copied): day offset from the first date, (benefit year, pool)
    # from the year before the first date's, the person hash
    d0, d1 = frame["date"].min(), frame["date"].max()
    if frame.height and (d1 - d0).days < DAY_TABLE_DAYS:  # type: ignore[operator]
        # version and benefit year are functions of the day: looked up in a table of the
        # days from the first to the last (the same first-match rule as the chain above)
        v_expr, by_expr = _day_tables(pl, t, d0, d1)  # type: ignore[arg-type]
    pool_of_plan = [t.pools.index(x.plan.pool) for x in t.plans]
    npools = len(t.pools)
    exact_bits = None
    if frame.height:
        assert isinstance(d0, dt.date) and isinstance(d1, dt.date)
        by_base = d0.year - 1
        person_hash, exact_bits = _person_hash(pl, frame)
        parts = [
            ((pl.col("__by") - by_base) * npools + _lookup(pl, pool_of_plan, pl.col("__p"), pl.Int64))
            .cast(pl.UInt32).alias("bp"),
            (date - pl.lit(d0)).dt.total_days().cast(pl.UInt32).alias("d"),
            person_hash.alias("h"),
        ]
    else:
        parts = []
    keys = (
        frame.lazy().select(date, group.alias("group"), kind.alias("kind"), pl.col("person_id"))
        .with_columns(v_expr.alias("__v"))
        .with_columns(by_expr.alias("__by"), plan_expr.alias("__p"))
        .select("__v", "__by", "__p", *parts)
        .collect()
    )
    _mark("place", t0)
    placed = frame
    bad = keys["__p"].is_null()
    if bad.any():
        rejects = _rejects(pl, frame.filter(bad).with_columns(keys["__v"].filter(bad)), rules, t)
        placed, keys = frame.filter(~bad), keys.filter(~bad)
    else:
        rejects = _empty_rejects(pl)
    if t.aliases:
        placed = _as_codes(pl, placed, keys["__v"], t)
    if over is not None:
        rejects = pl.concat([over, rejects]).sort("row", maintain_order=True)
    n = placed.height
    if n >= 2**32:
        raise ClaimError(Problem("more than 4,294,967,295 claims in one frame; split the batch"))
    if n == 0:
        return _finish(pl, placed, keys, t, None, compact), rejects

    # --- order by (person, benefit year, pool, date, claim id) ---------------------------
    bits_bp = int(keys["bp"].max()).bit_length()  # type: ignore[arg-type]
    bits_d = (d1 - d0).days.bit_length()  # type: ignore[operator]
    bits_i = (n - 1).bit_length()
    # (frames of the columns themselves: ``select`` went through a query and took 0.1 s at
    # 10 M rows)
    low = pl.DataFrame([keys[c] for c in ("bp", "d", "h")]).rechunk()
    keys = pl.DataFrame([keys["__p"], keys["__by"]])  # the sort key's parts live on in ``low`` only
    _mark("keyparts", t0)
    start = _in_order(pl, placed, low, bits_bp)
    perm = None
    if start is None:
        perm, start = _sorted_order(pl, placed, low, bits_bp, bits_d, bits_i, t0, exact_bits)
    del low

    # --- arithmetic in processing order ----------------------------------------------------
    inverse = None
    if perm is not None:  # the way back to input order, worked out alongside (one core)
        from concurrent.futures import ThreadPoolExecutor

        side = ThreadPoolExecutor(1, thread_name_prefix="medaid-inverse")
        inverse = side.submit(_inverse, pl, perm, n)
        side.shutdown(wait=False)
    work = pl.DataFrame({
        "s": _permuted(placed["self_pay"], perm),
        "p": _permuted(keys["__p"], perm),
        "b": start,
    })
    _mark("gather", t0)
    res, seq = _arithmetic_in_slices(pl, work, t)
    _mark("arithmetic", t0)
    if seq is not None:
        res = _sequential(pl, res, work, seq, t)
    del work
    _mark("sequential", t0)
    if perm is None:
        res_in = res
    else:
        held = [res]
        del res  # _unpermute frees the processing-order columns once they are put back
        res_in = _unpermute(pl, held, inverse.result())  # type: ignore[union-attr]
        del perm, start
    _mark("unpermute", t0)
    done = _finish(pl, placed, keys, t, res_in, compact)
    _mark("finish", t0)
    return done, rejects


def _permuted(col: Any, perm: Any) -> Any:
    col = col.rechunk()
    return col if perm is None else col.gather(perm)


def _in_order(pl: Any, placed: "pl.DataFrame", low: "pl.DataFrame", bits_bp: int) -> Any:
    """When the rows already come in a valid processing order (every (person, benefit year,
    pool) group contiguous, and in (date, claim id) order inside it), the group-start flags;
    else ``None`` and the rows get sorted.  A probe of the first rows gives up early on input
    in any other order."""
    n = placed.height
    person, bp, d = placed["person_id"].rechunk(), low["bp"], low["d"]
    group_hash = (low["h"] // (1 << bits_bp)) * (1 << bits_bp) + bp.cast(pl.UInt64)  # equal groups ⇒ equal

    def same_group(m: int) -> Any:
        return _same_as_previous(pl, person.slice(0, m)) & _same_as_previous(pl, bp.slice(0, m))

    probe = min(n, 1 << 16)
    if probe - int(same_group(probe).sum()) > group_hash.slice(0, probe).n_unique():
        return None  # a group comes back after another one: not grouped
    same = same_group(n)
    if (same & (d < d.shift(1, fill_value=0))).any():
        return None
    tie = same & _same_as_previous(pl, d)
    if tie.any():
        at = pl.int_range(0, n, dtype=pl.UInt32, eager=True).filter(tie)
        claim = placed["claim_id"].rechunk()
        if not (claim.gather(at) > claim.gather(at - 1)).all():
            return None
    # distinct group hashes ≤ distinct groups ≤ runs of equal groups; equality of the ends means
    # every group is one run
    if n - int(same.sum()) != group_hash.n_unique():
        return None
    return ~same


def _sorted_order(
    pl: Any, placed: "pl.DataFrame", low: "pl.DataFrame", bits_bp: int, bits_d: int, bits_i: int,
    t0: list[float], exact_bits: int | None = None,
) -> tuple[Any, Any]:
    """The permutation into processing order and the group-start flags in that order: the
    radix-sorted key, then the exact repair of ties and person-hash collisions (none can
    occur when the key keeps the ``exact_bits`` top bits of the person hash that tell persons
    apart: see :func:`_person_hash`)."""
    n = placed.height
    perm, grp, gp = _order(pl, low, bits_bp, bits_d, bits_i, n)
    _mark("sort", t0)
    hb = 64 - bits_bp - bits_d - (bits_i if 64 - bits_bp - bits_d - bits_i >= _MIN_HASH_BITS else 0)
    person = placed["person_id"].rechunk()
    if exact_bits is not None and exact_bits <= hb:
        collide = None
    else:
        person_s = person.gather(perm)
        collide = _same_as_previous(pl, grp) & ~_same_as_previous(pl, person_s)
    ids = placed["claim_id"]
    if 64 - bits_bp - bits_d - bits_i >= _MIN_HASH_BITS and ids.null_count() == 0 and ids.is_sorted():
        # claim ids ascend with the row index (numbered exports): a tie on (group hash, day)
        # is already in claim-id order, because the key's low bits are the row index
        fix = pl.zeros(n, pl.Boolean, eager=True)
    else:
        tie = _same_as_previous(pl, gp)
        fix = tie | tie.shift(-1, fill_value=False)
    collided = collide is not None and bool(collide.any())
    if collided:
        fix = fix | grp.is_in(grp.filter(collide).unique().implode())
    _mark("check", t0)
    if fix.any():
        pos = pl.arange(0, n, eager=True, dtype=pl.UInt32).filter(fix)
        sub_perm = perm.gather(pos)
        sub = pl.DataFrame({
            "grp": grp.gather(pos), "person": person.gather(sub_perm), "gp": gp.gather(pos),
            "claim": placed["claim_id"].gather(sub_perm), "perm": sub_perm,
        }).sort("grp", "person", "gp", "claim")
        perm = perm.scatter(pos, sub["perm"])
    _mark("fixup", t0)
    start = ~_same_as_previous(pl, grp)
    if collided:
        # inside a colliding run (whole, contiguous, now sorted by person) a new person starts
        # a new group
        new = _same_as_previous(pl, sub["grp"]) & ~_same_as_previous(pl, sub["person"])
        start = start.scatter(pos.filter(new), True)
    return perm, start


# ----------------------------------------------------------------------------------------------
# placement helpers


#: Version and benefit year come from a table of days when the dates span fewer days than this.
DAY_TABLE_DAYS = 200_000


def _day_tables(pl: Any, t: "_Tables", d0: dt.date, d1: dt.date) -> tuple[Any, Any]:
    """``(version index, benefit year)`` expressions of ``date`` by lookup: for each day from
    ``d0`` to ``d1`` the first version (in :class:`_Tables` order) whose dates hold it, and the
    year of the benefit year that day falls in under that version (null without a version)."""
    versions, years = [], []
    for i in range((d1 - d0).days + 1):
        day = d0 + dt.timedelta(days=i)
        v = next((j for j, rs in enumerate(t.versions)
                  if rs.valid_from <= day and (rs.valid_to is None or day <= rs.valid_to)), None)
        versions.append(v)
        years.append(None if v is None else
                     day.year - (day.month < t.versions[v].benefit_year_start_month))
    day_index = (pl.col("date") - pl.lit(d0)).dt.total_days()
    return (pl.lit(pl.Series(versions, dtype=pl.Int32)).gather(day_index),
            pl.lit(pl.Series(years, dtype=pl.Int32)).gather(day_index))


#: Tables of at most this many entries are looked up by comparisons instead of a gather: a
#: gather first converts and bounds-checks its whole index column, which costs more than a few
#: comparisons (at 10 M rows about 0.02–0.06 s against 0.007 s for three entries).
SMALL_TABLE = 4


def _lookup(pl: Any, values: list[Any], index: Any, dtype: Any) -> Any:
    """``values[index]`` as an expression (null where ``index`` is null): a literal when all
    values agree, comparisons for a small table, else a gather."""
    if len(set(values)) == 1 and values[0] is not None:
        return pl.when(index.is_not_null()).then(pl.lit(values[0], dtype))
    if len(values) <= SMALL_TABLE:
        e: Any = pl
        for i, v in enumerate(values):
            e = e.when(index == i).then(pl.lit(v, dtype))
        return e.otherwise(pl.lit(None, dtype))
    return pl.lit(pl.Series(values, dtype=dtype)).gather(index)


def _codes(pl: Any, col: Any, names: list[str]) -> Any:
    """Known names → 0..n−1, null → n, any other value → n+1 (see :class:`_Tables`)."""
    n = len(names)
    if not names:
        return pl.when(col.is_null()).then(pl.lit(0, pl.Int32)).otherwise(pl.lit(1, pl.Int32))
    if n <= 8:
        e = pl.when(col.is_null()).then(pl.lit(n, pl.Int32))
        for i, name in enumerate(names):
            e = e.when(col == name).then(pl.lit(i, pl.Int32))
        return e.otherwise(pl.lit(n + 1, pl.Int32))
    return (
        pl.when(col.is_null()).then(pl.lit(n, pl.Int32))
        .otherwise(col.replace_strict(names, list(range(n)), default=n + 1, return_dtype=pl.Int32))
    )


#: stands for the date in the engine's "no version" message, replaced by each row's date
_DATE = "\x00DATE\x00"


def _rejects(pl: Any, bad: "pl.DataFrame", rules: RuleBook, t: _Tables) -> "pl.DataFrame":
    """The rows no version covers (field ``date``) or no plan matches (``group/kind``), with
    the engine's own messages (:func:`medaid.domain.engine.no_version` / ``no_plan``)."""
    pre, post = no_version(rules, _DATE, "").message.split(_DATE)
    cols = bad.columns
    g = pl.col("group") if "group" in cols else pl.lit(None, dtype=pl.String)
    k = pl.col("kind") if "kind" in cols else pl.lit(None, dtype=pl.String)
    base = bad.select("row", "claim_id", "__v", g.alias("__g"), k.alias("__k"), pl.col("date"))
    keys = base.filter(pl.col("__v").is_not_null()).select("__v", "__g", "__k").unique()
    msgs = [
        no_plan(t.versions[vv], gg, kk, "").message
        for vv, gg, kk in keys.iter_rows()
    ]
    table = keys.with_columns(pl.Series("__m", msgs, dtype=pl.String))
    out = base.join(table, on=["__v", "__g", "__k"], how="left", nulls_equal=True, maintain_order="left")
    return out.select(
        pl.col("row"),
        pl.col("claim_id"),
        pl.when(pl.col("__v").is_null()).then(pl.lit("date")).otherwise(pl.lit("group/kind")).alias("field"),
        pl.when(pl.col("__v").is_null())
        .then(pl.concat_str(pl.lit(pre), pl.col("date").cast(pl.String), pl.lit(post)))
        .otherwise(pl.col("__m")).alias("message"),
    )


def _as_codes(pl: Any, placed: "pl.DataFrame", v: Any, t: _Tables) -> "pl.DataFrame":
    """``group`` and ``kind`` written as their codes where a row names them by an alias
    (``特困人员`` → ``key``), by the version each row is settled under
    (:meth:`medaid.domain.rules.RuleSet.codes`, as the engine and the desk record them).  Looks at the
    distinct values first: a file that writes codes only is left as it is."""
    for col, code_of in (("group", "group_code"), ("kind", "kind_code")):
        if col not in placed.columns:
            continue
        values = placed[col].unique().cast(pl.String).drop_nulls().to_list()
        if all(getattr(rs, code_of)(x) == x for rs in t.versions for x in values):
            continue
        pairs = pl.DataFrame({"v": v, "x": placed[col].cast(pl.String)}).unique().drop_nulls()
        moved = [(vv, x, getattr(t.versions[vv], code_of)(x)) for vv, x in pairs.iter_rows()]
        moved = [m for m in moved if m[2] != m[1]]
        if not moved:
            continue
        text = pl.col(col).cast(pl.String)
        e: Any = None
        for vv, x, code in moved:
            cond = (pl.lit(v) == vv) & (text == x)
            e = pl.when(cond).then(pl.lit(code)) if e is None else e.when(cond).then(pl.lit(code))
        new = placed.select(e.otherwise(text).alias(col)).to_series()
        placed = placed.with_columns(new.cast(placed.schema[col]) if placed.schema[col] == pl.Categorical
                                     else new)
    return placed


def _over_limit(pl: Any, frame: "pl.DataFrame") -> tuple["pl.DataFrame", "pl.DataFrame | None"]:
    """Rows whose self-pay is not an amount medaid reads (negative, or above
    :data:`medaid.money.MAX_FEN`), as rejects naming ``self_pay``, and the frame without them.
    Files are checked when read; this guards frames given to :func:`settle_frame` directly
    (the Python API, Spark), so that no sum can leave 64-bit integers."""
    if not frame.height:
        return frame, None
    lo, hi = frame.select(pl.col("self_pay").min().alias("a"), pl.col("self_pay").max().alias("b")).row(0)
    if (lo is None or lo >= 0) and (hi is None or hi <= MAX_FEN):
        return frame, None
    s = pl.col("self_pay")
    bad = (s < 0) | (s > MAX_FEN)
    over = frame.filter(bad).select(
        pl.col("row"), pl.col("claim_id"), pl.lit("self_pay").alias("field"),
        pl.when(s < 0).then(pl.lit("must not be negative")).otherwise(pl.lit(too_large())).alias("message"))
    return frame.filter(~bad), over


def _empty_rejects(pl: Any) -> "pl.DataFrame":
    return empty_rejects()


# ----------------------------------------------------------------------------------------------
# ordering


def _person_hash(pl: Any, frame: "pl.DataFrame") -> tuple[Any, int | None]:
    """A 64-bit hash of the person id, of which only the top bits enter the sort key, and how
    many top bits tell persons apart exactly (``None``: a real hash, which may collide).
    Collisions are found and repaired exactly after the sort, so the hash's quality affects
    speed, never results.

    Person ids kept as categories already have a small distinct integer each: that code, moved
    to the top bits (no text is hashed; while the key keeps all its bits nothing can collide,
    and the collision check is skipped)."""
    col = frame["person_id"]
    if isinstance(col.dtype, pl.Categorical) and not col.null_count():  # (null has no code)
        bits = max(1, int(col.to_physical().max() or 0).bit_length())
        return pl.col("person_id").to_physical().cast(pl.UInt64) * (1 << (64 - bits)), bits
    return pl.col("person_id").hash(_SEED), None


def _order(pl: Any, low: "pl.DataFrame", bits_bp: int, bits_d: int, bits_i: int, n: int) -> tuple[Any, Any, Any]:
    """A permutation putting rows in (group hash, day) order, with the group part ``grp``
    (person hash and (benefit year, pool)) and ``gp`` (``grp`` and day) of each sorted row.

    With enough bits, the row index rides in the low bits of one ``UInt64`` key and a plain
    (radix) sort does the work; otherwise an ``arg_sort`` of the key without the index."""
    hb = 64 - bits_bp - bits_d - bits_i
    h, bp, d = pl.col("h"), pl.col("bp").cast(pl.UInt64), pl.col("d").cast(pl.UInt64)
    if hb >= _MIN_HASH_BITS:
        # (elementwise work runs on the streaming engine: in parallel, morsel by morsel)
        key = low.lazy().with_row_index("__i").select(
            (h // (1 << (64 - hb))) * (1 << (64 - hb))
            + bp * (1 << (bits_d + bits_i))
            + d * (1 << bits_i)
            + pl.col("__i").cast(pl.UInt64)
        ).collect(engine="streaming").to_series().sort()
        k = pl.col(key.name)
        parts = key.to_frame().lazy().select(
            (k & ((1 << bits_i) - 1)).cast(pl.UInt32).alias("perm"),
            (k // (1 << (bits_i + bits_d))).alias("grp"),
            (k // (1 << bits_i)).alias("gp"),
        ).collect(engine="streaming")
        return parts["perm"], parts["grp"], parts["gp"]
    hb = 64 - bits_bp - bits_d
    if hb < 16:
        raise ClaimError(Problem(
            "dates or benefit years span too wide a range for one batch; split the file by year",
            field="date"))
    key = low.select(
        (h // (1 << (64 - hb))) * (1 << (64 - hb)) + bp * (1 << bits_d) + d
    ).to_series()
    perm = key.arg_sort().cast(pl.UInt32)
    gp = key.gather(perm)
    return perm, gp // (1 << bits_d), gp


def _same_as_previous(pl: Any, s: Any) -> Any:
    """Whether each element equals the one before it (the first: False); compares two
    zero-copy slices instead of materialising a shifted copy."""
    if len(s) == 0:
        return pl.Series([], dtype=pl.Boolean)
    eq = s.slice(1) == s.slice(0, len(s) - 1)
    return pl.concat([pl.Series([False]), eq.fill_null(False)])


def _inverse(pl: Any, perm: Any, n: int) -> Any:
    """The inverse permutation: ``inv[perm[k]] = k`` (one scatter)."""
    return pl.zeros(n, pl.UInt32, eager=True).scatter(perm, pl.int_range(0, n, dtype=pl.UInt32, eager=True))


def _unpermute(pl: Any, held: list["pl.DataFrame"], inv: Any) -> "pl.DataFrame":
    """Results in processing order (``held[0]``, taken out) → input order: a gather of each
    result column by the inverse permutation ``inv`` (:func:`_inverse`)."""
    # Each column is made one chunk first: the streaming arithmetic leaves one per morsel, and
    # a gather from many chunks looks each index's chunk up (at 10 M rows, 0.7 s for the six
    # columns against 0.35 s).  Two columns at a time (gathered in parallel), each one freed
    # once put back: peak memory grows by two columns, not by a copy of all of them.
    cols = held.pop().get_columns()
    done: list[Any] = []
    while cols:
        pair, cols = cols[:2], cols[2:]
        done.extend(pl.DataFrame([c.rechunk() for c in pair]).select(pl.all().gather(inv)).get_columns())
        del pair
    return pl.DataFrame(done)


# ----------------------------------------------------------------------------------------------
# arithmetic


#: The arithmetic runs on slices of about this many rows, cut at group starts: its
#: intermediate columns then never exist for the whole frame at once (peak memory).
SLICE_ROWS = 1 << 21


#: From this many rows on, the slices are worked on in parallel, at least one per core: the
#: prefix sums inside one slice run on one core.  Below it one slice is quicker (measured on
#: 2 cores: at 1 M rows 0.046 s against 0.058 s in two; at 10 M, 0.49 s in one against 0.44 s).
PARALLEL_ROWS = 1 << 21


def _arithmetic_in_slices(pl: Any, work: "pl.DataFrame", t: _Tables) -> tuple["pl.DataFrame", Any]:
    """:func:`_arithmetic` on consecutive slices of ``work``, each starting at a group start
    (groups are never split, and every sum and flag is per group, so the results are the
    same), results joined in order.  Slices of a large frame are worked on two at a time (or
    as many as polars has threads), in parallel: polars works without the interpreter lock."""
    from concurrent.futures import ThreadPoolExecutor

    n = work.height
    cores = max(1, min(pl.thread_pool_size(), 8))
    pieces = -(-n // SLICE_ROWS)
    if n >= PARALLEL_ROWS:
        pieces = max(pieces, cores)
    if pieces <= 1:
        return _arithmetic(pl, work, t)
    size = -(-n // pieces)
    starts = work["b"].arg_true()
    cuts = [0]
    for want in range(size, n, size):
        i = int(starts.search_sorted(want, side="left"))
        at = int(starts[i]) if i < len(starts) else n
        if cuts[-1] < at < n:
            cuts.append(at)
    cuts.append(n)
    with ThreadPoolExecutor(cores, thread_name_prefix="medaid-settle") as pool:
        done = list(pool.map(lambda lh: _arithmetic(pl, work.slice(lh[0], lh[1] - lh[0]), t),
                             zip(cuts, cuts[1:])))
    parts, flags = [], []
    for (lo, hi), (res, seq) in zip(zip(cuts, cuts[1:]), done):
        parts.append(res)
        flags.append(seq if seq is not None else pl.zeros(hi - lo, pl.Boolean, eager=True))
    seq_all = pl.concat(flags)
    return pl.concat(parts), (seq_all if seq_all.any() else None)


def _arithmetic(pl: Any, work: "pl.DataFrame", t: _Tables) -> tuple["pl.DataFrame", Any]:
    """Relief of every row in processing order; also which rows need the sequential path.

    ``work`` holds ``s`` (self-pay), ``p`` (plan index) and ``b`` (first row of its group).
    Every per-plan parameter that is the same for all plans becomes a constant of the
    expression (and branches that cannot occur are left out), so the common case of one
    rounding rule, open last brackets and no gate costs a handful of column operations."""
    n = work.height
    s_max = work["s"].max()
    assert isinstance(s_max, int)
    if s_max * n >= _SAFE:
        # absurd amounts: every group goes through the exact sequential path
        return _blank(pl, n), pl.Series([True] * n)
    s, p, b = pl.col("s"), pl.col("p"), pl.col("b")
    plans = t.plans
    scheds = [x.schedule for x in plans]
    big = 2**63 - 1

    def param(values: list[Any], dtype: Any = pl.Int64) -> Any:
        """A Python constant when every plan agrees, else a per-row lookup by plan."""
        if len(set(values)) == 1:
            return values[0]
        return _lookup(pl, values, p, dtype)

    def lit(v: Any) -> Any:
        return v if _is_expr(pl, v) else pl.lit(v)

    # segmented cumulative self-pay C_k: global prefix sum minus the sum before the group
    cs = s.cum_sum()
    C = (cs - pl.when(b).then(cs - s).otherwise(None).forward_fill()).alias("C")
    year = param([x.accumulate == "year" for x in scheds], pl.Boolean)
    any_year = any(x.accumulate == "year" for x in scheds)
    if _is(pl, year, True):
        x_to, x_from = pl.col("C"), pl.col("C") - s
    elif _is(pl, year, False):
        x_to, x_from = s, None
    else:
        x_to, x_from = pl.when(year).then(pl.col("C")).otherwise(s), pl.when(year).then(pl.col("C") - s).otherwise(0)
    c_max = int(s_max) * n  # C_k ≤ Σ s ≤ max(s)·n < 2**62
    if max(abs(c) for c in t.piece_icpt) >= _SAFE:
        return _blank(pl, n), pl.Series([True] * n)
    num_s = pl.Series(t.piece_num, dtype=pl.Int64)
    icpt_s = pl.Series(t.piece_icpt, dtype=pl.Int64)
    gate = param([x.table.gate for x in scheds])
    step = param([r.step for r in t.rounding])
    unit = param([r.unit for r in t.rounding])
    offset = param([r.offset for r in t.rounding])
    to_even = param([r.ties_to_even for r in t.rounding], pl.Boolean)
    # the i-th piece's lower bound of each plan (i ≥ 1; beyond a plan's last piece: never)
    by_plan: list[list[int]] = [[] for _ in plans]
    for lo, i in zip(t.piece_lo, t.plan_of_piece):
        by_plan[i].append(lo)
    deepest = max(len(x) for x in by_plan)
    bounds = [param([x[i] if i < len(x) else big for x in by_plan]) for i in range(1, deepest)]
    piece0 = param([t.plan_of_piece.index(i) for i in range(len(plans))])

    def piece_of(x: Any) -> Any:
        """Global index of the piece containing ``x``: the plan's threshold piece plus how many
        of its brackets' lower bounds ``x`` exceeds (the first) or reaches (the others, as
        ``bisect_right``)."""
        j = lit(piece0).cast(pl.Int64)
        for i, lo in enumerate(bounds):
            j = j + ((x > lit(lo)) if i == 0 else (x >= lit(lo))).cast(pl.Int64)
        return j

    def r_of_f(x: Any, j: Any) -> Any:
        """``R(f(x))`` in fen: the exact scaled value ``icpt + num·x`` ≥ 0, then
        :class:`medaid.money.RoundingStep`'s integer division ``⌊(v + offset) / step⌋``, less
        one on an exact tie that lands odd when it rounds ties to even."""
        v = pl.lit(icpt_s).gather(j) + pl.lit(num_s).gather(j) * x
        if _is(pl, step, 1):
            rounded = v
        else:
            w = v if _is(pl, offset, 0) else v + offset
            q = w // step
            if not _is(pl, to_even, False):
                tie = (w % step == 0) & (q % 2 == 1)
                if _is_expr(pl, to_even):
                    tie = tie & to_even
                q = q - tie.cast(pl.Int64)
            rounded = q * unit
        if _is(pl, gate, 0):
            return rounded
        return pl.when(x < gate).then(0).otherwise(rounded)

    xt, jt = pl.col("__xt"), pl.col("__jt")
    # (the piece index unsigned: the gathers by it then need no conversion of their index)
    stage1 = [x_to.alias("__xt"), piece_of(x_to).cast(pl.UInt32).alias("__jt")]
    bracket = _lookup(pl, t.piece_bracket, jt, pl.Int8)
    if t.piece_bracket_at_lo != t.piece_bracket:
        # a base exactly at its piece's lower bound (marginal: 10,000 yuan is bracket 1)
        at_lo = _lookup(pl, t.piece_bracket_at_lo, jt, pl.Int8)
        bracket = pl.when(xt == _lookup(pl, t.piece_lo, jt, pl.Int64)).then(at_lo).otherwise(bracket)
    if not _is(pl, gate, 0):
        bracket = pl.when(xt < gate).then(pl.lit(0, pl.Int8)).otherwise(bracket)
    seq_flags: list[Any] = []
    safe = [t.safe_base(i) for i in range(len(plans))]
    if min(safe) < c_max:
        seq_flags.append(xt > lit(param(safe)))

    # caps: r' = max(0, min(inc, claim_cap, s)); with a constant annual cap A in a group,
    # G_k = min(A, P_k) where P_k = Σ r'
    cc = param([x.plan.claim_cap if x.plan.claim_cap is not None else big for x in plans])
    annual = param([x.plan.annual_cap if x.plan.annual_cap is not None else big for x in plans])
    inc_c = pl.col("inc")
    rp = inc_c if _is(pl, cc, big) else pl.min_horizontal(inc_c, lit(cc))
    rp = pl.max_horizontal(pl.min_horizontal(rp, s), 0).alias("__r")
    r = pl.col("__r")
    ps = r.cum_sum()
    P = (ps - pl.when(b).then(ps - r).otherwise(None).forward_fill()).alias("__P")
    front = (
        work.lazy().with_columns(C).with_columns(stage1)
        .with_columns(r_of_f(xt, jt).alias("__rt"), bracket.alias("bracket"),
                      *[f.alias(f"__seq{i}") for i, f in enumerate(seq_flags)])
        .collect(engine="streaming")
    )
    if any_year:
        # year mode subtracts R(f(C_{k−1})): 0 at a group's first claim (f(0) = 0), and the
        # previous claim's R(f(C)) when that claim used the same plan; computed afresh only
        # where the plan changes inside a group (another plan of the pool, a new version)
        rt = pl.col("__rt")
        front = front.with_columns(
            pl.when(b).then(0).when(p == p.shift(1)).then(rt.shift(1)).otherwise(None).alias("__back")
        )
        need = front["__back"].is_null()
        if not _is(pl, year, True):
            need = need & front.select(year if _is_expr(pl, year) else pl.lit(year)).to_series()
        if need.any():
            at = pl.int_range(0, n, dtype=pl.UInt32, eager=True).filter(need)
            xf = pl.col("C") - s
            again = front.filter(need).select(r_of_f(xf, piece_of(xf))).to_series()
            front = front.with_columns(front["__back"].scatter(at, again))
        back = pl.col("__back")
        inc = rt - (back if _is(pl, year, True) else pl.when(year).then(back).otherwise(0))
    else:
        inc = pl.col("__rt")
    lazy = front.lazy().with_columns(inc.alias("inc")).with_columns(rp).with_columns(P)
    pool_caps: dict[str, set[int | None]] = {}
    for x in plans:
        pool_caps.setdefault(x.plan.pool, set()).add(x.plan.annual_cap)
    if any(len(v) > 1 for v in pool_caps.values()):
        # the annual cap must be one value throughout a group for the prefix-sum form
        a_col = pl.col("__A")
        lazy = lazy.with_columns(lit(annual).alias("__A")).with_columns(
            ((~b) & (a_col != a_col.shift(1))).alias(f"__seq{len(seq_flags)}"))
        seq_flags.append(None)
    if _is(pl, annual, big):
        lazy = lazy.with_columns(pl.col("__P").alias("ytd_relief"), (pl.col("__P") - r).alias("__Gp"))
    else:
        A = lit(annual)
        lazy = lazy.with_columns(
            pl.min_horizontal(A, pl.col("__P")).alias("ytd_relief"),
            pl.min_horizontal(A, pl.col("__P") - r).alias("__Gp"),
        )
    # capped_by, the engine's precedence: annual, then claim, then self-pay; the last wins
    room = None if _is(pl, annual, big) else (lit(annual) - pl.col("__Gp"))
    t1 = inc_c if room is None else pl.min_horizontal(inc_c, room)
    t2 = t1 if _is(pl, cc, big) else pl.min_horizontal(t1, lit(cc))
    capped: Any = pl.when(s < t2).then(pl.lit(3, pl.Int8))
    if not _is(pl, cc, big):
        capped = capped.when(lit(cc) < t1).then(pl.lit(2, pl.Int8))
    if room is not None:
        capped = capped.when(room < inc_c).then(pl.lit(1, pl.Int8))
    capped = capped.otherwise(pl.lit(0, pl.Int8))
    seq = pl.any_horizontal([pl.col(f"__seq{i}") for i in range(len(seq_flags))]) if seq_flags else pl.lit(False)
    res = lazy.select(
        (pl.col("ytd_relief") - pl.col("__Gp")).alias("relief"),
        pl.col("inc").alias("bracket_relief"),
        capped.alias("capped"),
        "bracket",
        pl.col("C").alias("ytd_self_pay"),
        "ytd_relief",
        seq.alias("__seq"),
    ).collect(engine="streaming")
    flag = res["__seq"]
    res = res.drop("__seq")
    return res, (flag if flag.any() else None)


def _is_expr(pl: Any, v: Any) -> bool:
    return isinstance(v, pl.Expr)


def _is(pl: Any, v: Any, const: Any) -> bool:
    """Whether a parameter is the Python constant ``const`` (not a per-row expression)."""
    return not isinstance(v, pl.Expr) and v == const and type(v) is type(const)


def _blank(pl: Any, n: int) -> "pl.DataFrame":
    z = pl.Series([0] * n, dtype=pl.Int64)
    return pl.DataFrame({
        "relief": z, "bracket_relief": z, "capped": z.cast(pl.Int8), "bracket": z.cast(pl.Int8),
        "ytd_self_pay": z, "ytd_relief": z,
    })


def _sequential(pl: Any, res: "pl.DataFrame", work: "pl.DataFrame", flag: Any, t: _Tables) -> "pl.DataFrame":
    """Settle the groups holding a flagged row one claim at a time with the scalar engine's
    per-claim function (:meth:`medaid.domain.brackets.Schedule.relieve_raw`), exact Python integers.

    Used where the prefix-sum form does not hold (the annual cap changes inside a group) or
    where int64 could overflow."""
    gid = work["b"].cum_sum()
    bad_groups = gid.filter(flag).unique()
    rows = pl.DataFrame({"i": pl.int_range(0, work.height, eager=True, dtype=pl.UInt32), "gid": gid}).filter(
        pl.col("gid").is_in(bad_groups.implode())
    )["i"]
    s_list = work["s"].gather(rows).to_list()
    p_list = work["p"].gather(rows).to_list()
    b_list = work["b"].gather(rows).to_list()
    relief, inc, capped, bracket, ytd_c, ytd_g = [], [], [], [], [], []
    code = {None: 0, CAP_ANNUAL: 1, CAP_CLAIM: 2, CAP_SELF_PAY: 3}
    c = g = 0
    for s, p, b in zip(s_list, p_list, b_list):
        if b:
            c = g = 0
        sched = t.plans[p].schedule
        r, i, cb, _, base_to = sched.relieve_raw(s, c, g)
        c += s
        g += r
        if c >= 2**63:
            raise ClaimError(Problem(
                "the year-to-date self-pay of this person's pool exceeds what can be recorded",
                field="self_pay"))
        relief.append(r)
        inc.append(i)
        capped.append(code[cb])
        bracket.append(sched.bracket_reached(base_to))
        ytd_c.append(c)
        ytd_g.append(g)
    updates = {
        "relief": (relief, pl.Int64), "bracket_relief": (inc, pl.Int64), "capped": (capped, pl.Int8),
        "bracket": (bracket, pl.Int8), "ytd_self_pay": (ytd_c, pl.Int64), "ytd_relief": (ytd_g, pl.Int64),
    }
    return res.with_columns(
        res[name].scatter(rows, pl.Series(vals, dtype=dtype)) for name, (vals, dtype) in updates.items()
    )


# ----------------------------------------------------------------------------------------------
# output


def _finish(
    pl: Any, out: "pl.DataFrame", keys: "pl.DataFrame", t: _Tables, res: "pl.DataFrame | None",
    compact: bool,
) -> "pl.DataFrame":
    """Input columns, then :data:`medaid.io.columns.RESULT_FIELDS`, in input order."""
    keep = [c for c in out.columns if c not in RESULT_FIELDS]
    p = keys["__p"].rechunk()

    def text(values: list[str | None]) -> Any:
        if compact:
            return pl.Series(values, dtype=pl.Enum(sorted({v for v in values if v is not None})))
        return pl.Series(values, dtype=pl.String)

    def by_plan(values: list[str]) -> Any:
        return _lookup(pl, list(values), pl.col("__p"), text(list(values)).dtype)

    if res is None:
        res = _blank(pl, 0)
    # the result columns in one parallel pass over the plan index and the results
    parts = pl.DataFrame([p.alias("__p"), keys["__by"].alias("__by"), out["self_pay"].alias("__s"),
                          *res.get_columns()])
    extra = parts.lazy().select(
        by_plan([x.plan.name for x in t.plans]).alias("plan"),
        by_plan([x.plan.pool for x in t.plans]).alias("pool"),
        pl.col("__by").cast(pl.Int32).alias("benefit_year"),
        pl.col("relief"),
        (pl.col("__s") - pl.col("relief")).alias("patient_pays"),
        pl.col("bracket_relief"),
        _lookup(pl, list(CAPPED_BY), pl.col("capped"), text(list(CAPPED_BY)).dtype).alias("capped_by"),
        pl.col("bracket"),
        pl.col("ytd_self_pay"),
        pl.col("ytd_relief"),
        by_plan([x.rule_set.id for x in t.plans]).alias("rule_set_id"),
        by_plan([x.rule_set.version for x in t.plans]).alias("rule_version"),
        by_plan([x.rule_set.content_hash for x in t.plans]).alias("rule_hash"),
    ).collect(engine="streaming")
    del parts
    if len(keep) < out.width:  # selecting realigns (copies) every column: only when needed
        out = out.select(keep)
    return out.with_columns(extra.get_columns())

"""The arithmetic, columnar: every row's relief in processing order, as the scalar engine's
per-claim function gives it (docs/calculation.md, *Accumulation*, *Caps*; how and why it is
exact, docs/columnar.md, steps 4 to 6).

An evaluator of the domain's one definitions, none re-derived: the bracket function is each
plan's :class:`medaid.domain.brackets.BracketTable` (``f(x)·S = icpt[j] + num[j]·x`` on the
piece ``j`` holding ``x``), rounding is :func:`medaid.money.rounding_step`'s integer division,
and the groups this form cannot settle go through the engine's own
:meth:`medaid.domain.brackets.Schedule.relieve_raw` (:func:`sequential`).

With ``r'_k = max(0, min(inc_k, claim_cap, s_k))`` and a constant annual cap ``A`` in a group,
``G_k = min(A, Σ_{j≤k} r'_j)``, so relief is ``min(A, P_k) − min(A, P_{k−1})``: segmented
prefix sums, no sequential pass.  Groups whose annual cap changes within the group (two
versions with different caps in one benefit year) or whose amounts could overflow 64-bit
arithmetic are settled by :func:`sequential`, in Python.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import polars as pl

from ..domain.brackets import CAP_ANNUAL, CAP_CLAIM, CAP_SELF_PAY
from ..errors import ClaimError, Problem
from ..tuning import arithmetic_slices, in_parallel
from .tables import DType, PlanTables, lookup

#: ``capped_by`` codes used inside frames (0 = none).
CAPPED_BY = (None, CAP_ANNUAL, CAP_CLAIM, CAP_SELF_PAY)
#: The columns :func:`relieve` gives, in this order: each result field's source (``capped`` is
#: ``capped_by``'s code; ``relief`` always, the others when asked: :func:`outputs`).
OUTPUTS = ("relief", "bracket_relief", "capped", "bracket", "ytd_self_pay", "ytd_relief")
#: Products and sums are kept below this bound so that int64 arithmetic never wraps.
SAFE = 2**62
_BIG = 2**63 - 1

#: A per-plan parameter: a Python constant when every plan agrees, else a per-row expression.
Param = Any


def outputs(need: Collection[str] | None) -> tuple[str, ...]:
    """The columns of :data:`OUTPUTS` the result fields ``need`` read (``None``: every one):
    ``relief`` always, ``capped`` for ``capped_by``, each other for the field of its name."""
    if need is None:
        return OUTPUTS
    return tuple(c for c in OUTPUTS if c == "relief" or ("capped_by" if c == "capped" else c) in need)


def in_slices(work: pl.DataFrame, t: PlanTables,
              need: Collection[str] | None = None) -> tuple[pl.DataFrame, pl.Series | None]:
    """:func:`relieve` on consecutive slices of ``work``, each starting at a group start
    (groups are never split, and every sum and flag is per group, so the results are the
    same), results joined in order; how many slices and how many at once:
    :func:`medaid.tuning.arithmetic_slices` (polars works without the interpreter lock).
    ``need``: the result fields wanted (:func:`outputs`)."""
    n = work.height
    pieces, workers = arithmetic_slices(n, pl.thread_pool_size())
    if pieces <= 1:
        return relieve(work, t, need)
    size = -(-n // pieces)
    starts = work["b"].arg_true()
    cuts = [0]
    for want in range(size, n, size):
        i = int(starts.search_sorted(want, side="left"))
        at = int(starts[i]) if i < len(starts) else n
        if cuts[-1] < at < n:
            cuts.append(at)
    cuts.append(n)
    bounds = list(zip(cuts, cuts[1:]))
    done = in_parallel(lambda lh: relieve(work.slice(lh[0], lh[1] - lh[0]), t, need), bounds,
                       workers=workers, name="medaid-settle")
    parts, flags = [], []
    for (lo, hi), (res, seq) in zip(bounds, done):
        parts.append(res)
        flags.append(seq if seq is not None else pl.zeros(hi - lo, pl.Boolean, eager=True))
    seq_all = pl.concat(flags)
    return pl.concat(parts), (seq_all if seq_all.any() else None)


def safe_base(t: PlanTables, i: int) -> int:
    """The largest base ``x`` for which plan ``i``'s ``icpt + num·x`` stays within ±:data:`SAFE`."""
    nums = [n for n, p in zip(t.piece_num, t.plan_of_piece) if p == i]
    icpts = [abs(c) for c, p in zip(t.piece_icpt, t.plan_of_piece) if p == i]
    return (SAFE - max(icpts)) // max(max(nums), 1)


def relieve(work: pl.DataFrame, t: PlanTables,
            need: Collection[str] | None = None) -> tuple[pl.DataFrame, pl.Series | None]:
    """Relief of every row in processing order; also which rows need the sequential path.

    ``work`` holds ``s`` (self-pay), ``p`` (plan index; left out when ``t`` has one plan:
    every row's is 0) and ``b`` (first row of its group), and
    optionally ``c0`` and ``g0``: the group's opening self-pay and relief (the same on every row
    of a group; docs/batch.md, *Opening balances*), which ``C`` and ``G`` start from.
    Every per-plan parameter that is the same for all plans becomes a constant of the
    expression (and branches that cannot occur are left out), so the common case of one
    rounding rule, open last brackets and no gate costs a handful of column operations.

    ``need``: the result fields wanted (``None``: all); only the columns of :data:`OUTPUTS`
    they read are given (:func:`outputs`), and the work no other column needs is left out: the
    bracket reached, and in ``claim`` mode the year-to-date self-pay (``--columns``,
    docs/batch.md *Output files*).  The relief is the same either way."""
    n = work.height
    cols = outputs(need)
    s_max = work["s"].max()
    assert isinstance(s_max, int)
    seeded = "c0" in work.columns
    c0_max = g0_max = 0
    if seeded:
        c0_max, g0_max = (int(work[c].abs().max() or 0) for c in ("c0", "g0"))  # type: ignore[arg-type]
    if s_max * n + max(c0_max, g0_max) >= SAFE:
        # absurd amounts: every group goes through the exact sequential path
        return blank(n, cols), pl.Series([True] * n)
    s, p, b = pl.col("s"), pl.col("p"), pl.col("b")
    plans = t.plans
    scheds = [x.schedule for x in plans]

    def param(values: list[Any], dtype: DType = pl.Int64) -> Param:
        """A Python constant when every plan agrees, else a per-row lookup by plan."""
        if len(set(values)) == 1:
            return values[0]
        return lookup(values, p, dtype)

    # segmented cumulative self-pay C_k: global prefix sum minus the sum before the group
    cs = s.cum_sum()
    C = cs - pl.when(b).then(cs - s).otherwise(None).forward_fill()
    if seeded:
        C = C + pl.col("c0")
    C = C.alias("C")
    year = param([x.accumulate == "year" for x in scheds], pl.Boolean)
    any_year = any(x.accumulate == "year" for x in scheds)
    x_to: pl.Expr
    if _is(year, True):
        x_to = pl.col("C")
    elif _is(year, False):
        x_to = s
    else:
        x_to = pl.when(year).then(pl.col("C")).otherwise(s)
    c_max = int(s_max) * n + c0_max  # C_k ≤ c0 + Σ s ≤ c0 + max(s)·n < 2**62
    if max(abs(c) for c in t.piece_icpt) >= SAFE:
        return blank(n, cols), pl.Series([True] * n)
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
    bounds = [param([x[i] if i < len(x) else _BIG for x in by_plan]) for i in range(1, deepest)]
    piece0 = param([t.plan_of_piece.index(i) for i in range(len(plans))])

    def piece_of(x: pl.Expr) -> pl.Expr:
        """Global index of the piece containing ``x``: the plan's threshold piece plus how many
        of its brackets' lower bounds ``x`` exceeds (the first) or reaches (the others, as
        ``bisect_right``)."""
        j = _lit(piece0).cast(pl.Int64)
        for i, lo in enumerate(bounds):
            j = j + ((x > _lit(lo)) if i == 0 else (x >= _lit(lo))).cast(pl.Int64)
        return j

    def r_of_f(x: pl.Expr, j: pl.Expr) -> pl.Expr:
        """``R(f(x))`` in fen: the exact scaled value ``icpt + num·x`` ≥ 0, then
        :class:`medaid.money.RoundingStep`'s integer division ``⌊(v + offset) / step⌋``, less
        one on an exact tie that lands odd when it rounds ties to even."""
        v = pl.lit(icpt_s).gather(j) + pl.lit(num_s).gather(j) * x
        if _is(step, 1):
            rounded = v
        else:
            w = v if _is(offset, 0) else v + offset
            q = w // step
            if not _is(to_even, False):
                tie = (w % step == 0) & (q % 2 == 1)
                if isinstance(to_even, pl.Expr):
                    tie = tie & to_even
                q = q - tie.cast(pl.Int64)
            rounded = q * unit
        if _is(gate, 0):
            return rounded
        return pl.when(x < gate).then(0).otherwise(rounded)

    xt, jt = pl.col("__xt"), pl.col("__jt")
    # (the piece index unsigned: the gathers by it then need no conversion of their index)
    stage1 = [x_to.alias("__xt"), piece_of(x_to).cast(pl.UInt32).alias("__jt")]
    bracket = lookup(t.piece_bracket, jt, pl.Int8)
    if t.piece_bracket_at_lo != t.piece_bracket:
        # a base exactly at its piece's lower bound (marginal: 10,000 yuan is bracket 1)
        at_lo = lookup(t.piece_bracket_at_lo, jt, pl.Int8)
        bracket = pl.when(xt == lookup(t.piece_lo, jt, pl.Int64)).then(at_lo).otherwise(bracket)
    if not _is(gate, 0):
        bracket = pl.when(xt < gate).then(pl.lit(0, pl.Int8)).otherwise(bracket)
    seq_flags: list[pl.Expr | None] = []
    safe = [safe_base(t, i) for i in range(len(plans))]
    if min(safe) < c_max:
        seq_flags.append(xt > _lit(param(safe)))

    # caps: r' = max(0, min(inc, claim_cap, s)); with a constant annual cap A in a group,
    # G_k = min(A, P_k) where P_k = Σ r'
    cc = param([x.plan.claim_cap if x.plan.claim_cap is not None else _BIG for x in plans])
    annual = param([x.plan.annual_cap if x.plan.annual_cap is not None else _BIG for x in plans])
    inc_c = pl.col("inc")
    rp = inc_c if _is(cc, _BIG) else pl.min_horizontal(inc_c, _lit(cc))
    rp = pl.max_horizontal(pl.min_horizontal(rp, s), 0).alias("__r")
    r = pl.col("__r")
    ps = r.cum_sum()
    P = ps - pl.when(b).then(ps - r).otherwise(None).forward_fill()
    if seeded:
        # G_k = min(A, g0 + Σ r') holds while the opening relief is within the cap (else the
        # group is settled sequentially, below)
        P = P + pl.col("g0")
        seq_flags.append(b & ((pl.col("g0") < 0) | (pl.col("g0") > _lit(annual))))
    P = P.alias("__P")
    # (C is read by year mode and by ytd_self_pay; the bracket by its own column alone)
    need_c = any_year or "ytd_self_pay" in cols
    front = (
        (work.lazy().with_columns(C) if need_c else work.lazy()).with_columns(stage1)
        .with_columns(r_of_f(xt, jt).alias("__rt"), *([bracket.alias("bracket")] if "bracket" in cols else []),
                      *[f.alias(f"__seq{i}") for i, f in enumerate(seq_flags) if f is not None])
        .collect(engine="streaming")
    )
    inc: pl.Expr
    if any_year:
        # year mode subtracts R(f(C_{k−1})): 0 at a group's first claim (f(0) = 0), and the
        # previous claim's R(f(C)) when that claim used the same plan; computed afresh only
        # where the plan changes inside a group (another plan of the pool, a new version)
        rt = pl.col("__rt")
        same_plan = p == p.shift(1) if "p" in work.columns else pl.lit(True)
        front = front.with_columns(
            pl.when(b & (pl.col("c0") != 0) if seeded else pl.lit(False)).then(None)
            .when(b).then(0).when(same_plan).then(rt.shift(1)).otherwise(None).alias("__back")
        )
        need = front["__back"].is_null()
        if not _is(year, True):
            need = need & front.select(_lit(year)).to_series()
        if need.any():
            at = pl.int_range(0, n, dtype=pl.UInt32, eager=True).filter(need)
            xf = pl.col("C") - s
            again = front.filter(need).select(r_of_f(xf, piece_of(xf))).to_series()
            front = front.with_columns(front["__back"].scatter(at, again))
        back = pl.col("__back")
        inc = rt - (back if _is(year, True) else pl.when(year).then(back).otherwise(0))
    else:
        inc = pl.col("__rt")
    lazy = front.lazy().with_columns(inc.alias("inc")).with_columns(rp).with_columns(P)
    pool_caps: dict[str, set[int | None]] = {}
    for x in plans:
        pool_caps.setdefault(x.plan.pool, set()).add(x.plan.annual_cap)
    if any(len(v) > 1 for v in pool_caps.values()):
        # the annual cap must be one value throughout a group for the prefix-sum form
        a_col = pl.col("__A")
        lazy = lazy.with_columns(_lit(annual).alias("__A")).with_columns(
            ((~b) & (a_col != a_col.shift(1))).alias(f"__seq{len(seq_flags)}"))
        seq_flags.append(None)
    if _is(annual, _BIG):
        lazy = lazy.with_columns(pl.col("__P").alias("ytd_relief"), (pl.col("__P") - r).alias("__Gp"))
    else:
        A = _lit(annual)
        lazy = lazy.with_columns(
            pl.min_horizontal(A, pl.col("__P")).alias("ytd_relief"),
            pl.min_horizontal(A, pl.col("__P") - r).alias("__Gp"),
        )
    # capped_by, the engine's precedence: annual, then claim, then self-pay; the last wins
    room = None if _is(annual, _BIG) else (_lit(annual) - pl.col("__Gp"))
    t1 = inc_c if room is None else pl.min_horizontal(inc_c, room)
    t2 = t1 if _is(cc, _BIG) else pl.min_horizontal(t1, _lit(cc))
    capped: Any = pl.when(s < t2).then(pl.lit(3, pl.Int8))
    if not _is(cc, _BIG):
        capped = capped.when(_lit(cc) < t1).then(pl.lit(2, pl.Int8))
    if room is not None:
        capped = capped.when(room < inc_c).then(pl.lit(1, pl.Int8))
    capped = capped.otherwise(pl.lit(0, pl.Int8))
    seq = pl.any_horizontal([pl.col(f"__seq{i}") for i in range(len(seq_flags))]) if seq_flags else pl.lit(False)
    given = {
        "relief": (pl.col("ytd_relief") - pl.col("__Gp")).alias("relief"),
        "bracket_relief": pl.col("inc").alias("bracket_relief"),
        "capped": capped.alias("capped"),
        "bracket": pl.col("bracket"),
        "ytd_self_pay": pl.col("C").alias("ytd_self_pay"),
        "ytd_relief": pl.col("ytd_relief"),
    }
    res = lazy.select(*(given[c] for c in cols), seq.alias("__seq")).collect(engine="streaming")
    flag = res["__seq"]
    res = res.drop("__seq")
    return res, (flag if flag.any() else None)


def _lit(v: Param) -> pl.Expr:
    return v if isinstance(v, pl.Expr) else pl.lit(v)


def _is(v: Param, const: object) -> bool:
    """Whether a parameter is the Python constant ``const`` (not a per-row expression)."""
    return not isinstance(v, pl.Expr) and v == const and type(v) is type(const)


def blank(n: int, cols: Collection[str] = OUTPUTS) -> pl.DataFrame:
    """``n`` rows of zero results: the columns ``cols`` of those :func:`relieve` gives."""
    z = pl.Series([0] * n, dtype=pl.Int64)
    return pl.DataFrame({c: z.cast(pl.Int8) if c in ("capped", "bracket") else z for c in OUTPUTS if c in cols})


def sequential(res: pl.DataFrame, work: pl.DataFrame, flag: pl.Series, t: PlanTables) -> pl.DataFrame:
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
    p_list = work["p"].gather(rows).to_list() if "p" in work.columns else [0] * len(rows)
    b_list = work["b"].gather(rows).to_list()
    # each group starts at its opening position (docs/batch.md, *Opening balances*), else zero
    zeros = [0] * len(b_list)
    c0_list = work["c0"].gather(rows).to_list() if "c0" in work.columns else zeros
    g0_list = work["g0"].gather(rows).to_list() if "g0" in work.columns else zeros
    relief, inc, capped, bracket, ytd_c, ytd_g = [], [], [], [], [], []
    code = {c: i for i, c in enumerate(CAPPED_BY)}
    c = g = 0
    for s, p, b, c0, g0 in zip(s_list, p_list, b_list, c0_list, g0_list):
        if b:
            c, g = c0, g0
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
        if name in res.columns
    )

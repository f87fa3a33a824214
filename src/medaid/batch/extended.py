"""The batch for rule books that use the rules of docs/calculation.md *Rules real schemes need*
(claim attributes, fixed grants, cap pools per person or household, a second stage): every claim
settled by the scalar engine, :func:`medaid.domain.engine.settle`, inside the batch.

Why the engine and not the columnar arithmetic (docs/columnar.md, *Extended rule sets*): a
cap pool couples the claims of several pools (and, per household, of several persons) and a
second stage's base is what the first stage left after its caps, so a claim's relief depends on
every earlier claim of its person and household, in (date, claim id) order, across pools: the
columnar path's independence of (person, benefit year, pool) groups no longer holds.  Settling
through the engine makes every path compute these rules by their one definition
(:func:`medaid.domain.engine.settle_at`); what it costs is measured by
``benchmarks/bench_extended.py``.

Rules implemented (each by the engine): placement by date, group, kind and attributes; a plan
bound by a household cap pool needs a household id; the order of operations of *Rules real
schemes need*.  Rows the engine refuses become rejects with the engine's message and field,
as the columnar placement's rejects are; the other rows are settled as if the refused ones
were not in the file (as the columnar batch does: a refused row counts nowhere).

Output (docs/batch.md, *Output files*): the input columns, :data:`medaid.io.columns.RESULT_FIELDS`
as the columnar path gives them, then :data:`medaid.io.columns.EXTENDED_RESULT_FIELDS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from ..domain.claims import Claim
from ..domain.engine import Placement, PoolState, Positions, Settlement, placement, settle_at
from ..domain.rules import RuleBook
from ..errors import Problem
from ..io.amounts import yuan_text
from ..io.columns import EXTENDED_RESULT_FIELDS, RESULT_FIELDS, rule_ref
from ..io.ids import tidy_ids
from ..io.rejects import empty_rejects, reject_schema
from . import placement as columnar_placement

#: Claim fields the engine reads besides the attributes (the columns that exist are read).
_CLAIM_COLUMNS = ("claim_id", "person_id", "date", "self_pay", "group", "kind", "household_id",
                  "non_compliant")


def declared(rules: RuleBook) -> tuple[str, ...]:
    """The names of the attributes the book's versions declare, sorted (a claim's attribute
    pairs are sorted by name)."""
    return tuple(sorted({a for rs in rules.versions() for a in rs.attributes}))


def claims_of(frame: pl.DataFrame, attributes: Sequence[str]) -> list[Claim]:
    """The claims of the frame's rows, in row order: ``claim_id``, ``person_id``, ``date``,
    ``self_pay`` (fen), ``group``, ``kind``, ``household_id`` (tidied as an id, empty: none),
    ``non_compliant`` (fen) and each declared attribute's column (tidied; empty: no value).
    The frame's ids are tidy already (the readers' validation, :func:`medaid.io.ids.tidy_ids`),
    so the claims are built without validating each again."""
    n = frame.height
    cols: dict[str, list[Any]] = {}
    for c in _CLAIM_COLUMNS:
        if c not in frame.columns:
            continue
        s = frame[c]
        if c in ("household_id", "group", "kind") or c in attributes:
            s = s.cast(pl.String)
        if c == "household_id":
            s = tidy_ids(s)
            s = pl.select(pl.when(s.str.len_bytes() > 0).then(s)).to_series()
        cols[c] = s.to_list()
    present = [a for a in attributes if a in frame.columns]
    values = []
    for a in present:
        s = tidy_ids(frame[a].cast(pl.String).alias(a))
        values.append(pl.select(pl.when(s.str.len_bytes() > 0).then(s)).to_series().to_list())
    none: list[Any] = [None] * n
    ids, persons, days, pays = cols["claim_id"], cols["person_id"], cols["date"], cols["self_pay"]
    groups, kinds = cols.get("group", none), cols.get("kind", none)
    homes, extra = cols.get("household_id", none), cols.get("non_compliant", none)
    attrs: list[tuple[tuple[str, str], ...]] = [()] * n
    if values:
        attrs = [tuple((a, v[i]) for a, v in zip(present, values) if v[i] is not None) for i in range(n)]
    return [_claim(*row) for row in zip(ids, persons, days, pays, groups, kinds, homes, extra, attrs)]


#: The fields of :class:`Claim` :func:`_claim` sets (all of them, in order).
_FIELDS = tuple(Claim.model_fields)
_SET = frozenset(_FIELDS)
_new, _put = object.__new__, object.__setattr__
#: Every other field at its default (a field added to :class:`Claim` later is filled in too).
_DEFAULTS: dict[str, Any] = {
    name: None if f.is_required() else f.get_default(call_default_factory=True)
    for name, f in Claim.model_fields.items()}


def _claim(claim_id: str, person_id: str, date: Any, self_pay: int, group: str | None,
           kind: str | None, household_id: str | None, non_compliant: int | None,
           attributes: tuple[tuple[str, str], ...]) -> Claim:
    """A :class:`Claim` of values that are valid already (as ``Claim.model_construct`` makes
    one, without its per-call look-ups of defaults: a fifth of the extended batch's time)."""
    c = _new(Claim)
    _put(c, "__dict__", {
        **_DEFAULTS, "claim_id": claim_id, "person_id": person_id, "date": date, "self_pay": self_pay,
        "group": group, "kind": kind, "household_id": household_id, "non_compliant": non_compliant,
        "attributes": attributes})
    _put(c, "__pydantic_fields_set__", _SET)
    _put(c, "__pydantic_extra__", None)
    _put(c, "__pydantic_private__", None)
    return c


_UNSEEN: Any = object()


def settle_claims(claims: list[Claim], rules: RuleBook, opening: Positions | None,
                  ) -> tuple[list[Settlement | None], list[tuple[int, Problem]]]:
    """Settle ``claims`` from ``opening`` as :func:`medaid.domain.engine.settle` does for an
    extended book: in (date, claim id) order, each placed by the engine's
    :func:`medaid.domain.engine.placement` and settled by its :func:`medaid.domain.engine.settle_at`
    against the positions kept in :class:`medaid.domain.engine.Positions` (pools, cap pools per
    person or household, second pools).  A claim the engine cannot place is left out (it counts
    nowhere) and returned with its problem: ``(claim index, problem)``; each settled claim's
    settlement is at its index (``None``: refused).

    (Not ``engine.settle`` itself: given a ``Positions``, it opens with the pools alone and drops
    the cap pools and second pools, so a batch opening from earlier results would start those
    at zero; reported for the engine.)"""
    state = Positions() if opening is None else Positions(opening.pools, opening.caps, opening.seconds)
    out: list[Settlement | None] = [None] * len(claims)
    refused: list[tuple[int, Problem]] = []
    order = sorted(range(len(claims)), key=lambda i: (claims[i].date, claims[i].claim_id))
    # placement reads only the date, group, kind, attributes and whether there is a household
    # id: it is looked up once per distinct combination (a refused claim is placed again, for
    # the problem naming it)
    placed: dict[tuple[Any, ...], Placement | None] = {}
    for i in order:
        c = claims[i]
        key = (c.date, c.group, c.kind, c.attributes, c.household_id is None)
        at = placed.get(key, _UNSEEN)
        if at is _UNSEEN:
            found = placement(c, rules)
            at = placed[key] = None if isinstance(found, Problem) else found
        if at is None:
            problem = placement(c, rules)
            assert isinstance(problem, Problem)
            refused.append((i, problem))
            continue
        r = out[i] = settle_at(c, at, state.position(c, at))
        state.take(c, at, r)
    refused.sort()
    return out, refused


def caps_column(done: list[Settlement], rules: RuleBook, relief: pl.Series, second: pl.Series) -> pl.Series:
    """``caps``: per claim ``NAME=yuan;…``, the relief it counted in each cap pool its plan or
    second stage lists (docs/calculation.md, *Shared caps*: ``U^P`` takes the first relief
    ``relief − second_relief`` for each pool the plan lists and the second relief for each its
    second stage lists), in the engine's order (``caps_after``); null when it lists none.
    Written column-wise per plan, amounts by :func:`medaid.io.amounts.yuan_text`."""
    lists = {(rs.id, rs.version, p.name): (p.caps, () if p.second is None else p.second.caps)
             for rs in rules.versions() for p in rs.plans}
    plans: dict[tuple[str, str, str], int] = {}
    names: dict[int, tuple[str, ...]] = {}
    index = []
    for r in done:
        k = (r.rule_set_id, r.rule_version, r.plan)
        j = plans.get(k)
        if j is None:
            j = plans[k] = len(plans)
            names[j] = tuple(n for n, _ in r.caps_after)
        index.append(j)
    # the three amounts a share can be, as text: first relief, second relief, both (= relief)
    frame = pl.DataFrame([pl.Series("p", index, dtype=pl.Int32), relief.alias("r"), second.alias("h")])
    frame = frame.with_columns((pl.col("r") - pl.col("h")).alias("f"))
    frame = frame.select("p", yuan_text("f").alias("f"), yuan_text("h").alias("h"), yuan_text("r").alias("r"))
    e: Any = pl
    for k, j in plans.items():
        if not names[j]:
            continue
        first_caps, second_caps = lists[k]
        parts: list[pl.Expr] = []
        for n in names[j]:
            share = {(True, False): "f", (False, True): "h", (True, True): "r"}[(n in first_caps, n in second_caps)]
            parts += [pl.lit(("" if not parts else ";") + n + "="), pl.col(share)]
        e = e.when(pl.col("p") == j).then(pl.concat_str(parts))
    if e is pl:
        return pl.Series("caps", [None] * len(done), dtype=pl.String)
    return frame.select(e.otherwise(pl.lit(None, pl.String)).alias("caps")).to_series()


def opening_positions(opening: pl.DataFrame | Positions | None) -> Positions | None:
    """The engine's :class:`Positions` of a batch's opening: as given, or, from the columnar
    path's frame of pools (``person_id``, ``benefit_year``, ``pool``, ``c0``, ``g0``), those
    pools alone."""
    if opening is None or isinstance(opening, Positions):
        return opening
    return Positions({(p, y, pool): PoolState(c, g) for p, y, pool, c, g in
                      opening.select("person_id", "benefit_year", "pool", "c0", "g0").iter_rows()})


def settle_frame_extended(
    frame: pl.DataFrame, rules: RuleBook, *, compact: bool = False,
    opening: Positions | None = None, full_rule_hash: bool = True,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """:func:`medaid.batch.settle.settle_frame` for an extended rule book (the module doc):
    ``(results, rejects)``, results in input order with the input columns,
    :data:`RESULT_FIELDS` and :data:`EXTENDED_RESULT_FIELDS`."""
    frame, over = columnar_placement.over_limit(frame)
    claims = claims_of(frame, declared(rules))
    got, refused = settle_claims(claims, rules, opening)
    rejects = empty_rejects()
    if refused:
        rejects = pl.DataFrame(
            {"row": [frame["row"][i] for i, _ in refused], "claim_id": [claims[i].claim_id for i, _ in refused],
             "field": [p.field for _, p in refused], "message": [p.message for _, p in refused]},
            schema=reject_schema())
        keep = pl.Series([r is not None for r in got])
        frame = frame.filter(keep)
    if over is not None:
        rejects = pl.concat([over, rejects])
    rejects = rejects.sort("row", maintain_order=True)
    done = [r for r in got if r is not None]
    return _results(frame, done, rules, compact, full_rule_hash), rejects


def _results(frame: pl.DataFrame, done: list[Settlement], rules: RuleBook, compact: bool,
             full_rule_hash: bool) -> pl.DataFrame:
    """The input columns (group and kind as codes, as the columnar path writes them), then the
    result columns of the settlements ``done`` (one per row, in row order)."""
    versions = rules.versions()
    index = {(rs.id, rs.version): i for i, rs in enumerate(versions)}
    if any(rs.groups or rs.kinds for rs in versions) and frame.height:
        v = pl.Series("__v", [index[(r.rule_set_id, r.rule_version)] for r in done], dtype=pl.Int32)
        frame = columnar_placement.as_codes(frame, v, versions)

    def text(name: str, values: list[str | None]) -> pl.Series:
        s = pl.Series(name, values, dtype=pl.String)
        if compact:
            return s.cast(pl.Enum(sorted({x for x in values if x is not None})))
        return s

    def money(name: str, values: list[int | None]) -> pl.Series:
        return pl.Series(name, values, dtype=pl.Int64)

    refs = {rs.content_hash: rule_ref(rs.content_hash, full_rule_hash) for rs in versions}
    cols = [
        text("plan", [r.plan for r in done]),
        text("pool", [r.pool for r in done]),
        pl.Series("benefit_year", [r.benefit_year for r in done], dtype=pl.Int32),
        money("relief", [r.relief for r in done]),
        money("patient_pays", [r.patient_pays for r in done]),
        money("bracket_relief", [r.bracket_relief for r in done]),
        text("capped_by", [r.capped_by for r in done]),
        pl.Series("bracket", [r.bracket for r in done], dtype=pl.Int8),
        money("ytd_self_pay", [r.ytd_self_pay for r in done]),
        money("ytd_relief", [r.ytd_relief for r in done]),
        text("rule_set_id", [r.rule_set_id for r in done]),
        text("rule_version", [r.rule_version for r in done]),
        text("rule_hash", [refs.get(r.rule_hash, rule_ref(r.rule_hash, full_rule_hash)) for r in done]),
        money("second_relief", [r.second_relief for r in done]),
        text("second_capped_by", [r.second_capped_by for r in done]),
        text("second_pool", [r.second_pool for r in done]),
        money("burden", [r.burden for r in done]),
        money("ytd_burden", [r.ytd_burden for r in done]),
        money("ytd_second_relief", [r.ytd_second_relief for r in done]),
    ]
    cols.append(caps_column(done, rules, cols[3], cols[13]))
    assert [c.name for c in cols] == [*RESULT_FIELDS, *EXTENDED_RESULT_FIELDS]
    names = set(RESULT_FIELDS) | set(EXTENDED_RESULT_FIELDS)
    keep = [c for c in frame.columns if c not in names]
    if len(keep) < frame.width:
        frame = frame.select(keep)
    return frame.with_columns(cols)

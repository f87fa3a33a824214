"""``medaid.settle``: the engine's settlement of claim objects, computed in columns for large
calls (issue 16; when: :func:`medaid.tuning.settle_in_columns`).

The rules are those of docs/calculation.md, defined once by the scalar engine
(:func:`medaid.domain.engine.settle`) and computed in columns by
:func:`medaid.batch.settle.settle_frame`, which is tested equal to it claim by claim.  This module
only moves the claims into columns and the results back into
:class:`medaid.domain.engine.Settlement` tuples, each field as the scalar loop gives it:

* the placement's fields (plan, pool, caps, rule set id, version and full hash, the compiled
  schedule) from the plan the frame placed the claim under;
* ``base_from`` / ``base_to``: ``0 .. s`` in claim mode, ``C − s .. C`` in year mode
  (``C`` = ``ytd_self_pay`` after the claim);
* the fields of *Rules real schemes need* at their defaults (a book that uses those rules never
  comes here).

Claims the columns cannot take as they are (a duplicate claim id, a claim no version covers or
no plan matches) are left to the scalar loop, which settles or refuses them with its own
messages.  polars is imported only for a call that goes through the columns: a desk settling
one claim never loads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..domain import engine
from ..domain.claims import Claim
from ..domain.engine import _NOTHING_MORE, GroupKey, PoolState, Positions, Settlement
from ..domain.rules import RuleBook
from ..tuning import gc_paused, settle_in_columns

if TYPE_CHECKING:
    import polars as pl

#: The result fields the frame is asked for (the others are the placement's or the claim's).
_NEED = ("plan", "rule_version", "benefit_year", "relief", "bracket_relief", "capped_by",
         "ytd_self_pay", "ytd_relief")
#: ``date.toordinal()`` of 1970-01-01: polars' dates count days from there.
_EPOCH_ORDINAL = 719_163


def settle(
    claims: Iterable[Claim],
    rules: RuleBook,
    opening: Mapping[GroupKey, PoolState] | Positions | None = None,
) -> list[Settlement]:
    """Settle claims, accumulating per (person, benefit year, pool): exactly
    :func:`medaid.domain.engine.settle` (its rules, order, results and errors: see there), with
    a large call under rules without those of *Rules real schemes need* computed in columns
    (:func:`medaid.tuning.settle_in_columns`: from 10,000 claims when polars is loaded, from
    100,000 when it is not)."""
    items: Sequence[Claim] = claims if isinstance(claims, (list, tuple)) else list(claims)
    if settle_in_columns(len(items), rules.extended):
        with gc_paused():  # (medaid.tuning: the settlements stay alive; no cycles are made)
            done = settle_claims(items, rules, opening)
        if done is not None:
            return done
    return engine.settle(items, rules, opening)


def settle_claims(
    items: Sequence[Claim], rules: RuleBook, opening: Mapping[GroupKey, PoolState] | Positions | None,
) -> list[Settlement] | None:
    """The settlements of ``items`` in the order given, equal field by field to the scalar
    loop's, or ``None`` when the scalar loop must take them (a duplicate claim id, a claim
    that cannot be placed, an extended rule book, two versions of one scheme sharing a
    version name)."""
    import polars as pl

    from .settle import settle_frame

    versions = rules.versions()
    if rules.extended or len({rs.version for rs in versions}) != len(versions):
        return None
    ids = [c.claim_id for c in items]
    if len(set(ids)) != len(ids):
        return None
    persons = [c.person_id for c in items]
    dates = [c.date for c in items]
    pays = [c.self_pay for c in items]
    n = len(ids)
    frame = pl.DataFrame([
        pl.int_range(0, n, eager=True).alias("row"),
        pl.Series("claim_id", ids, pl.String),
        pl.Series("person_id", persons, pl.String),
        (pl.Series("date", [d.toordinal() for d in dates], pl.Int32) - _EPOCH_ORDINAL).cast(pl.Date),
        pl.Series("self_pay", pays, pl.Int64),
        pl.Series("group", [c.group for c in items], pl.String),
        pl.Series("kind", [c.kind for c in items], pl.String),
    ])
    res, rejects = settle_frame(frame, rules, compact=True, opening=_opening_frame(opening), need=_NEED)
    del frame
    if rejects.height:
        return None
    # the plan under which each row settled, as one number: version × plans + plan
    plan_names = _categories(res["plan"])
    version_names = _categories(res["rule_version"])
    placed: list[tuple[Any, ...] | None] = []
    for v in version_names:
        rs = next(r for r in versions if r.version == v)
        plans = {p.name: p for p in rs.plans}
        for name in plan_names:
            p = plans.get(name)
            placed.append(None if p is None else (
                p.name, p.pool, p.annual_cap, p.claim_cap, rs.id, rs.version, rs.content_hash,
                rules.schedule(rs, p), p.accumulate == "claim"))
    where = (res["rule_version"].to_physical().cast(pl.Int64) * len(plan_names)
             + res["plan"].to_physical().cast(pl.Int64)).to_list()
    limits = _categories(res["capped_by"])
    capped_by = tuple(limits) + (None,)
    capped = res["capped_by"].to_physical().fill_null(len(limits)).to_list()
    years, reliefs, incs, cums, gots = (
        res[c].to_list() for c in ("benefit_year", "relief", "bracket_relief", "ytd_self_pay", "ytd_relief"))
    del res
    households = [c.household_id for c in items]
    new, more = tuple.__new__, _NOTHING_MORE
    out: list[Settlement] = []
    add = out.append
    for cid, pid, day, s, hh, k, year, r, inc, cb, cum, got in zip(
            ids, persons, dates, pays, households, where, years, reliefs, incs, capped, cums, gots):
        name, pool, annual_cap, claim_cap, rid, rver, rhash, sched, per_claim = placed[k]
        add(new(Settlement, (
            cid, pid, day, s, r, s - r, inc, capped_by[cb], name, pool, year, cum, got, annual_cap,
            claim_cap, 0 if per_claim else cum - s, s if per_claim else cum, rid, rver, rhash, sched, hh,
        ) + more))
    return out


def _opening_frame(opening: Mapping[GroupKey, PoolState] | Positions | None) -> pl.DataFrame | None:
    """The engine's opening positions as :func:`settle_frame` takes them (``person_id``,
    ``benefit_year``, ``pool``, ``c0``, ``g0``); ``None`` when there are none."""
    pools = opening.pools if isinstance(opening, Positions) else opening
    if not pools:
        return None
    import polars as pl

    keys = list(pools)
    return pl.DataFrame({
        "person_id": [k[0] for k in keys], "benefit_year": [k[1] for k in keys],
        "pool": [k[2] for k in keys], "c0": [pools[k][0] for k in keys], "g0": [pools[k][1] for k in keys],
    }, schema={"person_id": pl.String, "benefit_year": pl.Int32, "pool": pl.String,
               "c0": pl.Int64, "g0": pl.Int64})


def _categories(column: pl.Series) -> list[str]:
    """The values of a ``pl.Enum`` column's codes, code by code."""
    import polars as pl

    dtype = column.dtype
    assert isinstance(dtype, pl.Enum)
    return dtype.categories.to_list()

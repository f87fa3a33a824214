"""TEMPORARY stub of the columnar settlement core (helper ``columnar`` writes the real one).

Implements the contract of :func:`settle_frame` with the scalar engine, so that the batch
path (readers → settle_frame → exports) can be built and tested before the columnar core lands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .claims import Claim
from .columns import RESULT_FIELDS
from .engine import place, settle
from .errors import ClaimError

if TYPE_CHECKING:
    import polars as pl

    from .rules import RuleBook


def settle_frame(frame: "pl.DataFrame", rules: "RuleBook") -> tuple["pl.DataFrame", "pl.DataFrame"]:
    """Settle every placeable row of ``frame`` (DESIGN.md §2), scalar engine underneath.

    Returns ``(results, rejects)``: results are the placeable rows in input order with
    :data:`medaid.columns.RESULT_FIELDS` appended; rejects (``row``, ``claim_id``, ``field``,
    ``message``) are the rows no rule version or plan covers.
    """
    import polars as pl

    cols = frame.columns
    ids = frame["claim_id"].to_list()
    persons = frame["person_id"].to_list()
    dates = frame["date"].to_list()
    pays = frame["self_pay"].to_list()
    groups = frame["group"].to_list() if "group" in cols else [None] * frame.height
    kinds = frame["kind"].to_list() if "kind" in cols else [None] * frame.height
    rows = frame["row"].to_list()
    claims: list[Claim] = []
    keep: list[int] = []
    rej: dict[str, list] = {"row": [], "claim_id": [], "field": [], "message": []}
    cache: dict = {}
    for i in range(frame.height):
        c = Claim(claim_id=ids[i], person_id=persons[i], date=dates[i], self_pay=pays[i],
                  group=groups[i], kind=kinds[i])
        key = (c.date, c.group, c.kind)
        err = cache.get(key, False)
        if err is False:
            try:
                place(c, rules)
                err = None
            except ClaimError as e:
                err = e.problems[0]
            cache[key] = err
        if err is not None:
            rej["row"].append(rows[i])
            rej["claim_id"].append(ids[i])
            rej["field"].append(err.field)
            rej["message"].append(err.message)
            continue
        claims.append(c)
        keep.append(i)
    results = settle(claims, rules)

    def bracket(r) -> int:  # type: ignore[no-untyped-def]
        return sum(1 for lo in r.schedule.lowers if r.base_to > lo)

    data = {
        "plan": [r.plan for r in results],
        "pool": [r.pool for r in results],
        "benefit_year": [r.benefit_year for r in results],
        "relief": [r.relief for r in results],
        "patient_pays": [r.patient_pays for r in results],
        "bracket_relief": [r.bracket_relief for r in results],
        "capped_by": [r.capped_by for r in results],
        "bracket": [bracket(r) for r in results],
        "ytd_self_pay": [r.ytd_self_pay for r in results],
        "ytd_relief": [r.ytd_relief for r in results],
        "rule_set_id": [r.rule_set_id for r in results],
        "rule_version": [r.rule_version for r in results],
        "rule_hash": [r.rule_hash for r in results],
    }
    schema = {
        "plan": pl.String, "pool": pl.String, "benefit_year": pl.Int32, "relief": pl.Int64,
        "patient_pays": pl.Int64, "bracket_relief": pl.Int64, "capped_by": pl.String,
        "bracket": pl.Int8, "ytd_self_pay": pl.Int64, "ytd_relief": pl.Int64,
        "rule_set_id": pl.String, "rule_version": pl.String, "rule_hash": pl.String,
    }
    added = pl.DataFrame(data, schema=schema)
    base = frame[keep] if len(keep) != frame.height else frame
    base = base.drop([c for c in RESULT_FIELDS if c in base.columns])
    out = pl.concat([base, added], how="horizontal")
    rejects = pl.DataFrame(rej, schema={"row": pl.Int64, "claim_id": pl.String,
                                        "field": pl.String, "message": pl.String})
    return out, rejects

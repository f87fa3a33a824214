"""The rule book as the columnar core reads it: small tables indexed by version, plan and piece
(docs/columnar.md, *How it works*), and the expression that looks a table up by a column.

Every entry is read off the domain's one definitions, none is worked out again here: the
versions (:meth:`medaid.domain.rules.RuleBook.versions`), the plan of each (version, group,
kind) (:meth:`medaid.domain.rules.RuleBook.plan_for`, as :func:`medaid.domain.engine.placement`
places a claim), each plan's bracket function as integer pieces
(:class:`medaid.domain.brackets.BracketTable`) and its rounding
(:func:`medaid.money.rounding_step`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import polars as pl

from ..domain.rules import PlacedPlan, RuleBook, RuleSet
from ..money import RoundingStep, rounding_step

#: A polars data type, as a class (``pl.Int32``) or an instance (``pl.Enum([...])``).
DType: TypeAlias = "pl.DataType | type[pl.DataType]"

#: Tables of at most this many entries are looked up by comparisons instead of a gather: a
#: gather first converts and bounds-checks its whole index column, which costs more than a few
#: comparisons (at 10 M rows about 0.02–0.06 s against 0.007 s for three entries).
SMALL_TABLE = 4

#: The code of a group or kind name that no plan and no alias table knows (see :class:`PlanTables`).
_UNKNOWN = "\x00not-a-name"


class PlanTables:
    """The rule book flattened into small arrays indexed by version, plan and piece.

    Attributes:
        versions: the chosen scheme's versions, oldest first.
        plans: every (version, plan) with its compiled arithmetic, version by version.
        pools: the pools' names, sorted.
        groups, kinds: every name a plan matches or an alias table maps, sorted; a column's
            value becomes its index here, null the next code, any other value the one after.
        ng, nk: how many group and kind codes there are (names, null, other).
        combo: the plan index (or ``None``: no plan) of each (version, group code, kind code),
            at ``(version × ng + group) × nk + kind``.
        aliases: whether some name stands for a code (results then carry the codes).
        scale: one scale ``S`` for every plan's pieces (the largest plan scale: scales are
            powers of ten, so it is a multiple of each).
        piece_lo, piece_num, piece_icpt, plan_of_piece, piece_bracket, piece_bracket_at_lo: the
            plans' bracket tables laid end to end, ``num`` and ``icpt`` rescaled to ``S``.
        rounding: each plan's rounding over ``S``.
    """

    def __init__(self, rules: RuleBook) -> None:
        self.versions: tuple[RuleSet, ...] = rules.versions()
        self.plans: list[PlacedPlan] = [
            PlacedPlan(rs, p, rules.schedule(rs, p)) for rs in self.versions for p in rs.plans]
        self.pools = sorted({x.plan.pool for x in self.plans})
        groups: set[str] = set()
        kinds: set[str] = set()
        for x in self.plans:
            if x.plan.match is not None:
                groups.update(x.plan.match.group)
                kinds.update(x.plan.match.kind)
        for rs in self.versions:  # the names standing for codes: placed by RuleBook.plan_for as codes
            for code, aliases in rs.groups.items():
                groups.update((code, *aliases))
            for code, aliases in rs.kinds.items():
                kinds.update((code, *aliases))
        self.aliases = any(rs.groups or rs.kinds for rs in self.versions)
        self.groups = sorted(groups)
        self.kinds = sorted(kinds)
        # codes: known names 0..n-1, then null (n), then any other value (n+1)
        self.ng, self.nk = len(self.groups) + 2, len(self.kinds) + 2
        gnames: list[str | None] = [*self.groups, None, _UNKNOWN]
        knames: list[str | None] = [*self.kinds, None, _UNKNOWN]
        index = {(id(x.rule_set), x.plan.name): i for i, x in enumerate(self.plans)}
        self.combo: list[int | None] = []
        for rs in self.versions:
            for g in gnames:
                for k in knames:
                    found = rules.plan_for(rs, g, k)
                    self.combo.append(None if found is None else index[(id(rs), found.plan.name)])
        # per-plan arithmetic: the plans' bracket tables (on each piece f(x)·S = icpt + num·x
        # exactly) laid end to end, rescaled to one scale S for every plan (the rounding step
        # S·unit is then one constant when the units agree)
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
            factor = self.scale // tb.scale
            self.piece_lo.extend(tb.lows)
            self.piece_num.extend(m * factor for m in tb.slopes)
            self.piece_icpt.extend(c * factor for c in tb.intercepts)
            self.plan_of_piece.extend([i] * len(tb.lows))
            self.piece_bracket.extend(tb.brackets)
            self.piece_bracket_at_lo.extend(tb.brackets_at_low)
        self.rounding: list[RoundingStep] = [
            rounding_step(self.scale, x.schedule.unit, x.schedule.method) for x in self.plans]

    def pool_index(self) -> list[int]:
        """Each plan's pool as its index in :attr:`pools`."""
        return [self.pools.index(x.plan.pool) for x in self.plans]


def lookup(values: Sequence[Any], index: pl.Expr, dtype: DType) -> pl.Expr:
    """``values[index]`` as an expression (null where ``index`` is null): a literal when all
    values agree, comparisons for a small table (:data:`SMALL_TABLE`), else a gather."""
    if len(set(values)) == 1 and values[0] is not None:
        return pl.when(index.is_not_null()).then(pl.lit(values[0], dtype))
    if len(values) <= SMALL_TABLE:
        e: Any = pl
        for i, v in enumerate(values):
            e = e.when(index == i).then(pl.lit(v, dtype))
        out: pl.Expr = e.otherwise(pl.lit(None, dtype))
        return out
    return pl.lit(pl.Series(values, dtype=dtype)).gather(index)

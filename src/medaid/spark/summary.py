"""What a Spark batch did (:func:`medaid.spark.job.run_batch`): rows read = settled + rejected
(README.md#reliability), the totals in fen (:class:`Totals`, computed by
:func:`medaid.spark.job.summarize` through the one totals engine, :mod:`medaid.report.totals`),
the output locations and the wall time."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Totals:
    """Totals of settled claims in fen: ``claims``, distinct ``persons``, ``self_pay``,
    ``relief`` and ``patient_pays``, ``claims_capped`` (relief reduced by a cap or by the
    self-pay), ``persons_at_annual_cap`` (persons who reached an annual cap) and, in the overall
    line of results of the rules real schemes need (they carry ``second_relief``),
    ``persons_at_cap_pool`` (persons a cap pool stopped: ``None`` otherwise, and then left out of
    :meth:`Summary.to_dict`); ``key`` names the plan, month (YYYY-MM) or hospital (``None`` for
    the overall line)."""

    key: str | None
    claims: int
    persons: int
    self_pay: int
    relief: int
    patient_pays: int
    claims_capped: int = 0
    persons_at_annual_cap: int = 0
    persons_at_cap_pool: int | None = None


@dataclass(frozen=True)
class Summary:
    """What a Spark batch did: rows read = settled + rejected (README.md#reliability), totals (fen),
    totals by plan, month and hospital, the output locations and the wall time."""

    rows_read: int
    settled: int
    rejected: int
    total: Totals
    by_plan: tuple[Totals, ...] = ()
    by_month: tuple[Totals, ...] = ()
    by_hospital: tuple[Totals, ...] = ()
    output: str | None = None
    rejects_output: str | None = None
    seconds: float = 0.0
    rejects_sample: tuple[str, ...] = field(default=())
    #: Rows whose claim id the opening balances hold (reported, not settled twice); ``None``:
    #: the batch had no opening.
    already_settled: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: amounts stay integers of fen; a totals line without
        ``persons_at_cap_pool`` (``None``) has no such key."""
        out = asdict(self)
        for t in (out["total"], *out["by_plan"], *out["by_month"], *out["by_hospital"]):
            if t["persons_at_cap_pool"] is None:
                del t["persons_at_cap_pool"]
        return out

    def reconcile(self) -> str:
        """``rows read N = settled S (+ already settled A) + rejected R``, as the local batch
        prints it."""
        already = "" if self.already_settled is None else f" + already settled {self.already_settled}"
        return f"rows read {self.rows_read} = settled {self.settled}{already} + rejected {self.rejected}"

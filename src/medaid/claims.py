"""The claim record (结算单): what one settled episode brings to medical aid.

Amounts are integers of fen.  Build claims from yuan text with :meth:`Claim.from_yuan`, which
parses through :func:`medaid.money.parse_yuan` (the one door for amounts).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from .errors import ClaimError, Problem
from .money import parse_yuan


class Claim(BaseModel):
    """One claim.

    Attributes:
        claim_id: the settlement number (结算单号), unique in a batch and in a ledger.
        person_id: the beneficiary (人员编号).
        date: the settlement date (结算日期); picks the rule version and the benefit year.
        self_pay: compliant self-pay after basic and critical-illness insurance (合规自付费用),
            in fen; the base of relief.
        group: beneficiary group (救助对象类别), e.g. ``key``; ``None`` uses the default plan.
        kind: claim kind (就诊类型), e.g. ``inpatient``; ``None`` uses the default plan.
        hospital: the medical institution (医疗机构), optional.
        total_cost: total medical cost (医疗总费用) in fen, optional; used by the report's
            self-pay ratio.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    claim_id: str = Field(min_length=1)
    person_id: str = Field(min_length=1)
    date: dt.date
    self_pay: StrictInt = Field(ge=0)
    group: str | None = None
    kind: str | None = None
    hospital: str | None = None
    total_cost: StrictInt | None = Field(default=None, ge=0)

    @classmethod
    def from_yuan(
        cls,
        *,
        claim_id: str,
        person_id: str,
        date: dt.date | str,
        self_pay: str | int | Decimal,
        total_cost: str | int | Decimal | None = None,
        **rest: Any,
    ) -> "Claim":
        """Build a claim from amounts in yuan (text such as ``"12,345.67"``, ``int`` or
        ``Decimal``) and an ISO date; raises :class:`medaid.errors.MoneyError` for an amount and
        :class:`medaid.errors.ClaimError` for any other field, naming the claim and the field."""
        where = f"claim {claim_id}"
        if isinstance(date, str):
            try:
                date = dt.date.fromisoformat(date.strip())
            except ValueError:
                shown = date if len(date) <= 24 else date[:21] + "..."
                raise ClaimError(Problem(f"{shown!r} is not a date; write YYYY-MM-DD",
                                         source=where, field="date")) from None
        self_fen = parse_yuan(self_pay, field="self_pay")
        total_fen = None if total_cost is None else parse_yuan(total_cost, field="total_cost")
        try:
            return cls(claim_id=claim_id, person_id=person_id, date=date, self_pay=self_fen,
                       total_cost=total_fen, **rest)
        except ValidationError as e:
            raise ClaimError([
                Problem(err["msg"], source=where, field=".".join(str(x) for x in err["loc"]))
                for err in e.errors()
            ]) from None

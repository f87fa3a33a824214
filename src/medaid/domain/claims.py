"""The claim record (结算单): what one settled episode brings to medical aid.

Amounts are integers of fen.  Build claims from yuan text with :meth:`Claim.from_yuan`, which
parses through :func:`medaid.money.parse_yuan` (the one door for amounts).

Identifiers (claim ids, person ids) have one door too, :func:`tidy_id`: one person keyed two
ways (full-width digits, a lower-case ``x`` check character, a zero-width space, spaces around
it) is one person, with one year-to-date position and one annual cap (docs/desk.md
*Identifiers*).  A :class:`Claim` tidies its ids when it is made; the desk commands, the ledger's
look-ups, the batch's validation and Spark use the same function.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import Decimal
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
)

from ..errors import ClaimError, Problem
from ..money import MAX_FEN, parse_yuan

#: A regular expression matching exactly the text :func:`tidy_id` leaves as it is, except an
#: ID number with a lower-case check character (:data:`LOWER_CHECK_PATTERN`): printable ASCII
#: with no space at either end.  Vectorised readers send only the values it does not match (or
#: that match :data:`LOWER_CHECK_PATTERN`) through :func:`tidy_id`.  Both are polars (Rust)
#: patterns: ``$`` is the end of the text, never a position before a final line break.
PLAIN_ID_PATTERN = r"^[!-~](?:[ -~]*[!-~])?$"
#: An 18-character resident ID number (居民身份证号码) whose check character is a lower-case ``x``.
LOWER_CHECK_PATTERN = r"^[0-9]{17}x$"


def tidy_id(text: str) -> str:
    """An identifier as medaid compares and stores it (claim ids and person ids alike):

    1. Unicode NFKC normalisation (full-width ``５００１…`` becomes ``5001…``, an ideographic
       or no-break space becomes a space);
    2. invisible characters removed: every Unicode format character (category ``Cf``: the
       zero-width space U+200B, zero-width (non-)joiners, the word joiner U+2060, the byte-order
       mark U+FEFF, the soft hyphen U+00AD, direction marks);
    3. white space trimmed at both ends (not inside);
    4. the check character of an 18-character ID number upper-cased (``…123x`` → ``…123X``).

    Nothing else changes: letters keep their case, inner spaces stay.  An identifier that is
    empty afterwards is refused where it is required (the claim, the row, the option)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        if not text.isascii():
            text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = text.strip()
    if len(text) == 18 and text[17] == "x" and text[:17].isascii() and text[:17].isdigit():
        text = text[:17] + "X"
    return text


class Claim(BaseModel):
    """One claim.

    Attributes:
        claim_id: the settlement number (结算单号), unique in a batch and in a ledger; tidied
            by :func:`tidy_id`.
        person_id: the beneficiary (人员编号), tidied by :func:`tidy_id`.
        date: the settlement date (结算日期); picks the rule version and the benefit year.
        self_pay: compliant self-pay after basic and critical-illness insurance (合规自付费用),
            in fen; the base of relief; at most :data:`medaid.money.MAX_FEN` (9,999,999.99
            yuan), as every amount.
        group: beneficiary group (救助对象类别), e.g. ``key``; ``None`` uses the default plan.
        kind: claim kind (就诊类型), e.g. ``inpatient``; ``None`` uses the default plan.
        hospital: the medical institution (医疗机构), optional.
        total_cost: total medical cost (医疗总费用) in fen, optional; used by the report's
            self-pay ratio.
        channel: how the claim came (``one-stop``: settled at the hospital's desk, paid to the
            hospital; ``application``: applied for afterwards, paid to the person), optional.
        bank_account, account_name: where an application's relief is paid (masked in every
            display but the bank payout file), optional.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    claim_id: str = Field(min_length=1)
    person_id: str = Field(min_length=1)
    date: dt.date
    self_pay: StrictInt = Field(ge=0, le=MAX_FEN)
    group: str | None = None
    kind: str | None = None
    hospital: str | None = None
    total_cost: StrictInt | None = Field(default=None, ge=0, le=MAX_FEN)
    channel: Literal["one-stop", "application"] | None = None
    bank_account: str | None = None
    account_name: str | None = None

    @field_validator("claim_id", "person_id", mode="before")
    @classmethod
    def _tidy(cls, v: Any) -> Any:
        return tidy_id(v) if isinstance(v, str) else v

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
                day = dt.date.fromisoformat(date.strip())
            except ValueError:
                shown = date if len(date) <= 24 else date[:21] + "..."
                raise ClaimError(Problem(f"{shown!r} is not a date; write YYYY-MM-DD",
                                         source=where, field="date")) from None
        else:
            day = date
        self_fen = parse_yuan(self_pay, field="self_pay")
        total_fen = None if total_cost is None else parse_yuan(total_cost, field="total_cost")
        try:
            return cls(claim_id=claim_id, person_id=person_id, date=day, self_pay=self_fen,
                       total_cost=total_fen, **rest)
        except ValidationError as e:
            raise ClaimError([
                Problem(err["msg"], source=where, field=".".join(str(x) for x in err["loc"]))
                for err in e.errors()
            ]) from None

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
    model_validator,
)

from ..errors import ClaimError, Problem
from ..money import MAX_FEN, parse_yuan

# identifiers' door, given here too (it lives in .identifiers, which imports no pydantic)
from .identifiers import (
    LOWER_CHECK_PATTERN as LOWER_CHECK_PATTERN,
    PLAIN_ID_PATTERN as PLAIN_ID_PATTERN,
    tidy_id as tidy_id,
)

#: How a claim is paid (docs/periods.md#channel-and-payee): ``one-stop`` (一站式即时结算: the
#: hospital advanced the relief at its desk and is paid back) or ``application`` (事后申请: the
#: person applied afterwards and is paid into their bank account).
CHANNELS: tuple[str, ...] = ("one-stop", "application")
#: A bank account is this many digits (after :func:`tidy_account`).
ACCOUNT_DIGITS = (8, 30)


def tidy_account(text: str) -> str:
    """A bank account as medaid stores it: NFKC (full-width digits), every white space removed
    (cards are written in groups of four).  Valid when it is then 8 to 30 ASCII digits."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def mask_account(account: str | None) -> str | None:
    """A bank account as every display, listing, response, log and error shows it (personal
    data, docs/periods.md#personal-data): the first four and the last four digits, a ``*``
    for each digit between (``6222021234561234`` → ``6222********1234``); an account of 8
    digits or fewer is all ``*``.  Only the bank payout file holds the account itself."""
    if account is None:
        return None
    if len(account) <= 8:
        return "*" * len(account)
    return account[:4] + "*" * (len(account) - 8) + account[-4:]


def mask_name(name: str | None) -> str | None:
    """An account name as displays show it: its first character and a ``*`` for each other
    (``张三`` → ``张*``, ``欧阳小明`` → ``欧***``); a one-character name is ``*``."""
    if name is None:
        return None
    return name[:1] + "*" * (len(name) - 1) if len(name) > 1 else "*"


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
        channel: how the relief is paid (:data:`CHANNELS`): ``one-stop`` (to the hospital) or
            ``application`` (to the person's bank account); ``None``: not said (the ledger's
            periods count it as ``one-stop``, docs/periods.md).
        bank_account, account_name: the payee of an ``application`` claim (required then, and
            refused on a ``one-stop`` one): the account, 8 to 30 digits (:func:`tidy_account`),
            and its holder's name.  Personal data: never in an error message (the messages name
            the field only), masked in every display (:func:`mask_account`, :func:`mask_name`).
        household_id: the household (户) the person belongs to, tidied by :func:`tidy_id`;
            required by plans bound by a household cap pool (docs/calculation.md, *Shared caps*).
        non_compliant: the claim's non-compliant cost (政策范围外费用) in fen, optional; part of
            the burden of a second stage that includes it (*Second stage*).
        attributes: the claim's values of the attributes a rule set declares (hospital level,
            place, disease…; *Claim attributes*), as ``(name, value)`` pairs sorted by name; a
            mapping is accepted.  Values are kept as given; the rule version maps them to codes.
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
    bank_account: str | None = Field(default=None, repr=False)
    account_name: str | None = Field(default=None, repr=False)
    household_id: str | None = None
    non_compliant: StrictInt | None = Field(default=None, ge=0, le=MAX_FEN)
    attributes: tuple[tuple[str, str], ...] = ()

    @field_validator("claim_id", "person_id", mode="before")
    @classmethod
    def _tidy(cls, v: Any) -> Any:
        return tidy_id(v) if isinstance(v, str) else v

    @field_validator("household_id", mode="before")
    @classmethod
    def _tidy_household(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = tidy_id(v)
            return v or None
        return v

    @field_validator("attributes", mode="before")
    @classmethod
    def _attributes(cls, v: Any) -> Any:
        """A mapping or pairs of (name, value) → pairs sorted by name; values tidied as ids are
        (NFKC, invisible characters, spaces at the ends); an empty value is no value."""
        if v is None:
            return ()
        items = v.items() if isinstance(v, dict) else v
        out: dict[str, str] = {}
        for pair in items:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                    and all(isinstance(x, str) for x in pair)):
                raise ValueError("attributes are (name, value) pairs of text")
            name, value = pair
            value = tidy_id(value)
            if value:
                out[name.strip()] = value
        return tuple(sorted(out.items()))

    def attribute(self, name: str) -> str | None:
        """The claim's value of attribute ``name`` (as given), or ``None``."""
        for k, v in self.attributes:
            if k == name:
                return v
        return None

    @field_validator("bank_account", mode="before")
    @classmethod
    def _account(cls, v: Any) -> Any:
        """8 to 30 digits once tidied; the message never repeats the value (personal data)."""
        if v is None:
            return None
        if not isinstance(v, str):
            raise ValueError("a bank account is text of 8 to 30 digits")
        v = tidy_account(v)
        lo, hi = ACCOUNT_DIGITS
        if not (v.isascii() and v.isdigit() and lo <= len(v) <= hi):
            raise ValueError(f"a bank account is {lo} to {hi} digits (spaces between groups are allowed)")
        return v

    @field_validator("account_name", mode="before")
    @classmethod
    def _name(cls, v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, str):
            raise ValueError("an account name is text")
        v = unicodedata.normalize("NFKC", v).strip()
        if not v or len(v) > 100 or not v.isprintable():
            raise ValueError("an account name is 1 to 100 printable characters")
        return v

    @model_validator(mode="after")
    def _payee(self) -> "Claim":
        """An ``application`` claim names its payee (account and name); a ``one-stop`` claim
        (paid to the hospital) names none; a claim without a channel names none either."""
        given = self.bank_account is not None, self.account_name is not None
        if self.channel == "application" and not all(given):
            missing = [f for f, g in zip(("bank_account", "account_name"), given) if not g]
            raise ValueError("an application claim is paid to the person: give " + " and ".join(missing))
        if self.channel != "application" and any(given):
            raise ValueError("bank_account and account_name are only for channel application "
                             "(a one-stop claim is paid to the hospital)")
        return self

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
        if rest.get("non_compliant") is not None:
            rest["non_compliant"] = parse_yuan(rest["non_compliant"], field="non_compliant")
        try:
            return cls(claim_id=claim_id, person_id=person_id, date=day, self_pay=self_fen,
                       total_cost=total_fen, **rest)
        except ValidationError as e:
            raise ClaimError([
                Problem(err["msg"], source=where, field=".".join(str(x) for x in err["loc"]) or "channel")
                for err in e.errors()
            ]) from None

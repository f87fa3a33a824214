"""The JSON of the service's API: what a request may hold and what a response holds.

Money is text both ways (docs/service.md#money): a request's amount is a JSON string of yuan
read by :func:`medaid.money.parse_yuan` (``"30000"``, ``"12,345.67"``, full-width digits; at
most two decimals, at most 9,999,999.99); a JSON number is refused, naming the field, since a
number is a binary float to most JSON libraries.  A response's amount is a string with two
decimals (``"23300.00"``).  Ids are JSON strings, tidied as everywhere
(:func:`medaid.domain.claims.tidy_id`); an id sent as a number is refused (an 18-digit ID number
loses its last digits as a float).

The response models document the responses (``/openapi.json``) and are checked against them by
the tests; the service sends the library's own dicts (:meth:`medaid.ledger.Entry.to_dict`,
:func:`medaid.report.explain.explain_dict`), so the desk commands' ``--json`` and the API
print the same object.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from ..domain.claims import tidy_id
from ..errors import MoneyError
from ..money import MAX_YUAN_DIGITS, parse_yuan

_MONEY_IN = rf"^[0-9]{{1,{MAX_YUAN_DIGITS}}}(\.[0-9]{{1,2}})?$"
_MONEY_OUT = r"^-?[0-9]+\.[0-9]{2}$"


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, (int, float)):
        return "number"
    if v is None:
        return "null"
    return "array" if isinstance(v, list) else "object" if isinstance(v, dict) else type(v).__name__


def _money(v: Any) -> int:
    """Yuan text → fen; a JSON number or anything but text is refused with a clear message."""
    if not isinstance(v, str):
        raise PydanticCustomError(
            "money_type", "money is a string of yuan such as \"23300.00\", not a JSON {kind}: "
            "a JSON number is a binary float to most clients", {"kind": _json_type(v)})
    try:
        return parse_yuan(v, field="amount")
    except MoneyError as e:
        raise PydanticCustomError("money", "{message}", {"message": e.problems[0].message}) from None


def _ident(v: Any) -> str:
    if not isinstance(v, str):
        raise PydanticCustomError(
            "id_type", "an id is a JSON string, not a {kind} (an ID number held as a number loses digits)",
            {"kind": _json_type(v)})
    v = tidy_id(v)
    if not v:
        raise PydanticCustomError("id_empty", "must not be empty")
    if len(v) > 128:
        raise PydanticCustomError("id_long", "is longer than 128 characters")
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise PydanticCustomError("text_type", "must be a JSON string, not a {kind}", {"kind": _json_type(v)})
    v = v.strip()
    if not v:
        raise PydanticCustomError("text_empty", "must not be empty")
    if len(v) > 1000:
        raise PydanticCustomError("text_long", "is longer than 1000 characters")
    return v


def _date(v: Any) -> dt.date:
    """An ISO date, read as the desk's ``--date`` is (:meth:`datetime.date.fromisoformat`)."""
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v.strip())
        except ValueError:
            pass
    raise PydanticCustomError("date", "is not a date; write YYYY-MM-DD")


#: An amount of yuan in a request: a JSON string, read as fen.
Money = Annotated[int, PlainValidator(_money), WithJsonSchema({
    "type": "string", "pattern": _MONEY_IN, "examples": ["30000", "12345.67"],
    "description": "yuan as text, at most two decimals (also accepted: 12,345.67 and full-width digits)",
})]
#: An identifier in a request (claim id, person id).
Ident = Annotated[str, PlainValidator(_ident), WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 128})]
#: A non-empty text in a request (group, kind, hospital, reason).
Text = Annotated[str, PlainValidator(_text), WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 1000})]
def _account(v: Any) -> str:
    """A bank account in a request: a JSON string (checked by the claim model, which never
    repeats it); a number is refused (it would lose leading zeros)."""
    if not isinstance(v, str):
        raise PydanticCustomError("account_type", "a bank account is a JSON string of digits, not a {kind}",
                                  {"kind": _json_type(v)})
    return v


#: A bank account in a request (personal data: masked in every response).
Account = Annotated[str, PlainValidator(_account), WithJsonSchema({
    "type": "string", "pattern": "^[0-9 ]+$", "examples": ["6222021234561234"],
    "description": "8 to 30 digits (spaces between groups allowed); masked in every response"})]
#: A date in a request.
Day = Annotated[dt.date, PlainValidator(_date), WithJsonSchema({"type": "string", "format": "date"})]
#: An amount in a response: yuan, two decimals.
MoneyOut = Annotated[str, Field(pattern=_MONEY_OUT, examples=["23300.00"])]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimIn(_In):
    """A claim to settle: the options of ``medaid settle``."""

    person_id: Ident = Field(description="Person id (人员编号).")
    self_pay: Money = Field(description="Compliant self-pay (合规自付费用) in yuan.")
    date: Day | None = Field(None, description="Settlement date; picks the rule version and benefit year "
                                               "(default: today, the server's).")
    claim_id: Ident | None = Field(None, description="Claim id (结算单号): settling it again is idempotent. "
                                                     "Generated (date and a random suffix) when absent.")
    group: Text | None = Field(None, description="Beneficiary group (救助对象类别), a code or a name.")
    kind: Text | None = Field(None, description="Claim kind (就诊类型), a code or a name.")
    hospital: Text | None = Field(None, description="Medical institution (医疗机构); a desk token's own "
                                                    "hospital when absent, and no other.")
    total_cost: Money | None = Field(None, description="Total medical cost (医疗总费用) in yuan.")
    channel: Literal["one-stop", "application"] = Field(
        "one-stop", description="Who is paid in the monthly period: one-stop (the hospital, 一站式) or "
                                "application (the person's bank account, 事后申请); docs/periods.md.")
    bank_account: Account | None = Field(None, description="An application claim's bank account (required "
                                                           "then); masked in every response.")
    account_name: Text | None = Field(None, description="An application claim's account holder (required "
                                                        "then); masked in every response.")
    household_id: Ident | None = Field(None, description="Household id (户号), for plans capped per household "
                                                         "(docs/calculation.md, Shared caps).")
    non_compliant: Money | None = Field(None, description="Non-compliant cost (非合规费用) in yuan, for a second "
                                                          "stage that counts it.")
    attributes: dict[str, Text] = Field(
        default_factory=dict, examples=[{"level": "三级"}],
        description="Values of the claim attributes the rules declare (hospital level 医院等级, place "
                    "就医地…), name → value (a code or a name); a name the rules do not declare is refused.")


class QuoteIn(ClaimIn):
    """A claim to quote; the year-to-date position is the ledger's unless both are given."""

    ytd_self_pay: Money | None = Field(None, description="Year-to-date self-pay already in the pool.")
    ytd_relief: Money | None = Field(None, description="Year-to-date relief already granted in the pool.")


class ReverseIn(_In):
    """A settlement to reverse (冲正)."""

    claim_id: Ident
    reason: Text = Field(description="Why (冲正原因); recorded in the ledger.")


class HistoryIn(_In):
    """Whose file (一人一档): the person id travels in the body, never in the URL (logs)."""

    person_id: Ident
    year: Annotated[int, Field(strict=True, ge=1900, le=9999)] | None = Field(
        None, description="Only this benefit year.")


class RejectionIn(_In):
    """A claim that fails a period's review, and why."""

    claim_id: Ident
    reason: Text = Field(description="Why it fails (recorded with the reversal it makes).")


class ReviewIn(_In):
    """A period's review: the claims rejected (every other standing settlement is approved)."""

    rejections: list[RejectionIn] = Field(default_factory=list)


class TokenIn(_In):
    """A token to add."""

    role: Literal["desk", "reviewer", "admin"]
    hospital: Text | None = Field(None, description="The desk's hospital (required for a desk).")


# -- responses ----------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SegmentOut(_Out):
    """One bracket's part of the claim's base, its rate and exact relief."""

    from_: MoneyOut = Field(alias="from")
    to: MoneyOut | None
    base: MoneyOut
    rate: str = Field(examples=["0.85"])
    relief: str = Field(description="yuan, exact to four decimals", examples=["17000.0000"])


class Explanation(_Out):
    """The desk's explanation in the language asked for: the text ``medaid settle`` prints,
    and the labels of the fields."""

    lang: Literal["en", "zh"]
    title: str
    text: str
    labels: dict[str, str]


class _Result(_Out):
    """What a settlement row and a quote both hold: the claim, where it settled, the result,
    the year to date after it, the caps, the segments and the rule set."""

    person_id: str
    date: dt.date
    self_pay: MoneyOut
    group: str | None
    kind: str | None
    hospital: str | None
    plan: str
    pool: str
    benefit_year: int
    relief: MoneyOut
    patient_pays: MoneyOut
    bracket_relief: MoneyOut
    capped_by: str | None = Field(description="The limit that made the relief smaller than the bracket relief: "
                                               "annual_cap, cap:NAME (a cap pool), claim_cap, self_pay; None: none.")
    bracket: int
    ytd_self_pay: MoneyOut
    ytd_relief: MoneyOut
    annual_cap: MoneyOut | None
    claim_cap: MoneyOut | None
    base_from: MoneyOut
    base_to: MoneyOut
    segments: list[SegmentOut]
    rule_set_id: str
    rule_version: str
    rule_hash: str = Field(description="sha256 of the rule file that produced the result.")
    household_id: str | None = Field(None, description="The claim's household id (户号).")
    non_compliant: MoneyOut | None = Field(None, description="The claim's non-compliant cost (非合规费用).")
    attributes: dict[str, str] | None = Field(None, description="The claim's attribute values, name → value "
                                                                "(None or {}: none).")
    second_relief: MoneyOut | None = Field(None, description="A second stage's relief (倾斜救助, part of relief); "
                                                             "absent or None: no second stage.")
    second_pool: str | None = Field(None, description="The second stage's accumulation pool.")
    second_capped_by: str | None = Field(None, description="The limit that cut the second stage's relief.")
    ytd_burden: MoneyOut | None = Field(None, description="The second pool's year-to-date burden after the claim.")
    ytd_second_relief: MoneyOut | None = Field(None, description="The second pool's year-to-date second-stage "
                                                                 "relief after the claim.")


class CapLimitOut(_Out):
    """A cap pool's limit as a row records it (docs/calculation.md, *Shared caps*)."""

    per: Literal["person", "household"]
    annual: MoneyOut


class EntryOut(_Result):
    """A ledger row (:class:`medaid.ledger.Entry`): a settlement or a reversal."""

    seq: int
    entry: Literal["settlement", "reversal", "adjustment"]
    claim_id: str
    total_cost: MoneyOut | None
    reverses: int | None
    reason: str | None
    recorded_at: str
    desk: str | None = Field(description="The token whose desk wrote the row (None: a desk command).")
    adjusts: int | None = Field(None, description="An adjustment: the row of the settlement it re-settles.")
    reversal: int | None = Field(None, description="An adjustment: the row of the reversal that made it.")
    adjustment: MoneyOut | None = Field(None, description="An adjustment: new relief less the claim's relief "
                                                          "before it (negative when it drops).")
    channel: Literal["one-stop", "application"] | None = Field(
        None, description="Who is paid (None: not recorded, counted as one-stop).")
    bank_account: str | None = Field(None, description="The payee's bank account, masked (6222********1234).")
    account_name: str | None = Field(None, description="The payee's name, masked (张*).")
    caps: dict[str, MoneyOut] | None = Field(None, description="The cap pools the claim counts against, each "
                                                               "with the relief it took there.")
    burden: MoneyOut | None = Field(None, description="The claim's burden, the second stage's base: what the "
                                                      "patient still pays of the self-pay after the first relief "
                                                      "(plus non_compliant when the stage counts it); None: no "
                                                      "second stage.")
    cap_limits: dict[str, CapLimitOut] | None = Field(None, description="For each cap pool in caps, whom it counts "
                                                                        "per and its annual amount in force.")
    second_annual_cap: MoneyOut | None = Field(None, description="The second stage's annual cap in force.")
    prev_hash: str
    row_hash: str
    annual_cap_left: MoneyOut | None


class SettlementOut(EntryOut):
    """A settlement as recorded, with the plan's legal basis and the explanation."""

    basis: str | None
    replayed: bool = Field(description="The claim id was settled before with the same content: this is the "
                                       "original result, nothing was recorded (status 200; 201 when new).")
    claim_id_generated: bool
    explanation: Explanation


class QuoteOut(_Result):
    """What a claim would get now (:class:`medaid.Settlement`); nothing recorded."""

    claim_id: str | None
    second_bracket_relief: MoneyOut | None = Field(None, description="The second stage's increment before its caps.")
    burden: MoneyOut | None = Field(None, description="The claim's burden, the second stage's base.")
    second_segments: list[SegmentOut] | None = Field(None, description="The second stage's segments.")
    caps_after: list[dict[str, str]] | None = Field(None, description="Each cap pool the claim counts against and "
                                                                      "its relief used after the claim.")
    basis: str | None
    recorded: Literal[False]
    explanation: Explanation


class ReversalOut(EntryOut):
    """The reversal row, and the adjustments it made: the claims settled after it in its pool,
    re-settled, whose relief changed (docs/calculation.md#reversals-re-settle-the-claims-after-them)."""

    settled_after_not_recalculated: list[str] = Field(
        description="Always empty: every claim settled after it is re-settled (kept for old clients).")
    adjustments: list[EntryOut] = []


class PoolOut(_Out):
    benefit_year: int
    pool: str
    ytd_self_pay: MoneyOut
    ytd_relief: MoneyOut
    annual_cap: MoneyOut | None
    annual_cap_left: MoneyOut | None


class HistoryOut(_Out):
    """The person's file (一人一档): every row, and each pool's year-to-date position."""

    person_id: str
    year: int | None
    entries: list[EntryOut]
    pools: list[PoolOut]


class BracketOut(_Out):
    from_: MoneyOut = Field(alias="from")
    to: MoneyOut | None
    rate: str


class MatchOut(_Out):
    group: list[str]
    kind: list[str]


class PlanOut(_Out):
    name: str
    title: str | None
    match: MatchOut | None
    default: bool
    pool: str
    accumulate: Literal["claim", "year"]
    mode: Literal["marginal", "whole"]
    gate: MoneyOut | None
    claim_cap: MoneyOut | None
    annual_cap: MoneyOut | None
    basis: str | None
    brackets: list[BracketOut]


class RuleSetOut(_Out):
    id: str
    version: str
    title: str | None
    valid_from: dt.date
    valid_to: dt.date | None
    in_force: bool = Field(description="In force today (the server's date).")
    content_hash: str = Field(description="sha256 of the rule file: recorded with every result.")
    rounding: dict[str, str]
    benefit_year_start_month: int
    groups: dict[str, list[str]]
    kinds: dict[str, list[str]]
    plans: list[PlanOut]


class RulesOut(_Out):
    """The rule sets the service settles under."""

    scheme: str | None
    rule_sets: list[RuleSetOut]


class VerifyOut(_Out):
    ok: bool
    entries: int
    head_hash: str
    schema_version: int
    problems: list[str]


class HealthOut(_Out):
    status: Literal["ok"]
    version: str
    schema_version: int


class TokenOut(_Out):
    id: str
    hospital: str | None
    role: Literal["desk", "reviewer", "admin"]
    created_at: str
    revoked_at: str | None
    active: bool


class NewTokenOut(TokenOut):
    token: str = Field(description="The secret: shown this once, only its sha256 is stored.")


class EventOut(_Out):
    """One transition of a monthly period (docs/periods.md)."""

    id: int
    period: str = Field(examples=["2024-05"])
    state: Literal["open", "declared", "reviewed", "approved", "paid"]
    by: str = Field(description="Who recorded it: the token id.")
    at: str
    through_seq: int | None = Field(description="A declaration: the ledger's last row then (later rows dated "
                                                "into the period go to the next open one).")


class ReviewOutcomeOut(_Out):
    settlement: int
    period: str
    claim_id: str
    outcome: Literal["approved", "rejected"]
    reason: str | None
    reversal: int | None
    event: int


class ReviewOut(EventOut):
    """The review's event and every standing settlement's outcome."""

    outcomes: list[ReviewOutcomeOut]


class PayLineOut(_Out):
    settlements: int
    settled: MoneyOut
    reversals: int
    reversed: MoneyOut
    adjustments: int
    adjusted: MoneyOut
    net: MoneyOut = Field(description="What is paid (owed back when negative).")


class HospitalLineOut(PayLineOut):
    hospital: str | None


class PeriodOut(_Out):
    """A period: its state, transitions, totals per channel and per hospital (persons are
    counted, never listed: the bank payout file is written by ``medaid period lists``)."""

    period: str
    state: Literal["open", "declared", "reviewed", "approved", "paid"] | None
    events: list[EventOut]
    rows: int
    one_stop: PayLineOut = Field(alias="one-stop")
    application: PayLineOut
    total: PayLineOut
    hospitals: list[HospitalLineOut]
    persons: int
    reviews: list[ReviewOutcomeOut]


class PeriodSummaryOut(_Out):
    period: str
    state: Literal["open", "declared", "reviewed", "approved", "paid"]
    by: str
    at: str


class ProblemDetail(_Out):
    field: str | None
    message: str
    source: str | None
    line: int | None


class ProblemOut(_Out):
    """application/problem+json (RFC 9457) with the located problems."""

    type: str
    title: str
    status: int
    detail: str
    code: Literal["usage", "refused", "failed"]
    problems: list[ProblemDetail]

"""What the service does, once for the JSON API and the clerk's web page: settle, quote,
reverse, a person's history, the rules, verify.  Thin over the library, as the desk commands
are (:mod:`medaid.cli.desk`): each opens this thread's ledger, checks who may do it
(:data:`medaid.service.tokens.PERMISSIONS`, and a desk's own hospital), calls one library
method and returns the library's dict (:meth:`medaid.ledger.Entry.to_dict`,
:func:`medaid.report.explain.explain_dict`) with the desk's explanation
(:func:`medaid.report.explain.explain`) in the language asked for.

Rules implemented (docs/service.md):

* A desk settles, quotes and reverses only claims of its token's hospital: a claim naming no
  hospital is its hospital's; a claim naming another is refused (403), and so is the reversal
  of another hospital's settlement (checked inside the reversal's transaction).
* Every row written records the token (``desk``); settling a claim id again is idempotent
  exactly as at the desk (:meth:`medaid.ledger.Ledger.settle`).
* A refusal raises :class:`medaid.service.problems.ApiProblem`; nothing is written then.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import MedaidError, Problem
from ..report.explain import LABELS, capped_text, claim_echo, explain, explain_dict, find_plan, label
from .problems import ApiProblem, from_library
from .tokens import Token, TokenStore, found, lookup

if TYPE_CHECKING:  # pragma: no cover
    from ..domain.claims import Claim
    from ..domain.engine import Placement
    from ..domain.rules import RuleBook
    from ..ledger.backend import Admission, LedgerBase
    from ..ledger.ledger import Entry
    from .models import ClaimIn, HistoryIn, QuoteIn, ReverseIn, ReviewIn
    from .store import Ledgers

#: The response fields and the desk label that names each (the explanation's ``labels``).
FIELD_LABELS = {
    "claim_id": "claim_id", "person_id": "person", "date": "date", "group_kind": "group_kind",
    "hospital": "hospital", "plan": "plan", "pool": "pool", "benefit_year": "year", "segments": "segment",
    "base": "in_segment", "rate": "rate", "relief": "relief", "self_pay": "self_pay",
    "bracket_relief": "bracket_relief", "claim_cap": "claim_cap", "annual_cap": "annual_cap",
    "patient_pays": "patient_pays", "ytd_self_pay": "ytd_self_pay", "ytd_relief": "ytd_relief",
    "annual_cap_left": "cap_left", "rule_set_id": "rule_set", "basis": "basis", "threshold": "threshold",
    "none": "none",
}


def explanation(r: Any, claim: "Claim", book: "RuleBook", lang: str, title: str) -> dict[str, Any]:
    """The explanation object of a response: the desk's text and the labels, in ``lang``
    (``capped_by`` labelled by what limited the relief)."""
    labels = {k: LABELS[lang][v] for k, v in FIELD_LABELS.items()}
    if r.capped_by:
        labels["capped_by"] = capped_text(r.capped_by, lang, find_plan(book, r.rule_set_id, r.rule_version, r.plan)[0])
    return {"lang": lang, "title": title, "text": explain(r, claim, book, lang, title), "labels": labels}


def with_codes(claim: "Claim", at: "Placement") -> "Claim":
    """The claim with its group and kind as the codes of the version it settles under
    (``特困人员`` is recorded as ``key``), as the desk and the batch record them."""
    group, kind = at.rule_set.codes(claim.group, claim.kind)
    if (group, kind) == (claim.group, claim.kind):
        return claim
    return claim.model_copy(update={"group": group, "kind": kind})


class Caller(NamedTuple):
    """A request's bearer token and the action it asks for, not yet looked up
    (:meth:`Operations.authenticate` does, on the thread that then does the work)."""

    secret: str
    action: str


def forbid(action: str, token: Token) -> ApiProblem:
    return ApiProblem("forbidden", Problem(f"a {token.role} token may not {action}", source=f"token {token.id}"))


def entitled(token: Token | None, action: str) -> Token:
    """``token`` (as looked up: ``None`` when no active token has the secret) if its role may do
    ``action``: 401 for none, 403 outside the role."""
    if token is None:
        raise ApiProblem("unauthorized", Problem("the token is unknown or revoked", field="Authorization"),
                         headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if not token.may(action):
        raise forbid(action, token)
    return token


class Operations:
    """The service's operations on one rule book and one ledger database."""

    def __init__(self, book: "RuleBook", ledgers: "Ledgers") -> None:
        self.book = book
        self.ledgers = ledgers

    # -- plumbing ---------------------------------------------------------------------------
    def ledger(self) -> "LedgerBase":
        """This thread's ledger; one that cannot be opened is a 503."""
        try:
            return self.ledgers.get()
        except MedaidError as e:
            raise ApiProblem("unavailable", [Problem(p.message, "ledger", None, None) for p in e.problems]) from None

    def tokens(self) -> TokenStore:
        return TokenStore(self.ledger())

    @staticmethod
    def caller(secret: str | None, action: str) -> "Caller":
        """Who asks to do ``action``, before the ledger is asked: 401 without a token."""
        if not secret:
            raise ApiProblem("unauthorized", Problem("send a token: Authorization: Bearer <token>",
                                                     field="Authorization"), headers={"WWW-Authenticate": "Bearer"})
        return Caller(secret, action)

    def authenticate(self, secret: str | None, action: str) -> Token:
        """The active token of ``secret`` if its role may do ``action``: 401 without a token or
        with an unknown or revoked one, 403 outside the role (the token is looked up in the
        ledger database at every call: a revoked one is refused at once)."""
        caller = self.caller(secret, action)
        return entitled(self.tokens().authenticate(caller.secret), action)

    def _library(self, e: MedaidError) -> ApiProblem:
        return from_library(e, self.ledgers.where)

    def _hospital(self, who: Token | None, hospital: str | None) -> str | None:
        """The claim's hospital: a desk's own (and no other), else (``who`` not yet known: for
        now) as given."""
        if who is None or who.role != "desk":
            return hospital
        if hospital is not None and hospital != who.hospital:
            raise ApiProblem("forbidden", Problem(
                f"a desk of {who.hospital} settles only its own hospital's claims", field="hospital"))
        return who.hospital

    def _claim(self, who: Token | None, body: "ClaimIn", claim_id: str, day: dt.date) -> tuple["Claim", "Placement"]:
        from pydantic import ValidationError

        from ..domain.claims import Claim
        from ..domain.engine import place
        from ..io.attributes import declared_attributes

        unknown = [n for n in body.attributes if n not in declared_attributes(self.book)]
        if unknown:
            names = ", ".join(sorted(declared_attributes(self.book))) or "none"
            raise ApiProblem("invalid-request", [Problem(
                f"is not an attribute the rules declare (declared: {names})", field=f"attributes.{n}")
                for n in unknown])
        try:
            claim = Claim(
                claim_id=claim_id, person_id=body.person_id, date=day, self_pay=body.self_pay, group=body.group,
                kind=body.kind, hospital=self._hospital(who, body.hospital), total_cost=body.total_cost,
                channel=body.channel, bank_account=body.bank_account, account_name=body.account_name,
                household_id=body.household_id, non_compliant=body.non_compliant,
                attributes=tuple(body.attributes.items()))
        except ValidationError as e:  # the payee: its messages name the field, never the account
            raise ApiProblem("invalid-request", [
                Problem(str(err["msg"]).removeprefix("Value error, "),
                        field=".".join(str(x) for x in err["loc"]) or "channel") for err in e.errors()]) from None
        try:
            at = place(claim, self.book)
        except MedaidError as e:
            raise self._library(e) from None
        return with_codes(claim, at), at

    # -- the operations ---------------------------------------------------------------------
    def settle(self, who: Token, body: "ClaimIn", lang: str) -> dict[str, Any]:
        """Settle and record (idempotent on claim id); the dict has ``replayed``."""
        from ..ledger.ledger import new_claim_id

        day = body.date or dt.date.today()
        claim, at = self._claim(who, body, body.claim_id or new_claim_id(day), day)
        return self._record(claim, at, body, lang, desk=who.id)

    def settle_as(self, secret: str, body: "ClaimIn", lang: str) -> dict[str, Any]:
        """:meth:`settle` by the token whose secret this is, looked up in the settlement's own
        transaction, with its first reads and under its locks (:class:`medaid.ledger.backend.Admission`):
        one round trip to the database less than :meth:`authenticate` then :meth:`settle`, and
        the same answers.  An unknown or revoked token (401), a role that may not settle or a
        desk naming another hospital (403) is refused there, nothing written; the token is still
        read at every request (a revoked one is refused at its next).  A claim refused before
        the ledger is asked (its attributes, payee or placement) goes the long way, the token
        first, so that a bad token's refusal still comes before the claim's own."""
        from ..ledger.backend import Admission
        from ..ledger.ledger import new_claim_id

        query, placed = lookup(secret), None
        if query is not None:
            day = body.date or dt.date.today()
            with contextlib.suppress(ApiProblem):
                placed = self._claim(None, body, body.claim_id or new_claim_id(day), day)
        if query is None or placed is None:
            return self.settle(self.authenticate(secret, "settle"), body, lang)
        claim, at = placed

        def decide(rows: list[Any]) -> tuple["Claim", str]:
            who = entitled(found(rows[0] if rows else None), "settle")
            return claim.model_copy(update={"hospital": self._hospital(who, claim.hospital)}), who.id

        return self._record(claim, at, body, lang, desk=None, admit=Admission(*query, decide))

    def _record(self, claim: "Claim", at: "Placement", body: "ClaimIn", lang: str, *, desk: str | None,
                admit: "Admission | None" = None) -> dict[str, Any]:
        """Settle the placed claim in the ledger as ``desk`` (or as ``admit`` decides) and
        answer with the row, ``replayed``, and the explanation in ``lang``."""
        try:
            receipt = self.ledger().settle(claim, self.book, at, desk=desk, admit=admit)
        except MedaidError as err:
            raise self._library(err) from None
        row = receipt.entry
        d = explain_dict(row, self.book)
        d["replayed"] = receipt.replayed
        d["claim_id_generated"] = body.claim_id is None
        d["explanation"] = explanation(row, row.claim(), self.book, lang,
                                       f"{label(lang, 'settlement')} {row.claim_id}")
        return d

    def quote(self, who: Token, body: "QuoteIn", lang: str) -> dict[str, Any]:
        """What the claim would get now; nothing recorded."""
        from ..domain.engine import PoolState, quote

        if (body.ytd_self_pay is None) != (body.ytd_relief is None):
            raise ApiProblem("invalid-request", Problem(
                "give both ytd_self_pay and ytd_relief, or neither (to read the ledger)", field="ytd_relief"))
        claim, at = self._claim(who, body, body.claim_id or "-", body.date or dt.date.today())  # no id needed
        if body.ytd_self_pay is not None and body.ytd_relief is not None:
            r = quote(claim, self.book, PoolState(body.ytd_self_pay, body.ytd_relief), at=at)
        else:
            try:  # the claim's whole position in the ledger (cap pools, household, second pool)
                r = self.ledger().quote(claim, self.book, at)
            except MedaidError as e:
                raise self._library(e) from None
        d = explain_dict(r, self.book)
        d.update(claim_id=body.claim_id, group=claim.group, kind=claim.kind, hospital=claim.hospital,
                 **claim_echo(claim), recorded=False)
        d["explanation"] = explanation(r, claim, self.book, lang, label(lang, "quote"))
        return d

    def reverse(self, who: Token, body: "ReverseIn") -> dict[str, Any]:
        """Reverse a settlement; a desk only its own hospital's.  The claims settled after it in
        its pool are re-settled (docs/calculation.md#reversals-re-settle-the-claims-after-them):
        the dict lists the adjustments made (``settled_after_not_recalculated`` stays, empty)."""

        def own(settlement: "Entry") -> None:
            if who.role == "desk" and settlement.hospital != who.hospital:
                raise ApiProblem("forbidden", Problem(
                    f"a desk of {who.hospital} reverses only its own hospital's claims",
                    source=f"claim {body.claim_id}", field="claim_id"))

        lg = self.ledger()
        try:
            e = lg.reverse(body.claim_id, body.reason, desk=who.id, check=own, book=self.book)
            adjusted = lg.adjustments(e)
        except MedaidError as err:
            raise self._library(err) from None
        d = e.to_dict()
        d["settled_after_not_recalculated"] = []
        d["adjustments"] = [a.to_dict() for a in adjusted]
        return d

    def history(self, body: "HistoryIn") -> tuple[list["Entry"], dict[str, Any]]:
        """The person's rows, and the history dict: the rows and each pool's last position."""
        try:
            rows = self.ledger().history(body.person_id, body.year)
        except MedaidError as err:
            raise self._library(err) from None
        last: dict[tuple[int, str], dict[str, Any]] = {}
        entries = []
        for e in rows:
            d = e.to_dict()
            entries.append(d)
            last[(e.benefit_year, e.pool)] = d
        pools = [{"benefit_year": y, "pool": p, **{k: d[k] for k in (
            "ytd_self_pay", "ytd_relief", "annual_cap", "annual_cap_left")}} for (y, p), d in sorted(last.items())]
        return rows, {"person_id": body.person_id, "year": body.year, "entries": entries, "pools": pools}

    def rules(self) -> dict[str, Any]:
        """The rule sets of the scheme served, with their plans."""
        from ..money import fen_to_decimal

        def money(fen: int | None) -> str | None:
            return None if fen is None else str(fen_to_decimal(fen))

        today = dt.date.today()
        sets = []
        for rs in self.book.versions():
            sets.append({
                "id": rs.id, "version": rs.version, "title": rs.title,
                "valid_from": rs.valid_from.isoformat(),
                "valid_to": None if rs.valid_to is None else rs.valid_to.isoformat(),
                "in_force": rs.covers(today), "content_hash": rs.content_hash,
                "rounding": {"unit": rs.rounding.unit, "method": rs.rounding.method},
                "benefit_year_start_month": rs.benefit_year_start_month,
                "groups": {k: list(v) for k, v in rs.groups.items()},
                "kinds": {k: list(v) for k, v in rs.kinds.items()},
                "plans": [{
                    "name": p.name, "title": p.title,
                    "match": None if p.match is None else {"group": list(p.match.group), "kind": list(p.match.kind)},
                    "default": p.default, "pool": p.pool, "accumulate": p.accumulate, "mode": p.mode,
                    "gate": money(p.gate), "claim_cap": money(p.claim_cap), "annual_cap": money(p.annual_cap),
                    "basis": p.basis,
                    "brackets": [{"from": money(b.lower), "to": money(b.upper), "rate": str(b.rate)}
                                 for b in p.brackets],
                } for p in rs.plans],
            })
        return {"scheme": self.book.scheme, "rule_sets": sets}

    def add_token(self, role: str, hospital: str | None) -> tuple[Token, str]:
        try:
            return self.tokens().add(role, hospital)
        except MedaidError as e:
            raise ApiProblem("invalid-request", e.problems) from None

    def revoke_token(self, token_id: str) -> Token:
        try:
            return self.tokens().revoke(token_id)
        except MedaidError as e:
            raise ApiProblem("not-found" if e.problems[0].message == "no such token" else "conflict",
                             e.problems) from None

    # -- the monthly periods (docs/periods.md) -----------------------------------------------
    def _periods(self) -> Any:
        from ..ledger.periods import Periods

        return Periods(self.ledger())

    @staticmethod
    def _month(period: str) -> str:
        from ..ledger.periods import parse_period

        try:
            return parse_period(period)
        except ValueError as e:
            raise ApiProblem("invalid-request", Problem(str(e), field="period")) from None

    def period_step(self, who: Token, action: str, period: str) -> dict[str, Any]:
        """``open``, ``close``, ``approve`` or ``pay`` the period, recorded as done by the token."""
        period = self._month(period)
        try:
            return dict(getattr(self._periods(), action)(period, who.id).to_dict())
        except MedaidError as e:
            raise self._library(e) from None

    def period_review(self, who: Token, period: str, body: "ReviewIn") -> dict[str, Any]:
        """Review the declared period: the rejections are reversed (by the token), the rest approved."""
        period = self._month(period)
        try:
            event, outcomes = self._periods().review(
                period, who.id, [(r.claim_id, r.reason) for r in body.rejections], self.book, desk=who.id)
        except MedaidError as e:
            raise self._library(e) from None
        return {**event.to_dict(), "outcomes": [o.to_dict() for o in outcomes]}

    def period_show(self, period: str) -> dict[str, Any]:
        """The period's state, transitions, totals and review outcomes (no bank account)."""
        period = self._month(period)
        try:
            ps = self._periods()
            events, lists, reviews = ps.events(period), ps.lists(period), ps.reviews(period)
        except MedaidError as e:
            raise self._library(e) from None
        return {"period": period, "state": lists.state, "events": [e.to_dict() for e in events],
                "rows": len(lists.rows), **lists.to_dict(), "reviews": [r.to_dict() for r in reviews]}

    def periods(self) -> list[dict[str, Any]]:
        try:
            found = self._periods().periods()
        except MedaidError as e:
            raise self._library(e) from None
        return [{"period": p, "state": s, "by": e.by, "at": e.at} for p, s, e in found]

    def verify(self) -> dict[str, Any]:
        lg = self.ledger()
        v = lg.verify()
        return {"ok": v.ok, "entries": v.entries, "head_hash": v.head_hash,
                "schema_version": lg.schema_version(), "problems": list(v.problems)}

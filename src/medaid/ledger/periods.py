"""Monthly periods (清算期) of the ledger: the month's entries declared, reviewed, approved and
paid, as the county's fund runs (docs/periods.md).

Rules implemented (docs/periods.md):

* A period is a calendar month ``YYYY-MM``.  Its states follow one order, each reached by one
  command and recorded once, with who and when, in ``period_events`` (append-only: triggers
  refuse any change): ``open`` → ``declared`` (``close``) → ``reviewed`` → ``approved`` →
  ``paid``.  Any other transition is refused, nothing written (:data:`ACTIONS`).
* **Which period a ledger row belongs to** (:func:`assign`).  A row's *month* is the month of
  its claim's date (``date``: the settlement date; a reversal and an adjustment carry the date of
  the claim they reverse or re-settle).  The row belongs to the first period, from its month on,
  that was not yet declared when the row was recorded: ``close`` records the ledger's last row
  number (``through_seq``), and a row numbered after it is late for that period.  So a row
  recorded while its month is open (or not opened yet) is in its month, and nothing lands in a
  period once it is declared: a late settlement, reversal or adjustment lands in the next
  period still open, as a correction of that period.  The one exception is the period's own
  review: a claim rejected at review is reversed, and that reversal and the adjustments it makes
  belong to the period reviewed (``period_reviews`` names them), so a rejected claim is not paid.
* Review (``reviewed``): every settlement of the period that stands (not reversed) gets an
  outcome, ``approved`` or ``rejected`` with a reason; a rejection records a reversal through
  :meth:`medaid.ledger.backend.LedgerBase.reverse`'s own code, which re-settles the person's
  later claims.  All of it, the outcome rows and the event in one transaction: all or nothing.
* Payment (:func:`period_lists`): each row's money is what it moves in its pool's relief
  (:func:`medaid.ledger.schema.moves`: a settlement its relief, a reversal minus the relief it
  takes back, an adjustment its change).  ``one-stop`` rows (and rows without a channel, written
  before channels were recorded) are paid to their hospital; ``application`` rows to the
  person's bank account.  Every row is in exactly one period, so the payments of all periods add
  up to the relief the ledger holds net of reversals and adjustments.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, cast

from ..domain.claims import tidy_id
from ..domain.rules import RuleBook
from ..errors import Problem
from ..money import format_yuan
from .backend import Connection, LedgerBase, LedgerError, checked_rows, now_text
from .schema import ADJUSTMENT, REVERSAL, SELECT_LINKED, SETTLEMENT, Entry, moves

#: The states of a period, in order.
STATES = ("open", "declared", "reviewed", "approved", "paid")
#: Each command, the state it records and the state it needs (``None``: the period not opened).
ACTIONS: dict[str, tuple[str, str | None]] = {
    "open": ("open", None),
    "close": ("declared", "open"),
    "review": ("reviewed", "declared"),
    "approve": ("approved", "reviewed"),
    "pay": ("paid", "approved"),
}
#: The channels, and the one a row without a channel is paid by.
ONE_STOP, APPLICATION = "one-stop", "application"

_PERIOD = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")


class PeriodError(LedgerError):
    """A period command refused (an illegal transition, a claim not in the period...)."""


def parse_period(text: str) -> str:
    """``YYYY-MM`` as given (a month from 1900-01 to 9999-12); ``ValueError`` otherwise."""
    text = text.strip()
    m = _PERIOD.match(text)
    if not m or int(m.group(1)) < 1900:
        raise ValueError(f"{text!r} is not a period; write YYYY-MM (e.g. 2024-05)")
    return text


def month_of(day: dt.date) -> str:
    """The period of a date."""
    return f"{day.year:04d}-{day.month:02d}"


def next_period(period: str) -> str:
    """The month after ``period``."""
    y, m = int(period[:4]), int(period[5:])
    return f"{y + m // 12:04d}-{m % 12 + 1:02d}"


class Event(NamedTuple):
    """One transition of a period (a row of ``period_events``)."""

    id: int
    period: str
    state: str
    by: str
    at: str
    through_seq: int | None

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


class Review(NamedTuple):
    """One settlement's review outcome (a row of ``period_reviews``)."""

    settlement: int
    period: str
    claim_id: str
    outcome: str
    reason: str | None
    reversal: int | None
    event: int

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


class Line(NamedTuple):
    """One payee's line of a period's payment (a hospital, or a person's bank account).

    Amounts are fen: ``settled`` (the relief of the period's settlements), ``reversed``
    (taken back by its reversals, ≤ 0), ``adjusted`` (its adjustments' changes) and ``net``
    (their sum: what is paid, or owed back when negative)."""

    channel: str
    hospital: str | None
    person_id: str | None
    account_name: str | None
    bank_account: str | None
    settlements: int
    settled: int
    reversals: int
    reversed: int
    adjustments: int
    adjusted: int

    @property
    def net(self) -> int:
        return self.settled + self.reversed + self.adjusted


class PeriodLists(NamedTuple):
    """A period's payment: its rows, the lines per hospital (``one-stop``) and per person
    (``application``), and its state."""

    period: str
    state: str | None
    rows: tuple[Entry, ...]
    hospitals: tuple[Line, ...]
    persons: tuple[Line, ...]

    def to_dict(self) -> dict[str, Any]:
        """The totals per channel (``one-stop``, ``application``, ``total``) and the lines per
        hospital, amounts as yuan text; the persons only counted (their accounts are in the bank
        payout file alone)."""

        def line(x: Line) -> dict[str, Any]:
            return {"settlements": x.settlements, "settled": format_yuan(x.settled, thousands=False),
                    "reversals": x.reversals, "reversed": format_yuan(x.reversed, thousands=False),
                    "adjustments": x.adjustments, "adjusted": format_yuan(x.adjusted, thousands=False),
                    "net": format_yuan(x.net, thousands=False)}

        return {ONE_STOP: line(self.total(ONE_STOP)), APPLICATION: line(self.total(APPLICATION)),
                "total": line(self.total()), "hospitals": [{"hospital": h.hospital, **line(h)} for h in self.hospitals],
                "persons": len(self.persons)}

    def total(self, channel: str | None = None) -> Line:
        """The sum of the lines of ``channel`` (both when ``None``)."""
        lines = [x for x in (*self.hospitals, *self.persons) if channel is None or x.channel == channel]
        sums = [sum(cast(int, x[i]) for x in lines) for i in range(5, 11)]
        return Line(channel or "", None, None, None, None, *sums)


# --------------------------------------------------------------------------------------------
# which period a row belongs to


def assign(rows: Iterable[Entry], closes: dict[str, int], pinned: dict[int, str]) -> dict[int, str]:
    """Each row's period, by row number (module docstring): ``closes`` gives each declared
    period's ``through_seq``; ``pinned`` the reversals recorded by a period's review (their
    adjustments follow them)."""
    out: dict[int, str] = {}
    for e in rows:
        if e.seq in pinned:
            out[e.seq] = pinned[e.seq]
            continue
        if e.entry == ADJUSTMENT and e.reversal in pinned:
            out[e.seq] = pinned[e.reversal or 0]
            continue
        p = month_of(e.date)
        while p in closes and closes[p] < e.seq:
            p = next_period(p)
        out[e.seq] = p
    return out


def _lines(rows: Sequence[Entry]) -> tuple[tuple[Line, ...], tuple[Line, ...]]:
    """The payment lines of ``rows``: per hospital for ``one-stop`` (and no channel), per
    person and bank account for ``application``."""
    acc: dict[tuple[Any, ...], list[int]] = {}
    for e in rows:
        channel = e.channel or ONE_STOP
        key = ((ONE_STOP, e.hospital, None, None, None) if channel == ONE_STOP
               else (APPLICATION, None, e.person_id, e.account_name, e.bank_account))
        a = acc.setdefault(key, [0] * 6)
        money = moves(e)[1]
        at = {SETTLEMENT: 0, REVERSAL: 2, ADJUSTMENT: 4}[e.entry]
        a[at] += 1
        a[at + 1] += money
    lines = [Line(*k, *v) for k, v in acc.items()]
    hospitals = sorted((x for x in lines if x.channel == ONE_STOP), key=lambda x: x.hospital or "")
    persons = sorted((x for x in lines if x.channel == APPLICATION),
                     key=lambda x: (x.person_id or "", x.bank_account or "", x.account_name or ""))
    return tuple(hospitals), tuple(persons)


# --------------------------------------------------------------------------------------------
# the periods of a ledger


_EVENT_COLUMNS = "id, period, state, by_whom, at, through_seq"
_REVIEW_COLUMNS = "settlement, period, claim_id, outcome, reason, reversal, event"


class Periods:
    """The monthly periods of ``ledger`` (module docstring)."""

    def __init__(self, ledger: LedgerBase) -> None:
        self.ledger = ledger

    # -- reading ------------------------------------------------------------------------------
    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        lg = self.ledger
        try:
            with lg._reading() as con:
                return con.execute(sql, params).fetchall()
        except lg._db_errors as e:
            raise lg._busy_or_damaged(e) from None

    def events(self, period: str | None = None) -> list[Event]:
        """The transitions recorded (of one period), in order."""
        if period is None:
            return [Event(*r) for r in self._read(f"SELECT {_EVENT_COLUMNS} FROM period_events ORDER BY id")]
        return [Event(*r) for r in self._read(
            f"SELECT {_EVENT_COLUMNS} FROM period_events WHERE period = ? ORDER BY id", (period,))]

    def reviews(self, period: str) -> list[Review]:
        """The review outcomes of a period, by settlement row."""
        return [Review(*r) for r in self._read(
            f"SELECT {_REVIEW_COLUMNS} FROM period_reviews WHERE period = ? ORDER BY settlement", (period,))]

    def state(self, period: str) -> str | None:
        """The period's state (``None``: not opened)."""
        return _state(self.events(period))

    def periods(self) -> list[tuple[str, str, Event]]:
        """Every period opened: its name, state and last transition, in order of the month."""
        last: dict[str, Event] = {}
        for e in self.events():
            last[e.period] = e
        return [(p, e.state, e) for p, e in sorted(last.items())]

    def rows(self, period: str) -> list[Entry]:
        """The ledger rows that belong to ``period`` (:func:`assign`), in ledger order, each
        checked against its hash."""
        lg = self.ledger
        try:
            with lg._reading() as con:
                return _rows_of(con, period, lg._where)
        except lg._db_errors as e:
            raise lg._busy_or_damaged(e) from None

    def lists(self, period: str) -> PeriodLists:
        """The period's payment (:class:`PeriodLists`)."""
        lg = self.ledger
        try:
            with lg._reading() as con:
                rows = _rows_of(con, period, lg._where)
                state = _state([Event(*r) for r in con.execute(
                    f"SELECT {_EVENT_COLUMNS} FROM period_events WHERE period = ? ORDER BY id", (period,)).fetchall()])
        except lg._db_errors as e:
            raise lg._busy_or_damaged(e) from None
        hospitals, persons = _lines(rows)
        return PeriodLists(period, state, tuple(rows), hospitals, persons)

    # -- transitions --------------------------------------------------------------------------
    def check(self, action: str, period: str) -> None:
        """Refuse (:class:`PeriodError`) unless ``action`` may be taken on the period now (what
        the action itself checks again when it records; ``pay -o`` writes its files only then)."""
        lg = self.ledger
        try:
            with lg._reading() as con:
                _allowed(con, action, period)
        except lg._db_errors as e:
            raise lg._busy_or_damaged(e) from None

    def open(self, period: str, by: str) -> Event:
        """Open the period (it must not be opened yet)."""
        return self._step("open", period, by)

    def close(self, period: str, by: str) -> Event:
        """Declare the period (申报): from now on nothing lands in it (module docstring)."""
        return self._step("close", period, by)

    def approve(self, period: str, by: str) -> Event:
        """Approve the reviewed period (finance confirms, 财政确认)."""
        return self._step("approve", period, by)

    def pay(self, period: str, by: str) -> Event:
        """Record the approved period as paid."""
        return self._step("pay", period, by)

    def _step(self, action: str, period: str, by: str) -> Event:
        lg = self.ledger
        with lg._transaction() as con:
            lg._lock_everything(con)
            event = _transition(con, action, period, by)
        return event

    def review(self, period: str, by: str, rejections: Sequence[tuple[str, str]], book: RuleBook | None,
               *, desk: str | None = None) -> tuple[Event, list[Review]]:
        """Review the declared period: each ``(claim id, reason)`` of ``rejections`` is rejected
        and reversed (re-settling the person's later claims under ``book``), every other
        standing settlement of the period approved; in one transaction (refused as a whole,
        nothing written, if a claim is not a standing settlement of the period, is named twice,
        has no reason, or cannot be reversed).  ``desk`` is recorded on the reversals."""
        wanted: dict[str, str] = {}
        for claim_id, reason in rejections:
            cid, why = tidy_id(claim_id), reason.strip()
            if not why:
                raise PeriodError(Problem("a rejection needs a reason", source=f"claim {cid}", field="reason"))
            if cid in wanted:
                raise PeriodError(Problem("is rejected twice", source=f"claim {cid}", field="claim_id"))
            wanted[cid] = why
        lg = self.ledger
        with lg._transaction() as con:
            lg._lock_everything(con)
            _allowed(con, "review", period)
            rows = _rows_of(con, period, lg._where)
            reversed_ = {r[0] for r in con.execute(
                "SELECT reverses FROM entries WHERE entry = 'reversal'").fetchall()}
            standing = [e for e in rows if e.entry == SETTLEMENT and e.seq not in reversed_]
            by_claim = {e.claim_id: e for e in standing}
            missing = [c for c in wanted if c not in by_claim]
            if missing:
                raise PeriodError([Problem(
                    f"is not a standing settlement of period {period} (not settled in it, or already reversed); "
                    "nothing was recorded", source=f"claim {c}", field="claim_id") for c in missing])
            event = _transition(con, "review", period, by)
            reversals: dict[str, int] = {}
            for cid, why in wanted.items():
                rev = lg._reverse_in(con, cid, f"rejected at the review of period {period}: {why}",
                                     desk=desk, check=None, book=book, last=False)
                reversals[cid] = rev.seq
            out = []
            for e in standing:
                rejected = e.claim_id in wanted
                r = Review(e.seq, period, e.claim_id, "rejected" if rejected else "approved",
                           wanted.get(e.claim_id), reversals.get(e.claim_id), event.id)
                con.execute(f"INSERT INTO period_reviews ({_REVIEW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", tuple(r))
                out.append(r)
        return event, out


# --------------------------------------------------------------------------------------------
# helpers


def _state(events: Sequence[Event]) -> str | None:
    return max((e.state for e in events), key=STATES.index, default=None)


def _allowed(con: Connection, action: str, period: str) -> None:
    """Refuse ``action`` unless the period is in the state it needs."""
    state = _state([Event(*r) for r in con.execute(
        f"SELECT {_EVENT_COLUMNS} FROM period_events WHERE period = ?", (period,)).fetchall()])
    needs = ACTIONS[action][1]
    if state == needs:
        return
    now = "is not opened" if state is None else f"is {state}"
    if needs is None:
        wants = "it is opened once"
    else:
        wants = f"{action} needs a period that is {needs}"
    after = "" if state is None else f" (next: {_next_action(state)})" if _next_action(state) else " (it is done)"
    raise PeriodError(Problem(f"{now}; {wants}{after}; nothing was recorded", source=f"period {period}"))


def _next_action(state: str) -> str | None:
    return next((a for a, (_, needs) in ACTIONS.items() if needs == state), None)


def _transition(con: Connection, action: str, period: str, by: str) -> Event:
    """Record ``action`` on ``period`` inside the caller's transaction (which keeps every other
    writer out): refused unless the period is in the state the action needs."""
    by = by.strip()
    if not by:
        raise PeriodError(Problem("who records it must be named", field="by"))
    _allowed(con, action, period)
    target, _ = ACTIONS[action]
    next_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM period_events").fetchone()[0]
    through = con.execute("SELECT coalesce(max(seq), 0) FROM entries").fetchone()[0] if target == "declared" else None
    event = Event(int(next_id), period, target, by, now_text(), None if through is None else int(through))
    con.execute(f"INSERT INTO period_events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", tuple(event))
    return event


def _rows_of(con: Connection, period: str, source: str) -> list[Entry]:
    """The rows of ``period`` (:func:`assign`), read in one connection and checked."""
    rows = checked_rows(con.execute(SELECT_LINKED + " ORDER BY e.seq").fetchall(), source)
    closes = {p: int(s) for p, s in con.execute(
        "SELECT period, through_seq FROM period_events WHERE state = 'declared'").fetchall()}
    pinned = {int(r): p for p, r in con.execute(
        "SELECT period, reversal FROM period_reviews WHERE reversal IS NOT NULL").fetchall()}
    where = assign(rows, closes, pinned)
    return [e for e in rows if where[e.seq] == period]

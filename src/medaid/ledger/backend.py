"""The ledger's interface and everything in it that does not depend on the database: one
definition of settling, quoting, reversing, reading, checking rows and verifying, written once
over a small connection protocol; :class:`medaid.ledger.ledger.Ledger` (an SQLite file) and
:class:`medaid.ledger.postgres.PostgresLedger` (a PostgreSQL database) supply the connection,
the transaction and the locks.  :func:`open_ledger` opens either from a path or a URL.

Rules implemented (docs/calculation.md *Accumulation* at a desk; docs/desk.md *The ledger's
guarantees* and *The ledger on PostgreSQL*; README.md *Reliability*):

* A claim is settled against its pool's year-to-date position for its person and benefit year
  (the sums of the non-reversed settlements already in the ledger).  Reading that position and
  inserting the settlement happen in **one** transaction holding the claim's, the pool's and
  then the chain's lock (:meth:`LedgerBase._lock_claim`, :meth:`LedgerBase._lock_pool`,
  :meth:`LedgerBase._lock_chain`; on SQLite ``BEGIN IMMEDIATE`` holds all three), so two desks
  settling the same person at once are serialised: no cap is ever exceeded, no settlement lost.
  The locks are always taken in that order, one of each at most: no two transactions wait for
  each other.
* Idempotent on claim id: the same claim with the same content returns the original result and
  records nothing; with different content it is refused, naming the differing fields, until the
  original is reversed.
* A reversal (冲正) is a new row linked to the settlement it cancels; the person's year-to-date
  position drops by that claim (its relief net of its adjustments).  Reversing twice, or an
  unknown claim, is an error.  Given the rules, it re-settles the claims of the pool settled
  after it and records each change of relief as an adjustment row linked to it, in the same
  transaction (docs/calculation.md#reversals-re-settle-the-claims-after-them).
* Each row records the rule set id, version and content hash that produced it, and
  ``row_hash = sha256(prev_hash, row)`` chained over the previous row (one chain over the whole
  ledger: every append reads the head, so appends are serialised, docs/desk.md).
  :meth:`LedgerBase.verify` recomputes the chain, with the database's own checks.
* Rows are checked before they are used (README.md#reliability): every row a command reads (the
  pool's rows a settlement, quote or reversal sums, the claim's own rows, a person's history,
  the results rows) must match its ``row_hash``, the next row must chain from it, and the
  pool's recorded year-to-date positions must equal the running sums of its rows.  A row that
  does not is refused, naming its row number: nothing is computed from it, nothing recorded.
* Ids are tidied by :func:`medaid.domain.claims.tidy_id` wherever they come in.

SQL here is written with ``?`` placeholders; a backend whose driver takes another style
translates it.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NamedTuple, Protocol, Self, cast

from ..domain.claims import Claim, tidy_id
from ..domain.engine import (
    EMPTY_POOL,
    Placement,
    PoolState,
    Position,
    Positions,
    Settlement,
    place,
    placement,
    position_keys,
    quote,
    settle_at,
)
from ..domain.rules import RuleBook
from ..errors import MedaidError, Problem
from ..money import format_yuan
from .schema import (
    ADJUSTMENT,
    GENESIS,
    INSERT,
    REVERSAL,
    SELECT,
    SELECT_LINKED,
    SETTLEMENT,
    Entry,
    Stored,
    chain,
    decode,
    pool_move,
    same_result,
)

#: Default busy timeout: how long a desk waits for another desk's transaction, in seconds.
BUSY_TIMEOUT = 10.0

#: Claim fields compared when a claim id is settled again (idempotency).
CONTENT_FIELDS = ("person_id", "date", "self_pay", "group", "kind", "hospital", "total_cost",
                  "channel", "bank_account", "account_name", "household_id", "non_compliant", "attributes")

#: What a ledger URL starts with (anything else is an SQLite file's path).
URL_SCHEMES = ("postgresql://", "postgres://")


class LedgerError(MedaidError):
    """The ledger refused an operation (unknown or reversed claim, bad file, busy...)."""


class LedgerConflict(LedgerError):
    """A claim id already settled with different content; :attr:`fields` names the differences."""

    def __init__(self, claim_id: str, fields: tuple[str, ...]) -> None:
        self.claim_id = claim_id
        self.fields = fields
        super().__init__(Problem(
            "already settled with different " + ", ".join(fields)
            + "; reverse it first (medaid reverse " + claim_id + " --reason ...) to settle it again",
            source=f"claim {claim_id}",
        ))


class Receipt(NamedTuple):
    """What :meth:`LedgerBase.settle` returns: the settlement row, and whether it was already
    there (``replayed``: the same claim settled again with the same content; nothing recorded)."""

    entry: Entry
    replayed: bool


class Admission(NamedTuple):
    """A read that decides, inside a settlement's transaction, whether and as what its claim is
    settled (the service's token check: :meth:`LedgerBase.settle`'s ``admit``).  ``sql`` (with
    ``params``) runs in the settlement's transaction after its locks, with its first reads (on
    PostgreSQL, in the same round trip); ``decide`` gets its rows and returns the claim to settle
    and the ``desk`` to record, or raises (nothing is written then).  The claim returned may
    differ from the one given in its ``hospital`` only: the locks and the placement were taken
    for the rest."""

    sql: str
    params: tuple[Any, ...]
    decide: Callable[[list[Any]], tuple[Claim, str | None]]


class Verification(NamedTuple):
    """The result of :meth:`LedgerBase.verify`.

    Attributes:
        entries: rows checked.
        head_hash: ``row_hash`` of the last row (record it elsewhere to detect a cut tail).
        problems: what is wrong; empty when the ledger is intact.
    """

    entries: int
    head_hash: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def new_claim_id(day: dt.date) -> str:
    """A fresh claim id for a desk settlement: the date and a random suffix (``20240503-7F3A9C``)."""
    return f"{day:%Y%m%d}-{secrets.token_hex(3).upper()}"


def is_url(where: str | Path) -> bool:
    """Whether ``where`` names a ledger database by URL (``postgresql://…``), not a file."""
    return isinstance(where, str) and where.lower().startswith(URL_SCHEMES)


def redact(where: str) -> str:
    """A ledger's location as messages show it: a URL without its password."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", where)


# --------------------------------------------------------------------------------------------
# what the shared code needs of a database connection


class Rows(Protocol):
    """A statement's result (an ``sqlite3`` or ``psycopg`` cursor)."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """Runs one statement with ``?`` placeholders (an ``sqlite3`` connection, or the
    PostgreSQL backend's adapter)."""

    def execute(self, sql: str, params: tuple[Any, ...] = ..., /) -> Rows: ...


PoolKey = tuple[str, int, str]
"""A pool's key: person id, benefit year, pool."""

GroupKey = tuple[str, str, int]
"""A settlement group's key (docs/desk.md *The ledger's guarantees*): ``("household", household
id, benefit year)`` or ``("person", person id, benefit year)``."""


# --------------------------------------------------------------------------------------------
# the ledger


class LedgerBase(ABC):
    """A ledger, whatever database holds it.  A backend supplies :meth:`_transaction` (a write
    transaction, rolled back on any error), :meth:`_reading` (a connection for reads),
    :meth:`_busy_or_damaged` (its errors as :class:`LedgerError`), the locks (no-ops where the
    transaction already serialises every write), :meth:`_database_problems` (its own checks for
    :meth:`verify`), :meth:`schema_version` and :meth:`close`."""

    #: The database driver's errors, turned into :class:`LedgerError` by :meth:`_busy_or_damaged`.
    _db_errors: tuple[type[Exception], ...] = ()
    #: Where the ledger is, as messages name it (a path, or a URL without its password).
    _where: str = ""

    # -- what a backend supplies --------------------------------------------------------------
    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction; committed at the end, rolled back on any error."""

    @abstractmethod
    def _reading(self) -> AbstractContextManager[Connection]:
        """A connection to read from (each statement one consistent snapshot)."""

    @abstractmethod
    def _busy_or_damaged(self, e: Exception) -> LedgerError:
        """A database error as the refusal a user reads."""

    @abstractmethod
    def _database_problems(self) -> tuple[list[str], bool]:
        """The database's own checks for :meth:`verify`: the problems, and whether they are so
        bad that the rows cannot be read."""

    @abstractmethod
    def schema_version(self) -> int:
        """The last migration applied to this ledger."""

    @abstractmethod
    def close(self) -> None:
        """Close the ledger's connections."""

    def _lock_claim(self, con: Connection, claim_id: str) -> None:
        """Serialise the transactions of one claim id until this one ends (first of the locks)."""
        return None  # SQLite: ``BEGIN IMMEDIATE`` already holds the whole file

    def _lock_pool(self, con: Connection, key: PoolKey) -> None:
        """Serialise the transactions of one pool until this one ends (after the claim's)."""
        return None  # SQLite: ``BEGIN IMMEDIATE`` already holds the whole file

    def _lock_group(self, con: Connection, key: GroupKey) -> None:
        """Serialise the transactions of one settlement group (a household's or a person's
        benefit year) until this one ends (after the claim's, before the pools')."""
        return None  # SQLite: ``BEGIN IMMEDIATE`` already holds the whole file

    def _lock_chain(self, con: Connection) -> None:
        """Serialise appends to the hash chain until this transaction ends (the last lock)."""
        return None  # SQLite: ``BEGIN IMMEDIATE`` already holds the whole file

    def _lock_everything(self, con: Connection) -> None:
        """Keep every other writer out until this transaction ends (a copy into the ledger)."""
        return None  # SQLite: ``BEGIN IMMEDIATE`` already holds the whole file

    def _queries(self, con: Connection, *queries: tuple[str, tuple[Any, ...]]) -> list[list[Any]]:
        """The rows of each query, run in order (a backend may send them in one round trip)."""
        return [con.execute(sql, params).fetchall() for sql, params in queries]

    def _append(self, con: Connection, entry: Entry, recorded_at: str | None = None, *, last: bool = True) -> Entry:
        """Append ``entry`` at the chain's head under the chain's lock (:func:`_append_row`);
        ``last``: nothing else follows in this transaction (a backend may commit with it)."""
        self._lock_chain(con)
        return _append_row(con, entry, recorded_at)

    def _append_all(self, con: Connection, entries: list[Entry]) -> list[Entry]:
        """Append ``entries`` in order at the chain's head, inside the caller's transaction
        (a backend may send them in one round trip); the entries as recorded."""
        return [self._append(con, e, last=False) for e in entries]

    def _stream(self, sql: str, params: tuple[Any, ...]) -> Iterator[Any]:
        """The rows a query selects, as they are read."""
        with self._reading() as con:
            yield from con.execute(sql, params)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------
    def _rows(self, where: str = "", params: tuple[Any, ...] = ()) -> Iterator[Entry]:
        """The rows selected, each checked (:func:`checked_rows`) before it is given out."""
        try:
            for row in self._stream(SELECT_LINKED + f" {where}", params):
                yield checked_rows([row], self._where)[0]
        except self._db_errors as e:
            raise self._busy_or_damaged(e) from None

    def _all(self, where: str, params: tuple[Any, ...]) -> list[Entry]:
        """The rows selected, all checked (a refusal names every damaged row among them)."""
        try:
            with self._reading() as con:
                return checked_rows(con.execute(SELECT_LINKED + f" {where}", params).fetchall(), self._where)
        except self._db_errors as e:
            raise self._busy_or_damaged(e) from None

    def entries(self) -> Iterator[Entry]:
        """Every row, in order (each checked against its hash before it is given out)."""
        return self._rows("ORDER BY e.seq")

    def ytd(self, person_id: str, benefit_year: int, pool: str) -> PoolState:
        """The pool's year-to-date self-pay and relief for a person and benefit year: the sums of
        its settlements that are not reversed, from rows checked against their hashes."""
        try:
            with self._reading() as con:
                return pool_position(con, tidy_id(person_id), benefit_year, pool, self._where)
        except self._db_errors as e:
            raise self._busy_or_damaged(e) from None

    def history(self, person_id: str, year: int | None = None) -> list[Entry]:
        """The person's file (一人一档): settlements, reversals and adjustments in order, optionally of one
        benefit year; refused (:class:`LedgerError` naming the rows) if one of its rows does not
        match its hash."""
        person_id = tidy_id(person_id)
        if year is None:
            return self._all("WHERE e.person_id = ? ORDER BY e.seq", (person_id,))
        return self._all("WHERE e.person_id = ? AND e.benefit_year = ? ORDER BY e.seq", (person_id, year))

    def results_rows(self, year: int | None = None) -> Iterator[dict[str, Any]]:
        """One dict per settled, non-reversed claim (optionally of one benefit year), with the
        keys ``medaid.io.columns.CLAIM_FIELDS + RESULT_FIELDS`` and ``channel`` (``one-stop``,
        ``application``, or ``None`` for a claim settled without one: the report's one-stop rate,
        docs/report.md; the payee's bank account and name are never given out here): money as int
        fen, ``date`` a ``datetime.date``, ``bracket`` the highest bracket reached (0: below the
        threshold).
        A claim re-settled after a reversal (docs/calculation.md#reversals-re-settle-the-claims-after-them)
        gives its current result, that of its last adjustment (its relief net of adjustments),
        and its pool's position after it re-settled (the running sums of the claims before it
        that stand).
        A claim of the rules real schemes need that a second stage or a cap pool counts (its row
        has ``second_relief`` or ``caps``) also has, as a batch's results of those rules have
        them (:func:`_extended_columns`): ``second_relief`` (fen, 0 without a second stage),
        ``second_pool`` and ``burden`` (fen; ``None`` without a second stage) and ``caps``
        (``NAME=yuan;…``, the relief it counted in each cap pool).  The report then shows the
        second stage's relief and the persons a cap pool stopped from the ledger as from the
        results file (docs/report.md, *Cap pools*), and a batch opens from the ledger under such
        rules as from its results (docs/batch.md, *Opening balances with extended rule sets*).
        Other claims have no such keys (their results never had the columns)."""
        where = "WHERE e.entry = 'settlement' AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.reverses = e.seq)"
        params: tuple[Any, ...] = ()
        if year is not None:
            where += " AND e.benefit_year = ?"
            params = (year,)
        current, seconds = self._current(year)
        for e in self._rows(f"{where} ORDER BY e.seq", params):
            now, ytd = current.get(e.seq, (e, PoolState(e.ytd_self_pay, e.ytd_relief)))
            yield {
                "claim_id": e.claim_id, "person_id": e.person_id, "date": e.date,
                "self_pay": e.self_pay, "group": e.group, "kind": e.kind, "hospital": e.hospital,
                "total_cost": e.total_cost, "household_id": e.household_id, "non_compliant": e.non_compliant,
                "channel": e.channel, "plan": e.plan, "pool": e.pool,
                "benefit_year": e.benefit_year, "relief": now.relief, "patient_pays": now.patient_pays,
                "bracket_relief": now.bracket_relief, "capped_by": now.capped_by, "bracket": now.bracket,
                "ytd_self_pay": ytd.self_pay, "ytd_relief": ytd.relief,
                "rule_set_id": now.rule_set_id, "rule_version": now.rule_version, "rule_hash": now.rule_hash,
                **_extended_columns(now, seconds.get(e.seq)),
            }

    def _current(self, year: int | None) -> tuple[dict[int, tuple[Entry, PoolState]], dict[int, PoolState]]:
        """The current results and positions of the settlements (optionally of one benefit year)
        in a pool or second pool that a reversal or an adjustment touched, by row: each
        standing claim's last adjustment (or itself) and its pool's position after it among the
        pool's standing claims; and, for a claim with a second stage, its second pool's
        ``(B, H)`` after it among that pool's standing claims.  (Other rows' recorded positions
        are current already.)"""
        where, params = "WHERE e.entry IN ('adjustment', 'reversal')", cast(tuple[Any, ...], ())
        if year is not None:
            where, params = where + " AND e.benefit_year = ?", (year,)
        touched = self._all(where, params)
        out: dict[int, tuple[Entry, PoolState]] = {}
        for key in sorted({(e.person_id, e.benefit_year, e.pool) for e in touched}):
            c = g = 0
            for first, now in live_claims(self._all(
                    "WHERE e.person_id = ? AND e.benefit_year = ? AND e.pool = ? ORDER BY e.seq", key)):
                c, g = c + first.self_pay, g + now.relief - (now.second_relief or 0)
                out[first.seq] = (now, PoolState(c, g))
        seconds: dict[int, PoolState] = {}
        for key in sorted({(e.person_id, e.benefit_year, e.second_pool) for e in touched if e.second_pool}):
            b = h = 0
            for first, now in live_claims(self._all(
                    "WHERE e.person_id = ? AND e.benefit_year = ? AND e.second_pool = ? ORDER BY e.seq", key)):
                b, h = b + (now.burden or 0), h + (now.second_relief or 0)
                seconds[first.seq] = PoolState(b, h)
        return out, seconds

    def migrations(self) -> list[tuple[int, str, str]]:
        """The migrations applied to this ledger: number, name, when (UTC, ISO 8601)."""
        try:
            with self._reading() as con:
                return [(int(v), str(n), str(t)) for v, n, t in con.execute(
                    "SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()]
        except self._db_errors as e:
            raise self._busy_or_damaged(e) from None

    def quote(self, claim: Claim, book: RuleBook, at: Placement | None = None) -> Settlement:
        """What ``claim`` would get now, against its position in the ledger (its pool's; for a
        rule set using the rules of docs/calculation.md *Rules real schemes need*, its whole
        :class:`medaid.domain.engine.Position`: :meth:`position`); records nothing."""
        at = place(claim, book) if at is None else at
        if not at.rule_set.extended:
            return quote(claim, book, self.ytd(claim.person_id, at.benefit_year, at.plan.pool), at=at)
        return settle_at(claim, at, self.position(claim, at))

    def position(self, claim: Claim, at: Placement) -> Position:
        """The claim's whole position in the ledger (:func:`read_positions` of its person's and
        households' rows of its benefit year, checked), as :func:`medaid.domain.engine.settle_at`
        reads it."""
        persons, households = _groups_of(claim, at)
        try:
            with self._reading() as con:
                found = self._queries(con, *_group_queries(persons, households))
        except self._db_errors as e:
            raise self._busy_or_damaged(e) from None
        return read_positions(found, len(persons), self._where).position(claim, at)

    # -- writing ------------------------------------------------------------------------------
    def settle(self, claim: Claim, book: RuleBook, at: Placement | None = None, *,
               desk: str | None = None, admit: Admission | None = None) -> Receipt:
        """Settle ``claim`` and record it (docs/calculation.md, *Accumulation*): in one
        transaction holding the claim's, the pool's and the chain's locks, read the pool's
        year-to-date position, compute the relief (:func:`medaid.quote`) and insert the row.  A
        claim id already settled (not reversed) with the same content returns the original row,
        ``replayed=True``, recording nothing; with different content raises
        :class:`LedgerConflict` naming the fields.  ``at`` is the claim's
        :func:`medaid.domain.engine.place` when the caller has placed it already.  ``desk`` is
        recorded as the row's ``desk`` (the service token that wrote it).  ``admit``
        (:class:`Admission`) is read with the claim's rows, under the same locks, and decides the
        claim and desk settled, or refuses it with nothing written."""
        if at is None:
            at = place(claim, book)  # a claim no rule covers fails before the ledger is touched
        if at.rule_set.extended:
            return self._settle_extended(claim, at, desk, admit)
        key = (claim.person_id, at.benefit_year, at.plan.pool)
        with self._transaction() as con:
            self._lock_claim(con, claim.claim_id)
            self._lock_pool(con, key)  # the pool is known before anything is read
            *admitted, claim_rows, pool_rows = self._queries(
                con, *_admission(admit), (CLAIM_LAST, (claim.claim_id,)), (POOL_ROWS, key))
            claim, desk = _admitted(admit, admitted, claim, desk)
            replayed = _replayed(_last(claim_rows, self._where), claim)
            if replayed is not None:
                return replayed
            state = _position(pool_rows, self._where)
            r = quote(claim, book, state, at=at)
            entry = self._append(con, _settlement(r, claim, r.bracket)._replace(desk=desk))
        return Receipt(entry, False)

    def _settle_extended(self, claim: Claim, at: Placement, desk: str | None,
                         admit: Admission | None = None) -> Receipt:
        """:meth:`settle` of a claim whose rule set uses the rules of docs/calculation.md *Rules
        real schemes need*: in one transaction holding the claim's lock, its settlement groups'
        (its household's benefit year when a household cap pool binds its plan, then its
        person's benefit year: every position it reads is in them), its pool's and the chain's,
        read its whole position from the groups' standing rows (:func:`read_positions`), settle
        it there (:func:`medaid.domain.engine.settle_at`) and insert the row with the second
        stage's and the cap pools' results."""
        persons, households = _groups_of(claim, at)
        with self._transaction() as con:
            self._lock_claim(con, claim.claim_id)
            for h, year in households:
                self._lock_group(con, ("household", h, year))
            for p, year in persons:
                self._lock_group(con, ("person", p, year))
            self._lock_pool(con, (claim.person_id, at.benefit_year, at.plan.pool))
            reads = _admission(admit)
            found = self._queries(con, *reads, (CLAIM_LAST, (claim.claim_id,)), *_group_queries(persons, households))
            claim, desk = _admitted(admit, found[:len(reads)], claim, desk)
            claim_rows, *found = found[len(reads):]
            replayed = _replayed(_last(claim_rows, self._where), claim)
            if replayed is not None:
                return replayed
            position = read_positions(found, len(persons), self._where).position(claim, at)
            r = settle_at(claim, at, position)
            entry = self._append(con, _settlement(r, claim, r.bracket, at, position)._replace(desk=desk))
        return Receipt(entry, False)

    def reverse(self, claim_id: str, reason: str, *, desk: str | None = None,
                check: Callable[[Entry], None] | None = None, book: RuleBook | None = None) -> Entry:
        """Record a reversal (冲正) of the claim's settlement: a new row linked to it, taking its
        self-pay and relief (net of its adjustments) back out of the pool.  Unknown or already
        reversed claims, and an empty reason, are refused.  ``desk`` is recorded as the
        reversal's ``desk``; ``check`` is called with the settlement to be reversed inside the
        transaction, and whatever it raises refuses the reversal with nothing written (the
        service: a desk reverses only its own hospital's claims).

        With the rules (``book``), the claims of the pool settled after it are re-settled
        (:func:`resettled`, docs/calculation.md#reversals-re-settle-the-claims-after-them) and
        every change of relief is recorded as an adjustment row linked to the reversal and to
        the settlement it adjusts, in the same transaction under the same locks (all or
        nothing); :meth:`adjustments` reads them back.  Without the rules nothing is
        re-settled (the ledger does not hold them): later claims keep their figures."""
        claim_id, reason = tidy_id(claim_id), reason.strip()
        if not reason:
            raise LedgerError(Problem("a reversal needs a reason", source=f"claim {claim_id}", field="reason"))
        with self._transaction() as con:
            return self._reverse_in(con, claim_id, reason, desk=desk, check=check, book=book)

    def _reverse_in(self, con: Connection, claim_id: str, reason: str, *, desk: str | None,
                    check: Callable[[Entry], None] | None, book: RuleBook | None, last: bool = True) -> Entry:
        """:meth:`reverse` inside the caller's transaction ``con`` (a period's review rejects
        several claims in one); ``last``: nothing else follows in it (a backend may commit with
        the last row)."""
        self._lock_claim(con, claim_id)
        last_row = _last_of_claim(con, claim_id, self._where)
        if last_row is None:
            raise LedgerError(Problem("no such claim in the ledger", source=f"claim {claim_id}", field="claim_id"))
        if last_row.entry == REVERSAL:
            raise LedgerError(Problem(
                f"already reversed (row {last_row.seq}, {last_row.recorded_at})",
                source=f"claim {claim_id}", field="claim_id"))
        if check is not None:
            check(last_row)
        if (book is not None and book.extended) or last_row.caps or last_row.second_pool is not None:
            return self._reverse_extended(con, last_row, reason, desk=desk, book=book, last=last)
        self._lock_pool(con, (last_row.person_id, last_row.benefit_year, last_row.pool))
        rows = checked_rows(con.execute(POOL_ROWS, (last_row.person_id, last_row.benefit_year,
                                                    last_row.pool)).fetchall(), self._where)
        state = _position_of(rows, self._where)
        live = live_claims(rows)
        relief = next((now.relief for first, now in live if first.seq == last_row.seq), last_row.relief)
        changes = [] if book is None else resettled(
            [x for x in live if x[0].seq != last_row.seq], last_row.seq, book)
        reversal = last_row._replace(
            entry=REVERSAL, relief=relief, patient_pays=last_row.self_pay - relief,
            ytd_self_pay=state.self_pay - last_row.self_pay, ytd_relief=state.relief - relief,
            segments=(), reverses=last_row.seq, reason=reason, desk=desk,
        )
        entry = self._append(con, reversal, last=last and not changes)
        ytd = PoolState(entry.ytd_self_pay, entry.ytd_relief)
        now_of = {first.seq: now for first, now in live}
        for i, (first, r) in enumerate(changes):
            old = now_of[first.seq].relief
            ytd = PoolState(ytd.self_pay, ytd.relief + r.relief - old)
            self._append(con, _adjustment(first, r, entry, old, ytd), last=last and i == len(changes) - 1)
        return entry

    def _reverse_extended(self, con: Connection, row: Entry, reason: str, *, desk: str | None,
                          book: RuleBook | None, last: bool) -> Entry:
        """:meth:`reverse` where the rules of docs/calculation.md *Rules real schemes need* are
        in play (docs/calculation.md#reversals-with-these-rules), under the claim's lock.

        Its settlement groups are locked in the order every writer takes them: the households
        of the person's benefit year whose cap pools are per household (with the rules: any
        household the rules cap; without: those its own row counts in), then the persons (the
        claim's and, with the rules, every member of those households), each set sorted, then
        their pools.  Their rows are read once all are held.  With the rules every standing
        claim of those groups settled after the reversed one is settled again
        (:func:`resettled_groups`); every changed result is an adjustment row: the change of
        its total relief, with the new result (an adjustment of 0.00 records a result whose
        split between the stages or cap pools changed while the total did not)."""
        year, person = row.benefit_year, row.person_id
        hh_capped = book is not None and any(c.per == "household" for rs in book.rule_sets for c in rs.caps.values())
        own = [row.household_id] if row.household_id and any(
            per == "household" for _, per, _ in row.cap_limits or ()) else []
        members = {person}
        if hh_capped:  # every household of the person's year, and through their members, theirs
            own += _households_reached(con, year, members, set(own))
        households = sorted(set(own))
        for h in households:
            self._lock_group(con, ("household", h, year))
        if households and book is not None:
            found = con.execute(
                "SELECT DISTINCT person_id FROM entries WHERE benefit_year = ? AND household_id IN ("
                + ", ".join("?" * len(households)) + ")", (year, *households)).fetchall()
            members |= {p for (p,) in found}
        persons = sorted(members)
        for p in persons:
            self._lock_group(con, ("person", p, year))
        pools = con.execute("SELECT DISTINCT person_id, pool FROM entries WHERE benefit_year = ? AND person_id IN ("
                            + ", ".join("?" * len(persons)) + ")", (year, *persons)).fetchall()
        for p, pool in sorted(pools):
            self._lock_pool(con, (p, year, pool))
        found_rows = self._queries(con, *_group_queries([(p, year) for p in persons],
                                                        [(h, year) for h in households]))
        checked = [checked_rows(rows, self._where) for rows in found_rows]
        running = read_positions(found_rows[:len(persons)], len(persons), self._where)
        merged = sorted({e.seq: e for rows in checked for e in rows}.values(), key=lambda e: e.seq)
        live = [x for x in live_claims(merged) if x[0].person_id in members]
        now = next((n for first, n in live if first.seq == row.seq), row)
        changes = [] if book is None else resettled_groups(
            [x for x in live if x[0].seq != row.seq], row.seq, book, set(persons), set(households), year)
        pool_key = (person, year, row.pool)
        c, g = running.pools.get(pool_key, EMPTY_POOL)
        running.pools[pool_key] = PoolState(c - row.self_pay, g - now.relief + (now.second_relief or 0))
        second: dict[str, Any] = {}
        if now.second_pool is not None:
            skey = (person, year, now.second_pool)
            b, h2 = running.seconds.get(skey, EMPTY_POOL)
            running.seconds[skey] = PoolState(b - (now.burden or 0), h2 - (now.second_relief or 0))
            second = {"ytd_burden": running.seconds[skey].self_pay, "ytd_second_relief": running.seconds[skey].relief}
        reversal = row._replace(
            entry=REVERSAL, relief=now.relief, patient_pays=row.self_pay - now.relief,
            ytd_self_pay=running.pools[pool_key].self_pay, ytd_relief=running.pools[pool_key].relief,
            segments=(), reverses=row.seq, reason=reason, desk=desk,
            second_relief=now.second_relief, second_pool=now.second_pool, second_capped_by=now.second_capped_by,
            burden=now.burden, caps=now.caps, cap_limits=now.cap_limits, second_annual_cap=now.second_annual_cap,
            **second)
        entry = self._append(con, reversal, last=last and not changes)
        now_of = {first.seq: n for first, n in live}
        for i, (first, r, at, position) in enumerate(changes):
            old = now_of[first.seq]
            adj = _adjustment(first, r, entry, old.relief, PoolState(0, 0), at, position)
            key = (first.person_id, year, first.pool)
            c, g = running.pools.get(key, EMPTY_POOL)
            g += r.first_relief - (old.relief - (old.second_relief or 0))
            running.pools[key] = PoolState(c, g)
            fields: dict[str, Any] = {"ytd_self_pay": c, "ytd_relief": g}
            if r.second_pool is not None:
                skey = (first.person_id, year, r.second_pool)
                b, h2 = running.seconds.get(skey, EMPTY_POOL)
                b, h2 = b + (r.burden or 0) - (old.burden or 0), h2 + r.second_relief - (old.second_relief or 0)
                running.seconds[skey] = PoolState(b, h2)
                fields.update(ytd_burden=b, ytd_second_relief=h2)
            self._append(con, adj._replace(**fields), last=last and i == len(changes) - 1)
        return entry

    def adjustments(self, reversal: Entry) -> list[Entry]:
        """The adjustment rows that reversal ``reversal`` made (:meth:`reverse`), in order."""
        if reversal.caps is None and reversal.second_pool is None and reversal.household_id is None:
            return [e for e in self._all(
                "WHERE e.person_id = ? AND e.benefit_year = ? AND e.pool = ? AND e.entry = 'adjustment' ORDER BY e.seq",
                (reversal.person_id, reversal.benefit_year, reversal.pool)) if e.reversal == reversal.seq]
        # docs/calculation.md#reversals-with-these-rules: claims of other pools and persons too
        return self._all("WHERE e.seq > ? AND e.entry = 'adjustment' AND e.reversal = ? ORDER BY e.seq",
                         (reversal.seq, reversal.seq))

    def record_in_order(self, claims: Sequence[tuple[Claim, Placement]], book: RuleBook, *,
                        dry_run: bool = False) -> list[Receipt | Problem]:
        """Settle and record ``claims`` (each with its placement, given in ledger order: date,
        then claim id) in **one** transaction (docs/batch.md, *Recording in the ledger*): all
        the claims' locks, then all the pools' locks, each set in sorted order, are taken first
        (so no transaction waiting for one of them holds the chain's), then the claims' last
        rows and the pools' rows are read at once.  Each claim, in the order given, is then:

        * already settled (not reversed) with the same facts: its recorded row, ``replayed``;
        * already settled with other facts: refused, naming the differing fields;
        * dated before a standing settlement of its pool (by date, then claim id): refused
          (the ledger settles a pool's claims in that order; the desk may still settle it);
        * else settled against its pool's position (the claims before it in this transaction
          included) and appended; a claim id whose settlement was reversed is settled anew,
          as :meth:`settle` does.

        A refusal is a :class:`medaid.errors.Problem` (``source`` the claim; no personal data)
        and records nothing for that claim only.  ``dry_run``: the same decisions, read without
        locks and nothing recorded (the check before a run that must record all or nothing)."""
        if not claims:
            return []
        if any(at.rule_set.extended for _, at in claims):
            return self._record_extended(claims, dry_run)
        ids = sorted({c.claim_id for c, _ in claims})
        keys = sorted({(c.person_id, at.benefit_year, at.plan.pool) for c, at in claims})
        out: list[Receipt | Problem] = []
        with (self._reading() if dry_run else self._transaction()) as con:
            if not dry_run:
                for cid in ids:
                    self._lock_claim(con, cid)
                for key in keys:
                    self._lock_pool(con, key)
            found = self._queries(con, *[(CLAIM_LAST, (cid,)) for cid in ids], *[(POOL_ROWS, k) for k in keys])
            last = {cid: _last(rows, self._where) for cid, rows in zip(ids, found, strict=False)}
            pools: dict[PoolKey, tuple[PoolState, tuple[dt.date, str] | None]] = {}
            for key, rows in zip(keys, found[len(ids):], strict=True):
                entries = checked_rows(rows, self._where)
                live = [first for first, _ in live_claims(entries)]
                pools[key] = (_position_of(entries, self._where),
                              max(((e.date, e.claim_id) for e in live), default=None))
            for claim, at in claims:
                prior = _replay_or_conflict(last[claim.claim_id], claim)
                if prior is not None:
                    out.append(prior)
                    continue
                key = (claim.person_id, at.benefit_year, at.plan.pool)
                state, latest = pools[key]
                if latest is not None and (claim.date, claim.claim_id) < latest:
                    out.append(Problem(
                        f"dated {claim.date.isoformat()}, before claim {latest[1]} ({latest[0].isoformat()}) "
                        f"already in the ledger for this person's pool {at.plan.pool} of {at.benefit_year}: "
                        "the ledger settles a pool's claims in date order; settle it at the desk "
                        "(medaid settle), or reverse the later claims first", source=f"claim {claim.claim_id}",
                        field="date"))
                    continue
                r = quote(claim, book, state, at=at)
                entry = _settlement(r, claim, r.bracket)
                pools[key] = (PoolState(r.ytd_self_pay, r.ytd_relief), (claim.date, claim.claim_id))
                last[claim.claim_id] = entry
                out.append(Receipt(entry, False))
            if not dry_run:
                self._append_new(con, out)
        return out

    def _append_new(self, con: Connection, out: list[Receipt | Problem]) -> None:
        """Append the new settlements among ``out`` (in order, in the caller's transaction) and
        put them there as recorded."""
        new = [i for i, o in enumerate(out) if isinstance(o, Receipt) and not o.replayed]
        if new:
            entries = [cast(Receipt, out[i]).entry for i in new]
            for i, e in zip(new, self._append_all(con, entries), strict=True):
                out[i] = Receipt(e, False)

    def _record_extended(self, claims: Sequence[tuple[Claim, Placement]], dry_run: bool) -> list[Receipt | Problem]:
        """:meth:`record_in_order` where a claim's rule set uses the rules of docs/calculation.md
        *Rules real schemes need*: the claims' locks, then their settlement groups' (households,
        then persons), then their pools', each set sorted; the groups' rows read at once; each
        claim then settled as :meth:`settle` settles it (:func:`medaid.domain.engine.settle_at`
        against the positions so far, the claims before it in this transaction included).  A
        claim dated before a standing claim of one of its groups (its person's benefit year; its
        household's where a household cap pool binds it) is refused, as a pool's is."""
        ids = sorted({c.claim_id for c, _ in claims})
        groups = [_groups_of(c, at) for c, at in claims]
        persons = sorted({g for ps, _ in groups for g in ps})
        households = sorted({g for _, hs in groups for g in hs})
        pools = sorted({(c.person_id, at.benefit_year, at.plan.pool) for c, at in claims})
        out: list[Receipt | Problem] = []
        with (self._reading() if dry_run else self._transaction()) as con:
            if not dry_run:
                for cid in ids:
                    self._lock_claim(con, cid)
                for h, year in households:
                    self._lock_group(con, ("household", h, year))
                for p, year in persons:
                    self._lock_group(con, ("person", p, year))
                for key in pools:
                    self._lock_pool(con, key)
            found = self._queries(con, *[(CLAIM_LAST, (cid,)) for cid in ids], *_group_queries(persons, households))
            last = {cid: _last(rows, self._where) for cid, rows in zip(ids, found, strict=False)}
            group_rows = found[len(ids):]
            state = read_positions(group_rows, len(persons), self._where)
            latest: dict[tuple[str, str, int], tuple[dt.date, str]] = {}
            kinds = [("person", g) for g in persons] + [("household", g) for g in households]
            for (kind, (who, year)), rows in zip(kinds, group_rows, strict=True):
                standing = [first for first, _ in live_claims(checked_rows(rows, self._where))]
                if standing:
                    latest[(kind, who, year)] = max((e.date, e.claim_id) for e in standing)
            for (claim, at), (ps, hs) in zip(claims, groups, strict=True):
                prior = _replay_or_conflict(last[claim.claim_id], claim)
                if prior is not None:
                    out.append(prior)
                    continue
                keys = [("person", *g) for g in ps] + [("household", *g) for g in hs]
                before = max((latest[k] for k in keys if k in latest), default=None)
                if before is not None and (claim.date, claim.claim_id) < before:
                    out.append(Problem(
                        f"dated {claim.date.isoformat()}, before claim {before[1]} ({before[0].isoformat()}) "
                        f"already in the ledger for this person's (or household's) benefit year {at.benefit_year}: "
                        "the ledger settles them in date order; settle it at the desk (medaid settle), or "
                        "reverse the later claims first", source=f"claim {claim.claim_id}", field="date"))
                    continue
                position = state.position(claim, at)
                r = settle_at(claim, at, position)
                state.take(claim, at, r)
                for k in keys:
                    latest[k] = (claim.date, claim.claim_id)
                entry = _settlement(r, claim, r.bracket, at, position)
                last[claim.claim_id] = entry
                out.append(Receipt(entry, False))
            if not dry_run:
                self._append_new(con, out)
        return out

    # -- checking -----------------------------------------------------------------------------
    def verify(self) -> Verification:
        """Check the whole ledger: the database's own checks (:meth:`_database_problems`: the
        protecting triggers among them), the rows' order, hash chain and recorded hashes,
        reversal links, the recorded year-to-date positions against the running sums, and every
        settlement against the caps recorded with it (the version in force on its date, see
        :func:`over_caps`).  Reports every problem found."""
        problems, fatal = self._database_problems()
        if fatal:
            return Verification(0, "", tuple(problems))
        try:
            n, head = check_rows((Stored(tuple(r)) for r in self._stream(SELECT + " ORDER BY seq", ())), problems)
        except self._db_errors as err:
            problems.append(f"cannot read the rows: {err}")
            return Verification(0, "", tuple(problems))
        return Verification(n, head, tuple(problems))


def check_rows(rows: Iterable[Stored], problems: list[str]) -> tuple[int, str]:
    """Check the stored rows of a whole ledger, in order (:meth:`LedgerBase.verify`): numbering,
    chain, hashes, reversal and adjustment links (:func:`_adjustment_problems`), recorded
    positions, caps.  Adds what is wrong to
    ``problems``; returns the rows counted and the head hash (:data:`GENESIS` when empty)."""
    prev, n, expect_seq = GENESIS, 0, 1
    settled: dict[int, Entry] = {}
    reversed_: set[int] = set()
    reversals: dict[int, Entry] = {}
    net: dict[int, int] = {}  # a settlement's relief net of its adjustments so far
    pools: dict[tuple[str, int, str], tuple[int, int]] = {}
    shared = _SharedPositions()
    seconds: dict[int, int] = {}
    for raw in rows:
        n += 1
        seq = raw.seq
        where = f"row {seq}"
        if seq != expect_seq:
            problems.append(f"{where}: expected row {expect_seq} here (rows missing or renumbered)")
        expect_seq = seq + 1
        if raw.prev_hash != prev:
            problems.append(f"{where}: prev_hash does not match the previous row's hash "
                            "(a row was removed, inserted or changed)")
        if not raw.intact():
            problems.append(f"{where}: row_hash does not match its content (the row was altered)")
        prev = raw.row_hash
        try:
            e = raw.entry()
        except (ValueError, TypeError) as err:
            problems.append(f"{where}: unreadable ({err})")
            continue
        key = (e.person_id, e.benefit_year, e.pool)
        c, g = pools.get(key, (0, 0))
        if e.entry == SETTLEMENT:
            settled[e.seq] = e
            net[e.seq] = e.relief
        elif e.entry == ADJUSTMENT:
            problems.extend(f"{where}: {p}" for p in _adjustment_problems(e, settled, reversals, reversed_, net))
            if e.adjusts in net:
                net[e.adjusts or 0] = e.relief
        else:
            orig = settled.get(e.reverses or 0)
            if orig is None or orig.claim_id != e.claim_id:
                problems.append(f"{where}: reverses row {e.reverses}, "
                                f"which is not a settlement of claim {e.claim_id}")
            elif e.reverses in reversed_:
                problems.append(f"{where}: row {e.reverses} is reversed twice")
            reversed_.add(e.reverses or 0)
            reversals[e.seq] = e
        dc, dg = pool_move(e, seconds)
        c, g = c + dc, g + dg
        pools[key] = (c, g)
        if (e.ytd_self_pay, e.ytd_relief) != (c, g):
            problems.append(f"{where}: recorded year-to-date position differs from the sum of the rows before it")
        if e.entry == SETTLEMENT:
            problems.extend(f"{where}: {p}" for p in over_caps(e, g - dg))
        problems.extend(f"{where}: {p}" for p in shared.check(e))
    return n, prev if n else GENESIS


class _SharedPositions:
    """The running positions of cap pools and second pools over a whole ledger, in row order
    (:func:`check_rows`; docs/calculation.md *Rules real schemes need*): each row moves them
    as it moves its pool (a settlement adds its takes, a reversal takes them out, an adjustment
    adds its change against the claim's result before it).  A settlement may not take more in
    a cap pool than its annual amount leaves (``taken ≤ max(0, annual − U)``, per person or
    household as recorded with it), nor more second-stage relief than the second stage's annual
    cap leaves; the second pool's recorded position must equal the running sums."""

    def __init__(self) -> None:
        self.current: dict[int, Entry] = {}
        self.caps: dict[tuple[str, str, str, int], int] = {}
        self.seconds: dict[PoolKey, tuple[int, int]] = {}

    def check(self, e: Entry) -> list[str]:
        """Take row ``e`` (:meth:`take`); what is wrong with it, its recorded second position
        among it."""
        out, second = self.take(e)
        if second is not None and (e.ytd_burden, e.ytd_second_relief) != second:
            out.append("recorded year-to-date burden and second relief differ from the sums of the rows before it")
        return out

    def take(self, e: Entry) -> tuple[list[str], tuple[int, int] | None]:
        """Move the positions by row ``e``: the caps it breaks (a settlement), and its second
        pool's year-to-date burden and second relief after it (``None`` without a second pool),
        as its row must record them."""
        if e.caps is None and e.second_pool is None and e.entry == SETTLEMENT:
            self.current[e.seq] = e
            return [], None
        out: list[str] = []
        if e.entry == SETTLEMENT:
            old, sign = None, 1
            self.current[e.seq] = e
        elif e.entry == REVERSAL:
            old, sign = None, -1
            self.current.pop(e.reverses or 0, None)
        else:
            old, sign = self.current.get(e.adjusts or 0), 1
            if e.adjusts in self.current:
                self.current[e.adjusts or 0] = e
        annual = {n: a for n, _, a in e.cap_limits or ()}
        before = dict(_cap_takes(old, old)) if old is not None else {}
        for k, taken in _cap_takes(e, e):
            u = self.caps.get(k, 0)
            if e.entry == SETTLEMENT and k[0] in annual and taken > max(0, annual[k[0]] - u):
                out.append(f"relief {format_yuan(taken, thousands=False)} taken in cap pool {k[0]} takes it from "
                           f"{format_yuan(u, thousands=False)} past its annual amount "
                           f"({format_yuan(annual[k[0]], thousands=False)}, per {k[1]})")
            self.caps[k] = u + sign * taken - before.pop(k, 0)
        for k, taken in before.items():  # a cap pool the claim no longer counts in
            self.caps[k] = self.caps.get(k, 0) - taken
        if e.second_pool is not None:
            key = (e.person_id, e.benefit_year, e.second_pool)
            b, h = self.seconds.get(key, (0, 0))
            r2 = e.second_relief or 0
            if e.entry == SETTLEMENT and e.second_annual_cap is not None and r2 > max(0, e.second_annual_cap - h):
                out.append(f"second relief {format_yuan(r2, thousands=False)} takes the second pool's year-to-date "
                           f"relief from {format_yuan(h, thousands=False)} past its annual cap "
                           f"({format_yuan(e.second_annual_cap, thousands=False)})")
            ob, oh = (0, 0) if old is None else (old.burden or 0, old.second_relief or 0)
            b, h = b + sign * (e.burden or 0) - ob, h + sign * r2 - oh
            self.seconds[key] = (b, h)
            return out, (b, h)
        return out, None


def _adjustment_problems(e: Entry, settled: dict[int, Entry], reversals: dict[int, Entry],
                         reversed_: set[int], net: dict[int, int]) -> list[str]:
    """How adjustment ``e`` breaks its links (docs/calculation.md#reversals-re-settle-the-claims-after-them):
    it must adjust an earlier settlement of the same claim and pool that is not reversed, be
    made by an earlier reversal in the same pool of a settlement before that one, and its
    amount must be its new relief less the claim's relief net of the adjustments before it."""
    orig = settled.get(e.adjusts or 0)
    rev = reversals.get(e.reversal or 0)
    if orig is None or orig.claim_id != e.claim_id or (orig.person_id, orig.benefit_year, orig.pool) != (
            e.person_id, e.benefit_year, e.pool):
        return [f"adjusts row {e.adjusts}, which is not a settlement of claim {e.claim_id} in its pool"]
    if e.adjusts in reversed_:
        return [f"adjusts row {e.adjusts}, which is reversed"]
    in_pool = rev is not None and (rev.person_id, rev.benefit_year, rev.pool) == (e.person_id, e.benefit_year, e.pool)
    # docs/calculation.md#reversals-with-these-rules: a claim sharing a cap pool or a second pool
    # with the reversed one (its person's or household's benefit year) may be adjusted too
    shares = rev is not None and rev.benefit_year == e.benefit_year and bool(e.caps or e.second_pool)
    if rev is None or not (in_pool or shares) or (rev.reverses or 0) >= orig.seq:
        return [f"names row {e.reversal} as its reversal, which is not a reversal of an earlier claim "
                f"in the pool of claim {e.claim_id}"]
    if e.adjustment != e.relief - net[orig.seq]:
        return [f"adjustment {format_yuan(e.adjustment or 0, thousands=False)} is not the new relief "
                f"{format_yuan(e.relief, thousands=False)} less the claim's relief before it "
                f"({format_yuan(net[orig.seq], thousands=False)})"]
    return []


def live_claims(rows: Iterable[Entry]) -> list[tuple[Entry, Entry]]:
    """The settlements among a pool's ``rows`` (in ledger order) that are not reversed, each with
    its current result: its last adjustment, or itself (docs/calculation.md#reversals-re-settle-the-claims-after-them:
    a claim's relief is that of its last adjustment)."""
    current: dict[int, tuple[Entry, Entry]] = {}
    for e in rows:
        if e.entry == SETTLEMENT:
            current[e.seq] = (e, e)
        elif e.entry == REVERSAL:
            current.pop(e.reverses or 0, None)
        elif e.adjusts in current:
            current[e.adjusts or 0] = (current[e.adjusts or 0][0], e)
    return list(current.values())


def resettled(live: list[tuple[Entry, Entry]], reversed_seq: int, book: RuleBook) -> list[tuple[Entry, Settlement]]:
    """Re-settle the claims of ``live`` (:func:`live_claims` of a pool, the claim being reversed
    left out) settled after row ``reversed_seq`` (docs/calculation.md#reversals-re-settle-the-claims-after-them):
    in ledger order, each by :func:`medaid.domain.engine.quote` under the rule version in force
    on its own date, against the position of the claims before it (self-pay, and relief net of
    adjustments).  The claims whose result changes (:func:`medaid.ledger.schema.same_result`: its
    relief, or only how it is explained, such as ``capped_by``, the bracket or the base span),
    with their new settlement."""
    c = g = 0
    out: list[tuple[Entry, Settlement]] = []
    for first, now in live:
        if first.seq > reversed_seq:
            claim = first.claim()
            at = place(claim, book)
            if (at.benefit_year, at.pool) != (first.benefit_year, first.pool):
                raise LedgerError(Problem(
                    f"the rules given place claim {first.claim_id} in pool {at.pool} of {at.benefit_year}, "
                    f"not in pool {first.pool} of {first.benefit_year} where it was settled; nothing was "
                    "recorded (reverse with the rules the ledger was settled with)", source=f"claim {first.claim_id}"))
            r = quote(claim, book, PoolState(c, g), at=at)
            if not same_result(_plain_settlement(r, claim, r.bracket), now):
                out.append((first, r))
            c, g = c + r.self_pay, g + r.relief
        else:
            c, g = c + first.self_pay, g + now.relief
    return out


def _households_reached(con: Connection, year: int, persons: set[str], households: set[str]) -> list[str]:
    """The households of benefit year ``year`` that ``persons`` reach: their own, then, for
    every member of those, the member's own, until no more are found (a person who moved
    between households within the year links both: a reversal re-settles every claim whose
    cap pool it may change).  Read before the groups are locked; a household joined meanwhile
    makes :func:`resettled_groups` refuse the reversal (nothing recorded), never pay wrongly."""
    def ids(column: str, where: str, values: set[str]) -> set[str]:
        if not values:
            return set()
        rows = con.execute(
            f"SELECT DISTINCT {column} FROM entries WHERE benefit_year = ? AND household_id IS NOT NULL "
            f"AND {where} IN (" + ", ".join("?" * len(values)) + ")", (year, *sorted(values))).fetchall()
        return {v for (v,) in rows}

    while True:
        reached = households | ids("household_id", "person_id", persons)
        members = persons | ids("person_id", "household_id", reached)
        if (reached, members) == (households, persons):
            return sorted(households)
        households, persons = reached, members


def resettled_groups(live: list[tuple[Entry, Entry]], reversed_seq: int, book: RuleBook, persons: set[str],
                     households: set[str], year: int) -> list[tuple[Entry, Settlement, Placement, Position]]:
    """Re-settle the standing claims of ``live`` (:func:`live_claims` of the settlement groups'
    rows, the reversed claim left out) settled after row ``reversed_seq``
    (docs/calculation.md#reversals-with-these-rules): the claims before it keep their results
    and make up the positions (:func:`_take_stored`); each claim after it, in ledger order, is
    placed under the rule version in force on its own date and settled against the positions
    so far (:func:`medaid.domain.engine.settle_at`), which then take its new result.  The
    claims whose result changes (:func:`medaid.ledger.schema.same_result`: total relief, second
    relief, burden, a cap pool's take, or only how it is explained), with their new
    settlement, placement and the position it was settled against.  Refused, nothing
    recorded, when the rules place a claim elsewhere than it was settled, or it reads a
    position outside the groups read (``persons``, ``households`` of ``year``)."""
    state = Positions()
    out: list[tuple[Entry, Settlement, Placement, Position]] = []
    for first, now in live:
        if first.seq < reversed_seq:
            _take_stored(state, first, now)
            continue
        claim = first.claim()
        at = placement(claim, book)
        where = f"claim {first.claim_id}"
        if isinstance(at, Problem):
            raise LedgerError(Problem(f"{at.message}; nothing was recorded (reverse with the rules the ledger "
                                      "was settled with)", source=where, field=at.field))
        second = None if at.plan.second is None else at.plan.second.pool
        if (at.benefit_year, at.pool, second) != (first.benefit_year, first.pool, now.second_pool):
            raise LedgerError(Problem(
                f"the rules given place claim {first.claim_id} in pool {at.pool} of {at.benefit_year}, "
                f"not in pool {first.pool} of {first.benefit_year} where it was settled; nothing was "
                "recorded (reverse with the rules the ledger was settled with)", source=where))
        _, cap_keys, _ = position_keys(claim, at)
        outside = [k for k in cap_keys if (k[2] not in households if k[1] == "household" else k[2] not in persons)]
        if first.person_id not in persons or at.benefit_year != year or outside:
            raise LedgerError(Problem(
                f"claim {first.claim_id} counts in a household or cap pool this reversal does not hold; nothing "
                "was recorded", source=where))
        position = state.position(claim, at)
        r = settle_at(claim, at, position)
        state.take(claim, at, r)
        if not same_result(_settlement(r, claim, r.bracket, at, position), now):
            out.append((first, r, at, position))
    return out


def _adjustment(first: Entry, r: Settlement, reversal: Entry, old_relief: int, ytd: PoolState,
                at: Placement | None = None, position: Position | None = None) -> Entry:
    """The adjustment row of settlement ``first`` re-settled as ``r`` (at ``at`` against
    ``position``, where the rules of *Rules real schemes need* are in play) after ``reversal``;
    ``ytd`` is the pool's position after it."""
    return _settlement(r, first.claim(), r.bracket, at, position)._replace(
        entry=ADJUSTMENT, ytd_self_pay=ytd.self_pay, ytd_relief=ytd.relief, adjusts=first.seq,
        reversal=reversal.seq, adjustment=r.relief - old_relief, desk=reversal.desk)


def open_ledger(
    where: str | Path,
    *,
    create: bool = True,
    synchronous: str = "FULL",
    busy_timeout: float = BUSY_TIMEOUT,
    pool_size: int = 1,
) -> LedgerBase:
    """The ledger at ``where``: a ``postgresql://`` URL (:class:`medaid.ledger.postgres.PostgresLedger`,
    a pool of up to ``pool_size`` connections) or an SQLite file's path
    (:class:`medaid.ledger.ledger.Ledger`).  ``create=False`` refuses a ledger that does not exist
    yet instead of creating it; ``synchronous`` other than ``FULL`` (tests only) lets a commit
    be acknowledged before it is on disk."""
    if is_url(where):
        try:
            from .postgres import PostgresLedger
        except ImportError as e:
            raise LedgerError(Problem(
                f"a ledger on PostgreSQL needs psycopg ({e}): pip install 'medaid[postgres]'",
                source=redact(str(where)))) from None
        return PostgresLedger(str(where), create=create, synchronous=synchronous,
                              busy_timeout=busy_timeout, pool_size=pool_size)
    from .ledger import Ledger

    return Ledger(where, create=create, synchronous=synchronous, busy_timeout=busy_timeout)


# --------------------------------------------------------------------------------------------
# helpers


def over_caps(e: Entry, granted_before: int) -> list[str]:
    """How settlement ``e`` breaks the caps in force for it, given the relief its pool held
    before it (the running sum of the rows before).  A settlement may not push the year's relief
    past its own version's annual cap: ``relief ≤ max(0, annual_cap − G_{k−1})``.  A pool that
    already holds more than a cap lowered by a later version is not a problem (its later
    claims get 0, docs/calculation.md#version-changes-inside-a-benefit-year).  Nor may a
    settlement exceed its claim cap."""

    def yuan(fen: int) -> str:
        return format_yuan(fen, thousands=False)

    out = []
    first = e.relief - (e.second_relief or 0)  # a second stage has its own caps
    if e.annual_cap is not None and first > max(0, e.annual_cap - granted_before):
        out.append(f"relief {yuan(first)} takes the year-to-date relief from "
                   f"{yuan(granted_before)} past the annual cap in force for it ({yuan(e.annual_cap)})")
    if e.claim_cap is not None and first > e.claim_cap:
        out.append(f"relief {yuan(first)} is above the claim cap in force for it ({yuan(e.claim_cap)})")
    return out


def _admission(admit: Admission | None) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """The admission's read, to run first among a settlement's reads (none without one)."""
    return () if admit is None else ((admit.sql, admit.params),)


def _admitted(admit: Admission | None, rows: list[list[Any]], claim: Claim,
              desk: str | None) -> tuple[Claim, str | None]:
    """The claim and desk to settle: the admission's decision on its rows (``rows``: its one
    result), or ``claim`` and ``desk`` as they are without one."""
    if admit is None:
        return claim, desk
    decided, desk = admit.decide(rows[0])
    if decided.model_copy(update={"hospital": claim.hospital}) != claim:
        raise ValueError("an admission may change a claim's hospital only")
    return decided, desk


def _replayed(last: Entry | None, claim: Claim) -> Receipt | None:
    """A desk settlement of ``claim`` whose id is already settled (``last``, its last settlement
    or reversal): the recorded row, replayed, with the same facts; :class:`LedgerConflict`
    naming the fields with others; ``None`` when it is to be settled (new, or reversed)."""
    if last is None or last.entry != SETTLEMENT:
        return None
    diff = differing_fields(last, claim)
    if diff:
        raise LedgerConflict(claim.claim_id, diff)
    return Receipt(last, True)


def _replay_or_conflict(prior: Entry | None, claim: Claim) -> Receipt | Problem | None:
    """A batch's outcome for ``claim`` when its id is already settled (``prior``, its last
    settlement or reversal): the recorded row, replayed, with the same facts; a conflict
    naming the fields with others; ``None`` when it is to be settled (new, or reversed)."""
    if prior is None or prior.entry != SETTLEMENT:
        return None
    diff = differing_fields(prior, claim)
    if not diff:
        return Receipt(prior, True)
    conflict = LedgerConflict(claim.claim_id, diff).problems[0]
    return Problem(conflict.message, source=conflict.source, field="claim_id")


def differing_fields(recorded: Entry, claim: Claim) -> tuple[str, ...]:
    """The claim fields in which ``claim`` differs from the recorded settlement."""
    return tuple(f for f in CONTENT_FIELDS if _content(recorded, f) != _content(claim, f))


def _content(x: Entry | Claim, field: str) -> Any:
    """A content field as compared: no attributes stored (``None``) is the claim's none (``()``)."""
    v = getattr(x, field)
    return (v or ()) if field == "attributes" else v


def now_text() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


#: A pool's rows (parameters: person id, benefit year, pool) and a claim's last settlement or
#: reversal (claim id; its adjustments are read with its pool).
POOL_ROWS = SELECT_LINKED + " WHERE e.person_id = ? AND e.benefit_year = ? AND e.pool = ? ORDER BY e.seq"
CLAIM_LAST = SELECT_LINKED + " WHERE e.claim_id = ? AND e.entry <> 'adjustment' ORDER BY e.seq DESC LIMIT 1"


#: A person's rows of a benefit year, and a household's (parameters: the id, the benefit year):
#: the settlement groups of docs/calculation.md *Rules real schemes need* at a desk.
PERSON_ROWS = SELECT_LINKED + " WHERE e.person_id = ? AND e.benefit_year = ? ORDER BY e.seq"
HOUSEHOLD_ROWS = SELECT_LINKED + " WHERE e.household_id = ? AND e.benefit_year = ? ORDER BY e.seq"


def _groups_of(claim: Claim, at: Placement) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The settlement groups whose rows hold ``claim``'s position (docs/desk.md *The ledger's
    guarantees*): its person's benefit year (its pools, second pools and per-person cap pools),
    and the household's benefit year for each per-household cap pool binding it."""
    _, cap_keys, _ = position_keys(claim, at)
    households = sorted({(who, year) for _, per, who, year in cap_keys if per == "household"})
    return [(claim.person_id, at.benefit_year)], households


def _group_queries(persons: Sequence[tuple[str, int]],
                   households: Sequence[tuple[str, int]]) -> list[tuple[str, tuple[Any, ...]]]:
    """The queries of the groups' rows: the persons' first, then the households'."""
    return [(PERSON_ROWS, p) for p in persons] + [(HOUSEHOLD_ROWS, h) for h in households]


def _extended_columns(now: Entry, second: PoolState | None) -> dict[str, Any]:
    """The extended result columns (:data:`medaid.io.columns.EXTENDED_RESULT_FIELDS`)
    :meth:`LedgerBase.results_rows` gives a claim whose current result ``now`` a second stage
    or a cap pool counts (none for another claim): its ``second_relief`` (0 without a second
    stage), ``second_capped_by``, ``second_pool``, ``burden``, its second pool's ``ytd_burden``
    and ``ytd_second_relief`` after it (``second``: recomputed among the standing claims; else
    as recorded) and ``caps`` as a batch writes it (``medical=4640.00;household=4640.00``; here
    in the order of the names)."""
    if now.second_relief is None and now.caps is None:
        return {}
    caps = ";".join(f"{name}={format_yuan(fen, thousands=False)}" for name, fen in now.caps or ())
    b, h = (now.ytd_burden, now.ytd_second_relief) if second is None else second
    if now.second_pool is None:
        b = h = None
    return {"second_relief": now.second_relief or 0, "second_capped_by": now.second_capped_by,
            "second_pool": now.second_pool, "burden": now.burden, "ytd_burden": b, "ytd_second_relief": h,
            "caps": caps or None}


def read_positions(found: Sequence[list[tuple[Any, ...]]], persons: int, source: str) -> Positions:
    """The positions the standing rows give (:class:`medaid.domain.engine.Positions`, keyed as
    the engine keys them), from ``found``: the rows of ``persons`` person-years (whole: their
    pools' positions are checked against the running sums recorded on their rows, as
    :func:`_position` checks a pool), then of households (each claim counted once).  Every row
    is checked against its hash first.  Each standing claim (not reversed) counts with its
    current result (its last adjustment, or its settlement): its self-pay and relief in its
    pool, its burden and second relief in its second pool, and the relief it took in each cap
    pool, per person or per household as recorded with it (docs/calculation.md *Rules real
    schemes need*)."""
    checked = [checked_rows(rows, source) for rows in found]
    pools: dict[PoolKey, list[Entry]] = {}
    for rows in checked[:persons]:
        for e in rows:
            pools.setdefault((e.person_id, e.benefit_year, e.pool), []).append(e)
    state = Positions({k: _position_of(v, source) for k, v in pools.items()})
    merged = sorted({e.seq: e for rows in checked for e in rows}.values(), key=lambda e: e.seq)
    for first, now in live_claims(merged):
        _take_stored(state, first, now, pool=False)
    return state


def _take_stored(state: Positions, first: Entry, now: Entry, *, pool: bool = True) -> None:
    """Add a standing claim (its settlement ``first``, its current result ``now``) to the
    positions it counts in: its pool (``pool``), its second pool, its cap pools."""
    year = first.benefit_year
    if pool:
        key = (first.person_id, year, first.pool)
        c, g = state.pools.get(key, EMPTY_POOL)
        state.pools[key] = PoolState(c + first.self_pay, g + now.relief - (now.second_relief or 0))
    if now.second_pool is not None:
        key = (first.person_id, year, now.second_pool)
        b, h = state.seconds.get(key, EMPTY_POOL)
        state.seconds[key] = PoolState(b + (now.burden or 0), h + (now.second_relief or 0))
    for k, taken in _cap_takes(first, now):
        state.caps[k] = state.caps.get(k, 0) + taken


def _cap_takes(first: Entry, now: Entry) -> list[tuple[tuple[str, str, str, int], int]]:
    """The cap pools a standing claim's current result ``now`` counts in, keyed as
    :func:`medaid.domain.engine.position_keys` keys them, with the relief it took there."""
    per = {n: p for n, p, _ in now.cap_limits or ()}
    out = []
    for name, taken in now.caps or ():
        whom = per.get(name, "person")
        who = (first.household_id or first.person_id) if whom == "household" else first.person_id
        out.append(((name, whom, who, first.benefit_year), taken))
    return out


def shared_take(con: Connection, e: Entry, source: str) -> tuple[list[str], tuple[int, int] | None]:
    """What row ``e`` does to the cap pools and the second pool it counts in, appended at the
    head of the ledger ``con`` reads (:meth:`_SharedPositions.take`, after the ledger's rows of
    ``e``'s person's benefit year and, with a household id, its household's: every row of
    those positions is among them): the caps it would break, and the second pool's position it
    must record (``None`` without a second pool).  ``e``'s links are the ledger's numbers."""
    queries = [(PERSON_ROWS, (e.person_id, e.benefit_year))]
    if e.household_id is not None:
        queries.append((HOUSEHOLD_ROWS, (e.household_id, e.benefit_year)))
    found = {r.seq: r for q, params in queries for r in checked_rows(con.execute(q, params).fetchall(), source)}
    shared = _SharedPositions()
    for r in sorted(found.values(), key=lambda r: r.seq):
        shared.take(r)
    return shared.take(e._replace(seq=max(found, default=0) + 1))


def pool_position(con: Connection, person_id: str, year: int, pool: str, source: str) -> PoolState:
    """The pool's position (:func:`_position` of its rows)."""
    return _position(con.execute(POOL_ROWS, (person_id, year, pool)).fetchall(), source)


def _position(linked: list[tuple[Any, ...]], source: str) -> PoolState:
    """The pool's position: the sums of its rows (settlements less reversals, plus adjustments),
    each row checked against its hash and its recorded year-to-date position against the
    running sums (a row removed from the middle of the pool shows there); refused naming the
    rows otherwise."""
    return _position_of(checked_rows(linked, source), source)


def _position_of(rows: list[Entry], source: str) -> PoolState:
    """:func:`_position` of rows already checked against their hashes."""
    c = g = 0
    off: list[int] = []
    seconds: dict[int, int] = {}
    for e in rows:
        dc, dg = pool_move(e, seconds)
        c, g = c + dc, g + dg
        if (e.ytd_self_pay, e.ytd_relief) != (c, g):
            off.append(e.seq)
    if off:
        raise _damaged(off, source, "its recorded year-to-date position differs from the sum of the pool's rows "
                       "before it (a row was removed or altered)")
    return PoolState(c, g)


def _last_of_claim(con: Connection, claim_id: str, source: str) -> Entry | None:
    return _last(con.execute(CLAIM_LAST, (claim_id,)).fetchall(), source)


def _last(linked: list[tuple[Any, ...]], source: str) -> Entry | None:
    """The claim's last row, checked (``None``: the claim is not in the ledger)."""
    return checked_rows(linked, source)[0] if linked else None


def checked_rows(rows: list[tuple[Any, ...]], source: str) -> list[Entry]:
    """Rows read with :data:`SELECT_LINKED` as entries, once each is known intact: its
    ``row_hash`` matches its content and the next row (if any) chains from it.  Otherwise
    :class:`LedgerError` naming the damaged rows (never their content: it holds ID numbers)."""
    out: list[Entry] = []
    bad: list[int] = []
    for linked in rows:
        raw = Stored.read(linked)
        if not raw.chained():
            bad.append(raw.seq)
            continue
        try:
            out.append(raw.entry())
        except (ValueError, TypeError, KeyError):
            bad.append(raw.seq)
    if bad:
        raise _damaged(bad, source, "it does not match its hash (altered or damaged)")
    return out


def _damaged(seqs: list[int], source: str, why: str) -> LedgerError:
    shown = ", ".join(str(s) for s in seqs[:10]) + (f" and {len(seqs) - 10} more" if len(seqs) > 10 else "")
    rows = "row" if len(seqs) == 1 else "rows"
    return LedgerError(Problem(
        f"ledger {rows} {shown} cannot be trusted: {why}; nothing was computed from it and nothing "
        "was recorded; run 'medaid ledger verify' and restore the ledger from a copy", source=source))


def _settlement(r: Settlement, claim: Claim, bracket: int, at: Placement | None = None,
                position: Position | None = None) -> Entry:
    """The settlement row of ``claim`` settled as ``r`` (its place in the chain still blank);
    with its placement and the position it was settled against, the second stage's and the cap
    pools' results too (:func:`_extended_fields`)."""
    row = _plain_settlement(r, claim, bracket)
    return row if at is None or position is None else row._replace(**_extended_fields(r, at, position))


def _extended_fields(r: Settlement, at: Placement, position: Position) -> dict[str, Any]:
    """The row fields of docs/calculation.md *Rules real schemes need* for ``r``, settled at
    ``at`` against ``position``: the second stage's relief, pool, limit, the claim's burden, the
    second pool's position after it and its annual cap; each cap pool the claim counts against
    with the relief it took there (``U`` after less ``U`` before) and its limit in force (whom it
    counts per, its annual amount).  ``None`` where the plan has no second stage or cap pool."""
    before = dict(position.caps)
    pools = at.rule_set.caps
    second = at.plan.second
    return {
        "second_relief": None if r.second_pool is None else r.second_relief,
        "second_pool": r.second_pool, "second_capped_by": r.second_capped_by, "burden": r.burden,
        "ytd_burden": r.ytd_burden, "ytd_second_relief": r.ytd_second_relief,
        "second_annual_cap": None if second is None else second.annual_cap,
        "caps": tuple((n, u - before.get(n, 0)) for n, u in r.caps_after) or None,
        "cap_limits": tuple((n, pools[n].per, pools[n].annual) for n, _ in r.caps_after) or None,
    }


def _plain_settlement(r: Settlement, claim: Claim, bracket: int) -> Entry:
    """The settlement row of ``claim`` settled as ``r``, without the fields of *Rules real
    schemes need*."""
    return Entry(
        seq=0, entry=SETTLEMENT, claim_id=r.claim_id, person_id=r.person_id, date=r.date,
        self_pay=r.self_pay, group=claim.group, kind=claim.kind, hospital=claim.hospital,
        total_cost=claim.total_cost, plan=r.plan, pool=r.pool, benefit_year=r.benefit_year,
        relief=r.relief, patient_pays=r.patient_pays, bracket_relief=r.bracket_relief,
        capped_by=r.capped_by, bracket=bracket, ytd_self_pay=r.ytd_self_pay, ytd_relief=r.ytd_relief,
        annual_cap=r.annual_cap, claim_cap=r.claim_cap, base_from=r.base_from, base_to=r.base_to,
        segments=tuple(r.segments), rule_set_id=r.rule_set_id, rule_version=r.rule_version,
        rule_hash=r.rule_hash, reverses=None, reason=None, recorded_at="", desk=None, adjusts=None,
        reversal=None, adjustment=None, channel=claim.channel, bank_account=claim.bank_account,
        account_name=claim.account_name, household_id=claim.household_id, non_compliant=claim.non_compliant,
        attributes=claim.attributes or None,
        second_relief=None, second_pool=None, second_capped_by=None, ytd_burden=None, ytd_second_relief=None,
        caps=None, burden=None, cap_limits=None, second_annual_cap=None, prev_hash="", row_hash="",
    )


def _append_row(con: Connection, entry: Entry, recorded_at: str | None = None) -> Entry:
    """Insert ``entry`` at the end of the chain (inside the caller's transaction, which holds
    the chain's lock); the entry as recorded (numbered, timed now unless ``recorded_at`` says,
    chained), read back from its stored values."""
    head = con.execute("SELECT seq, row_hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    values = chain(entry, seq, prev, recorded_at or now_text())
    con.execute(INSERT, values)
    return decode(values)

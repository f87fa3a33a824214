"""The desk ledger (台账): an append-only, hash-chained SQLite file of settlements and reversals.

Rules implemented (docs/calculation.md *Accumulation* at a desk; docs/desk.md *The ledger's
guarantees*; README.md *Reliability*):

* A claim is settled against its pool's year-to-date position for its person and benefit year
  (the sums of the non-reversed settlements already in the ledger).  Reading that position and
  inserting the settlement happen in **one** ``BEGIN IMMEDIATE`` transaction, so two desks
  settling the same person at once are serialised: no cap is ever exceeded, no settlement lost.
* Idempotent on claim id: the same claim with the same content returns the original result and
  records nothing; with different content it is refused, naming the differing fields, until the
  original is reversed.
* A reversal (冲正) is a new row linked to the settlement it cancels; the person's year-to-date
  position drops by that claim.  Reversing twice, or an unknown claim, is an error.  Settlements
  recorded after the reversed one keep their recorded figures (the ledger is append-only); to
  settle them again against the new position, reverse and settle them again.
* Rows are never updated or deleted (triggers refuse it).  Each row records the rule set id,
  version and content hash that produced it, and ``row_hash = sha256(prev_hash, row)`` chained
  over the previous row; :meth:`Ledger.verify` recomputes the chain and runs
  ``PRAGMA integrity_check``.
* Rows are checked before they are used (README.md#reliability): every row a command reads (the pool's
  rows a settlement, quote or reversal sums, the claim's own rows, a person's history, the
  results rows) must match its ``row_hash``, the next row must chain from it, and the pool's
  recorded year-to-date positions must equal the running sums of its rows.  A row that does
  not is refused, naming its row number: nothing is computed from it, nothing is recorded.
* Ids are tidied by :func:`medaid.domain.claims.tidy_id` wherever they come in (claims, look-ups).
* The file is created ``0600`` (owner only: it holds ID numbers), and so are its ``-wal`` and
  ``-shm`` files; an existing file keeps its mode.
* The file is opened in WAL mode with ``synchronous=FULL`` and a busy timeout.  A file that is
  not SQLite, is damaged, or belongs to another application is refused at open, and nothing is
  written to it.  Schema migrations are a small registry recorded in the file.

The schema, its migrations and the row model (:class:`Entry`, stored, hashed and read by field
name) are in :mod:`medaid.ledger.schema`.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote as _urlquote

from ..domain.claims import Claim, tidy_id
from ..domain.engine import Placement, PoolState, Settlement, place, quote
from ..domain.rules import RuleBook
from ..errors import MedaidError, Problem
from ..money import format_yuan
from .schema import (
    APPLICATION_ID,
    GENESIS,
    INSERT,
    MIGRATIONS,
    REVERSAL,
    SCHEMA_VERSION,
    SELECT,
    SELECT_LINKED,
    SETTLEMENT,
    TRIGGERS,
    Entry,
    Stored,
    chain,
    decode,
    migrate,
)

#: Names of :mod:`.schema` this module gives out too (``from medaid.ledger.ledger import Entry``).
__all__ = [
    "APPLICATION_ID", "GENESIS", "MIGRATIONS", "REVERSAL", "SCHEMA_VERSION", "SETTLEMENT", "BUSY_TIMEOUT",
    "CONTENT_FIELDS", "Entry", "Ledger", "LedgerConflict", "LedgerError", "Receipt", "Verification",
    "differing_fields", "new_claim_id",
]

#: Default busy timeout: how long a desk waits for another desk's transaction, in seconds.
BUSY_TIMEOUT = 10.0

#: Claim fields compared when a claim id is settled again (idempotency).
CONTENT_FIELDS = ("person_id", "date", "self_pay", "group", "kind", "hospital", "total_cost")


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


# --------------------------------------------------------------------------------------------
# records


class Receipt(NamedTuple):
    """What :meth:`Ledger.settle` returns: the settlement row, and whether it was already there
    (``replayed``: the same claim settled again with the same content; nothing was recorded)."""

    entry: Entry
    replayed: bool


class Verification(NamedTuple):
    """The result of :meth:`Ledger.verify`.

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


# --------------------------------------------------------------------------------------------
# the ledger


class Ledger:
    """An SQLite ledger file.  ``create=False`` refuses a missing file instead of creating it
    (read-only commands).  ``synchronous`` is ``FULL`` (every commit reaches the disk before it
    is acknowledged) unless a test asks otherwise."""

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        synchronous: str = "FULL",
        busy_timeout: float = BUSY_TIMEOUT,
    ) -> None:
        self.path = Path(path)
        self._where = str(self.path)
        if synchronous.upper() not in ("FULL", "NORMAL", "OFF", "EXTRA"):
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self._con = self._open(create, busy_timeout)
        try:
            self._prepare(create)
            self._con.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._con.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            self._con.close()
            raise

    # -- opening ----------------------------------------------------------------------------
    def _refuse(self, message: str) -> LedgerError:
        return LedgerError(Problem(message + "; nothing was written to it", source=self._where))

    def _open(self, create: bool, busy_timeout: float) -> sqlite3.Connection:
        p = self.path
        if p.exists():
            if p.is_dir():
                raise LedgerError(Problem("is a folder, not a ledger file", source=self._where))
            with open(p, "rb") as f:
                head = f.read(100)
            if head and (len(head) < 100 or not head.startswith(b"SQLite format 3\x00")):
                raise self._refuse("is not a medaid ledger: not an SQLite database (a foreign or damaged file)")
            # (a file shorter than its header says is found by SQLite itself, under its lock, at
            # the first read: a look at the header from out here can meet a checkpoint that has
            # written the header's new page count and not yet the pages: see _damaged_at_open)
        elif not create:
            raise LedgerError(Problem(
                "no ledger here (settle a claim to create one, or give --ledger / $MEDAID_LEDGER)",
                source=self._where))
        elif not p.parent.exists():
            raise LedgerError(Problem("the folder for the ledger does not exist", source=self._where))
        else:
            _create_private(p)
        mode = "rwc" if create else "rw"
        uri = "file:" + _urlquote(str(p.resolve())) + f"?mode={mode}"
        try:
            return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout)
        except sqlite3.Error as e:
            raise LedgerError(Problem(f"cannot open the ledger: {e}", source=self._where)) from None

    def _identify(self) -> tuple[int, list[str]]:
        """The application id and table names, read in one snapshot: another desk may be
        creating the file, and two separate reads could see the id before its commit and the
        tables after it (a fresh ledger mistaken for a foreign one)."""
        con = self._con
        outer = con.in_transaction
        try:
            if not outer:
                con.execute("BEGIN")
            try:
                names = [r[0] for r in con.execute("SELECT name FROM sqlite_master")]
                app = con.execute("PRAGMA application_id").fetchone()[0]
            finally:
                if not outer and con.in_transaction:
                    con.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise self._busy_or_damaged(e) from None
            raise self._damaged_at_open(e) from None
        except sqlite3.DatabaseError as e:
            raise self._damaged_at_open(e) from None
        return app, names

    def _damaged_at_open(self, e: sqlite3.Error) -> LedgerError:
        """SQLite refused the file at its first read (its own checks, a file shorter than its
        header says among them, are made under its lock).  The header is looked at again only
        to word the refusal: "truncated" when the file is also shorter than it says."""
        try:
            with open(self.path, "rb") as f:
                head = f.read(100)
            short = len(head) == 100 and _truncated(head, self.path.stat().st_size)
        except OSError:
            short = False
        if short:
            return self._refuse(f"is damaged: the file is shorter than its header says (truncated; {e})")
        return self._refuse(f"is damaged or not a database ({e})")

    def _prepare(self, create: bool) -> None:
        app, names = self._identify()
        if app == 0 and not names:
            if not create:
                raise self._refuse("is an empty database, not a medaid ledger")
            self._migrate(fresh=True)
            app, names = self._identify()
        if app != APPLICATION_ID:
            what = "holds another application's tables" if app == 0 else f"has application id {app:#x}"
            raise self._refuse(f"is not a medaid ledger (it {what})")
        if "entries" not in names or "schema_migrations" not in names:
            raise self._refuse("is a damaged medaid ledger: its tables are missing")
        version = self._con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] or 0
        if version > SCHEMA_VERSION:
            raise self._refuse(
                f"was written by a newer medaid (schema {version}; this one knows {SCHEMA_VERSION})")
        if version < SCHEMA_VERSION:
            self._migrate(fresh=False)
        if self._con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            try:
                self._con.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as e:
                raise LedgerError(Problem(f"cannot switch the ledger to WAL: {e}", source=self._where)) from None

    def _migrate(self, *, fresh: bool) -> None:
        """Apply the registry's pending migrations in one ``BEGIN IMMEDIATE`` transaction
        (another process may be creating the same file: the state is read again inside it)."""
        con = self._con
        with self._transaction():
            app, names = self._identify()
            if fresh and (app or names):
                return  # created meanwhile by another desk; checked by the caller
            migrate(con, _now())

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back on any error (nothing written)."""
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise self._busy_or_damaged(e) from None
        try:
            yield con
        except sqlite3.DatabaseError as e:
            _rollback(con)
            raise self._busy_or_damaged(e) from None
        except BaseException:
            _rollback(con)
            raise
        try:
            con.execute("COMMIT")
        except sqlite3.Error as e:
            _rollback(con)
            raise self._busy_or_damaged(e) from None

    def _busy_or_damaged(self, e: sqlite3.Error) -> LedgerError:
        text = str(e)
        if "locked" in text or "busy" in text:
            return LedgerError(Problem(
                "the ledger is busy (another desk held it too long); nothing was recorded, try again",
                source=self._where))
        return LedgerError(Problem(
            f"the ledger failed ({text}); nothing was recorded; run 'medaid ledger verify'",
            source=self._where))

    def close(self) -> None:
        """Close the file."""
        self._con.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------
    def _rows(self, where: str = "", params: tuple[Any, ...] = ()) -> Iterator[Entry]:
        """The rows selected, each checked (:func:`_checked`) before it is given out."""
        try:
            for row in self._con.execute(SELECT_LINKED + f" {where}", params):
                yield _checked([row], self._where)[0]
        except sqlite3.DatabaseError as e:
            raise self._busy_or_damaged(e) from None

    def _all(self, where: str, params: tuple[Any, ...]) -> list[Entry]:
        """The rows selected, all checked (a refusal names every damaged row among them)."""
        try:
            return _checked(self._con.execute(SELECT_LINKED + f" {where}", params).fetchall(), self._where)
        except sqlite3.DatabaseError as e:
            raise self._busy_or_damaged(e) from None

    def entries(self) -> Iterator[Entry]:
        """Every row, in order (each checked against its hash before it is given out)."""
        return self._rows("ORDER BY e.seq")

    def ytd(self, person_id: str, benefit_year: int, pool: str) -> PoolState:
        """The pool's year-to-date self-pay and relief for a person and benefit year: the sums of
        its settlements that are not reversed, from rows checked against their hashes."""
        try:
            return _ytd(self._con, tidy_id(person_id), benefit_year, pool, self._where)
        except sqlite3.DatabaseError as e:
            raise self._busy_or_damaged(e) from None

    def history(self, person_id: str, year: int | None = None) -> list[Entry]:
        """The person's file (一人一档): settlements and reversals in order, optionally of one
        benefit year; refused (:class:`LedgerError` naming the rows) if one of its rows does not
        match its hash."""
        person_id = tidy_id(person_id)
        if year is None:
            return self._all("WHERE e.person_id = ? ORDER BY e.seq", (person_id,))
        return self._all("WHERE e.person_id = ? AND e.benefit_year = ? ORDER BY e.seq", (person_id, year))

    def results_rows(self, year: int | None = None) -> Iterator[dict[str, Any]]:
        """One dict per settled, non-reversed claim (optionally of one benefit year), with the
        keys ``medaid.io.columns.CLAIM_FIELDS + RESULT_FIELDS``: money as int fen, ``date`` a
        ``datetime.date``, ``bracket`` the highest bracket reached (0: below the threshold)."""
        where = "WHERE e.entry = 'settlement' AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.reverses = e.seq)"
        params: tuple[Any, ...] = ()
        if year is not None:
            where += " AND e.benefit_year = ?"
            params = (year,)
        for e in self._rows(f"{where} ORDER BY e.seq", params):
            yield {
                "claim_id": e.claim_id, "person_id": e.person_id, "date": e.date,
                "self_pay": e.self_pay, "group": e.group, "kind": e.kind, "hospital": e.hospital,
                "total_cost": e.total_cost, "plan": e.plan, "pool": e.pool,
                "benefit_year": e.benefit_year, "relief": e.relief, "patient_pays": e.patient_pays,
                "bracket_relief": e.bracket_relief, "capped_by": e.capped_by, "bracket": e.bracket,
                "ytd_self_pay": e.ytd_self_pay, "ytd_relief": e.ytd_relief,
                "rule_set_id": e.rule_set_id, "rule_version": e.rule_version, "rule_hash": e.rule_hash,
            }

    def quote(self, claim: Claim, book: RuleBook) -> Settlement:
        """What ``claim`` would get now, against the pool's position in the ledger; records
        nothing."""
        at = place(claim, book)
        state = self.ytd(claim.person_id, at.benefit_year, at.plan.pool)
        return quote(claim, book, state, at=at)

    # -- writing ------------------------------------------------------------------------------
    def settle(self, claim: Claim, book: RuleBook, at: Placement | None = None, *,
               desk: str | None = None) -> Receipt:
        """Settle ``claim`` and record it (docs/calculation.md, *Accumulation*): in one ``BEGIN IMMEDIATE``
        transaction, read the pool's year-to-date position, compute the relief
        (:func:`medaid.quote`) and insert the row.  A claim id already settled (not reversed)
        with the same content returns the original row, ``replayed=True``, recording nothing;
        with different content raises :class:`LedgerConflict` naming the fields.  ``at`` is the
        claim's :func:`medaid.domain.engine.place` when the caller has placed it already.
        ``desk`` is recorded as the row's ``desk`` (the service token that wrote it)."""
        if at is None:
            at = place(claim, book)  # a claim no rule covers fails before the ledger is touched
        with self._transaction() as con:
            last = _last_of_claim(con, claim.claim_id, self._where)
            if last is not None and last.entry == SETTLEMENT:
                diff = differing_fields(last, claim)
                if diff:
                    raise LedgerConflict(claim.claim_id, diff)
                return Receipt(last, True)
            state = _ytd(con, claim.person_id, at.benefit_year, at.plan.pool, self._where)
            r = quote(claim, book, state, at=at)
            entry = _append(con, _settlement(r, claim, r.bracket)._replace(desk=desk))
        return Receipt(entry, False)

    def reverse(self, claim_id: str, reason: str, *, desk: str | None = None,
                check: Callable[[Entry], None] | None = None) -> Entry:
        """Record a reversal (冲正) of the claim's settlement: a new row linked to it, taking its
        self-pay and relief back out of the pool.  Unknown or already reversed claims, and an
        empty reason, are refused.  ``desk`` is recorded as the reversal's ``desk``; ``check``
        is called with the settlement to be reversed inside the transaction, and whatever it
        raises refuses the reversal with nothing written (the service: a desk reverses only
        its own hospital's claims)."""
        claim_id, reason = tidy_id(claim_id), reason.strip()
        if not reason:
            raise LedgerError(Problem("a reversal needs a reason", source=f"claim {claim_id}", field="reason"))
        with self._transaction() as con:
            last = _last_of_claim(con, claim_id, self._where)
            if last is None:
                raise LedgerError(Problem("no such claim in the ledger", source=f"claim {claim_id}", field="claim_id"))
            if last.entry == REVERSAL:
                raise LedgerError(Problem(
                    f"already reversed (row {last.seq}, {last.recorded_at})",
                    source=f"claim {claim_id}", field="claim_id"))
            if check is not None:
                check(last)
            state = _ytd(con, last.person_id, last.benefit_year, last.pool, self._where)
            reversal = last._replace(
                entry=REVERSAL, ytd_self_pay=state.self_pay - last.self_pay,
                ytd_relief=state.relief - last.relief, segments=(), reverses=last.seq,
                reason=reason, desk=desk,
            )
            entry = _append(con, reversal)
        return entry

    # -- checking -----------------------------------------------------------------------------
    def verify(self) -> Verification:
        """Check the whole file: ``PRAGMA integrity_check``, the protecting triggers, the rows'
        order, hash chain and recorded hashes, reversal links, the recorded year-to-date
        positions against the running sums, and every settlement against the caps recorded
        with it (the version in force on its date, see :func:`_over_caps`).  Reports every
        problem found."""
        problems: list[str] = []
        con = self._con
        try:
            for (msg,) in con.execute("PRAGMA integrity_check"):
                if msg != "ok":
                    problems.append(f"integrity_check: {msg}")
        except sqlite3.DatabaseError as err:
            problems.append(f"integrity_check failed: {err}")
            return Verification(0, "", tuple(problems))
        triggers = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        for t in TRIGGERS:
            if t not in triggers:
                problems.append(f"the trigger {t} that keeps rows append-only is missing")
        prev, n, expect_seq = GENESIS, 0, 1
        settled: dict[int, Entry] = {}
        reversed_: set[int] = set()
        pools: dict[tuple[str, int, str], tuple[int, int]] = {}
        try:
            rows = [Stored(tuple(r)) for r in con.execute(SELECT + " ORDER BY seq").fetchall()]
        except sqlite3.DatabaseError as err:
            problems.append(f"cannot read the rows: {err}")
            return Verification(0, "", tuple(problems))
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
                c, g = c + e.self_pay, g + e.relief
                settled[e.seq] = e
            else:
                orig = settled.get(e.reverses or 0)
                if orig is None or orig.claim_id != e.claim_id:
                    problems.append(f"{where}: reverses row {e.reverses}, "
                                    f"which is not a settlement of claim {e.claim_id}")
                elif e.reverses in reversed_:
                    problems.append(f"{where}: row {e.reverses} is reversed twice")
                reversed_.add(e.reverses or 0)
                c, g = c - e.self_pay, g - e.relief
            pools[key] = (c, g)
            if (e.ytd_self_pay, e.ytd_relief) != (c, g):
                problems.append(f"{where}: recorded year-to-date position differs from the sum of the rows before it")
            if e.entry == SETTLEMENT:
                problems.extend(f"{where}: {p}" for p in _over_caps(e, g - e.relief))
        return Verification(n, prev if n else GENESIS, tuple(problems))

    def schema_version(self) -> int:
        """The last migration applied to this file."""
        return int(self._con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0])


# --------------------------------------------------------------------------------------------
# helpers


def _over_caps(e: Entry, granted_before: int) -> list[str]:
    """How settlement ``e`` breaks the caps in force for it, given the relief its pool held
    before it (the running sum of the rows before).  A settlement may not push the year's relief
    past its own version's annual cap: ``relief ≤ max(0, annual_cap − G_{k−1})``.  A pool that
    already holds more than a cap lowered by a later version is not a problem (its later
    claims get 0, docs/calculation.md#version-changes-inside-a-benefit-year).  Nor may a
    settlement exceed its claim cap."""

    def yuan(fen: int) -> str:
        return format_yuan(fen, thousands=False)

    out = []
    if e.annual_cap is not None and e.relief > max(0, e.annual_cap - granted_before):
        out.append(f"relief {yuan(e.relief)} takes the year-to-date relief from "
                   f"{yuan(granted_before)} past the annual cap in force for it ({yuan(e.annual_cap)})")
    if e.claim_cap is not None and e.relief > e.claim_cap:
        out.append(f"relief {yuan(e.relief)} is above the claim cap in force for it ({yuan(e.claim_cap)})")
    return out


def differing_fields(recorded: Entry, claim: Claim) -> tuple[str, ...]:
    """The claim fields in which ``claim`` differs from the recorded settlement."""
    return tuple(f for f in CONTENT_FIELDS if getattr(recorded, f) != getattr(claim, f))


def _truncated(header: bytes, size: int) -> bool:
    """Whether an SQLite file is shorter than the page count its header states (valid when the
    header's version-valid-for number equals its change counter)."""
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid = header[92:96] == header[24:28]
    return valid and pages * page_size > size


def _create_private(path: Path) -> None:
    """Create the (empty) ledger file ``0600`` before SQLite opens it: it holds ID numbers
    (README.md#reliability).  SQLite gives its ``-wal`` and ``-shm`` files the database file's mode.
    Another desk creating it at the same moment is fine (the file is then theirs, made so too)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as e:
        raise LedgerError(Problem(f"cannot create the ledger ({e.strerror or e})", source=str(path))) from None


def _rollback(con: sqlite3.Connection) -> None:
    try:
        con.rollback()
    except sqlite3.Error:  # a damaged file may refuse even that; SQLite undoes it on close
        pass


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _ytd(con: sqlite3.Connection, person_id: str, year: int, pool: str, source: str) -> PoolState:
    """The pool's position: the sums of its rows (settlements less reversals), each row checked
    against its hash and its recorded year-to-date position against the running sums (a row
    removed from the middle of the pool shows there); refused naming the rows otherwise."""
    rows = _checked(con.execute(
        SELECT_LINKED + " WHERE e.person_id = ? AND e.benefit_year = ? AND e.pool = ? ORDER BY e.seq",
        (person_id, year, pool)).fetchall(), source)
    c = g = 0
    off: list[int] = []
    for e in rows:
        sign = 1 if e.entry == SETTLEMENT else -1
        c, g = c + sign * e.self_pay, g + sign * e.relief
        if (e.ytd_self_pay, e.ytd_relief) != (c, g):
            off.append(e.seq)
    if off:
        raise _damaged(off, source, "its recorded year-to-date position differs from the sum of the pool's rows "
                       "before it (a row was removed or altered)")
    return PoolState(c, g)


def _last_of_claim(con: sqlite3.Connection, claim_id: str, source: str) -> Entry | None:
    rows = con.execute(SELECT_LINKED + " WHERE e.claim_id = ? ORDER BY e.seq DESC LIMIT 1", (claim_id,)).fetchall()
    return _checked(rows, source)[0] if rows else None


def _checked(rows: list[tuple[Any, ...]], source: str) -> list[Entry]:
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


def _settlement(r: Settlement, claim: Claim, bracket: int) -> Entry:
    """The settlement row of ``claim`` settled as ``r`` (its place in the chain still blank)."""
    return Entry(
        seq=0, entry=SETTLEMENT, claim_id=r.claim_id, person_id=r.person_id, date=r.date,
        self_pay=r.self_pay, group=claim.group, kind=claim.kind, hospital=claim.hospital,
        total_cost=claim.total_cost, plan=r.plan, pool=r.pool, benefit_year=r.benefit_year,
        relief=r.relief, patient_pays=r.patient_pays, bracket_relief=r.bracket_relief,
        capped_by=r.capped_by, bracket=bracket, ytd_self_pay=r.ytd_self_pay, ytd_relief=r.ytd_relief,
        annual_cap=r.annual_cap, claim_cap=r.claim_cap, base_from=r.base_from, base_to=r.base_to,
        segments=tuple(r.segments), rule_set_id=r.rule_set_id, rule_version=r.rule_version,
        rule_hash=r.rule_hash, reverses=None, reason=None, recorded_at="", desk=None, prev_hash="",
        row_hash="",
    )


def _append(con: sqlite3.Connection, entry: Entry) -> Entry:
    """Insert ``entry`` at the end of the chain (inside the caller's transaction); the entry as
    recorded (numbered, timed, chained), read back from its stored values."""
    head = con.execute("SELECT seq, row_hash FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    values = chain(entry, seq, prev, _now())
    con.execute(INSERT, values)
    return decode(values)

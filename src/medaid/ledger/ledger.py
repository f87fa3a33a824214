"""The desk ledger (台账): an append-only, hash-chained SQLite file of settlements and reversals.

What a ledger does (settle, quote, reverse, read, verify) is defined once, for every database, in
:mod:`medaid.ledger.backend`; this module is the SQLite file under it.

Rules implemented (docs/calculation.md *Accumulation* at a desk; docs/desk.md *The ledger's
guarantees*; README.md *Reliability*):

* A claim is settled against its pool's year-to-date position for its person and benefit year
  (the sums of the non-reversed settlements already in the ledger).  Reading that position and
  inserting the settlement happen in **one** ``BEGIN IMMEDIATE`` transaction, so two desks
  settling the same person at once are serialised: no cap is ever exceeded, no settlement lost
  (``BEGIN IMMEDIATE`` holds every lock :mod:`medaid.ledger.backend` asks for).
* Idempotent on claim id: the same claim with the same content returns the original result and
  records nothing; with different content it is refused, naming the differing fields, until the
  original is reversed.
* A reversal (冲正) is a new row linked to the settlement it cancels; the person's year-to-date
  position drops by that claim (its relief net of its adjustments).  Reversing twice, or an
  unknown claim, is an error.  Given the rules, it re-settles the claims of the pool settled
  after it and records each change of relief as an adjustment row linked to it, in the same
  transaction (docs/calculation.md#reversals-re-settle-the-claims-after-them).
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
* Writers queue (:func:`_queued`): each write transaction first takes an ``flock`` of
  ``<ledger>.writers``, which the kernel gives to a waiting desk as soon as it is released; only
  then ``BEGIN IMMEDIATE``.  SQLite alone makes a desk that finds the file locked sleep and try
  again (1, 2, 5 … 100 ms): the desks that keep settling meanwhile take the lock in the gaps,
  and under load one desk could wait out its whole busy timeout while the others settled
  hundreds of claims (tests/test_ledger_concurrency.py).  A desk still gives up after the busy
  timeout when no other desk lets go of the queue that long.
* The file is opened in WAL mode with ``synchronous=FULL`` and a busy timeout.  A file that is
  not SQLite, is damaged, or belongs to another application is refused at open, and nothing is
  written to it.  Schema migrations are a small registry recorded in the file.
* Only SQLite opens the file while this process holds a connection to it: closing any other
  descriptor of the file would drop the process's locks on it, and another process (a desk's
  command next to ``medaid serve``) could then checkpoint and delete the write-ahead log under
  it, losing its writes (:class:`_Openers`; docs/desk.md *The ledger's guarantees*).

The schema, its migrations and the row model (:class:`Entry`, stored, hashed and read by field
name) are in :mod:`medaid.ledger.schema`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote as _urlquote

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the writers wait the way SQLite makes them
    fcntl = None  # type: ignore[assignment]

from ..errors import Problem
from .backend import (
    BUSY_TIMEOUT,
    CONTENT_FIELDS,
    LedgerBase,
    LedgerConflict,
    LedgerError,
    Receipt,
    Verification,
    differing_fields,
    new_claim_id,
    now_text,
)
from .schema import (
    APPLICATION_ID,
    GENESIS,
    MIGRATIONS,
    REVERSAL,
    SCHEMA_VERSION,
    SETTLEMENT,
    TRIGGERS,
    Entry,
    migrate,
)

#: Names of :mod:`.schema` and :mod:`.backend` this module gives out too (``from medaid.ledger.ledger import Entry``).
__all__ = [
    "APPLICATION_ID", "GENESIS", "MIGRATIONS", "REVERSAL", "SCHEMA_VERSION", "SETTLEMENT", "BUSY_TIMEOUT",
    "CONTENT_FIELDS", "Entry", "Ledger", "LedgerConflict", "LedgerError", "Receipt", "Verification",
    "differing_fields", "new_claim_id",
]

# --------------------------------------------------------------------------------------------
# the ledger


class Ledger(LedgerBase):
    """An SQLite ledger file.  ``create=False`` refuses a missing file instead of creating it
    (read-only commands).  ``synchronous`` is ``FULL`` (every commit reaches the disk before it
    is acknowledged) unless a test asks otherwise."""

    _db_errors = (sqlite3.DatabaseError,)

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
        self._busy_timeout = busy_timeout
        if synchronous.upper() not in ("FULL", "NORMAL", "OFF", "EXTRA"):
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self._con = self._open(create, busy_timeout)
        try:
            self._prepare(create)
            self._con.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._con.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            self.close()
            raise

    # -- opening ----------------------------------------------------------------------------
    def _refuse(self, message: str) -> LedgerError:
        return LedgerError(Problem(message + "; nothing was written to it", source=self._where))

    def _open(self, create: bool, busy_timeout: float) -> sqlite3.Connection:
        """Connect to the file.  Whether it is SQLite at all is SQLite's answer at its first read
        (:meth:`_identify`): Python does not open the file itself, which would drop every lock
        this process's other connections hold on it (:class:`_Openers`)."""
        p = self.path
        if p.exists():
            if p.is_dir():
                raise LedgerError(Problem("is a folder, not a ledger file", source=self._where))
        elif not create:
            raise LedgerError(Problem(
                "no ledger here (settle a claim to create one, or give --ledger / $MEDAID_LEDGER)",
                source=self._where))
        elif not p.parent.exists():
            raise LedgerError(Problem("the folder for the ledger does not exist", source=self._where))
        else:
            _OPEN.create(p)
        mode = "rwc" if create else "rw"
        uri = "file:" + _urlquote(str(p.resolve())) + f"?mode={mode}"
        try:
            con = _OPEN.connect(p, uri, busy_timeout)
        except sqlite3.Error as e:
            raise LedgerError(Problem(f"cannot open the ledger: {e}", source=self._where)) from None
        return con

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
            if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
                raise self._refuse(
                    "is not a medaid ledger: not an SQLite database (a foreign or damaged file)") from None
            raise self._damaged_at_open(e) from None
        return app, names

    def _damaged_at_open(self, e: sqlite3.Error) -> LedgerError:
        """SQLite refused the file at its first read (its own checks, a file shorter than its
        header says among them, are made under its lock).  The header is looked at again only
        to word the refusal: "truncated" when the file is also shorter than it says.  That look
        opens the file from Python, so it is made only once this connection is closed and when no
        other connection of this process is open to the file (:data:`_OPEN`)."""
        _OPEN.close(self.path, self._con)
        head = _OPEN.header_if_unheld(self.path)
        try:
            short = head is not None and len(head) == 100 and _truncated(head, self.path.stat().st_size)
        except OSError:
            short = False
        if short:
            return self._refuse(f"is damaged: the file is shorter than its header says (truncated; {e})")
        if getattr(e, "sqlite_errorcode", None) is not None and e.sqlite_errorcode & 0xFF == sqlite3.SQLITE_IOERR:
            # an I/O error, not a damaged file: SQLite says so of a disk too full for its journal
            return self._refuse(f"cannot be read or written ({e}: is the disk full? "
                                "'medaid ledger verify' tells a damaged file from a disk that was full)")
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
            migrate(con, now_text())

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """In the writers' queue (:func:`_queued`), ``BEGIN IMMEDIATE`` … ``COMMIT``; rolled
        back on any error (nothing written)."""
        con = self._con
        with _queued(self.path, self._busy_timeout, self._busy):
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

    def _busy(self) -> LedgerError:
        return LedgerError(Problem(
            "the ledger is busy (another desk held it too long); nothing was recorded, try again",
            source=self._where))

    def _busy_or_damaged(self, e: Exception) -> LedgerError:
        text = str(e)
        if "locked" in text or "busy" in text:
            return self._busy()
        return LedgerError(Problem(
            f"the ledger failed ({text}); nothing was recorded; run 'medaid ledger verify'",
            source=self._where))

    def close(self) -> None:
        """Close the file."""
        _OPEN.close(self.path, self._con)

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The file's connection (each statement reads one snapshot)."""
        yield self._con

    def _database_problems(self) -> tuple[list[str], bool]:
        """``PRAGMA integrity_check`` (when it fails, nothing else can be read) and the
        triggers that keep rows append-only."""
        problems: list[str] = []
        con = self._con
        try:
            for (msg,) in con.execute("PRAGMA integrity_check"):
                if msg != "ok":
                    problems.append(f"integrity_check: {msg}")
        except sqlite3.DatabaseError as err:
            problems.append(f"integrity_check failed: {err}")
            return problems, True
        triggers = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        for t in TRIGGERS:
            if t not in triggers:
                problems.append(f"the trigger {t} that keeps rows append-only is missing")
        return problems, False

    def schema_version(self) -> int:
        """The last migration applied to this file."""
        return int(self._con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0])


# --------------------------------------------------------------------------------------------
# helpers


class _Openers:
    """The SQLite connections this process holds, per file (device and inode, from ``stat``,
    which opens nothing).

    POSIX (``fcntl``) locks, which SQLite locks its files with, belong to a process, and closing
    ANY descriptor of a file drops ALL of that process's locks on it (sqlite.org, *How To Corrupt
    An SQLite Database File*, 2.2).  So Python opens a ledger file itself (to word a refusal)
    only when no connection of this process is open to it, the check and the read under one
    lock with the connecting (:meth:`connect`), so no connection opens meanwhile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[int, int], int] = {}
        self._keys: dict[int, tuple[int, int]] = {}

    def connect(self, path: Path, uri: str, busy_timeout: float) -> sqlite3.Connection:
        with self._lock:
            con = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout)
            try:
                st = os.stat(path)
            except OSError:  # (not expected: SQLite just opened it)
                return con
            key = (st.st_dev, st.st_ino)
            self._held[key] = self._held.get(key, 0) + 1
            self._keys[id(con)] = key
            return con

    def create(self, path: Path) -> None:
        """Create the file ``0600`` (:func:`_create_private`), its descriptor closed before any
        thread of this process connects to it."""
        with self._lock:
            _create_private(path)

    def close(self, path: Path, con: sqlite3.Connection) -> None:
        with self._lock:
            con.close()
            key = self._keys.pop(id(con), None)
            if key is not None:
                self._held[key] -= 1
                if not self._held[key]:
                    del self._held[key]

    def header_if_unheld(self, path: Path) -> bytes | None:
        """The file's first 100 bytes, or ``None`` when this process holds a connection to it
        (or it cannot be read)."""
        with self._lock:
            try:
                st = os.stat(path)
                if self._held.get((st.st_dev, st.st_ino)):
                    return None
                with open(path, "rb") as f:
                    return f.read(100)
            except OSError:
                return None


#: The one registry of this process's connections to ledger files.
_OPEN = _Openers()



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


#: What is appended to a ledger file's name for its writers' queue (:func:`_queued`).
QUEUE_SUFFIX = ".writers"


@contextmanager
def _queued(path: Path, timeout: float, busy: Callable[[], LedgerError]) -> Iterator[None]:
    """Hold the writers' queue of the ledger file ``path`` (an exclusive ``flock`` of
    ``<path>.writers``, created ``0600``) for the block; raise ``busy()`` when it is not ours
    within ``timeout`` seconds.

    A desk blocked in ``flock`` is woken when the holder lets go, so it takes the lock in the
    holder's next gap, however short; SQLite's own waiting (sleeping up to 100 ms between tries)
    misses most gaps of desks that keep settling.  The wait is made on a helper thread, so that
    it can end at ``timeout``: an abandoned wait lets go of the lock the moment it gets it.
    Each hold opens the file anew: a lock belongs to an open file, so two ledgers of one process
    (a service's threads) queue as two processes do, and the lock goes when the file is closed,
    or its process dies.  The queue file is not the ledger's (its POSIX locks are SQLite's alone,
    :class:`_Openers`).  Where there is no ``flock`` (not POSIX), there is no queue."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    try:
        fd = os.open(str(path) + QUEUE_SUFFIX, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise LedgerError(Problem(f"cannot open the writers' queue ({e.strerror or e})",
                                  source=str(path) + QUEUE_SUFFIX)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if not _wait_for_lock(fd, timeout):
            raise busy() from None  # the fd is the waiting thread's now
    except OSError:
        os.close(fd)
        raise
    try:
        yield
    finally:
        os.close(fd)  # lets go of the lock


def _wait_for_lock(fd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for an exclusive ``flock`` of ``fd`` (on a helper thread);
    whether it is held.  When not, ``fd`` is the helper's to close: at once if its wait failed,
    else when it gets the lock."""
    guard = threading.Lock()
    state: dict[str, bool | None] = {"got": None, "abandoned": False}
    done = threading.Event()

    def wait() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            got = True
        except OSError:
            got = False
        with guard:
            if state["abandoned"]:
                os.close(fd)
                return
            state["got"] = got
        done.set()

    threading.Thread(target=wait, name="medaid-ledger-queue", daemon=True).start()
    done.wait(timeout)
    with guard:
        if state["got"]:
            return True
        if state["got"] is None:
            state["abandoned"] = True  # the helper closes fd when its wait ends
        else:
            os.close(fd)
        return False


def _rollback(con: sqlite3.Connection) -> None:
    try:
        con.rollback()
    except sqlite3.Error:  # a damaged file may refuse even that; SQLite undoes it on close
        pass

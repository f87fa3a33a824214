"""The ledger in a PostgreSQL database (``postgresql://…``), through psycopg 3 and a connection
pool: the same ledger as the SQLite file (:mod:`medaid.ledger.backend` defines what it does), for
every desk of a county at once, from any number of processes and hosts.

Rules implemented (docs/desk.md *The ledger on PostgreSQL*):

* The same schema and the same named migrations as the file (:data:`medaid.ledger.schema.MIGRATIONS`;
  each step's PostgreSQL statements are :data:`STEPS`: the file's table and indexes with
  ``INTEGER`` as ``BIGINT``, and the triggers in PostgreSQL's words), applied at open or by ``medaid ledger
  migrate``, in one transaction under an advisory lock (two processes opening a new database at
  once apply them once).  Integers are ``BIGINT``; dates, segments and times are stored as the
  same text as in the file, so a row's stored values, and so its ``row_hash``, are the same
  whichever database wrote it.
* Append-only in the database: triggers refuse ``UPDATE``, ``DELETE`` and ``TRUNCATE`` on
  ``entries``; ``verify`` reports a missing or disabled one.
* The ledger's tables are those of the connection's current schema (the first of its
  ``search_path``; ``?options=-csearch_path%3Dname`` in the URL picks another).  Tables of those
  names that are not a medaid ledger's (``schema_migrations`` carries a comment naming the
  ledger) are refused; other tables are left alone.
* Serialisation across processes and hosts (read committed, every statement a fresh snapshot):
  a write transaction takes ``pg_advisory_xact_lock`` on its claim id, then (for a rule set
  using the rules of docs/calculation.md *Rules real schemes need*) on its settlement groups
  (the household's benefit year where a household cap pool binds it, then the person's), then
  on its pool (person, benefit year, pool), then on the chain; each is held to the commit.  The claim's lock
  makes the replay check and the insert of one claim id atomic; the pool's makes the
  year-to-date read and the insert atomic (caps exact); the chain's makes reading the head and
  appending atomic.  The chain links every row to the one before it, so appends are one global
  order: the chain's lock is taken last, after the position is read and the relief computed,
  and held only for the head read, the insert and the commit.  Writers share a ``writers`` lock
  that ``ledger copy`` takes alone.  The keys are the first 4 bytes of the SHA-256 of the key's
  text, each kind its own class of advisory lock: collisions only make two unrelated claims
  wait for each other.
* Waiting longer than the busy timeout for a lock (``lock_timeout``) or a connection is refused
  as busy, nothing recorded.  ``synchronous_commit`` stays ``on`` (durable) unless a test asks.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import Problem
from .backend import BUSY_TIMEOUT, Connection, GroupKey, LedgerBase, LedgerError, PoolKey, now_text, redact
from .schema import (
    APPLICATION_ID,
    COLUMNS,
    ENTRIES_V4,
    GENESIS,
    MIGRATIONS,
    SCHEMA_VERSION,
    Entry,
    canonical,
    decode,
    encode,
    hashed_values,
    row_hash,
)

if TYPE_CHECKING:
    from psycopg.rows import TupleRow

#: The comment on ``schema_migrations`` that marks a medaid ledger (the file's application id).
MARKER = f"medaid ledger (application id {APPLICATION_ID:#x})"

#: The triggers that keep ``entries`` and the periods' tables append-only (checked by ``verify``).
TRIGGERS = ("entries_never_updated", "entries_never_deleted", "entries_never_truncated",
            *(f"{t}_never_{verb}" for t in ("period_events", "period_reviews")
              for verb in ("updated", "deleted", "truncated")))


def _portable(statements: tuple[str, ...]) -> tuple[str, ...]:
    """A step's SQLite statements that are plain SQL (all but its triggers), with ``INTEGER``
    (64-bit in SQLite) as ``BIGINT``: the same table, columns, checks and indexes."""
    return tuple(re.sub(r"\bINTEGER\b", "BIGINT", sql) for sql in statements if "CREATE TRIGGER" not in sql)


#: The triggers of the first step, as PostgreSQL writes them (and ``TRUNCATE`` refused too).
_APPEND_ONLY = (
    """CREATE FUNCTION medaid_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         RAISE EXCEPTION 'medaid ledger rows are never %',
           CASE TG_OP WHEN 'UPDATE' THEN 'updated' WHEN 'DELETE' THEN 'deleted' ELSE 'truncated' END;
       END $$""",
    """CREATE TRIGGER entries_never_updated BEFORE UPDATE ON entries
       FOR EACH ROW EXECUTE FUNCTION medaid_entries_append_only()""",
    """CREATE TRIGGER entries_never_deleted BEFORE DELETE ON entries
       FOR EACH ROW EXECUTE FUNCTION medaid_entries_append_only()""",
    """CREATE TRIGGER entries_never_truncated BEFORE TRUNCATE ON entries
       FOR EACH STATEMENT EXECUTE FUNCTION medaid_entries_append_only()""",
)

#: Step 4 (adjustments) also widens the check on the kinds of row (PostgreSQL named the first
#: step's ``entries_entry_check``), where SQLite rebuilds the table; step 5 (periods) adds the
#: triggers of its two tables in PostgreSQL's words.
_WIDER: dict[int, tuple[str, ...]] = {4: (
    "ALTER TABLE entries DROP CONSTRAINT entries_entry_check",
    "ALTER TABLE entries ADD CONSTRAINT entries_entry_check "
    "CHECK (entry IN ('settlement', 'reversal', 'adjustment'))",
    "ALTER TABLE entries ADD CONSTRAINT entries_adjustment_check CHECK ((entry = 'adjustment') = "
    "(adjusts IS NOT NULL AND reversal IS NOT NULL AND adjustment IS NOT NULL))",
), 5: (
    # the periods' tables are append-only too (docs/periods.md), as the file's triggers keep them
    """CREATE FUNCTION medaid_periods_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         RAISE EXCEPTION 'medaid period records are never %',
           CASE TG_OP WHEN 'UPDATE' THEN 'updated' WHEN 'DELETE' THEN 'deleted' ELSE 'truncated' END;
       END $$""",
    *(f"""CREATE TRIGGER {t}_never_{verb} BEFORE {op} ON {t}
       FOR EACH {'STATEMENT' if op == 'TRUNCATE' else 'ROW'} EXECUTE FUNCTION medaid_periods_append_only()"""
      for t in ("period_events", "period_reviews")
      for op, verb in (("UPDATE", "updated"), ("DELETE", "deleted"), ("TRUNCATE", "truncated"))),
)}

#: Each migration's statements in PostgreSQL, by version (:data:`medaid.ledger.schema.MIGRATIONS`
#: names and numbers the steps): its plain SQL as it is, the first step's triggers, and step 4's
#: wider check.
STEPS: dict[int, tuple[str, ...]] = {
    m.version: (*_portable(m.statements), *(_APPEND_ONLY if m.version == 1 else ()), *_WIDER.get(m.version, ()))
    for m in MIGRATIONS
}

_TABLES = ("SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
           "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')")
_IDENTIFY = (
    "SELECT current_schema(), "
    f"array(SELECT t.relname FROM ({_TABLES}) t WHERE t.relname IN ('entries', 'schema_migrations')), "
    f"(SELECT d.description FROM ({_TABLES}) t JOIN pg_description d ON d.objoid = t.oid "
    "AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0 WHERE t.relname = 'schema_migrations')"
)
_TRIGGERS = (f"SELECT g.tgname, g.tgenabled FROM ({_TABLES}) t JOIN pg_trigger g ON g.tgrelid = t.oid "
             "WHERE t.relname IN ('entries', 'period_events', 'period_reviews') AND NOT g.tgisinternal")

#: The columns stored as BIGINT (the others are TEXT): the table's INTEGER columns.
_BIGINT = frozenset(re.findall(r"^\s*(\w+)\s+INTEGER\b", ENTRIES_V4, re.M)) | frozenset(
    c for m in MIGRATIONS for sql in m.statements
    for c in re.findall(r"^ALTER TABLE entries ADD COLUMN (\w+) INTEGER\b", sql))
#: What the server fills in when appending (:meth:`PostgresLedger._append`), with the marks that
#: stand for them in the hashed text medaid builds; medaid gives every other column.
_SERVER = {"seq": "\x00seq", "recorded_at": "\x00at", "prev_hash": "\x00prev", "row_hash": ""}
_GIVEN = tuple(c for c in COLUMNS if c not in _SERVER)
_AT = {c: i for i, c in enumerate(COLUMNS)}
#: The append: parameters are the time (NULL: the server's clock), the four pieces of the
#: hashed text around the number, the time and the previous hash, and the given columns.
_APPEND = (
    "WITH head AS (SELECT seq, row_hash FROM entries ORDER BY seq DESC LIMIT 1), "
    "n AS (SELECT coalesce((SELECT seq FROM head), 0) + 1 AS seq, "
    f"coalesce((SELECT row_hash FROM head), '{GENESIS}') AS prev, "
    "coalesce(?::text, to_char(clock_timestamp() AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"+00:00\"')) AS at) "
    "INSERT INTO entries (seq, recorded_at, prev_hash, row_hash, " + ", ".join(_GIVEN) + ") "
    "SELECT n.seq, n.at, n.prev, encode(sha256(convert_to(?::text || n.seq::text || ?::text || "
    "to_json(n.at)::text || ?::text || to_json(n.prev)::text || ?::text, 'UTF8')), 'hex'), "
    + ", ".join(f"?::{'bigint' if c in _BIGINT else 'text'}" for c in _GIVEN)
    + " FROM n RETURNING seq, recorded_at, prev_hash, row_hash"
)


def _numbered(sql: str) -> bytes:
    """``sql`` with its ``?`` placeholders numbered as the server's own (``$1``, ``$2``, …), for a
    raw cursor (:meth:`_Pg.raw`); ``sql`` holds no ``?`` and no ``$`` but as placeholders."""
    assert "$" not in sql
    parts = sql.split("?")
    return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, 1)).encode()


#: :data:`_APPEND` as the server numbers its parameters.  psycopg parses a query's ``%s``
#: anew at every call when it has more than 50 parameters (this one has 53): a fifth of a
#: settlement's CPU in the ledger; sent as it is through a raw cursor, nothing is parsed.
_APPEND_RAW = _numbered(_APPEND)


def _hashed_around(values: list[Any]) -> list[str]:
    """The text :func:`medaid.ledger.schema.row_hash` hashes for a row stored as ``values``, in
    the four pieces around its number, time and previous hash (built by ``row_hash``'s own
    :func:`medaid.ledger.schema.hashed_values` and :func:`medaid.ledger.schema.canonical`, with
    marks in those places: a mark holds a NUL, which no stored text can)."""
    marked = list(values)
    for column, mark in _SERVER.items():
        marked[_AT[column]] = mark
    pieces = [canonical(hashed_values(marked))]
    for column in ("seq", "recorded_at", "prev_hash"):
        token = canonical([_SERVER[column]])[1:-1]
        head, found, tail = pieces[-1].partition(token)
        if not found or token in tail:
            raise ValueError(f"the hashed text does not hold the {column} mark once")
        pieces[-1:] = [head, tail]
    return pieces


# Advisory lock classes (the first of the two int4 keys): "mdl" and a kind.
_WRITERS, _CLAIM, _POOL, _CHAIN, _MIGRATE, _GROUP = (0x6D646C00 + k for k in range(1, 7))


def lock_key(*parts: object) -> int:
    """A signed 32-bit advisory lock key for ``parts``: the first 4 bytes of the SHA-256 of
    their text (the same on every host, unlike Python's ``hash``)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big", signed=True)


@lru_cache(maxsize=64)
def _dialect(sql: str) -> str:
    """``?`` placeholders (the shared SQL's) as psycopg's ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


#: How a statement that only takes advisory locks starts (:meth:`_Pg.before`), and the most
#: parameters one such statement is given when they are joined (a batch locks thousands: in
#: statements of a few locks each, as few texts for the server to plan as for psycopg to keep).
_LOCKS = "SELECT pg_advisory_xact_lock"
_JOINED = 16


@lru_cache(maxsize=64)
def _joined(locks: str, more: str) -> str:
    """Two lock statements (:data:`_LOCKS`) as one, ``locks`` first."""
    return locks + ", " + more.removeprefix("SELECT ")


class _Pg:
    """A psycopg connection as the shared code's :class:`medaid.ledger.backend.Connection`.

    Round trips are saved inside a write transaction: its ``BEGIN`` and a lock asked for
    (:meth:`before`) are sent with the next statement in one pipeline, and the append is sent
    with its ``COMMIT``.  The server still runs them one after the other, in order, each
    statement with its own snapshot taken once the locks before it are held (read committed);
    an error in any of them aborts the transaction as it would have one by one."""

    __slots__ = ("conn", "pending")

    def __init__(self, conn: psycopg.Connection[TupleRow]) -> None:
        self.conn = conn
        self.pending: list[tuple[str, tuple[Any, ...]]] = []

    def before(self, sql: str, params: tuple[Any, ...]) -> None:
        """Run ``sql`` just before the next statement, in the same round trip.  Locks asked for
        one after the other (``SELECT pg_advisory_…``) are taken by one statement, whose
        expressions the server evaluates left to right (as the claim's own two locks always
        were): one statement less for the server to run and for psycopg to send."""
        sql = _dialect(sql)
        last, last_params = self.pending[-1] if self.pending else ("", ())
        if sql.startswith(_LOCKS) and last.startswith(_LOCKS) and len(last_params) + len(params) <= _JOINED:
            self.pending[-1] = (_joined(last, sql), (*last_params, *params))
        else:
            self.pending.append((sql, params))

    def execute(self, sql: str, params: tuple[Any, ...] = (), /, *, commit: bool = False) -> psycopg.Cursor[TupleRow]:
        """Run ``sql`` (after what :meth:`before` queued; with ``commit``, then ``COMMIT``, all
        in one round trip)."""
        if not self.pending and not commit:
            return self.conn.execute(_dialect(sql), params)
        with self.conn.pipeline():
            for early, early_params in self.pending:
                self.conn.execute(early, early_params)
            self.pending.clear()
            cur = self.conn.execute(_dialect(sql), params)
            if commit:
                self.conn.execute("COMMIT")
        return cur

    def raw(self, sql: bytes, params: tuple[Any, ...], /, *, commit: bool = False) -> psycopg.RawCursor[TupleRow]:
        """Run ``sql``, whose placeholders are the server's (``$1``…, :func:`_numbered`), as
        :meth:`execute` does (after what :meth:`before` queued; with ``commit``, then ``COMMIT``)."""
        cur = psycopg.RawCursor(self.conn)
        with self.conn.pipeline():
            for early, early_params in self.pending:
                self.conn.execute(early, early_params)
            self.pending.clear()
            cur.execute(sql, params)
            if commit:
                self.conn.execute("COMMIT")
        return cur

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        """The one row a query always returns."""
        row = self.execute(sql, params).fetchone()
        assert row is not None, sql
        return row


class PostgresLedger(LedgerBase):
    """The ledger in the PostgreSQL database at ``url``: a pool of up to ``pool_size``
    connections, each waiting at most ``busy_timeout`` seconds for a lock or a connection.
    ``create=False`` refuses a database that holds no ledger yet instead of creating one;
    ``synchronous`` other than ``FULL`` turns ``synchronous_commit`` off (tests only)."""

    _db_errors = (psycopg.Error,)

    def __init__(
        self,
        url: str,
        *,
        create: bool = True,
        synchronous: str = "FULL",
        busy_timeout: float = BUSY_TIMEOUT,
        pool_size: int = 1,
    ) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "OFF", "EXTRA"):
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self.url = url
        self._where = redact(url)
        self._busy_timeout = busy_timeout
        self._settings = {
            "lock_timeout": f"{int(busy_timeout * 1000)}ms",
            "synchronous_commit": "on" if synchronous.upper() in ("FULL", "EXTRA") else "off",
        }
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(busy_timeout)),
                                 application_name="medaid") as conn:
                self._configure(conn)
                self._prepare(_Pg(conn), create)
        except psycopg.Error as e:
            raise self._busy_or_damaged(e) from None
        self._pool: ConnectionPool[psycopg.Connection[TupleRow]] = ConnectionPool(
            # at least 2: a reader may walk entries() (a connection held) and ask for more meanwhile
            url, min_size=1, max_size=max(2, pool_size), timeout=busy_timeout, name="medaid-ledger",
            kwargs={"autocommit": True, "application_name": "medaid"}, configure=self._configure, open=True,
        )

    # -- opening ----------------------------------------------------------------------------
    def _configure(self, conn: psycopg.Connection[TupleRow]) -> None:
        for name, value in self._settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))

    def _refuse(self, message: str) -> LedgerError:
        return LedgerError(Problem(message + "; nothing was written to it", source=self._where))

    def _identify(self, con: _Pg) -> tuple[str | None, set[str], str | None]:
        """The current schema, which of the ledger's tables it holds, and the marker comment,
        in one statement (one snapshot), read from the catalogs as tables: a name looked up by
        ``to_regclass`` may come from a cache that has not yet seen another session's commit."""
        schema, names, marker = con.one(_IDENTIFY)
        return schema, set(names), marker

    def _prepare(self, con: _Pg, create: bool) -> None:
        schema, names, marker = self._identify(con)
        if schema is None:
            raise self._refuse("has no schema to hold the ledger (the search_path names none that exists)")
        encoding = con.one("SHOW server_encoding")[0]
        if encoding.upper() not in ("UTF8", "UTF-8"):
            raise self._refuse(f"is a database in {encoding}, not UTF8 (the ledger holds Chinese text)")
        if not names:
            if not create:
                raise LedgerError(Problem(
                    "no ledger here (settle a claim or run 'medaid ledger migrate' to create one, "
                    "or give --ledger / $MEDAID_LEDGER)", source=self._where))
        elif "schema_migrations" in names and marker != MARKER:
            raise self._refuse(f"is not a medaid ledger (its schema {schema} holds another application's "
                               "schema_migrations table)")
        elif names != {"entries", "schema_migrations"}:
            raise self._refuse("is a damaged medaid ledger: its tables are missing")
        else:
            version = self._version(con)
            if version > SCHEMA_VERSION:
                raise self._refuse(
                    f"was written by a newer medaid (schema {version}; this one knows {SCHEMA_VERSION})")
            if version == SCHEMA_VERSION:
                return
        self._migrate(con)

    def _migrate(self, con: _Pg) -> None:
        """Apply the pending migrations in one transaction under the migration lock (another
        process may be creating the same ledger: the state is read again under it)."""
        with con.conn.transaction():
            con.execute("SELECT pg_advisory_xact_lock(?, 0)", (_MIGRATE,))
            _, names, marker = self._identify(con)
            if names and marker != MARKER:
                raise self._refuse("is not a medaid ledger")
            if not names:
                con.execute("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, "
                            "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
                con.execute(f"COMMENT ON TABLE schema_migrations IS '{MARKER}'")
            have = self._version(con)
            for step in MIGRATIONS:
                if step.version <= have:
                    continue
                for sql in STEPS[step.version]:
                    con.conn.execute(sql)
                con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (step.version, step.name, now_text()))

    @staticmethod
    def _version(con: _Pg) -> int:
        return int(con.one("SELECT coalesce(max(version), 0) FROM schema_migrations")[0])

    def _busy_or_damaged(self, e: Exception) -> LedgerError:
        if isinstance(e, pg_errors.LockNotAvailable | pg_errors.QueryCanceled | PoolTimeout):
            return LedgerError(Problem(
                "the ledger is busy (another desk held it too long, or no connection was free); "
                "nothing was recorded, try again", source=self._where))
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, psycopg.OperationalError):
            return LedgerError(Problem(
                f"cannot reach the ledger's database ({text}); nothing was recorded", source=self._where))
        return LedgerError(Problem(
            f"the ledger failed ({text}); nothing was recorded; run 'medaid ledger verify'",
            source=self._where))

    def close(self) -> None:
        """Close the pool's connections."""
        self._pool.close()

    # -- transactions and locks -------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[_Pg]:
        """A read-committed transaction on a pooled connection; committed at the end, rolled
        back on any error (nothing written).  Its ``BEGIN`` goes with its first statement
        (:class:`_Pg`); a settlement's or reversal's append commits it (:meth:`_append`)."""
        try:
            with self._pool.connection() as conn:
                con = _Pg(conn)
                con.before("BEGIN", ())
                try:
                    yield con
                    if conn.info.transaction_status == TransactionStatus.INTRANS:
                        con.execute("COMMIT")  # unless the append committed already
                except BaseException:
                    if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
                        conn.execute("ROLLBACK")
                    raise
        except psycopg.Error as e:
            raise self._busy_or_damaged(e) from None

    @contextmanager
    def _reading(self) -> Iterator[_Pg]:
        try:
            with self._pool.connection() as conn:
                yield _Pg(conn)
        except psycopg.Error as e:
            raise self._busy_or_damaged(e) from None

    def _stream(self, sql: str, params: tuple[Any, ...]) -> Iterator[Any]:
        """The rows as they are read: a server-side cursor in a read-only transaction."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            with conn.cursor(name="medaid_rows") as cur:
                cur.itersize = 2000
                cur.execute(_dialect(sql), params)
                yield from cur

    @staticmethod
    def _lock(con: Connection, sql: str, params: tuple[Any, ...]) -> None:
        """Take the lock with the transaction's next statement (:meth:`_Pg.before`)."""
        assert isinstance(con, _Pg)
        con.before(sql, params)

    def _lock_claim(self, con: Connection, claim_id: str) -> None:
        self._lock(con, "SELECT pg_advisory_xact_lock_shared(?, 0), pg_advisory_xact_lock(?, ?)",
                   (_WRITERS, _CLAIM, lock_key(claim_id)))

    def _lock_pool(self, con: Connection, key: PoolKey) -> None:
        self._lock(con, "SELECT pg_advisory_xact_lock(?, ?)", (_POOL, lock_key(*key)))

    def _lock_group(self, con: Connection, key: GroupKey) -> None:
        self._lock(con, "SELECT pg_advisory_xact_lock(?, ?)", (_GROUP, lock_key(*key)))

    def _lock_chain(self, con: Connection) -> None:
        self._lock(con, "SELECT pg_advisory_xact_lock(?, 0)", (_CHAIN,))

    def _lock_everything(self, con: Connection) -> None:
        self._lock(con, "SELECT pg_advisory_xact_lock(?, 0), pg_advisory_xact_lock(?, 0)", (_WRITERS, _CHAIN))

    def _queries(self, con: Connection, *queries: tuple[str, tuple[Any, ...]]) -> list[list[Any]]:
        """The queries, with the ``BEGIN`` and locks queued before them, in one round trip."""
        assert isinstance(con, _Pg)
        with con.conn.pipeline():
            for early, early_params in con.pending:
                con.conn.execute(early, early_params)
            con.pending.clear()
            cursors = [con.conn.execute(_dialect(sql), params) for sql, params in queries]
        return [cur.fetchall() for cur in cursors]

    def _append(self, con: Connection, entry: Entry, recorded_at: str | None = None, *, last: bool = True) -> Entry:
        """Append ``entry`` at the chain's head in one round trip: the chain's lock, then one
        statement that reads the head and inserts the row, numbered, timed (the server's
        clock, unless ``recorded_at`` says) and hashed by the server, then (``last``) the
        ``COMMIT``.  While the chain is locked the server waits for nothing from this process.

        The server hashes the very text :func:`medaid.ledger.schema.row_hash` would: medaid
        builds it (:func:`_hashed_around`) and the server puts the number (digits), the time
        and the previous hash (JSON strings, which both write alike) in their places.  The
        hash returned is checked against medaid's own before the entry is given out."""
        assert isinstance(con, _Pg)
        self._lock_chain(con)
        values = list(encode(entry))
        given = tuple(values[_AT[c]] for c in _GIVEN)
        row = con.raw(_APPEND_RAW, (recorded_at, *_hashed_around(values), *given), commit=last).fetchone()
        return self._appended(values, row)

    def _appended(self, values: list[Any], row: tuple[Any, ...] | None) -> Entry:
        """The entry stored as ``values`` once the append returned ``row`` (its number, time and
        hashes), the server's hash checked against medaid's own."""
        assert row is not None
        for column, value in zip(("seq", "recorded_at", "prev_hash", "row_hash"), row, strict=True):
            values[_AT[column]] = value
        if row_hash(values) != values[_AT["row_hash"]]:
            raise LedgerError(Problem(
                f"row {row[0]} was hashed differently by the database; run 'medaid ledger verify'",
                source=self._where))
        return decode(values)

    def _append_all(self, con: Connection, entries: list[Entry]) -> list[Entry]:
        """The appends of :meth:`_append`, all in one round trip (a pipeline: the server runs
        them in order, each reading the head the one before it wrote); not committed."""
        assert isinstance(con, _Pg)
        self._lock_chain(con)
        sent = []
        with con.conn.pipeline():
            for early, early_params in con.pending:
                con.conn.execute(early, early_params)
            con.pending.clear()
            for entry in entries:
                values = list(encode(entry))
                given = tuple(values[_AT[c]] for c in _GIVEN)
                cur = psycopg.RawCursor(con.conn)
                sent.append((values, cur.execute(_APPEND_RAW, (None, *_hashed_around(values), *given))))
        return [self._appended(values, cur.fetchone()) for values, cur in sent]

    # -- checking -----------------------------------------------------------------------------
    def _database_problems(self) -> tuple[list[str], bool]:
        """The triggers that keep rows append-only: present and enabled."""
        problems: list[str] = []
        with self._reading() as con:
            state = {r[0]: r[1] for r in con.execute(_TRIGGERS)}
        for t in TRIGGERS:
            if t not in state:
                problems.append(f"the trigger {t} that keeps rows append-only is missing")
            elif state[t] == "D":
                problems.append(f"the trigger {t} that keeps rows append-only is disabled")
        return problems, False

    def schema_version(self) -> int:
        """The last migration applied to this database."""
        with self._reading() as con:
            return self._version(con)

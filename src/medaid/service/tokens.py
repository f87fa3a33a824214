"""Who may do what at the settlement service: bearer tokens, their roles, and web sessions.

Rules implemented (docs/service.md#tokens-and-roles):

* A token is ``mdt_`` and 43 characters of URL-safe base64 (32 random bytes from
  :mod:`secrets`).  It is shown once, when it is made; the ledger database stores only its
  ``sha256`` (hex), its id, hospital and role, and when it was made and revoked (the ``tokens``
  table, migration 3 of :data:`medaid.ledger.schema.MIGRATIONS`).
* Roles: ``desk`` (settle, quote and reverse its own hospital's claims, read history; a desk
  token names its hospital), ``reviewer`` (read: history, quotes, rules; review a monthly
  period), ``admin`` (everything but a period's review, also ``ledger verify``, the tokens and
  the periods' other steps).  :data:`PERMISSIONS` is the one table of
  which role may do what; the service checks it before it touches the ledger.
* A revoked token is refused at its next request (every request looks its hash up; nothing is
  cached), and so are the web sessions opened with it.
* The clerk's web page signs in with a token and gets a session: a second random secret, held
  in an ``HttpOnly``, ``SameSite=Strict`` cookie and stored hashed (``desk_sessions``) with its
  own CSRF token and an expiry.

Only the standard library is imported: ``medaid tokens`` runs without the service's packages.
The store works on either ledger backend (an SQLite file or PostgreSQL, docs/desk.md#the-ledger-on-postgresql)
through the ledger's own reading connection and write transaction (:func:`_db`: the one place
that reaches into :class:`medaid.ledger.LedgerBase`); its SQL is plain, with the ledger's
``?`` placeholders, which a backend whose driver takes another style translates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from ..errors import MedaidError, Problem

if TYPE_CHECKING:  # pragma: no cover
    from ..ledger.backend import Connection, LedgerBase

ROLES: Final = ("desk", "reviewer", "admin")
#: What a token's role allows (the service's one table of permissions).  A desk's ``settle``,
#: ``quote`` and ``reverse`` are further limited to its own hospital's claims.
PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "settle": frozenset({"desk", "admin"}),
    "quote": frozenset({"desk", "reviewer", "admin"}),
    "reverse": frozenset({"desk", "admin"}),
    "history": frozenset({"desk", "reviewer", "admin"}),
    "rules": frozenset({"desk", "reviewer", "admin"}),
    "verify": frozenset({"admin"}),
    "tokens": frozenset({"admin"}),
    # the monthly periods (docs/periods.md): the reviewer reviews, the admin opens, declares,
    # approves and pays (the one who reviews is not the one who approves); both read them
    "periods": frozenset({"reviewer", "admin"}),
    "review a period": frozenset({"reviewer"}),
    "open, close, approve or pay a period": frozenset({"admin"}),
}
#: The prefix of every token (so that secret scanners and people can tell one).
PREFIX: Final = "mdt_"
#: How long a web session lasts.
SESSION_HOURS: Final = 12


class TokenError(MedaidError):
    """A token could not be added or revoked (unknown id, bad role, a desk without a hospital)."""


class Token(NamedTuple):
    """A token as stored (never its secret).

    Attributes:
        id: its public id (``t`` and 10 hex digits), recorded as ``desk`` on the ledger rows
            it writes.
        hospital: the hospital of a desk (``None``: a county-wide reviewer or admin).
        role: ``desk``, ``reviewer`` or ``admin``.
        created_at, revoked_at: UTC times (ISO 8601); ``revoked_at`` is ``None`` while active.
    """

    id: str
    hospital: str | None
    role: str
    created_at: str
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def may(self, action: str) -> bool:
        """Whether the role allows ``action`` (a key of :data:`PERMISSIONS`)."""
        return self.role in PERMISSIONS[action]

    def to_dict(self) -> dict[str, object]:
        return {**self._asdict(), "active": self.active}


def secret_hash(secret: str) -> str:
    """What is stored of a token or session secret: its ``sha256``, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds")


_COLUMNS = "id, hospital, role, created_at, revoked_at"


class TokenStore:
    """The tokens and web sessions of one ledger database."""

    def __init__(self, ledger: "LedgerBase") -> None:
        self._ledger = ledger

    def _write(self) -> AbstractContextManager["Connection"]:
        return _db(self._ledger).transaction()

    def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        """The first row of a query (``None``: none), read outside any write transaction."""
        with _db(self._ledger).reading() as con:
            return con.execute(sql, params).fetchone()

    # -- tokens ---------------------------------------------------------------------------
    def add(self, role: str, hospital: str | None = None) -> tuple[Token, str]:
        """A new token: the stored record and the secret (shown once, never stored)."""
        hospital = (hospital or "").strip() or None
        if role not in ROLES:
            raise TokenError(Problem(f"unknown role {role!r}; roles: {', '.join(ROLES)}", field="role"))
        if role == "desk" and hospital is None:
            raise TokenError(Problem("a desk token names its hospital (--hospital)", field="hospital"))
        secret = PREFIX + secrets.token_urlsafe(32)
        token = Token("t" + secrets.token_hex(5), hospital, role, _iso(_now()), None)
        with self._write() as con:
            con.execute(f"INSERT INTO tokens ({_COLUMNS}, token_hash) VALUES (?, ?, ?, ?, ?, ?)",
                        (*token, secret_hash(secret)))
        return token, secret

    def list(self) -> list[Token]:
        """Every token, oldest first."""
        with _db(self._ledger).reading() as con:
            return [Token(*r) for r in con.execute(f"SELECT {_COLUMNS} FROM tokens ORDER BY created_at, id").fetchall()]

    def get(self, token_id: str) -> Token | None:
        row = self._one(f"SELECT {_COLUMNS} FROM tokens WHERE id = ?", (token_id,))
        return None if row is None else Token(*row)

    def revoke(self, token_id: str) -> Token:
        """Revoke a token (and so its web sessions) from its next request on."""
        with self._write() as con:
            row = con.execute(f"SELECT {_COLUMNS} FROM tokens WHERE id = ?", (token_id,)).fetchone()
            if row is None:
                raise TokenError(Problem("no such token", source=f"token {token_id}", field="id"))
            token = Token(*row)
            if not token.active:
                raise TokenError(Problem(f"already revoked ({token.revoked_at})", source=f"token {token_id}"))
            token = token._replace(revoked_at=_iso(_now()))
            con.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (token.revoked_at, token.id))
            con.execute("DELETE FROM desk_sessions WHERE token_id = ?", (token.id,))
        return token

    def authenticate(self, secret: str) -> Token | None:
        """The active token whose secret this is, else ``None``."""
        query = lookup(secret)
        return None if query is None else found(self._one(*query))

    # -- web sessions ---------------------------------------------------------------------
    def open_session(self, token: Token, hours: float = SESSION_HOURS) -> tuple[str, str]:
        """A new web session for ``token``: its secret (the cookie) and its CSRF token.
        Expired sessions are removed at the same time."""
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        now = _now()
        with self._write() as con:
            con.execute("DELETE FROM desk_sessions WHERE expires_at < ?", (_iso(now),))
            con.execute(
                "INSERT INTO desk_sessions (session_hash, token_id, csrf, created_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (secret_hash(secret), token.id, csrf, _iso(now), _iso(now + dt.timedelta(hours=hours))))
        return secret, csrf

    def session(self, secret: str) -> tuple[Token, str] | None:
        """The active token and CSRF token of an unexpired session, else ``None``."""
        row = self._one(
            "SELECT t.id, t.hospital, t.role, t.created_at, t.revoked_at, s.csrf FROM desk_sessions s "
            "JOIN tokens t ON t.id = s.token_id "
            "WHERE s.session_hash = ? AND s.expires_at > ? AND t.revoked_at IS NULL",
            (secret_hash(secret), _iso(_now())))
        return None if row is None else (Token(*row[:5]), row[5])

    def close_session(self, secret: str) -> None:
        with self._write() as con:
            con.execute("DELETE FROM desk_sessions WHERE session_hash = ?", (secret_hash(secret),))


def lookup(secret: str) -> tuple[str, tuple[str]] | None:
    """The query that reads the active token whose secret this is (a row or none, for
    :func:`found`), on the ledger's ``?`` placeholders; ``None`` for a secret that cannot be a
    token.  :meth:`TokenStore.authenticate` runs it alone; the service's settlement runs it
    inside its own transaction (:meth:`medaid.service.operations.Operations.settle_as`)."""
    if not secret.startswith(PREFIX):
        return None
    return f"SELECT {_COLUMNS} FROM tokens WHERE token_hash = ? AND revoked_at IS NULL", (secret_hash(secret),)


def found(row: Any) -> Token | None:
    """The token of a :func:`lookup`'s row (``None``: no such active token)."""
    return None if row is None else Token(*row)


def same_secret(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets (CSRF tokens)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class _Db(NamedTuple):
    ledger: "LedgerBase"

    def reading(self) -> AbstractContextManager["Connection"]:
        return self.ledger._reading()

    def transaction(self) -> AbstractContextManager["Connection"]:
        return self.ledger._transaction()


def _db(ledger: "LedgerBase") -> _Db:
    """The ledger's reading connection (each statement one snapshot) and its write transaction
    (committed at the end, rolled back on any error), on either backend: the seam between the
    token store and :class:`medaid.ledger.LedgerBase`."""
    return _Db(ledger)

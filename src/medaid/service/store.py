"""Where the service keeps its state: the ledger database named by ``--ledger`` (an SQLite file,
or a ``postgresql://`` URL: docs/desk.md#the-ledger-on-postgresql) and the rule files of
``--rules``.  Nothing else: any number of workers (or hosts, on a shared database) serve the
same county (docs/service.md#running-it).

:class:`Settings` is read from the environment (``MEDAID_LEDGER``, ``MEDAID_RULES``,
``MEDAID_SCHEME``), which is how ``medaid serve`` hands its options to each uvicorn worker.
:class:`Ledgers` gives each request thread its own open SQLite :class:`medaid.ledger.Ledger`
(an SQLite connection belongs to the thread that opened it), and every thread of a process the
one :class:`medaid.ledger.postgres.PostgresLedger` (its pool of :data:`POOL_SIZE` connections
serves them all).  Only the standard library and medaid's own modules are imported here.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..tuning import SERVICE_POOL_SIZE

if TYPE_CHECKING:  # pragma: no cover
    from ..ledger.backend import LedgerBase

ENV_LEDGER = "MEDAID_LEDGER"
ENV_RULES = "MEDAID_RULES"
ENV_SCHEME = "MEDAID_SCHEME"
DEFAULT_LEDGER = "medaid-ledger.sqlite3"
#: Connections of a service process's PostgreSQL pool (:data:`medaid.tuning.SERVICE_POOL_SIZE`).
POOL_SIZE = SERVICE_POOL_SIZE


class Settings(NamedTuple):
    """What a service process serves: the ledger (path or URL), the rules and the scheme."""

    ledger: str
    rules: str
    scheme: str | None = None

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(os.environ.get(ENV_LEDGER) or DEFAULT_LEDGER, os.environ.get(ENV_RULES) or "rules",
                   os.environ.get(ENV_SCHEME) or None)

    def env(self) -> dict[str, str]:
        """The environment that gives these settings to a worker process."""
        out = {ENV_LEDGER: self.ledger, ENV_RULES: self.rules}
        if self.scheme:
            out[ENV_SCHEME] = self.scheme
        return out


def open_ledger(target: str, *, create: bool = True, pool_size: int = 1) -> "LedgerBase":
    """The ledger at ``target``: a ``postgresql://`` URL (a pool of up to ``pool_size``
    connections), an SQLite file path or ``sqlite:///PATH`` (:func:`medaid.ledger.open_ledger`)."""
    from ..ledger.backend import open_ledger as open_target

    return open_target(_sqlite_path(target), create=create, pool_size=pool_size)


def _sqlite_path(target: str) -> str:
    """``target`` without an ``sqlite:///`` prefix (``sqlite:///rel/path``, ``sqlite:////abs/path``)."""
    return target[len("sqlite:///"):] if target.startswith("sqlite:///") else target


class Ledgers:
    """The open ledger of a request thread, opened on first use and kept for the process's
    life: one per thread on SQLite, one shared by every thread on PostgreSQL.  (Writers of an
    SQLite ledger, threads and processes alike, queue in the ledger itself: docs/desk.md.)"""

    def __init__(self, target: str) -> None:
        from ..ledger.backend import is_url, redact

        self.target = target
        #: How the ledger names itself in its problems (a URL without its password).
        self.where = redact(target) if is_url(target) else str(Path(_sqlite_path(target)))
        self._local = threading.local()
        self._threads = threading.Lock()
        self._sqlite = not is_url(target)
        self._shared: LedgerBase | None = None

    def get(self) -> "LedgerBase":
        if not self._sqlite:
            if self._shared is None:
                with self._threads:
                    if self._shared is None:
                        self._shared = open_ledger(self.target, pool_size=POOL_SIZE)
            return self._shared
        lg = getattr(self._local, "ledger", None)
        if lg is None:
            lg = self._local.ledger = open_ledger(self.target)
        return lg

    def close(self) -> None:
        """Close the shared PostgreSQL ledger (its pool), when the process stops serving.  An
        SQLite thread's connection closes with its thread."""
        with self._threads:
            shared, self._shared = self._shared, None
        if shared is not None:
            shared.close()

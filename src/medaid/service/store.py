"""Where the service keeps its state: the ledger database named by ``--ledger`` (an SQLite file
today; a ``postgresql://`` URL when that backend is installed) and the rule files of
``--rules``.  Nothing else: any number of workers (or hosts, on a shared database) serve the
same county (docs/service.md#running-it).

:class:`Settings` is read from the environment (``MEDAID_LEDGER``, ``MEDAID_RULES``,
``MEDAID_SCHEME``), which is how ``medaid serve`` hands its options to each uvicorn worker.
:class:`Ledgers` gives each request thread its own open :class:`medaid.ledger.Ledger`
(an SQLite connection belongs to the thread that opened it).  Only the standard library and
medaid's own modules are imported here.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

from ..errors import MedaidError, Problem

if TYPE_CHECKING:  # pragma: no cover
    from ..ledger.ledger import Ledger

ENV_LEDGER = "MEDAID_LEDGER"
ENV_RULES = "MEDAID_RULES"
ENV_SCHEME = "MEDAID_SCHEME"
DEFAULT_LEDGER = "medaid-ledger.sqlite3"


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


def open_ledger(target: str, *, create: bool = True) -> "Ledger":
    """The ledger at ``target``: an SQLite file path (or ``sqlite:///PATH``).  A
    ``postgresql://`` URL is refused until the PostgreSQL backend is installed."""
    from ..ledger.ledger import Ledger

    if target.startswith(("postgresql://", "postgres://")):
        raise MedaidError(Problem(
            "this medaid has no PostgreSQL ledger backend; give an SQLite file path", field="--ledger"))
    if target.startswith("sqlite:///"):
        target = target[len("sqlite:///"):]  # sqlite:///rel/path, sqlite:////abs/path
    return Ledger(target, create=create)


class Ledgers:
    """One open ledger per thread, opened on first use and kept for the process's life; and
    :meth:`writing`, the queue writers of an SQLite ledger wait in."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._local = threading.local()
        self._threads = threading.Lock()
        self._lock_fd: int | None = None
        self._sqlite = not target.startswith(("postgresql://", "postgres://"))

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the ledger's write queue while settling or reversing.

        Correctness does not depend on it: the ledger serialises writers itself (``BEGIN
        IMMEDIATE``).  But SQLite makes a writer that finds the file locked sleep and retry
        (1, 2, 5 … 100 ms), so under many concurrent writers its latency is mostly sleeping.
        Here writers queue instead: the threads of a process on a lock, the processes on an
        ``flock`` of ``<ledger>.lock``, which the kernel hands to the next waiter the moment it is
        released (and releases when a process dies).  Other ledger backends need no queue."""
        if not self._sqlite:
            yield
            return
        with self._threads:
            if self._lock_fd is None:
                path = self.target[len("sqlite:///"):] if self.target.startswith("sqlite:///") else self.target
                self._lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def get(self) -> "Ledger":
        lg = getattr(self._local, "ledger", None)
        if lg is None:
            lg = self._local.ledger = open_ledger(self.target)
        return lg

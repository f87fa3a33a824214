"""The ledger (append-only, hash-chained): the interface and its records, defined once for
every database, from :mod:`.backend` (:func:`open_ledger` opens a path or a ``postgresql://`` URL);
the SQLite file :class:`Ledger`, from :mod:`.ledger`; the PostgreSQL database, from :mod:`.postgres`
(imported when a URL is opened); ``copy`` between two ledgers, from :mod:`.copy`; the schema, its
migrations and the row model :class:`Entry`, from :mod:`.schema`."""

from .backend import (
    LedgerBase,
    LedgerConflict,
    LedgerError,
    Receipt,
    Verification,
    differing_fields,
    new_claim_id,
    open_ledger,
)
from .ledger import Ledger
from .schema import MIGRATIONS, SCHEMA_VERSION, Entry

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Entry",
    "Ledger",
    "LedgerBase",
    "LedgerConflict",
    "LedgerError",
    "Receipt",
    "Verification",
    "differing_fields",
    "new_claim_id",
    "open_ledger",
]

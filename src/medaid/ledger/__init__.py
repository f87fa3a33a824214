"""The desk ledger (SQLite, append-only): :class:`Ledger` and its records, from :mod:`.ledger`;
the schema, its migrations and the row model :class:`Entry`, from :mod:`.schema`."""

from .ledger import (
    Ledger,
    LedgerConflict,
    LedgerError,
    Receipt,
    Verification,
    differing_fields,
    new_claim_id,
)
from .schema import MIGRATIONS, SCHEMA_VERSION, Entry

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Entry",
    "Ledger",
    "LedgerConflict",
    "LedgerError",
    "Receipt",
    "Verification",
    "differing_fields",
    "new_claim_id",
]

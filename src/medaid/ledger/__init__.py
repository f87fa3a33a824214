"""The desk ledger (SQLite, append-only): :class:`Ledger` and its records, from :mod:`.ledger`."""

from .ledger import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Entry,
    Ledger,
    LedgerConflict,
    LedgerError,
    Receipt,
    Verification,
    differing_fields,
    new_claim_id,
)

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

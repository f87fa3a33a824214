"""The ledger file's schema: the ``entries`` table and its migrations, and the row model.

One definition of a ledger row: :class:`Entry` names its fields; the table's columns
(:data:`COLUMNS`) are those fields in the same order (``group`` is stored as ``grp``);
:func:`encode` gives the values as stored (the date as ISO text, the segments as JSON text),
:func:`decode` reads them back, and :func:`row_hash` is the hash chained over them.  A row is
inserted, hashed and read only through these, by field name.

Rules implemented (docs/desk.md *The ledger's guarantees*):

* ``row_hash = sha256`` of the canonical JSON (``separators=(",", ":")``, ``ensure_ascii=False``)
  of the row's stored values in column order, ``prev_hash`` included and ``row_hash`` left out;
  the first row chains from :data:`GENESIS`.  This byte form is what existing ledgers were
  written with: it never changes (tests/test_ledger_schema.py opens a ledger written before
  this module existed).
* Schema migrations are a registry of named steps (:data:`MIGRATIONS`), applied in order inside
  the caller's ``BEGIN IMMEDIATE`` transaction and recorded in ``schema_migrations``
  (:func:`migrate`).  Never edit an applied step; add a new one.  Their SQL is plain (``TEXT``,
  ``INTEGER``, ``CHECK``, ``ALTER TABLE … ADD COLUMN``) so that it reads the same on PostgreSQL.
* A column added after the first release (:data:`ADDED_FIELDS`: ``desk``, the service token
  that wrote the row, docs/service.md#tokens-and-roles; ``adjusts``, ``reversal`` and
  ``adjustment``, the links and amount of an adjustment,
  docs/calculation.md#reversals-re-settle-the-claims-after-them; ``channel``, ``bank_account``
  and ``account_name``, the claim's channel and payee, docs/periods.md; the household,
  non-compliant cost, attributes, second-stage and cap-pool columns of migration 6,
  docs/calculation.md#rules-real-schemes-need) is hashed only when it holds a value, so
  a row written before it existed (``NULL`` there) keeps its ``row_hash``, and a row that names
  its desk cannot lose or change that name unseen.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, NamedTuple, cast

from ..domain.brackets import Segment
from ..domain.claims import Claim, mask_account, mask_name
from ..money import format_yuan

#: ``PRAGMA application_id`` of a medaid ledger ("mdld"): tells our files from foreign ones.
APPLICATION_ID = 0x6D646C64
#: The hash a first row chains from.
GENESIS = "0" * 64

SETTLEMENT = "settlement"
REVERSAL = "reversal"
ADJUSTMENT = "adjustment"

# --------------------------------------------------------------------------------------------
# migrations


class Migration(NamedTuple):
    """One step of the schema: its number, a name recorded in the file, its SQL statements."""

    version: int
    name: str
    statements: tuple[str, ...]


#: The ``entries`` table of the first step (settlements and reversals).
ENTRIES_V1 = """CREATE TABLE entries (
            seq           INTEGER PRIMARY KEY,
            entry         TEXT    NOT NULL CHECK (entry IN ('settlement', 'reversal')),
            claim_id      TEXT    NOT NULL,
            person_id     TEXT    NOT NULL,
            date          TEXT    NOT NULL,
            self_pay      INTEGER NOT NULL CHECK (self_pay >= 0),
            grp           TEXT,
            kind          TEXT,
            hospital      TEXT,
            total_cost    INTEGER,
            plan          TEXT    NOT NULL,
            pool          TEXT    NOT NULL,
            benefit_year  INTEGER NOT NULL,
            relief        INTEGER NOT NULL CHECK (relief >= 0),
            patient_pays  INTEGER NOT NULL,
            bracket_relief INTEGER NOT NULL,
            capped_by     TEXT,
            bracket       INTEGER NOT NULL,
            ytd_self_pay  INTEGER NOT NULL,
            ytd_relief    INTEGER NOT NULL,
            annual_cap    INTEGER,
            claim_cap     INTEGER,
            base_from     INTEGER NOT NULL,
            base_to       INTEGER NOT NULL,
            segments      TEXT    NOT NULL,
            rule_set_id   TEXT    NOT NULL,
            rule_version  TEXT    NOT NULL,
            rule_hash     TEXT    NOT NULL,
            reverses      INTEGER REFERENCES entries(seq),
            reason        TEXT,
            recorded_at   TEXT    NOT NULL,
            prev_hash     TEXT    NOT NULL,
            row_hash      TEXT    NOT NULL UNIQUE
        )"""
#: The ``entries`` table as step 4 rebuilds it on SQLite: the kinds of row include
#: ``adjustment``, with its three columns (the desk column of step 2 in its place before them).
ENTRIES_V4 = ENTRIES_V1.replace("CREATE TABLE entries (", "CREATE TABLE entries_v4 (", 1).replace(
    "CHECK (entry IN ('settlement', 'reversal'))", "CHECK (entry IN ('settlement', 'reversal', 'adjustment'))").replace(
    "row_hash      TEXT    NOT NULL UNIQUE", """row_hash      TEXT    NOT NULL UNIQUE,
            desk          TEXT,
            adjusts       INTEGER REFERENCES entries(seq),
            reversal      INTEGER REFERENCES entries(seq),
            adjustment    INTEGER,
            CHECK ((entry = 'adjustment') =
                   (adjusts IS NOT NULL AND reversal IS NOT NULL AND adjustment IS NOT NULL))""")
#: The columns ``entries`` had before step 4 (the first step's and ``desk``).
_V3_COLUMNS = (*re.findall(r"^\s*(\w+)\s+(?:INTEGER|TEXT)\b", ENTRIES_V1, re.M), "desk")
_INDEXES = (
    "CREATE INDEX entries_by_claim ON entries (claim_id, seq)",
    "CREATE INDEX entries_by_pool ON entries (person_id, benefit_year, pool)",
    "CREATE UNIQUE INDEX entries_reversed_once ON entries (reverses) WHERE reverses IS NOT NULL",
)
_TRIGGERS = (
    """CREATE TRIGGER entries_never_updated BEFORE UPDATE ON entries
           BEGIN SELECT RAISE(ABORT, 'medaid ledger rows are never updated'); END""",
    """CREATE TRIGGER entries_never_deleted BEFORE DELETE ON entries
           BEGIN SELECT RAISE(ABORT, 'medaid ledger rows are never deleted'); END""",
)

#: The migration registry, applied in order by :func:`migrate`.  Never edit an applied entry;
#: add a new one.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "entries: settlements and reversals, hash-chained, append-only", (
        ENTRIES_V1,
        *_INDEXES,
        *_TRIGGERS,
    )),
    # -- the settlement service (docs/service.md): the desk (token id) that wrote each row, and
    # the service's tokens and web sessions.  Plain SQL, the same on PostgreSQL.
    Migration(2, "entries.desk: the service token (desk) that wrote the row", (
        "ALTER TABLE entries ADD COLUMN desk TEXT",
    )),
    Migration(3, "tokens and desk sessions of the settlement service", (
        """CREATE TABLE tokens (
            id          TEXT PRIMARY KEY,
            token_hash  TEXT NOT NULL UNIQUE,
            hospital    TEXT,
            role        TEXT NOT NULL CHECK (role IN ('desk', 'reviewer', 'admin')),
            created_at  TEXT NOT NULL,
            revoked_at  TEXT,
            CHECK (role <> 'desk' OR hospital IS NOT NULL)
        )""",
        """CREATE TABLE desk_sessions (
            session_hash TEXT PRIMARY KEY,
            token_id     TEXT NOT NULL REFERENCES tokens(id),
            csrf         TEXT NOT NULL,
            created_at   TEXT NOT NULL,
            expires_at   TEXT NOT NULL
        )""",
    )),
    # -- reversals re-settle the claims after them (docs/calculation.md#reversals-re-settle-the-claims-after-them):
    # a third kind of row, ``adjustment``, and its links.  Each backend also widens the check on
    # the kinds of row, which SQLite cannot alter in place (:data:`SQLITE_STEPS`,
    # medaid.ledger.postgres.STEPS).
    Migration(4, "entries: adjustments (re-settlement after a reversal), linked to the reversal and the settlement", (
        "ALTER TABLE entries ADD COLUMN adjusts INTEGER REFERENCES entries(seq)",
        "ALTER TABLE entries ADD COLUMN reversal INTEGER REFERENCES entries(seq)",
        "ALTER TABLE entries ADD COLUMN adjustment INTEGER",
    )),
    # -- monthly periods (docs/periods.md): each claim's channel and payee, and the periods'
    # append-only events and review outcomes, kept so by triggers, which each backend adds in
    # its own words (:data:`SQLITE_STEPS`, medaid.ledger.postgres.STEPS).
    Migration(5, "entries.channel and payee; monthly periods: period_events and period_reviews", (
        "ALTER TABLE entries ADD COLUMN channel TEXT CHECK (channel IN ('one-stop', 'application'))",
        "ALTER TABLE entries ADD COLUMN bank_account TEXT",
        "ALTER TABLE entries ADD COLUMN account_name TEXT",
        """CREATE TABLE period_events (
            id          INTEGER PRIMARY KEY,
            period      TEXT    NOT NULL,
            state       TEXT    NOT NULL CHECK (state IN ('open', 'declared', 'reviewed', 'approved', 'paid')),
            by_whom     TEXT    NOT NULL,
            at          TEXT    NOT NULL,
            through_seq INTEGER,
            UNIQUE (period, state)
        )""",
        """CREATE TABLE period_reviews (
            settlement  INTEGER PRIMARY KEY,
            period      TEXT    NOT NULL,
            claim_id    TEXT    NOT NULL,
            outcome     TEXT    NOT NULL CHECK (outcome IN ('approved', 'rejected')),
            reason      TEXT,
            reversal    INTEGER,
            event       INTEGER NOT NULL REFERENCES period_events(id),
            CHECK ((outcome = 'rejected') = (reason IS NOT NULL AND reversal IS NOT NULL))
        )""",
    )),
    # -- rules real schemes need (docs/calculation.md#rules-real-schemes-need): the claim's
    # household, non-compliant cost and attributes, and the results of a second stage and of
    # cap pools.  Plain SQL, the same on PostgreSQL; old rows hold NULL there (their hashes
    # stay: ADDED_FIELDS).
    Migration(6, "entries: household, non-compliant cost, attributes; second stage and cap pools", (
        "ALTER TABLE entries ADD COLUMN household_id TEXT",
        "ALTER TABLE entries ADD COLUMN non_compliant INTEGER CHECK (non_compliant >= 0)",
        "ALTER TABLE entries ADD COLUMN attributes TEXT",
        "ALTER TABLE entries ADD COLUMN second_relief INTEGER",
        "ALTER TABLE entries ADD COLUMN second_pool TEXT",
        "ALTER TABLE entries ADD COLUMN second_capped_by TEXT",
        "ALTER TABLE entries ADD COLUMN ytd_burden INTEGER",
        "ALTER TABLE entries ADD COLUMN ytd_second_relief INTEGER",
        "ALTER TABLE entries ADD COLUMN caps TEXT",
        "CREATE INDEX entries_by_household ON entries (household_id, benefit_year)",
    )),
    # -- what a desk needs to read a claim's whole position back and to verify the cap pools
    # (docs/calculation.md#rules-real-schemes-need): the claim's burden (the second stage's
    # base), the cap pools' limits (name, whom it counts per, annual amount) and the second
    # stage's annual cap in force for it.  Plain SQL, the same on PostgreSQL; NULL on old rows.
    Migration(7, "entries: burden, cap pool limits and second-stage annual cap of each row", (
        "ALTER TABLE entries ADD COLUMN burden INTEGER",
        "ALTER TABLE entries ADD COLUMN cap_limits TEXT",
        "ALTER TABLE entries ADD COLUMN second_annual_cap INTEGER",
        "CREATE INDEX entries_by_person_year ON entries (person_id, benefit_year)",
    )),
)
#: Steps that SQLite takes in other words than the registry's: step 4 rebuilds ``entries``
#: (SQLite cannot change a CHECK in place) with the same rows, the same stored values, so every
#: ``row_hash`` stays valid; the new table has the step's three columns and the wider check.
#: Step 5 adds the triggers that keep the periods' two tables append-only.
SQLITE_STEPS: dict[int, tuple[str, ...]] = {4: (
    ENTRIES_V4,
    "INSERT INTO entries_v4 (" + ", ".join(_V3_COLUMNS) + ") SELECT " + ", ".join(_V3_COLUMNS) + " FROM entries",
    "DROP TABLE entries",
    "ALTER TABLE entries_v4 RENAME TO entries",
    *_INDEXES,
    *_TRIGGERS,
), 5: (
    *MIGRATIONS[4].statements,
    *(f"""CREATE TRIGGER {t}_never_{verb} BEFORE {op} ON {t}
           BEGIN SELECT RAISE(ABORT, 'medaid period records are never {verb}'); END"""
      for t in ("period_events", "period_reviews") for op, verb in (("UPDATE", "updated"), ("DELETE", "deleted"))),
)}
SCHEMA_VERSION = MIGRATIONS[-1].version
#: The triggers that keep ``entries`` and the periods' tables append-only (checked by ``Ledger.verify``).
TRIGGERS = ("entries_never_updated", "entries_never_deleted",
            *(f"{t}_never_{verb}" for t in ("period_events", "period_reviews") for verb in ("updated", "deleted")))


def migrate(con: sqlite3.Connection, now: str) -> None:
    """Apply the registry's pending migrations to ``con``, inside the caller's transaction: a
    fresh file first gets its application id and ``schema_migrations`` table; each step applied
    is recorded there with its name and ``now``."""
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    if not names:
        con.execute(f"PRAGMA application_id={APPLICATION_ID}")
        con.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    have = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]
    for step in MIGRATIONS:
        if step.version <= have:
            continue
        for sql in SQLITE_STEPS.get(step.version, step.statements):
            con.execute(sql)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (step.version, step.name, now))


# --------------------------------------------------------------------------------------------
# the row model


class Entry(NamedTuple):
    """One ledger row: a settlement, a reversal of one, or an adjustment of a settlement made by
    a reversal before it.  Amounts are fen.

    Attributes:
        seq: position in the ledger (1, 2, ...).
        entry: ``"settlement"``, ``"reversal"`` or ``"adjustment"``.
        claim_id, person_id, date, self_pay, group, kind, hospital, total_cost: the claim
            (a reversal repeats the content of the settlement it cancels, an adjustment that of the
            settlement it re-settles).
        plan, pool, benefit_year: where it settled.
        relief, patient_pays, bracket_relief, capped_by: the result (a reversal repeats the
            cancelled amounts, the claim's relief net of its adjustments, which it takes back out
            of the pool; an adjustment gives the claim's new result); ``capped_by`` names the
            limit that made the relief smaller than the bracket relief, ``None`` if none did.
        bracket: the bracket the claim's base reached
            (:meth:`medaid.domain.brackets.Schedule.bracket_reached`; 0: below the threshold or gate).
        ytd_self_pay, ytd_relief: the pool's year-to-date position *after* this row.
        annual_cap, claim_cap: the plan's caps (``None``: none).
        base_from, base_to: the base span of the claim (year mode: ``C_{k−1}..C_k``).
        segments: the explanation, bracket by bracket.
        rule_set_id, rule_version, rule_hash: the rule set that produced the result.
        reverses: for a reversal, the ``seq`` of the settlement it cancels.
        reason: for a reversal, why.
        recorded_at: UTC time of recording (ISO 8601).
        desk: the id of the service token whose desk wrote the row (docs/service.md); ``None``
            for rows written by the desk commands and for rows written before the column
            existed (migration 2).
        adjusts, reversal, adjustment: for an adjustment
            (docs/calculation.md#reversals-re-settle-the-claims-after-them), the ``seq`` of the
            settlement it re-settles, the ``seq`` of the reversal that made it, and the change
            of that claim's relief (new − old, negative when it drops); the row's result fields
            are the claim's new result.  ``None`` on other rows (migration 4).
        channel, bank_account, account_name: the claim's channel and payee
            (:class:`medaid.domain.claims.Claim`, docs/periods.md); a reversal and an
            adjustment repeat its settlement's.  ``None`` where not given and on rows written
            before migration 5.  :meth:`to_dict` masks the account and the name.
        household_id, non_compliant, attributes: the claim's household (户), non-compliant
            cost (fen) and attribute values (``(name, value)`` pairs sorted by name; stored as
            JSON text; ``None`` when it has none) (:class:`medaid.domain.claims.Claim`); a
            reversal and an adjustment repeat its settlement's.  ``None`` on rows written
            before migration 6.
        second_relief, second_pool, second_capped_by, ytd_burden, ytd_second_relief: a second
            stage's result (docs/calculation.md, *Second stage*): its relief (part of
            ``relief``), its pool, the limit that cut it, and the second pool's year-to-date
            burden and second-stage relief after this row; ``None`` when the plan has no second
            stage and on rows written before migration 6.
        caps: the cap pools the claim's first and second stage count against, each with the
            relief it took there (``(name, fen)`` pairs sorted by name; stored as JSON text);
            ``None`` when none (and before migration 6).
        burden, cap_limits, second_annual_cap: the claim's burden ``b_k`` (the second stage's
            base, ``None`` without a second stage); for each cap pool in ``caps``, whom it counts
            per and its annual amount in force (``(name, "person" | "household", fen)``, sorted
            by name); the second stage's annual cap in force (``None``: none).  What a desk reads
            a position back from and ``ledger verify`` checks the cap pools with (migration 7;
            ``None`` on rows written before it).
        prev_hash, row_hash: the hash chain.
    """

    seq: int
    entry: str
    claim_id: str
    person_id: str
    date: dt.date
    self_pay: int
    group: str | None
    kind: str | None
    hospital: str | None
    total_cost: int | None
    plan: str
    pool: str
    benefit_year: int
    relief: int
    patient_pays: int
    bracket_relief: int
    capped_by: str | None
    bracket: int
    ytd_self_pay: int
    ytd_relief: int
    annual_cap: int | None
    claim_cap: int | None
    base_from: int
    base_to: int
    segments: tuple[Segment, ...]
    rule_set_id: str
    rule_version: str
    rule_hash: str
    reverses: int | None
    reason: str | None
    recorded_at: str
    desk: str | None
    adjusts: int | None
    reversal: int | None
    adjustment: int | None
    channel: str | None
    bank_account: str | None
    account_name: str | None
    household_id: str | None
    non_compliant: int | None
    attributes: tuple[tuple[str, str], ...] | None
    second_relief: int | None
    second_pool: str | None
    second_capped_by: str | None
    ytd_burden: int | None
    ytd_second_relief: int | None
    caps: tuple[tuple[str, int], ...] | None
    burden: int | None
    cap_limits: tuple[tuple[str, str, int], ...] | None
    second_annual_cap: int | None
    prev_hash: str
    row_hash: str

    @property
    def annual_cap_left(self) -> int | None:
        """What is left of the annual cap after this row (``None``: no cap)."""
        return None if self.annual_cap is None else max(self.annual_cap - self.ytd_relief, 0)

    def claim(self) -> Claim:
        """The claim this row records."""
        return Claim(
            claim_id=self.claim_id, person_id=self.person_id, date=self.date,
            self_pay=self.self_pay, group=self.group, kind=self.kind, hospital=self.hospital,
            total_cost=self.total_cost, channel=cast(Any, self.channel), bank_account=self.bank_account,
            account_name=self.account_name, household_id=self.household_id,
            non_compliant=self.non_compliant, attributes=self.attributes or (),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: amounts as yuan text with two decimals, dates ISO; the bank
        account and the account name masked (:func:`medaid.domain.claims.mask_account`,
        :func:`medaid.domain.claims.mask_name`: personal data, shown in full only in the bank
        payout file)."""
        out: dict[str, Any] = {}
        for k, v in self._asdict().items():
            if k == "bank_account":
                v = mask_account(v)
            elif k == "account_name":
                v = mask_name(v)
            elif k == "segments":
                v = [s.to_dict() for s in v]
            elif k == "attributes" and v is not None:
                v = dict(v)
            elif k == "caps" and v is not None:
                v = {name: format_yuan(fen, thousands=False) for name, fen in v}
            elif k == "cap_limits" and v is not None:
                v = {name: {"per": per, "annual": format_yuan(fen, thousands=False)} for name, per, fen in v}
            elif k in _MONEY and v is not None:
                v = format_yuan(v, thousands=False)
            elif isinstance(v, dt.date):
                v = v.isoformat()
            out[k] = v
        left = self.annual_cap_left
        out["annual_cap_left"] = None if left is None else format_yuan(left, thousands=False)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Entry":
        """The entry :meth:`to_dict` gave (other keys ignored): ``to_dict(from_dict(d)) == d``.
        What a client of the settlement service reads a row back with."""
        values = []
        for f in cls._fields:
            v: Any = d.get(f) if f in ADDED_FIELDS else d[f]
            if f == "segments":
                v = tuple(Segment(_fen(s["from"]), None if s["to"] is None else _fen(s["to"]), _fen(s["base"]),
                                  Decimal(s["rate"]), Decimal(s["relief"]).scaleb(2)) for s in v)
            elif f in _MONEY and v is not None:
                v = _fen(v)
            elif f == "attributes" and v is not None:
                v = tuple(sorted(v.items()))
            elif f == "caps" and v is not None:
                v = tuple(sorted((name, _fen(yuan)) for name, yuan in v.items()))
            elif f == "cap_limits" and v is not None:
                v = tuple(sorted((name, c["per"], _fen(c["annual"])) for name, c in v.items()))
            elif f == "date":
                v = dt.date.fromisoformat(v)
            values.append(v)
        return cls(*values)


_MONEY = frozenset(
    "self_pay total_cost relief patient_pays bracket_relief ytd_self_pay ytd_relief annual_cap "
    "claim_cap base_from base_to adjustment non_compliant second_relief ytd_burden ytd_second_relief burden "
    "second_annual_cap".split()
)


def _fen(yuan: str) -> int:
    """Yuan text of :meth:`Entry.to_dict` (``"23300.00"``) back to fen."""
    return int(Decimal(yuan).scaleb(2))


#: The columns of ``entries``, in order: the fields of :class:`Entry` (``group`` is ``grp``).
COLUMNS: tuple[str, ...] = tuple("grp" if f == "group" else f for f in Entry._fields)
SELECT = "SELECT " + ", ".join(COLUMNS) + " FROM entries"
INSERT = "INSERT INTO entries (" + ", ".join(COLUMNS) + ") VALUES (" + ", ".join("?" * len(COLUMNS)) + ")"
#: The columns and, last, the next row's ``prev_hash`` (NULL for the last row): what a reader
#: checks (:meth:`Stored.chained`).
SELECT_LINKED = (
    "SELECT " + ", ".join(f"e.{c}" for c in COLUMNS) + ", n.prev_hash FROM entries e"
    " LEFT JOIN entries n ON n.seq = e.seq + 1"
)


def _segments_text(segments: tuple[Segment, ...]) -> str:
    return json.dumps(
        [[s.lower, s.upper, s.base, str(s.rate), str(s.relief)] for s in segments],
        separators=(",", ":"),
    )


def _segments(text: str) -> tuple[Segment, ...]:
    return tuple(
        Segment(lo, hi, base, Decimal(rate), Decimal(relief))
        for lo, hi, base, rate, relief in json.loads(text)
    )


def _iso(day: dt.date) -> str:
    return day.isoformat()


#: A claim's result: the fields of its row that the engine gives for the position it is settled
#: against (not the position after it, ``ytd_*``, which the pool's other rows move).  A claim
#: re-settled after a reversal whose result differs in any of them gets an adjustment row, even
#: at the same relief (docs/calculation.md#reversals-re-settle-the-claims-after-them).
RESULT = ("plan", "pool", "benefit_year", "relief", "patient_pays", "bracket_relief", "capped_by", "bracket",
          "annual_cap", "claim_cap", "base_from", "base_to", "segments", "rule_set_id", "rule_version",
          "rule_hash", "second_relief", "second_pool", "second_capped_by", "burden", "caps", "cap_limits",
          "second_annual_cap")


def same_result(a: Entry, b: Entry) -> bool:
    """Whether rows ``a`` and ``b`` give their claim the same result (:data:`RESULT`): amounts,
    rates and texts by value, the cap pools as sets of pairs (their order in a row is not kept)."""
    def value(e: Entry, f: str) -> Any:
        v = getattr(e, f)
        if f in ("caps", "cap_limits"):
            return tuple(sorted(v)) if v else None
        return v
    return all(value(a, f) == value(b, f) for f in RESULT)


def moves(e: Entry) -> tuple[int, int]:
    """What row ``e`` adds to its pool's year-to-date self-pay and relief (docs/desk.md *The
    ledger's guarantees*): a settlement its self-pay and relief, a reversal minus the amounts it
    cancels, an adjustment its change of relief (the self-pay is already counted)."""
    if e.entry == SETTLEMENT:
        return e.self_pay, e.relief
    if e.entry == ADJUSTMENT:
        return 0, e.adjustment or 0
    return -e.self_pay, -e.relief


def pool_move(e: Entry, seconds: dict[int, int]) -> tuple[int, int]:
    """What row ``e`` adds to its **pool's** year-to-date self-pay and relief ``(C, G)``: as
    :func:`moves`, with ``G`` the first stage's relief only (a second stage's relief counts in
    its own pool, docs/calculation.md *Second stage*).  ``seconds`` holds each settlement's
    current second relief (by its row), kept up to date here: an adjustment moves ``G`` by its
    change of total relief less its change of second relief."""
    r2 = e.second_relief or 0
    if e.entry == SETTLEMENT:
        if r2:
            seconds[e.seq] = r2
        return e.self_pay, e.relief - r2
    if e.entry == ADJUSTMENT:
        before = seconds.get(e.adjusts or 0, 0)
        if r2 or before:
            seconds[e.adjusts or 0] = r2
        return 0, (e.adjustment or 0) - (r2 - before)
    return -e.self_pay, -(e.relief - r2)


def _pairs_text(pairs: tuple[tuple[str, Any], ...] | None) -> str | None:
    """``(name, value)`` pairs (attributes, cap pools) as stored: JSON text of the pairs sorted
    by name (``[["level","三级"]]``), NULL when there are none (so a row without any hashes as a
    row written before the column existed)."""
    if not pairs:
        return None
    return json.dumps([list(p) for p in sorted(pairs)], ensure_ascii=False, separators=(",", ":"))


def _pairs(text: str | None) -> tuple[tuple[Any, ...], ...] | None:
    """The tuples :func:`_pairs_text` stored (pairs, or the triples of ``cap_limits``)."""
    return None if text is None else tuple(tuple(p) for p in json.loads(text))


#: How a field is stored when it is not stored as it is, and how it is read back.
_STORE: dict[str, Callable[[Any], Any]] = {"date": _iso, "segments": _segments_text, "attributes": _pairs_text,
                                           "caps": _pairs_text, "cap_limits": _pairs_text}
_LOAD: dict[str, Callable[[Any], Any]] = {"date": dt.date.fromisoformat, "segments": _segments, "attributes": _pairs,
                                          "caps": _pairs, "cap_limits": _pairs}


def encode(e: Entry) -> tuple[Any, ...]:
    """The row's values as stored, in :data:`COLUMNS` order."""
    return tuple(_STORE[f](v) if f in _STORE else v for f, v in zip(Entry._fields, e, strict=True))


def decode(values: Sequence[Any]) -> Entry:
    """The entry stored as ``values`` (in :data:`COLUMNS` order); ``ValueError``, ``TypeError``
    or ``KeyError`` when they cannot be read."""
    return Entry(*(_LOAD[f](v) if f in _LOAD else v for f, v in zip(Entry._fields, values, strict=True)))


#: Fields added after the first release: hashed only when they hold a value (a row written
#: before the column existed has ``NULL`` there and keeps its hash).
ADDED_FIELDS = frozenset({"desk", "adjusts", "reversal", "adjustment", "channel", "bank_account", "account_name",
                          # migration 6
                          "household_id", "non_compliant", "attributes", "second_relief", "second_pool",
                          "second_capped_by", "ytd_burden", "ytd_second_relief", "caps",
                          # migration 7
                          "burden", "cap_limits", "second_annual_cap"})


def row_hash(values: Sequence[Any]) -> str:
    """``sha256`` of the stored values' canonical JSON, ``prev_hash`` included, ``row_hash``
    (the last column) left out, and an :data:`ADDED_FIELDS` column left out when it is ``NULL``
    (:func:`hashed_values`)."""
    text = canonical(hashed_values(values))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hashed_values(values: Sequence[Any]) -> list[Any]:
    """The stored values :func:`row_hash` hashes, in column order: all but ``row_hash``, and an
    :data:`ADDED_FIELDS` column only when it holds a value."""
    return [v for f, v in zip(Entry._fields, values, strict=True)
            if f != "row_hash" and not (v is None and f in ADDED_FIELDS)]


def canonical(values: Sequence[Any]) -> str:
    """The canonical JSON text :func:`row_hash` hashes (UTF-8 kept, no spaces)."""
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))


def chain(e: Entry, seq: int, prev_hash: str, recorded_at: str) -> tuple[Any, ...]:
    """The stored values of ``e`` as row ``seq``, recorded at ``recorded_at`` and chained from
    ``prev_hash``, its ``row_hash`` computed: what is inserted."""
    e = e._replace(seq=seq, recorded_at=recorded_at, prev_hash=prev_hash, row_hash="")
    return encode(e._replace(row_hash=row_hash(encode(e))))


class Stored(NamedTuple):
    """A row as read with :data:`SELECT_LINKED`, before it is trusted: its stored values and
    the next row's ``prev_hash`` (``None``: it is the last row)."""

    values: tuple[Any, ...]
    next_prev_hash: str | None = None

    @classmethod
    def read(cls, linked: Sequence[Any]) -> Stored:
        """From a :data:`SELECT_LINKED` row (the columns, then the next row's ``prev_hash``)."""
        *values, next_prev = linked
        return cls(tuple(values), next_prev)

    def _get(self, field: str) -> Any:
        return self.values[_POSITION[field]]

    # The three columns read before a row is trusted.  ``seq`` is an INTEGER PRIMARY KEY, always
    # an integer; the hashes are TEXT NOT NULL columns, so text unless the file was altered
    # outside SQLite's checks, and then they compare unequal to every hash and are reported.
    @property
    def seq(self) -> int:
        return cast(int, self._get("seq"))

    @property
    def prev_hash(self) -> str:
        return cast(str, self._get("prev_hash"))

    @property
    def row_hash(self) -> str:
        return cast(str, self._get("row_hash"))

    def intact(self) -> bool:
        """Its ``row_hash`` matches its content."""
        return row_hash(self.values) == self.row_hash

    def chained(self) -> bool:
        """Intact, and the next row (if any) chains from it."""
        return self.intact() and (self.next_prev_hash is None or self.next_prev_hash == self.row_hash)

    def entry(self) -> Entry:
        """The entry it holds (:func:`decode`)."""
        return decode(self.values)


_POSITION = {f: i for i, f in enumerate(Entry._fields)}

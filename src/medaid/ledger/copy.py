"""``medaid ledger copy SRC DST``: a ledger's rows into another ledger, any backend to any (a
desk's SQLite file into the county's PostgreSQL, typically).

Rules implemented (docs/desk.md *Moving a desk's ledger into PostgreSQL*):

* Both ledgers are verified first (:meth:`medaid.ledger.backend.LedgerBase.verify`); a ledger
  with a problem is refused, nothing copied.  The destination is verified again afterwards.
* A source row already in the destination (the same claim, result, rule, reason and recording
  time) is not copied again: copying twice copies nothing new, and a desk that kept settling
  after a first copy has only its new rows copied.
* A claim id the destination holds with any other row (another desk's claim of the same id, or
  the same claim settled differently) is a conflict: the copy is refused naming every
  conflicting claim id, nothing copied.
* The rows are appended in the source's order in **one** transaction of the destination that
  keeps every other writer out until it commits: all of them or none.  Each keeps its claim,
  result, rule set, reason and recording time; it is numbered and chained at the destination's
  head, a reversal linked to its settlement's new number (an adjustment to its settlement's and its
  reversal's), and its year-to-date positions are the destination's running sums: its pool's
  self-pay and relief, and its second pool's burden and second relief (docs/calculation.md
  *Second stage*), counting the destination's rows of that person before it whichever ledger
  they came from.  Into an empty destination (or one holding only an earlier
  copy of the same ledger) every row therefore keeps its number and hash: the two chains are
  the same, head hash and all.
* A settlement that would take its pool past a cap in force for it at the destination (two
  desks paid one person against one cap) is refused naming the claim ids, nothing copied: the
  destination never records a relief past a cap.  So is one that would take a cap pool (per
  person or per household) past its annual amount, or a second pool's second relief past the
  second stage's annual cap, as ``ledger verify`` checks them (the recorded figures, the
  destination's rows of the person and household before it counted).
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import Problem
from .backend import LedgerBase, LedgerError, checked_rows, over_caps, pool_position, shared_take
from .schema import SELECT_LINKED, SETTLEMENT, Entry, pool_move


class Copied(NamedTuple):
    """What :func:`copy_ledger` did.

    Attributes:
        copied: rows appended to the destination.
        present: source rows the destination already held.
        rechained: copied rows that took another number or hash than in the source (the
            destination held other rows).
        entries, head_hash: the destination afterwards (its verified row count and head).
    """

    copied: int
    present: int
    rechained: int
    entries: int
    head_hash: str


def identity(e: Entry) -> Entry:
    """A row as the copy compares it: everything but its place (number, chain, the position it
    adds to (its pool's and its second pool's), the rows a reversal or an adjustment links to)."""
    return e._replace(seq=0, ytd_self_pay=0, ytd_relief=0, ytd_burden=None, ytd_second_relief=None, reverses=None,
                      adjusts=None, reversal=None, prev_hash="", row_hash="")


def _named(ids: list[str], limit: int = 20) -> str:
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def verified(lg: LedgerBase, role: str) -> None:
    """Refuse (:class:`LedgerError`, nothing copied) a ledger ``role`` (``source`` or
    ``destination``) with a problem :meth:`medaid.ledger.backend.LedgerBase.verify` finds."""
    v = lg.verify()
    if v.problems:
        raise LedgerError(Problem(
            f"the {role} ledger does not verify ({len(v.problems)} problem(s): {v.problems[0]}); "
            "nothing was copied; run 'medaid ledger verify'", source=lg._where))


def copy_ledger(src: LedgerBase, dst: LedgerBase, *, source_verified: bool = False) -> Copied:
    """Copy ``src``'s rows into ``dst`` (module docstring); :class:`LedgerError` when either
    does not verify, on conflicting claim ids or on a cap, nothing copied then.
    ``source_verified``: the caller has just verified ``src`` (:func:`verified`), before it
    even opened (and perhaps created) ``dst``."""
    if not source_verified:
        verified(src, "source")
    verified(dst, "destination")
    rows = list(src.entries())
    claims = sorted({e.claim_id for e in rows})
    copied = present = rechained = 0
    with dst._transaction() as con:
        dst._lock_everything(con)
        held: dict[str, list[Entry]] = {}
        for at in range(0, len(claims), 500):
            part = claims[at:at + 500]
            found = con.execute(SELECT_LINKED + " WHERE e.claim_id IN (" + ", ".join("?" * len(part)) + ")",
                                tuple(part)).fetchall()
            for e in checked_rows(found, dst._where):
                held.setdefault(e.claim_id, []).append(e)
        mine = {identity(e) for e in rows}
        conflicts = sorted(c for c, es in held.items() if any(identity(e) not in mine for e in es))
        if conflicts:
            raise LedgerError(Problem(
                f"claim ids already in the destination with other rows: {_named(conflicts)}; "
                "nothing was copied (settle them by hand, or give them other ids at their desk)",
                source=dst._where))
        there = {identity(e): e.seq for es in held.values() for e in es}
        moved: dict[int, int] = {}  # the source's row number → the destination's
        over: list[str] = []
        seconds: dict[int, int] = {}  # each settlement's second relief, by the source's row (pool_move)
        for e in rows:
            dc, dg = pool_move(e, seconds)
            key = identity(e)
            if key in there:
                moved[e.seq] = there[key]
                present += 1
                continue
            state = pool_position(con, e.person_id, e.benefit_year, e.pool, dst._where)
            new = e._replace(
                ytd_self_pay=state.self_pay + dc, ytd_relief=state.relief + dg,
                reverses=None if e.reverses is None else moved[e.reverses],
                adjusts=None if e.adjusts is None else moved[e.adjusts],
                reversal=None if e.reversal is None else moved[e.reversal])
            if e.entry == SETTLEMENT and over_caps(new, state.relief):
                over.append(e.claim_id)
            if new.caps is not None or new.second_pool is not None:
                broken, second = shared_take(con, new, dst._where)
                if second is not None:
                    new = new._replace(ytd_burden=second[0], ytd_second_relief=second[1])
                if e.entry == SETTLEMENT and broken:  # (claim ids only: person and household ids are personal data)
                    over.extend(f"{e.claim_id} ({p})" for p in broken)
            added = dst._append(con, new, recorded_at=e.recorded_at, last=False)
            moved[e.seq] = added.seq
            copied += 1
            rechained += added.row_hash != e.row_hash
        if over:
            raise LedgerError(Problem(
                f"copying would take a pool past a cap in force for it (the desks paid one person or "
                f"household against one cap twice): claims {_named(over)}; nothing was copied", source=dst._where))
    v = dst.verify()
    if v.problems:  # not expected: the rows were appended by the ledger's own code
        raise LedgerError(Problem(f"the destination does not verify after the copy: {v.problems[0]}",
                                  source=dst._where))
    return Copied(copied, present, rechained, v.entries, v.head_hash)

"""Recording a file of claims in the shared ledger: ``medaid batch FILE --ledger URL|PATH
--record`` (docs/batch.md, *Recording in the ledger*).

Rules implemented:

* **One cap.** Every claim of the file is settled by the ledger itself
  (:meth:`medaid.ledger.backend.LedgerBase.record_in_order`): against its pool's year-to-date
  position in the ledger, the desk's settlements included, and recorded there as a settlement
  row, so desk claims (``one-stop``) and applications share one annual cap.
* **The ledger's order.** Claims are recorded by date, then claim id (the order a batch settles
  a pool's claims in); a claim dated before a standing settlement of its pool in the ledger is
  refused with its line (the ledger does not re-settle the claims after it for a late claim).
* **Idempotent.** A claim id already recorded with the same facts gives its recorded result and
  counts as *already recorded*; with other facts it is a conflict, refused with its line and the
  fields that differ.  A claim id whose settlement was reversed is recorded anew, as
  ``medaid settle`` does after ``medaid reverse``.
* **Transactions.** Claims are recorded :data:`medaid.tuning.RECORD_CHUNK` to a transaction.  A
  crash (power, ``kill -9``) loses at most the transaction under way, which the database rolls
  back; running the same command again replays what was recorded and records the rest: nothing
  lost, nothing recorded twice.
* ``on_error="fail"`` (the default): a bad row, or a claim the ledger would refuse (checked, with
  nothing written, before the first transaction), refuses the run and nothing is recorded.
  ``"skip"``: the others are recorded and the refused ones listed in the rejects file.  A claim
  refused during the recording itself (a desk settled a later claim of the same pool meanwhile)
  is listed likewise, and :attr:`Recording.refused_late` says so.
* Optional columns ``channel`` (``one-stop`` / ``application``, also 一站式 / 申请, the words of
  :data:`medaid.io.results_frame.CHANNEL_WORDS`, as the report reads them; a row that names
  none is an ``application`` when it gives a payee, else its channel is not said, as at the
  desk's ``Claim``), ``bank_account`` and ``account_name`` are read into the claim
  (:data:`medaid.io.columns.CLAIM_EXTRA_HEADERS`).  Bank accounts are never in a message; the
  results and rejects files show them masked (:func:`medaid.batch.run.masked_accounts`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from .. import tuning
from ..errors import MedaidError, Problem
from ..io.attributes import attribute_titles, declared_attributes, with_attributes
from ..io.columns import CLAIM_EXTRA_HEADERS, CLAIM_FIELDS, RESULT_FIELDS, normalise_header, rule_ref
from ..io.results_frame import CHANNEL_WORDS
from ..money import format_yuan
from .manifest import rule_entries
from .run import BatchRefused, BatchRun, Progress, as_text, read_file

if TYPE_CHECKING:
    from ..domain.claims import Claim
    from ..domain.engine import Placement
    from ..domain.rules import RuleBook
    from ..ledger.backend import LedgerBase

#: The prefix of an attribute's column among a row's fields while its claim is made.
_ATTR = "attribute:"
#: The channel of a claim whose row names none.
DEFAULT_CHANNEL = "application"

_RESULT_TYPES = {"plan": pl.String, "pool": pl.String, "benefit_year": pl.Int32, "relief": pl.Int64,
                 "patient_pays": pl.Int64, "bracket_relief": pl.Int64, "capped_by": pl.String,
                 "bracket": pl.Int8, "ytd_self_pay": pl.Int64, "ytd_relief": pl.Int64,
                 "rule_set_id": pl.String, "rule_version": pl.String, "rule_hash": pl.String}


#: The types of :data:`medaid.io.columns.EXTENDED_RESULT_FIELDS` in a results frame.
_EXTENDED_TYPES = {"second_relief": pl.Int64, "second_capped_by": pl.String, "second_pool": pl.String,
                   "burden": pl.Int64, "ytd_burden": pl.Int64, "ytd_second_relief": pl.Int64, "caps": pl.String}


def _extended_results(e: Any, at: Placement) -> dict[str, Any]:
    """The extended result columns of a recorded row ``e`` of a claim placed at ``at``, as a
    batch writes them (docs/batch.md, *Output files*): the second stage's (``second_relief`` 0
    without one) and ``caps`` as ``NAME=yuan;…`` in the engine's order (the plan's cap pools,
    then its second stage's)."""
    names = list(at.plan.caps)
    if at.plan.second is not None:
        names += [n for n in at.plan.second.caps if n not in names]
    taken = dict(e.caps or ())
    return {"second_relief": e.second_relief or 0, "second_capped_by": e.second_capped_by,
            "second_pool": e.second_pool, "burden": e.burden, "ytd_burden": e.ytd_burden,
            "ytd_second_relief": e.ytd_second_relief,
            "caps": ";".join(f"{n}={format_yuan(taken[n], thousands=False)}" for n in names) or None}


@dataclass(frozen=True)
class Recording:
    """A file recorded in the ledger.

    Attributes:
        run: the run as a batch's (its ``results`` are the recorded and the already recorded
            claims, each with the result the ledger holds; its ``rejects`` the refused rows).
        recorded: claims recorded by this run.
        already: claims recorded before (same claim id, same facts): their recorded result.
        refused_late: some claims were refused by the ledger while recording (after the check).
    """

    run: BatchRun
    recorded: int
    already: int
    refused_late: bool = False

    def reconcile(self) -> str:
        """``rows read N = recorded R + already recorded A + rejected J`` (``+ totals rows T``);
        raises if the sum does not hold."""
        run = self.run
        totals = len(run.totals_rows)
        line = (f"rows read {run.rows_read} = recorded {self.recorded} + already recorded {self.already} "
                f"+ rejected {run.rejected}")
        if totals:
            line += f" + totals rows {totals}"
        if run.rows_read != self.recorded + self.already + run.rejected + totals \
                or self.recorded + self.already != run.settled:
            raise MedaidError(Problem("reconciliation failed: " + line, source=run.source))
        return line

    def counts(self) -> dict[str, int]:
        """The reconciliation's figures for ``--json``."""
        return {"rows_read": self.run.rows_read, "recorded": self.recorded, "already_recorded": self.already,
                "rejected": self.run.rejected, "totals_rows": len(self.run.totals_rows)}


def record_file(
    path: str | Path,
    ledger: LedgerBase,
    rules: RuleBook | Callable[[], RuleBook],
    *,
    encoding: str | None = None,
    sheet: str | None = None,
    mapping: Mapping[str, str] | None = None,
    on_error: str = "fail",
    limit: int = 20,
    progress: Progress | None = None,
    chunk: int | None = None,
) -> Recording:
    """Read a claim file and record every claim in ``ledger`` by the module's rules; nothing
    is written to files (the caller writes ``recording.run`` as a batch's run).  Raises
    :class:`medaid.batch.run.BatchRefused` (nothing recorded) under ``on_error="fail"`` when a
    row is bad or the ledger would refuse a claim."""
    size = chunk or tuning.RECORD_CHUNK
    source = str(path)
    got = read_file(path, encoding=encoding, sheet=sheet, mapping=mapping, progress=progress)
    book = rules() if callable(rules) else rules
    declared = declared_attributes(book)
    clean, bad_text = with_attributes(got.clean, got.bad_rows, declared, source, got.header_line)
    items, problems = _claims(clean, book, tuple(declared))
    rejects = pl.concat([got.rejects, _problems_frame(problems, got.rejects.schema)])
    if on_error == "fail" and rejects.height:
        _refuse(rejects, source, got.rows_read, limit)
    items.sort(key=lambda it: (it[1].date, it[1].claim_id))
    if on_error == "fail":
        refused = [(row, p) for part in _chunks(items, size)
                   for (row, _, _), p in zip(part, ledger.record_in_order([(c, at) for _, c, at in part], book,
                                                                           dry_run=True), strict=True)
                   if isinstance(p, Problem)]
        if refused:
            _refuse(_problems_frame(refused, rejects.schema), source, got.rows_read, limit)
    if progress:
        progress("settle")
    done: list[dict[str, Any]] = []
    late: list[tuple[int, Problem]] = []
    recorded = already = 0
    for part in _chunks(items, size):
        outcomes = ledger.record_in_order([(c, at) for _, c, at in part], book)
        for (row, _, at), o in zip(part, outcomes, strict=True):
            if isinstance(o, Problem):
                late.append((row, o))
                continue
            e = o.entry
            recorded, already = recorded + (not o.replayed), already + o.replayed
            # (the results file's rule reference: the first 12 hex digits, as a batch's)
            done.append({"row": row, **{f: getattr(e, f) for f in RESULT_FIELDS}, "rule_hash": rule_ref(e.rule_hash),
                         **(_extended_results(e, at) if book.extended else {})})
    rejects = pl.concat([rejects, _problems_frame(late, rejects.schema)]).sort("row", maintain_order=True)
    results = pl.DataFrame(done, schema={"row": pl.Int64, **_RESULT_TYPES,
                                         **(_EXTENDED_TYPES if book.extended else {})})
    results = clean.join(results, on="row", how="inner", maintain_order="left")
    refused_rows = clean.filter(pl.col("row").is_in(rejects["row"].implode()) &
                                ~pl.col("row").is_in(bad_text["row"].implode()))
    bad_rows = pl.concat([bad_text, as_text(refused_rows).select(bad_text.columns)]).sort("row")
    run = BatchRun(source, got.rows_read, results, rejects, bad_rows, got.text_values, got.totals_rows,
                   got.header_line, got.blank_lines, got.warnings, rules=tuple(rule_entries(book)),
                   titles=attribute_titles(book))
    out = Recording(run, recorded, already, bool(late))
    out.reconcile()
    return out


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _refuse(rejects: pl.DataFrame, source: str, rows_read: int, limit: int) -> None:
    """Raise :class:`BatchRefused` for ``rejects`` (nothing recorded)."""
    problems = [Problem(m if cid is None else f"{m} (claim {cid})", source=source, line=r, field=f)
                for r, cid, f, m in rejects.sort("row", maintain_order=True).iter_rows()]
    rows = rejects["row"].n_unique()
    raise BatchRefused(problems[:limit], len(problems), rows,
                       f"rows read {rows_read}: rejected {rows}; nothing was recorded")


def _problems_frame(problems: list[tuple[int, Problem]], schema: Any) -> pl.DataFrame:
    """``(row, problem)`` pairs as rejects (the claim id taken from a problem's ``claim X`` source)."""
    return pl.DataFrame(
        [(row, (p.source or "").removeprefix("claim ") or None, p.field, p.message) for row, p in problems],
        schema=schema, orient="row")


def _extra_columns(columns: Iterable[str]) -> dict[str, str]:
    """The optional claim fields a file carries (:data:`CLAIM_EXTRA_HEADERS`): field → column."""
    index = {normalise_header(a): f for f, aliases in CLAIM_EXTRA_HEADERS.items() for a in aliases}
    return {index[normalise_header(c)]: c for c in columns if normalise_header(c) in index}


Item = tuple[int, "Claim", "Placement"]
"""A claim of the file to record: its line, the claim, its placement."""


def _claims(clean: pl.DataFrame, book: RuleBook, attributes: tuple[str, ...] = (),
            ) -> tuple[list[Item], list[tuple[int, Problem]]]:
    """Each typed row as a claim with its placement (channel, bank account and account name
    read where the file has them and the claim model knows them; household id, non-compliant
    cost and the values of the declared ``attributes`` where the file has them), or the
    problem of its row."""
    from pydantic import ValidationError

    from ..domain.claims import Claim
    from ..domain.engine import placement

    extra = _extra_columns(c for c in clean.columns if c != "row")
    known = {f: c for f, c in extra.items() if f in Claim.model_fields}
    base = [c for c in CLAIM_FIELDS if c in clean.columns]
    attrs = [a for a in attributes if a in clean.columns]
    frame = clean.select("row", *base, *(pl.col(c).cast(pl.String).alias(f) for f, c in known.items()),
                         *(pl.col(a).cast(pl.String).alias(f"{_ATTR}{a}") for a in attrs))
    items: list[Item] = []
    problems: list[tuple[int, Problem]] = []
    with_channel = "channel" in Claim.model_fields
    for r in frame.iter_rows(named=True):
        row = r.pop("row")
        if with_channel:
            text = str(r.get("channel") or "").strip().casefold()
            if text and text not in CHANNEL_WORDS:
                problems.append((row, Problem("is not a settlement channel: one-stop (一站式) or application (申请)",
                                              source=f"claim {r['claim_id']}", field="channel")))
                continue
        for f in ("bank_account", "account_name"):
            if f in r:
                r[f] = (r[f] or "").strip() or None
        if with_channel:
            r["channel"] = CHANNEL_WORDS.get(text) or (DEFAULT_CHANNEL if r.get("bank_account") or r.get("account_name")
                                                      else None)
        values = {a: r.pop(f"{_ATTR}{a}") for a in attrs}
        fields: dict[str, Any] = {k: (str(v) if k in ("person_id", "group", "kind", "hospital") and v is not None
                                      else v) for k, v in r.items()}
        if attrs:
            fields["attributes"] = {a: v for a, v in values.items() if v is not None}
        try:
            claim = Claim(**fields)
        except ValidationError as e:  # the payee's rules (Claim): the message names the field, never the value
            where = f"claim {r['claim_id']}"
            problems.extend((row, Problem(str(err["msg"]).removeprefix("Value error, "), source=where,
                                          field=".".join(str(x) for x in err["loc"]) or "channel"))
                            for err in e.errors())
            continue
        at = placement(claim, book)
        if isinstance(at, Problem):
            problems.append((row, Problem(at.message, source=f"claim {claim.claim_id}", field=at.field)))
            continue
        items.append((row, claim, at))
    return items, problems

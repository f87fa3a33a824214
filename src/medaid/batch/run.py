"""Batch settlement of claim files: read → validate → settle → write.

Rules implemented (docs/calculation.md via :func:`medaid.batch.settle.settle_frame`;
README.md#reliability; docs/batch.md):

* Every row read is settled, already settled (a claim id the opening balances hold: reported,
  not settled twice, docs/batch.md *Opening balances*), rejected with its line and reason, or a
  totals row (合计, 小计, Total ...: not a claim; its amounts are checked against the claims
  above it, a mismatch is a warning naming its line): ``rows read = settled + already settled +
  rejected + totals rows`` is checked on every run (:meth:`BatchRun.reconcile`).  The other
  lines of the file are the header, the title lines above it and blank lines; the
  reconciliation line states those it skipped.
* ``on_error="fail"`` (the default): if any row is rejected nothing is written and the problems
  are raised (:class:`BatchRefused`).  ``"skip"``: the good rows are written, the bad ones go to
  the rejects file with a ``reason`` column.
* Results keep the input order and the input columns, then :data:`medaid.io.columns.RESULT_FIELDS`.

A run is data: its totals are :func:`medaid.report.totals.summarise` of ``run.results`` and
their tables :mod:`medaid.report.batch_text` (the report's layer, above this one).
Recalculation against a previous results file: :mod:`medaid.batch.recalc`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import polars as pl

from ..errors import MedaidError, Problem
from ..io import csv_fast, readers
from ..io.amounts import yuan_text
from ..io.attributes import attribute_titles, declared_attributes, with_attributes
from ..io.columns import (
    ACCOUNT_FIELD,
    CLAIM_EXTRA_HEADERS,
    MASKED_FIELDS,
    MONEY_COLUMNS,
    RESULT_FIELDS,
    ROW,
    chosen_columns,
    normalise_header,
)
from ..io.csv_fast import Scanned
from ..io.csv_pieces import CsvPieces, NotChunkable
from ..io.totals_rows import check_totals, totals_rows
from ..io.validation import FEW_VALUES, finish_validation, type_rows
from ..tuning import read_ahead

if TYPE_CHECKING:
    from ..domain.rules import RuleBook
    from .opening import Opening

#: The result fields a run's totals read (:func:`medaid.report.totals.summarise`: the sums of
#: ``relief``, ``patient_pays``, the claims with ``capped_by`` set, by ``plan``): computed
#: whatever ``--columns`` asks, as the totals are printed and go into the run manifest.
TOTALS_FIELDS = ("plan", "relief", "patient_pays", "capped_by")

#: Stages reported to a progress callback, in order.
STAGES = ("read", "validate", "settle", "write")
Progress = Callable[[str], None]


class BatchRefused(MedaidError):
    """The batch was refused (``on_error="fail"`` and some rows are bad); nothing was written.

    ``problems`` holds the first problems (up to the limit asked); ``total`` counts them all and
    ``rows`` the rows they are in."""

    def __init__(self, problems: list[Problem], total: int, rows: int, summary: str) -> None:
        super().__init__(problems)
        self.total = total
        self.rows = rows
        self.summary = summary


@dataclass(frozen=True)
class BatchRun:
    """One batch: what was read, settled and rejected.

    Attributes:
        source: the input file name as messages show it.
        rows_read: data rows in the file: the lines (sheet rows, records) below the header
            that are not blank, totals rows included.
        results: settled rows in input order (``row`` = input line, input columns, result fields).
        rejects: one record per problem (``row``, ``claim_id``, ``field``, ``message``).
        rejected_rows: the rejected rows' input columns as text, with ``row`` (for the
            rejects file); the whole input is not kept, to save memory on large files.
    """

    source: str
    rows_read: int
    results: pl.DataFrame
    rejects: pl.DataFrame
    rejected_rows: pl.DataFrame = field(repr=False)
    #: The distinct text of input category columns where the reader knows it (every value of
    #: such a column in ``results`` is among them): the writer checks these instead of every row.
    text_values: dict[str, pl.Series] = field(default_factory=dict, repr=False)
    #: Lines of totals rows (合计, 小计, Total ...), which are neither settled nor rejected.
    totals_rows: tuple[int, ...] = ()
    #: The header's line (sheet row); the lines above it are titles (0: no header line).
    header_line: int = 1
    #: Blank lines (empty sheet rows) skipped below the header: not rows.
    blank_lines: int = 0
    #: Warnings that do not stop the run: a totals row whose amounts are not the sum of the
    #: claims above it; claims already settled in the opening.
    warnings: tuple[Problem, ...] = ()
    #: Rows whose claim id the opening balances already hold (``row``, ``claim_id``, ``field``,
    #: ``message`` = ``already settled in <source>``): neither settled nor rejected; listed in
    #: the rejects file with their reason (their text is in ``rejected_rows``).
    already: pl.DataFrame | None = field(default=None, repr=False)
    #: The rule files the run settled with: ``id``, ``version``, ``file``, ``sha256`` each
    #: (:func:`medaid.batch.manifest.rule_entries`), for the run manifest.
    rules: tuple[Mapping[str, str], ...] = ()
    #: An unsigned integer per row of ``results``, equal for two rows exactly when their ``person_id``
    #: is, when the settlement's sort gave it (text ids; :data:`medaid.batch.settle.PERSON_CODE`):
    #: the totals count persons by it (``summarise(results, persons=...)``), not by hashing
    #: the ids again; else ``None``.
    persons: pl.Series | None = field(default=None, repr=False)
    #: The rules' titles of the claim attributes (``level`` → ``医院等级``,
    #: :func:`medaid.io.attributes.attribute_titles`): their columns' headers in a file written
    #: with ``lang="zh"``.
    titles: Mapping[str, str] = field(default_factory=dict)
    #: Text columns of ``results`` whose every value the reader saw to be ASCII digits, perhaps
    #: after a ``+`` (the claim and person ids of most exports,
    #: :attr:`medaid.io.csv_fast.Scanned.digit_ids`): the CSV writer does not look in them for
    #: cells to quote (:func:`medaid.io.csv_writer.csv_checks`).
    digit_columns: frozenset[str] = frozenset()

    @property
    def settled(self) -> int:
        return self.results.height

    @property
    def rejected(self) -> int:
        return self.rejects["row"].n_unique() if self.rejects.height else 0

    @property
    def already_settled(self) -> int:
        """Rows whose claim id the opening already holds (reported, not settled twice)."""
        return 0 if self.already is None else self.already.height

    @property
    def above_header(self) -> int:
        """Lines (sheet rows) above the header: titles, blank lines before it."""
        return max(self.header_line - 1, 0)

    def reconcile(self) -> str:
        """``rows read N = settled S + rejected R`` (``+ totals rows T`` when there are some,
        then the lines that are not rows when some were skipped: ``; not rows: 2 lines above
        the header on line 3, 1 blank line``); raises if the sum does not hold."""
        totals = len(self.totals_rows)
        line = f"rows read {self.rows_read} = settled {self.settled}"
        if self.already is not None:
            line += f" + already settled {self.already_settled}"
        line += f" + rejected {self.rejected}"
        if totals:
            line += f" + totals rows {totals}"
        skipped = []
        if self.above_header:
            skipped.append(f"{_n(self.above_header, 'line')} above the header on line "
                           f"{self.header_line}")
        if self.blank_lines:
            skipped.append(_n(self.blank_lines, "blank line"))
        if skipped:
            line += "; not rows: " + ", ".join(skipped)
        if self.rows_read != self.settled + self.already_settled + self.rejected + totals:
            raise MedaidError(Problem("reconciliation failed: " + line, source=self.source))
        return line

    def counts(self) -> dict[str, int]:
        """The reconciliation's figures for ``--json``: ``rows_read`` = ``settled`` (+
        ``already_settled``, with opening balances) + ``rejected`` + ``totals_rows``;
        ``header_line``, ``lines_above_header`` and ``blank_lines`` are the lines that are not
        rows."""
        out = {"rows_read": self.rows_read, "settled": self.settled, "rejected": self.rejected,
               "totals_rows": len(self.totals_rows), "header_line": self.header_line,
               "lines_above_header": self.above_header, "blank_lines": self.blank_lines}
        if self.already is not None:
            out["already_settled"] = self.already_settled
        return out

    def problems(self) -> list[Problem]:
        """Every problem, located: ``file:line: field: message`` (claim id added when known)."""
        out = []
        for r, cid, f, m in self.rejects.iter_rows():
            msg = m if cid is None else f"{m} (claim {cid})"
            out.append(Problem(msg, source=self.source, line=r, field=f))
        return out


def _n(k: int, what: str) -> str:
    return f"{k} {what}" + ("" if k == 1 else "s")


class ReadFile(NamedTuple):
    """A claim file read and validated (:func:`read_file`), not yet settled: the typed rows
    (``clean``), the rejects frame, the rejected rows as text, and what :class:`BatchRun`
    records of the file."""

    clean: pl.DataFrame
    rejects: pl.DataFrame
    bad_rows: pl.DataFrame
    rows_read: int
    text_values: dict[str, pl.Series]
    totals_rows: tuple[int, ...]
    header_line: int
    blank_lines: int
    warnings: tuple[Problem, ...]
    #: Whether every claim and person id is ASCII digits, perhaps after a ``+``
    #: (:attr:`BatchRun.digit_columns`).
    digit_ids: bool = False


def read_file(
    path: str | Path,
    *,
    encoding: str | None = None,
    sheet: str | None = None,
    mapping: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    reader: str = "auto",
    columns: str | Sequence[str] | None = None,
) -> ReadFile:
    """Read and validate a claim file as :func:`settle_file` does, without settling it (the
    stages ``read`` and ``validate``).  ``columns``: the output columns asked for
    (``--columns``): the file's columns that no claim field reads and that are not asked are
    left out of ``clean`` (:func:`medaid.io.csv_fast.unread`; the fast CSV scan does not even
    parse them)."""
    asked = None if columns is None else _names(columns)
    tick = progress or (lambda stage: None)
    source = str(path)
    typed = None
    # a GB18030/GBK file is read from a UTF-8 copy made piece by piece (never whole in memory)
    copy = readers.utf8_copy(path, encoding) if sheet is None and reader != "whole" else None
    try:
        text = copy or path
        enc = None if copy else encoding
        if reader in ("auto", "scan") and sheet is None:
            typed = csv_fast.scan_claims(text, encoding=enc, mapping=mapping, source=source, columns=asked)
        pieces = None if sheet is not None or typed is not None or reader == "whole" else readers.csv_pieces(
            text, encoding=enc, mapping=mapping, categories=FEW_VALUES, source=source)
        if pieces is not None:
            try:
                typed = _type_pieces(pieces)
            except NotChunkable:
                typed = None
    finally:
        if copy is not None:
            copy.unlink(missing_ok=True)
    text_values: dict[str, pl.Series] = {}
    digit_ids = False
    if typed is not None:
        clean, rejects, bad_rows, rows_read, text_values, totals, header_line, blank_lines = typed[:8]
        digit_ids = typed.digit_ids
        tick("read")
    else:
        got = readers.read_raw_file(path, encoding=encoding, sheet=sheet, mapping=mapping)
        raw, structural, header_line, blank_lines = got
        tick("read")
        rows_read = raw.height + len({p.line for p in structural})
        is_total = totals_rows(raw)
        totals = None
        if is_total.any():
            totals, raw = raw.filter(is_total), raw.filter(~is_total)
        clean, rejects = readers.validate_frame(raw, source)
        bad_rows = raw.filter(pl.col("row").is_in(rejects["row"].implode())) if rejects.height else raw.clear()
        del raw  # the typed frame shares the pass-through columns; the text copy can go
        if structural:
            rejects = pl.concat([readers.problems_frame(structural), rejects])
    tick("validate")
    skip = csv_fast.unread([c for c in clean.columns if c != ROW], asked)
    if skip:
        clean = clean.drop(skip)
    warnings: list[Problem] = []
    if totals is not None:
        warnings = check_totals(totals, clean, rejects["row"].unique(), source)
    return ReadFile(clean, rejects, bad_rows, rows_read, text_values,
                    () if totals is None else tuple(totals["row"].to_list()), header_line,
                    blank_lines, tuple(warnings), digit_ids)


def settle_file(
    path: str | Path,
    rules: RuleBook | Callable[[], RuleBook],
    *,
    encoding: str | None = None,
    sheet: str | None = None,
    mapping: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    reader: str = "auto",
    opening: Opening | None = None,
    full_rule_hash: bool = False,
    columns: str | Sequence[str] | None = None,
) -> BatchRun:
    """Read, validate and settle a claim file (nothing is written); see the module doc.

    A GB18030/GBK CSV file is first copied to a temporary UTF-8 file, piece by piece, and read
    from there (then removed).  A UTF-8 CSV file without quote characters is read and typed in one streaming pass
    (:func:`medaid.io.csv_fast.scan_claims`); another UTF-8 CSV file piece by piece
    (:class:`medaid.io.readers.CsvPieces`); so the text of a CSV file is never in memory whole.
    Other files are read whole.  All give the same run.  ``rules`` may be a function giving
    the rule book (e.g. a future's ``result``): it is called once the file is read, so that
    the rules can load meanwhile.  ``reader`` (``"auto"``, ``"scan"``,
    ``"pieces"``, ``"whole"``) picks the first reader to try, for tests and diagnosis.

    ``opening`` (:func:`medaid.batch.opening.opening_from`): earlier results the batch continues
    (docs/batch.md, *Opening balances*): the accumulation starts at their positions, and a
    claim id they hold is not settled again: its row is counted apart (``run.already``,
    ``already settled in <file>``), not rejected, with a warning.

    ``rule_hash`` in the results is the rule file's short reference (12 hex digits of its
    sha256, :func:`medaid.io.columns.rule_ref`), or the whole sha256 with ``full_rule_hash``
    (docs/batch.md, *Output files*; the run manifest holds the full hashes either way).

    ``columns`` (``--columns``): the results will be written with these columns only, so
    ``run.results`` holds the input's columns and only the result fields asked for or read by
    the totals (:data:`TOTALS_FIELDS`); the others are not computed.  Each field given is the
    same as in a run without ``columns``.  (Names that are not columns of the results compute
    every field: :func:`choose_columns` then refuses them, listing every allowed name.)"""
    tick = progress or (lambda stage: None)
    source = str(path)
    got = read_file(path, encoding=encoding, sheet=sheet, mapping=mapping, progress=progress, reader=reader,
                    columns=columns)
    clean, rejects, bad_rows, warnings = got.clean, got.rejects, got.bad_rows, list(got.warnings)
    rows_read, text_values, totals, header_line, blank_lines = got[3:8]
    digits = frozenset(("claim_id", "person_id") if got.digit_ids else ())
    del got  # (``clean`` is dropped below, before the run is made: memory)
    book = rules() if callable(rules) else rules
    # the attribute columns the rules declare, named and tidied now that the rules are known
    clean, bad_rows = with_attributes(clean, bad_rows, declared_attributes(book), source, header_line)
    # the settlement's modules (the rule models, the engine) are imported once the file is read:
    # ``medaid batch`` imports them on its rules thread meanwhile (medaid.tuning.alongside)
    from .manifest import rule_entries
    from .settle import PERSON_CODE, settle_frame

    already = None
    if opening is not None:
        clean, already, bad_rows = _not_twice(clean, bad_rows, opening, source, warnings)
    positions = None if opening is None else opening.for_book(book)
    # (text results as enums: memory)
    results, refused = settle_frame(clean, book, compact=True, opening=positions,
                                    full_rule_hash=full_rule_hash, need=_needed(clean, columns),
                                    person_codes=True)
    persons = results.drop_in_place(PERSON_CODE) if PERSON_CODE in results.columns else None
    tick("settle")
    if refused.height:
        rejects = pl.concat([rejects, refused.select(rejects.columns)])
        refused_rows = clean.filter(pl.col("row").is_in(refused["row"].implode()))
        bad_rows = pl.concat([bad_rows, as_text(refused_rows).select(bad_rows.columns)])
    del clean
    rejects = rejects.sort("row", maintain_order=True)
    run = BatchRun(source, rows_read, results, rejects, bad_rows.sort("row"), text_values,
                   totals, header_line, blank_lines, tuple(warnings), already,
                   tuple(rule_entries(book)), persons, attribute_titles(book), digits)
    run.reconcile()
    return run


def _names(columns: str | Sequence[str]) -> list[str]:
    """The names ``--columns`` lists (``"claim_id, relief"`` or a list), stripped."""
    names = [n.strip() for n in (columns.split(",") if isinstance(columns, str) else columns)]
    return [n for n in names if n]


def _needed(clean: pl.DataFrame, columns: str | Sequence[str] | None) -> set[str] | None:
    """The result fields to compute for ``--columns`` (``None``: every one): those asked for and
    :data:`TOTALS_FIELDS`; every one when some name asked is not an output column."""
    if columns is None:
        return None
    available = [c for c in clean.columns if c != ROW and c not in RESULT_FIELDS] + list(RESULT_FIELDS)
    try:
        names = chosen_columns(columns if isinstance(columns, str) else list(columns), available)
    except ValueError:
        return None
    return {c for c in names if c in RESULT_FIELDS} | set(TOTALS_FIELDS)


def _not_twice(clean: pl.DataFrame, bad_rows: pl.DataFrame, opening: Opening, source: str,
               warnings: list[Problem]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Take the rows whose claim id the opening already holds out of ``clean``: the rest, those
    rows (``row``, ``claim_id``, ``field``, ``message``), and ``bad_rows`` with their text
    added (for the rejects file); their warning is appended to ``warnings``."""
    from .opening import already_settled

    twice, warning = already_settled(clean, opening, source)
    if warning is None:
        return clean, twice, bad_rows
    warnings.append(warning)
    hit = pl.col("row").is_in(twice["row"].implode())
    bad_rows = pl.concat([bad_rows, as_text(clean.filter(hit)).select(bad_rows.columns)])
    return clean.filter(~hit), twice, bad_rows


def _as_read(raw: pl.DataFrame) -> pl.DataFrame:
    """Raw rows with every column as text (columns parsed as categories back to String)."""
    return raw.with_columns(pl.col(c).cast(pl.String) for c, t in raw.schema.items()
                            if t == pl.Categorical)


def _type_pieces(pieces: CsvPieces) -> Scanned:
    """Read and type a CSV file piece by piece: ``(clean, rejects, bad rows as text, rows
    read, {})``; each piece's text is dropped once typed, except its rejected rows; the next
    piece is parsed on a thread meanwhile (:func:`medaid.tuning.read_ahead`)."""
    parts: list[pl.DataFrame] = []
    problems: list[dict[str, pl.DataFrame]] = []
    bad: list[pl.DataFrame] = []
    totals: list[pl.DataFrame] = []
    rows_read = 0
    pieces_read: Iterable[pl.DataFrame] = pieces
    for raw in read_ahead(pieces_read, name="medaid-pieces"):
        rows_read += raw.height
        is_total = totals_rows(raw)
        if is_total.any():
            totals.append(_as_read(raw.filter(is_total)))
            raw = raw.filter(~is_total)
        t, p = type_rows(raw, categories=True)
        if p:
            lines = pl.concat([f["row"] for f in p.values()]).unique()
            bad.append(_as_read(raw.filter(pl.col("row").is_in(lines.implode()))))
        elif not bad:
            bad.append(_as_read(raw.clear()))
        del raw
        parts.append(t)
        problems.append(p)
    typed = pl.concat(parts, rechunk=False)  # no second copy; columns are rechunked one by one later
    del parts
    clean, rejects = finish_validation(typed, problems)
    del typed
    bad_rows = pl.concat(bad)
    if rejects.height:  # duplicates are found on the whole file: their text is read again
        missing = rejects["row"].unique().filter(~rejects["row"].unique().is_in(bad_rows["row"].implode()))
        if missing.len():
            bad_rows = pl.concat([bad_rows, _as_read(pieces.rows(missing))])
    return Scanned(clean, rejects, bad_rows, rows_read, {}, pl.concat(totals) if totals else None,
                   pieces.header_line, pieces.blank_lines)


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Typed claim rows back to text as read (dates ISO, amounts yuan) for the rejects file."""
    return frame.with_columns([
        yuan_text(c) if c in MONEY_COLUMNS and t.is_integer() else pl.col(c).cast(pl.String)
        for c, t in frame.schema.items() if c != "row"
    ])


def refuse_if_bad(run: BatchRun, limit: int = 20) -> None:
    """``on_error="fail"``: raise :class:`BatchRefused` listing up to ``limit`` problems."""
    if not run.rejects.height:
        return
    problems = run.problems()
    raise BatchRefused(problems[:limit], len(problems), run.rejected, run.reconcile())


def masked_accounts(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every payee column (a header of :data:`medaid.io.columns.CLAIM_EXTRA_HEADERS`
    ``bank_account`` or ``account_name``) masked by the one rule of every display
    (:func:`medaid.domain.claims.mask_account`: ``6222***********3445``;
    :func:`medaid.domain.claims.mask_name`: ``张*``); empty stays empty.  Only the bank payout
    file of a period holds them in full (docs/periods.md)."""
    from ..domain.claims import mask_account, mask_name

    masks = {normalise_header(a): f for f in MASKED_FIELDS for a in CLAIM_EXTRA_HEADERS[f]}
    cols = {c: masks[normalise_header(c)] for c in frame.columns if normalise_header(c) in masks}
    if not cols:
        return frame

    def mask(c: str, f: str) -> pl.Expr:
        rule = mask_account if f == ACCOUNT_FIELD else mask_name
        text = pl.col(c).cast(pl.String).str.strip_chars()
        return (pl.when(text.is_null() | (text == "")).then(text)
                .otherwise(text.map_elements(rule, return_dtype=pl.String)).alias(c))
    return frame.with_columns(mask(c, f) for c, f in cols.items())


def output_columns(run: BatchRun) -> list[str]:
    """The columns a results file has by default: the input's columns, then the result fields
    (every column of ``run.results`` but the line column)."""
    return [c for c in run.results.columns if c != "row"]


def results_for_output(run: BatchRun, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """The results as written: input columns then result fields, without the line column; or
    ``columns`` (``--columns``) in their order, checked by :func:`choose_columns`; a
    bank-account column masked (:func:`masked_accounts`)."""
    names = output_columns(run) if columns is None else choose_columns(run, columns)
    # a frame of the same columns (``drop`` would realign the columns' chunks: a copy)
    return masked_accounts(pl.DataFrame([run.results[c] for c in names]))


def choose_columns(run: BatchRun, columns: str | Sequence[str]) -> list[str]:
    """``--columns`` (``"claim_id,relief"`` or a list) checked against :func:`output_columns`:
    an unknown or repeated name raises :class:`MedaidError` (field ``--columns``) listing the
    allowed ones, before anything is written."""
    try:
        return chosen_columns(columns if isinstance(columns, str) else list(columns), output_columns(run))
    except ValueError as e:
        raise MedaidError(Problem(str(e), field="--columns")) from None


def rejects_for_output(run: BatchRun) -> pl.DataFrame:
    """Rejected rows as written: ``line``, the input's columns as read, ``field``, ``reason``
    (several problems of one row joined with ``; ``); rows already settled in the opening
    are listed too, in line order, with their reason (``already settled in <file>``)."""
    problems = run.rejects
    if run.already_settled:
        assert run.already is not None
        problems = pl.concat([problems, run.already.select(problems.columns).cast(problems.schema)]).sort(
            "row", maintain_order=True)
    why = (
        problems.group_by("row", maintain_order=True)
        .agg(pl.col("field").fill_null("").unique(maintain_order=True).str.join(", "),
             pl.col("message").str.join("; ").alias("reason"))
    )
    rows = why.join(run.rejected_rows, on="row", how="left", maintain_order="left")
    cols = ["row"] + [c for c in run.rejected_rows.columns if c != "row"] + ["field", "reason"]
    return masked_accounts(rows.select(cols).rename({"row": "line"}))


def write_run(
    run: BatchRun,
    output: str | Path,
    *,
    rejects_path: str | Path | None = None,
    on_error: str = "fail",
    limit: int = 20,
    bom: bool = True,
    progress: Progress | None = None,
    lang: str = "en",
    columns: str | Sequence[str] | None = None,
) -> Path | None:
    """Write a run's results (and rejects): refuse first under ``fail``; returns the rejects
    path written, if any.  Each file is written atomically, and when the results cannot be
    written the rejects file written before them is removed; ``lang="zh"`` gives CSV and XLSX
    files Chinese headers (a claim attribute's column its title in the rules,
    :attr:`BatchRun.titles`); ``columns`` (``--columns``) chooses the results' columns, in any
    format (the rejects file keeps its own); an unknown name refuses before anything is
    written."""
    # the writers are imported when first needed: ``medaid batch`` imports them on its rules
    # thread while the file is read (medaid.tuning.alongside)
    from ..io.writers import write_frame

    if on_error == "fail":
        refuse_if_bad(run, limit)
    results = results_for_output(run, columns)
    written = None
    if run.rejected or run.already_settled:
        written = Path(rejects_path) if rejects_path else default_rejects_path(output)
        write_frame(rejects_for_output(run), written, bom=bom, lang=lang, titles=run.titles)
    try:
        write_frame(results, output, bom=bom, text_values=run.text_values, lang=lang, titles=run.titles,
                    digit_columns=run.digit_columns)
    except BaseException:
        # the run is refused: its rejects file, written just before, goes with it (a rejects
        # file never stands beside results of another run)
        if written is not None:
            written.unlink(missing_ok=True)
        raise
    if progress:
        progress("write")
    return written


def default_rejects_path(output: str | Path) -> Path:
    """``results.csv`` → ``results.rejects.csv`` (same folder, same format)."""
    p = Path(output)
    return p.with_name(f"{p.stem}.rejects{p.suffix}")



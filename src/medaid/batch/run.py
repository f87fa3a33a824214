"""Batch settlement of claim files: read → validate → settle → write, with totals; recalculation.

Rules implemented (docs/calculation.md via :func:`medaid.batch.columnar.settle_frame`;
README.md#reliability;
docs/batch.md):

* Every row read is settled, rejected with its line and reason, or a totals row (合计, 小计,
  Total ...: not a claim; its amounts are checked against the claims above it, a mismatch is
  a warning naming its line): ``rows read = settled + rejected + totals rows`` is checked on
  every run (:meth:`BatchRun.reconcile`).  The other lines of the file are the header, the
  title lines above it and blank lines; the reconciliation line states those it skipped.
* ``on_error="fail"`` (the default): if any row is rejected nothing is written and the problems
  are raised (:class:`BatchRefused`).  ``"skip"``: the good rows are written, the bad ones go to
  the rejects file with a ``reason`` column.
* Results keep the input order and the input columns, then :data:`medaid.io.columns.RESULT_FIELDS`.
* Totals (:func:`summarise`, computed by :mod:`medaid.report.totals`): claims, persons, self-pay,
  relief, patient pays, relief share,
  claims capped and persons at an annual cap, and the same by plan, by month and by hospital.
* Recalculation (:func:`recalculate`): per claim the old relief (from a previous results file),
  the new relief and the adjustment; Σ old + Σ adjustment = Σ new to the fen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MedaidError, Problem
from ..money import MAX_FEN, format_yuan

if TYPE_CHECKING:
    import polars as pl

    from ..domain.rules import RuleBook
    from ..io.csv_fast import Scanned

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
    results: "pl.DataFrame"
    rejects: "pl.DataFrame"
    rejected_rows: "pl.DataFrame" = field(repr=False)
    #: The distinct text of input category columns where the reader knows it (every value of
    #: such a column in ``results`` is among them): the writer checks these instead of every row.
    text_values: "dict[str, pl.Series]" = field(default_factory=dict, repr=False)
    #: Lines of totals rows (合计, 小计, Total ...), which are neither settled nor rejected.
    totals_rows: tuple[int, ...] = ()
    #: The header's line (sheet row); the lines above it are titles (0: no header line).
    header_line: int = 1
    #: Blank lines (empty sheet rows) skipped below the header: not rows.
    blank_lines: int = 0
    #: Warnings that do not stop the run: a totals row whose amounts are not the sum of the
    #: claims above it.
    warnings: tuple[Problem, ...] = ()

    @property
    def settled(self) -> int:
        return self.results.height

    @property
    def rejected(self) -> int:
        return self.rejects["row"].n_unique() if self.rejects.height else 0

    @property
    def above_header(self) -> int:
        """Lines (sheet rows) above the header: titles, blank lines before it."""
        return max(self.header_line - 1, 0)

    def reconcile(self) -> str:
        """``rows read N = settled S + rejected R`` (``+ totals rows T`` when there are some,
        then the lines that are not rows when some were skipped: ``; not rows: 2 lines above
        the header on line 3, 1 blank line``); raises if the sum does not hold."""
        totals = len(self.totals_rows)
        line = f"rows read {self.rows_read} = settled {self.settled} + rejected {self.rejected}"
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
        if self.rows_read != self.settled + self.rejected + totals:
            raise MedaidError(Problem("reconciliation failed: " + line, source=self.source))
        return line

    def counts(self) -> dict[str, int]:
        """The reconciliation's figures for ``--json``: ``rows_read`` = ``settled`` +
        ``rejected`` + ``totals_rows``; ``header_line``, ``lines_above_header`` and
        ``blank_lines`` are the lines that are not rows."""
        return {"rows_read": self.rows_read, "settled": self.settled, "rejected": self.rejected,
                "totals_rows": len(self.totals_rows), "header_line": self.header_line,
                "lines_above_header": self.above_header, "blank_lines": self.blank_lines}

    def problems(self) -> list[Problem]:
        """Every problem, located: ``file:line: field: message`` (claim id added when known)."""
        out = []
        for r, cid, f, m in self.rejects.iter_rows():
            msg = m if cid is None else f"{m} (claim {cid})"
            out.append(Problem(msg, source=self.source, line=r, field=f))
        return out


def _n(k: int, what: str) -> str:
    return f"{k} {what}" + ("" if k == 1 else "s")


def settle_file(
    path: str | Path,
    rules: "RuleBook | Callable[[], RuleBook]",
    *,
    encoding: str | None = None,
    sheet: str | None = None,
    mapping: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    reader: str = "auto",
) -> BatchRun:
    """Read, validate and settle a claim file (nothing is written); see the module doc.

    A GB18030/GBK CSV file is first copied to a temporary UTF-8 file, piece by piece, and read
    from there (then removed).  A UTF-8 CSV file without quote characters is read and typed in one streaming pass
    (:func:`medaid.io.csv_fast.scan_claims`); another UTF-8 CSV file piece by piece
    (:class:`medaid.io.readers.CsvPieces`); so the text of a CSV file is never in memory whole.
    Other files are read whole.  All give the same run.  ``rules`` may be a function giving
    the rule book (e.g. a future's ``result``): it is called once the file is read, so that
    the rules can load meanwhile.  ``reader`` (``"auto"``, ``"scan"``,
    ``"pieces"``, ``"whole"``) picks the first reader to try, for tests and diagnosis."""
    import polars as pl

    from ..io.csv_fast import scan_claims
    from ..io.readers import (
        NotChunkable,
        csv_pieces,
        problems_frame,
        read_raw_file,
        utf8_copy,
        validate_frame,
    )
    from ..io.validation import FEW_VALUES, check_totals, totals_rows

    tick = progress or (lambda stage: None)
    source = str(path)
    typed = None
    # a GB18030/GBK file is read from a UTF-8 copy made piece by piece (never whole in memory)
    copy = utf8_copy(path, encoding) if sheet is None and reader != "whole" else None
    try:
        text = copy or path
        enc = None if copy else encoding
        if reader in ("auto", "scan") and sheet is None:
            typed = scan_claims(text, encoding=enc, mapping=mapping, source=source)
        pieces = None if sheet is not None or typed is not None or reader == "whole" else csv_pieces(
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
    if typed is not None:
        clean, rejects, bad_rows, rows_read, text_values, totals, header_line, blank_lines = typed
        tick("read")
    else:
        got = read_raw_file(path, encoding=encoding, sheet=sheet, mapping=mapping)
        raw, structural, header_line, blank_lines = got
        tick("read")
        rows_read = raw.height + len({p.line for p in structural})
        is_total = totals_rows(raw)
        totals = None
        if is_total.any():
            totals, raw = raw.filter(is_total), raw.filter(~is_total)
        clean, rejects = validate_frame(raw, source)
        bad_rows = raw.filter(pl.col("row").is_in(rejects["row"].implode())) if rejects.height else raw.clear()
        del raw  # the typed frame shares the pass-through columns; the text copy can go
        if structural:
            rejects = pl.concat([problems_frame(structural), rejects])
    tick("validate")
    warnings: list = []
    if totals is not None:
        warnings = check_totals(totals, clean, rejects["row"].unique(), source)
    book = rules() if callable(rules) else rules
    from .columnar import (
        settle_frame,  # after the read: it loads the rule models meanwhile
    )
    results, refused = settle_frame(clean, book, compact=True)  # text results as enums (memory)
    tick("settle")
    if refused.height:
        rejects = pl.concat([rejects, refused.select(rejects.columns)])
        refused_rows = clean.filter(pl.col("row").is_in(refused["row"].implode()))
        bad_rows = pl.concat([bad_rows, _as_text(refused_rows).select(bad_rows.columns)])
    del clean
    rejects = rejects.sort("row", maintain_order=True)
    run = BatchRun(source, rows_read, results, rejects, bad_rows.sort("row"), text_values,
                   () if totals is None else tuple(totals["row"].to_list()), header_line,
                   blank_lines, tuple(warnings))
    run.reconcile()
    return run


def _as_read(raw: "pl.DataFrame") -> "pl.DataFrame":
    """Raw rows with every column as text (columns parsed as categories back to String)."""
    import polars as pl

    return raw.with_columns(pl.col(c).cast(pl.String) for c, t in raw.schema.items()
                            if t == pl.Categorical)


def _read_ahead(pieces: Any) -> Any:
    """The pieces, the next one parsed in a thread while the caller types this one (polars
    works without the interpreter lock, so the two cores share the work)."""
    from concurrent.futures import ThreadPoolExecutor

    it = iter(pieces)
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(next, it, None)
        while (raw := fut.result()) is not None:
            fut = ex.submit(next, it, None)
            yield raw
            del raw


def _type_pieces(pieces: Any) -> "Scanned":
    """Read and type a CSV file piece by piece: ``(clean, rejects, bad rows as text, rows
    read, {})``; each piece's text is dropped once typed, except its rejected rows."""
    import polars as pl

    from ..io.csv_fast import Scanned
    from ..io.validation import finish_validation, totals_rows, type_rows

    parts, problems, bad, totals = [], [], [], []
    rows_read = 0
    for raw in _read_ahead(pieces):
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


def _as_text(frame: "pl.DataFrame") -> "pl.DataFrame":
    """Typed claim rows back to text as read (dates ISO, amounts yuan) for the rejects file."""
    import polars as pl

    from ..io.readers import MONEY_COLUMNS
    from ..io.writers import yuan_text

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


def results_for_output(run: BatchRun) -> "pl.DataFrame":
    """The results as written: input columns then result fields, without the line column."""
    import polars as pl

    # a frame of the same columns (``drop`` would realign the columns' chunks: a copy)
    return pl.DataFrame([run.results[c] for c in run.results.columns if c != "row"])


def rejects_for_output(run: BatchRun) -> "pl.DataFrame":
    """Rejected rows as written: ``line``, the input's columns as read, ``field``, ``reason``
    (several problems of one row joined with ``; ``)."""
    import polars as pl

    why = (
        run.rejects.group_by("row", maintain_order=True)
        .agg(pl.col("field").fill_null("").unique(maintain_order=True).str.join(", "),
             pl.col("message").str.join("; ").alias("reason"))
    )
    rows = why.join(run.rejected_rows, on="row", how="left", maintain_order="left")
    cols = ["row"] + [c for c in run.rejected_rows.columns if c != "row"] + ["field", "reason"]
    return rows.select(cols).rename({"row": "line"})


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
) -> Path | None:
    """Write a run's results (and rejects): refuse first under ``fail``; returns the rejects
    path written, if any.  Each file is written atomically; ``lang="zh"`` gives CSV and XLSX
    files Chinese headers."""
    from ..io.writers import write_frame

    if on_error == "fail":
        refuse_if_bad(run, limit)
    written = None
    if run.rejected:
        written = Path(rejects_path) if rejects_path else default_rejects_path(output)
        write_frame(rejects_for_output(run), written, bom=bom, lang=lang)
    write_frame(results_for_output(run), output, bom=bom, text_values=run.text_values, lang=lang)
    if progress:
        progress("write")
    return written


def default_rejects_path(output: str | Path) -> Path:
    """``results.csv`` → ``results.rejects.csv`` (same folder, same format)."""
    p = Path(output)
    return p.with_name(f"{p.stem}.rejects{p.suffix}")


# --------------------------------------------------------------------------------------------
# totals


def summarise(results: "pl.DataFrame") -> dict[str, Any]:
    """Totals of settled results (money in fen): overall, by plan, by month, by hospital; computed
    by the one totals engine, :func:`medaid.report.totals.summarise` (its docstring states the
    measures)."""
    from ..report.totals import summarise as totals

    return totals(results)


_MONEY_KEYS = ("self_pay", "relief", "patient_pays", "old_relief", "new_relief", "adjustment")


def summary_json(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary with amounts as yuan text (``"23300.00"``), for ``--json``."""

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (format_yuan(x, thousands=False) if k in _MONEY_KEYS and isinstance(x, int)
                        else conv(x)) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        return v

    return conv(summary)


_COLS = ("claims", "persons", "self_pay", "relief", "patient_pays", "relief_share",
         "claims_capped", "persons_at_annual_cap")


def summary_tables(summary: dict[str, Any], lang: str = "en") -> str:
    """The summary as text tables (tabulate), labels in English or Chinese."""
    from tabulate import tabulate

    from ..report.labels import labels_of

    lab = labels_of("totals")[lang]

    def cell(k: str, v: Any) -> Any:
        return format_yuan(v) if k in _MONEY_KEYS else v

    parts = []
    t = summary["total"]
    parts.append(lab["total"] + "\n" + tabulate(
        [[lab[k], cell(k, t[k])] for k in _COLS], tablefmt="simple", disable_numparse=True, colalign=("left", "right")))
    for key, by in (("by_plan", "plan"), ("by_month", "month"), ("by_hospital", "hospital")):
        rows = [[r[by] if r[by] is not None else lab["none"]] + [cell(k, r[k]) for k in _COLS]
                for r in summary[key]]
        parts.append(lab[key] + "\n" + tabulate(
            rows, headers=[lab[by]] + [lab[k] for k in _COLS], tablefmt="simple", disable_numparse=True,
            colalign=("left",) + ("right",) * len(_COLS)))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------------------------
# recalculation


@dataclass(frozen=True)
class Recalc:
    """A recalculation against a previous results file (amounts fen).

    Attributes:
        claims: per claim ``claim_id``, ``person_id``, ``hospital``, ``old_relief``,
            ``new_relief``, ``adjustment`` and ``status`` (``same``, ``changed``, ``new``: not in
            the previous file, ``dropped``: in the previous file only, new relief 0).
        totals: Σ old, Σ new, Σ adjustment and the count of claims by status.
        by_hospital, by_person: adjustments summed (rows with a non-zero adjustment only).
    """

    claims: "pl.DataFrame"
    totals: dict[str, Any]
    by_hospital: list[dict[str, Any]]
    by_person: list[dict[str, Any]]


#: Columns a previous results file must have for a recalculation.
PREVIOUS_FIELDS = ("claim_id", "person_id", "relief")


def recalculate(run: BatchRun, previous: "pl.DataFrame") -> Recalc:
    """Compare a run's relief with a previous results frame (from
    :func:`medaid.io.readers.read_results`), claim by claim; Σ old + Σ adj = Σ new is checked."""
    import polars as pl

    def pick(frame: "pl.DataFrame", prefix: str) -> "pl.DataFrame":
        cols = {"claim_id": pl.col("claim_id"), "person_id": pl.col("person_id").cast(pl.String),
                "relief": pl.col("relief")}
        cols["hospital"] = (pl.col("hospital").cast(pl.String) if "hospital" in frame.columns
                            else pl.lit(None, pl.String))
        return frame.select(
            [e.alias(k if k == "claim_id" else f"{prefix}{k}") for k, e in cols.items()]
        ).with_row_index(f"{prefix}order")

    from ..io.validation import ID_FIELDS, tidy_ids

    # the previous file's ids as the run's are (an older file may hold them keyed otherwise)
    previous = previous.with_columns(
        tidy_ids(previous[c].cast(pl.String)) for c in ID_FIELDS if c in previous.columns)
    new = pick(run.results, "new_")
    old = pick(previous, "old_")
    odd = old.filter((pl.col("old_relief") < 0) | (pl.col("old_relief") > MAX_FEN))
    if odd.height:  # an amount medaid never gives: the sums below could leave 64 bits
        raise MedaidError(Problem(
            f"the previous results give claim {odd['claim_id'][0]!r} a relief that is negative or "
            f"above the maximum amount ({format_yuan(MAX_FEN)} yuan)", field="relief"))
    dup = old.filter(pl.col("claim_id").is_duplicated())
    if dup.height:
        raise MedaidError(Problem(
            f"the previous results list claim {dup['claim_id'][0]!r} more than once"))
    j = new.join(old, on="claim_id", how="full", coalesce=True)
    out = j.select(
        "claim_id",
        pl.coalesce("new_person_id", "old_person_id").alias("person_id"),
        pl.coalesce("new_hospital", "old_hospital").alias("hospital"),
        pl.col("old_relief").fill_null(0),
        pl.col("new_relief").fill_null(0),
        (pl.col("new_relief").fill_null(0) - pl.col("old_relief").fill_null(0)).alias("adjustment"),
        pl.when(pl.col("old_relief").is_null()).then(pl.lit("new"))
        .when(pl.col("new_relief").is_null()).then(pl.lit("dropped"))
        .when(pl.col("new_relief") == pl.col("old_relief")).then(pl.lit("same"))
        .otherwise(pl.lit("changed")).alias("status"),
        pl.col("new_order"), pl.col("old_order"),
    ).sort(["new_order", "old_order"], nulls_last=True).drop("new_order", "old_order")
    s_old, s_new, s_adj = (int(out[c].sum()) for c in ("old_relief", "new_relief", "adjustment"))
    if s_old + s_adj != s_new:  # pragma: no cover - integer arithmetic; a guard, not a branch
        raise MedaidError(Problem("recalculation does not reconcile"))
    counts = dict(out.group_by("status").len().iter_rows())
    totals = {"claims": out.height, "old_relief": s_old, "new_relief": s_new, "adjustment": s_adj,
              **{f"{k}": int(counts.get(k, 0)) for k in ("same", "changed", "new", "dropped")}}
    moved = out.filter(pl.col("adjustment") != 0)

    def by(col: str) -> list[dict[str, Any]]:
        return (moved.group_by(col).agg(pl.len().alias("claims"), pl.col("adjustment").sum())
                .sort(col, nulls_last=True).to_dicts())

    return Recalc(out, totals, by("hospital"), by("person_id"))


def recalc_tables(rc: Recalc, lang: str = "en", persons: int = 20) -> str:
    """Totals of a recalculation as text tables; the person table lists the largest
    adjustments first, up to ``persons`` rows."""
    from tabulate import tabulate

    from ..report.labels import label

    def lab(key: str) -> str:
        return label(f"recalc.{key}", lang)

    t = rc.totals
    head = tabulate(
        [[lab("old_relief"), format_yuan(t["old_relief"])],
         [lab("adjustments"), format_yuan(t["adjustment"])],
         [lab("new_relief"), format_yuan(t["new_relief"])],
         [lab("claims"), t["claims"]],
         [lab("unchanged"), t["same"]],
         [lab("changed"), t["changed"]],
         [lab("new"), t["new"]],
         [lab("dropped"), t["dropped"]]],
        tablefmt="simple", disable_numparse=True, colalign=("left", "right"))
    hosp = tabulate(
        [[r["hospital"] or "-", r["claims"], format_yuan(r["adjustment"])] for r in rc.by_hospital],
        headers=[lab("hospital"), lab("claims_col"), lab("adjustment")], tablefmt="simple",
        disable_numparse=True, colalign=("left", "right", "right"))
    top = sorted(rc.by_person, key=lambda r: (-abs(r["adjustment"]), r["person_id"]))[:persons]
    pers = tabulate(
        [[r["person_id"], r["claims"], format_yuan(r["adjustment"])] for r in top],
        headers=[lab("person"), lab("claims_col"), lab("adjustment")], tablefmt="simple",
        disable_numparse=True, colalign=("left", "right", "right"))
    more = len(rc.by_person) - len(top)
    return "\n\n".join([
        lab("title") + "\n" + head,
        lab("by_hospital") + "\n" + hosp,
        lab("by_person") + "\n" + pers
        + (f"\n... {more} more" if more > 0 else ""),
    ])

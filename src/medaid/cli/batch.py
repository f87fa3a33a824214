"""CLI commands (batch): ``medaid batch`` and ``medaid recalc``; registered by :func:`register`.

Thin over :mod:`medaid.batch.run`; polars and openpyxl are imported inside the commands.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..errors import MedaidError, Problem
from ..tuning import alongside, command_heap, import_polars as _import_polars
from .app import distinct, echo, json_text


def _input_options(f: Any) -> Any:
    f = click.option("--map", "maps", multiple=True, metavar="COLUMN=FIELD",
                     help="Read COLUMN as FIELD (claim_id, person_id, date, self_pay, group, "
                          "kind, hospital, total_cost, household_id, non_compliant); repeatable.")(f)
    f = click.option("--sheet", default=None, metavar="NAME",
                     help="XLSX sheet to read (default: the first).")(f)
    f = click.option("--encoding", default=None, metavar="NAME",
                     help="CSV encoding (default: UTF-8 with or without BOM, else GB18030).")(f)
    return f


@contextlib.contextmanager
def _progress(label: str) -> Iterator[Any]:
    """A stage progress bar on stderr, only when stderr is a terminal."""
    from ..batch.run import STAGES

    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=len(STAGES), label=label, file=sys.stderr,
                           item_show_func=lambda s: s) as bar:
        yield lambda stage: bar.update(1, stage)


def _default_output(input_path: str) -> str:
    p = Path(input_path)
    return f"{p.stem}.results{p.suffix}"


def _fail(e: MedaidError) -> click.ClickException:
    from .app import fail

    return fail(e)


def _opening(paths: tuple[str, ...], ledger: str | None) -> Any:
    """The opening balances of ``--opening`` results files and ``--ledger`` (docs/batch.md,
    *Opening balances*); ``None`` when neither is given."""
    if not paths and ledger is None:
        return None
    from ..batch.opening import OPENING_FIELDS, ledger_frame, opening_from
    from ..io.results import read_results

    try:
        frames = [(p, read_results(p, required=OPENING_FIELDS)) for p in paths]
        if ledger is not None:
            from ..ledger.backend import redact
            from ..ledger.export import load_ledger_results

            frames.append((redact(ledger), ledger_frame(load_ledger_results(ledger))))
        return opening_from(frames)
    except MedaidError as e:
        raise _fail(e) from None


def _settle(input_path: str, rules_path: str, scheme: str | None, encoding: str | None,
            sheet: str | None, maps: tuple[str, ...], tick: Any, opening: Any = None,
            full_rule_hash: bool = False, columns: str | None = None,
            loaded: Any = None) -> Any:
    """Settle the file; ``loaded`` (:func:`medaid.tuning.command_heap`'s) is called once the
    rules are loaded and the settlement's modules imported."""
    from ..batch.run import settle_file
    from ..io.readers import parse_mapping
    from .app import load_book

    def rules_and_engine() -> Any:
        book = load_book(rules_path, scheme)
        from ..batch import settle  # noqa: F401  (imported here, off the main thread's path)
        from ..io import writers  # noqa: F401
        from ..report import batch_text, totals  # noqa: F401  (the totals, after the write)

        if loaded is not None:
            loaded()
        return book

    # the rules load (pure Python) while the file is read (polars, without the interpreter lock)
    with alongside(rules_and_engine, name="medaid-rules") as book:
        try:
            return settle_file(input_path, book.result, encoding=encoding, sheet=sheet,
                               mapping=parse_mapping(maps), progress=tick, opening=opening,
                               full_rule_hash=full_rule_hash, columns=columns)
        except MedaidError as e:
            ledger = [p for p in e.problems if p.field == "--ledger"]
            if ledger:  # an option these rules cannot use (docs/batch.md, *Opening balances*)
                raise click.BadParameter(f"{ledger[0].source}: {ledger[0].message}",
                                         param_hint="--ledger") from None
            raise _fail(e) from None


def _columns(run: Any, columns: str | None) -> list[str] | None:
    """``--columns`` checked against the run's columns (a usage error listing the allowed
    ones), before anything is written; ``None`` when not given (every column)."""
    if columns is None:
        return None
    from ..batch.run import choose_columns

    try:
        return choose_columns(run, columns)
    except MedaidError as e:
        raise click.BadParameter(e.problems[0].message, param_hint="--columns") from None


def _redact(url: str) -> str:
    from ..ledger.backend import redact

    return redact(url)


def _write_manifest(run: Any, started: str, inputs: Any, summary: Any, out: str, rej: Any,
                    columns: list[str] | None, options: dict[str, Any], recording: Any = None) -> Any:
    """Write ``OUTPUT.manifest.json`` (docs/batch.md, *Run manifest*); returns its path.
    ``recording``: the run recorded in a ledger (``--record``), whose reconciliation it gives."""
    from ..batch.manifest import build_manifest, totals_entry, write_manifest
    from ..batch.run import output_columns
    from ..io.raw import file_format

    for entry in inputs:
        entry["rows_read"] = run.rows_read
    manifest = build_manifest(
        started=started, inputs=inputs, rules=run.rules, options=options,
        outputs={"results": out, "format": file_format(out),
                 "columns": columns or output_columns(run),
                 "rule_hash": "sha256" if options["full_rule_hash"] else "sha256, first 12 hex digits",
                 "rejects": None if rej is None else str(rej)},
        reconciliation={**(recording or run).counts(), "line": (recording or run).reconcile()},
        totals=totals_entry(summary))
    try:
        return write_manifest(out, manifest)
    except MedaidError as e:
        # no results file stands without the manifest that describes it: the files this run
        # has just written are taken back, and the run is refused
        for written in (out, rej):
            if written is not None:
                Path(written).unlink(missing_ok=True)
        raise _fail(MedaidError([*e.problems, Problem(
            "the results" + ("" if rej is None else " and the rejects") + " written just before were removed: "
            "a results file is never left without its manifest; run again once it can be written")])) from None


def _totals(results: Any, persons: Any, lang: str | None) -> tuple[Any, str | None]:
    """A run's totals (:func:`medaid.report.totals.summarise`) and their text tables in ``lang``
    (none under ``--json``: ``lang`` is ``None``); on the totals thread while the results are
    written, so that tabulate, when the tables need it (Chinese labels or names), is imported
    there too."""
    from ..report.batch_text import summary_tables
    from ..report.totals import summarise

    summary = summarise(results, persons)
    return summary, None if lang is None else summary_tables(summary, lang)


def _warn(run: Any) -> None:
    """A run's warnings (a totals row that does not add up), one a line, on stderr."""
    for w in run.warnings:
        click.echo(f"warning: {w}", err=True)


def _refused(e: Any, as_json: bool) -> click.ClickException:
    """Report a refused batch: the first problems, their count, the reconciliation line (under
    ``--json`` one error object with ``refused``, ``problem_count``, ``rows_rejected`` and
    ``reconciliation`` besides the problems)."""
    from .app import Failure

    lines = [str(p) for p in e.problems]
    more = e.total - len(lines)
    tail = [f"... and {more} more" if more > 0 else "",
            f"{e.total} problem(s) in {e.rows} row(s); nothing was written "
            "(use --on-error skip to settle the good rows and list the bad ones)",
            e.summary]
    return Failure("\n".join(lines + [t for t in tail if t]), e.problems, refused=True,
                   problem_count=e.total, rows_rejected=e.rows, reconciliation=e.summary)


def _spark_batch(input_path: str, output: str | None, rules_path: str, scheme: str | None,
                 master: str | None, rejects_path: str | None, on_error: str, max_errors: int,
                 as_json: bool, lang: str = "en", opening: Any = None, columns: str | None = None,
                 full_rule_hash: bool = False) -> None:
    """``medaid batch --engine spark``: the same batch through :func:`medaid.spark.job.run_batch`."""
    try:
        from ..spark.job import run_batch
    except ImportError:
        raise click.UsageError("--engine spark needs the spark extra: pip install 'medaid[spark]'") from None
    if output is None:
        raise click.UsageError("--engine spark needs -o OUTPUT (a folder of part files)")
    try:
        s = run_batch(input_path, output, rules_path, master=master or "local[2]",
                      rejects_path=rejects_path, on_error=on_error, scheme=scheme,
                      max_errors=max_errors, lang=lang, opening=opening, columns=columns,
                      full_rule_hash=full_rule_hash)
    except MedaidError as e:
        raise _fail(e) from None
    echo(json_text(s.to_dict()) if as_json
               else f"{s.reconcile()}\nresults: {s.output}")


def _record(input_path: str, out: str, ledger: str, rules_path: str, scheme: str | None,
            encoding: str | None, sheet: str | None, maps: tuple[str, ...], rejects_path: str | None,
            on_error: str, max_errors: int, bom: bool, lang: str, as_json: bool,
            loaded: Any = None) -> None:
    """``medaid batch --ledger … --record``: :func:`medaid.batch.record.record_file`, then the
    results (and rejects) written as a batch's; exit 1 when the ledger refused a claim while
    recording under ``--on-error fail`` (the others are recorded: run it again once fixed)."""
    from ..batch.manifest import input_entries, now
    from ..batch.record import record_file
    from ..batch.run import BatchRefused, write_run
    from ..io.readers import parse_mapping
    from ..ledger.backend import open_ledger
    from ..report.batch_text import summary_json, summary_tables
    from ..report.totals import summarise
    from .app import Failure, load_book

    started = now()
    book = load_book(rules_path, scheme)
    if loaded is not None:
        loaded()
    target = Path(out)
    if not target.parent.is_dir() or target.is_dir():  # looked at before anything is recorded
        raise _fail(MedaidError(Problem(
            ("the output folder does not exist" if not target.parent.is_dir() else "is a folder")
            + "; nothing was recorded", source=out)))
    try:
        with open_ledger(ledger) as db:
            rec = record_file(input_path, db, book, encoding=encoding, sheet=sheet,
                              mapping=parse_mapping(maps), on_error=on_error, limit=max_errors)
    except BatchRefused as e:
        raise _refused(e, as_json) from None
    except MedaidError as e:
        raise _fail(e) from None
    again = Problem(  # what was done cannot be undone: say so, and how the files are had
        f"the claims were recorded in the ledger ({rec.recorded} recorded, {rec.already} already there); "
        "run the same command again once the files can be written: recorded claims are replayed, "
        "not settled twice")
    try:
        rej = write_run(rec.run, out, rejects_path=rejects_path, on_error="skip", bom=bom, lang=lang)
        inputs = input_entries(input_path)
    except MedaidError as e:
        raise _fail(MedaidError([*e.problems, again])) from None
    except OSError as e:  # the input went away after it was read
        raise _fail(MedaidError([Problem(f"cannot be read for the run manifest ({e.strerror})",
                                         source=input_path), again])) from None
    line = rec.reconcile()
    summary = summarise(rec.run.results)
    try:
        manifest = _write_manifest(rec.run, started, inputs, summary, out, rej, None, {
            "engine": "local", "on_error": on_error, "columns": None, "full_rule_hash": False,
            "lang": lang, "bom": bom, "encoding": encoding, "sheet": sheet, "map": list(maps),
            "opening": [], "ledger": _redact(ledger), "record": True}, recording=rec)
    except Failure as e:
        raise Failure(f"{e.message}\n{again}", [*e.problems, again]) from None
    if rec.refused_late and on_error == "fail":
        raise Failure(f"{line}\nthe ledger refused {rec.run.rejected} claim(s) while recording (listed in "
                      f"{rej}); the others are recorded: run the same command again once they are fixed",
                      rec.run.problems()[:max_errors], reconciliation=line, output=out,
                      rejects=None if rej is None else str(rej))
    if as_json:
        echo(json_text({"input": input_path, "output": out, "rejects": None if rej is None else str(rej),
                        "manifest": str(manifest), **rec.counts(), "reconciliation": line,
                        "warnings": [str(w) for w in rec.run.warnings], **summary_json(summary)}))
        return
    _warn(rec.run)
    echo(summary_tables(summary, lang))
    echo("")
    echo(line)
    echo(f"results: {out}" + ("" if rej is None else f"\nrejects: {rej}"))


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    # imported here: ``python -m medaid.cli`` runs cli.py as __main__, which imports us
    from .app import json_option, lang_option, rules_option

    @group.command("batch")
    @click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=True))
    @click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
                  help="local: this machine (polars); spark: Apache Spark (pip install 'medaid[spark]').")
    @click.option("--master", default=None, metavar="URL",
                  help="Spark master for --engine spark, e.g. local[2] (default: local[2], or what "
                       "spark-submit configures).")
    @click.option("-o", "--output", default=None, metavar="FILE",
                  help="Results file; format by extension (.csv .xlsx .jsonl .parquet). "
                       "Default: INPUT's name + .results, in the current folder.")
    @click.option("--rejects", "rejects_path", default=None, metavar="FILE",
                  help="Where --on-error skip writes bad rows (default: OUTPUT's name + .rejects).")
    @click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                  help="fail: write nothing if any row is bad; skip: settle the good rows.")
    @click.option("--max-errors", default=20, show_default=True, metavar="N", type=click.IntRange(min=1),
                  help="How many problems to list when refusing (at least 1).")
    @click.option("--bom/--no-bom", default=True, show_default=True,
                  help="Start CSV output with a UTF-8 byte-order mark (Excel needs it for Chinese).")
    @click.option("--opening", "openings", multiple=True, metavar="RESULTS",
                  type=click.Path(dir_okay=False),
                  help="Earlier results file (any format medaid batch writes) the batch continues: "
                       "each person-year-pool starts from its self-pay and relief so far; their "
                       "claims are not settled again. Repeatable.")
    @click.option("--ledger", "ledger", default=None, metavar="URL|PATH",
                  help="A ledger (SQLite file or postgresql:// URL) whose year-to-date positions "
                       "the batch continues, as --opening; with --record, the ledger every claim "
                       "is settled against and recorded in.")
    @click.option("--opening-ledger", default=None, hidden=True, metavar="PATH|URL",
                  help="The former name of --ledger.")
    @click.option("--record", is_flag=True,
                  help="Settle the claims against the --ledger and record each of them there "
                       "(idempotent, resumable): desk claims and applications share one cap.")
    @click.option("--columns", default=None, metavar="LIST",
                  help="Results columns to write, comma-separated, e.g. claim_id,relief (default: "
                       "all: the input's columns, then the result fields).")
    @click.option("--full-rule-hash", is_flag=True, default=False,
                  help="Write the rule file's whole sha256 in rule_hash on every row (default: its "
                       "first 12 hex digits; the manifest beside the results holds the whole one).")
    @_input_options
    @rules_option
    @lang_option
    @json_option
    def batch_cmd(input_path: str, output: str | None, rejects_path: str | None, on_error: str,
                  max_errors: int, bom: bool, encoding: str | None, sheet: str | None,
                  maps: tuple[str, ...], rules_path: str, scheme: str | None, lang: str,
                  as_json: bool, engine: str, master: str | None, openings: tuple[str, ...],
                  ledger: str | None, opening_ledger: str | None, record: bool,
                  columns: str | None = None, full_rule_hash: bool = False) -> None:
        """Settle a file of claims: results, rejects and totals.

        \b
        Inputs: .csv (UTF-8, UTF-8 BOM, GBK/GB18030), .xlsx, .jsonl, .parquet,
        with English or Chinese headers (结算单号, 人员编号, 结算日期, 合规自付费用 ...).
        Example:  medaid batch examples/claims-2024.csv -o results.csv
        On Spark: medaid batch --engine spark --master 'local[2]' claims/ -o results.parquet
        """
        if opening_ledger is not None:
            if ledger is not None and ledger != opening_ledger:
                raise click.UsageError("--opening-ledger is the former name of --ledger; give one of them")
            ledger = opening_ledger
        if record:
            if ledger is None:
                raise click.UsageError("--record needs --ledger URL|PATH (the ledger to record in)")
            if openings:
                raise click.UsageError("--record settles against the --ledger alone; leave out --opening")
            if engine == "spark":
                raise click.UsageError("--record works with --engine local only")
        if engine == "spark":
            for o in openings:
                if output is not None and Path(o).resolve() == Path(output).resolve():
                    raise click.UsageError(f"{output} would overwrite the opening results {o}; choose another file")
            _spark_batch(input_path, output, rules_path, scheme, master, rejects_path, on_error,
                         max_errors, as_json, lang, _opening(openings, ledger), columns, full_rule_hash)
            return
        if Path(input_path).is_dir():
            raise click.BadParameter("a folder is read only with --engine spark; give a file",
                                     param_hint="INPUT")
        # no garbage collection while the modules are imported and the rules loaded (medaid.tuning)
        ctx = click.get_current_context()
        loaded = ctx.with_resource(command_heap())
        from ..batch.manifest import input_entries, now

        started = now()
        # the input's sha256 for the run manifest, on a thread from here on: hashlib gives up the
        # interpreter lock, so it runs on the second core while this one imports polars and the
        # batch's modules, and then beside the read (medaid.tuning.alongside)
        digest = None if record else ctx.with_resource(
            alongside(input_entries, input_path, name="medaid-digest"))
        _import_polars()  # first, with the batch's allocator settings (medaid.tuning)
        from ..batch.run import BatchRefused, default_rejects_path, write_run

        out = output or _default_output(input_path)
        distinct(input_path, out, rejects_path or str(default_rejects_path(out)))
        for o in openings:
            if Path(o).resolve() == Path(out).resolve():
                raise click.UsageError(f"{out} would overwrite the opening results {o}; choose another file")
        if record:
            assert ledger is not None
            _record(input_path, out, ledger, rules_path, scheme, encoding, sheet, maps, rejects_path,
                    on_error, max_errors, bom, lang, as_json, loaded)
            return
        opening = _opening(openings, ledger)
        assert digest is not None
        with _progress("settling") as tick:
            run = _settle(input_path, rules_path, scheme, encoding, sheet, maps, tick, opening,
                          full_rule_hash, columns, loaded)
            chosen = _columns(run, columns)
            if not as_json:
                _warn(run)
            # the totals are computed while the files are written (polars runs without the
            # interpreter lock: the write's idle core and its waits for the disk are used)
            refused = on_error == "fail" and run.rejected
            tables_lang = None if as_json else lang
            with alongside(None if refused else _totals, run.results, run.persons, tables_lang,
                           name="medaid-totals") as totals:
                try:
                    rej = write_run(run, out, rejects_path=rejects_path, on_error=on_error,
                                    limit=max_errors, bom=bom, progress=tick, lang=lang,
                                    columns=chosen)
                except BatchRefused as e:
                    raise _refused(e, as_json) from None
                except MedaidError as e:
                    raise _fail(e) from None
        from ..report.batch_text import summary_json

        summary, tables = (totals.result() if totals is not None
                           else _totals(run.results, run.persons, tables_lang))
        line = run.reconcile()
        try:
            inputs = digest.result()
        except OSError as e:  # the input went away while it was read
            raise click.ClickException(f"{input_path}: cannot be read for the run manifest ({e.strerror})") from None
        manifest = _write_manifest(run, started, inputs, summary, out, rej, chosen, {
            "engine": "local", "on_error": on_error, "columns": chosen,
            "full_rule_hash": full_rule_hash, "lang": lang, "bom": bom, "encoding": encoding,
            "sheet": sheet, "map": list(maps), "opening": list(openings),
            "ledger": None if ledger is None else _redact(ledger)})
        if as_json:
            echo(json_text({
                "input": input_path, "output": out, "rejects": None if rej is None else str(rej),
                "manifest": str(manifest),
                **run.counts(), "reconciliation": line, "warnings": [str(w) for w in run.warnings],
                **summary_json(summary)}))
            return
        echo(tables)
        echo("")
        echo(line)
        echo(f"results: {out}" + ("" if rej is None else f"\nrejects: {rej}"))

    @group.command("recalc")
    @click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
    @click.option("--previous", "previous", required=True, metavar="RESULTS",
                  type=click.Path(dir_okay=False, exists=True),
                  help="Results file of the earlier run (any format medaid batch writes).")
    @click.option("-o", "--output", default=None, metavar="FILE",
                  help="Per-claim adjustments file (old relief, new relief, adjustment).")
    @click.option("--bom/--no-bom", default=True, show_default=True,
                  help="Start CSV output with a UTF-8 byte-order mark.")
    @_input_options
    @rules_option
    @lang_option
    @json_option
    def recalc_cmd(input_path: str, previous: str, output: str | None, bom: bool,
                   encoding: str | None, sheet: str | None, maps: tuple[str, ...],
                   rules_path: str, scheme: str | None, lang: str, as_json: bool) -> None:
        """Recalculate claims under (new) rules and list each claim's adjustment.

        \b
        Example:  medaid recalc claims.csv --previous results.csv --rules rules-2025/ -o adj.csv
        Σ old relief + Σ adjustments = Σ new relief, to the fen.
        """
        _import_polars()  # first, with the batch's allocator settings (medaid.tuning)
        from ..batch.recalc import PREVIOUS_FIELDS, recalculate
        from ..batch.run import BatchRefused, refuse_if_bad
        from ..io.readers import read_results
        from ..io.writers import write_frame

        distinct(input_path, previous, output)
        with _progress("recalculating") as tick:
            run = _settle(input_path, rules_path, scheme, encoding, sheet, maps, tick)
            if not as_json:
                _warn(run)
            try:
                refuse_if_bad(run)
                rc = recalculate(run, read_results(previous, required=PREVIOUS_FIELDS))
                if output:
                    write_frame(rc.claims, output, bom=bom, lang=lang)
                if tick:
                    tick("write")
            except BatchRefused as e:
                raise _refused(e, as_json) from None
            except MedaidError as e:
                raise _fail(e) from None
        from ..report.batch_text import recalc_tables, summary_json

        if as_json:
            echo(json_text(summary_json({
                "input": input_path, "previous": previous, "output": output,
                **run.counts(), "reconciliation": run.reconcile(),
                "warnings": [str(w) for w in run.warnings], "totals": rc.totals,
                "by_hospital": rc.by_hospital, "by_person": rc.by_person,
            })))
            return
        echo(recalc_tables(rc, lang))
        echo("\n" + run.reconcile())
        if output:
            echo(f"\nadjustments: {output}")

"""The run manifest: what a batch read, with which rules and options, and what it wrote.

Rules implemented (docs/batch.md, *Run manifest*):

* Beside every results file (or Spark output folder) ``OUTPUT``, the batch writes
  ``OUTPUT.manifest.json`` (:func:`manifest_path`), atomically (a temporary file renamed into
  place, as every output), after the results themselves: a manifest names only results that
  were written whole.
* It holds: ``medaid`` (the version), ``started`` and ``finished`` (UTC, ISO 8601 with
  milliseconds), ``inputs`` (each claim file with its ``bytes``, ``sha256`` and the
  ``rows_read``), ``rules`` (each rule file of the rule book: ``id``, ``version``, ``file``,
  ``sha256``, so that the short ``rule_hash`` of a results row names one of them), ``options``
  (the options that decide the output: engine, on-error, columns, full rule hash, language,
  byte-order mark, encoding, sheet, mapping, opening files), ``outputs`` (the results file, its
  format and columns, the rejects file if any), ``reconciliation`` (the figures of
  :meth:`medaid.batch.run.BatchRun.counts` and the reconciliation line) and ``totals`` (claims,
  persons, self-pay, relief, patient pays, claims capped, persons at annual cap, and for results
  of the rules real schemes need persons stopped by a cap pool; money as integer fen).
* The manifest holds no personal data: file names, counts, hashes and totals only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__

if TYPE_CHECKING:
    from ..domain.rules import RuleBook

#: What is appended to the results file's name: ``results.csv`` → ``results.csv.manifest.json``.
MANIFEST_SUFFIX = ".manifest.json"
#: Bytes read at a time when hashing a file (hashlib releases the interpreter lock on each).
_HASH_BLOCK = 1 << 20
#: The totals' measures the manifest carries (money in fen).
TOTAL_KEYS = ("claims", "persons", "self_pay", "relief", "patient_pays", "claims_capped",
              "persons_at_annual_cap", "persons_at_cap_pool")


def manifest_path(output: str | Path) -> Path:
    """``results.csv`` → ``results.csv.manifest.json`` (a folder ``out.parquet/`` →
    ``out.parquet.manifest.json`` beside it)."""
    p = Path(str(output).rstrip("/"))
    return p.with_name(p.name + MANIFEST_SUFFIX)


def now() -> str:
    """The current time, UTC, ISO 8601 with milliseconds (``2026-12-06T21:04:10.123+00:00``)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def file_digest(path: str | Path) -> dict[str, Any]:
    """``{"path", "bytes", "sha256"}`` of a file (a folder: one entry per file in it, via
    :func:`input_entries`)."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            h.update(block)
            size += len(block)
    return {"path": str(path), "bytes": size, "sha256": h.hexdigest()}


def input_entries(path: str | Path) -> list[dict[str, Any]]:
    """The manifest's entries for an input: a file's :func:`file_digest`; for a folder (Spark),
    one per file in it (hidden files and ``_SUCCESS`` markers left out), by name; for a URL
    (``hdfs://``, ``s3a://``) the path alone, with ``bytes`` and ``sha256`` null."""
    text = str(path)
    if "://" in text and not text.startswith("file://"):
        return [{"path": text, "bytes": None, "sha256": None}]
    p = Path(text.removeprefix("file://"))
    if p.is_dir():
        return [file_digest(f) for f in sorted(p.rglob("*"))
                if f.is_file() and not f.name.startswith((".", "_"))]
    return [file_digest(p)]


def rule_entries(book: RuleBook) -> list[dict[str, str]]:
    """One entry per rule file of ``book``: ``id``, ``version``, ``file``, ``sha256``."""
    return [{"id": rs.id, "version": rs.version, "file": rs.source, "sha256": rs.content_hash}
            for rs in book.rule_sets]


def totals_entry(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The overall totals of a :func:`medaid.report.totals.summarise` summary, money in fen."""
    total = summary["total"]
    return {k: total[k] for k in TOTAL_KEYS if k in total}


def build_manifest(
    *,
    started: str,
    inputs: Iterable[Mapping[str, Any]],
    rules: Iterable[Mapping[str, str]],
    options: Mapping[str, Any],
    outputs: Mapping[str, Any],
    reconciliation: Mapping[str, Any],
    totals: Mapping[str, Any],
    finished: str | None = None,
) -> dict[str, Any]:
    """The manifest as a JSON-ready dict (the keys of the module doc, in that order); ``rules``
    are :func:`rule_entries` (a run's :attr:`medaid.batch.run.BatchRun.rules`)."""
    return {
        "medaid": __version__,
        "started": started,
        "finished": finished or now(),
        "inputs": [dict(i) for i in inputs],
        "rules": [dict(r) for r in rules],
        "options": dict(options),
        "outputs": dict(outputs),
        "reconciliation": dict(reconciliation),
        "totals": dict(totals),
    }


def write_manifest(output: str | Path, manifest: Mapping[str, Any]) -> Path:
    """Write ``manifest`` as ``OUTPUT.manifest.json`` beside ``output``, atomically (owner-only,
    as the results it describes); returns its path.  :class:`medaid.io.writers.WriteError`
    naming it when it cannot be written (a full disk)."""
    from ..io.writers import atomic_path, cannot_write

    path = manifest_path(output)
    try:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    except OSError as e:  # a full disk, a quota: refused with the disk's words (no partial file is left)
        raise cannot_write(e, path) from None
    return path

"""Batches on this machine (polars), in the order of the flow: :mod:`.run` reads a file, settles
it and writes results and rejects; :mod:`.settle` is the columnar settlement
(:func:`settle_frame`), in steps :mod:`.placement` → :mod:`.ordering` → :mod:`.arithmetic`
over the rule book's :mod:`.tables`; :mod:`.recalc` compares a run with a previous results file.
A run is data: its totals and tables are the report's (:mod:`medaid.report.totals`,
:mod:`medaid.report.batch_text`).

The names below load on first use (PEP 562), so importing the package does not import the rule
models or polars.
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "BatchRefused": "run",
    "BatchRun": "run",
    "STAGES": "run",
    "default_rejects_path": "run",
    "rejects_for_output": "run",
    "results_for_output": "run",
    "settle_file": "run",
    "write_run": "run",
    "PREVIOUS_FIELDS": "recalc",
    "Recalc": "recalc",
    "recalculate": "recalc",
    "settle_frame": "settle",
}


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)

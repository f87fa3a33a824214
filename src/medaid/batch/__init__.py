"""Batches on this machine (polars): :mod:`.run` reads a file, settles it and writes results and
rejects; :mod:`.columnar` is the columnar settlement core.

The names below load on first use (PEP 562), so importing the package does not import the rule
models or polars.
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "BatchRefused": "run",
    "BatchRun": "run",
    "PREVIOUS_FIELDS": "run",
    "Recalc": "run",
    "STAGES": "run",
    "default_rejects_path": "run",
    "recalc_tables": "run",
    "recalculate": "run",
    "rejects_for_output": "run",
    "results_for_output": "run",
    "settle_file": "run",
    "summarise": "run",
    "summary_json": "run",
    "summary_tables": "run",
    "write_run": "run",
    "settle_frame": "columnar",
}


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)

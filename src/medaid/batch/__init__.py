"""Batches on this machine (polars): :mod:`.run` reads a file, settles it and writes results and
rejects; :mod:`.columnar` is the columnar settlement core.

The names below load on first use (PEP 562), so importing the package does not import the rule
models or polars.
"""

from typing import Any as _Any

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


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = sorted(_LAZY)

"""Batches on Apache Spark (:mod:`.job`); ``python -m medaid.spark`` runs :func:`main`.

The names below load on first use (PEP 562), so importing the package does not import pyspark.
"""

from typing import Any as _Any

_LAZY = {
    "Summary": "job",
    "Totals": "job",
    "main": "job",
    "read_claims": "job",
    "run_batch": "job",
    "settle_spark": "job",
    "spark_session": "job",
    "summarize": "job",
    "write_atomic": "job",
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

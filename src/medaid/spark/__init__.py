"""Batches on Apache Spark (:mod:`.job`); ``python -m medaid.spark`` runs :func:`main`.

The names below load on first use (PEP 562), so importing the package does not import pyspark.
"""

from .._lazy import lazy_exports as _lazy_exports

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


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)

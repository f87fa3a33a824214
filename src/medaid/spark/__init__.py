"""Batches on Apache Spark: :mod:`.read` reads claim files with the local readers, :mod:`.job`
settles them with the local columnar evaluator and totals them, :mod:`.write` writes the
results; :mod:`.frames` holds the session and the frames' plumbing, :mod:`.summary` what a
batch did; ``python -m medaid.spark`` runs :func:`.cli.main`.

The names below load on first use (PEP 562), so importing the package does not import pyspark.
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "Summary": "summary",
    "Totals": "summary",
    "main": "cli",
    "output_frame": "write",
    "read_claims": "read",
    "run_batch": "job",
    "settle_spark": "job",
    "spark_session": "frames",
    "summarize": "job",
    "tidy_claim_ids": "job",
    "write_atomic": "write",
}


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)

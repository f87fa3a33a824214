"""``python -m medaid.spark`` / ``spark-submit examples/spark_job.py``: run one batch on Spark
(:func:`medaid.spark.job.run_batch`; docs/spark.md, *Command line*)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from ..errors import MedaidError
from ..money import format_yuan
from .job import MAX_QUOTED, run_batch


def _at_least_one(text: str) -> int:
    """``--max-errors``: a whole number of at least 1 (0 or less would list no problem at all)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is less than 1: at least one problem is listed")
    return n


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the batch, print its summary (``--json``: as JSON, amounts in
    fen); a refused batch prints its problems and returns 1."""
    ap = argparse.ArgumentParser(prog="medaid.spark", description="Settle a claim batch on Apache Spark.")
    ap.add_argument("input", help="CSV or Parquet file or folder (local, hdfs://, s3a:// ...)")
    ap.add_argument("-o", "--output", required=True, help="output folder; ends in .csv for CSV, else Parquet")
    ap.add_argument("--rules", default=os.environ.get("MEDAID_RULES", "rules"),
                    help="rule file or folder (driver side)")
    ap.add_argument("--scheme", default=None)
    ap.add_argument("--master", default=None,
                    help="e.g. local[2]; default: what spark-submit configures, else local[2]")
    ap.add_argument("--rejects", default=None, help="folder for rejected rows (CSV if it ends in .csv)")
    ap.add_argument("--on-error", choices=("fail", "skip"), default="fail")
    ap.add_argument("--buckets", type=int, default=None, help="buckets of persons (default: by size)")
    ap.add_argument("--max-errors", type=_at_least_one, default=MAX_QUOTED,
                    help="how many problems to list when refusing (at least 1)")
    ap.add_argument("--columns", default=None, metavar="LIST",
                    help="results columns to write, comma-separated, e.g. claim_id,relief (default: all)")
    ap.add_argument("--full-rule-hash", action="store_true",
                    help="the rule file's whole sha256 in rule_hash (default: its first 12 hex digits)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    try:
        # under spark-submit the driver runs with a gateway to the JVM spark-submit started
        master = args.master or (None if os.environ.get("PYSPARK_GATEWAY_PORT") else "local[2]")
        summary = run_batch(args.input, args.output, args.rules, master=master, rejects_path=args.rejects,
                            on_error=args.on_error, scheme=args.scheme, buckets=args.buckets,
                            max_errors=args.max_errors, columns=args.columns,
                            full_rule_hash=args.full_rule_hash)
    except MedaidError as e:
        print(str(e), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
        return 0
    t = summary.total
    print(summary.reconcile())
    print(f"{t.claims} claims of {t.persons} persons: self-pay {format_yuan(t.self_pay)}, "
          f"relief {format_yuan(t.relief)}, patient pays {format_yuan(t.patient_pays)}")
    for p in summary.by_plan:
        print(f"  {p.key}: {p.claims} claims, relief {format_yuan(p.relief)}")
    print(f"wrote {summary.output} in {summary.seconds:.1f} s")
    return 0

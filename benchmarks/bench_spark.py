"""Benchmark: the same N claims settled locally (columnar.settle_frame) and on Spark.

    PYTHONPATH=src python benchmarks/bench_spark.py --claims 1000000 --master 'local[2]'

Generates N claims (fixed seed; several plans and pools, caps binding), writes them once as
Parquet and as CSV (yuan text) into a temporary folder, then times, in this order:

* local: polars reads the Parquet file, ``columnar.settle_frame`` settles it, polars writes the
  results as Parquet (the local columnar path, no Spark);
* spark settle: Spark reads the same Parquet file (amounts in fen), ``settle_spark`` settles it
  and writes Parquet (the library function);
* spark batch: ``run_batch`` on the CSV file (read and validate every row, settle, reconcile,
  write a CSV folder, totals) – the whole ``medaid batch --engine spark`` path.

Spark's session start-up and a warm-up on 200 claims (Python workers starting, imports) are
timed separately and excluded.  Prints seconds, claims per second,
the ratio of each Spark time to the local time, and checks that the relief totals agree.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path


def generate(n: int, persons: int):  # type: ignore[no-untyped-def]
    """N claims: person, date in 2024, self-pay 0–60,000 yuan (fen), group and kind."""
    import polars as pl

    i = pl.int_range(0, n, dtype=pl.Int64, eager=True).alias("i")
    frame = pl.DataFrame(i).with_columns(
        h=(pl.col("i").hash(seed=6) // 2).cast(pl.Int64),
    )
    return frame.select(
        (pl.col("i") + 2).alias("row"),
        pl.format("C{}", pl.col("i").cast(pl.String).str.zfill(9)).alias("claim_id"),
        pl.format("P{}", (pl.col("h") % persons).cast(pl.String).str.zfill(7)).alias("person_id"),
        (pl.lit(dt.date(2024, 1, 1)) + pl.duration(days=(pl.col("h") // 7) % 366)).alias("date"),
        ((pl.col("h") // 3001) % 6_000_001).alias("self_pay"),
        pl.when((pl.col("h") // 13) % 4 == 0).then(pl.lit("low-income")).otherwise(pl.lit("key")).alias("group"),
        pl.when((pl.col("h") // 17) % 3 == 0).then(pl.lit("outpatient-special")).otherwise(pl.lit("inpatient"))
        .alias("kind"),
        pl.format("H{}", (pl.col("h") // 19) % 40).alias("hospital"),
    ).with_columns(
        # low-income recipients have no outpatient plan in the bundled rules
        pl.when(pl.col("group") == "low-income").then(pl.lit("inpatient")).otherwise(pl.col("kind")).alias("kind"),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claims", type=int, default=100_000)
    ap.add_argument("--persons", type=int, default=0, help="default: claims / 8")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--rules", default="rules")
    ap.add_argument("--skip-csv", action="store_true", help="skip the CSV run_batch measurement")
    args = ap.parse_args()

    import polars as pl

    import medaid
    from medaid.batch import settle_frame
    from medaid.spark import run_batch, settle_spark, spark_session

    book = medaid.load_rules(args.rules)
    n, persons = args.claims, args.persons or max(1, args.claims // 8)
    tmp = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    frame = generate(n, persons)
    frame.write_parquet(tmp / "claims.parquet")
    if not args.skip_csv:
        yuan = ((pl.col("self_pay") // 100).cast(pl.String) + "."
                + (pl.col("self_pay") % 100).cast(pl.String).str.zfill(2))
        frame.with_columns(yuan.alias("self_pay")).drop("row").write_csv(tmp / "claims.csv")
    print(f"{n:,} claims of {persons:,} persons in {tmp}")

    t = time.perf_counter()
    local, rejects = settle_frame(pl.read_parquet(tmp / "claims.parquet"), book)
    local.write_parquet(tmp / "local.parquet")
    t_local = time.perf_counter() - t
    relief_local = int(local["relief"].sum())
    print(f"local  settle_frame (parquet in/out) {t_local:8.2f} s  {n / t_local:>10,.0f} claims/s")

    t = time.perf_counter()
    spark = spark_session(args.master)
    warm, _ = settle_spark(spark.createDataFrame(frame.head(200).to_arrow()), book)
    warm.count()  # start the JVM's and Python workers' code paths once
    warm.unpersist()
    t_start = time.perf_counter() - t
    print(f"spark  session start + warm-up ({args.master}) {t_start:6.2f} s  (excluded below)")

    t = time.perf_counter()
    claims = spark.read.parquet(str(tmp / "claims.parquet"))
    results, srejects = settle_spark(claims, book)
    results.write.parquet(str(tmp / "spark.parquet"))
    relief_spark = results.agg({"relief": "sum"}).collect()[0][0]
    t_spark = time.perf_counter() - t
    results.unpersist()
    print(f"spark  settle_spark (parquet in/out) {t_spark:8.2f} s  {n / t_spark:>10,.0f} claims/s"
          f"  {t_spark / t_local:5.2f}x local")
    if relief_spark != relief_local:
        print(f"MISMATCH: relief total local {relief_local} != spark {relief_spark}", file=sys.stderr)
        return 1

    if not args.skip_csv:
        t = time.perf_counter()
        summary = run_batch(str(tmp / "claims.csv"), str(tmp / "out.csv"), args.rules, master=args.master,
                            on_error="skip")
        t_batch = time.perf_counter() - t
        print(f"spark  run_batch (CSV in/out, validated) {t_batch:6.2f} s  {n / t_batch:>10,.0f} claims/s"
              f"  {t_batch / t_local:5.2f}x local settle")
        if summary.total.relief != relief_local or summary.rejected != rejects.height:
            print("MISMATCH: run_batch totals differ from the local settlement", file=sys.stderr)
            return 1
    print(f"relief total agrees: {medaid.format_yuan(relief_local)} yuan")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

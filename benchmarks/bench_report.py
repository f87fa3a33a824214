"""Benchmark of the year-end report: N synthetic result rows → all indicators and tables.

    PYTHONPATH=src python benchmarks/bench_report.py --rows 1000000
    PYTHONPATH=src python benchmarks/bench_report.py --rows 20000 --write out/results.csv

Prints the time of :func:`medaid.report.compute` (best of ``--repeat``), rows per second, the
time of a baseline measured in the same run (polars alone making one pass over the frame: the
sum of relief and the distinct persons, the two cheapest things any report must do), the ratio
of the two, and the peak memory of the process.  ``--write PATH`` writes the synthetic results
as a results file instead (.csv / .jsonl with yuan text, .parquet with Decimal(18,2)), e.g. for
a demonstration page.

The rows are synthetic but shaped like a county's year: 85% inpatient claims under the source
policy's brackets (70/85/95% from 1,000 / 10,000 / 50,000 yuan), outpatient special-disease
claims with a 3,000-yuan claim cap, a 100,000-yuan cap, 30 hospitals, a third as many persons
as claims.  Randomness is polars' hash of the row number, so runs are reproducible and no
extra package is needed.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from medaid.report import compute  # noqa: E402
from medaid.report.text import render_text  # noqa: E402

HOSPITALS = [
    "县人民医院", "县中医院", "县妇幼保健院", "县第二人民医院", "市中心医院", "市第一人民医院",
    "医科大学附属第一医院", "医科大学附属第二医院", "儿童医院", "肿瘤医院", "精神卫生中心",
    "城关镇卫生院", "石桥镇卫生院", "龙潭镇卫生院", "白马镇卫生院", "新华乡卫生院", "太平镇卫生院",
    "青山镇卫生院", "红星乡卫生院", "长河镇卫生院", "东溪镇卫生院", "西沱镇卫生院", "南坪镇卫生院",
    "北城街道社区卫生服务中心", "民营仁爱医院", "康复医院", "骨科医院", "眼科医院", "口腔医院",
    "县疾控门诊部",
]


def _u(n_col: pl.Expr, seed: int, mod: int) -> pl.Expr:
    """A reproducible pseudo-random integer in [0, mod) per row."""
    return (n_col.hash(seed) % mod).cast(pl.Int64)


def _marginal(x: pl.Expr, brackets: list[tuple[int, int | None, int]]) -> pl.Expr:
    """Σ rate% × max(0, min(x, to) − from) in hundredths of a fen, rounded half-up to the fen."""
    total = pl.lit(0, dtype=pl.Int64)
    for lo, hi, pct in brackets:
        part = (pl.min_horizontal(x, pl.lit(hi)) if hi is not None else x) - lo
        total = total + pct * pl.max_horizontal(part, pl.lit(0))
    return (total + 50) // 100


def make_results(n: int, seed: int = 7) -> pl.DataFrame:
    """``n`` synthetic result rows with the results frame's columns (money in fen)."""
    i = pl.int_range(n, dtype=pl.Int64)
    yuan = 100
    lf = pl.LazyFrame().select(i.alias("i")).with_columns(
        _u(pl.col("i"), seed, 1_000_000).alias("u1"),
        _u(pl.col("i"), seed + 1, 1000).alias("u2"),
        _u(pl.col("i"), seed + 2, 366).alias("day"),
        _u(pl.col("i"), seed + 3, max(1, n // 3)).alias("p"),
        _u(pl.col("i"), seed + 4, len(HOSPITALS) * (len(HOSPITALS) + 1) // 2).alias("h"),
    )
    # Hospitals: triangular weights so that a few big hospitals carry most claims.
    tri = [k * (k + 1) // 2 for k in range(1, len(HOSPITALS) + 1)]
    hosp_idx = pl.lit(len(HOSPITALS) - 1)
    for k in range(len(HOSPITALS) - 1, -1, -1):
        hosp_idx = pl.when(pl.col("h") < tri[k]).then(pl.lit(len(HOSPITALS) - 1 - k)).otherwise(hosp_idx)
    kind = pl.when(pl.col("u2") < 850).then(pl.lit("inpatient")).otherwise(pl.lit("outpatient-special"))
    group = pl.when(pl.col("u2") % 5 == 0).then(pl.lit("low-income")).otherwise(pl.lit("key"))
    # Skewed self-pay: 300 yuan + u³ × 40,000 yuan (mean about 10,000 yuan); outpatient a fifth.
    cube = (pl.col("u1") * pl.col("u1") // 1_000_000) * pl.col("u1") // 1_000_000
    base = pl.when(pl.col("u2") < 850).then(300 * yuan + cube * 4).otherwise(60 * yuan + cube * 4 // 5)
    # 1% of claims are long, costly stays: up to 200,000 yuan more.
    tail = pl.when((pl.col("u1") % 100 == 0) & (pl.col("u2") < 850)).then(pl.col("i") % 10_000 * 2_000).otherwise(0)
    lf = lf.with_columns(
        pl.format("C{}", pl.col("i").cast(pl.String).str.zfill(9)).alias("claim_id"),
        pl.format("P{}", pl.col("p").cast(pl.String).str.zfill(8)).alias("person_id"),
        (pl.date(2024, 1, 1) + pl.duration(days=pl.col("day"))).alias("date"),
        (base + tail).alias("self_pay"),
        group.alias("group"),
        kind.alias("kind"),
    )
    hosp = pl.DataFrame({"_hi": list(range(len(HOSPITALS))), "hospital": HOSPITALS},
                        schema={"_hi": pl.Int32, "hospital": pl.String}).lazy()
    lf = lf.with_columns(hosp_idx.cast(pl.Int32).alias("_hi")).join(hosp, on="_hi", how="left")
    x = pl.col("self_pay")
    inc = (
        pl.when((pl.col("kind") == "inpatient") & (pl.col("group") == "key"))
        .then(_marginal(x, [(1000 * yuan, 10000 * yuan, 70), (10000 * yuan, 50000 * yuan, 85),
                            (50000 * yuan, None, 95)]))
        .when(pl.col("kind") == "inpatient")
        .then(_marginal(x, [(2000 * yuan, 50000 * yuan, 60), (50000 * yuan, None, 70)]))
        .otherwise(_marginal(x, [(200 * yuan, None, 70)]))
    )
    bracket = (
        pl.when((pl.col("kind") == "inpatient") & (pl.col("group") == "key"))
        .then((x >= 1000 * yuan).cast(pl.Int8) + (x >= 10000 * yuan).cast(pl.Int8) + (x >= 50000 * yuan).cast(pl.Int8))
        .when(pl.col("kind") == "inpatient")
        .then((x >= 2000 * yuan).cast(pl.Int8) + (x >= 50000 * yuan).cast(pl.Int8))
        .otherwise((x >= 200 * yuan).cast(pl.Int8))
    )
    cap = pl.when(pl.col("kind") == "inpatient").then(100000 * yuan).otherwise(3000 * yuan)
    lf = lf.with_columns(inc.alias("bracket_relief"), bracket.cast(pl.Int8).alias("bracket"))
    lf = lf.with_columns(
        pl.min_horizontal(pl.col("bracket_relief"), cap).alias("relief"),
        pl.when(pl.col("bracket_relief") > cap)
        .then(pl.when(pl.col("kind") == "inpatient").then(pl.lit("annual_cap")).otherwise(pl.lit("claim_cap")))
        .otherwise(None).alias("capped_by"),
    )
    lf = lf.with_columns(
        (x - pl.col("relief")).alias("patient_pays"),
        # 95% of rows carry the total cost: self-pay is 20-45% of it.
        pl.when(pl.col("u2") % 20 != 7).then(x * 100 // (20 + pl.col("u1") % 26)).otherwise(None).alias("total_cost"),
        ((x >= 20000 * yuan) | (pl.col("u1") % 10 == 0)).alias("major_disease"),
        pl.when(pl.col("kind") == "inpatient").then(
            pl.when(pl.col("group") == "key").then(pl.lit("key-inpatient")).otherwise(pl.lit("low-income-inpatient"))
        ).otherwise(pl.lit("key-outpatient-special")).alias("plan"),
        pl.col("kind").alias("pool"),
        pl.lit(2024, dtype=pl.Int32).alias("benefit_year"),
        x.alias("ytd_self_pay"),
        pl.col("relief").alias("ytd_relief"),
        pl.lit("cq-county-medical-aid").alias("rule_set_id"),
        pl.lit("2019.1").alias("rule_version"),
        pl.lit("0" * 64).alias("rule_hash"),
    )
    cols = ["claim_id", "person_id", "date", "self_pay", "group", "kind", "hospital", "total_cost",
            "major_disease", "plan", "pool", "benefit_year", "relief", "patient_pays", "bracket_relief",
            "capped_by", "bracket", "ytd_self_pay", "ytd_relief", "rule_set_id", "rule_version", "rule_hash"]
    return lf.select(cols).collect()


MONEY = ("self_pay", "total_cost", "relief", "patient_pays", "bracket_relief", "ytd_self_pay", "ytd_relief")


def write_results(frame: pl.DataFrame, path: Path) -> None:
    """Write results as a file: yuan text (CSV/JSONL) or Decimal(18,2) yuan (Parquet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    yuan_text = [pl.format("{}.{}", pl.col(c) // 100, (pl.col(c) % 100).cast(pl.String).str.zfill(2)).alias(c)
                 for c in MONEY]
    if path.suffix == ".parquet":
        out = frame.with_columns(yuan_text).with_columns([pl.col(c).cast(pl.Decimal(18, 2)) for c in MONEY])
        out.write_parquet(path)
        return
    text = frame.with_columns(yuan_text + [pl.col("major_disease").cast(pl.Int8).cast(pl.String)])
    if path.suffix == ".jsonl":
        text.write_ndjson(path)
    else:
        text.write_csv(path)


def _peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--by", default="month")
    ap.add_argument("--write", type=Path, default=None, help="write the results file and stop")
    ap.add_argument("--show", action="store_true", help="print the report")
    a = ap.parse_args(argv)

    t0 = time.perf_counter()
    frame = make_results(a.rows)
    gen = time.perf_counter() - t0
    if a.write is not None:
        write_results(frame, a.write)
        print(f"wrote {a.rows:,} result rows to {a.write} in {time.perf_counter() - t0:.2f} s")
        return 0

    best_base = best = float("inf")
    rep = None
    for _ in range(a.repeat):
        t = time.perf_counter()
        frame.select(pl.col("relief").sum(), pl.col("person_id").n_unique())
        best_base = min(best_base, time.perf_counter() - t)
        t = time.perf_counter()
        rep = compute(frame, budget=8_500_000 * 100 * max(1, a.rows // 43_684), by=a.by)
        best = min(best, time.perf_counter() - t)
    assert rep is not None
    print(f"rows                 {a.rows:,}  (generated in {gen:.2f} s; threads {pl.thread_pool_size()}; "
          f"cpus {os.cpu_count()})")
    print(f"report.compute       {best:.3f} s  best of {a.repeat}  ({a.rows / best:,.0f} rows/s)")
    print(f"baseline (1 pass)    {best_base:.3f} s  polars: Σ relief + distinct persons")
    print(f"ratio                {best / best_base:.1f}x baseline")
    print(f"peak RSS             {_peak_mb():,} MB")
    if a.show:
        print(render_text(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())

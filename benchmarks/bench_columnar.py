"""Benchmark the columnar settlement core against polars' own CSV read + write.

Generates N seeded claims (skewed persons, lognormal self-pay, dates over one year, two rule
versions with year-mode plans and caps), writes them as a CSV of yuan, then in the same run:

* baseline: polars reads the CSV and writes an output of the results' shape;
* medaid: polars reads the CSV, amounts go to fen (integer text arithmetic), ``settle_frame``,
  and the results are written.

Prints the time of each step, claims per second of ``settle_frame``, the ratio of the two
pipelines and peak memory (RSS).  Usage::

    PYTHONPATH=src python benchmarks/bench_columnar.py [N] [--sorted] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import tempfile
import time
from pathlib import Path

RULES = """
id = "bench"
version = "{version}"
valid_from = {valid_from}
{valid_to}
rounding = {{ unit = "fen", method = "half-up" }}

[[plans]]
name = "inpatient"
match = {{ group = ["key", "low-income"], kind = ["inpatient"] }}
default = true
pool = "inpatient"
accumulate = "year"
annual_cap = "100000"
brackets = [
  {{ from = "1000",  to = "10000", rate = "{r1}" }},
  {{ from = "10000", to = "50000", rate = "85%" }},
  {{ from = "50000",               rate = "95%" }},
]

[[plans]]
name = "outpatient"
match = {{ group = ["key", "low-income"], kind = ["outpatient-special"] }}
pool = "outpatient"
accumulate = "year"
annual_cap = "10000"
claim_cap = "3000"
brackets = [ {{ from = "200", rate = "0.70" }} ]
"""


def write_rules(folder: Path) -> None:
    (folder / "v1.toml").write_text(RULES.format(
        version="1", valid_from="2024-01-01", valid_to="valid_to = 2024-06-30", r1="70%"))
    (folder / "v2.toml").write_text(RULES.format(
        version="2", valid_from="2024-07-01", valid_to="", r1="75%"))


def make_claims(n: int, seed: int, ordered: bool):  # -> pl.DataFrame of yuan text
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    persons = max(n // 8, 1)
    person = (persons * rng.random(n) ** 1.5).astype(np.int64)  # skewed: low ids claim more
    cents = np.minimum(rng.lognormal(mean=np.log(300_000), sigma=1.1, size=n), 10**10).astype(np.int64)
    df = pl.DataFrame({
        "claim_id": pl.Series(rng.permutation(n)).cast(pl.String).str.pad_start(10, "0").str.pad_start(11, "C"),
        "person_id": pl.Series(person).cast(pl.String).str.pad_start(12, "0").str.pad_start(13, "P"),
        "date": (pl.Series(rng.integers(0, 366, n)).cast(pl.Int32) + 19723).cast(pl.Date),
        "cents": pl.Series(cents),
        "group": pl.Series(rng.choice(["key", "low-income"], n, p=[0.7, 0.3])),
        "kind": pl.Series(rng.choice(["inpatient", "outpatient-special"], n, p=[0.6, 0.4])),
        "hospital": pl.Series(rng.integers(0, 400, n)).cast(pl.String).str.pad_start(4, "H"),
    })
    if ordered:
        df = df.sort("person_id", "kind", "date", "claim_id")  # kind decides the pool here
    return df.select(
        "claim_id", "person_id", "date",
        ((pl.col("cents") // 100).cast(pl.String) + "."
         + (pl.col("cents") % 100).cast(pl.String).str.zfill(2)).alias("self_pay"),
        "group", "kind", "hospital",
    )


def schema():
    import polars as pl

    return {"claim_id": pl.String, "person_id": pl.String, "date": pl.Date, "self_pay": pl.Decimal(18, 2)}


def read_claims(path: Path):
    """The CSV as the batch hands it over: amounts in fen (polars' exact decimal reader: the
    fixed-point integer is the amount in fen), line numbers from 2."""
    import polars as pl

    df = pl.read_csv(path, schema_overrides=schema())
    return df.with_columns(
        pl.col("self_pay").to_physical().cast(pl.Int64),
        pl.int_range(2, pl.len() + 2, dtype=pl.Int64).alias("row"),
    )


def generate(n: int, seed: int, ordered: bool, folder: Path) -> Path:
    """Write the rules and the claims CSV in a child process, so that the peak memory measured
    here is the batch's alone."""
    import subprocess

    src = folder / "claims.csv"
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_columnar as b; "
        f"from pathlib import Path; b.make_claims({n:d}, {seed:d}, {ordered!r}).write_csv(Path({str(src)!r}))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    return src


def verify(results, book, persons: int, seed: int) -> int:
    """Every claim of ``persons`` random persons, settled by the scalar engine, must equal the
    columnar result field by field; returns how many claims were compared."""
    import random

    import polars as pl

    import medaid

    ids = results["person_id"].unique().sort().to_list()
    chosen = random.Random(seed).sample(ids, min(persons, len(ids)))
    rows = results.filter(pl.col("person_id").is_in(chosen)).with_columns(
        pl.col(c).cast(pl.String) for c in ("plan", "pool", "capped_by", "rule_version"))
    claims = [
        medaid.Claim(claim_id=r["claim_id"], person_id=r["person_id"], date=r["date"],
                     self_pay=r["self_pay"], group=r["group"], kind=r["kind"])
        for r in rows.iter_rows(named=True)
    ]
    for want, got in zip(medaid.settle(claims, book), rows.iter_rows(named=True)):
        fields = ("relief", "patient_pays", "bracket_relief", "capped_by", "ytd_self_pay",
                  "ytd_relief", "plan", "pool", "benefit_year", "rule_version")
        mismatch = [f for f in fields if getattr(want, f) != got[f]]
        if mismatch:
            raise SystemExit(f"MISMATCH at claim {want.claim_id}: {mismatch}")
    return len(claims)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("n", nargs="?", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=20240101)
    ap.add_argument("--sorted", action="store_true",
                    help="input already grouped by person and pool, by date and claim inside")
    ap.add_argument("--keep", type=Path, help="folder to keep the files in")
    ap.add_argument("--repeat", type=int, default=3, help="runs per step; the fastest is kept")
    ap.add_argument("--verify", type=int, default=200, metavar="K",
                    help="check every claim of K random persons against the scalar engine (0: skip)")
    ap.add_argument("--trace", action="store_true", help="print settle_frame's time per step")
    ap.add_argument("--strings", action="store_true",
                    help="text result columns as String (default: compact Enum columns)")
    args = ap.parse_args()

    import polars as pl

    import medaid
    from medaid.batch import settle_frame
    from medaid.tuning import trace_steps

    folder = args.keep or Path(tempfile.mkdtemp(prefix="medaid-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    write_rules(folder)
    book = medaid.load_rules(folder)
    src = generate(args.n, args.seed, args.sorted, folder)
    print(f"claims: {args.n:,}  text columns {'String' if args.strings else 'Enum'}  "
          f"input {src.stat().st_size / 1e6:.1f} MB  polars {pl.__version__}, "
          f"threads {pl.thread_pool_size()}", flush=True)

    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    for _ in range(args.repeat):
        # medaid: read → fen → settle → write
        t0 = time.perf_counter()
        claims = read_claims(src)
        t1 = time.perf_counter()
        with trace_steps() if args.trace else contextlib.nullcontext([]) as steps:
            results, rejects = settle_frame(claims, book, compact=not args.strings)
        t2 = time.perf_counter()
        if args.trace:
            print("  steps: " + "  ".join(f"{k} {v:.3f}" for k, v in steps))
        results.write_csv(folder / "results.csv")
        t3 = time.perf_counter()
        assert rejects.height == 0 and results.height == args.n
        del claims
        keep("read", t1 - t0), keep("settle", t2 - t1), keep("write", t3 - t2), keep("total", t3 - t0)

        # baseline: polars alone reads the same input and writes an output of the same shape
        b0 = time.perf_counter()
        raw = pl.read_csv(src, schema_overrides=schema())
        b1 = time.perf_counter()
        results.write_csv(folder / "baseline.csv")
        b2 = time.perf_counter()
        del raw
        keep("b_read", b1 - b0), keep("b_write", b2 - b1), keep("b_total", b2 - b0)
        relief, capped = results["relief"].sum(), results["capped_by"].is_not_null().sum()
        if args.verify and "checked" not in best:
            best["checked"] = verify(results, book, args.verify, args.seed)
        del results

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"best of {args.repeat}:")
    print(f"settle_frame     {best['settle']:8.3f} s   {args.n / best['settle']:12,.0f} claims/s")
    print(f"medaid read+fen  {best['read']:8.3f} s   write {best['write']:8.3f} s   total {best['total']:8.3f} s")
    print(f"polars read      {best['b_read']:8.3f} s   write {best['b_write']:8.3f} s   total {best['b_total']:8.3f} s")
    print(f"ratio medaid / polars read+write: {best['total'] / best['b_total']:.2f}")
    print(f"peak RSS {peak_mb:,.0f} MB  (read, settle, write; data generated in a child process)")
    print(f"relief total {relief:,} fen; capped {capped:,}")
    if args.verify:
        print(f"verified against medaid.domain.engine.settle: {int(best['checked']):,} claims of "
              f"{args.verify} persons, identical to the fen")
    if args.keep is None:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()


if __name__ == "__main__":
    sys.exit(main())

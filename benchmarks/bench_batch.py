"""Benchmark: ``medaid batch`` CSV → CSV against polars' own read + write, in the same run.

    python benchmarks/bench_batch.py --claims 100000
    python benchmarks/bench_batch.py --claims 1000000 --repeat 3
    python benchmarks/bench_batch.py --claims 10000000 --workdir /big/disk

Generates seeded claims (skewed persons: a Zipf law over persons; lognormal self-pay; one year;
groups key / low-income; kinds inpatient / outpatient-special; five hospitals), and a rule set
with every plan in ``year`` accumulation mode with annual caps (and a claim cap on outpatient),
the costly case of README.md#performance-measured.  Then times, each in its own child process:

* ``medaid batch claims.csv -o results.csv`` (start-up included);
* the baseline: polars reads the same CSV and writes a CSV of the same shape as medaid's output
  (same rows and columns; each result column is a copy of the self-pay column when medaid's is a
  number, else the text of medaid's first row, so that both files are about the same size).

It prints both wall times, claims per second, the ratio medaid / baseline and each child's peak
resident memory (``wait4`` rusage); with ``--json``, one JSON object of the same figures instead
(what ``benchmarks/before_after.py`` reads).  Each run writes a new file on a settled disk (earlier
outputs removed, ``sync``, one second's pause), medaid's flushed to disk before its rename (the
baseline's not).  Needs numpy for the data generation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Generated inputs are kept here (git-ignored) and reused by later runs.
DATA = ROOT / "benchmarks" / "data"

RULES = """
id = "bench-year-mode"
version = "1"
valid_from = 2024-01-01
rounding = { unit = "fen", method = "half-up" }

[[plans]]
name = "key-inpatient"
match = { group = ["key"], kind = ["inpatient"] }
default = true
pool = "inpatient"
accumulate = "year"
annual_cap = "100000"
brackets = [
  { from = "1000",  to = "10000", rate = "70%" },
  { from = "10000", to = "50000", rate = "85%" },
  { from = "50000",               rate = "95%" },
]

[[plans]]
name = "low-income-inpatient"
match = { group = ["low-income"], kind = ["inpatient"] }
pool = "inpatient"
accumulate = "year"
annual_cap = "100000"
brackets = [
  { from = "2000",  to = "50000", rate = "60%" },
  { from = "50000",               rate = "70%" },
]

[[plans]]
name = "outpatient-special"
match = { group = ["key", "low-income"], kind = ["outpatient-special"] }
pool = "outpatient-special"
accumulate = "year"
annual_cap = "10000"
claim_cap = "3000"
brackets = [ { from = "200", rate = "0.70" } ]
"""

BASELINE = r"""
import re, sys, polars as pl
src, dst, like = sys.argv[1], sys.argv[2], sys.argv[3]
df = pl.read_csv(src)
first = pl.read_csv(like, n_rows=1, infer_schema=False)   # medaid's output: its columns
extra = []
for c in first.columns:
    if c in df.columns:
        continue
    v = first[c][0]
    if v is not None and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", v):
        extra.append(pl.col("self_pay").alias(c))              # a number column
    else:
        extra.append(pl.lit(v, pl.String).alias(c))           # text of the same length
df.with_columns(extra).write_csv(dst)
"""


def generate(path: Path, claims: int, seed: int, persons: int) -> None:
    """Write ``claims`` seeded claims to ``path`` (CSV, date order as exports come)."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    # skewed persons: Zipf ranks folded into the population
    person = (rng.zipf(1.3, claims) - 1) % persons
    day = rng.integers(0, 366, claims)
    self_pay = np.minimum(np.rint(rng.lognormal(8.0, 1.1, claims) * 100), 60_000_000).astype(np.int64)
    group = np.where(person % 10 < 7, "key", "low-income")
    kind = np.where(rng.random(claims) < 0.3, "outpatient-special", "inpatient")
    hospital = rng.integers(0, 5, claims)
    order = np.argsort(day, kind="stable")
    df = pl.DataFrame({
        "day": day[order], "person": person[order], "self_pay": self_pay[order],
        "group": group[order], "kind": kind[order], "hospital": hospital[order],
    })
    df = df.select(
        (pl.lit("C") + pl.int_range(0, claims, eager=False).cast(pl.String).str.zfill(9)).alias("claim_id"),
        (pl.lit("P") + pl.col("person").cast(pl.String).str.zfill(8)).alias("person_id"),
        (pl.date(2024, 1, 1) + pl.duration(days=pl.col("day"))).alias("date"),
        ((pl.col("self_pay") // 100).cast(pl.String) + "."
         + (pl.col("self_pay") % 100).cast(pl.String).str.zfill(2)).alias("self_pay"),
        "group", "kind",
        (pl.lit("H") + pl.col("hospital").cast(pl.String)).alias("hospital"),
    )
    df.write_csv(path)


def fresh(*paths: Path) -> None:
    """Remove earlier outputs and let the disk settle, so that each timed run writes a new file
    on a quiet disk: freeing a large old file (its discard on an SSD) otherwise lands in
    whichever run comes next, medaid's or the baseline's."""
    for p in paths:
        p.unlink(missing_ok=True)
    os.sync()
    time.sleep(1.0)


def compile_bytecode(src: Path = ROOT / "src") -> str:
    """Write the bytecode (``__pycache__``) of the medaid package under ``src``, as ``pip install``
    does for a wheel, and say so.  A source checkout run with ``PYTHONDONTWRITEBYTECODE`` set (as
    on this project's machines) otherwise compiles every module it imports again at every start:
    0.39 s against 0.30 s for a run on 10 claims (medians of 12 alternated runs, 7 Dec 2026), a
    cost no installed medaid pays.  Files already up to date are left as they are."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(src / "medaid")], check=True,
                   stdout=subprocess.DEVNULL)
    return f"medaid's bytecode compiled under {src / 'medaid'} (as an installed medaid has it)"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """Run ``cmd``; return (wall seconds, CPU seconds, peak RSS in MiB of the child, stdout)."""
    out = tempfile.TemporaryFile()
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{err[-2000:]}")
    out.seek(0)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, out.read().decode()


def pl_width(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        return len(f.readline().split(","))


def input_file(claims: int, seed: int, persons: int | None = None) -> Path:
    """Where the generated claims of these parameters are kept (and found again by later runs)."""
    persons = persons or max(1, claims // 8)
    return DATA / f"claims-{claims}-p{persons}-s{seed}.csv"


def ensure_input(claims: int, seed: int, persons: int | None = None) -> tuple[Path, str]:
    """The generated claims file, generated now unless an earlier run left it; and a line saying which."""
    persons = persons or max(1, claims // 8)
    src = input_file(claims, seed, persons)
    src.parent.mkdir(parents=True, exist_ok=True)
    if src.exists():
        return src, f"reusing {src} ({src.stat().st_size / 2**20:.0f} MiB)"
    t = time.perf_counter()
    # generated in a child process: the parent stays small, so that the children's peak
    # memory (which counts the parent's pages they start from) measures only their work
    tmp = src.with_suffix(".part")
    subprocess.run([sys.executable, __file__, "--generate-only", str(tmp), "--claims",
                    str(claims), "--seed", str(seed), "--persons", str(persons)], check=True)
    os.replace(tmp, src)
    return src, (f"generated {claims:,} claims in {time.perf_counter() - t:.1f} s "
                 f"({src.stat().st_size / 2**20:.0f} MiB) into {src}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=int, default=100_000)
    ap.add_argument("--persons", type=int, default=None, help="default: claims / 8")
    ap.add_argument("--seed", type=int, default=20240101)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each; the best is kept")
    ap.add_argument("--rules", default=None, help="rule file or folder (default: generated)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--json", action="store_true", help="print one JSON object of the figures instead of text")
    ap.add_argument("--generate-only", default=None, metavar="FILE", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.generate_only:
        generate(Path(a.generate_only), a.claims, a.seed, a.persons)
        return

    work = Path(a.workdir or tempfile.mkdtemp(prefix="medaid-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out, base_out = work / "results.csv", work / "baseline.csv"
    rules = Path(a.rules) if a.rules else work / "bench-rules.toml"
    if not a.rules:
        rules.write_text(RULES, encoding="utf-8")
    src, said = ensure_input(a.claims, a.seed, a.persons)
    print(f"{said}; results in {work}", file=sys.stderr if a.json else sys.stdout)
    print(compile_bytecode(), file=sys.stderr if a.json else sys.stdout)

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    medaid_cmd = [sys.executable, "-m", "medaid.cli", "batch", str(src), "-o", str(out),
                  "--rules", str(rules), "--json", "--no-bom"]
    best_m = best_b = None
    doc = {}
    load_before = os.getloadavg()
    for _ in range(a.repeat):
        fresh(out, base_out)
        wm, cm, mm, stdout = timed(medaid_cmd, env)
        doc = json.loads(stdout)
        like = out.with_name("like.csv")
        os.replace(out, like)  # the baseline copies the shape of medaid's output from it
        fresh(base_out)
        wb, cb, mb, _ = timed([sys.executable, "-c", BASELINE, str(src), str(base_out), str(like)])
        os.replace(like, out)
        best_m = (wm, cm, mm) if best_m is None or wm < best_m[0] else best_m
        best_b = (wb, cb, mb) if best_b is None or wb < best_b[0] else best_b
    assert doc["rows_read"] == doc["settled"] + doc["rejected"] == a.claims, doc
    (wm, cm, mm), (wb, cb, mb) = best_m, best_b  # type: ignore[misc]
    la, lb = load_before, os.getloadavg()
    if a.json:
        print(json.dumps({
            "claims": a.claims, "input": str(src), "rules": str(rules), "results": str(out),
            "medaid": {"wall_s": wm, "cpu_s": cm, "claims_per_s": a.claims / wm, "peak_mib": mm},
            "polars": {"wall_s": wb, "cpu_s": cb, "claims_per_s": a.claims / wb, "peak_mib": mb},
            "ratio_wall": wm / wb, "ratio_cpu": cm / cb,
            "output_bytes": out.stat().st_size, "baseline_output_bytes": base_out.stat().st_size,
            "relief_total": doc["total"]["relief"], "total_claims": doc["total"]["claims"],
            "total_persons": doc["total"]["persons"],
            "load_before": list(la), "load_after": list(lb), "cpus": os.cpu_count(),
        }))
        return
    print(f"medaid batch   : {wm:8.2f} s wall {cm:8.2f} s cpu  {a.claims / wm:12,.0f} claims/s  peak {mm:6,} MiB")
    print(f"polars r+w     : {wb:8.2f} s wall {cb:8.2f} s cpu  {a.claims / wb:12,.0f} claims/s  peak {mb:6,} MiB")
    print(f"ratio medaid / polars read+write: {wm / wb:.2f}x wall, {cm / cb:.2f}x cpu")
    print(f"output {out.stat().st_size / 2**20:.0f} MiB, baseline output {base_out.stat().st_size / 2**20:.0f} MiB "
          f"({pl_width(out)} and {pl_width(base_out)} columns)")
    print(f"relief total {doc['total']['relief']} yuan on {doc['total']['claims']:,} claims, "
          f"{doc['total']['persons']:,} persons")
    print(f"load average before {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}, after {lb[0]:.2f} {lb[1]:.2f} {lb[2]:.2f} "
          f"({os.cpu_count()} CPUs; the runs add about 1-2 themselves)")


if __name__ == "__main__":
    main()

"""Desk benchmark: the wall time of one ``medaid settle`` command and the ledger's throughput.

1. ``medaid settle`` as a clerk runs it: a new Python process each time (start-up, loading the
   rules, opening the ledger, settling with ``synchronous=FULL``, printing the table).  Median
   and spread of N runs against a ledger already holding ``--rows`` settlements.  Baseline in
   the same run: ``python -c pass`` (the interpreter's own start-up) and ``import medaid``.
   Target: ≤ 0.3 s.
2. Ledger throughput: settlements per second, in one process, each its own ``BEGIN IMMEDIATE``
   transaction committed with ``synchronous=FULL`` (every acknowledged settlement on disk),
   on persons whose pools fill up.  Target: ≥ 500/s.  For comparison, the same with
   ``synchronous=OFF`` (no durability: shows what the disk syncs cost).

    python benchmarks/bench_desk.py                 # defaults: 21 commands, 2,000 settlements
    python benchmarks/bench_desk.py --runs 5 --settlements 300 --rows 1000   # a quick check
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import medaid  # noqa: E402
from medaid.ledger import Ledger  # noqa: E402


def fill(path: Path, book: medaid.RuleBook, n: int, prefix: str, synchronous: str) -> float:
    """Settle ``n`` claims on 500 persons; return the seconds taken."""
    claims = [
        medaid.Claim(claim_id=f"{prefix}{i}", person_id=f"P{i % 500}", date="2024-05-03",
                     self_pay=100_000 + (i * 7919) % 3_000_000, group="key", kind="inpatient")
        for i in range(n)
    ]
    with Ledger(path, synchronous=synchronous) as lg:
        t0 = time.perf_counter()
        for c in claims:
            lg.settle(c, book)
        return time.perf_counter() - t0


def raw_commits(path: Path, n: int) -> float:
    """The disk's floor: ``n`` one-row SQLite transactions, WAL + synchronous=FULL, no medaid."""
    import sqlite3

    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    t0 = time.perf_counter()
    for _ in range(n):
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t (v) VALUES (?)", ("x" * 400,))
        con.execute("COMMIT")
    dt = time.perf_counter() - t0
    con.close()
    return dt


def wall(cmd: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def show(name: str, times: list[float]) -> None:
    q = statistics.quantiles(times, n=10) if len(times) >= 2 else [times[0]] * 9
    print(f"  {name:<34} median {statistics.median(times) * 1000:7.1f} ms"
          f"   p10 {q[0] * 1000:7.1f}   p90 {q[-1] * 1000:7.1f}   (n={len(times)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=21, help="medaid settle commands to time")
    ap.add_argument("--settlements", type=int, default=2000, help="settlements for the throughput")
    ap.add_argument("--rows", type=int, default=10_000, help="rows already in the ledger for the command timing")
    args = ap.parse_args()

    book = medaid.load_rules(ROOT / "rules")
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:  # on the project's disk, not a tmpfs
        tmp_path = Path(tmp)
        print(f"medaid desk benchmark  (python {sys.version.split()[0]}, SQLite "
              f"{__import__('sqlite3').sqlite_version}, {os.cpu_count()} cpus)")

        # 2. throughput first (it also fills the ledger the commands run against)
        full = fill(tmp_path / "full.sqlite3", book, args.settlements, "F", "FULL")
        off = fill(tmp_path / "off.sqlite3", book, args.settlements, "O", "OFF")
        raw = raw_commits(tmp_path / "raw.sqlite3", args.settlements)
        print(f"\nledger throughput, {args.settlements:,} settlements, one transaction each:")
        print(f"  bare SQLite commits, FULL (disk floor) {args.settlements / raw:6.0f} commits/s"
              f"       ({raw / args.settlements * 1000:.2f} ms each)")
        print(f"  synchronous=FULL (durable)          {args.settlements / full:8.0f} settlements/s"
              f"   ({full / args.settlements * 1000:.2f} ms each)   target ≥ 500/s; {full / raw:.2f}× the floor's time")
        print(f"  synchronous=OFF  (baseline, unsafe) {args.settlements / off:8.0f} settlements/s"
              f"   ({off / args.settlements * 1000:.2f} ms each)")

        # 1. one command, start-up included
        ledger = tmp_path / "desk.sqlite3"
        fill(ledger, book, args.rows, "R", "OFF")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MEDAID_RULES": str(ROOT / "rules"),
               "MEDAID_LEDGER": str(ledger)}
        py = sys.executable
        counter = iter(range(10**9))

        def settle_cmd() -> list[str]:
            return [py, "-m", "medaid.cli", "settle", "--person", "P1", "--self-pay", "30000",
                    "--date", "2024-05-03", "--group", "key", "--kind", "inpatient",
                    "--claim-id", f"BENCH-{next(counter)}"]

        print(f"\none command, new process each time, ledger of {args.rows:,} rows:")
        show("python -c pass (baseline)", wall([py, "-c", "pass"], env, args.runs))
        show("python -c 'import medaid'", wall([py, "-c", "import medaid"], env, args.runs))
        show("medaid --help", wall([py, "-m", "medaid.cli", "--help"], env, args.runs))
        times = []
        for _ in range(args.runs):
            cmd = settle_cmd()
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
        show("medaid settle (target ≤ 300 ms)", times)
        show("medaid history P1", wall([py, "-m", "medaid.cli", "history", "P1"], env, args.runs))


if __name__ == "__main__":
    main()

"""Recording throughput: ``medaid batch FILE --ledger … --record`` claims per second on SQLite and
PostgreSQL, durable, by claims per transaction (``medaid.tuning.RECORD_CHUNK``).

Each run records the same generated file (``--claims`` claims of 2024: ``--persons`` persons,
key and low-income groups, inpatient, lognormal self-pay; seeded) into a fresh, empty ledger
through :func:`medaid.batch.record.record_file`, as the command does (the check before recording
under ``--on-error fail`` included; reading the file and loading the rules not timed).  It
prints, best of ``--repeat`` runs, the claims per second and how long one transaction took (the
median and the longest):
on PostgreSQL a desk settling meanwhile may wait that long for the chain's lock.

PostgreSQL is a throwaway cluster started for the run (tests/pgcluster.py) with the durable
defaults (``fsync``, ``synchronous_commit`` on, a unix socket); SQLite a file in WAL mode with
``synchronous=FULL``.  Both on the same disk in the same run.

    python benchmarks/bench_record.py [--claims 5000] [--persons 1500] [--chunks 1 20 200 1000]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

import medaid  # noqa: E402
from medaid.batch.record import record_file  # noqa: E402
from medaid.ledger import open_ledger  # noqa: E402
from pgcluster import Cluster, find_bin  # noqa: E402


def claims_file(path: Path, n: int, persons: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    lines = ["claim_id,person_id,date,self_pay,group,kind"]
    for i in range(n):
        day = 1 + rng.randrange(365)
        month, mday = min(12, 1 + day // 31), 1 + day % 28
        yuan = min(round(rng.lognormvariate(9.0, 1.0), 2), 9_999_999)
        group = "key" if rng.random() < 0.6 else "low-income"
        lines.append(f"A{i:07d},P{rng.randrange(persons):06d},2024-{month:02d}-{mday:02d},{yuan:.2f},{group},inpatient")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def timed(where: str, src: Path, book: medaid.RuleBook, chunk: int) -> tuple[float, list[float]]:
    """Seconds to record ``src`` into the (empty) ledger at ``where``, and each transaction's."""
    spans: list[float] = []
    with open_ledger(where) as lg:
        orig = lg.record_in_order

        def each(claims, *a, **k):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return orig(claims, *a, **k)
            finally:
                if not k.get("dry_run"):
                    spans.append(time.perf_counter() - t)
        lg.record_in_order = each  # type: ignore[method-assign]
        start = time.perf_counter()
        rec = record_file(src, lg, book, chunk=chunk)
        took = time.perf_counter() - start
        assert rec.recorded == rec.run.rows_read, rec.reconcile()
        assert lg.verify().ok
    return took, spans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=int, default=5000)
    ap.add_argument("--persons", type=int, default=1500)
    ap.add_argument("--chunks", type=int, nargs="+", default=[1, 20, 200, 1000])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each (the best is printed)")
    ap.add_argument("--no-postgres", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the cluster when killed
    book = medaid.load_rules(str(ROOT / "rules"))
    bindir = None if args.no_postgres else find_bin()
    cluster = Cluster(bindir, durable=True) if bindir else None
    try:
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / "applications.csv"
            claims_file(src, args.claims, args.persons)
            print(f"{args.claims} claims, {args.persons} persons; durable commits")
            print(f"{'backend':<11}{'claims/tx':>10}{'seconds':>9}{'claims/s':>10}"
                  f"{'tx median ms':>14}{'tx max ms':>11}")
            # the sizes take turns, run after run, so that the machine's drift (other sessions share
            # it) falls on all of them alike
            best: dict[tuple[str, int], tuple[float, list[float]]] = {}
            for k in range(args.repeat):
                for chunk in args.chunks:
                    places = [("sqlite", str(Path(d) / f"l{chunk}-{k}.sqlite3"))]
                    if cluster is not None:
                        schema = f"rec{chunk}_{k}"
                        cluster.sql(f"CREATE SCHEMA {schema}")
                        places.append(("postgresql", cluster.url(schema=schema)))
                    for name, where in places:
                        got = timed(where, src, book, chunk)
                        if (name, chunk) not in best or got[0] < best[name, chunk][0]:
                            best[name, chunk] = got
            for (name, chunk), (took, spans) in sorted(best.items()):
                print(f"{name:<11}{chunk:>10}{took:>9.2f}{args.claims / took:>10,.0f}"
                      f"{statistics.median(spans) * 1000:>14.1f}{max(spans) * 1000:>11.1f}", flush=True)
            print(f"load average after the runs: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
            if cluster is None:
                print("(PostgreSQL not installed: SQLite only)")
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()

"""Ledger settlements per second on SQLite and PostgreSQL, durable, from 1 and 8 processes.

Each process opens the ledger (``open_ledger``: a file, or a ``postgresql://`` URL), waits for
the start, then settles ``--settlements`` claims of 5,000 yuan, one transaction each, and
reports its latencies.  Persons are spread (each process its own 50 persons, so the pools'
locks seldom meet), which leaves the costs every settlement pays: the pool's read, the
insert, the commit and, on PostgreSQL, the chain's lock (every append reads the head: appends
are one global order).  ``--hot`` makes every process settle the same 3 persons instead.
``--extended`` settles under a rule set with a household cap pool (tests/extended_books.py
``HOUSEHOLD``, its cap raised so that it seldom binds; two persons a household): each settlement
then locks its household and person, reads both groups' rows of the year and records the cap
pool's take (docs/calculation.md *Rules real schemes need*).
A settlement refused as busy (it waited longer than the busy timeout, 10 s) is counted, not
retried.

``bare`` rows are PostgreSQL's floor in the same run: one-row commits of 400 bytes, one round trip
each, and ``bare+lock`` the same under one global advisory lock (what the chain's order makes of
every append).

PostgreSQL is a throwaway cluster started for the run (tests/pgcluster.py) with the durable
defaults: ``fsync`` and ``synchronous_commit`` on, a unix socket.  SQLite is a file in WAL mode
with ``synchronous=FULL``.  Both on the same disk in the same run.

    python benchmarks/bench_ledger_backends.py [--settlements 200] [--procs 1 8] [--hot] [--extended]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from pgcluster import Cluster, find_bin  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}

WORKER = r"""
import sys, time
import medaid
from medaid.ledger import LedgerError, open_ledger
where, rules, worker, n, hot = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
households = sys.argv[6] == "1"
book = medaid.load_rules(rules)
with open_ledger(where) as lg:
    print("ready", flush=True)
    sys.stdin.readline()
    start, lat, busy = time.perf_counter(), [], 0
    for i in range(n):
        person = f"P{i % 3}" if hot else f"W{worker}-P{i % 50}"
        c = medaid.Claim(claim_id=f"W{worker}-{i}", person_id=person, date="2024-05-03",
                         self_pay=500_000, group="key", kind="inpatient",
                         household_id=(person.rsplit("P", 1)[0] + f"H{i % 25}") if households else None)
        t = time.perf_counter()
        try:
            lg.settle(c, book)
        except LedgerError:  # busy: waited longer than the busy timeout; nothing recorded
            busy += 1
            continue
        lat.append(time.perf_counter() - t)
    end = time.perf_counter()
print(start, end, busy, " ".join(f"{x:.6f}" for x in lat), flush=True)
"""


#: The floor: one-row commits, one round trip each, optionally under one global advisory lock
#: (what the chain's lock makes of every append), with the same durability.
BARE = r"""
import sys, time
import psycopg
url, n, locked = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
with psycopg.connect(url, autocommit=True) as con:
    print("ready", flush=True)
    sys.stdin.readline()
    start, lat = time.perf_counter(), []
    for i in range(n):
        t = time.perf_counter()
        with con.pipeline():
            con.execute("BEGIN")
            if locked:
                con.execute("SELECT pg_advisory_xact_lock(1, 1)")
            con.execute("INSERT INTO bare (v) VALUES (%s)", ("x" * 400,))
            con.execute("COMMIT")
        lat.append(time.perf_counter() - t)
    end = time.perf_counter()
print(start, end, 0, " ".join(f"{x:.6f}" for x in lat), flush=True)
"""


def run(where: str, procs: int, n: int, hot: bool, rules: Path | None = None) -> tuple[float, float, float, int]:
    """(settlements/s over the wall time, p50 and p99 latency in ms, settlements refused as
    busy) of ``procs`` processes; ``rules``: a rule file with a household cap pool (``--extended``)."""
    from medaid.ledger import open_ledger

    extended = "1" if rules is not None else "0"
    return _timed([[sys.executable, "-c", WORKER, where, str(rules or ROOT / "rules"), str(w), str(n),
                    "1" if hot else "0", extended]
                   for w in range(procs)], lambda got: _verified(open_ledger(where, create=False), got))


def _verified(lg: Any, rows: int) -> None:
    with lg:
        v = lg.verify()
        assert v.ok and v.entries == rows, v.problems[:3]


def _timed(commands: list[list[str]], check: Callable[[int], None] | None = None) -> tuple[float, float, float, int]:
    """Start the processes, let them go at once, and gather their figures."""
    ps = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=ENV) for cmd in commands]
    for p in ps:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
    for p in ps:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    starts, ends, lat, busy = [], [], [], 0
    for p in ps:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        s, e, refused, *xs = out.split()
        busy += int(refused)
        starts.append(float(s))
        ends.append(float(e))
        lat += [float(x) for x in xs]
    wall = max(ends) - min(starts)
    lat.sort()
    if check is not None:
        check(len(lat))
    return len(lat) / wall, 1000 * statistics.median(lat), 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], busy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settlements", type=int, default=200, help="per process")
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--hot", action="store_true", help="every process settles the same 3 persons")
    ap.add_argument("--extended", action="store_true", help="a rule set with a household cap pool")
    args = ap.parse_args()
    bindir = find_bin()
    if bindir is None:
        sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
    cluster = Cluster(bindir, durable=True)
    try:
        version = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True).stdout.strip()
        print(f"{args.settlements} settlements per process, {'3 shared' if args.hot else 'spread'} persons"
              f"{', household cap pool' if args.extended else ''}; "
              f"{version}, fsync on, synchronous_commit on; SQLite WAL synchronous=FULL; {os.cpu_count()} cpus")
        print(f"{'backend':<11} {'procs':>5} {'settlements/s':>14} {'p50 ms':>8} {'p99 ms':>8} {'busy':>5}")
        with tempfile.TemporaryDirectory(prefix="medaid-bench-") as tmp:
            rules = None
            if args.extended:
                from extended_books import HOUSEHOLD

                rules = Path(tmp) / "household.toml"
                rules.write_text(HOUSEHOLD.replace('annual = "10000"', 'annual = "9000000"'), encoding="utf-8")
            for procs in args.procs:
                for backend in ("sqlite", "postgresql"):
                    if backend == "sqlite":
                        where = str(Path(tmp) / f"l{procs}.sqlite3")
                    else:
                        cluster.sql(f"CREATE SCHEMA b{procs}")
                        where = cluster.url(schema=f"b{procs}")
                    rate, p50, p99, busy = run(where, procs, args.settlements, args.hot, rules)
                    print(f"{backend:<11} {procs:>5} {rate:>14,.0f} {p50:>8.1f} {p99:>8.1f} {busy:>5}", flush=True)
            for procs in args.procs:
                for locked in (False, True):
                    schema = f"bare{procs}{int(locked)}"
                    cluster.sql(f"CREATE SCHEMA {schema}",
                                f"CREATE TABLE {schema}.bare (id serial PRIMARY KEY, v text)")
                    url = cluster.url(schema=schema)
                    cmd = [sys.executable, "-c", BARE, url, str(args.settlements), str(int(locked))]
                    rate, p50, p99, _ = _timed([cmd] * procs)
                    what = "bare+lock" if locked else "bare"
                    print(f"{what:<11} {procs:>5} {rate:>14,.0f} {p50:>8.1f} {p99:>8.1f} {'':>5}", flush=True)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()

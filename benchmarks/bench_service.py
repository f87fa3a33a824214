"""Service benchmark: settlements per second and p50/p99 latency through the HTTP API.

``medaid serve`` (uvicorn, ``--workers`` processes) on a durable ledger (SQLite: WAL,
``synchronous=FULL``; every acknowledged settlement is on disk), driven by 1, 8 and 32
concurrent clients (threads, one keep-alive connection each, :mod:`http.client`: it costs the
shared cores about a quarter of the CPU httpx does) from this process, each sending
``POST /v1/settle`` for claims of 3,000 yuan on ``--persons`` persons, two hospitals' desk tokens
alternating.  The clients run on the same machine as the server: on a small machine they take
CPU from it, so the figures are a floor.  Each level prints the CPU time one settlement cost
the clients, the service's processes and (``--postgresql``) the database's, and the cores' idle
time.  Then the HTTP floor: as many ``GET /v1/health`` (no token, no body, one read of the
database) at 32 clients, what the HTTP stack costs without a settlement.  Afterwards the ledger
is verified (``GET /v1/ledger/verify``).  Targets (docs/service.md#capacity): p99 ≤ 50 ms at
32 clients and ≥ 300 settlements/s on PostgreSQL.

Two kinds of load.  The levels (``--clients``) are closed loops: each client sends its next
claim the moment the last is answered, so the figure is what the service can take, and the
latency is ``clients ÷ throughput`` by construction.  Then, at the largest level, each of
``--rates`` (default 300/s) is an offered load: the clients send on a fixed schedule, as desks
do that do not wait for one another, and a latency is counted from the moment its request was
due (a request held up behind a slow one counts its wait too): the latency desks see at that
load.

    python benchmarks/bench_service.py                         # SQLite in a temporary folder
    python benchmarks/bench_service.py --settlements 200       # a quick check
    python benchmarks/bench_service.py --ledger postgresql://medaid@localhost/county   # another ledger
    python benchmarks/bench_service.py --postgresql            # a throwaway PostgreSQL, durable
    python benchmarks/bench_service.py --postgresql --rates 300,400 --clients 32   # offered loads

``--postgresql`` starts a throwaway cluster of the machine's PostgreSQL (tests/pgcluster.py,
``fsync`` and ``synchronous_commit`` on), serves from it and removes it afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402

from medaid.ledger.backend import redact  # noqa: E402
from medaid.service.store import open_ledger  # noqa: E402
from medaid.service.tokens import TokenStore  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(ledger: str, workers: int, log: Path) -> Iterator[tuple[str, int]]:
    """``medaid serve`` on a free port until the block ends: its URL and its session (process group) id."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with open(log, "w") as out:
        p = subprocess.Popen([sys.executable, "-m", "medaid.cli", "serve", "--ledger", ledger, "--rules",
                              str(ROOT / "rules"), "--port", str(port), "--workers", str(workers)],
                             stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if p.poll() is not None:
                    raise SystemExit(f"medaid serve exited {p.returncode}:\n{log.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit(f"medaid serve did not start:\n{log.read_text()}")
                time.sleep(0.1)
            time.sleep(0.5 * workers)  # let every worker finish starting
            yield url, p.pid
        finally:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(session: int | None = None, parent: int | None = None) -> float:
    """CPU seconds (user + system) used so far by the processes of ``session``, or by ``parent``
    and its children, including their reaped children's."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            f = stat.read_text().rpartition(")")[2].split()
        except (OSError, ValueError):
            continue  # the process ended meanwhile
        ppid, sid = int(f[1]), int(f[3])
        if (session is not None and sid == session) or (parent is not None and parent in (pid, ppid)):
            total += sum(int(x) for x in f[11:15])
    return total / _TICK


def machine_cpu() -> tuple[float, float]:
    """Seconds of CPU time the machine's cores have spent so far: busy, and idle (``/proc/stat``)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks[:8]) - idle) / _TICK, idle / _TICK


def run_level(url: str, secrets: list[str], clients: int, total: int, persons: int, tag: str, *,
              health: bool = False, rate: float | None = None) -> list[float]:
    """``total`` settlements by ``clients`` threads (``health``: ``GET /v1/health`` instead); the
    latency of each, in seconds.

    Without ``rate`` each client sends its next request as soon as the last one is answered
    (closed loop: the clients offer as much as the service takes).  With ``rate`` the clients
    together offer ``rate`` requests a second on a fixed schedule (request ``i`` is due
    ``i / rate`` seconds after the start, client ``i % clients`` sends it), as desks do that
    do not wait for each other; a latency runs from the time a request was due, not from when
    it was sent, so a request held up behind a slow one counts its wait too (no coordinated
    omission)."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    where = urlsplit(url)
    per = [total // clients + (1 if k < total % clients else 0) for k in range(clients)]

    def work(k: int) -> None:
        mine: list[float] = []
        headers = {"Authorization": f"Bearer {secrets[k % len(secrets)]}", "Content-Type": "application/json"}
        c = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=60)
        try:
            for j in range(per[k]):
                body = json.dumps({"claim_id": f"{tag}-{k}-{j}", "person_id": f"B{(k * 7919 + j) % persons:06d}",
                                   "self_pay": "3000", "date": "2024-06-01", "group": "key", "kind": "inpatient"})
                if rate is None:
                    t0 = time.perf_counter()
                else:
                    t0 = start + (j * clients + k) / rate  # when this request is due
                    if (wait := t0 - time.perf_counter()) > 0:
                        time.sleep(wait)
                if health:
                    c.request("GET", "/v1/health")
                else:
                    c.request("POST", "/v1/settle", body, headers)
                r = c.getresponse()
                text = r.read()
                mine.append(time.perf_counter() - t0)
                if r.status != (200 if health else 201):
                    failures.append(f"{r.status} {text[:200]!r}")
        finally:
            c.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    start = time.perf_counter() + 0.05
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--ledger", default=None, help="ledger path or URL (default: a new SQLite file)")
    ap.add_argument("--postgresql", action="store_true",
                    help="serve from a throwaway durable PostgreSQL cluster (tests/pgcluster.py)")
    ap.add_argument("--workers", type=int, default=3, help="uvicorn worker processes")
    ap.add_argument("--clients", default="1,8,32", help="concurrency levels, comma-separated")
    ap.add_argument("--settlements", type=int, default=2000, help="settlements per level")
    ap.add_argument("--persons", type=int, default=5000, help="persons the claims are spread over")
    ap.add_argument("--rates", default="300",
                    help="offered loads (settlements/s, comma-separated; '' for none) to run at the largest "
                         "--clients level on a fixed schedule: the latency desks see at that load")
    ap.add_argument("--no-floor", dest="floor", action="store_false",
                    help="skip the HTTP floor (GET /v1/health at 32 clients)")
    args = ap.parse_args()
    if not args.postgresql:
        bench(args, args.ledger)
        return
    from pgcluster import Cluster, find_bin

    bindir = find_bin()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    cluster = Cluster(bindir, durable=True)
    try:
        postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
        bench(args, cluster.url(), postmaster)
    finally:
        cluster.stop()


def bench(args: argparse.Namespace, target: str | None, postmaster: int | None = None) -> None:
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:  # on the project's disk, not a tmpfs
        ledger = target or str(Path(tmp) / "county.sqlite3")
        with open_ledger(ledger) as lg:
            store = TokenStore(lg)
            secrets = [store.add("desk", "Bench Hospital A")[1], store.add("desk", "Bench Hospital B")[1]]
            admin = store.add("admin")[1]
        print(f"medaid service benchmark  (python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
              f"{args.workers} workers, ledger {'SQLite, synchronous=FULL' if target is None else redact(target)}; "
              f"load average {os.getloadavg()[0]:.1f})")
        print("\n" + "  ".join(f"{h:>{w}}" for h, w in (
            ("clients", 7), ("settlements", 11), ("seconds", 7), ("settlements/s", 13), ("p50 ms", 7),
            ("p99 ms", 7), ("CPU ms per settlement: clients", 30), ("service", 7), ("database", 8), ("idle", 5))))
        tag = f"R{int(time.time())}"
        with serve(ledger, args.workers, Path(tmp) / "serve.log") as (url, session):
            run_level(url, secrets, 2, 40, args.persons, f"{tag}-warm")  # connections, caches, the first page
            def level(name: str, clients: int, health: bool = False, rate: float | None = None) -> None:
                cpu0 = (time.process_time(), tree_cpu(session), tree_cpu(parent=postmaster), machine_cpu()[1])
                t0 = time.perf_counter()
                lat = run_level(url, secrets, clients, args.settlements, args.persons, f"{tag}-{name}",
                                health=health, rate=rate)
                elapsed = time.perf_counter() - t0
                cpu1 = (time.process_time(), tree_cpu(session), tree_cpu(parent=postmaster), machine_cpu()[1])
                per = [(b - a) * 1000 / len(lat) for a, b in zip(cpu0, cpu1, strict=True)]
                q = statistics.quantiles(lat, n=100)
                print(f"{name:>7}  {len(lat):>11,}  {elapsed:>7.2f}  {len(lat) / elapsed:>13.0f}  "
                      f"{statistics.median(lat) * 1000:>7.1f}  {q[98] * 1000:>7.1f}  {per[0]:>30.2f}  "
                      f"{per[1]:>7.2f}  {per[2] if postmaster else float('nan'):>8.2f}  {per[3]:>5.2f}")

            levels = [int(c) for c in args.clients.split(",")]
            for clients in levels:
                level(str(clients), clients)
            rates = [float(r) for r in args.rates.split(",") if r.strip()]
            if rates:
                print(f"\nat an offered load: {max(levels)} clients sending on a fixed schedule, so many "
                      "settlements/s in all (latency from the time each was due):")
                for r in rates:
                    level(f"{r:g}/s", max(levels), rate=r)
            if args.floor:
                print("\nthe HTTP floor: GET /v1/health (no token, no body, one read of the database), "
                      "as many requests, 32 clients; per request:")
                level("32", 32, health=True)
            v = httpx.get(f"{url}/v1/ledger/verify", headers={"Authorization": f"Bearer {admin}"}, timeout=600).json()
        print(f"\nledger verify: {'ok' if v['ok'] else 'PROBLEMS'}, {v['entries']:,} rows"
              + ("" if v["ok"] else f": {v['problems'][:3]}"))


if __name__ == "__main__":
    main()

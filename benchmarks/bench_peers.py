"""medaid side by side with hand-written peer scripts (polars, DuckDB, pandas) on the same files.

    python benchmarks/bench_peers.py [--peers PATH] [--sizes 1m,10m] [--modes A,B]

The peer benchmark is not part of medaid: its folder is ``--peers PATH`` (by default the folder
``bench`` of the folder ``shared`` next to this repository's folder, where the project's
workspace keeps it); the script says so and stops when it is missing.  It holds the data
generator (``gen_claims.py``), the peer scripts, a whole-process timer
(``bench_cmd.py``: wall, CPU, peak memory of the finished child) and an exact per-claim diff
(``compare.py``).  This script does what its ``run_peers.sh`` does with ``PRODUCT_CMD`` set to
medaid, for the sizes and modes asked:

* makes the peers' Python environment if missing (``--venv``, default ``/tmp/benchvenv``, from the
  peers' ``requirements.txt``, as ``run_peers.sh`` does) and generates ``claims_SIZE.csv``
  (``--data``, default ``/tmp/benchdata``; ``--reuse-data`` keeps existing files);
* writes one rule file per mode: A = ``accumulate = "claim"``, B = ``accumulate = "year"``, the
  peers' brackets (70% / 85% / 95% from 1,000 / 10,000 / 50,000 yuan), rounding half-up to the
  fen, annual cap ``--cap`` (100,000);
* times, each with the peers' timer (``--runs`` counted runs after ``--warmup``): polars' read
  plus a ``claim_id,relief``-shaped write (``read_floor.py polars --write``, the issue's "floor"),
  the peer scripts, ``medaid batch`` with the default output and with
  ``--columns claim_id,relief``, and polars' read plus a write of a CSV shaped like medaid's
  default output (``bench_batch.py``'s baseline);
* checks every medaid output against the peers' exact reference with ``compare.py``;
* prints one table per size and mode: the floor, the best peer script, medaid default and with
  ``--columns claim_id,relief`` (median wall, peak memory), the ratios, and the identity result;
  and the load average before and after.

Every figure is the median of the counted runs (`--best`: the least, the run least slowed by other
work on a shared machine); the machine's load shows in the load average.  With ``--interleave``
the commands of a size and mode are timed in rounds, each once a round (``--runs`` rounds after
``--warmup``), so that a machine whose speed drifts over the minutes slows each of them alike
and the ratios compare runs made close together.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The peer benchmark's folder when ``--peers`` is not given (relative to ROOT).
DEFAULT_PEERS = Path("..", "shared", "bench")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch import BASELINE, compile_bytecode  # noqa: E402  (polars' read + a write shaped like medaid's output)

#: The peers' scripts timed at each size (``run_peers.sh``'s fast ones; the pure-Python and
#: OpenFisca scripts take minutes and are never the best).
PEERS = {
    "polars-sort": ["impl_d_polars.py", "--strategy", "sort"],
    "polars-sort-lazy": ["impl_d_polars.py", "--strategy", "sort", "--lazy"],
    "polars-window": ["impl_d_polars.py", "--strategy", "window"],
    "polars-window-lazy": ["impl_d_polars.py", "--strategy", "window", "--lazy"],
    "duckdb": ["impl_e_duckdb.py"],
    "pandas": ["impl_c_pandas.py"],
}
#: Peers left out at sizes of 10 M and more (as ``run_peers.sh``'s ``BIG_IMPLS``).
SMALL_ONLY = {"pandas"}
COLUMNS = "claim_id,relief"

RULES = """id = "peer-bench-{mode}"
version = "1"
valid_from = 2000-01-01
rounding = {{ unit = "fen", method = "half-up" }}

[[plans]]
name = "peer"
default = true
pool = "all"
accumulate = "{accumulate}"
mode = "marginal"
annual_cap = "{cap}"
brackets = [
  {{ from = "1000",  to = "10000", rate = "70%" }},
  {{ from = "10000", to = "50000", rate = "85%" }},
  {{ from = "50000",               rate = "95%" }},
]
"""


def rows_of(size: str) -> int:
    s = size.lower()
    if s.endswith("k"):
        return int(s[:-1]) * 1_000
    if s.endswith("m"):
        return int(s[:-1]) * 1_000_000
    return int(s)


def medaid_command() -> list[str]:
    """``medaid`` of this interpreter's environment, else ``python -m medaid.cli``."""
    exe = Path(sys.executable).with_name("medaid")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "medaid.cli"]


class Bench:
    def __init__(self, a: argparse.Namespace, peers: Path) -> None:
        self.a, self.peers = a, peers
        self.py = str(Path(a.venv) / "bin" / "python")
        self.out = Path(a.out)
        self.results = self.out / "results.jsonl"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def time(self, label: str, rows: int, cmd: list[str], *, env: dict[str, str] | None = None,
             runs: int | None = None, warmup: int | None = None) -> dict:
        """One timer call (``bench_cmd.py``; ``--runs`` counted runs after ``--warmup`` unless
        given): its JSON record."""
        subprocess.run([self.py, str(self.peers / "bench_cmd.py"), "--out", str(self.results),
                        "--label", label, "--rows", str(rows),
                        "--runs", str(self.a.runs if runs is None else runs),
                        "--warmup", str(self.a.warmup if warmup is None else warmup), "--", *cmd],
                       check=False, env=env)
        with open(self.results, encoding="utf-8") as f:
            rec = json.loads(f.readlines()[-1])
        if rec["label"] != label:
            raise SystemExit(f"the timer wrote no record for {label}")
        return rec

    def jobs(self, rows: int, jobs: list[tuple[str, str, list[str], dict[str, str] | None]]) -> dict[str, dict]:
        """Time each job ``(key, label, command, env)``: one timer call each (its runs one after
        the other), or with ``--interleave`` in rounds, each job once a round in the order given,
        so that every command meets the machine's drift alike; the rounds' runs are then merged
        into one record per job (``[least, median, greatest]``, as the timer gives them)."""
        if not self.a.interleave:
            return {key: self.time(label, rows, cmd, env=env) for key, label, cmd, env in jobs}
        for r in range(self.a.warmup):
            for _key, label, cmd, env in jobs:
                self.time(f"{label} (warm-up {r + 1})", rows, cmd, env=env, runs=1, warmup=0)
        runs: dict[str, list[dict]] = {key: [] for key, *_ in jobs}
        for r in range(self.a.runs):
            for key, label, cmd, env in jobs:
                runs[key].append(self.time(f"{label} (round {r + 1})", rows, cmd, env=env, runs=1, warmup=0))
        return {key: merged(recs) for key, recs in runs.items()}


def merged(recs: list[dict]) -> dict:
    """One timer record of several single-run records of the same command."""
    def spread(name: str) -> list[float]:
        values = sorted(r[name][0] for r in recs)
        return [values[0], statistics.median(values), values[-1]]
    return {**recs[-1], "runs": len(recs), "wall_s": spread("wall_s"), "cpu_s": spread("cpu_s"),
            "peak_mib": spread("peak_mib"), "exit_codes": [c for r in recs for c in r["exit_codes"]]}


def ensure_venv(a: argparse.Namespace, peers: Path) -> None:
    py = Path(a.venv) / "bin" / "python"
    if py.exists():
        return
    print(f"== creating the peers' environment {a.venv} from {peers / 'requirements.txt'}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", a.venv], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(peers / "requirements.txt")], check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", default=str(DEFAULT_PEERS),
                    help="the peer benchmark's folder (relative: to this repository's root)")
    ap.add_argument("--sizes", default="1m,10m")
    ap.add_argument("--modes", default="A,B")
    ap.add_argument("--cap", default="100000", help="annual cap in yuan (default 100000)")
    ap.add_argument("--runs", type=int, default=3, help="counted runs of each command (default 3)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--venv", default=os.environ.get("VENV", "/tmp/benchvenv"))
    ap.add_argument("--data", default=os.environ.get("DATA", "/tmp/benchdata"))
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/medaid-bench-peers"))
    ap.add_argument("--reuse-data", action="store_true", help="keep existing claims_SIZE.csv files")
    ap.add_argument("--seed", default="20250101")
    ap.add_argument("--scripts", default=",".join(PEERS),
                    help=f"peer scripts to time, comma-separated (default: all of {', '.join(PEERS)})")
    ap.add_argument("--interleave", action="store_true",
                    help="time in rounds: at each size and mode every command once a round (the peer "
                         "scripts, medaid default and --columns, polars' read + same-shaped write), "
                         "--runs rounds after --warmup rounds, instead of each command's runs one "
                         "after the other: a machine whose speed drifts slows them alike")
    ap.add_argument("--best", action="store_true",
                    help="show each command's best (least) wall time and CPU instead of the median: "
                         "on a shared machine, the run least slowed by other work")
    a = ap.parse_args(argv)
    stat = 0 if a.best else 1  # the timer's record: [min, median, max]

    peers = Path(a.peers)
    if not peers.is_absolute():
        peers = (ROOT / peers).resolve()
    need = ["gen_claims.py", "bench_cmd.py", "compare.py", "read_floor.py", "requirements.txt"]
    if not peers.is_dir() or any(not (peers / f).exists() for f in need):
        print(f"bench_peers: the peer benchmark folder {peers} is missing (or lacks {', '.join(need)});\n"
              "it is not part of medaid: pass its path with --peers PATH", file=sys.stderr)
        return 2
    ensure_venv(a, peers)
    print(f"== {compile_bytecode()}", flush=True)
    b = Bench(a, peers)
    b.out.mkdir(parents=True, exist_ok=True)
    Path(a.data).mkdir(parents=True, exist_ok=True)
    if b.results.exists():
        b.results.unlink()
    modes = [m.strip().upper() for m in a.modes.split(",") if m.strip()]
    rules = {}
    for m in modes:
        rules[m] = b.out / f"peer-mode-{m}.toml"
        rules[m].write_text(RULES.format(mode=m, accumulate="claim" if m == "A" else "year", cap=a.cap),
                            encoding="utf-8")
    load_before = os.getloadavg()
    tables = []
    for size in [s.strip() for s in a.sizes.split(",") if s.strip()]:
        n = rows_of(size)
        src = Path(a.data) / f"claims_{size}.csv"
        if not (a.reuse_data and src.exists()):
            print(f"== generating {src}", flush=True)
            subprocess.run([b.py, str(peers / "gen_claims.py"), str(n), str(src), "--seed", a.seed], check=True)
        floor = b.time(f"rw:polars {size}", n, [b.py, str(peers / "read_floor.py"), "polars", str(src),
                                                "--write", str(b.out / f"rw_{size}.csv")])
        for m in modes:
            jobs: list[tuple[str, str, list[str], dict[str, str] | None]] = []
            for name, script in PEERS.items():
                if name not in a.scripts.split(",") or (name in SMALL_ONLY and n >= 10_000_000):
                    continue
                if not (peers / script[0]).exists():
                    continue
                out = b.out / f"res_{size}_{name}_{m}.csv"
                jobs.append((name, f"{m}:{name} {size}", [
                    b.py, str(peers / script[0]), str(src), str(out), "--mode", m, "--cap", a.cap, *script[1:]], None))
            base = [*medaid_command(), "batch", str(src), "--rules", str(rules[m]), "--no-bom"]
            full_out = b.out / f"medaid_{size}_{m}.csv"
            cols_out = b.out / f"medaid_{size}_{m}_columns.csv"
            jobs += [
                ("\0full", f"{m}:medaid {size}", [*base, "-o", str(full_out)], b.env),
                ("\0cols", f"{m}:medaid --columns {size}", [*base, "-o", str(cols_out), "--columns", COLUMNS], b.env),
                # (after medaid's default run, whose output gives its shape)
                ("\0shaped", f"rw17:polars {size} {m}", [
                    b.py, "-c", BASELINE, str(src), str(b.out / f"rw17_{size}.csv"), str(full_out)], None),
            ]
            recs = b.jobs(n, jobs)
            full, cols, shaped = recs.pop("\0full"), recs.pop("\0cols"), recs.pop("\0shaped")
            ok = {k: r for k, r in recs.items() if set(r["exit_codes"]) == {0}}
            if not ok:
                raise SystemExit(f"no peer script ran at {size} mode {m}")
            best = min(ok, key=lambda k: ok[k]["wall_s"][stat])
            ref = next(b.out / f"res_{size}_{k}_{m}.csv" for k in ("duckdb", "polars-sort", best) if k in ok)
            same = subprocess.run([b.py, str(peers / "compare.py"), str(ref), str(full_out), str(cols_out)],
                                  capture_output=True, text=True, check=False)
            tables.append((size, m, floor, best, ok[best], full, cols, shaped, ref, same.stdout.strip()))
    load_after = os.getloadavg()

    def w(r: dict) -> float:
        return float(r["wall_s"][stat])

    def c(r: dict) -> str:  # CPU seconds (user + sys): what the machine's load shifts least
        return f"cpu {r['cpu_s'][stat]:.2f} s"

    def mem(r: dict) -> str:
        return f"{r['peak_mib'][stat]:,.0f} MiB"

    what = "best" if a.best else "median"
    print()
    print(f"wall: {what} of the runs; cpu: the runs' {what} user + system seconds; memory: {what} peak")
    print("| claims | mode | polars read+write floor | best peer script | medaid batch (default) | "
          "medaid --columns claim_id,relief | columns / best peer | default / polars read+same-shaped write |"
          " per-claim identity (compare.py) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, m, floor, best, bestr, full, cols, shaped, _ref, same in tables:
        ident = "; ".join(line.split(":")[0].split()[0] + " " + Path(line.split(":")[0].split()[1]).name
                          for line in same.splitlines())
        print(f"| {size} | {m} | {w(floor):.2f} s ({c(floor)}) | {w(bestr):.2f} s ({best}; {c(bestr)}), "
              f"{mem(bestr)} | {w(full):.2f} s ({c(full)}), {mem(full)} | {w(cols):.2f} s ({c(cols)}), "
              f"{mem(cols)} | {w(cols) / w(bestr):.2f}x | {w(full) / w(shaped):.2f}x (floor {w(shaped):.2f} s, "
              f"{c(shaped)}) | {ident} |")
    print()
    for size, m, *_rest, ref, same in tables:
        print(f"compare.py {size} {m} against {Path(ref).name}:\n{same}")
    how = (f"{a.runs} interleaved rounds after {a.warmup} warm-up round(s)" if a.interleave
           else f"{a.runs} runs after {a.warmup} warm-up")
    print(f"\n{what} of {how}; load average before "
          f"{' '.join(f'{x:.2f}' for x in load_before)}, after {' '.join(f'{x:.2f}' for x in load_after)} "
          f"({os.cpu_count()} CPUs); timer records in {b.results}")
    if shutil.which("uptime"):
        subprocess.run(["uptime"], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

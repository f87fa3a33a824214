"""Before/after: a baseline revision against the working tree (or another revision), in the same run.

    python benchmarks/before_after.py --before main                   # 3-5 min on 2 busy cores
    python benchmarks/before_after.py --before v0.1 --after HEAD --rounds 3
    python benchmarks/before_after.py --before main --full            # the benchmarks' full sizes
    python benchmarks/before_after.py --before main --claims 5000 --rounds 1   # a smoke test

What a change that must not change speed or results is checked with:

1. **Speed.**  The baseline (``--before REV``) is checked out into a temporary git worktree
   (``git worktree add --detach``, removed at the end); the other side is this working tree, or
   ``--after REV`` checked out the same way.  Each side's own ``benchmarks/bench_batch.py`` and
   ``benchmarks/bench_desk.py`` run with that side's ``src`` first on ``PYTHONPATH`` and this
   interpreter (``sys.executable``).  A side whose scripts have no ``--json`` (revisions older
   than that option) is measured with the scripts of the tree this file is in, copied into its
   worktree: the same measuring code, that side's library.  The two sides alternate, ``--rounds`` times, the
   side that goes first swapping each round (A B, B A, A B, ...), so that drift of a shared,
   loaded machine falls on both; both read the same generated claims file.  Each figure is the
   median over the rounds; a judged figure passes when after / before is within ``--tolerance``
   (5 %) of 1 or better (``BETTER`` when it improved by more).  Figures marked ``info`` are shown,
   not judged (the polars baseline of ``bench_batch.py`` measures the machine's drift itself).
2. **Results.**  The results CSV ``bench_batch.py`` wrote in every round, on both sides, must be
   byte-identical; and the ``medaid`` commands of the Makefile's ``demo`` target (rules check,
   batch, report, settle) run on both sides with the same inputs (the after tree's ``examples/``
   and ``rules/``), one side after the other into the same folder (the report names its input
   file): what they print must be the same (ISO timestamps masked: the desk prints when it
   recorded) and every file they write byte-identical (an ISO timestamp in an HTML file would be
   masked: none is written today), except the desk ledger (SQLite, holds the time of settlement).
3. **Sizes.**  Lines per module under ``src/medaid`` on both sides, the largest, and the
   ``duplicates`` tool's summary of the after tree (when it is on PATH).

Exits 0 when every judged figure passes and every output is identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("bench_batch.py", "bench_desk.py")
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?")


@dataclass
class Side:
    name: str                 # "before" or "after"
    root: Path                # its tree
    label: str                # what it is, for the header
    worktree: bool = False    # a temporary worktree of ours, removed at the end
    scripts_from: str = "own"
    batch: list[dict[str, Any]] = field(default_factory=list)
    desk: list[dict[str, Any]] = field(default_factory=list)
    results: list[str] = field(default_factory=list)   # sha256 of each round's results CSV

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDAID_")}
        env["PYTHONPATH"] = str(self.root / "src")
        return env


def say(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def git(*args: str) -> str:
    p = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout.strip()


def describe(rev: str) -> str:
    return git("log", "-1", "--format=%h %s", rev)[:100]


def run(cmd: list[str], side: Side, cwd: Path | None = None) -> str:
    """Run ``cmd`` for ``side``; its stdout.  A failure ends the comparison with its stderr."""
    p = subprocess.run(cmd, cwd=cwd, env=side.env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{side.name}: {' '.join(cmd[:3])} ... failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p.stdout


def has_json(script: Path, side: Side) -> bool:
    return "--json" in run([sys.executable, str(script), "--help"], side)


def checkout(rev: str, where: Path, name: str) -> Side:
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    git("worktree", "add", "--detach", str(where), commit)
    return Side(name, where, f"{rev} = {describe(commit)}", worktree=True)


def working_tree() -> Side:
    dirty = " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return Side("after", ROOT, f"working tree {ROOT} at {describe('HEAD')}{dirty}")


def bench_batch_module() -> Any:
    """This tree's bench_batch.py, for the name and generation of its input file (reused, not copied)."""
    spec = importlib.util.spec_from_file_location("bench_batch", ROOT / "benchmarks" / "bench_batch.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------- figures

@dataclass(frozen=True)
class Metric:
    name: str
    get: Callable[[Side], list[float]]
    higher_is_better: bool = False
    judged: bool = True
    fmt: str = "{:,.2f}"


def of(rounds: str, *keys: str) -> Callable[[Side], list[float]]:
    def get(side: Side) -> list[float]:
        out = []
        for doc in getattr(side, rounds):
            for k in keys:
                doc = doc[k]
            out.append(float(doc))  # type: ignore[arg-type]
        return out
    return get


METRICS = [
    Metric("batch wall s", of("batch", "medaid", "wall_s")),
    Metric("batch claims/s", of("batch", "medaid", "claims_per_s"), higher_is_better=True, fmt="{:,.0f}"),
    Metric("batch peak MiB", of("batch", "medaid", "peak_mib"), fmt="{:,.0f}"),
    Metric("desk settle median ms", of("desk", "commands", "settle", "median_ms"), fmt="{:,.1f}"),
    Metric("desk settle p95 ms", of("desk", "commands", "settle", "p95_ms"), fmt="{:,.1f}"),
    Metric("batch cpu s", of("batch", "medaid", "cpu_s"), judged=False),
    Metric("polars read+write wall s", of("batch", "polars", "wall_s"), judged=False),
    Metric("batch / polars wall", of("batch", "ratio_wall"), judged=False),
    Metric("desk import medaid ms", of("desk", "commands", "import", "median_ms"), judged=False, fmt="{:,.1f}"),
    Metric("desk medaid --help ms", of("desk", "commands", "help", "median_ms"), judged=False, fmt="{:,.1f}"),
    Metric("desk history median ms", of("desk", "commands", "history", "median_ms"), judged=False, fmt="{:,.1f}"),
    Metric("ledger FULL settlements/s", of("desk", "throughput_per_s", "full"), higher_is_better=True,
           judged=False, fmt="{:,.0f}"),
]


def verdict(ratio: float, higher_is_better: bool, tolerance: float) -> str:
    """PASS within the tolerance, BETTER beyond it on the good side, FAIL beyond it on the bad side."""
    worse = ratio < 1 - tolerance if higher_is_better else ratio > 1 + tolerance
    better = ratio > 1 + tolerance if higher_is_better else ratio < 1 - tolerance
    return "FAIL" if worse else "BETTER" if better else "PASS"


def table(rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def figures(before: Side, after: Side, tolerance: float) -> tuple[str, int]:
    """The table of medians over the rounds, and how many judged figures failed."""
    rows = [["metric", "before (min-max)", "after (min-max)", "after/before", f"±{tolerance:.0%}"]]
    failed = 0
    for m in METRICS:
        b, a = m.get(before), m.get(after)
        if not b or not a:
            continue
        mb, ma = statistics.median(b), statistics.median(a)
        ratio = ma / mb if mb else float("nan")
        v = verdict(ratio, m.higher_is_better, tolerance) if m.judged else "info"
        failed += v == "FAIL"

        def cell(xs: list[float], med: float, fmt: str = m.fmt) -> str:
            spread = f" ({fmt.format(min(xs))}-{fmt.format(max(xs))})" if len(xs) > 1 else ""
            return fmt.format(med) + spread

        rows.append([m.name, cell(b, mb), cell(a, ma), f"{ratio:.3f}", v])
    return table(rows, {1, 2, 3}), failed


# --------------------------------------------------------------------------- outputs

def demo_commands(makefile: Path) -> list[list[str]]:
    """The arguments of every ``$(BIN)/medaid`` command of the Makefile's ``demo`` recipe."""
    m = re.search(r"^demo:.*\n((?:\t.*\n?)+)", makefile.read_text(encoding="utf-8"), re.M)
    if not m:
        raise SystemExit(f"{makefile}: no demo target")
    cmds = []
    for line in m.group(1).replace("\\\n", " ").splitlines():
        words = shlex.split(line.strip().lstrip("@"))
        if words and words[0] == "$(BIN)/medaid":
            cmds.append(words[1:])
    return cmds


def masked(data: bytes) -> tuple[bytes, int]:
    """``data`` with ISO timestamps replaced; and how many there were."""
    text, n = ISO_TIME.subn("<time>", data.decode("utf-8", "surrogateescape"))
    return text.encode("utf-8", "surrogateescape"), n


def demo(side: Side, inputs: Path, out: Path) -> tuple[list[tuple[int, bytes]], dict[str, bytes]]:
    """Run the demo's commands for ``side`` (inputs from ``inputs``, outputs to ``out``): each
    command's exit code and output (timestamps masked), and the files written.  Both sides write
    to the same ``out`` in turn: the report names its input file, so a folder of another name
    would show as a difference."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    printed = []
    for args in demo_commands(inputs / "Makefile"):
        args = [a.replace("out/", f"{out}/") for a in args]
        p = subprocess.run([sys.executable, "-m", "medaid.cli", *args], cwd=inputs, env={**side.env, "TZ": "UTC"},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        printed.append((p.returncode, masked(p.stdout)[0]))
    return printed, {f.name: f.read_bytes() for f in sorted(out.iterdir()) if f.is_file()}


def compare_demo(before: Side, after: Side, work: Path) -> tuple[list[str], int]:
    """Lines describing the demo comparison, and the number of differences."""
    cmds = demo_commands(after.root / "Makefile")
    pb, fb = demo(before, after.root, work / "demo")
    pa, fa = demo(after, after.root, work / "demo")
    lines, bad = [], 0
    for args, b, a in zip(cmds, pb, pa):
        same = b == a
        bad += not same
        what = "same" if same else f"DIFFERENT (exit {b[0]} / {a[0]})"
        lines.append(f"  medaid {' '.join(args[:2])} ...: exit {a[0]}, output {what}")
    for name in sorted(set(fb) | set(fa)):
        if name not in fb or name not in fa:
            bad += 1
            lines.append(f"  {name}: written by {'after' if name in fa else 'before'} only")
        elif re.search(r"\.sqlite3(-wal|-shm)?$", name):
            lines.append(f"  {name}: not compared (the ledger holds the time of settlement)")
        else:
            xb, xa, n = fb[name], fa[name], 0
            if name.endswith(".html"):
                (xb, _), (xa, n) = masked(xb), masked(xa)
            same = xb == xa
            bad += not same
            note = f", {n} timestamp(s) masked" if n else ""
            lines.append(f"  {name}: {len(fa[name]):,} bytes, {'byte-identical' if same else 'DIFFERENT'}{note}")
    return lines, bad


# --------------------------------------------------------------------------- sizes

def module_sizes(root: Path) -> dict[str, int]:
    pkg = root / "src" / "medaid"
    return {str(p.relative_to(pkg)): len(p.read_text(encoding="utf-8").splitlines())
            for p in sorted(pkg.rglob("*.py")) if "__pycache__" not in p.parts}


def sizes(before: Side, after: Side) -> str:
    sb, sa = module_sizes(before.root), module_sizes(after.root)
    rows = [["module (src/medaid)", "before", "after"]]
    rows += [[m, f"{sb[m]:,}" if m in sb else "-", f"{sa[m]:,}" if m in sa else "-"] for m in sorted(set(sb) | set(sa))]
    rows.append(["total", f"{sum(sb.values()):,} in {len(sb)}", f"{sum(sa.values()):,} in {len(sa)}"])
    big_b, big_a = max(sb, key=sb.__getitem__), max(sa, key=sa.__getitem__)
    return table(rows, {1, 2}) + (f"\nlargest: before {big_b} ({sb[big_b]:,} lines), "
                                  f"after {big_a} ({sa[big_a]:,} lines)")


def duplicates(after: Side, most: int) -> str:
    tool = shutil.which("duplicates")
    if tool is None:
        return "duplicates: not on PATH (nothing to show)"
    out = []
    for where in (after.root, after.root / "src" / "medaid"):
        p = subprocess.run([tool, "--repo", str(where), "--most", str(most)], capture_output=True, text=True)
        out.append(f"$ duplicates --repo {where} --most {most}\n{(p.stdout + p.stderr).rstrip()}")
    return "\n".join(out)


# --------------------------------------------------------------------------- the run

def prepare(side: Side) -> None:
    """Check the side imports its own medaid, and that its scripts print JSON (else use this tree's);
    compile its bytecode, so that neither side pays for compiling at each start
    (``bench_batch.compile_bytecode``)."""
    where = run([sys.executable, "-c", "import medaid; print(medaid.__file__)"], side).strip()
    if not Path(where).resolve().is_relative_to((side.root / "src").resolve()):
        raise SystemExit(f"{side.name}: medaid is imported from {where}, not from {side.root / 'src'}")
    bench_batch_module().compile_bytecode(side.root / "src")
    bench = side.root / "benchmarks"
    if all((bench / s).exists() and has_json(bench / s, side) for s in SCRIPTS):
        return
    if not side.worktree:
        raise SystemExit(f"{side.name}: {bench} lacks bench scripts with --json")
    bench.mkdir(exist_ok=True)
    for s in SCRIPTS:
        shutil.copy2(ROOT / "benchmarks" / s, bench / s)
    side.scripts_from = f"copied from {ROOT / 'benchmarks'} (its own lack --json)"


def one_round(side: Side, a: argparse.Namespace, work: Path, what: str) -> None:
    bench = side.root / "benchmarks"
    if what == "batch":
        cmd = [sys.executable, str(bench / "bench_batch.py"), "--claims", str(a.claims), "--seed", str(a.seed),
               "--repeat", "1", "--workdir", str(work / f"batch-{side.name}"), "--json"]
        if a.persons:
            cmd += ["--persons", str(a.persons)]
        doc = json.loads(run(cmd, side))
        side.batch.append(doc)
        side.results.append(hashlib.sha256(Path(doc["results"]).read_bytes()).hexdigest())
        say(f"  batch {side.name:<6}: {doc['medaid']['wall_s']:6.2f} s, {doc['medaid']['peak_mib']} MiB "
            f"(polars {doc['polars']['wall_s']:.2f} s)")
    else:
        doc = json.loads(run([sys.executable, str(bench / "bench_desk.py"), "--runs", str(a.desk_runs),
                              "--settlements", str(a.desk_settlements), "--rows", str(a.desk_rows), "--json"], side))
        side.desk.append(doc)
        s = doc["commands"]["settle"]
        say(f"  desk  {side.name:<6}: settle median {s['median_ms']:.1f} ms, p95 {s['p95_ms']:.1f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--before", required=True, metavar="REV", help="the baseline revision (e.g. main, a commit)")
    ap.add_argument("--after", default=None, metavar="REV", help="default: this working tree, as it is")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of before and after (default 5)")
    ap.add_argument("--tolerance", type=float, default=0.05, help="allowed after/before change (default 0.05)")
    ap.add_argument("--claims", type=int, default=200_000, help="bench_batch.py claims (default 200,000)")
    ap.add_argument("--persons", type=int, default=None, help="bench_batch.py persons (default claims / 8)")
    ap.add_argument("--seed", type=int, default=20240101)
    ap.add_argument("--desk-runs", type=int, default=9, help="bench_desk.py --runs (default 9)")
    ap.add_argument("--desk-settlements", type=int, default=200, help="bench_desk.py --settlements (default 200)")
    ap.add_argument("--desk-rows", type=int, default=1000, help="bench_desk.py --rows (default 1,000)")
    ap.add_argument("--full", action="store_true",
                    help="the benchmarks' full sizes: 1,000,000 claims; desk 21 runs, 2,000 settlements, 10,000 rows")
    ap.add_argument("--skip", choices=("batch", "desk", "outputs"), action="append", default=[],
                    help="leave out a part (repeatable)")
    ap.add_argument("--duplicates-most", type=int, default=8, help="rows of `duplicates` output (default 8)")
    ap.add_argument("--workdir", default=None, help="where the worktree and outputs go (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the worktree(s) and outputs")
    a = ap.parse_args()
    if a.full:
        a.claims, a.desk_runs, a.desk_settlements, a.desk_rows = 1_000_000, 21, 2000, 10_000

    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="medaid-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    sides: list[Side] = []
    try:
        before = checkout(a.before, work / "before", "before")
        sides.append(before)
        after = checkout(a.after, work / "after", "after") if a.after else working_tree()
        sides.append(after)
        for side in sides:
            prepare(side)
        load = os.getloadavg()
        print(f"before: {before.label}\n        {before.root}; scripts: {before.scripts_from}")
        print(f"after:  {after.label}\n        {after.root}; scripts: {after.scripts_from}")
        print(f"python {sys.executable}; {os.cpu_count()} CPUs; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        parts = [p for p in ("batch", "desk") if p not in a.skip]
        print(f"{a.rounds} round(s): " + "; ".join(
            {"batch": f"batch {a.claims:,} claims (seed {a.seed})",
             "desk": f"desk {a.desk_runs} commands, {a.desk_settlements:,} settlements, "
                     f"ledger of {a.desk_rows:,} rows"}[p] for p in parts))
        if "batch" in parts:
            src, said = bench_batch_module().ensure_input(a.claims, a.seed, a.persons)
            say(said)
            for side in sides:          # both sides' bench_batch.py find it under the same name
                link = side.root / "benchmarks" / "data" / src.name
                if link.resolve() != src.resolve():
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.unlink(missing_ok=True)
                    link.symlink_to(src)
        for r in range(a.rounds if parts else 0):
            order = sides if r % 2 == 0 else sides[::-1]
            say(f"round {r + 1}/{a.rounds}: {' then '.join(s.name for s in order)}")
            for what in parts:
                for side in order:
                    one_round(side, a, work, what)

        bad = 0
        if parts:
            text, failed = figures(before, after, a.tolerance)
            bad += failed
            print(f"\n== speed: medians of {a.rounds} round(s), after/before ==\n{text}")
        print("\n== outputs ==")
        if "batch" in parts:
            inputs = {Path(doc["input"]).resolve() for s in sides for doc in s.batch}
            rules = {(work / f"batch-{s.name}" / "bench-rules.toml").read_bytes() for s in sides}
            same = len({h for s in sides for h in s.results}) == 1
            bad += not same
            print(f"  bench_batch results CSV, {a.claims:,} claims, {a.rounds} round(s) x 2: "
                  f"{'byte-identical' if same else 'DIFFERENT'} (sha256 {after.results[0][:16]}); "
                  f"same input file: {len(inputs) == 1}, same rules: {len(rules) == 1}")
            bad += len(inputs) != 1 or len(rules) != 1
        if "outputs" not in a.skip:
            lines, diff = compare_demo(before, after, work)
            bad += diff
            print("  make demo's commands (inputs: the after tree's examples/ and rules/):")
            print("\n".join(lines))
        print(f"\n== module sizes (lines) ==\n{sizes(before, after)}")
        print(f"\n== duplicates (after) ==\n{duplicates(after, a.duplicates_most)}")
        lb = os.getloadavg()
        print(f"\nload average at the end {lb[0]:.2f} {lb[1]:.2f} {lb[2]:.2f}")
        print("ALL PASS, outputs identical" if not bad else f"{bad} FAILED (figures beyond ±{a.tolerance:.0%} "
              "or outputs that differ)")
        return 1 if bad else 0
    finally:
        for side in sides:
            if side.worktree and not a.keep:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(side.root)],
                               capture_output=True)
        if not a.keep:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], capture_output=True)
            if a.workdir is None:
                shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"kept in {work}")


if __name__ == "__main__":
    sys.exit(main())

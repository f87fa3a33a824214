"""Benchmark: ``medaid batch`` on the shipped rule file and on each rule of docs/calculation.md
*Rules real schemes need* on its own, in claims per second, in one run.

    python benchmarks/bench_extended.py --claims 200000
    python benchmarks/bench_extended.py --claims 1000000 --repeat 3 --main /work/main

Generates seeded claims for the shipped rule file (rules/chongqing-county-2019.toml: 2019, groups
key / low-income, kinds inpatient / outpatient-special; skewed persons, three persons to a
household, lognormal self-pay) and times ``medaid batch claims.csv -o results.csv`` (start-up
included), each run in its own child process, best of ``--repeat``:

* ``shipped``: the shipped rule file (no rule of *Rules real schemes need*: the columnar batch);
  with ``--main PATH``, the same command run from that checkout's ``src`` as well (e.g. the
  ``main`` branch), alternating with this one, so that the two are measured under one load;
* one variant of the shipped file per new rule, each settled by the scalar engine inside the
  batch (docs/columnar.md, *Extended rule sets*): ``attributes`` (a hospital-level attribute the
  key recipients' inpatient plan matches on), ``grant`` (the low-income inpatient plan pays a
  fixed grant per year), ``shared caps`` (the key recipients' inpatient and outpatient plans share
  a cap pool per person), ``household caps`` (every plan bound by a cap pool per household),
  ``second stage`` (a second stage on the key recipients' inpatient plan).

The variants read a file with three more columns (household id, non-compliant cost, hospital
level), the shipped run one without them.  It prints, per case, the wall time, claims per second
and the cost relative to the shipped file on this code, with the machine's load average before and
after (``os.getloadavg``).  Needs numpy for the data generation.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "rules" / "chongqing-county-2019.toml"


def _without_examples(text: str) -> str:
    """The rule file without its plans' worked examples (a variant changes what a plan pays)."""
    return re.sub(r"\nexamples = \[\n.*?\n\]\n", "\n", text, flags=re.S)


def _plan_block(text: str, name: str) -> tuple[int, int]:
    """Where the ``[[plans]]`` block of plan ``name`` starts and ends in ``text``."""
    start = text.index(f'name = "{name}"')
    start = text.rindex("[[plans]]", 0, start)
    end = text.find("[[plans]]", start + 1)
    return start, len(text) if end < 0 else end


def _edit_plan(text: str, name: str, edit) -> str:
    a, b = _plan_block(text, name)
    return text[:a] + edit(text[a:b]) + text[b:]


def _with_caps(block: str, names: str) -> str:
    return re.sub(r'(\npool = "[^"]+")', r"\1\ncaps = [" + names + "]", block, count=1)


def variants() -> dict[str, str]:
    """The rule files of the benchmark: the shipped one, and one variant per new rule."""
    shipped = SHIPPED.read_text(encoding="utf-8")
    base = _without_examples(shipped)
    attrs = base.replace("\n[[plans]]", '\n[attributes.level]\ncolumns = ["hospital_level"]\n'
                         'values = { primary = ["一级"], secondary = ["二级"], tertiary = ["三级"] }\n\n[[plans]]', 1)
    attrs = _edit_plan(attrs, "key-inpatient", lambda b: b.replace(
        'match = { group = ["key"], kind = ["inpatient"] }',
        'match = { group = ["key"], kind = ["inpatient"], level = ["primary", "secondary", "tertiary"] }'))

    def grant(block: str) -> str:
        block = re.sub(r'\naccumulate = "[a-z]+"|\nmode = "[a-z]+"', "", block)
        return re.sub(r"\nbrackets = \[\n.*?\n\]\n", '\ngrant = { amount = "5000", per = "year" }\n', block, flags=re.S)

    caps_head = '\n[caps.{n}]\nannual = "{a}"\nper = "{p}"\n\n[[plans]]'
    shared = base.replace("\n[[plans]]", caps_head.format(n="medical", a="100000", p="person"), 1)
    for plan in ("key-inpatient", "key-outpatient-special"):
        shared = _edit_plan(shared, plan, lambda b: _with_caps(b, '"medical"'))
    household = base.replace("\n[[plans]]", caps_head.format(n="household", a="150000", p="household"), 1)
    for plan in ("key-inpatient", "key-outpatient-special", "low-income-inpatient"):
        household = _edit_plan(household, plan, lambda b: _with_caps(b, '"household"'))
    second = _edit_plan(base, "key-inpatient", lambda b: b.rstrip("\n") + (
        '\n\n[plans.second]\npool = "burden"\naccumulate = "year"\nannual_cap = "20000"\n'
        'brackets = [ { from = "5000", rate = "50%" } ]\n\n'))
    return {"shipped": shipped, "attributes": attrs, "grant": _edit_plan(base, "low-income-inpatient", grant),
            "shared caps": shared, "household caps": household, "second stage": second}


def generate(n: int, folder: Path, seed: int = 15) -> tuple[Path, Path]:
    """``claims.csv`` (the shipped file's columns) and ``claims-more.csv`` (with household id,
    non-compliant cost and hospital level), ``n`` claims of 2019 each."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    persons = max(n // 5, 1)
    person = np.minimum(rng.zipf(1.3, n) - 1, persons - 1) if n > 1 else np.zeros(n, dtype=np.int64)
    person = (person * 2_654_435_761) % persons  # skewed, but not the low ids first
    days = rng.integers(0, 365, n)
    fen = np.minimum(np.round(rng.lognormal(8.6, 1.1, n) * 100), 99_999_999).astype(np.int64)
    inpatient = rng.random(n) < 0.6
    key = rng.random(n) < 0.7
    date = (np.datetime64("2019-01-01") + days).astype("datetime64[D]").astype(str)
    frame = pl.DataFrame({
        "claim_id": [f"C{i:09d}" for i in rng.permutation(n)],
        "person_id": [f"P{p:08d}" for p in person],
        "date": date,
        "self_pay": [f"{f // 100}.{f % 100:02d}" for f in fen],
        "group": np.where(key | ~inpatient, "key", "low-income"),
        "kind": np.where(inpatient, "inpatient", "outpatient-special"),
    })
    nc = rng.integers(0, 200_000, n)
    more = frame.with_columns(
        pl.Series("household_id", [f"H{p // 3:08d}" for p in person]),
        pl.Series("non_compliant", [f"{x // 100}.{x % 100:02d}" for x in nc]),
        pl.Series("hospital_level", np.array(["一级", "二级", "三级"])[rng.integers(0, 3, n)]),
    )
    a, b = folder / "claims.csv", folder / "claims-more.csv"
    frame.write_csv(a)
    more.write_csv(b)
    return a, b


def timed(src: Path, claims: Path, rules: Path, out: Path) -> float:
    """Wall seconds of ``medaid batch claims -o out --rules rules`` with ``src`` first on the path."""
    env = dict(os.environ, PYTHONPATH=str(src))
    out.unlink(missing_ok=True)
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "medaid.cli", "batch", str(claims), "-o", str(out),
                           "--rules", str(rules)], env=env, capture_output=True, text=True)
    took = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"medaid batch failed ({src}):\n{done.stdout}\n{done.stderr}")
    return took


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--main", type=Path, default=None, metavar="CHECKOUT",
                    help="also run the shipped case from CHECKOUT/src (e.g. /work/main)")
    ap.add_argument("--only", default=None, help="comma-separated cases to run (default: all)")
    args = ap.parse_args(argv)
    here = ROOT / "src"
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="medaid-bench-ext-") as d:
        folder = Path(d)
        plain, more = generate(args.claims, folder)
        cases = variants()
        chosen = list(cases) if args.only is None else [c.strip() for c in args.only.split(",")]
        best: dict[str, float] = {}
        for name in chosen:
            rules = folder / f"rules-{name.replace(' ', '-')}"
            rules.mkdir()
            (rules / "rules.toml").write_text(cases[name], encoding="utf-8")
            claims = plain if name == "shipped" else more
            runs: dict[str, list[float]] = {}
            for _ in range(args.repeat):
                runs.setdefault(name, []).append(timed(here, claims, rules, folder / "out.csv"))
                if name == "shipped" and args.main is not None:
                    runs.setdefault("shipped (main)", []).append(
                        timed(args.main / "src", claims, rules, folder / "out.csv"))
            best.update({k: min(v) for k, v in runs.items()})
    load_after = os.getloadavg()
    n = args.claims
    print(f"claims: {n:,}; best of {args.repeat}; load average before {load_before[0]:.2f} "
          f"{load_before[1]:.2f} {load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
          f"{load_after[2]:.2f}; cpus {os.cpu_count()}")
    base = best.get("shipped")
    print(f"{'case':<16} {'seconds':>8} {'claims/s':>10} {'x shipped':>10}")
    for name, s in best.items():
        rel = "" if base is None else f"{s / base:>10.2f}"
        print(f"{name:<16} {s:>8.2f} {n / s:>10,.0f} {rel}")
    if base is not None and "shipped (main)" in best:
        print(f"shipped on this code / on main: {base / best['shipped (main)']:.3f}")


if __name__ == "__main__":
    main()

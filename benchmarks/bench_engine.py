"""Scalar engine throughput: ``medaid.settle`` in-process, claims per second, per accumulation mode.

    PYTHONPATH=src python benchmarks/bench_engine.py --claims 200000

Generates seeded claims (persons drawn with a skew, so a few persons have many claims and pools
fill up; log-normal self-pay around a few thousand yuan with a long tail, so every bracket and
the caps are reached), two rule sets with the shipped source-policy brackets, one with
``accumulate = "claim"`` and one with ``accumulate = "year"``, both with an annual cap and a
claim cap, and times:

* ``settle``: ``medaid.settle(claims, book)`` on unsorted claims, best of ``--repeat`` runs
  (from 10,000 claims a call, the engine settles them in columns: ``medaid.tuning.settle_in_columns``);
* ``scalar``: the engine's scalar loop alone on the same claims (what ``settle`` does below that
  size, and did at every size before issue 16), its settlements checked equal to ``settle``'s
  field by field;
* ``ordered``: the same on the claims as exports usually come, in date order (the same claims,
  rebuilt in that order so that memory follows it too: the engine's walk through 10^5 objects in
  date order is what costs most on shuffled input);
* ``bare``: the plan's compiled arithmetic alone (``Schedule.relieve_raw``) over the same self-pays,
  the floor under which ``settle`` cannot go (the baseline of the ratio printed);
* ``frame``: the columnar engine, :func:`medaid.batch.settle.settle_frame`, on the same claims as
  a polars frame (made once, outside the timing), its relief checked equal to ``settle``'s claim
  by claim; polars' threads count (the machine's cores are printed).

The load average is printed before and after: the machine may be shared.

Target (README.md#performance-measured): at least 300,000 claims/s for ``settle``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gc
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import medaid
from medaid.batch.settle import settle_frame
from medaid.domain import engine

RULES = """id = "bench-{mode}"
version = "1"
valid_from = 2020-01-01
rounding = {{ unit = "fen", method = "half-up" }}

[[plans]]
name = "key-inpatient"
match = {{ group = ["key"], kind = ["inpatient"] }}
pool = "inpatient"
accumulate = "{mode}"
annual_cap = "100000"
claim_cap = "60000"
brackets = [
  {{ from = "1000",  to = "10000", rate = "70%" }},
  {{ from = "10000", to = "50000", rate = "85%" }},
  {{ from = "50000",               rate = "95%" }},
]

[[plans]]
name = "low-income-inpatient"
match = {{ group = ["low-income"], kind = ["inpatient"] }}
pool = "inpatient"
accumulate = "{mode}"
annual_cap = "100000"
brackets = [
  {{ from = "2000",  to = "50000", rate = "60%" }},
  {{ from = "50000",               rate = "70%" }},
]

[[plans]]
name = "key-outpatient-special"
match = {{ group = ["key", "low-income"], kind = ["outpatient-special"] }}
pool = "outpatient-special"
accumulate = "{mode}"
annual_cap = "10000"
claim_cap = "3000"
brackets = [{{ from = "200", rate = "0.70" }}]
"""


def make_claims(n: int, seed: int) -> list[medaid.Claim]:
    """Seeded claims: skewed persons, log-normal self-pay (fen, made integer at once: this is
    test-data generation, not the money path), dates over two years, in random order."""
    rnd = random.Random(seed)
    persons = max(1, n // 4)
    start = dt.date(2023, 1, 1)
    days = [start + dt.timedelta(days=d) for d in range(730)]
    out = []
    for i in range(n):
        # skewed persons: a fifth of the claims come from 2% of the persons (chronic patients)
        p = rnd.randrange(max(1, persons // 50)) if rnd.random() < 0.2 else rnd.randrange(persons)
        kind = "inpatient" if rnd.random() < 0.7 else "outpatient-special"
        self_pay = int(rnd.lognormvariate(12.6, 1.2)) if kind == "inpatient" else int(rnd.lognormvariate(11.0, 1.0))
        out.append(medaid.Claim(
            claim_id=f"C{i:08d}", person_id=f"P{p:07d}", date=rnd.choice(days), self_pay=self_pay,
            group="key" if rnd.random() < 0.8 else "low-income", kind=kind,
        ))
    return out


def frame_of(claims: list[medaid.Claim]):  # type: ignore[no-untyped-def]
    """The claims as the batch hands them to :func:`settle_frame` (fen, dates, line numbers)."""
    import polars as pl

    return pl.DataFrame({
        "row": range(2, len(claims) + 2), "claim_id": [c.claim_id for c in claims],
        "person_id": [c.person_id for c in claims], "date": [c.date for c in claims],
        "self_pay": [c.self_pay for c in claims], "group": [c.group for c in claims],
        "kind": [c.kind for c in claims],
    }, schema={"row": pl.Int64, "claim_id": pl.String, "person_id": pl.String, "date": pl.Date,
               "self_pay": pl.Int64, "group": pl.String, "kind": pl.String})


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def scalar_loop(claims: list[medaid.Claim], book: medaid.RuleBook) -> list[medaid.Settlement]:
    """The scalar engine alone (:func:`medaid.domain.engine.settle`: what ``medaid.settle`` runs
    below 10,000 claims a call)."""
    return engine.settle(claims, book)


def bare(fast, pays: list[int]) -> None:
    """The schedule's raw relief function alone, once per self-pay: the floor the engine is compared with."""
    for s in pays:
        fast(s, 0, 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--claims", type=int, default=200_000, help="claims per run (default 200000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is shown (default 3)")
    ap.add_argument("--seed", type=int, default=20190101)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    claims = make_claims(args.claims, args.seed)
    gen = time.perf_counter() - t0
    print(f"medaid {medaid.__version__}, Python {sys.version.split()[0]}; {args.claims:,} claims "
          f"({len({c.person_id for c in claims}):,} persons) generated in {gen:.2f} s")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    print(f"{'mode':<6} {'what':<7} {'seconds':>8} {'claims/s':>12} {'vs bare':>8} {'capped':>7}")
    with tempfile.TemporaryDirectory() as d:
        for mode in ("claim", "year"):
            f = Path(d) / f"{mode}.toml"
            f.write_text(RULES.format(mode=mode), encoding="utf-8")
            book = medaid.load_rules(f)
            results = medaid.settle(claims, book)  # warm the caches once; also checks it runs
            capped = sum(r.capped_by is not None for r in results) / len(results)
            frame = frame_of(claims)
            columnar = settle_frame(frame, book)[0]
            if columnar["relief"].to_list() != [r.relief for r in results]:
                raise SystemExit("settle_frame and settle disagree")
            if scalar_loop(claims, book) != results:
                raise SystemExit("settle and its scalar loop disagree")
            del results, columnar
            # functools.partial binds this iteration's book and claims (a lambda would read the
            # loop's variables when called, not when made)
            t_settle = best_of(args.repeat, functools.partial(medaid.settle, claims, book))
            t_scalar = best_of(args.repeat, functools.partial(scalar_loop, claims, book))
            ordered = [medaid.Claim(**c.__dict__) for c in sorted(claims, key=lambda c: (c.date, c.claim_id))]
            t_ordered = best_of(args.repeat, functools.partial(medaid.settle, ordered, book))
            del ordered
            rs = book.versions()[0]
            fast = book.schedule(rs, rs.plans[0]).relieve_raw
            pays = [c.self_pay for c in claims]
            t_bare = best_of(args.repeat, functools.partial(bare, fast, pays))
            t_frame = best_of(args.repeat, functools.partial(settle_frame, frame, book))
            del frame
            n = len(claims)
            print(f"{mode:<6} {'settle':<7} {t_settle:>8.3f} {n / t_settle:>12,.0f} "
                  f"{t_settle / t_bare:>7.1f}x {capped:>6.1%}")
            print(f"{mode:<6} {'scalar':<7} {t_scalar:>8.3f} {n / t_scalar:>12,.0f} {t_scalar / t_bare:>7.1f}x")
            print(f"{mode:<6} {'ordered':<7} {t_ordered:>8.3f} {n / t_ordered:>12,.0f} {t_ordered / t_bare:>7.1f}x")
            print(f"{mode:<6} {'bare':<7} {t_bare:>8.3f} {n / t_bare:>12,.0f} {1:>7.1f}x")
            print(f"{mode:<6} {'frame':<7} {t_frame:>8.3f} {n / t_frame:>12,.0f} {t_frame / t_bare:>7.1f}x")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak memory (max RSS): {peak_kib / 1024:,.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

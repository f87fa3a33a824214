"""The batch totals: persons told apart by the numbers the settlement's sort gives, against their text.

    PYTHONPATH=src python benchmarks/bench_totals.py CLAIMS.csv --rules RULES [--repeat 3]

Settles the claim file once as ``medaid batch`` does (:func:`medaid.batch.run.settle_file`), then
times :func:`medaid.report.totals.summarise` on its results, in turn: ``text`` (persons grouped
by their ``person_id`` text: the baseline, as before the numbers existed) and ``numbers``
(``summarise(results, persons=run.persons)``), ``--repeat`` times each, alternated, and prints
the best wall and CPU seconds of each, their ratio, the peak memory, and the load average before
and after (the machine may be shared).  Both must give the same totals, or it stops.  For the
peer benchmark's files (``claims_10m.csv``: 3.3 M persons) use its rule file, which
``bench_peers.py`` writes (``peer-mode-A.toml``).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("claims", help="a claim file medaid batch reads")
    ap.add_argument("--rules", required=True, help="rule file or folder")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each way, alternated (default 3)")
    a = ap.parse_args(argv)

    import medaid
    from medaid.batch.run import settle_file
    from medaid.report.totals import summarise

    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    run = settle_file(a.claims, medaid.load_rules(a.rules), columns="claim_id,relief")
    if run.persons is None:
        print("the settlement gave no person numbers (ids as categories, or input already in order)")
        return 1
    print(f"{run.settled:,} claims settled; timing the totals")
    best = {"text": (float("inf"), float("inf")), "numbers": (float("inf"), float("inf"))}
    got = {}
    for _ in range(a.repeat):
        for way, persons in (("text", None), ("numbers", run.persons)):
            w, c = time.perf_counter(), time.process_time()
            got[way] = summarise(run.results, persons)
            w, c = time.perf_counter() - w, time.process_time() - c
            best[way] = (min(best[way][0], w), min(best[way][1], c))
    if got["text"] != got["numbers"]:
        raise SystemExit("MISMATCH: the totals differ")
    for way, (w, c) in best.items():
        print(f"{way:<8} wall {w:7.3f} s  cpu {c:7.3f} s")
    print(f"numbers / text: wall {best['numbers'][0] / best['text'][0]:.2f}, "
          f"cpu {best['numbers'][1] / best['text'][1]:.2f}; persons {got['text']['total']['persons']:,}")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; best of {a.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Desks settling at once, and desks killed mid-settlement (README.md#reliability).

Concurrency: 4 processes × 250 settlements on 3 persons whose inpatient pool fills up (each
claim of 5,000 yuan is worth 70% × 4,000 = 2,800; the cap is 100,000), some claim ids shared
between processes.  Afterwards each person's relief is exactly the cap, no row is above it,
every acknowledged settlement is in the ledger once, and replaying the ledger's order through
a hand model gives the recorded reliefs.

Crash: a process settling in a loop is killed with SIGKILL at random moments, repeatedly;
after each kill the file passes ``PRAGMA integrity_check`` and the hash chain, and every
settlement the process acknowledged (it prints the claim id after the commit) is present.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from medaid.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}

WORKER = r"""
import sys
import medaid
from medaid.ledger import Ledger
path, rules, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
book = medaid.load_rules(rules)
with Ledger(path) as lg:
    for i in range(n):
        # every fifth claim id is shared by all workers (same content): settled once only
        cid = f"S-{i}" if i % 5 == 0 else f"W{worker}-{i}"
        c = medaid.Claim(claim_id=cid, person_id=f"P{i % 3}", date="2024-05-03",
                         self_pay=500_000, group="key", kind="inpatient")
        r = lg.settle(c, book)
        print(cid, flush=True)
"""

LOOP = r"""
import sys
import medaid
from medaid.ledger import Ledger
path, rules, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
book = medaid.load_rules(rules)
with Ledger(path) as lg:
    i = 0
    while True:
        c = medaid.Claim(claim_id=f"{prefix}-{i}", person_id=f"P{i % 7}", date="2024-05-03",
                         self_pay=123_456 + i, group="key", kind="inpatient")
        lg.settle(c, book)
        print(c.claim_id, flush=True)
        i += 1
"""

CAP = 10_000_000  # 100,000 yuan
PER_CLAIM = 280_000  # 70% of (5,000 − 1,000)


def test_four_desks_settling_at_once_never_exceed_a_cap_nor_lose_a_settlement(tmp_path):
    path = tmp_path / "desk.sqlite3"
    # the workers create the file together (the first one wins; the others find it made)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), str(ROOT / "rules"), str(w), "250"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        )
        for w in range(4)
    ]
    acknowledged: set[str] = set()
    for p in workers:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        lines = out.split()
        assert len(lines) == 250
        acknowledged.update(lines)
    assert len(acknowledged) == 50 + 4 * 200

    with Ledger(path, create=False) as lg:
        rows = list(lg.entries())
        assert lg.verify().ok
    ids = Counter(e.claim_id for e in rows)
    assert set(ids) == acknowledged
    assert max(ids.values()) == 1  # nothing recorded twice
    # the hand model: in ledger order, each claim gets min(2,800, what is left of the cap)
    granted: dict[str, int] = {}
    for e in rows:
        g = granted.get(e.person_id, 0)
        assert e.relief == min(PER_CLAIM, CAP - g), e
        granted[e.person_id] = g + e.relief
        assert e.ytd_relief == granted[e.person_id] <= CAP
    # ~283 claims each: 35 × 2,800 + 2,000 fills the cap exactly
    assert granted == {"P0": CAP, "P1": CAP, "P2": CAP}


def _integrity(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return [r[0] for r in con.execute("PRAGMA integrity_check")]
    finally:
        con.close()


def test_a_desk_killed_at_random_moments_keeps_every_acknowledged_settlement(tmp_path):
    path = tmp_path / "desk.sqlite3"
    Ledger(path).close()
    rng = random.Random(20240503)
    acknowledged: list[str] = []
    for round_ in range(8):
        p = subprocess.Popen(
            [sys.executable, "-c", LOOP, str(path), str(ROOT / "rules"), f"R{round_}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
        )
        # wait for the first acknowledgement, then let it run a random while
        first = p.stdout.readline()
        assert first, p.stderr.read()
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(p.pid, signal.SIGKILL)
        rest, _ = p.communicate(timeout=30)
        got = [first.strip()] + rest.split()
        # a line cut by the kill is not an acknowledgement
        if rest and not rest.endswith("\n"):
            got = got[:-1]
        acknowledged += got
        assert _integrity(path) == ["ok"], f"round {round_}"
        with Ledger(path, create=False) as lg:
            v = lg.verify()
            assert v.ok, v.problems
            present = {e.claim_id for e in lg.entries()}
        missing = [c for c in acknowledged if c not in present]
        assert not missing, f"round {round_}: acknowledged but missing: {missing[:5]}"
    assert len(acknowledged) > 8

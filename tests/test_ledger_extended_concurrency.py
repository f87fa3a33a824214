"""A household's members settled at once at two hospitals, and a desk killed mid-settlement, with
a household cap pool (docs/calculation.md *Shared caps*: "the household's relief in a benefit
year never exceeds the cap"; docs/desk.md *The ledger's guarantees*), on both backends.

The rules are tests/extended_books.py ``HOUSEHOLD``: the shipped inpatient brackets (a 5,000
stay: 70% × 4,000 = 2,800) under a household cap pool of 10,000 a year.  Settled in any order,
a household's stays of 5,000 get 2,800, 2,800, 2,800, then the 1,600 left, then nothing.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import medaid
from extended_books import HOUSEHOLD, book
from medaid.ledger import open_ledger

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}

HOSPITAL = r"""
import os, sys, time
import medaid
from medaid.ledger import open_ledger
path, rules, member, households, stays = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
barrier = sys.argv[6]
book = medaid.load_rules(rules)
with open_ledger(path) as lg:
    print("ready", flush=True)
    for h in range(households):
        # both hospitals start each household together (a file each, then wait for the other's)
        open(os.path.join(barrier, f"{member}-{h}"), "w").close()
        while len([f for f in os.listdir(barrier) if f.endswith(f"-{h}")]) < 2:
            time.sleep(0.0005)
        for i in range(stays):
            c = medaid.Claim(claim_id=f"{member}-{h}-{i}", person_id=f"{member}-{h}", household_id=f"H{h}",
                             date="2024-05-03", self_pay=500_000, group="key", kind="inpatient",
                             hospital=f"hospital of {member}")
            t = time.time()
            lg.settle(c, book)
            print(c.claim_id, t, time.time(), flush=True)
"""

LOOP = r"""
import sys
import medaid
from medaid.ledger import open_ledger
path, rules, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
book = medaid.load_rules(rules)
with open_ledger(path) as lg:
    i = 0
    while True:
        c = medaid.Claim(claim_id=f"{prefix}-{i}", person_id=f"P{i % 5}", household_id=f"H{i % 2}",
                         date="2024-05-03", self_pay=123_456 + 1000 * i, group="key", kind="inpatient")
        lg.settle(c, book)
        print(c.claim_id, flush=True)
        i += 1
"""

CAP = 1_000_000  # the household cap pool: 10,000 yuan


def test_two_hospitals_settling_a_households_members_at_once_never_exceed_its_cap(db, tmp_path):
    rules = tmp_path / "household.toml"
    rules.write_text(HOUSEHOLD, encoding="utf-8")
    open_ledger(db.location).close()
    households, stays = 6, 6
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    # mother M at one hospital, son S at another, each settling its member's stays in every household
    hospitals = [subprocess.Popen(
        [sys.executable, "-c", HOSPITAL, db.location, str(rules), member, str(households), str(stays), str(barrier)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for member in ("M", "S")]
    spans: dict[str, tuple[float, float]] = {}  # each claim's settle call: when it began and ended
    for p in hospitals:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        lines = out.splitlines()[1:]  # "ready", then the claims
        assert len(lines) == households * stays
        spans.update((cid, (float(t0), float(t1))) for cid, t0, t1 in (x.split() for x in lines))
    with open_ledger(db.location, create=False) as lg:
        rows = list(lg.entries())
        assert lg.verify().problems == ()
    assert len(rows) == 2 * households * stays
    by_household: dict[str | None, list] = defaultdict(list)
    for e in rows:
        by_household[e.household_id].append(e)
    interleaved = 0
    for h, es in by_household.items():
        # in the ledger's order: 2,800 three times, the 1,600 left, then nothing: exactly the cap
        assert [e.relief for e in es] == [280_000, 280_000, 280_000, 160_000] + [0] * 8, h
        assert sum(e.relief for e in es) == CAP
        # the two hospitals were settling this household at the same time: calls that overlap
        mine = {m: [spans[e.claim_id] for e in es if e.person_id.startswith(m)] for m in ("M", "S")}
        interleaved += any(a0 < b1 and b0 < a1 for a0, a1 in mine["M"] for b0, b1 in mine["S"])
        # the engine, given the household's claims in the ledger's order, gives the same reliefs
        # (one date: the engine takes them in claim id order, here the ledger's)
        claims = [e.claim().model_copy(update={"claim_id": f"{i:03d}"}) for i, e in enumerate(es)]
        assert [r.relief for r in medaid.settle(claims, book(HOUSEHOLD))] == [e.relief for e in es]
    assert interleaved, "the two hospitals never settled a household at the same time"


def test_a_desk_killed_while_settling_household_claims_leaves_no_partial_entry(db, tmp_path):
    rules = tmp_path / "household.toml"
    rules.write_text(HOUSEHOLD, encoding="utf-8")
    open_ledger(db.location).close()
    rng = random.Random(20241207)
    acknowledged: list[str] = []
    for round_ in range(5):
        p = subprocess.Popen([sys.executable, "-c", LOOP, db.location, str(rules), f"R{round_}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        first = p.stdout.readline()
        assert first, p.stderr.read()
        time.sleep(rng.uniform(0.0, 0.2))
        os.kill(p.pid, signal.SIGKILL)
        rest, _ = p.communicate(timeout=30)
        got = [first.strip()] + rest.split()
        if rest and not rest.endswith("\n"):  # a line cut by the kill is not an acknowledgement
            got = got[:-1]
        acknowledged += got
        with open_ledger(db.location, create=False) as lg:
            v = lg.verify()  # the chain, every row's hash, the pools and the household cap pools
            assert v.problems == (), f"round {round_}"
            rows = list(lg.entries())
        present = {e.claim_id for e in rows}
        assert not [c for c in acknowledged if c not in present], f"round {round_}"
        totals: dict[str | None, int] = defaultdict(int)
        for e in rows:
            assert e.caps == (("household", e.relief),)  # every row whole: its cap pool's take recorded
            totals[e.household_id] += e.relief
        assert max(totals.values()) <= CAP

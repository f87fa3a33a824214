"""Desks settling at once, and desks killed mid-settlement (README.md#reliability).

Both run on each backend (tests/conftest.py): on PostgreSQL the processes serialise through
advisory locks instead of SQLite's file lock, and a killed client leaves no open transaction.

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

from medaid.ledger import open_ledger
from medaid.ledger.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}

WORKER = r"""
import sys
import medaid
from medaid.ledger import open_ledger
path, rules, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
book = medaid.load_rules(rules)
with open_ledger(path) as lg:
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
from medaid.ledger import open_ledger
path, rules, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
book = medaid.load_rules(rules)
with open_ledger(path) as lg:
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


def test_four_desks_settling_at_once_never_exceed_a_cap_nor_lose_a_settlement(db):
    path = db.location
    # the workers create the file (or the database's tables) together (the first one wins; the others find it made)
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

    with open_ledger(path, create=False) as lg:
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


def test_a_desk_killed_at_random_moments_keeps_every_acknowledged_settlement(db):
    path = db.location
    open_ledger(path).close()
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
        if db.backend == "sqlite":
            assert _integrity(path) == ["ok"], f"round {round_}"
        with open_ledger(path, create=False) as lg:
            v = lg.verify()
            assert v.ok, v.problems
            present = {e.claim_id for e in lg.entries()}
        missing = [c for c in acknowledged if c not in present]
        assert not missing, f"round {round_}: acknowledged but missing: {missing[:5]}"
    assert len(acknowledged) > 8


# -- opening during a checkpoint (issue #11, defect 8) -----------------------------------------


def _header_pages(path: Path) -> tuple[int, int, bool]:
    """(pages the header states, pages the file holds, whether the header's count is valid:
    version-valid-for = change counter), read from the file's first 100 bytes (SQLite format)."""
    head = path.read_bytes()[:100]
    size = int.from_bytes(head[16:18], "big")
    size = 65536 if size == 1 else size
    return int.from_bytes(head[28:32], "big"), path.stat().st_size // size, head[92:96] == head[24:28]


def _wal_frames(wal: Path, page_size: int) -> list[tuple[int, bytes]]:
    """The WAL's frames as (page number, page image), in order (WAL format: a 32-byte header,
    then frames of a 24-byte header and one page)."""
    data = wal.read_bytes()
    out, at = [], 32
    while at + 24 + page_size <= len(data):
        out.append((int.from_bytes(data[at:at + 4], "big"), data[at + 24:at + 24 + page_size]))
        at += 24 + page_size
    return out


def test_a_ledger_opened_mid_checkpoint_is_not_refused_as_truncated(tmp_path):
    """A checkpoint copies the WAL's pages into the file in page order, page 1 (the header, with
    the new page count) first: until the last page is written the file is shorter than its
    header says, and is whole.  That moment, made exactly: a desk's settlements wait in the WAL
    (another connection keeps it from being checkpointed), then page 1 alone is copied into the
    file as a checkpoint's first write does.  Another desk opening the ledger then is served."""
    import medaid

    book = medaid.load_rules(ROOT / "rules")
    path = tmp_path / "desk.sqlite3"
    Ledger(path).close()
    holder = sqlite3.connect(path)  # keeps the WAL: the last connection to close checkpoints it
    holder.execute("SELECT count(*) FROM entries").fetchone()
    with Ledger(path) as lg:
        lg._con.execute("PRAGMA wal_autocheckpoint=0")
        for i in range(20):  # each row carries ~8 KiB of text: the file grows by pages
            lg.settle(medaid.Claim(claim_id=f"C{i}", person_id=f"P{i % 3}", date="2024-05-03",
                                   self_pay=500_000, group="key", kind="inpatient",
                                   hospital="H" * 8192), book)
    page_size = int.from_bytes(path.read_bytes()[16:18], "big")
    page1 = [img for no, img in _wal_frames(path.with_name(path.name + "-wal"), page_size) if no == 1][-1]
    with open(path, "r+b") as f:  # the checkpoint's first write
        f.write(page1)
    stated, held, valid = _header_pages(path)
    assert valid and stated > held  # what the old look from outside SQLite's lock refused

    with Ledger(path, create=False) as lg:  # served from the WAL, which holds the pages
        assert [e.claim_id for e in lg.entries()] == [f"C{i}" for i in range(20)]
        assert lg.verify().ok
    holder.close()
    with Ledger(path, create=False) as lg:  # and after the real checkpoint
        assert lg.verify().ok and lg.verify().entries == 20


CHECKPOINTER = r"""
import sqlite3, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
con = sqlite3.connect(path, isolation_level=None, timeout=10)
con.execute("PRAGMA wal_autocheckpoint=0")
con.execute("CREATE TABLE IF NOT EXISTS ballast (b BLOB)")  # a foreign table: fills pages fast
end, n = time.monotonic() + seconds, 0
while time.monotonic() < end:
    con.execute("INSERT INTO ballast VALUES (zeroblob(262144))")  # 64 new pages, in the WAL
    con.execute("PRAGMA wal_checkpoint(PASSIVE)")  # copied into the file, page 1 first
    n += 1
print(n, flush=True)
"""


def test_desks_opening_while_another_process_checkpoints_are_never_refused(tmp_path):
    """Fault injection with real processes: one grows the file and forces a checkpoint over and
    over (each copies 64 new pages, the header first); meanwhile this process opens the
    ledger as a desk does, hundreds of times.  No opening is refused."""
    path = tmp_path / "desk.sqlite3"
    Ledger(path).close()
    child = subprocess.Popen([sys.executable, "-c", CHECKPOINTER, str(path), "3"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    refused: list[str] = []
    opened = 0
    try:
        while child.poll() is None:
            try:
                Ledger(path, create=False).close()
                opened += 1
            except Exception as e:  # noqa: BLE001 - any refusal is the failure looked for
                refused.append(str(e))
    finally:
        out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert int(out) > 10 and opened > 50
    assert refused == [], f"{len(refused)} of {opened + len(refused)} openings refused: {refused[0]}"


# -- the writers' queue -----------------------------------------------------------------------

HOLDER = r"""
import sys, time
from medaid.ledger.ledger import Ledger
path, hold, gap, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
with Ledger(path, busy_timeout=60) as lg:
    end, first = time.monotonic() + seconds, True
    while time.monotonic() < end:
        with lg._transaction():  # a desk's write transaction, held as long as a slow one
            if first:
                print("holding", flush=True)
                first = False
            time.sleep(hold)
        time.sleep(gap)  # what a desk does between two settlements
"""


def test_a_waiting_desk_gets_in_between_the_transactions_of_a_desk_that_keeps_writing(tmp_path):
    """A desk keeps the ledger busy: write transactions of 0.8 s each, 5 ms apart, for 4.5 s.
    Another desk settling meanwhile (busy timeout 3 s) must get in at one of the first gaps.
    SQLite alone would not let it: a desk that finds the file locked sleeps and tries again
    (up to 100 ms apart), and meets a 5 ms gap in 805 ms about once in 160 tries, ~40 tries
    in 3 s: refused as busy about 4 times in 5 (the four desks above, under load, met that
    too).  In the writers' queue the waiting desk is woken when the holder lets go."""
    import medaid

    book = medaid.load_rules(ROOT / "rules")
    path = tmp_path / "desk.sqlite3"
    Ledger(path).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "0.8", "0.005", "4.5"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n", holder.stderr
        with Ledger(path, busy_timeout=3.0) as lg:
            start = time.monotonic()
            r = lg.settle(medaid.Claim(claim_id="W1", person_id="P1", date="2024-05-03", self_pay=500_000,
                                       group="key", kind="inpatient"), book)
            waited = time.monotonic() - start
        assert r.entry.relief == PER_CLAIM
        assert waited < 3.0
    finally:
        _, err = holder.communicate(timeout=60)
    assert holder.returncode == 0, err

"""The service as it runs: ``medaid serve`` (uvicorn) in a subprocess.

* The desk commands with ``--server`` print what they print against a ledger file, with the same
  exit codes, command for command (the times of recording aside).
* The log never holds an ID number.
* Load, on an SQLite file and on PostgreSQL: 3 workers, 16 clients × 200 settlements from two
  hospitals over persons near their annual caps: every settlement's relief and every cap exact
  (walked by hand in the ledger's order), nothing lost or duplicated, a replayed claim id gets the
  original, ``medaid ledger verify`` passes.
* Workers killed with SIGKILL in the middle of requests, repeatedly, on both backends: no partial
  row, and the client's retry with the same claim id gets the original result.

Figures worked by hand in tests/service_support.py.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import pytest

pytest.importorskip("uvicorn", reason="the service needs the service extra: pip install 'medaid[service]'")
httpx = pytest.importorskip("httpx")

from medaid.ledger import Ledger  # noqa: E402

try:
    from conftest import BACKENDS, ledger_db
    from service_support import HOSPITAL_A, HOSPITAL_B, PERSON, RULES, env, make_tokens, server
except ImportError:  # pragma: no cover - tests collected as a package
    from tests.conftest import BACKENDS, ledger_db
    from tests.service_support import HOSPITAL_A, HOSPITAL_B, PERSON, RULES, env, make_tokens, server

KEY = ["--group", "key", "--kind", "inpatient"]
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?")


def _cli(args: list[str], **extra: str) -> tuple[int, str, str]:
    p = subprocess.run([sys.executable, "-m", "medaid.cli", *args], capture_output=True, text=True,
                       env=env(**extra), timeout=120)
    return p.returncode, p.stdout, p.stderr


#: The commands run both ways, in order (a claim id and person as a clerk types them).
def _settle(cid: str, amount: str, *extra: str) -> list[str]:
    return ["settle", "--person", PERSON, "--self-pay", amount, "--date", "2024-05-03", "--claim-id", cid,
            *KEY, "--hospital", HOSPITAL_A, *extra]


SESSION = [
    _settle("ZY1", "30000"),                                  # 23,300.00
    _settle("ZY1", "30000"),                                  # the same again: the original, replayed
    _settle("ZY1", "30000.01"),                               # other content: refused, exit 1
    _settle("ZY2", "100000", "--json"),                       # 6,300 + 34,000 + 47,500 = 87,800 → capped at 76,700
    _settle("ZY3", "12,345.67", "--lang", "zh"),              # the cap is spent: 0, in Chinese
    _settle("ZY4", "30000", "--date", "2014-05-03"),          # no version covers it: exit 2
    _settle("ZY5", "30000", "--group", "nobody"),             # no plan: exit 2
    ["quote", "--person", PERSON, "--self-pay", "30000", "--date", "2024-05-03", *KEY, "--hospital", HOSPITAL_A],
    ["quote", "--person", "P9", "--self-pay", "30000", "--date", "2024-05-03", *KEY, "--hospital", HOSPITAL_A,
     "--ytd-self-pay", "0", "--ytd-relief", "0", "--json"],
    ["quote", "--person", "P9", "--self-pay", "30000", "--ytd-self-pay", "0"],  # usage: exit 2 before any request
    ["reverse", "ZY2", "--reason", "wrong stay"],             # ZY3 was settled after it
    ["reverse", "ZY2", "--reason", "again", "--json"],        # already reversed: exit 1
    ["reverse", "NOPE", "--reason", "x"],                     # no such claim: exit 1
    ["reverse", "ZY1", "--reason", "typo", "--json", "--lang", "zh"],
    ["history", PERSON],
    ["history", PERSON, "--year", "2024", "--json"],
    ["history", PERSON, "--lang", "zh"],
    ["history", "P-nobody"],
]

#: The exit code of each command of the session (0 done, 1 refused, 2 usage).
EXITS = [0, 0, 1, 0, 0, 2, 2, 0, 0, 2, 0, 1, 1, 0, 0, 0, 0, 0]


def _normal(text: str) -> str:
    text = TIME.sub("<time>", text)
    # the row's writer and its hash differ by nature (the token; the time is hashed)
    text = re.sub(r'"desk": (null|"t[0-9a-f]{10}")', '"desk": <desk>', text)
    return re.sub(r'"(row_hash|prev_hash)": "[0-9a-f]{64}"', r'"\1": <hash>', text)


def test_the_desk_commands_print_the_same_through_the_server(tmp_path):
    local = tmp_path / "desk.sqlite3"
    county = tmp_path / "county.sqlite3"
    tokens = make_tokens(county)
    codes: list[int] = []
    with server(county) as srv:
        for args in SESSION:
            rules = ["--rules", str(RULES)] if args[0] in ("settle", "quote") else []
            here = _cli([*args, "--ledger", str(local), *rules])
            there = _cli(args, MEDAID_SERVER=srv.url, MEDAID_TOKEN=tokens.desk_a)
            assert here[0] == there[0] == EXITS[len(codes)], (args, here, there)
            codes.append(here[0])
            assert _normal(here[1]) == _normal(there[1]), args
            assert _normal(here[2]) == _normal(there[2]), args
        # a token the server refuses: exit 1, the problem printed as the desk prints a refusal
        rc, out, err = _cli(["history", PERSON], MEDAID_SERVER=srv.url, MEDAID_TOKEN=tokens.revoked)
        assert rc == 1 and "the token is unknown or revoked" in err
        rc, out, err = _cli(_settle("ZY9", "1"), MEDAID_SERVER=srv.url, MEDAID_TOKEN=tokens.desk_b)
        assert rc == 1 and "settles only its own hospital's claims" in err
        log = srv.log
    with Ledger(county, create=False) as lg:
        assert lg.verify().problems == ()
        assert {e.desk for e in lg.entries()} == {tokens.ids["desk_a"]}
    # the log of all that: paths and statuses, no ID number
    text = log.read_text(encoding="utf-8")
    assert "POST /v1/settle" in text and "POST /v1/history" in text
    assert PERSON not in text


def test_an_id_sent_in_a_url_is_masked_in_the_log(tmp_path):
    county = tmp_path / "county.sqlite3"
    make_tokens(county)
    with server(county) as srv:
        httpx.get(f"{srv.url}/v1/history?person_id={PERSON}&lang=zh")
        httpx.get(f"{srv.url}/v1/history/{PERSON}")
        httpx.post(f"{srv.url}/desk/history", data={"person_id": PERSON})
        time.sleep(0.3)
        text = srv.log.read_text(encoding="utf-8")
    assert "/v1/history?person_id=…&lang=zh" in text and "/v1/history/***" in text
    assert PERSON not in text and PERSON[:14] not in text


def test_an_id_or_account_in_a_url_written_otherwise_is_masked_too():
    from medaid.service.logs import masked

    encoded = "".join(f"%{ord(c):02X}" for c in PERSON)  # percent-encoded digits
    hyphened = f"{PERSON[:6]}-{PERSON[6:14]}-{PERSON[14:]}"
    account = "62220202001122334455667"  # 23 digits: the whole run, not its first 18
    for path in (f"/v1/x/{encoded}", f"/v1/history/{hyphened}", f"/v1/history/{account}"):
        shown = masked(path)
        assert shown.endswith("/***"), (path, shown)
    assert masked("/v1/periods/2024-05") == "/v1/periods/2024-05"  # a month is no id


# -- on either backend ----------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def county(request, tmp_path):
    """The county's ledger holding a token of every kind: an SQLite file, then a fresh schema in
    the session's throwaway PostgreSQL cluster (tests/conftest.py)."""
    with ledger_db(request, request.param, tmp_path) as db:
        yield db, make_tokens(db)


def _post(client: httpx.Client, path: str, body: dict, secret: str, *, within: float = 60.0) -> httpx.Response:
    """POST, sending it again (same body, so the same claim id) while the answer is lost or the
    ledger busy (503), for up to ``within`` seconds."""
    give_up = time.monotonic() + within
    while True:
        try:
            r = client.post(path, json=body, headers={"Authorization": f"Bearer {secret}"})
            if r.status_code != 503:
                return r
        except httpx.TransportError:
            pass
        if time.monotonic() > give_up:
            raise AssertionError(f"no answer in {within} s for claim {body.get('claim_id')}")
        time.sleep(0.05)


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


#: Row columns the ledger checks read straight from the database (not through medaid).
ROWS = "SELECT seq, entry, claim_id, person_id, self_pay, hospital, desk, relief, bracket_relief, ytd_relief " \
       "FROM entries ORDER BY seq"


def _verify(db) -> None:
    """``medaid ledger verify`` on the county's ledger: exit 0."""
    rc, out, err = _cli(["ledger", "verify", "--ledger", db.location])
    assert rc == 0, (out, err)


# -- load -----------------------------------------------------------------------------------------

#: Self-pay (yuan) of the load's stays → their relief by the brackets alone (fen), worked by hand
#: from the key recipients' inpatient plan (nothing below 1,000; 70% of 1,000-10,000; 85% of
#: 10,000-50,000).
BRACKETS = {
    "3000": 140_000,       # (3,000 − 1,000) × 70% = 1,400.00
    "5000": 280_000,       # (5,000 − 1,000) × 70% = 2,800.00
    "12345.67": 829_382,   # 6,300 + 2,345.67 × 85% = 6,300 + 1,993.8195 → 8,293.82
    "30000": 2_330_000,    # 6,300 + 20,000 × 85% = 23,300.00
}
FEN = {"3000": 300_000, "5000": 500_000, "12345.67": 1_234_567, "30000": 3_000_000, "100000": 10_000_000}
CAP = 10_000_000           # 100,000.00 a year in the inpatient pool
NEAR = 8_780_000           # each person's earlier 100,000 stay: 87,800.00, so 12,200.00 left
PERSONS = [f"L{i:03d}" for i in range(40)]
#: 16 clients × 200 settlements on PostgreSQL, the county's database; on the SQLite file × 50: its
#: writers take turns at one file lock and each commit syncs the file, so on these two shared cores
#: 16 × 200 took 45-75 s there (its capacity: docs/service.md#capacity), and 800 settlements over
#: the same 40 persons make the same contention for the same caps.
CLIENTS, PER_CLIENT, REPLAY_EVERY = 16, {"sqlite": 50, "postgresql": 200}, 10


def _walk_caps(rows: list[tuple], bracket_of: dict[str, int], granted: dict[str, int]) -> None:
    """Each settlement, in the ledger's order, got its brackets' relief or what its person's
    annual cap still left, whichever is less: the cap exact however the requests interleaved."""
    for seq, entry, cid, person, _self_pay, _h, _d, relief, bracket, ytd_relief in rows:
        assert entry == "settlement", (seq, entry)
        want = min(bracket_of[cid], CAP - granted[person])
        assert (bracket, relief) == (bracket_of[cid], want), (seq, cid, person, granted[person])
        granted[person] += relief
        assert ytd_relief == granted[person], (seq, cid)


def _revoke_b_everywhere(srv, db, tokens) -> None:
    """The admin revokes hospital B's token through one worker; at once no worker accepts it (each
    request looks its token up in the shared ledger, nothing is cached in a worker, though every
    worker has just served it), and nothing more is written by it."""
    r = httpx.post(f"{srv.url}/v1/tokens/{tokens.ids['desk_b']}/revoke",
                   headers={"Authorization": f"Bearer {tokens.admin}"}, timeout=30)
    assert r.status_code == 200 and r.json()["active"] is False, r.text
    before = db.rows("SELECT count(*) FROM entries")
    b = {"Authorization": f"Bearer {tokens.desk_b}"}
    for i in range(9):  # each on a new connection, to whichever worker takes it
        r = httpx.post(f"{srv.url}/v1/settle", headers=b, timeout=30, json={
            "claim_id": f"RB{i}", "person_id": "R1", "self_pay": "3000", "group": "key", "kind": "inpatient"})
        assert r.status_code == 401, r.text
        assert httpx.post(f"{srv.url}/v1/history", json={"person_id": "R1"}, headers=b, timeout=30).status_code == 401
    assert db.rows("SELECT count(*) FROM entries") == before


def test_load_two_hospitals_sixteen_clients_caps_exact_nothing_lost_or_duplicated(county, tmp_path):
    """3 workers, 16 clients × 200 settlements (× 50 on SQLite) of persons near their caps, from two
    hospitals; and then hospital B's token, revoked through one worker, is refused by every worker."""
    db, tokens = county
    per_client = PER_CLIENT[db.backend]
    desk = {HOSPITAL_A: tokens.desk_a, HOSPITAL_B: tokens.desk_b}
    # what each client sends: even clients from hospital A, odd from B, all over the same persons
    work_of = {}
    for k in range(CLIENTS):
        rnd, hospital = random.Random(k), (HOSPITAL_A, HOSPITAL_B)[k % 2]
        work_of[k] = [{"claim_id": f"K{k:02d}-{j:03d}", "person_id": rnd.choice(PERSONS),
                       "self_pay": rnd.choice(list(BRACKETS)), "date": "2024-06-01", "group": "key",
                       "kind": "inpatient", "hospital": hospital} for j in range(per_client)]
    sent = {b["claim_id"]: b for bodies in work_of.values() for b in bodies}
    results: dict[str, dict] = {}
    replays: list[tuple[dict, dict]] = []
    errors: list[str] = []
    lock = threading.Lock()
    with server(db.location, workers=3, log=tmp_path / "serve.log") as srv, \
            httpx.Client(base_url=srv.url, timeout=60) as c:
        for i, p in enumerate(PERSONS):  # every person near the cap, a stay at either hospital
            hospital = (HOSPITAL_A, HOSPITAL_B)[i % 2]
            r = _post(c, "/v1/settle", {"claim_id": f"PRE-{p}", "person_id": p, "self_pay": "100000",
                                        "date": "2024-03-01", "group": "key", "kind": "inpatient",
                                        "hospital": hospital}, desk[hospital])
            assert r.status_code == 201 and r.json()["relief"] == _yuan(NEAR), r.text
            sent[f"PRE-{p}"] = {"person_id": p, "self_pay": "100000", "hospital": hospital}

        def work(k: int) -> None:
            with httpx.Client(base_url=srv.url, timeout=60) as own:
                for j, body in enumerate(work_of[k]):
                    r = _post(own, "/v1/settle", body, desk[body["hospital"]])
                    with lock:
                        if r.status_code != 201:  # new claim ids: each recorded now, once
                            errors.append(f"{body['claim_id']}: {r.status_code} {r.text[:300]}")
                            continue
                        results[body["claim_id"]] = r.json()
                    if j % REPLAY_EVERY == 0:  # the same claim again (a client unsure it got through)
                        again = _post(own, "/v1/settle", body, desk[body["hospital"]])
                        with lock:
                            replays.append((r.json(), again.json() | {"status": again.status_code}))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=work, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        _revoke_b_everywhere(srv, db, tokens)
    assert errors == []
    assert len(results) == CLIENTS * per_client
    assert len(replays) == CLIENTS * per_client // REPLAY_EVERY
    for first, again in replays:  # the original result, recorded nothing
        assert (again["status"], again["replayed"]) == (200, True)
        assert {k: again[k] for k in ("claim_id", "seq", "relief", "ytd_relief", "desk")} == {
            k: first[k] for k in ("claim_id", "seq", "relief", "ytd_relief", "desk")}
    rows = db.rows(ROWS)
    # nothing lost, nothing twice: every claim id sent is in the ledger exactly once
    assert sorted(r[2] for r in rows) == sorted(sent)
    bracket_of = {cid: NEAR if cid.startswith("PRE-") else BRACKETS[b["self_pay"]] for cid, b in sent.items()}
    granted: dict[str, int] = defaultdict(int)
    _walk_caps(rows, bracket_of, granted)
    # each person's year: the cap, exactly, or the brackets' sum when that is less
    claimed: dict[str, int] = defaultdict(int)
    for cid, b in sent.items():
        claimed[b["person_id"]] += bracket_of[cid]
    assert granted == {p: min(CAP, claimed[p]) for p in PERSONS}
    assert sum(g == CAP for g in granted.values()) >= len(PERSONS) * 9 // 10  # nearly all at the cap
    desk_id = {HOSPITAL_A: tokens.ids["desk_a"], HOSPITAL_B: tokens.ids["desk_b"]}
    by_claim = {r[2]: r for r in rows}
    for cid, body in sent.items():
        seq, _e, _c, person, self_pay, hospital, desk_written, relief, _b, _y = by_claim[cid]
        assert (person, hospital, desk_written) == (body["person_id"], body["hospital"], desk_id[body["hospital"]])
        assert self_pay == FEN[body["self_pay"]]
        if cid in results:  # what each client was told is what was recorded
            assert (results[cid]["seq"], results[cid]["relief"]) == (seq, _yuan(relief)), cid
    _verify(db)
    n = CLIENTS * per_client + len(replays)
    print(f"\n{db.backend}: {CLIENTS} clients × {per_client} settlements (+{len(replays)} replays) on 3 workers "
          f"in {elapsed:.1f} s, {n / elapsed:.0f} requests/s")


# -- kill -9 ------------------------------------------------------------------------------------

KILLS = 6
STAY = 140_000  # 3,000 yuan: (3,000 − 1,000) × 70% = 1,400.00


def test_workers_killed_mid_request_leave_no_partial_row_and_retries_get_the_original(county, tmp_path):
    db, tokens = county
    stop = threading.Event()
    outcomes: dict[str, list] = defaultdict(list)   # claim id → what each attempt saw
    final: dict[str, dict] = {}
    unanswered: list[str] = []
    answered = [0]
    lock = threading.Lock()
    with server(db.location, workers=3, log=tmp_path / "serve.log") as srv:

        def work(k: int) -> None:
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                j = 0
                while not stop.is_set():
                    body = {"claim_id": f"X{k}-{j}", "person_id": f"KP{j % 7}", "self_pay": "3000",
                            "date": "2024-06-01", "group": "key", "kind": "inpatient"}
                    give_up = time.monotonic() + 120  # retried until answered (respawns are slow under load)
                    while True:
                        try:
                            r = c.post("/v1/settle", json=body, headers={"Authorization": f"Bearer {tokens.desk_a}"})
                        except httpx.TransportError as e:
                            seen: object = type(e).__name__
                        else:
                            seen = r.status_code
                        with lock:
                            outcomes[body["claim_id"]].append(seen)
                            if seen in (200, 201):
                                final[body["claim_id"]] = r.json()
                                answered[0] += 1
                                break
                        if time.monotonic() > give_up:
                            with lock:
                                unanswered.append(body["claim_id"])
                            return
                        time.sleep(0.02)
                    j += 1

        def progress() -> int:
            with lock:
                return answered[0]

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]  # every worker kept busy
        for t in threads:
            t.start()
        killed = 0
        try:
            deadline = time.monotonic() + 120  # a loaded machine respawns workers slowly
            while killed < KILLS and time.monotonic() < deadline:
                # kill only while the service is settling: three workers up, and answers since the last kill
                seen_before = progress()
                while time.monotonic() < deadline and (len(srv.workers()) < 3 or progress() < seen_before + 10):
                    time.sleep(0.05)
                workers = srv.workers()
                if workers and time.monotonic() < deadline:
                    os.kill(random.choice(workers), signal.SIGKILL)  # a worker this test's server started
                    killed += 1
            seen_before = progress()  # and settling again after the last one
            while time.monotonic() < deadline and (len(srv.workers()) < 3 or progress() < seen_before + 10):
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert unanswered == [], f"claims never answered after {killed} kills: {unanswered}"
        interrupted = [cid for cid, seen in outcomes.items() if any(isinstance(s, str) for s in seen)]
        # a retry now (the claim surely recorded) returns the original result, recording nothing
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for cid in interrupted:
                body = {"claim_id": cid, "person_id": final[cid]["person_id"], "self_pay": "3000",
                        "date": "2024-06-01", "group": "key", "kind": "inpatient"}
                r = _post(c, "/v1/settle", body, tokens.desk_a)
                assert r.status_code == 200 and r.json()["replayed"] is True, r.text
                assert (r.json()["seq"], r.json()["relief"]) == (final[cid]["seq"], final[cid]["relief"])
    assert killed == KILLS, f"{killed} of {KILLS} kills in 120 s"
    assert interrupted, f"no request was interrupted by {killed} kills: {dict(outcomes)}"
    rows = db.rows(ROWS)
    # no partial row and none twice: exactly the claims the clients were answered for, once each
    assert sorted(r[2] for r in rows) == sorted(final)
    for seq, _e, cid, *_, relief, _b, _y in rows:  # what the client was told is what was recorded
        assert (final[cid]["seq"], final[cid]["relief"]) == (seq, _yuan(relief)), cid
    _walk_caps(rows, dict.fromkeys(final, STAY), defaultdict(int))
    _verify(db)
    if db.backend == "postgresql":  # the killed workers' transactions ended with them: no lock left held
        for _ in range(100):
            if db.rows("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0] == 0:
                break
            time.sleep(0.1)
        assert db.rows("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0] == 0
    print(f"\n{db.backend}: {killed} workers killed, {len(final)} settlements, {len(interrupted)} interrupted "
          f"and retried")


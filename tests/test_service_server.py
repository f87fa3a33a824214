"""The service as it runs: ``medaid serve`` (uvicorn) in a subprocess.

* The desk commands with ``--server`` print what they print against a ledger file, with the same
  exit codes, command for command (the times of recording aside).
* The log never holds an ID number.
* Load: 3 workers, 16 clients from two hospitals settling persons near their annual caps: every
  cap exact, nothing lost or duplicated, the ledger verifies.
* Workers killed with SIGKILL in the middle of requests, repeatedly: no partial row, and the
  client's retry with the same claim id gets the original result.

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
from collections import Counter, defaultdict

import pytest

pytest.importorskip("uvicorn", reason="the service needs the service extra: pip install 'medaid[service]'")
httpx = pytest.importorskip("httpx")

from medaid.ledger import Ledger  # noqa: E402

try:
    from service_support import HOSPITAL_A, HOSPITAL_B, PERSON, RULES, env, make_tokens, server
except ImportError:  # pragma: no cover - tests collected as a package
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


# -- load -----------------------------------------------------------------------------------------

PERSONS = [f"L{i:03d}" for i in range(20)]


def _post(client: httpx.Client, path: str, body: dict, secret: str, tries: int = 40) -> httpx.Response:
    """POST, sending it again (same body, so the same claim id) while the answer is lost or the
    ledger busy."""
    for _ in range(tries):
        try:
            r = client.post(path, json=body, headers={"Authorization": f"Bearer {secret}"})
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        if r.status_code != 503:
            return r
        time.sleep(0.05)
    raise AssertionError(f"no answer for {body}")


def test_load_two_hospitals_sixteen_clients_caps_exact_nothing_lost_or_duplicated(tmp_path):
    county = tmp_path / "county.sqlite3"
    tokens = make_tokens(county)
    clients, per_client = 16, 25
    with server(county, workers=3) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        # every person near the cap: 100,000 yuan relieved 87,800, 12,200 left
        for p in PERSONS:
            r = _post(c, "/v1/settle", {"claim_id": f"PRE-{p}", "person_id": p, "self_pay": "100000",
                                        "date": "2024-03-01", "group": "key", "kind": "inpatient"}, tokens.desk_a)
            assert r.status_code == 201 and r.json()["relief"] == "87800.00"
        results: dict[str, dict] = {}
        replays: list[tuple[dict, dict]] = []
        errors: list[str] = []
        lock = threading.Lock()

        def work(k: int) -> None:
            secret = tokens.desk_a if k % 2 == 0 else tokens.desk_b
            rnd = random.Random(k)
            with httpx.Client(base_url=srv.url, timeout=60) as own:
                for j in range(per_client):
                    body = {"claim_id": f"K{k:02d}-{j:03d}", "person_id": rnd.choice(PERSONS), "self_pay": "30000",
                            "date": "2024-06-01", "group": "key", "kind": "inpatient"}
                    r = _post(own, "/v1/settle", body, secret)
                    if r.status_code not in (200, 201):
                        with lock:
                            errors.append(r.text)
                        continue
                    with lock:
                        results[body["claim_id"]] = r.json()
                    if j % 5 == 0:  # the same claim again (a client unsure it got through)
                        again = _post(own, "/v1/settle", body, secret)
                        with lock:
                            replays.append((r.json(), again.json()))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    assert errors == []
    assert len(results) == clients * per_client
    for first, again in replays:
        assert again["replayed"] is True and (again["seq"], again["relief"]) == (first["seq"], first["relief"])
    with Ledger(county, create=False) as lg:
        assert lg.verify().problems == ()
        entries = [e for e in lg.entries() if e.entry == "settlement"]
        assert Counter(e.claim_id for e in entries).most_common(1)[0][1] == 1  # none twice
        assert len(entries) == len(PERSONS) + clients * per_client              # none lost
        granted: dict[str, int] = defaultdict(int)
        for e in entries:
            granted[e.person_id] += e.relief
            assert e.hospital == (HOSPITAL_A if e.claim_id.startswith("PRE") or int(e.claim_id[1:3]) % 2 == 0
                                  else HOSPITAL_B)
        hit = {r["person_id"] for r in results.values()}
        for p in PERSONS:
            # exactly the cap for everyone who claimed again: 87,800 + 12,200; the others 87,800
            assert granted[p] == (10_000_000 if p in hit else 8_780_000), p
            reliefs = sorted(r["relief"] for r in results.values() if r["person_id"] == p)
            if p in hit:  # one claim got what was left, every later one nothing (the annual cap)
                assert reliefs[-1] == "12200.00" and set(reliefs[:-1]) <= {"0.00"}
        for cid, r in results.items():
            assert r["desk"] == (tokens.ids["desk_a"] if int(cid[1:3]) % 2 == 0 else tokens.ids["desk_b"])
    print(f"\n{clients * per_client} settlements by {clients} clients on 3 workers in {elapsed:.2f} s")


# -- kill -9 ------------------------------------------------------------------------------------


def test_workers_killed_mid_request_leave_no_partial_row_and_retries_get_the_original(tmp_path):
    county = tmp_path / "county.sqlite3"
    tokens = make_tokens(county)
    stop = threading.Event()
    outcomes: dict[str, list] = defaultdict(list)   # claim id → what each attempt saw
    final: dict[str, dict] = {}
    lock = threading.Lock()
    with server(county, workers=3) as srv:

        def work(k: int) -> None:
            with httpx.Client(base_url=srv.url, timeout=30) as c:
                j = 0
                while not stop.is_set():
                    body = {"claim_id": f"X{k}-{j}", "person_id": f"KP{j % 7}", "self_pay": "3000",
                            "date": "2024-06-01", "group": "key", "kind": "inpatient"}
                    give_up = time.monotonic() + 60  # retried until answered (respawns are slow under load)
                    while time.monotonic() < give_up:
                        try:
                            r = c.post("/v1/settle", json=body, headers={"Authorization": f"Bearer {tokens.desk_a}"})
                        except httpx.TransportError as e:
                            with lock:
                                outcomes[body["claim_id"]].append(type(e).__name__)
                            time.sleep(0.02)
                            continue
                        with lock:
                            outcomes[body["claim_id"]].append(r.status_code)
                        if r.status_code in (200, 201):
                            with lock:
                                final[body["claim_id"]] = r.json()
                            break
                        time.sleep(0.02)
                    j += 1

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]  # every worker kept busy
        for t in threads:
            t.start()
        killed = 0
        try:
            time.sleep(1.0)
            deadline = time.monotonic() + 60  # a loaded machine respawns workers slowly
            while killed < 8 and time.monotonic() < deadline:
                workers = srv.workers()
                if not workers:  # all being respawned: wait for one, not a turn lost
                    time.sleep(0.1)
                    continue
                os.kill(random.choice(workers), signal.SIGKILL)  # a worker this test's server started
                killed += 1
                time.sleep(0.7)
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join()
        interrupted = [cid for cid, seen in outcomes.items() if any(isinstance(s, str) for s in seen)]
        # a retry now (the claim surely recorded) returns the original result, recording nothing
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for cid in interrupted:
                body = {"claim_id": cid, "person_id": final[cid]["person_id"], "self_pay": "3000",
                        "date": "2024-06-01", "group": "key", "kind": "inpatient"}
                r = c.post("/v1/settle", json=body, headers={"Authorization": f"Bearer {tokens.desk_a}"})
                assert r.status_code == 200 and r.json()["replayed"] is True
                assert (r.json()["seq"], r.json()["relief"]) == (final[cid]["seq"], final[cid]["relief"])
    assert killed >= 6
    assert interrupted, f"no request was interrupted by {killed} kills: {dict(outcomes)}"
    with Ledger(county, create=False) as lg:
        v = lg.verify()
        assert v.problems == ()
        entries = list(lg.entries())
        assert Counter(e.claim_id for e in entries).most_common(1)[0][1] == 1
        assert {e.claim_id for e in entries} == set(final)
        for e in entries:  # what the client was told is what was recorded
            assert (final[e.claim_id]["seq"], final[e.claim_id]["relief"]) == (e.seq, f"{e.relief / 100:.2f}")
    print(f"\n{killed} workers killed, {len(final)} settlements, {len(interrupted)} interrupted and retried")

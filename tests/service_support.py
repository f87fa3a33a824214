"""What the service tests share: a ledger with a token of every kind, and a real uvicorn server
in a subprocess (``medaid serve``), started on a free port and stopped afterwards.

The figures the tests expect are worked by hand from rules/chongqing-county-2019.toml (key
recipients, inpatient: nothing below 1,000 yuan, 70% of 1,000-10,000, 85% of 10,000-50,000, 95%
above; annual cap 100,000 per inpatient pool, which low-income recipients share):

* 30,000 yuan → (10,000 − 1,000) × 70% + (30,000 − 10,000) × 85% = 6,300 + 17,000 = 23,300.00;
  the patient pays 6,700.00.
* 100,000 yuan → 6,300 + 40,000 × 85% + 50,000 × 95% = 6,300 + 34,000 + 47,500 = 87,800.00,
  leaving 12,200.00 of the cap: a following 30,000 yuan stay (23,300 by brackets) gets 12,200.00.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import medaid
from medaid.service.store import open_ledger
from medaid.service.tokens import TokenStore

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
SRC = Path(medaid.__file__).resolve().parents[1]
HOSPITAL_A = "County People's Hospital"
HOSPITAL_B = "县中医院"
PERSON = "500101198001011234"  # an ID number: it must never reach a log


class Tokens(NamedTuple):
    """The secrets (and ids) of one token of each kind."""

    desk_a: str
    desk_b: str
    reviewer: str
    admin: str
    revoked: str
    ids: dict[str, str]


def make_tokens(ledger: object) -> Tokens:
    """A ledger (created: a path, or anything whose text is its location) holding a desk token
    for hospitals A and B, a reviewer, an admin and
    a revoked desk token of A."""
    with open_ledger(str(ledger)) as lg:
        store = TokenStore(lg)
        made = {
            "desk_a": store.add("desk", HOSPITAL_A), "desk_b": store.add("desk", HOSPITAL_B),
            "reviewer": store.add("reviewer"), "admin": store.add("admin"), "revoked": store.add("desk", HOSPITAL_A),
        }
        store.revoke(made["revoked"][0].id)
    return Tokens(**{k: v[1] for k, v in made.items()}, ids={k: v[0].id for k, v in made.items()})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(**extra: str) -> dict[str, str]:
    """The environment of a medaid subprocess running the code under test."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("MEDAID_")}
    out.update(PYTHONPATH=str(SRC), PYTHONDONTWRITEBYTECODE="1", LC_ALL="C.UTF-8", LANG="C.UTF-8",
               PYTHONIOENCODING="utf-8", COLUMNS="200", TZ="UTC")
    out.update(extra)
    return out


class Server(NamedTuple):
    url: str
    process: subprocess.Popen[str]
    log: Path

    def workers(self) -> list[int]:
        """The pids of the uvicorn worker processes: the children of the server process that
        multiprocessing spawned (not its resource tracker)."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True)
        found = []
        for pid in (int(p) for p in out.stdout.split()):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                found.append(pid)
        return found


@contextlib.contextmanager
def server(ledger: Path | str, *, workers: int = 1, log: Path | None = None,
           timeout: float = 60.0, rules: Path = RULES) -> Iterator[Server]:
    """``medaid serve`` on a free port until the block ends (SIGTERM, then SIGKILL); ``ledger`` a
    file (its log beside it unless ``log`` says) or anything whose text is a ledger URL (``log`` given);
    ``rules`` the rule file or folder served (the shipped ones unless it says)."""
    import httpx

    port = free_port()
    if log is None:
        assert isinstance(ledger, Path), "a ledger that is not a file needs log="
        log = ledger.with_suffix(".log")
    out = open(log, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    p = subprocess.Popen(
        [sys.executable, "-m", "medaid.cli", "serve", "--ledger", str(ledger), "--rules", str(rules),
         "--port", str(port), "--workers", str(workers)],
        stdout=out, stderr=subprocess.STDOUT, env=env(), text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        ready = 0
        while True:
            if p.poll() is not None:
                raise RuntimeError(f"medaid serve exited {p.returncode}:\n{log.read_text(encoding='utf-8')}")
            try:
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    ready += 1
                    if ready >= workers:  # (a few answers: more workers have started)
                        break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"medaid serve did not answer in {timeout} s:\n{log.read_text(encoding='utf-8')}")
            time.sleep(0.1)
        yield Server(url, p, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        out.close()


@contextlib.contextmanager
def api_client(ledger: object, rules: Path | str) -> Iterator[Any]:
    """fastapi's test client of the service on ``ledger`` (a path, or anything whose text is its
    location) with the rules at ``rules``; fastapi (the service extra) is imported here, so that
    the tests that need no client import this module without it."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from medaid.service.app import create_app
    from medaid.service.store import Settings

    with TestClient(create_app(Settings(str(ledger), str(rules)))) as c:
        yield c


def post(client: Any, token: str, path: str, body: object) -> Any:
    """``POST path`` with the JSON ``body`` as the holder of the bearer ``token``."""
    return client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})

"""A desk's commands on an SQLite ledger that ``medaid serve`` is serving lose none of the
server's writes (docs/desk.md *The ledger's guarantees*).

SQLite locks its file with POSIX (fcntl) locks, which belong to a process and which closing ANY
descriptor of the file drops (sqlite.org, *How To Corrupt An SQLite Database File*, 2.2).  A
process holding a connection that opened and closed the file itself (to look at its header, say)
lost its locks unseen; the next command to close its connection then believed itself the last
one, checkpointed and deleted the ``-wal`` and ``-shm`` files, and the server's following
settlements went to a deleted write-ahead log: answered 201, never in the ledger.  Here a real
``medaid serve`` settles X1 and X2, every command that opens the file runs against it, and X3,
settled afterwards, must be in the ledger next to them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("fastapi", reason="the service needs the service extra: pip install 'medaid[service]'")

import httpx  # noqa: E402

try:
    from service_support import PERSON, env, make_tokens, server
except ImportError:  # pragma: no cover - tests collected as a package
    from tests.service_support import PERSON, env, make_tokens, server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

#: The desk's commands that open the ledger file while the server holds it.
COMMANDS = (
    ["ledger", "verify"],
    ["history", PERSON],
    ["tokens", "list"],
    ["ledger", "migrate"],
    ["report", "--ledger"],
)


def medaid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medaid.cli", *args], capture_output=True, text=True,
                          env=env(), timeout=60)


def settle(url: str, secret: str, cid: str) -> httpx.Response:
    body = {"claim_id": cid, "person_id": PERSON, "self_pay": "3000", "date": "2024-05-03",
            "group": "key", "kind": "inpatient"}
    return httpx.post(f"{url}/v1/settle", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def claim_ids(ledger) -> list[str]:
    """The claims in the ledger as a fresh process reads them."""
    out = medaid("history", PERSON, "--ledger", str(ledger), "--json")
    assert out.returncode == 0, out.stderr
    return sorted({r["claim_id"] for r in json.loads(out.stdout)["entries"]})


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c[:2]) if c[0] != "history" else "history")
def test_a_command_on_a_served_ledger_loses_none_of_the_servers_writes(tmp_path, command):
    ledger = tmp_path / "l.sqlite3"
    tokens = make_tokens(ledger)
    with server(ledger) as srv:
        assert settle(srv.url, tokens.desk_a, "X1").status_code == 201
        assert settle(srv.url, tokens.desk_a, "X2").status_code == 201
        args = [*command, str(ledger)] if command[-1] == "--ledger" else [*command, "--ledger", str(ledger)]
        done = medaid(*args)
        assert done.returncode == 0, done.stderr
        assert settle(srv.url, tokens.desk_a, "X3").status_code == 201
        # the server's write-ahead log is still the file's, while it runs
        assert (tmp_path / "l.sqlite3-wal").exists() and (tmp_path / "l.sqlite3-shm").exists()
        assert claim_ids(ledger) == ["X1", "X2", "X3"]
        again = medaid("ledger", "verify", "--ledger", str(ledger))
        assert again.returncode == 0, again.stdout + again.stderr
    assert claim_ids(ledger) == ["X1", "X2", "X3"]  # and after the server stopped

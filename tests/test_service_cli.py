"""``medaid tokens`` and ``medaid serve`` on the command line; the service stays out of
``import medaid`` and ``medaid --help``."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner

from medaid.cli import main

try:
    from service_support import HOSPITAL_A, RULES, env
except ImportError:  # pragma: no cover - tests collected as a package
    from tests.service_support import HOSPITAL_A, RULES, env


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_tokens_add_prints_the_secret_once_and_stores_only_its_hash(tmp_path):
    ledger = tmp_path / "county.sqlite3"
    r = subprocess.run([sys.executable, "-m", "medaid.cli", "tokens", "add", "--ledger", str(ledger),
                        "--hospital", HOSPITAL_A, "--role", "desk"], capture_output=True, text=True, env=env())
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert secret.startswith("mdt_") and len(secret) == 47 and "\n" not in secret  # stdout: the secret alone
    assert "shown this once" in r.stderr and HOSPITAL_A in r.stderr
    assert secret.encode() not in ledger.read_bytes()
    con = sqlite3.connect(ledger)
    [(tid, stored, hospital, role)] = con.execute("SELECT id, token_hash, hospital, role FROM tokens").fetchall()
    con.close()
    assert (stored, hospital, role) == (hashlib.sha256(secret.encode()).hexdigest(), HOSPITAL_A, "desk")
    listed = run("tokens", "list", "--ledger", str(ledger))
    assert tid in listed.output and secret not in listed.output and "desk" in listed.output
    j = json.loads(run("tokens", "list", "--ledger", str(ledger), "--json").output)
    assert [(t["id"], t["active"]) for t in j] == [(tid, True)]
    gone = run("tokens", "revoke", tid, "--ledger", str(ledger))
    assert gone.exit_code == 0 and f"Token {tid} revoked" in gone.output
    again = run("tokens", "revoke", tid, "--ledger", str(ledger))
    assert again.exit_code == 1 and "already revoked" in again.output
    assert run("tokens", "revoke", "tnothing", "--ledger", str(ledger)).exit_code == 1
    assert json.loads(run("tokens", "list", "--ledger", str(ledger), "--json").output)[0]["active"] is False


def test_a_desk_token_needs_its_hospital_and_roles_are_checked(tmp_path):
    ledger = str(tmp_path / "county.sqlite3")
    r = run("tokens", "add", "--ledger", ledger, "--role", "desk")
    assert r.exit_code == 1 and "names its hospital" in r.output
    assert run("tokens", "add", "--ledger", ledger, "--role", "boss").exit_code == 2
    admin = json.loads(run("tokens", "add", "--ledger", ledger, "--role", "admin", "--json").output)
    assert (admin["role"], admin["hospital"], admin["token"][:4]) == ("admin", None, "mdt_")


def test_serve_refuses_bad_rules_or_a_foreign_ledger_before_listening(tmp_path):
    bad = tmp_path / "rules.toml"
    bad.write_text('id = "x"\n', encoding="utf-8")
    r = run("serve", "--rules", str(bad), "--ledger", str(tmp_path / "l.sqlite3"))
    assert r.exit_code == 1 and "rules.toml" in r.output
    foreign = tmp_path / "notes.sqlite3"
    foreign.write_text("not a ledger\n" * 20)
    r = run("serve", "--rules", str(RULES), "--ledger", str(foreign))
    assert r.exit_code == 1 and "not a medaid ledger" in r.output
    # a PostgreSQL ledger is served (tests/test_service_web.py); one that cannot be reached is refused,
    # named without its password
    r = run("serve", "--rules", str(RULES), "--ledger", "postgresql://county:s3cret@db.invalid/medaid")
    assert r.exit_code == 1 and "cannot reach the ledger's database" in r.output, r.output
    assert "postgresql://county:***@db.invalid/medaid" in r.output and "s3cret" not in r.output


def test_serve_binds_to_this_machine_unless_told_otherwise():
    r = run("serve", "--help")
    assert "[default: 127.0.0.1]" in r.output and "--workers N" in r.output and "[default: 8000;" in r.output


def test_the_desk_commands_take_server():
    for cmd in ("settle", "quote", "reverse", "history"):
        assert "--server URL" in run(cmd, "--help").output, cmd


def test_server_without_a_token_is_a_usage_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "medaid.cli", "history", "P1", "--server", "http://127.0.0.1:9"],
                       capture_output=True, text=True, env=env())
    assert r.returncode == 2 and "MEDAID_TOKEN" in r.stderr


@pytest.mark.parametrize("code", [
    "import medaid",
    "from medaid.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass",
    "from medaid.cli import main\ntry:\n    main(['settle', '--help'])\nexcept SystemExit:\n    pass",
])
def test_import_medaid_and_the_help_import_no_web_framework(code):
    probe = code + "\nimport sys\nprint([m for m in ('fastapi', 'starlette', 'uvicorn', 'jinja2', 'httpx', " \
                   "'pydantic', 'urllib.request') if m in sys.modules], file=sys.stderr)"
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", probe], capture_output=True, text=True, env=env())
    assert r.stderr.strip().splitlines()[-1] == "[]", r.stderr[-2000:]

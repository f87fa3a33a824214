"""A throwaway PostgreSQL cluster for the tests and the benchmark: the machine's own PostgreSQL
binaries (Debian's ``postgresql`` package, ``/usr/lib/postgresql/N/bin``; or ``$MEDAID_PG_BIN``,
or ``initdb`` on the PATH), ``initdb`` into a fresh temporary folder, ``pg_ctl start`` listening
only on a unix socket in that folder (no port to collide with), stopped and removed by
:meth:`Cluster.stop`.  PostgreSQL refuses to run as root: as root the folder is given to the
``postgres`` user and the binaries run as it (``runuser``); otherwise they run as you.

Why the machine's PostgreSQL and not a pip-installed server: it is the PostgreSQL 15 a county
runs (Debian's), it installs from the distribution's packages with no binary fetched at run
time, and it starts in about a second.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote


def find_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``, or ``None`` when PostgreSQL is not installed."""
    env = os.environ.get("MEDAID_PG_BIN")
    if env:
        return Path(env) if (Path(env) / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    prefer = [p for p in found if Path(p).parts[-3] == "15"]
    if prefer or found:
        return Path((prefer or found)[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class Cluster:
    """A running throwaway cluster; :meth:`url` names a database in it."""

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        self.bindir = bindir
        # as root, in /tmp: the postgres user must reach the folder (a root-only $TMPDIR would not do)
        self.root = Path(tempfile.mkdtemp(prefix="medaid-pg-", dir="/tmp" if os.geteuid() == 0 else None))
        self.data = self.root / "data"
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o755)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", *([] if durable else ["--no-sync"]))
        settings = [
            "listen_addresses=''", f"unix_socket_directories='{self.root}'", "max_connections=60",
            "shared_buffers=64MB", "log_min_messages=warning", "logging_collector=off",
        ]
        if not durable:  # throwaway data: no fsync (the tests check logic, not the disk)
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write("\n".join(settings) + "\n")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60", "start")

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root)
        if r.returncode:
            log = self.root / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr or r.stdout}\n{tail}")

    def url(self, dbname: str = "postgres", schema: str | None = None) -> str:
        """A ``postgresql://`` URL of database ``dbname`` over the socket, optionally with
        ``schema`` first on the search path."""
        url = f"postgresql://postgres@/{dbname}?host={quote(str(self.root), safe='')}"
        if schema:
            url += "&options=" + quote(f"-csearch_path={schema}", safe="")
        return url

    def sql(self, *statements: str, dbname: str = "postgres") -> None:
        """Run statements as the superuser (autocommit)."""
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as con:
            for s in statements:
                con.execute(s)  # type: ignore[call-overload]

    def stop(self) -> None:
        """Stop the server and remove its folder (an immediate shutdown: its data is thrown away)."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

"""Fixtures shared by the ledger tests: every ledger test runs against both backends; and the
service tests' ``tokens`` (a ledger with a token of every kind).

``db`` is parametrised over ``sqlite`` (a file in the test's folder) and ``postgresql`` (a fresh
schema in one throwaway PostgreSQL cluster per session, started by :mod:`tests.pgcluster` and removed
afterwards); it gives the ledger's location (a path or a URL, what ``open_ledger`` and
``--ledger`` take) and raw access for the tests that alter a ledger behind its back.  The
PostgreSQL cases are skipped, saying why, only when PostgreSQL is not installed (CI installs it).

``spark`` is the one local Spark session of the test session (the Spark modules skip themselves
when pyspark or Java is absent, before asking for it).

Under pytest-xdist (``make test`` runs ``-n 2 --dist loadfile``) every test module is one unit of
work, run whole by one worker, and the three Spark modules are one unit (below).  Session-scoped
fixtures are per worker: each worker starts its own PostgreSQL cluster (a fresh temporary folder
and unix socket, no port) and its own Spark session if it runs a test that asks for one;
``tmp_path`` folders are per worker (pytest-xdist's basetemp).
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pgcluster import Cluster, find_bin  # noqa: E402

BACKENDS = ("sqlite", "postgresql")
_schemas = itertools.count(1)


# The suite in parallel (pytest-xdist; `make test` passes ``-n 2 --dist loadfile``).  Each test
# module is one unit of work, run whole by one worker, so that its module-scoped fixtures are made
# once (tests/test_county_year.py walks a whole year per backend in one); the three Spark modules
# are one unit, so that one worker starts a JVM.  The units start longest first (the slowest,
# named below, measured with --durations; then by their number of tests), so that no long module
# is left for the end while the other worker idles.  None of this changes what runs.
SLOW_FIRST = ("spark", "tests/test_service_server.py", "tests/test_docs.py", "tests/test_service_schema.py",
              "tests/test_county_year.py", "tests/test_ledger_concurrency.py", "tests/test_ledger_stateful.py")


def work_unit(nodeid: str) -> str:
    """The unit of work of a test: its module, or ``spark`` for the Spark modules."""
    module = nodeid.split("::", 1)[0]
    return "spark" if Path(module).name.startswith("test_spark") else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, with the Spark modules one unit and the units in the order the
    workers collected them (below)."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    config.option.loadscopereorder = False
    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a pytest-xdist worker (every worker sorts alike): the units in :data:`SLOW_FIRST`
    first, then the others by their number of tests; a unit's tests keep their order."""
    if not hasattr(config, "workerinput"):
        return
    units = [work_unit(item.nodeid) for item in items]
    count = {u: units.count(u) for u in set(units)}
    first = {u: i for i, u in reversed(list(enumerate(units)))}

    def rank(u: str) -> tuple[int, int, int]:
        return (SLOW_FIRST.index(u) if u in SLOW_FIRST else len(SLOW_FIRST), -count[u], first[u])

    order = sorted(range(len(items)), key=lambda i: (rank(units[i]), i))
    items[:] = [items[i] for i in order]


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark session (``local[2]``) for every Spark test of this process: the JVM and
    its context start once."""
    from medaid.spark.job import spark_session

    session = spark_session("local[2]", **{"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """One throwaway PostgreSQL cluster for the session (skipped if PostgreSQL is absent)."""
    bindir = find_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no initdb: apt-get install postgresql, or set MEDAID_PG_BIN)")
    cluster = Cluster(bindir)
    try:
        yield cluster
    finally:
        cluster.stop()


class Db:
    """A ledger's location on one backend, with raw access to its database."""

    def __init__(self, backend: str, location: str, cluster: Cluster | None = None) -> None:
        self.backend = backend
        self.location = location
        self.cluster = cluster
        if backend == "sqlite":
            self.integrity_error: type[Exception] = sqlite3.IntegrityError
        else:
            import psycopg

            self.integrity_error = psycopg.errors.RaiseException

    def __str__(self) -> str:
        return self.location

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A query's rows, straight from the database (``?`` placeholders)."""
        if self.backend == "sqlite":
            con = sqlite3.connect(self.location)
            try:
                return con.execute(sql, params).fetchall()
            finally:
                con.close()
        import psycopg

        with psycopg.connect(self.location, autocommit=True) as con:
            return con.execute(sql.replace("?", "%s"), params).fetchall()  # type: ignore[arg-type]

    def execute(self, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
        """Run statements (text, or text and parameters) in autocommit, behind the ledger's back."""
        if self.backend == "sqlite":
            con = sqlite3.connect(self.location, isolation_level=None)
            try:
                for s in statements:
                    sql, params = (s, ()) if isinstance(s, str) else s
                    con.execute(sql, params)
            finally:
                con.close()
            return
        import psycopg

        with psycopg.connect(self.location, autocommit=True) as con:
            for s in statements:
                sql, params = (s, ()) if isinstance(s, str) else s
                con.execute(sql.replace("?", "%s"), params or None)  # type: ignore[arg-type]

    def count(self) -> int:
        return int(self.rows("SELECT count(*) FROM entries")[0][0])

    def drop_triggers(self) -> list[str]:
        """The statements that drop the update and delete triggers."""
        on = "" if self.backend == "sqlite" else " ON entries"
        return [f"DROP TRIGGER entries_never_updated{on}", f"DROP TRIGGER entries_never_deleted{on}"]

    def create_triggers(self) -> list[str]:
        """The statements that put them back, as the first migration made them."""
        if self.backend == "sqlite":
            from medaid.ledger.schema import MIGRATIONS

            steps: tuple[str, ...] = MIGRATIONS[0].statements
        else:
            from medaid.ledger.postgres import STEPS

            steps = STEPS[1]
        return [s for s in steps if "CREATE TRIGGER" in s and "truncate" not in s.lower()]

    def alter(self, *statements: str | tuple[str, tuple[Any, ...]], restore: bool = True) -> None:
        """Change the ledger behind its back, the append-only triggers dropped for it (and put
        back afterwards unless ``restore`` is false)."""
        self.execute(*self.drop_triggers(), *statements, *(self.create_triggers() if restore else []))


@contextlib.contextmanager
def ledger_db(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[Db]:
    """A place for a new ledger on ``backend``: a file in ``tmp_path``, or a fresh schema in the
    session's cluster (dropped afterwards).  For fixtures that choose their backend themselves."""
    if backend == "sqlite":
        yield Db("sqlite", str(tmp_path / "desk.sqlite3"))
        return
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    schema = f"t{next(_schemas)}"
    cluster.sql(f"CREATE SCHEMA {schema}")
    try:
        yield Db("postgresql", cluster.url(schema=schema), cluster)
    finally:
        cluster.sql(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A place for a new ledger, on each backend in turn."""
    with ledger_db(request, request.param, tmp_path) as found:
        yield found


@pytest.fixture
def tokens(db: Db) -> Any:
    """A ledger ``db`` holding a token of every kind (tests/service_support.py ``make_tokens``),
    for the service's tests over both backends (they skip without the service extra)."""
    from service_support import make_tokens

    return make_tokens(db)

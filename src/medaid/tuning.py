"""Tuning: every setting that buys speed or memory with the allocator, threads or the garbage
collector, in one module, each scoped to the work that needs it and justified by a measurement.

Nothing here changes a result: each setting only decides how the same work is scheduled or
how its memory is handed back.  It sits at the package root, beside :mod:`medaid.money`,
because the scalar engine (:mod:`medaid.domain`, below the batch) pauses the garbage collector
too; it imports neither polars nor :mod:`concurrent.futures` at the top, so the desk commands
that import the engine pay nothing for it.

* Allocator: :func:`import_polars` (``medaid batch``, ``medaid recalc``).
* The scalar engine: :func:`settle_in_columns` (large calls settled in columns).
* Garbage collector: :func:`gc_paused` (the scalar engine's :func:`medaid.domain.engine.settle`),
  :func:`frozen_heap` (a service process, while it serves), :func:`command_heap` (``medaid
  batch``, while it starts and at its process's exit).
* Threads: :func:`alongside` (the rules load while the claim file is read; the totals while the
  results are written), :func:`read_ahead` (the next CSV piece parsed while this one is typed),
  :func:`on_the_side` (the inverse permutation worked out while the arithmetic runs),
  :func:`arithmetic_slices` and :func:`in_parallel` (the columnar arithmetic, slice by slice).
* Connections: :data:`SERVICE_POOL_SIZE` (a service process's PostgreSQL pool).
* Benchmarks: :func:`trace_steps` times the steps of :func:`medaid.batch.settle.settle_frame`.

The figures quoted come from this project's shared 2-core machines: README.md, *Performance
(measured)*, and docs/batch.md, *How it is fast*, give the full-size ones.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

T = TypeVar("T")
R = TypeVar("R")

# ----------------------------------------------------------------------------------------------
# the allocator

#: The environment variable through which polars' allocator (jemalloc, on Linux) takes settings
#: added to polars' own (``dirty_decay_ms:500,muzzy_decay_ms:1000``, set by ``import polars``).
ALLOCATOR_ENV = "_RJEM_MALLOC_CONF"
#: Batch settings: freed pages go back to the system within 0.2 s instead of 0.5 + 1 s.  A run
#: frees nearly as much as it keeps (the scan's pieces, the sort's work columns), so peak memory
#: is then close to the live data: 10 M claims peaked at 1,578 MiB instead of 1,815 MiB, in the
#: same time; 200,000 claims (``medaid batch``, 15 runs of each, alternated) at 172 MiB instead
#: of 192 MiB (median; 163–181 against 184–200), in the same time (best 1.34 s both).
ALLOCATOR_CONF = "dirty_decay_ms:200,muzzy_decay_ms:0"


def import_polars() -> None:
    """Import polars with :data:`ALLOCATOR_CONF`, unless it is already loaded or the user set
    their own.  The allocator reads its settings once, when polars is imported; they are taken
    out of the environment again so that child processes do not inherit them.  Only the batch
    commands ask for them, before anything imports polars (the package boundary: every other
    module that uses polars imports it at its top); a library user's process is left as it is."""
    if "polars" in sys.modules or ALLOCATOR_ENV in os.environ:
        import polars  # noqa: F401
        return
    os.environ[ALLOCATOR_ENV] = ALLOCATOR_CONF
    try:
        import polars  # noqa: F401,F811
    finally:
        os.environ.pop(ALLOCATOR_ENV, None)


# ----------------------------------------------------------------------------------------------
# the garbage collector


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (reference counting still frees everything:
    the engine makes no cycles); the collector's previous state is restored after it.

    Settling 200,000 claims with :func:`medaid.domain.engine.settle` allocates 400,000 objects
    that stay alive, so the collector would run again and again over a growing heap for nothing
    (benchmarks/bench_engine.py's claims, 7 runs of each alternated, on the shared machine):
    claim mode 2.47 s paused against 2.79 s (median; best 1.70 s against 2.20 s), year mode
    2.05 s against 2.16 s (best 1.65 s against 1.80 s)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Inside the block, what was alive when it began (a service process's rules, application
    and connection pool: all it keeps for its life) is out of the cyclic collector's sight
    (:func:`gc.freeze`, after one collection); it is handed back to the collector afterwards.

    A service worker holds about 73,000 tracked objects once started.  Every few thousand
    requests the collector's full pass walks them all, and the worker answers nothing meanwhile:
    42–44 ms a pass on the shared machine (load 10), and 39–94 ms passes were seen while 8,000
    settlements ran in one process.  Frozen, the pass walks only what requests left behind
    (a full collection right after freezing: under 0.1 ms)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def command_heap() -> Iterator[Callable[[], None]]:
    """For a command whose process ends with it (``medaid batch``): no cyclic garbage collection
    while it starts, until it calls the function yielded (once its modules are imported and its
    rules loaded); that hands what is alive then, which lives to the end anyway, out of the
    collector's sight (:func:`gc.freeze`, with no collection first) and turns the collector back
    on.  Leaving the block hands it all back (:func:`gc.unfreeze`) and restores the collector's
    state, so that a process which goes on (a test's ``CliRunner``) keeps its usual collector.
    Its first use registers :func:`_frozen_at_exit` too.

    Starting ``medaid batch`` imports polars, pydantic, click and medaid: on the way the
    collector ran about 130 times (20 ms) over the growing heap, for nothing (imports make next
    to no garbage).  Measured on the peer benchmark's first 10 claims (``medaid batch …
    --columns claim_id,relief``, 10 runs of each, alternated, on the shared machine at load
    1.3): 456 ms median (426–665) as it was, 400 ms (381–428) with the heap frozen at exit
    alone, 359 ms (346–452) with the collector also paused (there for the whole run)."""
    was = gc.isenabled()
    frozen = False
    _freeze_at_exit()

    def started() -> None:
        nonlocal frozen
        if not frozen:
            frozen = True
            gc.freeze()
            if was:
                gc.enable()

    gc.disable()
    try:
        yield started
    finally:
        if frozen:
            gc.unfreeze()
        if was:
            gc.enable()


_AT_EXIT: list[bool] = []


def _freeze_at_exit() -> None:
    if not _AT_EXIT:
        import atexit

        _AT_EXIT.append(True)
        atexit.register(_frozen_at_exit)


def _frozen_at_exit() -> None:
    """At the interpreter's exit (an :mod:`atexit` function: after the command's output is
    written and flushed and its threads joined), what is still alive is handed out of the cyclic
    collector's sight (:func:`gc.freeze`), so that the interpreter's final collections, which
    walk every object alive to find cycles that are garbage, have nothing to walk.  Everything is
    still released by reference counting as the modules are cleared, and the system takes the
    process's memory back; only objects caught in a reference cycle are not finalised (Python
    does not promise that for objects alive at exit anyway, and medaid keeps no file or
    connection open to its end: results are written, flushed and renamed before the command
    returns).

    After a batch those collections took 50–60 ms (80 ms and more on a busy machine): the heap
    of polars, pydantic and the rules.  Frozen, the process ended 14–17 ms after its last
    ``atexit`` function (10 claims, 5 runs); a script that only imports polars, 32–51 ms."""
    gc.freeze()


# ----------------------------------------------------------------------------------------------
# threads: polars releases the interpreter lock while it works, so a thread running polars (or
# waiting for the disk) overlaps the caller's Python work on the second core


def _executor(workers: int, name: str) -> ThreadPoolExecutor:
    # imported on first use: concurrent.futures imports logging, which the desk commands (that
    # import this module through the engine) never need
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(workers, thread_name_prefix=name)


@overload
def alongside(fn: None, /, *args: Any, name: str) -> contextlib.AbstractContextManager[None]: ...


@overload
def alongside(fn: Callable[..., T], /, *args: Any, name: str) -> contextlib.AbstractContextManager[Future[T]]: ...


def alongside(fn: Callable[..., T] | None, /, *args: Any, name: str) -> contextlib.AbstractContextManager[Any]:
    """``fn(*args)`` on a thread of its own while the block runs (the block gets its future, or
    ``None`` when ``fn`` is ``None``: nothing to do); leaving the block waits for it.  Used where
    the two halves take turns on the interpreter lock little, measured with ``medaid batch`` on
    200,000 claims (bench_batch.py's file; 40 runs of each, alternated, on the shared machine:
    1.19 s median with both threads):

    * ``medaid-rules``: the rule files load (pydantic, pure Python) and the settlement and
      writer modules are imported while the claim file is read (polars): 1.35 s when the rules
      load first (the median of the runs' differences: 0.11 s);
    * ``medaid-totals``: the totals are computed (polars) while the results are written
      (mostly waits for the disk): 1.37 s when they are computed first (0.09 s);
    * ``medaid-digest``: the input file's sha256 for the run manifest
      (:func:`medaid.batch.manifest.input_entries`), from the command's start (``medaid batch``
      begins it before it imports polars and its batch modules, which take one core for
      0.1–0.2 s) while the file is read, settled and written: hashlib gives up the interpreter
      lock on each 1 MiB block, and hashes 190 MB/s on a machine without the CPU's SHA
      instructions (the peer benchmark's 10 M claims, 390 MB: 1.4–2.2 s) and 1.7 GB/s with
      them (0.23 s), time that would be added to the wall time if the hash ran before or
      after the batch (started at the read instead of the start: 1 M claims 0.05 s longer,
      median of 10 alternated runs' differences);
    * ``medaid-quotes``: the fast CSV scan's look for a quote character (one ``memchr`` pass
      over the mapped file; 4 ms for the 61 MB file of 1 M claims when it is in the page cache,
      a read of the whole file from disk when it is not) runs while polars scans the file."""
    return contextlib.nullcontext() if fn is None else _alongside(fn, *args, name=name)


@contextlib.contextmanager
def _alongside(fn: Callable[..., T], /, *args: Any, name: str) -> Iterator[Future[T]]:
    with _executor(1, name) as pool:
        yield pool.submit(fn, *args)


def on_the_side(fn: Callable[..., T], /, *args: Any, name: str) -> Future[T]:
    """Start ``fn(*args)`` on a thread of its own and return its future at once; the thread ends
    with the call (nobody waits for it but the future's reader).

    ``medaid-inverse``: the inverse permutation back to input order (one polars scatter) is
    worked out while the arithmetic runs.  Measured with ``settle_frame`` on bench_columnar.py's
    claims (in file order, so sorted), alternated with the inverse worked out in turn, on the
    shared machine under a load of 4–5: no gain at these sizes (200,000 claims, 31 runs: 0.072 s
    median against 0.069 s; 1,000,000, 15 runs: 0.350 s against 0.332 s), as the arithmetic
    already keeps both cores busy.  Kept for large batches on a quiet machine (docs/columnar.md:
    at 10 M claims back to input order took 0.60 s with it), where it should be measured
    again."""
    side = _executor(1, name)
    try:
        return side.submit(fn, *args)
    finally:
        side.shutdown(wait=False)


def read_ahead(items: Iterable[T], *, name: str) -> Iterator[T]:
    """The items of ``items``, the next one made on a thread while the caller works on this one.

    ``medaid-pieces``: a CSV file read piece by piece (:class:`medaid.io.csv_pieces.CsvPieces`)
    has its next piece parsed by polars while Python types this one.  The piece reader
    (``settle_file(reader="pieces")``, bench_batch.py's files, alternated with pieces read in
    turn, on the shared machine): 200,000 claims (21 runs) 0.237 s median against 0.255 s;
    1,000,000 claims (11 runs) 0.76 s against 0.91 s."""
    it = iter(items)
    with _executor(1, name) as ex:
        fut = ex.submit(next, it, None)
        while (item := fut.result()) is not None:
            fut = ex.submit(next, it, None)
            yield item
            del item


#: The columnar arithmetic runs on slices of about this many rows, cut at group starts: its
#: intermediate columns then never exist for the whole frame at once (peak memory).
SLICE_ROWS = 1 << 21
#: From this many rows on, the slices are worked on in parallel, at least one per core: the
#: prefix sums inside one slice run on one core.  Below it one slice is quicker (measured on
#: 2 cores: at 1 M rows 0.046 s against 0.058 s in two; at 10 M, 0.49 s in one against 0.44 s).
PARALLEL_ROWS = 1 << 21
#: At most this many slices at once, whatever the number of cores.
MAX_WORKERS = 8


def arithmetic_slices(rows: int, threads: int) -> tuple[int, int]:
    """``(slices, workers)`` for the columnar arithmetic on ``rows`` rows with ``threads``
    polars threads: slices of at most :data:`SLICE_ROWS` rows, and from :data:`PARALLEL_ROWS`
    rows on at least one per worker."""
    workers = max(1, min(threads, MAX_WORKERS))
    slices = -(-rows // SLICE_ROWS)
    if rows >= PARALLEL_ROWS:
        slices = max(slices, workers)
    return slices, workers


def in_parallel(fn: Callable[[T], R], items: Iterable[T], *, workers: int, name: str) -> list[R]:
    """``[fn(x) for x in items]``, on ``workers`` threads, results in order
    (``medaid-settle``: the arithmetic's slices, see :data:`PARALLEL_ROWS`)."""
    with _executor(workers, name) as pool:
        return list(pool.map(fn, items))


# ----------------------------------------------------------------------------------------------
# the scalar engine's large calls

#: From this many claims in one call on, ``medaid.settle`` (:func:`medaid.batch.objects.settle`)
#: hands them to the columnar engine when polars is already loaded.  Measured
#: (benchmarks/bench_engine.py's claims, best of 5, load 0.2; claim mode / year mode, claims/s
#: scalar against columns): 5,000 claims 274k against 228k / 275k against 202k; 10,000: 307k
#: against 348k / 271k against 332k; 20,000: 289k against 389k / 272k against 370k; 200,000:
#: 215k against 449k / 215k against 453k.  The same settlements at every size.
FRAME_SETTLE_FROM = 10_000
#: From this many on, even when polars must first be imported (0.13 s).  Measured in fresh
#: processes (year mode, twice each): 50,000 claims 0.22 s scalar against 0.23–0.26 s in
#: columns with the import; 100,000 claims 0.47–0.48 s against 0.35 s.
FRAME_SETTLE_COLD = 100_000


def settle_in_columns(claims: int, extended: bool) -> bool:
    """Whether ``medaid.settle`` (:func:`medaid.batch.objects.settle`) should settle ``claims``
    claims in columns: a rule book without the rules of *Rules real schemes need*, polars installed, and at least
    :data:`FRAME_SETTLE_FROM` claims (:data:`FRAME_SETTLE_COLD` while polars is not loaded)."""
    if extended or claims < FRAME_SETTLE_FROM:
        return False
    if "polars" in sys.modules:
        return True
    if claims < FRAME_SETTLE_COLD:
        return False
    import importlib.util

    return importlib.util.find_spec("polars") is not None


# ----------------------------------------------------------------------------------------------
# the service's connections to PostgreSQL

#: Connections of a service process's PostgreSQL pool, shared by its request threads (a thread
#: finding them all busy waits for one, as long as the ledger's busy timeout).  Writers of one
#: ledger are serialised by its locks anyway; a few workers × 10 stay well inside PostgreSQL's
#: default ``max_connections`` (100).  Measured (benchmarks/bench_service.py's clients, 3
#: workers, 32 clients, 1,500 settlements, alternated twice, the shared 2-core machine at load
#: 15): 4 connections gave 127 and 122 settlements/s (4.4–5.1 ms of the service's CPU each), 10
#: gave 131 and 105/s (4.4–5.0 ms): no difference the machine can show, so 10 stays.
SERVICE_POOL_SIZE = 10


# ----------------------------------------------------------------------------------------------
# benchmarks: the steps of a settlement, timed


class _Steps:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.steps: list[tuple[str, float]] = []
        self.last = clock()


_STEPS: ContextVar[_Steps | None] = ContextVar("medaid_steps", default=None)


@contextlib.contextmanager
def trace_steps(*, cpu: bool = False) -> Iterator[list[tuple[str, float]]]:
    """Inside the block, the work that marks its steps (:func:`mark`; ``settle_frame`` does)
    appends ``(step, seconds since the previous mark)`` to the list yielded; wall time, or this
    process's CPU time when ``cpu``.  Outside any such block :func:`mark` does nothing.  For
    benchmarks: ``with trace_steps() as steps: settle_frame(...)``."""
    steps = _Steps(time.process_time if cpu else time.perf_counter)
    token = _STEPS.set(steps)
    try:
        yield steps.steps
    finally:
        _STEPS.reset(token)


def mark(step: str) -> None:
    """End the step ``step`` of the traced work (:func:`trace_steps`), if it is traced."""
    steps = _STEPS.get()
    if steps is not None:
        now = steps.clock()
        steps.steps.append((step, now - steps.last))
        steps.last = now


# ----------------------------------------------------------------------------------------------
# recording a file in the ledger

#: Claims recorded in one ledger transaction by ``medaid batch --record``
#: (:func:`medaid.batch.record.record_file`).  Each transaction's durable commit (an ``fsync`` on
#: SQLite, a WAL flush on PostgreSQL) and its round trips are paid once per this many claims; but
#: the transaction holds the ledger (SQLite: the whole file; PostgreSQL: the chain's lock from its
#: first append) until it commits, so a desk settling meanwhile waits up to one transaction.
#: benchmarks/bench_record.py, 2,000 claims, best of 3 with the sizes taking turns, 6 Dec 2026 on
#: the shared 2-core machine (load average 18): claims/s and median transaction time at 1, 20,
#: 100 and 500 claims a transaction: SQLite 119 / 462 / 678 / 489 claims/s (7 / 37 / 120 / 726 ms);
#: PostgreSQL 58 / 192 / 206 / 220 (13 / 72 / 338 / 1,651 ms).  100 is the fastest on SQLite and
#: within 7% of the fastest on PostgreSQL, while a transaction stays near a third of a second
#: (500 gains nothing on SQLite and makes a desk wait 1.7 s on PostgreSQL).
RECORD_CHUNK = 100

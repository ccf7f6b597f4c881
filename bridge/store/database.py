"""One SQLite connection, group commit, and the fsync off the event loop.

Why group commit: durability before a 2xx costs one fsync per commit. Writes that arrive while
a commit is in progress are queued and run together in the next transaction under a single
``BEGIN IMMEDIATE`` … ``COMMIT``: one fsync for the whole batch. No caller's future resolves
before its batch has committed. A batch first runs without savepoints; if any write in it
fails, the batch is rolled back and run again with a SAVEPOINT around each write, so the
failing one rolls back alone.

Why the statements run on the event loop and only ``COMMIT`` on a thread: a batch's
statements touch only SQLite's page cache (WAL writes nothing to disk before the commit), so
they take microseconds; the commit waits for the disk. Running every statement on a worker
thread (the first version) made the two threads trade the GIL at each statement (the
``sqlite3`` module releases it around every step), and that trading cost more CPU than the
statements themselves: 0.4 ms of the worker's CPU per payment, under the bench. Now the
worker takes the GIL twice per batch (``COMMIT`` in, result out) and the event loop never
waits for the disk. One :class:`asyncio.Lock` keeps the loop's batch, the worker's commit and
the worker's reads (:meth:`Database.read`) from ever using the connection at once.

Small key lookups on the hot path (:meth:`Database.read_now`) run inline on the event loop,
sparing a hop to the worker thread, where reads would queue behind commits: on the writer's
own connection when no batch, commit or read holds it (its page cache is always current, as
it made every change), else on a second, read-only connection (in WAL mode a reader never
waits for the writer, but each commit by the other connection invalidates its page cache, so
its lookups cost about twice as much: 26 µs against 11 µs, measured).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from bridge.store.migrations import MIGRATIONS

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], Any]

logger = logging.getLogger(__name__)

#: Most writes one transaction takes; bounds the latency one batch adds to its last member.
MAX_BATCH = 256

#: The writer's page cache, KiB (SQLite's default is 2 MiB; pages are allocated as touched).
#: Payment ids are random, so each payment touches a random leaf of the primary-key index;
#: once the file outgrows the cache those are ``pread`` system calls on the event loop. With
#: 300,000 payments in the file: 3.7 → 1.25 ``pread`` per payment on the loop (strace). The
#: read-only connection keeps the default: each commit by the writer empties its cache anyway.
WRITER_CACHE_KIB = 64 * 1024


class Database:
    """The bridge's SQLite file: WAL, ``synchronous=FULL``, migrated on open."""

    def __init__(self, path: Path | str) -> None:
        if str(path) == ":memory:":
            raise ValueError(
                "the bridge's database must be a file: it is what makes payments durable"
            )
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._pending: list[tuple[Work, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._busy = asyncio.Lock()  # the connection: one batch, commit or read at a time
        self.batches = 0
        self.batched_writes = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._connect)
        reader = sqlite3.connect(
            Path(self.path).resolve().as_uri() + "?mode=ro",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )
        reader.row_factory = sqlite3.Row
        self._reader = reader

    def _connect(self) -> sqlite3.Connection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        MIGRATIONS.apply(sqlite_utils.Database(conn, execute_plugins=False))
        return conn

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the database thread, outside any transaction."""
        conn = self._connection()
        async with self._busy:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, conn)

    def read_now(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run a small read inline, on the caller's thread (see the module docstring).

        For index lookups only: anything that scans belongs in :meth:`read`. ``work`` must
        only read: it may run on the writer's connection.
        """
        if self._reader is None or self._conn is None:
            raise RuntimeError("database is not open")
        # Not locked: no transaction is open on the writer and no thread is using it.
        return work(self._reader if self._busy.locked() else self._conn)

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in a transaction; return once that transaction is on disk.

        ``work`` must not commit or roll back. If it raises, its own changes are undone and
        the exception is raised here; other writes in the same batch are not affected.
        """
        self._connection()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            async with self._busy:
                try:
                    outcomes = self._run_batch([work for work, _ in batch])
                    await loop.run_in_executor(self._executor, self._commit)
                except Exception as exc:  # the commit itself failed: nobody's write is durable
                    logger.exception("SQLite commit failed")
                    outcomes = [(False, exc)] * len(batch)
            self.batches += 1
            self.batched_writes += len(batch)
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)

    def _run_batch(self, works: list[Work]) -> list[tuple[bool, Any]]:
        """``BEGIN IMMEDIATE`` and every write of the batch, on the caller's thread; the
        transaction stays open for :meth:`_commit`."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            try:
                return [(True, work(conn)) for work in works]
            except Exception:
                conn.execute("ROLLBACK")  # one write failed: redo, each in its savepoint
                conn.execute("BEGIN IMMEDIATE")
                return [self._run_alone(conn, work) for work in works]
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _commit(self) -> None:
        """``COMMIT`` (the fsync), on the worker thread; rolled back if it fails."""
        conn = self._connection()
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _run_alone(conn: sqlite3.Connection, work: Work) -> tuple[bool, Any]:
        conn.execute("SAVEPOINT w")
        try:
            return (True, work(conn))
        except Exception as exc:
            conn.execute("ROLLBACK TO w")
            return (False, exc)
        finally:
            conn.execute("RELEASE w")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return self._conn

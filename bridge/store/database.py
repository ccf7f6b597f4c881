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
statements themselves: 0.4 ms of the worker's CPU per payment, under the bench. (Tried again
in session 6 with a batch's rows unpacked by ``json_each``, a few statements per batch: the
thread spent 270 µs of CPU per payment unpacking JSON and waiting for the GIL, and the lane
was 90 % busy; no faster.) Now the worker takes the GIL twice per batch (``COMMIT`` in,
result out) and the event loop never waits for the disk.

Why no task drives the batches: each commit's completion, a callback on the event loop,
settles its batch's callers and first starts the next batch (statements, then its
``COMMIT``). A flusher task in between (the previous version) cost every batch one more turn
of the loop, behind everything the last commit had woken, while the disk sat idle (a turn
is milliseconds under load; +4–6 % payments/s without it, A/B). The lane's flags keep the
connection to one user at a time: a batch's statements start only when no batch and no read
(:meth:`Database.read`, on the SQLite thread) holds it, and the last read to finish starts
the writes that waited for it.

Small key lookups on the hot path (:meth:`Database.read_now`) run inline on the event loop,
sparing a hop to the worker thread, where reads would queue behind commits: on the writer's
own connection when no batch, commit or read holds it (its page cache is always current, as
it made every change), else on a second, read-only connection (in WAL mode a reader never
waits for the writer, but each commit by the other connection invalidates its page cache, so
its lookups cost about twice as much: 26 µs against 11 µs, measured).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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

#: The read-only connection maps the file (SQLite's ``mmap_size``, bytes): after each of the
#: writer's commits empties its cache, the pages it reads again come from the mapping instead
#: of a ``pread`` and a copy each. +5–9 % payments/s, 4 A/B pairs (noisy). Safe here: the
#: file only grows (no ``VACUUM``, no auto-vacuum), so a mapped page is never cut off.
READER_MMAP_BYTES = 256 * 1024 * 1024


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
        self._in_batch = False  # a batch's statements or its COMMIT hold the connection
        self._start_soon = False  # :meth:`_start_batch` is scheduled
        self._reads = 0  # reads (:meth:`read`) queued or running on the SQLite thread
        self._idle_waiters: list[asyncio.Future[None]] = []
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
        reader.execute(f"PRAGMA mmap_size={READER_MMAP_BYTES}")
        self._reader = reader

    def _connect(self) -> sqlite3.Connection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        _owner_only(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        MIGRATIONS.apply(sqlite_utils.Database(conn, execute_plugins=False))
        _owner_only(self.path)  # the -wal and -shm files exist now
        return conn

    async def close(self) -> None:
        while self._in_batch or self._pending:  # what was asked for commits first
            waiter = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            await waiter
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
        self._reads += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, conn)
        finally:
            self._reads -= 1
            if not self._reads and self._pending:
                self._schedule_batch()  # writes that waited for the reads

    def read_now(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run a small read inline, on the caller's thread (see the module docstring).

        For index lookups only: anything that scans belongs in :meth:`read`. ``work`` must
        only read: it may run on the writer's connection.
        """
        if self._reader is None or self._conn is None:
            raise RuntimeError("database is not open")
        # Neither in a batch nor read by the thread: no transaction is open on the writer and
        # no thread is using it.
        idle = not self._in_batch and not self._reads
        return work(self._conn if idle else self._reader)

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in a transaction; return once that transaction is on disk.

        ``work`` must not commit or roll back. If it raises, its own changes are undone and
        the exception is raised here; other writes in the same batch are not affected.
        """
        self._connection()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        self._schedule_batch()
        return await future

    def _schedule_batch(self) -> None:
        if not self._in_batch and not self._start_soon:
            self._start_soon = True
            asyncio.get_running_loop().call_soon(self._start_batch)

    def _start_batch(self) -> None:
        """Run the next batch's statements and send its ``COMMIT`` to the SQLite thread.

        Called on the event loop once after the first write of an idle lane, and then by each
        commit's completion (:meth:`_committed`) directly: no task stands between a commit and
        the next batch, whose statements run before anything the commit woke.
        """
        self._start_soon = False
        if self._in_batch or self._reads:  # the commit, or the last read, starts it
            return
        if not self._pending:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            return
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        self._in_batch = True
        loop = asyncio.get_running_loop()
        try:
            outcomes = self._run_batch([work for work, _ in batch])
        except Exception as exc:  # BEGIN itself failed: nothing of the batch was written
            logger.exception("SQLite batch failed")
            self._in_batch = False
            _settle(batch, [(False, exc)] * len(batch))
            self._schedule_batch()
            return
        commit = self._executor.submit(self._commit)
        commit.add_done_callback(
            lambda done: loop.call_soon_threadsafe(self._committed, batch, outcomes, done)
        )

    def _committed(
        self,
        batch: list[tuple[Work, asyncio.Future[Any]]],
        outcomes: list[tuple[bool, Any]],
        commit: Future[None],
    ) -> None:
        """On the event loop: the batch's ``COMMIT`` ended; start the next, tell the callers."""
        self._in_batch = False
        error = commit.exception()
        if error is not None:  # the commit itself failed: nobody's write is durable
            logger.error("SQLite commit failed", exc_info=error)
            outcomes = [(False, error)] * len(batch)
        self.batches += 1
        self.batched_writes += len(batch)
        self._start_batch()
        _settle(batch, outcomes)

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


def _owner_only(path: str) -> None:
    """The file holds OAuth tokens and payment records: mode 0600, its -wal and -shm too.

    The database file is created 0600 before SQLite opens it (SQLite creates -wal and -shm
    with the database file's mode); files left from before are narrowed on every open.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(name, 0o600)


def _settle(
    batch: list[tuple[Work, asyncio.Future[Any]]], outcomes: list[tuple[bool, Any]]
) -> None:
    """Each caller of a batch gets its write's result or exception."""
    for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
        if future.done():  # its caller was cancelled; the write stands
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

"""One SQLite connection, one thread, group commit.

Why a thread: SQLite calls block, and a ``synchronous=FULL`` commit waits for the disk. Every
statement runs on one dedicated worker thread, so the event loop never waits on the disk and
no two statements race on the connection.

Why group commit: durability before a 2xx costs one fsync per commit. Writes that arrive while
a commit is in progress are queued and run together in the next transaction, each inside its
own SAVEPOINT (a failing write rolls back alone), under a single ``BEGIN IMMEDIATE`` … ``COMMIT``:
one fsync for the whole batch. No caller's future resolves before its batch has committed.
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


class Database:
    """The bridge's SQLite file: WAL, ``synchronous=FULL``, migrated on open."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[Work, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0
        self.batched_writes = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._conn = await loop.run_in_executor(self._executor, self._connect)

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        MIGRATIONS.apply(sqlite_utils.Database(conn, execute_plugins=False))
        return conn

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=True)

    async def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the database thread, outside any transaction."""
        conn = self._connection()
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, conn)

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
            try:
                outcomes = await loop.run_in_executor(
                    self._executor, self._run_batch, [work for work, _ in batch]
                )
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
        conn = self._connection()
        outcomes: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for work in works:
                conn.execute("SAVEPOINT w")
                try:
                    outcomes.append((True, work(conn)))
                except Exception as exc:
                    conn.execute("ROLLBACK TO w")
                    outcomes.append((False, exc))
                conn.execute("RELEASE w")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcomes

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return self._conn

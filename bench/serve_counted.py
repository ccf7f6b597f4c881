"""The bridge exactly as ``python -m bridge serve --config PATH`` runs it, plus bench counters.

    python -m bench.serve_counted --config PATH --counters FILE [--cprofile FILE]
        [--switch-interval S]

It calls ``bridge.cli.main(["serve", "--config", PATH])``; no bridge code is changed. Before
that it wraps four methods of :class:`bridge.store.database.Database` (a counter or a clock
read per call: microseconds, far below the cost of a payment):

- ``__init__``, to find the open database(s), whose ``batches`` / ``batched_writes`` counters
  tell how well group commit batches;
- ``_run_batch`` (a batch's statements, on the event loop) and ``_commit`` (its ``COMMIT``, on
  the SQLite thread), to keep a histogram of batch sizes (writes per ``BEGIN`` … ``COMMIT``)
  and the wall time spent in batches and their commits;
- ``read``, to time each read on the SQLite thread and how long it queued for that thread.

It also times the cyclic garbage collector (``gc.callbacks``: collections and their wall
time, on whichever thread allocated). ``SIGUSR1`` writes ``{"seq", "batches",
"batched_writes", "sizes", "batch_ns", "commit_ns", "reads", "read_ns", "read_wait_ns",
"gc_ns", "gcs"}``
to ``--counters`` (atomically; ``seq`` grows by one per signal).
``--switch-interval`` sets ``sys.setswitchinterval``, an experiment knob: how long a thread
waiting for the GIL waits before asking the running one to drop it (CPython's default 5 ms).
With ``--cprofile``, ``SIGUSR2`` starts cProfile on the event-loop thread and the next
``SIGUSR2`` stops it and writes the stats there. POSIX only.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bridge import cli
from bridge.store import database


def install(counters_path: Path, cprofile_path: Path | None) -> None:
    instances: list[database.Database] = []
    sizes: Counter[int] = Counter()
    timing = {
        "batch_ns": 0,
        "commit_ns": 0,
        "reads": 0,
        "read_ns": 0,
        "read_wait_ns": 0,
        "gc_ns": 0,
        "gcs": 0,
    }
    original_init = database.Database.__init__
    original_run_batch = database.Database._run_batch
    original_commit = database.Database._commit
    original_read = database.Database.read
    clock = time.perf_counter_ns

    def counted_init(self: database.Database, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        instances.append(self)

    def counted_run_batch(self: database.Database, works: list[Any]) -> list[tuple[bool, Any]]:
        sizes[len(works)] += 1
        began = clock()
        try:
            return original_run_batch(self, works)
        finally:
            timing["batch_ns"] += clock() - began

    def timed_commit(self: database.Database) -> None:
        began = clock()
        try:
            original_commit(self)
        finally:
            took = clock() - began
            timing["batch_ns"] += took
            timing["commit_ns"] += took

    async def timed_read(self: database.Database, work: Any) -> Any:
        queued = clock()

        def timed(conn: Any) -> Any:
            began = clock()
            try:
                return work(conn)
            finally:
                timing["read_wait_ns"] += began - queued
                timing["read_ns"] += clock() - began
                timing["reads"] += 1

        return await original_read(self, timed)

    gc_began = [0]

    def timed_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_began[0] = clock()
        else:
            timing["gc_ns"] += clock() - gc_began[0]
            timing["gcs"] += 1

    gc.callbacks.append(timed_gc)
    database.Database.__init__ = counted_init  # type: ignore[method-assign]
    database.Database._run_batch = counted_run_batch  # type: ignore[method-assign]
    database.Database._commit = timed_commit  # type: ignore[method-assign]
    database.Database.read = timed_read  # type: ignore[method-assign]
    seq = 0

    def dump_counters(signum: int, frame: object) -> None:
        nonlocal seq
        seq += 1
        data = {
            "seq": seq,
            "batches": sum(db.batches for db in instances),
            "batched_writes": sum(db.batched_writes for db in instances),
            "sizes": {str(k): v for k, v in dict(sizes).items()},
            **timing,
        }
        tmp = counters_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, counters_path)

    signal.signal(signal.SIGUSR1, dump_counters)

    if cprofile_path is not None:
        profiler = cProfile.Profile()
        running = False

        def toggle_profile(signum: int, frame: object) -> None:
            nonlocal running
            if not running:
                profiler.enable()
                running = True
                return
            profiler.disable()
            running = False
            profiler.dump_stats(str(cprofile_path))

        signal.signal(signal.SIGUSR2, toggle_profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--counters", type=Path, required=True)
    parser.add_argument("--cprofile", type=Path, default=None)
    parser.add_argument("--switch-interval", type=float, default=None)
    args = parser.parse_args(argv)
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    install(args.counters, args.cprofile)
    return cli.main(["serve", "--config", args.config])


if __name__ == "__main__":
    sys.exit(main())

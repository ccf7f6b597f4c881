"""Open-loop load generator: LOKE bill GETs on a fixed schedule, one asyncio process.

Run by ``bench/relay.py`` as its own process::

    python -m bench.openloop '<job as JSON>'

The job names the target port, a path prefix (``""`` for the bridge itself, ``/v/<venue>``
through the relay), the location, its bearer secret, the number of tables, the offered rate
(requests/s), the warm-up and measured durations and a drain time.

Open loop: request *i* is due at ``t0 + i / rate`` and is issued then (a timer every
millisecond issues whatever is due; answers come back by callback, with no task or future per
request, on uvloop) whether or not earlier ones have been answered, so a slow server cannot
slow the generator down (no coordinated omission). Each request takes an idle keep-alive
connection from a pool, opens a new one if none is idle (up to ``max_connections``), or
else waits for one. Its latency runs from the
time it was *due* to its answer, so any queueing (in the generator's pool, in the relay, in
the bridge) is inside the figure. The generator's own lateness (actual send − due time) is
reported too, to show when the generator itself, not the server, was the bottleneck.

Requests due in the counted window (``warmup_s`` … ``warmup_s + duration_s``) are counted:
p50/p99 latency of their 200s, errors by kind (an HTTP status other than 200 with the typed
``error`` code, a transport error, or ``unanswered``: no answer ``drain_s`` after the last
request was sent).
Achieved throughput is the 200s that *completed* inside the counted window, per second.
``MARK start`` / ``MARK end`` lines are printed when the counted window opens and closes (the
parent reads the servers' CPU then). Every loop is bounded by the schedule's end plus
``drain_s``; the process prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from bench.loadgen import Connection

MAX_ERROR_SAMPLES = 5


def _error_kind(status: int, body: bytes) -> str:
    try:
        code = json.loads(body).get("error")
    except (ValueError, AttributeError):
        code = None
    return f"{status} {code}" if code else str(status)


def _pct(values: list[int], p: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(p / 100 * len(values)))] / 1e6


class _Conn(Connection):
    """A keep-alive connection that reports each answer to the generator by callback."""

    def __init__(self, generator: _Generator) -> None:
        super().__init__()
        self.generator = generator
        self.index = -1  # the request in flight, or -1

    def send(self, index: int, raw: bytes) -> None:
        self.index = index
        assert self.transport is not None
        self.transport.write(raw)

    def answered(self, status: int, body: bytes) -> None:
        index, self.index = self.index, -1
        if index >= 0:
            self.generator.answered(self, index, status, body)

    def failed(self, exc: Exception) -> None:
        index, self.index = self.index, -1
        self.generator.broke(self, index, exc)


class _Generator:
    """Requests issued on schedule from a timer, answers taken by callback: no task, future
    or queue per request, so the generator's own CPU per request (it shares the machine with
    what it measures) is a small part of the figures."""

    def __init__(self, spec: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.host: str = spec.get("host", "127.0.0.1")
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("openloop: only loopback targets are allowed")
        self.port: int = spec["port"]
        self.rate: float = spec["rate"]
        self.warmup_s: float = spec["warmup_s"]
        self.duration_s: float = spec["duration_s"]
        self.max_conns: int = spec.get("max_connections", 256)
        base = f"{spec.get('prefix', '')}/loke/v1/locations/{spec['location']}/tables"
        common = (
            f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {spec['secret']}\r\n\r\n"
        ).encode()
        self.raws = [
            f"GET {base}/{t}/bill HTTP/1.1\r\n".encode() + common
            for t in range(1, spec["tables"] + 1)
        ]
        self.total = int(self.rate * (self.warmup_s + self.duration_s))
        self.interval_ns = 1e9 / self.rate
        self.t0 = 0
        self.start_ns = 0
        self.end_ns = 0
        self.issued = 0
        self.idle: list[_Conn] = []
        self.waiting: collections.deque[int] = collections.deque()  # issued, no connection yet
        self.live: set[_Conn] = set()
        self.connecting = 0
        self.max_open = 0
        self.outstanding: set[int] = set()  # counted requests not yet answered
        self.unfinished = 0  # issued requests not yet answered or failed
        self.latencies: list[int] = []
        self.lateness: list[int] = []
        self.errors: Counter[str] = Counter()
        self.samples: list[str] = []
        self.ok_in_window = 0
        self.done = loop.create_future()

    def due(self, index: int) -> int:
        return self.t0 + int(index * self.interval_ns)

    def counted(self, index: int) -> bool:
        return self.start_ns <= self.due(index) < self.end_ns

    async def open_initial(self, count: int) -> None:
        for _ in range(min(count, self.max_conns)):
            conn = await self._connect()
            self.idle.append(conn)

    async def _connect(self) -> _Conn:
        _, conn = await self.loop.create_connection(lambda: _Conn(self), self.host, self.port)
        self.live.add(conn)
        self.max_open = max(self.max_open, len(self.live) + self.connecting)
        return conn

    def tick(self) -> None:
        """Issue every request now due; the timer runs every millisecond until all are (libuv
        counts timers in whole milliseconds: a shorter delay is none, and spins)."""
        now = time.perf_counter_ns()
        due_now = min(self.total, int((now - self.t0) / self.interval_ns) + 1)
        while self.issued < due_now:
            self.issue(self.issued)
            self.issued += 1
        if self.issued < self.total:
            self.loop.call_later(0.001, self.tick)
        else:
            self.check_done()

    def issue(self, index: int) -> None:
        self.unfinished += 1
        if self.counted(index):
            self.outstanding.add(index)
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                self.send(conn, index)
                return
            self.live.discard(conn)
        self.waiting.append(index)
        if len(self.live) + self.connecting < self.max_conns:
            self.connecting += 1
            self.loop.create_task(self._open_for_waiting())

    async def _open_for_waiting(self) -> None:
        try:
            conn = await self._connect()
        except OSError as exc:
            self.connecting -= 1
            if self.waiting:
                self.finish(self.waiting.popleft(), f"connect {type(exc).__name__}", None)
            return
        self.connecting -= 1
        self.next_for(conn)

    def send(self, conn: _Conn, index: int) -> None:
        if self.counted(index):
            self.lateness.append(time.perf_counter_ns() - self.due(index))
        conn.send(index, self.raws[index % len(self.raws)])

    def next_for(self, conn: _Conn) -> None:
        if self.waiting:
            self.send(conn, self.waiting.popleft())
        else:
            self.idle.append(conn)

    def answered(self, conn: _Conn, index: int, status: int, body: bytes) -> None:
        done = time.perf_counter_ns()
        if status == 200 and self.start_ns <= done < self.end_ns:
            self.ok_in_window += 1
        if self.counted(index):
            if status == 200:
                self.latencies.append(done - self.due(index))
            else:
                self.record_error(_error_kind(status, body), f"{status}: {body[:200]!r}")
        self.next_for(conn)
        self.settled(index)

    def broke(self, conn: _Conn, index: int, exc: Exception) -> None:
        """``conn`` closed or failed, with request ``index`` in flight (-1: it was idle)."""
        self.live.discard(conn)
        if index >= 0:
            self.finish(index, "transport", f"transport: {exc}")
        if self.waiting and len(self.live) + self.connecting < self.max_conns:
            self.connecting += 1
            self.loop.create_task(self._open_for_waiting())

    def finish(self, index: int, kind: str, sample: str | None) -> None:
        if self.counted(index):
            self.record_error(kind, sample)
        self.settled(index)

    def settled(self, index: int) -> None:
        """Request ``index`` got its answer or failed for good."""
        self.outstanding.discard(index)
        self.unfinished -= 1
        self.check_done()

    def record_error(self, kind: str, sample: str | None) -> None:
        self.errors[kind] += 1
        if sample is not None and len(self.samples) < MAX_ERROR_SAMPLES:
            self.samples.append(sample)

    def check_done(self) -> None:
        if self.issued >= self.total and self.unfinished == 0 and not self.done.done():
            self.done.set_result(None)


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    gen = _Generator(spec, loop)
    drain_s: float = spec.get("drain_s", 10.0)
    await gen.open_initial(spec.get("initial_connections", 32))

    perf_ns = time.perf_counter_ns
    gen.t0 = perf_ns() + 50_000_000
    gen.start_ns = gen.t0 + int(gen.warmup_s * 1e9)
    gen.end_ns = gen.start_ns + int(gen.duration_s * 1e9)
    cpu_marks: dict[str, float] = {}

    def mark(name: str) -> None:
        cpu_marks[name] = time.process_time()
        sys.stdout.write(f"MARK {name}\n")
        sys.stdout.flush()

    loop.call_later(max(0.0, (gen.start_ns - perf_ns()) / 1e9), mark, "start")
    loop.call_later(max(0.0, (gen.end_ns - perf_ns()) / 1e9), mark, "end")
    loop.call_later(max(0.0, (gen.t0 - perf_ns()) / 1e9), gen.tick)
    schedule_s = gen.warmup_s + gen.duration_s
    # Bounded: the schedule, then the drain time for late answers.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(gen.done), schedule_s + 0.1 + drain_s)
    sent_s = (perf_ns() - gen.t0) / 1e9 if gen.issued >= gen.total else schedule_s
    while not {"start", "end"} <= cpu_marks.keys():  # the window's end is ≤ 1 interval away
        await asyncio.sleep(0.001)
    if gen.outstanding:
        gen.errors["unanswered"] += len(gen.outstanding)
    cpu_s = cpu_marks["end"] - cpu_marks["start"]
    for conn in list(gen.live) + gen.idle:
        conn.close()
    latencies = sorted(gen.latencies)
    lateness = sorted(gen.lateness)
    duration_s = gen.duration_s
    n_counted = int(gen.rate * duration_s)
    return {
        "rate": gen.rate,
        "prefix": spec.get("prefix", ""),
        "duration_s": duration_s,
        "warmup_s": gen.warmup_s,
        "scheduled": n_counted,
        "ok": len(latencies),
        "achieved_per_s": gen.ok_in_window / duration_s,
        "errors": sum(gen.errors.values()),
        "errors_by_kind": dict(gen.errors),
        "error_samples": gen.samples,
        "latency_ms": {
            "p50": _pct(latencies, 50),
            "p90": _pct(latencies, 90),
            "p99": _pct(latencies, 99),
            "max": latencies[-1] / 1e6 if latencies else None,
        },
        "send_lateness_ms": {"p50": _pct(lateness, 50), "p99": _pct(lateness, 99)},
        "schedule_s": round(sent_s, 3),
        "connections_max": gen.max_open,
        "client_cpu_s": round(cpu_s, 3),
        "client_cpu_pct": round(100 * cpu_s / duration_s, 1),
    }


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (a dependency of the bridge): the generator's own CPU per
    request is about half asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        result = runner.run(run(json.loads(args[0])))
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

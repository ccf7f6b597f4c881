"""The load generator, its own process: ``python -m bench.loadgen '<job as JSON>'``.

Two kinds of job, both against LOKE's URLs on 127.0.0.1 with the bearer secret:

- ``"payments"`` (closed loop, ``bench.payments``): ``concurrency`` connections, each with one
  request in flight. Every table's bill is fetched once, then 1-minor-unit payments are POSTed
  round-robin over the tables, each with a new ``paymentId``. Only 201/202 count as payments.
- ``"bills"`` (open loop, ``bench.relay``): bill GETs due at ``t0 + i / rate``, issued then
  whether or not earlier ones were answered (a slow server cannot slow the generator: no
  coordinated omission), each on an idle keep-alive connection from a pool of at most
  ``max_connections``. Latency runs from the *due* time, so queueing anywhere counts; requests
  still unanswered ``drain_s`` after the schedule count as ``unanswered``.

Requests are counted when they complete in the window from ``warmup_s`` to ``warmup_s +
duration_s``; ``MARK start`` / ``MARK end`` lines are printed as it opens and closes (the
parent reads the servers' CPU then), then one ``RESULT {json}`` line. The HTTP client is a
small :class:`asyncio.Protocol` on uvloop, not an HTTP library: the generator shares the two
cores with what it measures, so its own CPU per request must stay well below theirs. It
reads only what the bridge and the relay send (a status line, ``Content-Length``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import sys
import time
from collections import Counter
from typing import Any, cast

import uvloop


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request in flight, answers by callback."""

    def __init__(self, on_answer: Any, on_lost: Any) -> None:
        self.on_answer, self.on_lost = on_answer, on_lost
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.need = -1
        self.head_len = 0
        self.status = 0
        self.tag: Any = None  # what the request in flight was
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def send(self, tag: Any, raw: bytes) -> None:
        self.tag = tag
        assert self.transport is not None
        self.transport.write(raw)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self.connection_lost(ValueError("no Content-Length"))
                return
            length = int(head[at + 17 :].split(b"\r\n", 1)[0])
            self.status, self.head_len = int(head[9:12]), end + 4
            self.need = self.head_len + length
        if len(self.buf) >= self.need:
            body = bytes(self.buf[self.head_len : self.need])
            del self.buf[: self.need]
            self.need = -1
            tag, self.tag = self.tag, None
            self.on_answer(self, tag, self.status, body)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            tag, self.tag = self.tag, None
            self.on_lost(self, tag, exc)
        if self.transport is not None:
            self.transport.close()


def pct(values: list[int], p: float) -> float | None:
    """The ``p``-th percentile of sorted nanoseconds, in ms."""
    return values[min(len(values) - 1, int(p / 100 * len(values)))] / 1e6 if values else None


def error_kind(status: int, body: bytes) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        return f"{status} {json.loads(body)['error']}"
    return str(status)


class Run:
    """What both kinds share: the target, the window, the counts, the marks."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.loop = asyncio.get_running_loop()
        self.port: int = job["port"]
        self.warmup_s, self.duration_s = job["warmup_s"], job["duration_s"]
        self.base = f"{job.get('prefix', '')}/loke/v1/locations/{job['location']}/tables"
        self.common = f"Host: 127.0.0.1:{self.port}\r\nAuthorization: Bearer {job['secret']}\r\n"
        self.tables: int = job["tables"]
        self.latencies: list[int] = []
        self.errors: Counter[str] = Counter()
        self.samples: list[str] = []
        self.ok = 0
        self.cpu: dict[str, float] = {}
        self.done = self.loop.create_future()

    def window(self, t0: int) -> None:
        self.start_ns = t0 + int(self.warmup_s * 1e9)
        self.end_ns = self.start_ns + int(self.duration_s * 1e9)
        for name, at in (("start", self.start_ns), ("end", self.end_ns)):
            self.loop.call_later(max(0.0, (at - time.perf_counter_ns()) / 1e9), self.mark, name)

    def mark(self, name: str) -> None:
        self.cpu[name] = time.process_time()
        sys.stdout.write(f"MARK {name}\n")
        sys.stdout.flush()

    def error(self, kind: str, sample: str) -> None:
        self.errors[kind] += 1
        if len(self.samples) < 5:
            self.samples.append(sample[:300])

    async def connect(self, protocol: Any) -> Connection:
        _, conn = await self.loop.create_connection(protocol, "127.0.0.1", self.port)
        return cast(Connection, conn)

    def result(self) -> dict[str, Any]:
        self.latencies.sort()
        cpu_s = self.cpu.get("end", 0.0) - self.cpu.get("start", 0.0)
        return {
            "ok": self.ok,
            "per_s": self.ok / self.duration_s,
            "errors": sum(self.errors.values()),
            "errors_by_kind": dict(self.errors),
            "error_samples": self.samples,
            "p50_ms": pct(self.latencies, 50),
            "p99_ms": pct(self.latencies, 99),
            "client_cpu_pct": round(100 * cpu_s / self.duration_s, 1),
        }


# -- closed loop: payments ---------------------------------------------------------------------


async def payments(job: dict[str, Any]) -> dict[str, Any]:
    run = Run(job)
    answers: dict[Connection, asyncio.Future[tuple[int, bytes]]] = {}

    def answered(conn: Connection, _tag: Any, status: int, body: bytes) -> None:
        answers.pop(conn).set_result((status, body))

    def lost(conn: Connection, _tag: Any, exc: Exception | None) -> None:
        if (future := answers.pop(conn, None)) is not None:
            future.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def request(conn: Connection, raw: bytes) -> tuple[int, bytes]:
        if conn.closed:
            raise ConnectionError("connection closed")
        answers[conn] = run.loop.create_future()
        conn.send(None, raw)
        return await answers[conn]

    def protocol() -> Connection:
        return Connection(answered, lost)

    bills = []
    fetcher = await run.connect(protocol)
    for table in range(1, run.tables + 1):
        raw = f"GET {run.base}/{table}/bill HTTP/1.1\r\n{run.common}\r\n".encode()
        status, body = await request(fetcher, raw)
        if status == 200:
            bill = json.loads(body)
            tail = (
                f',"billRef":{json.dumps(bill["id"])},"billVersion":{json.dumps(bill["version"])}'
                f',"currency":{json.dumps(bill["currency"])},"amount":1,"tip":0}}'
            )
            head = (
                f"POST {run.base}/{table}/payments HTTP/1.1\r\n{run.common}"
                "Content-Type: application/json\r\nContent-Length: "
            )
            bills.append((head.encode(), tail.encode()))
    fetcher.transport.close()  # type: ignore[union-attr]
    if not bills:
        raise SystemExit("loadgen: no open bill fetched")
    conns = [await run.connect(protocol) for _ in range(job["concurrency"])]
    run.window(time.perf_counter_ns())
    sent = 0

    async def worker(index: int) -> None:
        nonlocal sent
        seq = 0
        while time.perf_counter_ns() < run.end_ns:
            head, tail = bills[sent % len(bills)]
            body = f'{{"paymentId":"{job["id_prefix"]}-{index}-{seq}"'.encode() + tail
            raw = head + str(len(body)).encode() + b"\r\n\r\n" + body
            sent, seq = sent + 1, seq + 1
            began = time.perf_counter_ns()
            try:
                status, answer = await request(conns[index], raw)
            except ConnectionError as exc:
                run.error("transport", str(exc))
                conns[index] = await run.connect(protocol)
                continue
            done = time.perf_counter_ns()
            if run.start_ns <= done < run.end_ns:
                if status in (201, 202):
                    run.ok += 1
                    run.latencies.append(done - began)
                else:
                    run.error(error_kind(status, answer), f"{status}: {answer[:200]!r}")

    async with asyncio.timeout(run.warmup_s + run.duration_s + 30):
        await asyncio.gather(*(worker(i) for i in range(job["concurrency"])))
    for conn in conns:
        conn.transport.close()  # type: ignore[union-attr]
    return {"concurrency": job["concurrency"], **run.result()}


# -- open loop: bill fetches -------------------------------------------------------------------


async def bills(job: dict[str, Any]) -> dict[str, Any]:
    run = Run(job)
    rate, max_conns, drain_s = job["rate"], job.get("max_connections", 256), job["drain_s"]
    raws = [
        f"GET {run.base}/{t}/bill HTTP/1.1\r\n{run.common}\r\n".encode()
        for t in range(1, run.tables + 1)
    ]
    total = int(rate * (run.warmup_s + run.duration_s))
    interval_ns = 1e9 / rate
    idle: list[Connection] = []
    waiting: collections.deque[int] = collections.deque()  # issued, no connection free yet
    live = 0  # connections open or opening
    outstanding: set[int] = set()  # counted requests not yet answered
    unfinished = 0
    issued = 0
    t0 = time.perf_counter_ns() + 50_000_000

    def due(i: int) -> int:
        return t0 + int(i * interval_ns)

    def counted(i: int) -> bool:
        return run.start_ns <= due(i) < run.end_ns

    def settled(i: int) -> None:
        nonlocal unfinished
        outstanding.discard(i)
        unfinished -= 1
        if issued >= total and unfinished == 0 and not run.done.done():
            run.done.set_result(None)

    def next_for(conn: Connection) -> None:
        if waiting:
            i = waiting.popleft()
            conn.send(i, raws[i % len(raws)])
        else:
            idle.append(conn)

    def answered(conn: Connection, i: int, status: int, body: bytes) -> None:
        done = time.perf_counter_ns()
        if status == 200 and run.start_ns <= done < run.end_ns:
            run.ok += 1
        if counted(i):
            if status == 200:
                run.latencies.append(done - due(i))
            else:
                run.error(error_kind(status, body), f"{status}: {body[:200]!r}")
        next_for(conn)
        settled(i)

    def lost(conn: Connection, i: int | None, exc: Exception | None) -> None:
        nonlocal live
        live -= 1
        with contextlib.suppress(ValueError):
            idle.remove(conn)
        if i is not None:
            if counted(i):
                run.error("transport", f"transport: {exc}")
            settled(i)
        if waiting:
            grow()

    async def open_one() -> None:
        nonlocal live
        try:
            next_for(await run.connect(lambda: Connection(answered, lost)))
        except OSError as exc:
            live -= 1
            if waiting:
                i = waiting.popleft()
                if counted(i):
                    run.error(f"connect {type(exc).__name__}", str(exc))
                settled(i)

    def grow() -> None:
        nonlocal live
        if live < max_conns:
            live += 1
            run.loop.create_task(open_one())

    def tick() -> None:
        """Issue every request now due; every millisecond until all are (libuv counts timers
        in whole milliseconds: a shorter delay is none, and spins)."""
        nonlocal issued, unfinished
        due_now = min(total, int((time.perf_counter_ns() - t0) / interval_ns) + 1)
        while issued < due_now:
            i, issued, unfinished = issued, issued + 1, unfinished + 1
            if counted(i):
                outstanding.add(i)
            if idle:
                idle.pop().send(i, raws[i % len(raws)])
            else:
                waiting.append(i)
                grow()
        if issued < total:
            run.loop.call_later(0.001, tick)

    for _ in range(min(32, max_conns)):
        live += 1
        idle.append(await run.connect(lambda: Connection(answered, lost)))
    run.window(t0)
    run.loop.call_later((t0 - time.perf_counter_ns()) / 1e9, tick)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(run.done), run.warmup_s + run.duration_s + drain_s)
    while len(run.cpu) < 2:  # the window's end is at most one tick away
        await asyncio.sleep(0.001)
    if outstanding:
        run.errors["unanswered"] += len(outstanding)
    for conn in idle:
        conn.transport.close()  # type: ignore[union-attr]
    return {"rate": rate, **run.result()}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    job = json.loads(args[0])
    kind = {"payments": payments, "bills": bills}[job["kind"]]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(kind(job))
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

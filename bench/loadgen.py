"""Load generator: LOKE payment POSTs over raw HTTP/1.1 keep-alive, one asyncio process.

Run by ``bench/payments.py`` as its own process (so it never shares a core's GIL with the
bridge)::

    python -m bench.loadgen '<job as JSON>'      # or: python bench/loadgen.py '<job>'

The job names the bridge's port, one location and its bearer secret, how many tables it has,
the concurrency (= connections, each with one request in flight) and the warm-up and measured
durations. The generator:

1. GETs every table's bill once and keeps its ``id``/``version``/``currency``;
2. POSTs payments of ``amount`` minor units round-robin over the tables, each with a new
   ``paymentId`` and the bill's id and version as fetched (the version's charges part is what
   the bridge checks, and payments do not change it), for ``warmup_s`` uncounted, then
   ``duration_s`` counted;
3. prints ``MARK start`` / ``MARK end`` lines when the counted window opens and closes (the
   parent snapshots the bridge's counters and CPU then), and one ``RESULT {json}`` line.

A request counts in the window if it *completes* inside it; only 201 and 202 are successes,
every other status is an error (counted per status, first few bodies kept). The client is a
small :class:`asyncio.Protocol` rather than a full HTTP library so that its own CPU per request
stays far below the bridge's; it measures that CPU (``time.process_time``) and reports it.
Every loop is bounded by the window's end, and a watchdog closes every connection 15 s after
it, so the process always ends.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any, cast

WATCHDOG_S = 15.0
MAX_ERROR_SAMPLES = 5


class HttpError(Exception):
    """The connection failed or the server's answer could not be read."""


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._head_len = -1
        self._need = -1
        self._status = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._need < 0:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end]).split(b"\r\n")
            length = -1
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length < 0:  # the bridge always sends Content-Length (json_response)
                self._fail(HttpError(f"no Content-Length in {head[0]!r}"))
                return
            self._status = int(head[0][9:12])
            self._head_len = end + 4
            self._need = self._head_len + length
        if len(self._buf) >= self._need:
            body = bytes(self._buf[self._head_len : self._need])
            del self._buf[: self._need]
            self._need = -1
            self.answered(self._status, body)

    def answered(self, status: int, body: bytes) -> None:
        """A whole answer arrived (a subclass may take it without a future)."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(HttpError(f"connection lost: {exc}"))

    def _fail(self, exc: Exception) -> None:
        self.failed(exc)
        if self.transport is not None:
            self.transport.close()

    def failed(self, exc: Exception) -> None:
        """The connection broke or sent what cannot be read (a subclass may take it)."""
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.closed or self.transport is None:
            raise HttpError("connection closed")
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.transport.write(raw)
        return await waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(host: str, port: int) -> Connection:
    _, protocol = await asyncio.get_running_loop().create_connection(Connection, host, port)
    return protocol


class Job:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.host: str = spec.get("host", "127.0.0.1")
        self.port: int = spec["port"]
        self.location: str = spec["location"]
        self.secret: str = spec["secret"]
        self.tables: int = spec["tables"]
        self.concurrency: int = spec["concurrency"]
        self.warmup_s: float = spec["warmup_s"]
        self.duration_s: float = spec["duration_s"]
        self.amount: int = spec.get("amount", 1)
        self.id_prefix: str = spec["id_prefix"]
        self.fetch_concurrency: int = spec.get("fetch_concurrency", 16)
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("loadgen: only loopback targets are allowed")
        self.base = f"/loke/v1/locations/{self.location}/tables"
        self.common = (
            f"Host: {self.host}:{self.port}\r\nAuthorization: Bearer {self.secret}\r\n"
        ).encode()

    def get_bill(self, table: int) -> bytes:
        return f"GET {self.base}/{table}/bill HTTP/1.1\r\n".encode() + self.common + b"\r\n"


def _payment_template(job: Job, table: int, bill: dict[str, Any]) -> tuple[bytes, bytes, bytes]:
    """(request line + headers up to Content-Length, body head, body tail) for one table."""
    head = (
        f"POST {job.base}/{table}/payments HTTP/1.1\r\n".encode()
        + job.common
        + b"Content-Type: application/json\r\nContent-Length: "
    )
    body_head = b'{"paymentId":"'
    body_tail = (
        f'","billRef":{json.dumps(bill["id"])},"billVersion":{json.dumps(bill["version"])},'
        f'"currency":{json.dumps(bill["currency"])},"amount":{job.amount},"tip":0}}'
    ).encode()
    return head, body_head, body_tail


async def fetch_bills(job: Job) -> tuple[list[tuple[int, dict[str, Any]]], Counter[int]]:
    """Every table's open bill, fetched once (tables without one are skipped)."""
    bills: list[tuple[int, dict[str, Any]]] = []
    statuses: Counter[int] = Counter()
    todo = list(range(job.tables, 0, -1))

    async def fetcher() -> None:
        conn = await connect(job.host, job.port)
        try:
            while todo:
                table = todo.pop()
                status, body = await conn.request(job.get_bill(table))
                statuses[status] += 1
                if status == 200:
                    bills.append((table, json.loads(body)))
        finally:
            conn.close()

    async with asyncio.timeout(120):
        await asyncio.gather(*(fetcher() for _ in range(min(job.fetch_concurrency, job.tables))))
    bills.sort(key=lambda item: item[0])
    return bills, statuses


async def run(job: Job) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    fetch_started = time.perf_counter()
    bills, fetch_statuses = await fetch_bills(job)
    fetch_s = time.perf_counter() - fetch_started
    if not bills:
        raise SystemExit(f"loadgen: no open bill fetched ({dict(fetch_statuses)})")
    templates = [_payment_template(job, table, bill) for table, bill in bills]
    min_balance = min(bill["balance"] for _, bill in bills)

    conns = [await connect(job.host, job.port) for _ in range(job.concurrency)]
    t0 = time.perf_counter()
    start = t0 + job.warmup_s
    end = start + job.duration_s
    cpu_marks: dict[str, float] = {}

    def mark(name: str) -> None:
        cpu_marks[name] = time.process_time()
        sys.stdout.write(f"MARK {name}\n")
        sys.stdout.flush()

    loop.call_at(loop.time() + job.warmup_s, mark, "start")
    loop.call_at(loop.time() + job.warmup_s + job.duration_s, mark, "end")
    watchdog = loop.call_at(
        loop.time() + job.warmup_s + job.duration_s + WATCHDOG_S,
        lambda: [c.close() for c in conns],
    )

    latencies: list[int] = []
    statuses: Counter[int] = Counter()
    warmup_statuses: Counter[int] = Counter()
    error_samples: list[str] = []
    transport_errors = 0
    sent = 0
    perf_ns = time.perf_counter_ns
    start_ns, end_ns = int(start * 1e9), int(end * 1e9)
    n_tables = len(templates)

    async def worker(index: int) -> None:
        nonlocal sent, transport_errors
        conn = conns[index]
        seq = 0
        while time.perf_counter() < end:
            head, body_head, body_tail = templates[sent % n_tables]
            sent += 1
            seq += 1
            body = body_head + f"{job.id_prefix}-{index}-{seq}".encode() + body_tail
            raw = head + str(len(body)).encode() + b"\r\n\r\n" + body
            began = perf_ns()
            try:
                status, answer = await conn.request(raw)
            except HttpError as exc:
                transport_errors += 1
                if len(error_samples) < MAX_ERROR_SAMPLES:
                    error_samples.append(f"transport: {exc}")
                if time.perf_counter() >= end:
                    return
                conn = conns[index] = await connect(job.host, job.port)
                continue
            done = perf_ns()
            if start_ns <= done < end_ns:
                latencies.append(done - began)
                statuses[status] += 1
                if status not in (201, 202) and len(error_samples) < MAX_ERROR_SAMPLES:
                    error_samples.append(f"{status}: {answer[:300].decode(errors='replace')}")
            elif done < start_ns:
                warmup_statuses[status] += 1

    await asyncio.gather(*(worker(i) for i in range(job.concurrency)))
    watchdog.cancel()
    for conn in conns:
        conn.close()
    cpu_s = cpu_marks.get("end", time.process_time()) - cpu_marks.get("start", 0.0)
    ok = statuses[201] + statuses[202]
    latencies.sort()

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] / 1e6

    return {
        "concurrency": job.concurrency,
        "location": job.location,
        "tables_with_bills": n_tables,
        "min_balance_minor": min_balance,
        "fetch_s": round(fetch_s, 3),
        "fetch_statuses": {str(k): v for k, v in fetch_statuses.items()},
        "duration_s": job.duration_s,
        "warmup_s": job.warmup_s,
        "warmup_statuses": {str(k): v for k, v in warmup_statuses.items()},
        "completed": len(latencies),
        "ok": ok,
        "errors": len(latencies) - ok + transport_errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "transport_errors": transport_errors,
        "error_samples": error_samples,
        "payments_per_s": ok / job.duration_s,
        "latency_ms": {
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "max": latencies[-1] / 1e6 if latencies else None,
            "mean": sum(latencies) / len(latencies) / 1e6 if latencies else None,
        },
        "client_cpu_s": cpu_s,
        "client_cpu_pct": 100 * cpu_s / job.duration_s,
        "client_cpu_us_per_request": 1e6 * cpu_s / len(latencies) if latencies else None,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    job = Job(json.loads(args[0]))
    result = asyncio.run(run(job))
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

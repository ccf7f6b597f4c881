"""The load generator, its own process: ``python -m bench.loadgen '<job as JSON>'``.

Two kinds of job, both against LOKE's URLs on 127.0.0.1 with the bearer secret:

- ``"payments"`` (closed loop, ``bench.payments``): ``concurrency`` workers, each with one
  request in flight on a keep-alive connection of its own. Every table's bill is fetched once,
  then 1-minor-unit payments are POSTed round-robin over the tables, each with a new
  ``paymentId``. Only 201/202 count as payments.
- ``"bills"`` (open loop, ``bench.relay``): bill GETs due at ``t0 + i / rate``, issued then
  whether or not earlier ones were answered (a slow server cannot slow the generator: no
  coordinated omission), over a pool of at most ``max_connections`` keep-alive connections; a
  request due while every connection is busy waits for one. Latency runs from the *due* time,
  so queueing anywhere counts; requests still unanswered ``drain_s`` after the schedule count
  as ``unanswered``.

Requests are counted when they complete in the window from ``warmup_s`` to ``warmup_s +
duration_s``; ``MARK start`` / ``MARK end`` lines are printed as it opens and closes (the
parent reads the servers' CPU then), then one ``RESULT {json}`` line. HTTP is aiohttp's
client, the parser the bridge and the relay use too; it runs on uvloop, and its own CPU is
reported (``client_cpu_pct``) because it shares the two cores with what it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from typing import Any

import aiohttp
import uvloop
from yarl import URL


def pct(values: list[int], p: float) -> float | None:
    """The ``p``-th percentile of sorted nanoseconds, in ms."""
    return values[min(len(values) - 1, int(p / 100 * len(values)))] / 1e6 if values else None


def error_kind(status: int, body: bytes) -> str:
    with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
        return f"{status} {json.loads(body)['error']}"
    return str(status)


class Run:
    """What both kinds share: the target, the window, the counts, the marks."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.loop = asyncio.get_running_loop()
        self.warmup_s, self.duration_s = job["warmup_s"], job["duration_s"]
        origin = URL.build(scheme="http", host="127.0.0.1", port=job["port"])
        base = f"{job.get('prefix', '')}/loke/v1/locations/{job['location']}/tables"
        self.table_urls = [origin.with_path(f"{base}/{t}") for t in range(1, job["tables"] + 1)]
        self.headers = {"Authorization": f"Bearer {job['secret']}"}
        self.latencies: list[int] = []
        self.errors: Counter[str] = Counter()
        self.samples: list[str] = []
        self.ok = 0
        self.cpu: dict[str, float] = {}

    def session(self, connections: int) -> aiohttp.ClientSession:
        """Keep-alive connections, at most ``connections`` open; no cookies, no decoding."""
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, force_close=False),
            headers=self.headers,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None),
        )

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
    concurrency: int = job["concurrency"]
    async with run.session(concurrency) as session:
        bills: list[tuple[URL, dict[str, Any]]] = []
        for table_url in run.table_urls:
            async with session.get(table_url / "bill") as response:
                if response.status == 200:
                    bill = await response.json()
                    claim = {"billRef": bill["id"], "billVersion": bill["version"]}
                    claim |= {"currency": bill["currency"], "amount": 1, "tip": 0}
                    bills.append((table_url / "payments", claim))
        if not bills:
            raise SystemExit("loadgen: no open bill fetched")
        run.window(time.perf_counter_ns())
        sent = 0

        async def worker(index: int) -> None:
            nonlocal sent
            seq = 0
            while time.perf_counter_ns() < run.end_ns:
                url, claim = bills[sent % len(bills)]
                body = {"paymentId": f"{job['id_prefix']}-{index}-{seq}", **claim}
                sent, seq = sent + 1, seq + 1
                began = time.perf_counter_ns()
                try:
                    async with session.post(url, json=body) as response:
                        status, answer = response.status, await response.read()
                except (aiohttp.ClientError, OSError) as exc:
                    run.error("transport", f"transport: {exc!r}")
                    continue
                done = time.perf_counter_ns()
                if run.start_ns <= done < run.end_ns:
                    if status in (201, 202):
                        run.ok += 1
                        run.latencies.append(done - began)
                    else:
                        run.error(error_kind(status, answer), f"{status}: {answer[:200]!r}")

        async with asyncio.timeout(run.warmup_s + run.duration_s + 30):
            await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return {"concurrency": concurrency, **run.result()}


# -- open loop: bill fetches -------------------------------------------------------------------


async def bills(job: dict[str, Any]) -> dict[str, Any]:
    run = Run(job)
    rate, drain_s = job["rate"], job["drain_s"]
    urls = [table_url / "bill" for table_url in run.table_urls]
    total = int(rate * (run.warmup_s + run.duration_s))
    interval_ns = 1e9 / rate
    outstanding: set[int] = set()  # counted requests not yet answered
    tasks: set[asyncio.Task[None]] = set()
    t0 = time.perf_counter_ns() + 50_000_000
    issued = 0

    def due(i: int) -> int:
        return t0 + int(i * interval_ns)

    def counted(i: int) -> bool:
        return run.start_ns <= due(i) < run.end_ns

    async with run.session(job.get("max_connections", 256)) as session:

        async def fetch(i: int) -> None:
            try:
                async with session.get(urls[i % len(urls)]) as response:
                    status, body = response.status, await response.read()
            except (aiohttp.ClientError, OSError) as exc:
                if counted(i):
                    run.error("transport", f"transport: {exc!r}")
                return
            finally:
                outstanding.discard(i)
            done = time.perf_counter_ns()
            if status == 200 and run.start_ns <= done < run.end_ns:
                run.ok += 1
            if counted(i):
                if status == 200:
                    run.latencies.append(done - due(i))
                else:
                    run.error(error_kind(status, body), f"{status}: {body[:200]!r}")

        def tick() -> None:
            """Issue every request now due; every millisecond until all are (libuv counts
            timers in whole milliseconds: a shorter delay is none, and spins)."""
            nonlocal issued
            due_now = min(total, int((time.perf_counter_ns() - t0) / interval_ns) + 1)
            while issued < due_now:
                if counted(issued):
                    outstanding.add(issued)
                task = run.loop.create_task(fetch(issued))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                issued += 1
            if issued < total:
                run.loop.call_later(0.001, tick)

        run.window(t0)
        run.loop.call_later((t0 - time.perf_counter_ns()) / 1e9, tick)
        deadline = time.perf_counter() + run.warmup_s + run.duration_s + drain_s + 0.1
        while (issued < total or tasks) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        while len(run.cpu) < 2:  # the window's end is at most one tick away
            await asyncio.sleep(0.001)
        if outstanding:
            run.errors["unanswered"] += len(outstanding)
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
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

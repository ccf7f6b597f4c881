"""Open-loop load generator: LOKE bill GETs on a fixed schedule, one asyncio process.

Run by ``bench/relay.py`` as its own process::

    python -m bench.openloop '<job as JSON>'

The job names the target port, a path prefix (``""`` for the bridge itself, ``/v/<venue>``
through the relay), the location, its bearer secret, the number of tables, the offered rate
(requests/s), the warm-up and measured durations and a drain time.

Open loop: request *i* is due at ``t0 + i / rate`` and is issued then whether or not earlier
ones have been answered, so a slow server cannot slow the generator down (no coordinated
omission). Each request takes an idle keep-alive connection from a pool, opens a new one if
none is idle (up to ``max_connections``), or else waits for one. Its latency runs from the
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
import json
import sys
import time
from collections import Counter
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from bench.loadgen import Connection, HttpError, connect

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


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    host: str = spec.get("host", "127.0.0.1")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("openloop: only loopback targets are allowed")
    port: int = spec["port"]
    rate: float = spec["rate"]
    warmup_s: float = spec["warmup_s"]
    duration_s: float = spec["duration_s"]
    drain_s: float = spec.get("drain_s", 10.0)
    max_conns: int = spec.get("max_connections", 256)
    base = f"{spec.get('prefix', '')}/loke/v1/locations/{spec['location']}/tables"
    common = f"Host: {host}:{port}\r\nAuthorization: Bearer {spec['secret']}\r\n\r\n".encode()
    raws = [
        f"GET {base}/{t}/bill HTTP/1.1\r\n".encode() + common for t in range(1, spec["tables"] + 1)
    ]

    idle: asyncio.Queue[Connection] = asyncio.Queue()
    open_conns: list[int] = [0]  # how many exist (idle or busy); a list to share it
    all_conns: list[Connection] = []
    for _ in range(min(spec.get("initial_connections", 32), max_conns)):
        conn = await connect(host, port)
        all_conns.append(conn)
        idle.put_nowait(conn)
        open_conns[0] += 1

    perf_ns = time.perf_counter_ns
    interval_ns = 1e9 / rate
    total = int(rate * (warmup_s + duration_s))
    t0 = perf_ns() + 50_000_000
    start_ns = t0 + int(warmup_s * 1e9)
    end_ns = start_ns + int(duration_s * 1e9)
    latencies: list[int] = []
    lateness: list[int] = []
    errors: Counter[str] = Counter()
    samples: list[str] = []
    ok_in_window = 0
    outstanding: set[int] = set()  # counted requests not yet answered
    max_open = open_conns[0]

    async def take() -> Connection:
        nonlocal max_open
        while True:
            if not idle.empty() or open_conns[0] >= max_conns:
                conn = await idle.get()
                if not conn.closed:
                    return conn
                open_conns[0] -= 1  # closed while idle (keep-alive timeout)
                continue
            open_conns[0] += 1
            max_open = max(max_open, open_conns[0])
            try:
                conn = await connect(host, port)
            except OSError:
                open_conns[0] -= 1
                raise
            all_conns.append(conn)
            return conn

    async def one(index: int) -> None:
        nonlocal ok_in_window
        due = t0 + int(index * interval_ns)
        counted = start_ns <= due < end_ns
        if counted:
            outstanding.add(index)
        try:
            conn = await take()
        except OSError as exc:
            outstanding.discard(index)
            if counted:
                errors[f"connect {type(exc).__name__}"] += 1
            return
        if counted:
            lateness.append(perf_ns() - due)
        try:
            status, body = await conn.request(raws[index % len(raws)])
        except HttpError as exc:
            outstanding.discard(index)
            open_conns[0] -= 1
            if counted:
                errors["transport"] += 1
                if len(samples) < MAX_ERROR_SAMPLES:
                    samples.append(f"transport: {exc}")
            return
        done = perf_ns()
        outstanding.discard(index)
        idle.put_nowait(conn)
        if status == 200 and start_ns <= done < end_ns:
            ok_in_window += 1
        if not counted:
            return
        if status == 200:
            latencies.append(done - due)
        else:
            errors[_error_kind(status, body)] += 1
            if len(samples) < MAX_ERROR_SAMPLES:
                samples.append(f"{status}: {body[:200].decode(errors='replace')}")

    tasks: set[asyncio.Task[None]] = set()
    cpu_marks: dict[str, float] = {}

    def mark(name: str) -> None:
        cpu_marks[name] = time.process_time()
        sys.stdout.write(f"MARK {name}\n")
        sys.stdout.flush()

    loop = asyncio.get_running_loop()
    loop.call_later(max(0.0, (start_ns - perf_ns()) / 1e9), mark, "start")
    loop.call_later(max(0.0, (end_ns - perf_ns()) / 1e9), mark, "end")
    issued = 0
    while issued < total:
        due_now = min(total, int((perf_ns() - t0) / interval_ns) + 1)
        while issued < due_now:
            task = asyncio.create_task(one(issued))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            issued += 1
        await asyncio.sleep(0.0005)
    sent_s = (perf_ns() - t0) / 1e9
    while not {"start", "end"} <= cpu_marks.keys():  # the window's end is ≤ 1 interval away
        await asyncio.sleep(0.001)
    pending = set(tasks)
    if pending:
        await asyncio.wait(pending, timeout=max(0.0, drain_s))
    if outstanding:
        errors["unanswered"] += len(outstanding)
    for task in pending:
        task.cancel()
    cpu_s = cpu_marks.get("end", time.process_time()) - cpu_marks.get("start", 0.0)
    for conn in all_conns:
        conn.close()
    latencies.sort()
    lateness.sort()
    n_counted = int(rate * duration_s)
    return {
        "rate": rate,
        "prefix": spec.get("prefix", ""),
        "duration_s": duration_s,
        "warmup_s": warmup_s,
        "scheduled": n_counted,
        "ok": len(latencies),
        "achieved_per_s": ok_in_window / duration_s,
        "errors": sum(errors.values()),
        "errors_by_kind": dict(errors),
        "error_samples": samples,
        "latency_ms": {
            "p50": _pct(latencies, 50),
            "p90": _pct(latencies, 90),
            "p99": _pct(latencies, 99),
            "max": latencies[-1] / 1e6 if latencies else None,
        },
        "send_lateness_ms": {"p50": _pct(lateness, 50), "p99": _pct(lateness, 99)},
        "schedule_s": round(sent_s, 3),
        "connections_max": max_open,
        "client_cpu_s": round(cpu_s, 3),
        "client_cpu_pct": round(100 * cpu_s / duration_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    result = asyncio.run(run(json.loads(args[0])))
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

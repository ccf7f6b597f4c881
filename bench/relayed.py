"""A relay and a bridge behind it, and an open-loop bill-fetch load through them.

What ``bench/relay.py``, ``bench/relay_profile.py`` (it profiles the relay) and
``bench/uplink_profile.py`` (it profiles the bridge) start and drive:

- :func:`relay_and_bridge`: a relay (its per-venue rate limit lifted: the benches measure
  work, not the limit) with one venue added by ``pos-bridge relay add-venue``, and a bridge
  (simulated POS, 999 tables) whose ``[tunnel]`` dials it, in a temporary folder; given
  once the tunnel is up, both stopped on leaving. The relay's command may be replaced (a
  profiling wrapper), and either side run under callgrind.
- :func:`relay_and_canned_bridge`: a relay whose tunnel is held by a fake bridge answering
  every request at once (:data:`SYNTHETIC_BILL`, or a bill :func:`sample_bill` took from a
  real bridge): the relay measured alone.
- :func:`bill_fetches`: one ``bench/openloop.py`` run at a fixed offered rate, straight at the
  bridge's listener or through the relay's ``/v/{venue}/…``, calling ``on_start``/``on_end``
  at the counted window's edges (a profiler's switch) and reading one process's user and
  system CPU over that window from ``/proc``.
- :func:`run_load` and :func:`settle`: ``bench/relay.py``'s run at one load and path, with
  the CPU of several processes and of the machine, and the wait for them to idle after it.

Standard library only, like every bench module.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench import common
from bench.bridge_process import SECRET, TABLES, Bridge, machine_cpu, write_config
from bench.common import RESULTS, run_generator, stat_fields
from bench.instructions import START_UNDER_VALGRIND_S, under_callgrind
from bench.relay_process import (
    Client,
    Relay,
    add_tunnel_section,
    add_venue_cli,
    proc_cpu_s,
    proc_user_system_s,
    relay_has_rate_limit,
    write_relay_config,
)

LOCATION = "bench-relay"
VENUE = "bench-venue"
#: The path prefix of the venue's requests at the relay.
RELAYED = f"/v/{VENUE}"


@dataclass
class Relayed:
    """A running relay and the bridge whose tunnel it holds, and the folder they work in."""

    relay: Relay
    bridge: Bridge
    folder: Path


@contextmanager
def relay_and_bridge(
    python: str,
    name: str,
    plain_bridge: bool,
    relay_argv: Callable[[Path], list[str]] | None = None,
    callgrind: Literal["relay", "bridge"] | None = None,
    fast_path: bool = True,
) -> Iterator[Relayed]:
    """Relay and bridge up with the tunnel between them, in a fresh ``bench/results/<name>-*``
    folder (configs, logs, data); both stopped and the folder removed on leaving.
    ``relay_argv(config)`` replaces the relay's command (a profiling wrapper); the bridge is
    ``python -m bridge serve`` with ``plain_bridge``, else ``bench.serve_counted`` (counters,
    cProfile toggle). ``callgrind``: that side runs under callgrind, counting nothing until
    ``callgrind_control -i on``, its output in ``<folder>/callgrind.out*``. ``fast_path``: the
    relay's ``[relay] fast_path``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=RESULTS))
    (folder / "data").mkdir()
    relay = Relay(
        python,
        write_relay_config(
            folder / "relay", unlimited=relay_has_rate_limit(python), fast_path=fast_path
        ),
    )
    if relay_argv is not None:
        relay.argv = relay_argv(relay.config)
    bridge: Bridge | None = None
    start_timeout_s = common.START_TIMEOUT_S
    if callgrind is not None:
        common.START_TIMEOUT_S = START_UNDER_VALGRIND_S  # read by ServerProcess.start
    try:
        if callgrind == "relay":
            relay.argv = under_callgrind(relay.argv, folder / "callgrind.out")
        token = add_venue_cli(python, relay.config, VENUE)
        relay.start()
        config = write_config(folder, [LOCATION])
        add_tunnel_section(config, relay.port, VENUE, token)
        bridge = Bridge(python, config, folder, plain=plain_bridge)
        if callgrind == "bridge":
            bridge.argv = under_callgrind(bridge.argv, folder / "callgrind.out")
        bridge.start()
        relay.wait_online(VENUE, timeout_s=120.0)  # long under callgrind
        yield Relayed(relay, bridge, folder)
    finally:
        common.START_TIMEOUT_S = start_timeout_s
        if bridge is not None:
            bridge.stop()
        relay.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _answer(body: str) -> dict[str, Any]:
    headers = [
        ["Content-Type", "application/json; charset=utf-8"],
        ["Content-Length", str(len(body.encode()))],
        ["Server", "Python/3.11 aiohttp/3"],
    ]
    return {"status": 200, "headers": headers, "body": body}


#: A bill's answer with the head fields the bridge gives it, for runs without a real bridge.
SYNTHETIC_BILL = _answer(
    json.dumps(
        {
            "id": f"{LOCATION}:1",
            "tableId": "1",
            "currency": "AUD",
            "items": [
                {"id": f"item-{i}", "name": f"Dish number {i}", "quantity": 1, "price": 1250}
                for i in range(8)
            ],
            "total": 10000,
            "paid": 0,
            "balance": 10000,
            "version": "0" * 16,
        }
    )
)


@contextmanager
def relay_and_canned_bridge(
    python: str,
    folder: Path,
    answer: dict[str, Any] | None = None,
    relay_argv: Callable[[Path], list[str]] | None = None,
    fast_path: bool = True,
) -> Iterator[tuple[Relay, Client]]:
    """A relay whose venue's tunnel is held by one fake bridge (``bench/idle_tunnels.py``)
    answering every request at once with ``answer`` (``status``, ``headers``, ``body``; by
    default :data:`SYNTHETIC_BILL`): the relay measured without a real bridge competing for
    the cores. Configs in ``folder``; both stopped on leaving. ``relay_argv`` and
    ``fast_path`` as for :func:`relay_and_bridge`."""
    unlimited = relay_has_rate_limit(python)
    relay = Relay(
        python, write_relay_config(folder / "relay-c", unlimited=unlimited, fast_path=fast_path)
    )
    if relay_argv is not None:
        relay.argv = relay_argv(relay.config)
    client: Client | None = None
    try:
        token = add_venue_cli(python, relay.config, VENUE)
        relay.start()
        tokens_file = folder / "canned-token.json"
        tokens_file.write_text(json.dumps([[VENUE, token]]))
        job = {
            "port": relay.port,
            "tokens_file": str(tokens_file),
            "first": 0,
            "count": 1,
            "parallel": 1,
            "handshake_timeout_s": 30.0,
            "max_life_s": 900.0,
            "answer": answer or SYNTHETIC_BILL,
        }
        client = Client(python, job)
        ready = client.wait_for("READY", 60.0)
        if not ready or ready["outcomes"].get("welcomed") != 1:
            raise RuntimeError(f"the canned-answer bridge did not connect: {ready}")
        relay.wait_online(VENUE)
        yield relay, client
    finally:
        if client is not None:
            client.stop()
        relay.stop()


def bill_fetch_job(
    port: int,
    prefix: str,
    rate: int,
    warmup_s: float,
    duration_s: float,
    drain_s: float = 10.0,
    max_connections: int = 256,
) -> dict[str, Any]:
    """``bench/openloop.py``'s job: LOKE bill GETs round-robin over the tables at ``rate``
    per second, at ``port`` (``prefix``: ``""`` straight at the bridge, :data:`RELAYED`
    through the relay)."""
    return {
        "port": port,
        "prefix": prefix,
        "location": LOCATION,
        "secret": SECRET,
        "tables": TABLES,
        "rate": rate,
        "warmup_s": warmup_s,
        "duration_s": duration_s,
        "drain_s": drain_s,
        "max_connections": max_connections,
    }


def sample_bill(port: int, table: int = 1) -> dict[str, Any]:
    """One bill as the bridge answers it (status, head fields but ``Date``, body text): the
    canned answer of the relay's capacity run (``bench/relay.py`` (c))."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        path = f"/loke/v1/locations/{LOCATION}/tables/{table}/bill"
        connection.request("GET", path, headers={"Authorization": f"Bearer {SECRET}"})
        response = connection.getresponse()
        body = response.read().decode()
        headers = [[k, v] for k, v in response.getheaders() if k.lower() != "date"]
        return {"status": response.status, "headers": headers, "body": body}
    finally:
        connection.close()


def _nothing() -> None:
    pass


def bill_fetches(
    port: int,
    prefix: str,
    rate: int,
    warmup_s: float,
    duration_s: float,
    cpu_of: int,
    on_start: Callable[[], object] = _nothing,
    on_end: Callable[[], object] = _nothing,
) -> dict[str, Any]:
    """One open-loop run (:func:`bill_fetch_job`): ``on_start``/``on_end`` called as the
    counted window opens and closes, then process ``cpu_of``'s CPU read. Adds to the
    generator's result ``cpu_ms_per_request``: that process's ``user`` and ``system`` CPU ms
    per request answered in the window (``None`` when none was)."""
    job = bill_fetch_job(port, prefix, rate, warmup_s, duration_s)

    def snapshot(name: str) -> dict[str, Any]:
        (on_start if name == "start" else on_end)()
        return {"cpu": proc_user_system_s(cpu_of)}

    timeout_s = 120 + warmup_s + duration_s
    result, snaps, code = run_generator("bench.openloop", job, timeout_s, snapshot)
    if result is None or {"start", "end"} - snaps.keys():
        raise RuntimeError(f"open-loop generator failed (exit {code})")
    done = answered(result, duration_s)
    user, system = (b - a for a, b in zip(snaps["start"]["cpu"], snaps["end"]["cpu"], strict=True))
    result["cpu_ms_per_request"] = (
        {"user": 1e3 * user / done, "system": 1e3 * system / done} if done else None
    )
    return result


def answered(result: dict[str, Any], seconds: float) -> int:
    """Requests answered in ``seconds`` of a run's counted window, at its achieved rate."""
    return round(float(result["achieved_per_s"]) * seconds)


def run_load(
    args: argparse.Namespace, port: int, prefix: str, rate: int, pids: dict[str, int]
) -> dict[str, Any]:
    """One open-loop run; CPU of each server process over its counted window."""
    job = bill_fetch_job(
        port, prefix, rate, args.warmup, args.duration, args.drain, args.max_connections
    )

    def snapshot(_name: str) -> dict[str, Any]:
        return {
            "wall": time.perf_counter(),
            "machine": machine_cpu(),
            "stat": stat_fields(),
            **{name: proc_cpu_s(pid) for name, pid in pids.items()},
        }

    timeout_s = 60 + args.warmup + args.duration + args.drain
    result, snaps, returncode = run_generator("bench.openloop", job, timeout_s, snapshot)
    if result is None or "start" not in snaps or "end" not in snaps:
        raise RuntimeError(f"open-loop generator failed (exit {returncode})")
    s0, s1 = snaps["start"], snaps["end"]
    wall = s1["wall"] - s0["wall"]
    cpu = {name: round(100 * (s1[name] - s0[name]) / wall, 1) for name in pids}
    cpu["generator"] = result["client_cpu_pct"]
    busy, total = s1["machine"][0] - s0["machine"][0], s1["machine"][1] - s0["machine"][1]
    if total:
        machine = 100 * (os.cpu_count() or 1) * busy / total
        cpu["machine"] = round(machine, 1)
        ours = sum(cpu[name] for name in pids) + cpu["generator"]
        delta = [b - a for a, b in zip(s0["stat"], s1["stat"], strict=True)]
        scale = 100 * (os.cpu_count() or 1) / total
        cpu["irq"] = round((delta[5] + delta[6]) * scale, 1)  # irq + softirq (loopback TCP)
        cpu["steal"] = round(delta[7] * scale, 1)  # the hypervisor gave the core to others
        cpu["others"] = round(max(0.0, machine - ours - cpu["irq"] - cpu["steal"]), 1)
    result["cpu_pct"] = cpu
    done = result["achieved_per_s"] * wall
    result["cpu_ms_per_request"] = {
        name: round(10 * cpu[name] * wall / done, 3) if done else None for name in pids
    }
    return result


def settle(pids: dict[str, int], timeout_s: float = 20.0) -> float:
    """Wait (bounded) until bridge and relay are idle again: a backlog left by an overloaded
    run must not leak into the next one. Returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        before = sum(proc_cpu_s(pid) for pid in pids.values())
        time.sleep(0.5)
        if sum(proc_cpu_s(pid) for pid in pids.values()) - before < 0.05:
            break
    return round(time.monotonic() - started, 1)

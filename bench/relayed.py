"""A relay and a bridge behind it, and an open-loop bill-fetch load through them.

What ``bench/relay_profile.py`` (it profiles the relay) and ``bench/uplink_profile.py`` (it
profiles the bridge) both start and drive, as ``bench/relay.py`` (a) does:

- :func:`relay_and_bridge`: a relay (its per-venue rate limit lifted: the benches measure
  work, not the limit) with one venue added by ``pos-bridge relay add-venue``, and a bridge
  (simulated POS, 999 tables) whose ``[tunnel]`` dials it, in a temporary folder; given
  once the tunnel is up, both stopped on leaving. The relay's command may be replaced (a
  profiling wrapper), and either side run under callgrind.
- :func:`bill_fetches`: one ``bench/openloop.py`` run at a fixed offered rate, straight at the
  bridge's listener or through the relay's ``/v/{venue}/…``, calling ``on_start``/``on_end``
  at the counted window's edges (a profiler's switch) and reading one process's user and
  system CPU over that window from ``/proc``.

Standard library only, like every bench module.
"""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench import common
from bench.bridge_process import SECRET, TABLES, Bridge, write_config
from bench.common import RESULTS, run_generator
from bench.instructions import START_UNDER_VALGRIND_S, under_callgrind
from bench.relay_process import (
    Client,
    Relay,
    add_tunnel_section,
    add_venue_cli,
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

"""What the relay costs: bill fetch direct vs through the relay, and idle tunnels' memory.

Run it from the repository root (the bench needs only the standard library; the bridge, the
relay and the fake bridges run under ``.venv/bin/python`` when it exists)::

    .venv/bin/python -m bench.relay                    # ~2.5 min with the defaults
    .venv/bin/python -m bench.relay --tunnels 1000 --duration 3    # a quick run

One run, every loop bounded in time, all traffic on 127.0.0.1:

(a) **Bill fetch, direct vs via the relay.** A relay subprocess (``python -m bridge relay
    --config …``, i.e. ``pos-bridge relay``) with one venue added by ``pos-bridge relay
    add-venue``, and a bridge subprocess (``python -m bridge serve``, simulated POS in memory,
    999 tables) whose ``[tunnel]`` dials that relay (its per-venue ``[rate_limit]``, when the
    relay has one, lifted: this measures capacity, not the limit). For each offered load
    (``--rates``, default 1,000 and 4,000 requests/s) an open-loop generator
    (``bench/openloop.py``, its own process) GETs ``…/tables/{n}/bill`` with the LOKE bearer
    round-robin over the tables: first straight at the bridge's listener, then at the relay's
    ``/v/{venue}/…`` (same bridge, same POS), then (when ``nats-server`` is installed and
    not ``--skip-nats``) at a second relay A that does not hold the venue, so each request
    is routed over NATS to the relay B holding the tunnel. Both relays then join one
    ``nats-server`` the bench starts (B's local path never touches NATS: local first).
    ``--warmup`` s uncounted, ``--duration`` s counted, then up to ``--drain`` s for late
    answers. Recorded: achieved 200s/s, p50/p99 latency from each request's *due* time,
    errors by kind, CPU of bridge, relay B, relay A, nats-server and generator.
(c) **The relay alone** (after (a), unless ``--skip-capacity``): a fresh relay whose tunnel
    is held by one fake bridge (``bench/idle_tunnels.py`` with an ``answer``: a bill the real
    bridge gave in (a), head fields and body; without (a), ``bench.relayed.SYNTHETIC_BILL``)
    that answers every request at once, and the same bill GETs through it at each offered
    load. In (a) the relay, the bridge and the generator share two cores; here the fake
    bridge costs little, so this is the relay's own capacity. Recorded as in (a).
(b) **Idle tunnels.** A fresh relay; ``--tunnels`` venues written to its venues file (tokens
    drawn here, only hashes stored, as ``add-venue`` does); ``--clients`` processes of fake
    bridges (``bench/idle_tunnels.py``: bare websockets carrying the real HELLO from the
    sans-I/O tunnel protocol, then idle, answering PINGs). The relay's RSS before, once all
    are connected, and after ``--hold`` s of PINGs every ``--heartbeat`` s; ``/healthz``
    must still count every venue online.

Printed: a table, a markdown snippet for README; JSON in ``bench/results/relay-<timestamp>.json``.
Targets (issue 4): relay p50 ≤ direct p50 + 1 ms and ≥ 0.5× direct throughput at 1,000/s; no
errors at 4,000/s offered (here: none, and ≥ 95 % of the load answered in the window, both
via the real bridge (a) and for the relay alone (c)); NATS-routed ≥ 0.35× direct
throughput; 10,000 idle tunnels in ≤ 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from bench.bridge_process import (  # noqa: E402
    Bridge,
    bridge_python,
    code_version,
    write_config,
)
from bench.common import write_results  # noqa: E402
from bench.nats_process import NatsServer, nats_server_binary  # noqa: E402
from bench.relay_process import (  # noqa: E402
    Client,
    Relay,
    add_tunnel_section,
    add_venue_cli,
    nofile_limits,
    relay_has_rate_limit,
    rss_kib,
    write_bulk_venues,
    write_relay_config,
)
from bench.relay_report import markdown, print_table, verdicts  # noqa: E402
from bench.relayed import (  # noqa: E402
    LOCATION,
    RELAYED,
    SYNTHETIC_BILL,
    VENUE,
    relay_and_canned_bridge,
    run_load,
    sample_bill,
    settle,
)

# -- (a) one offered load on one path -----------------------------------------------------------


def part_a(args: argparse.Namespace, folder: Path, python: str) -> dict[str, Any]:
    """Direct, via the relay holding the tunnel (relay B), and, with a ``nats-server``, via a
    second relay (relay A) that routes over NATS to B: three paths to the same bridge."""
    unlimited = relay_has_rate_limit(python)
    binary = None if args.skip_nats else nats_server_binary()
    nats = NatsServer(binary) if binary else None
    url = nats.url if nats else None
    relay = Relay(python, write_relay_config(folder / "relay-b", unlimited=unlimited, nats_url=url))
    front: Relay | None = None
    bridge: Bridge | None = None
    try:
        token = add_venue_cli(python, relay.config, VENUE)
        relay.start()
        if nats is not None:
            venues = relay.config.parent / "venues.toml"
            config_a = write_relay_config(
                folder / "relay-a", unlimited=unlimited, nats_url=url, venues_file=venues
            )
            front = Relay(python, config_a)
            front.start()
        config = write_config(folder, [LOCATION])
        add_tunnel_section(config, relay.port, VENUE, token)
        bridge = Bridge(python, config, folder, plain=True)
        bridge.start()
        online_s = relay.wait_online(VENUE)
        sample = sample_bill(bridge.port)
        print(
            f"(a) bridge pid {bridge.pid} :{bridge.port}, relay B pid {relay.pid} :{relay.port},"
            f" tunnel up in {online_s:.2f} s"
            + (f"; relay A pid {front.pid} :{front.port}, {url}" if front else "; no nats-server")
        )
        pids = {"bridge": bridge.pid, "relay": relay.pid}
        paths = [("direct", bridge.port, ""), ("relay", relay.port, RELAYED)]
        if front is not None and nats is not None:
            pids.update(front=front.pid, nats=nats.pid)
            paths.append(("nats", front.port, RELAYED))
        rates: list[dict[str, Any]] = []
        for rate in args.rates:
            entry: dict[str, Any] = {"rate": rate, "nats": None}
            for path, port, prefix in paths:
                r = entry[path] = run_load(args, port, prefix, rate, pids)
                r["settle_s"] = settle(pids)
                lat = r["latency_ms"]
                print(
                    f"    {rate:>5}/s {path:<6}: {r['achieved_per_s']:7.0f}/s achieved,"
                    f" p50 {_f(lat['p50'])} ms, p99 {_f(lat['p99'])} ms,"
                    f" errors {r['errors']} {r['errors_by_kind'] or ''}"
                )
            rates.append(entry)
        return {
            "tunnel_online_s": round(online_s, 3),
            "rate_limit_lifted": unlimited,
            "nats": url is not None,
            "rates": rates,
            "sample_answer": sample,
        }
    finally:
        if bridge is not None:
            bridge.stop()
        if front is not None:
            front.stop()
        relay.stop()
        if nats is not None:
            nats.stop()


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# -- (c) the relay's own capacity ---------------------------------------------------------------


def part_c(
    args: argparse.Namespace, folder: Path, python: str, answer: dict[str, Any]
) -> dict[str, Any]:
    """The relay alone: the same bill GETs through it, answered at once by a fake bridge
    (``bench/idle_tunnels.py`` with ``answer``: a bill the real bridge gave in (a)), so the
    relay has most of the two cores that in (a) it shares with a real bridge."""
    with relay_and_canned_bridge(python, folder, answer) as (relay, client):
        pids = {"bridge": client.proc.pid, "relay": relay.pid}
        print(
            f"(c) relay pid {relay.pid} :{relay.port}, canned-answer bridge pid"
            f" {client.proc.pid} ({len(answer['body'])} B bills)"
        )
        rates: list[dict[str, Any]] = []
        for rate in args.rates:
            r = run_load(args, relay.port, RELAYED, rate, pids)
            r["settle_s"] = settle(pids)
            lat = r["latency_ms"]
            print(
                f"    {rate:>5}/s canned: {r['achieved_per_s']:7.0f}/s achieved,"
                f" p50 {_f(lat['p50'])} ms, p99 {_f(lat['p99'])} ms,"
                f" errors {r['errors']} {r['errors_by_kind'] or ''}; CPU % relay"
                f" {r['cpu_pct']['relay']}, fake bridge {r['cpu_pct']['bridge']},"
                f" generator {r['cpu_pct']['generator']}, irq {r['cpu_pct'].get('irq')}"
            )
            rates.append({"rate": rate, "canned": r})
        return {"answer_bytes": len(answer["body"]), "rates": rates}


# -- (b) idle tunnels ---------------------------------------------------------------------------


def part_b(args: argparse.Namespace, folder: Path, python: str) -> dict[str, Any]:
    n = args.tunnels
    relay = Relay(python, write_relay_config(folder / "relay-b", heartbeat_s=args.heartbeat))
    names = [f"idle-{i:05d}" for i in range(n)]
    pairs = write_bulk_venues(relay.config.parent / "venues.toml", names)
    tokens_file = folder / "idle-tokens.json"
    tokens_file.write_text(json.dumps(pairs))
    clients: list[Client] = []
    out: dict[str, Any] = {"tunnels": n, "clients": args.clients, "heartbeat_s": args.heartbeat}
    try:
        relay.start()
        out["relay_nofile"] = relay.nofile()
        if out["relay_nofile"].get("soft", 0) < n + 100:
            print(f"(b) warning: relay open-file limit {out['relay_nofile']} < {n} tunnels")
        time.sleep(1.0)
        relay.get("/healthz")  # touch the HTTP path once, so its first-use memory is in "before"
        time.sleep(0.5)
        out["rss_before"] = rss_kib(relay.pid)
        print(f"(b) relay pid {relay.pid}, RSS {out['rss_before']['rss_kib'] / 1024:.1f} MiB idle")
        per = -(-n // args.clients)
        started = time.monotonic()
        for i in range(args.clients):
            job = {
                "port": relay.port,
                "tokens_file": str(tokens_file),
                "first": i * per,
                "count": max(0, min(per, n - i * per)),
                "parallel": 64,
                "handshake_timeout_s": 30.0,
                "max_life_s": 300.0 + args.hold,
            }
            clients.append(Client(python, job))
        readies = [c.wait_for("READY", 240.0) for c in clients]
        out["connect_s"] = round(time.monotonic() - started, 1)
        outcomes: dict[str, int] = {}
        for ready in readies:
            for kind, count in ((ready or {}).get("outcomes") or {"client failed": 1}).items():
                outcomes[kind] = outcomes.get(kind, 0) + count
        out["outcomes"] = outcomes
        out["client_nofile"] = [(r or {}).get("nofile") for r in readies]
        out["welcomed"] = outcomes.get("welcomed", 0)
        print(f"    {out['welcomed']}/{n} tunnels up in {out['connect_s']} s: {outcomes}")
        time.sleep(2.0)
        out["rss_connected"] = rss_kib(relay.pid)
        time.sleep(args.hold)
        out["rss_after_hold"] = rss_kib(relay.pid)
        status, body = relay.get("/healthz")
        out["online_after_hold"] = (body or {}).get("venuesOnline") if status == 200 else None
        for client in clients:
            client.release()
        results = [c.wait_for("RESULT", 30.0) for c in clients]
        stats: dict[str, int] = {}
        for result in results:
            for kind, count in ((result or {}).get("stats") or {}).items():
                stats[kind] = stats.get(kind, 0) + count
        out["client_stats"] = stats
        grown = out["rss_after_hold"]["rss_kib"] - out["rss_before"]["rss_kib"]
        out["per_tunnel_kib"] = round(grown / out["welcomed"], 2) if out["welcomed"] else None
        print(
            f"    RSS {out['rss_connected']['rss_kib'] / 1024:.1f} MiB connected,"
            f" {out['rss_after_hold']['rss_kib'] / 1024:.1f} MiB after {args.hold:.0f} s"
            f" ({out['per_tunnel_kib']} KiB per tunnel); online after hold:"
            f" {out['online_after_hold']}; PINGs answered: {stats.get('tunnel_pings', 0)}"
        )
        return out
    finally:
        for client in clients:
            client.stop()
        relay.stop()


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.relay", description=__doc__.split("\n", 1)[0])
    p.add_argument("--rates", default="1000,4000", help="offered loads, requests/s")
    p.add_argument("--duration", type=float, default=8.0, help="counted s per load and path")
    p.add_argument("--warmup", type=float, default=2.0, help="uncounted s before each")
    p.add_argument("--drain", type=float, default=10.0, help="s to wait for late answers")
    p.add_argument("--max-connections", type=int, default=256, help="generator's pool cap")
    p.add_argument("--tunnels", type=int, default=10_000, help="idle tunnels in (b)")
    p.add_argument("--clients", type=int, default=2, help="fake-bridge processes in (b)")
    p.add_argument("--hold", type=float, default=12.0, help="s the idle tunnels are held")
    p.add_argument("--heartbeat", type=float, default=5.0, help="relay PING interval in (b)")
    p.add_argument("--skip-latency", action="store_true", help="no (a)")
    p.add_argument("--skip-tunnels", action="store_true", help="no (b)")
    p.add_argument("--skip-nats", action="store_true", help="no NATS-routed path in (a)")
    p.add_argument("--skip-capacity", action="store_true", help="no canned-answer run (c)")
    p.add_argument("--python", default=None, help="interpreter for bridge, relay, fake bridges")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--no-write", action="store_true", help="do not write the JSON file")
    p.add_argument("--report", metavar="JSON", help="print a past run's results; run nothing")
    args = p.parse_args(argv)
    args.rates = [int(x) for x in args.rates.split(",") if x.strip()]
    if not args.rates or min(args.rates) < 1 or max(args.rates) > 50_000:
        p.error("--rates: integers from 1 to 50000")
    if not 0 < args.duration <= 120 or not 0 <= args.warmup <= 60 or not 0 <= args.drain <= 60:
        p.error("--duration in (0, 120], --warmup and --drain in [0, 60]")
    if not 1 <= args.tunnels <= 100_000 or not 1 <= args.clients <= 16 or not 0 <= args.hold <= 300:
        p.error("--tunnels in [1, 100000], --clients in [1, 16], --hold in [0, 300]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:  # a past run's table and README snippet, with today's report code
        report = json.loads(Path(args.report).read_text())
        report["targets"] = verdicts(report)
        print_table(report)
        print("\n--- markdown for README ---\n" + markdown(report) + "\n---")
        return 0
    python = bridge_python(args.python)
    results_dir = REPO / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="relay-", dir=results_dir))
    (folder / "data").mkdir()
    run_id = time.strftime("%Y%m%d-%H%M%S")
    report: dict[str, Any] = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(terse=True),
            "system": f"{platform.system()} {platform.machine()}",
            "python_bench": platform.python_version(),
            "nofile": nofile_limits(),
        },
        "code": code_version(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("python",)},
    }
    started = time.perf_counter()
    try:
        answer = SYNTHETIC_BILL
        if not args.skip_latency:
            report["latency"] = part_a(args, folder, python)
            answer = report["latency"].pop("sample_answer")
        if not args.skip_capacity:
            report["capacity"] = part_c(args, folder, python, answer)
        if not args.skip_tunnels:
            report["idle"] = part_b(args, folder, python)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    report["run_seconds"] = round(time.perf_counter() - started, 1)
    report["targets"] = verdicts(report)
    print_table(report)
    print("\n--- markdown for README ---\n" + markdown(report) + "\n---")
    if not args.no_write:
        write_results(report, f"relay-{run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

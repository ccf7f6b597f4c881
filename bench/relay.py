"""What the relay costs: bill fetch direct vs via the relay vs via two relays and NATS, and
the relay's memory with many idle tunnels.

    .venv/bin/python -m bench.relay [--rates 1000,4000] [--duration 8] [--tunnels 10000]

(a) **Bill fetch.** Relay B (``python -m bridge relay``, the venue added by ``pos-bridge relay
    add-venue``) and the bridge (``python -m bridge serve``, one process, in-memory simulator,
    999 tables) whose ``[tunnel]`` dials B. When ``nats-server`` is installed (and not
    ``--skip-nats``), a ``nats-server`` and a relay A in the same cluster that does not hold
    the venue, so its requests are routed over NATS to B. For each offered load, an open-loop
    run (``bench/loadgen.py``) per path: straight at the bridge, at B's ``/v/{venue}/…``, at
    A's. Recorded: answered/s, p50/p99 from each request's due time, errors by kind, CPU
    per answered request of each process.
(b) **Idle tunnels.** A fresh relay, ``--tunnels`` venues in its venues file, fake bridges
    (``bench/idle_tunnels.py``, ``--clients`` processes) each holding tunnels that said the
    real HELLO and then idle; the relay's RSS before, connected, and after ``--hold`` s of
    PINGs every ``--heartbeat`` s.

Targets: relay p50 ≤ direct p50 + 1 ms and ≥ 0.5× direct throughput at 1,000/s; NATS-routed
≥ 0.35× direct throughput; no errors at 4,000/s offered; 10,000 idle tunnels in ≤ 1 GiB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS,
    SECRET,
    TABLES,
    NatsServer,
    Server,
    add_venue,
    bridge_config,
    child_env,
    commit,
    cpu_seconds,
    fmt,
    machine_jiffies,
    others_pct,
    python,
    relay_config,
    rss_kib,
    run_generator,
    write_results,
)

LOCATION, VENUE = "bench-relay", "bench-venue"
PATHS = {"direct": "direct", "relay": "via relay", "nats": "via 2 relays + NATS"}
#: How many of bridge, relay (B), relay A, nats-server a request of each path goes through.
ON_PATH = {"direct": 1, "relay": 2, "nats": 4}


def wait_online(relay: Server, venue: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, body = relay.get(f"/venues/{venue}/health")
        if status == 200 and body and body.get("online"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"venue {venue} not online in {timeout_s} s:\n{relay.log_tail()}")


def run_load(args: argparse.Namespace, port: int, prefix: str, rate: int, pids: dict) -> dict:
    """One open-loop run; the CPU of each process in ``pids`` over its counted window."""
    job = {
        "kind": "bills",
        "port": port,
        "prefix": prefix,
        "location": LOCATION,
        "secret": SECRET,
        "tables": TABLES,
        "rate": rate,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "drain_s": args.drain,
    }

    def snapshot() -> dict[str, Any]:
        cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
        return {"wall": time.perf_counter(), "cpu": cpu, "machine": machine_jiffies()}

    result, start, end = run_generator(job, 60 + args.warmup + args.duration + args.drain, snapshot)
    wall = end["wall"] - start["wall"]
    cpu = {name: end["cpu"][name] - start["cpu"][name] for name in pids}
    answered = result["per_s"] * wall
    result["cpu_ms_per_request"] = {
        name: round(1000 * seconds / answered, 3) if answered else None
        for name, seconds in cpu.items()
    }
    ours = 100 * sum(cpu.values()) / wall + result["client_cpu_pct"]
    result["others_cpu_pct"] = others_pct(start["machine"], end["machine"], ours)
    settle(pids)  # a backlog left by an overloaded run must not leak into the next one
    return result


def settle(pids: dict[str, int], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(pid) for pid in pids.values())
        time.sleep(0.5)
        if sum(cpu_seconds(pid) for pid in pids.values()) - before < 0.05:
            return


def part_a(args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    binary = None if args.skip_nats else NatsServer.find()
    nats = NatsServer(binary) if binary else None
    url = nats.url if nats else None
    relay_b = Server("relay-b", "relay", relay_config(folder / "relay-b", nats_url=url))
    venues = str(folder / "relay-b" / "venues.toml")
    relay_a = Server(
        "relay-a", "relay", relay_config(folder / "relay-a", nats_url=url, venues=venues)
    )
    bridge = Server("bridge", "serve", bridge_config(folder / "bridge", [LOCATION]))
    try:
        token = add_venue(relay_b.config, VENUE)
        relay_b.start()
        with bridge.config.open("a") as f:
            f.write(
                f'\n[tunnel]\nurl = "ws://127.0.0.1:{relay_b.port}/tunnel"\nvenue = "{VENUE}"\n'
                f'token = "{token}"\nreconnect_max_s = 2.0\n'
            )
        bridge.start()
        wait_online(relay_b, VENUE)
        pids = {"bridge": bridge.pid, "relay": relay_b.pid}
        paths = {"direct": (bridge.port, ""), "relay": (relay_b.port, f"/v/{VENUE}")}
        if nats is not None:
            relay_a.start()
            pids |= {"relay A": relay_a.pid, "nats-server": nats.proc.pid}
            paths["nats"] = (relay_a.port, f"/v/{VENUE}")
        else:
            print("(a) no nats-server: the NATS-routed path is not measured")
        rates = []
        for rate in args.rates:
            entry: dict[str, Any] = {"rate": rate}
            for path, (port, prefix) in paths.items():
                r = entry[path] = run_load(args, port, prefix, rate, pids)
                print(
                    f"(a) {rate:>5}/s {path:<6}: {r['per_s']:7.0f}/s answered, p50"
                    f" {fmt(r['p50_ms'])} ms, p99 {fmt(r['p99_ms'])} ms, errors {r['errors']}"
                    f" {r['errors_by_kind'] or ''}"
                )
            rates.append(entry)
        return rates
    finally:
        for server in (bridge, relay_a, relay_b):
            server.stop()
        if nats is not None:
            nats.stop()


def part_b(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    relay = Server("relay-idle", "relay", relay_config(folder / "relay-idle", args.heartbeat))
    pairs = [(f"idle-{i:05d}", "pbv_" + secrets.token_urlsafe(32)) for i in range(args.tunnels)]
    with (relay.config.parent / "venues.toml").open("w") as f:  # as add-venue writes it
        for name, token in pairs:
            digest = hashlib.sha256(token.encode()).hexdigest()
            f.write(f'[venues."{name}"]\ntoken_sha256 = "{digest}"\n\n')
    per = -(-len(pairs) // args.clients)
    clients: list[subprocess.Popen[str]] = []
    try:
        relay.start()
        time.sleep(1.0)
        relay.get("/healthz")  # its first-use memory counted in "before"
        before = rss_kib(relay.pid)
        for i in range(args.clients):
            job = {"port": relay.port, "tunnels": pairs[i * per : (i + 1) * per]}
            job_file = folder / f"idle-job-{i}.json"  # thousands of tokens: too long for argv
            job_file.write_text(json.dumps(job))
            clients.append(
                subprocess.Popen(
                    [python(), "-m", "bench.idle_tunnels", str(job_file)],
                    env=child_env(),
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        welcomed = 0
        for client in clients:  # each prints one READY line (bounded: its handshakes time out)
            assert client.stdout is not None
            ready = json.loads(client.stdout.readline().removeprefix("READY ") or "{}")
            welcomed += ready.get("welcomed", 0)
            print(f"(b) fake bridges pid {client.pid}: {ready}")
        time.sleep(2.0)
        connected = rss_kib(relay.pid)
        time.sleep(args.hold)
        after = rss_kib(relay.pid)
        status, health = relay.get("/healthz")
        online = (health or {}).get("venuesOnline") if status == 200 else None
    finally:
        for client in clients:
            client.terminate()
            client.wait(10)
        relay.stop()
    per_tunnel = (after - before) / welcomed if welcomed else None
    print(
        f"(b) {welcomed}/{args.tunnels} up, {online} online after {args.hold:g} s; relay RSS"
        f" {before / 1024:.1f} → {connected / 1024:.1f} → {after / 1024:.1f} MiB,"
        f" {fmt(per_tunnel)} KiB per tunnel"
    )
    return {
        "tunnels": args.tunnels,
        "welcomed": welcomed,
        "online_after_hold": online,
        "rss_kib": {"before": before, "connected": connected, "after_hold": after},
        "per_tunnel_kib": per_tunnel,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [f"`bench.relay` at commit {report['commit']}:", ""]
    if report.get("latency"):
        lines += [
            "| offered/s | path | answered/s | p50 ms | p99 ms | errors | CPU ms/request |",
            "|---:|---|---:|---:|---:|---|---|",
        ]
        for entry in report["latency"]:
            for path, label in PATHS.items():
                if r := entry.get(path):
                    kinds = ", ".join(f"{k}: {v}" for k, v in r["errors_by_kind"].items())
                    on_path = list(r["cpu_ms_per_request"].items())[: ON_PATH[path]]
                    cpu = ", ".join(f"{name} {fmt(ms)}" for name, ms in on_path)
                    lines.append(
                        f"| {entry['rate']:,} | {label} | {r['per_s']:,.0f} | {fmt(r['p50_ms'])}"
                        f" | {fmt(r['p99_ms'])} | {r['errors']}{f' ({kinds})' if kinds else ''}"
                        f" | {cpu} |"
                    )
        lines.append("")
    if idle := report.get("idle"):
        rss = idle["rss_kib"]
        lines += [
            "| tunnels | relay RSS before | connected | after hold | per tunnel |",
            "|---:|---:|---:|---:|---:|",
            f"| {idle['welcomed']:,} | {rss['before'] / 1024:.1f} MiB"
            f" | {rss['connected'] / 1024:.1f} MiB | {rss['after_hold'] / 1024:.1f} MiB"
            f" | {fmt(idle['per_tunnel_kib'])} KiB |",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.relay", description=__doc__.split("\n")[0])
    p.add_argument("--rates", default="1000,4000", help="offered loads, requests/s")
    p.add_argument("--duration", type=float, default=8.0, help="counted s per load and path")
    p.add_argument("--warmup", type=float, default=2.0, help="uncounted s before each")
    p.add_argument("--drain", type=float, default=10.0, help="s to wait for late answers")
    p.add_argument("--tunnels", type=int, default=10_000, help="idle tunnels in (b)")
    p.add_argument("--clients", type=int, default=2, help="fake-bridge processes in (b)")
    p.add_argument("--hold", type=float, default=12.0, help="s the idle tunnels are held")
    p.add_argument("--heartbeat", type=float, default=5.0, help="the relay's PING interval in (b)")
    p.add_argument("--skip-latency", action="store_true", help="no (a)")
    p.add_argument("--skip-tunnels", action="store_true", help="no (b)")
    p.add_argument("--skip-nats", action="store_true", help="no NATS-routed path in (a)")
    args = p.parse_args(argv)
    args.rates = [int(x) for x in args.rates.split(",") if x.strip()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="relay-", dir=RESULTS))
    report: dict[str, Any] = {"commit": commit(), "settings": vars(args)}
    try:
        if not args.skip_latency:
            report["latency"] = part_a(args, folder)
        if not args.skip_tunnels:
            report["idle"] = part_b(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("\n" + markdown(report) + "\n")
    write_results(report, "relay")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

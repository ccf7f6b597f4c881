"""Where the relay's CPU goes per relayed bill fetch: py-spy, cProfile and callgrind.

    .venv/bin/python -m bench.relay_profile                    # py-spy + cProfile at 1,000/s
    .venv/bin/python -m bench.relay_profile --callgrind        # + instructions per request

Starts the bridge and a relay holding its tunnel as ``bench/relay.py`` does (the relay's rate
limit lifted), then drives bill GETs through the relay with the open-loop generator at a fixed
offered ``--rate`` (a load the two cores carry, so the profile is of work, not of a backlog):

0. The relay's user and system CPU per request, unprofiled, from ``/proc``.
1. **py-spy** (``record --format raw --nonblocking``) samples the relay during the counted
   window: the time by module of the innermost known frame (aiohttp's server, its websocket,
   the tunnel protocol, prometheus_client, …) and the top functions, in µs per request.
2. **cProfile** in the relay (toggled by ``SIGUSR2``: the relay runs under this module's
   ``--serve`` wrapper, ``python -m bridge relay`` plus the toggle) for exact call counts per
   request; its times are inflated by its own overhead, so the shares come from py-spy.
3. ``--callgrind``: a second relay under ``valgrind --tool=callgrind``, counting only during
   the counted window, at ``--callgrind-rate`` (15/s: it runs ~50 times slower and must keep
   up): user-space instructions per relayed request due in the window, the figure other
   tenants cannot move. The kernel's share (socket syscalls) is not in it.

Raw files go to ``bench/results/relay-profile-<timestamp>*`` (git-ignored). Loopback only;
every loop and every child process is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from bench import common  # noqa: E402
from bench.bridge_process import SECRET, TABLES, Bridge, bridge_python, write_config  # noqa: E402
from bench.common import run_generator  # noqa: E402
from bench.instructions import START_UNDER_VALGRIND_S, callgrind_total  # noqa: E402
from bench.profile import print_pyspy, summarise_cprofile, summarise_raw  # noqa: E402
from bench.relay_process import (  # noqa: E402
    Relay,
    add_tunnel_section,
    add_venue_cli,
    write_relay_config,
)

RESULTS = REPO / "bench" / "results"
LOCATION = "bench-relay"
VENUE = "bench-venue"

#: (bucket, regex on "function (file:line)"); the innermost frame that matches names it.
BUCKETS: list[tuple[str, re.Pattern[str]]] = [
    (name, re.compile(pattern))
    for name, pattern in [
        ("prometheus_client", r"\(prometheus_client/"),
        ("logging", r"\(logging/"),
        ("relay proxy (forward, exchange, response)", r"\(bridge/relay/proxy"),
        ("relay metrics, rate limit, registry", r"\(bridge/relay/"),
        ("http headers (hop-by-hop)", r"\(bridge/http/headers"),
        ("error middleware", r"\(bridge/http/"),
        ("tunnel_io (connection, stream)", r"\(bridge/tunnel_io/"),
        ("tunnel protocol (frames, streams)", r"\(bridge/tunnel/"),
        ("aiohttp websocket (reader, writer)", r"\(aiohttp/(_websocket|http_websocket|web_ws)"),
        ("aiohttp response", r"\(aiohttp/(web_response|http_writer)"),
        ("aiohttp request (protocol, parser, router)", r"\(aiohttp/"),
        ("multidict/yarl", r"\((multidict|yarl)/"),
        ("asyncio", r"\(asyncio/"),
    ]
]


def serve(config: str, cprofile_path: str) -> int:
    """The relay (``python -m bridge relay --config``) with a cProfile toggled by SIGUSR2."""
    import cProfile

    from bridge.cli import main

    profiler = cProfile.Profile()
    on = [False]

    def toggle(signum: int, frame: object) -> None:
        if not on[0]:
            profiler.enable()
        else:
            profiler.disable()
            profiler.dump_stats(cprofile_path)
        on[0] = not on[0]

    signal.signal(signal.SIGUSR2, toggle)
    return main(["relay", "--config", config])


def drive(
    args: argparse.Namespace,
    port: int,
    rate: int,
    on_start: Callable[[], None],
    on_end: Callable[[], None],
) -> dict[str, Any]:
    """One open-loop run through the relay; ``on_start``/``on_end`` at the counted window."""
    job = {
        "port": port,
        "prefix": f"/v/{VENUE}",
        "location": LOCATION,
        "secret": SECRET,
        "tables": TABLES,
        "rate": rate,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "drain_s": 10.0,
        "max_connections": 256,
    }

    def snapshot(name: str) -> dict[str, Any]:
        (on_start if name == "start" else on_end)()
        return {}

    timeout_s = 120 + args.warmup + args.duration
    result, _, code = run_generator("bench.openloop", job, timeout_s, snapshot)
    if result is None:
        raise RuntimeError(f"open-loop generator failed (exit {code})")
    return result


def user_system_s(pid: int) -> tuple[float, float]:
    """A process's user and system CPU seconds, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / common.CLK_TCK, int(fields[12]) / common.CLK_TCK


def answered(result: dict[str, Any], seconds: float) -> int:
    return round(result["achieved_per_s"] * seconds)


def with_relay(
    args: argparse.Namespace,
    folder: Path,
    python: str,
    wrap: list[str],
    body: Callable[[Relay], dict[str, Any]],
) -> dict[str, Any]:
    """Relay (its argv prefixed by ``wrap``) and bridge up, ``body(relay)``, both stopped."""
    relay = Relay(python, write_relay_config(folder / "relay", unlimited=True))
    relay.argv = [*wrap, python, "-m", "bench.relay_profile", "--serve", str(relay.config)]
    relay.argv += [str(folder / "relay.cprofile")]
    bridge: Bridge | None = None
    try:
        token = add_venue_cli(python, relay.config, VENUE)
        relay.start()
        config = write_config(folder, [LOCATION])
        add_tunnel_section(config, relay.port, VENUE, token)
        bridge = Bridge(python, config, folder, plain=True)
        bridge.start()
        relay.wait_online(VENUE, timeout_s=120)
        return body(relay)
    finally:
        if bridge is not None:
            bridge.stop()
        relay.stop()


def profile_run(args: argparse.Namespace, folder: Path, python: str, stamp: str) -> dict[str, Any]:
    py_spy = shutil.which("py-spy", path=str(Path(python).parent)) or shutil.which("py-spy")
    out: dict[str, Any] = {}

    def body(relay: Relay) -> dict[str, Any]:
        times: dict[str, tuple[float, float]] = {}
        result = drive(
            args,
            relay.port,
            args.rate,
            lambda: times.setdefault("start", user_system_s(relay.pid)),
            lambda: times.setdefault("end", user_system_s(relay.pid)),
        )
        requests = answered(result, args.duration)
        user, system = (times["end"][i] - times["start"][i] for i in (0, 1))
        out["cpu_ms_per_request"] = {
            "user": 1e3 * user / requests,
            "system": 1e3 * system / requests,
        }
        print(
            f"relay CPU, unprofiled: {result['achieved_per_s']:.0f}/s answered, user"
            f" {1e3 * user / requests:.3f} + system {1e3 * system / requests:.3f} ms per request"
        )
        sampled_s = max(1, int(args.duration) - 1)
        if py_spy is not None:
            raw = RESULTS / f"relay-profile-{stamp}-pyspy.txt"
            command = [py_spy, "record", "--pid", str(relay.pid), "--duration", str(sampled_s)]
            command += ["--rate", str(args.spy_rate), "--format", "raw", "--nonblocking"]
            command += ["--output", str(raw)]
            spy: list[subprocess.Popen[bytes]] = []
            start = lambda: spy.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))  # noqa: E731
            result = drive(args, relay.port, args.rate, start, lambda: None)
            spy[0].wait(args.duration + 30)
            requests = answered(result, sampled_s)
            summary = summarise_raw(raw, args.spy_rate, requests, sampled_s, BUCKETS)
            print(f"\npy-spy: {result['achieved_per_s']:.0f}/s answered, errors {result['errors']}")
            print_pyspy(summary, unit="request")
            out["pyspy"] = {"result": result, "threads": summary, "raw": str(raw)}
        else:
            print("py-spy not found: `.venv/bin/pip install py-spy` for the sampling profile")
        toggle = lambda: relay.proc.send_signal(signal.SIGUSR2)  # type: ignore[union-attr]  # noqa: E731
        result = drive(args, relay.port, args.rate, toggle, toggle)
        stats = folder / "relay.cprofile"
        deadline = time.monotonic() + 30
        while not stats.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the dump may still be being written
        kept = RESULTS / f"relay-profile-{stamp}.cprofile"
        shutil.copy(stats, kept)
        requests = answered(result, args.duration)
        print(f"\ncProfile: {result['achieved_per_s']:.0f}/s answered, errors {result['errors']}")
        print(summarise_cprofile(kept, requests, unit="request"))
        out["cprofile"] = {"result": result, "stats": str(kept)}
        return out

    return with_relay(args, folder, python, [], body)


def callgrind_run(
    args: argparse.Namespace, folder: Path, python: str, stamp: str
) -> dict[str, Any]:
    wrap = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    wrap += [f"--callgrind-out-file={folder / 'callgrind.out'}"]

    def body(relay: Relay) -> dict[str, Any]:
        def switch(state: str) -> Callable[[], None]:
            return lambda: (
                subprocess.run(
                    ["callgrind_control", "-i", state, str(relay.pid)],
                    capture_output=True,
                    timeout=60,
                )
                and None
            )

        result = drive(args, relay.port, args.callgrind_rate, switch("on"), switch("off"))
        relay.stop()  # callgrind writes its totals as the relay exits
        instructions = callgrind_total(folder)
        for path in folder.glob("callgrind.out*"):  # for callgrind_annotate
            shutil.copy(path, RESULTS / f"relay-profile-{stamp}-{path.name}")
        # Per request *due* in the window: at a rate the slowed relay carries, the work done
        # in the window is that of the requests due in it, while the count completed in it
        # moves by a few % with where the window's edges fall.
        due = round(args.callgrind_rate * args.duration)
        done = answered(result, args.duration)
        per = instructions / due
        print(
            f"\ncallgrind: {due} requests due, {done} answered in the window (errors"
            f" {result['errors']}) at {args.callgrind_rate}/s: {instructions:,} instructions,"
            f" {per:,.0f} per request (relay, user space)"
        )
        if done < 0.95 * due:
            print("warning: the relay fell behind under callgrind; lower --callgrind-rate")
        return {"due": due, "answered": done, "instructions": instructions, "per_request": per}

    common.START_TIMEOUT_S = START_UNDER_VALGRIND_S  # read by ServerProcess.start
    return with_relay(args, folder, python, wrap, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.relay_profile", description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="offered requests/s")
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--spy-rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--callgrind", action="store_true", help="instructions per request too")
    parser.add_argument("--callgrind-only", action="store_true")
    parser.add_argument("--callgrind-rate", type=int, default=15)
    parser.add_argument("--serve", nargs=2, metavar=("CONFIG", "CPROFILE"), help=argparse.SUPPRESS)
    parser.add_argument("--python", default=None)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(*args.serve)
    if not 0 < args.duration <= 60 or not 1 <= args.rate <= 10_000:
        parser.error("--duration in (0, 60], --rate in [1, 10000]")
    python = bridge_python(args.python)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"rate": args.rate, "duration_s": args.duration}
    for name, run in (
        ("profile", lambda f: profile_run(args, f, python, stamp)),
        ("callgrind", lambda f: callgrind_run(args, f, python, stamp)),
    ):
        if (name == "profile" and args.callgrind_only) or (
            name == "callgrind" and not (args.callgrind or args.callgrind_only)
        ):
            continue
        folder = Path(tempfile.mkdtemp(prefix="relay-profile-", dir=RESULTS))
        (folder / "data").mkdir()
        try:
            report[name] = run(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    out = RESULTS / f"relay-profile-{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

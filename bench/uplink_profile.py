"""Where the bridge's CPU goes per bill fetch served through the relay's tunnel.

    .venv/bin/python -m bench.uplink_profile                    # 1,000/s, 5 s per window
    .venv/bin/python -m bench.uplink_profile --rate 500 --duration 8 --no-pyspy

Starts a relay and a bridge exactly as ``bench/relay.py`` (a) does (the venue added by
``pos-bridge relay add-venue``, the relay's rate limit lifted, simulated POS with 999 tables),
except that the bridge runs under ``bench.serve_counted`` so that cProfile can be toggled in
it. Then two open-loop runs (``bench/openloop.py``) at ``--rate`` through the relay's
``/v/{venue}/…``:

1. **py-spy** (``record --format raw --threads --nonblocking``) on the bridge during the
   counted window: CPU share by module and the top functions (``bench/profile.py``'s summary,
   "per payment" there meaning per request here).
2. **cProfile** on the bridge's event-loop thread during the counted window: exact call counts
   per request served (one ``encode_request_head`` each), the noise-free figure to compare
   changes by on a shared machine.

Also printed: the bridge's CPU ms per answered request in each window (from ``/proc``).
Raw files go to ``bench/results/uplink-profile-<timestamp>*`` (git-ignored).
"""

from __future__ import annotations

import argparse
import io
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from bench.bridge_process import SECRET, TABLES, Bridge, bridge_python, write_config  # noqa: E402
from bench.common import RESULTS, run_generator  # noqa: E402
from bench.profile import print_pyspy, summarise_cprofile, summarise_raw  # noqa: E402
from bench.relay_process import (  # noqa: E402
    Relay,
    add_tunnel_section,
    add_venue_cli,
    proc_cpu_s,
    relay_has_rate_limit,
    write_relay_config,
)

LOCATION = "bench-relay"
VENUE = "bench-venue"


def relayed_load(
    args: argparse.Namespace, relay: Relay, bridge: Bridge, on_start: Any, on_end: Any
) -> dict[str, Any]:
    """One open-loop run through the relay; ``on_start``/``on_end`` at the counted window."""
    job = {
        "port": relay.port,
        "prefix": f"/v/{VENUE}",
        "location": LOCATION,
        "secret": SECRET,
        "tables": TABLES,
        "rate": args.rate,
        "warmup_s": args.warmup,
        "duration_s": args.duration,
        "drain_s": 10.0,
        "max_connections": 256,
    }

    def snapshot(name: str) -> dict[str, Any]:
        (on_start if name == "start" else on_end)()
        return {"cpu": proc_cpu_s(bridge.pid)}

    timeout_s = 60 + args.warmup + args.duration
    result, snaps, code = run_generator("bench.openloop", job, timeout_s, snapshot)
    if result is None or {"start", "end"} - snaps.keys():
        raise RuntimeError(f"open-loop generator failed (exit {code})")
    done = result["achieved_per_s"] * args.duration
    cpu_s = snaps["end"]["cpu"] - snaps["start"]["cpu"]
    result["bridge_ms_per_request"] = 1000 * cpu_s / done if done else None
    return result


def requests_served(stats_path: Path) -> int:
    """Tunnelled requests the bridge served while profiled: one ``encode_request_head`` each.
    Under overload this differs from those answered in the window, and call counts per
    request must not move with the backlog."""
    stats = pstats.Stats(str(stats_path), stream=io.StringIO())
    entries = stats.stats  # type: ignore[attr-defined]
    return sum(v[1] for k, v in entries.items() if k[2] == "encode_request_head")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench.uplink_profile", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rate", type=int, default=1000, help="offered requests/s")
    parser.add_argument("--duration", type=float, default=5.0, help="counted s per window")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--samples", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--no-pyspy", action="store_true")
    parser.add_argument("--no-cprofile", action="store_true")
    parser.add_argument("--python", default=None)
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 60 or not 1 <= args.rate <= 20_000:
        parser.error("--duration in (0, 60], --rate in [1, 20000]")
    python = bridge_python(args.python)
    py_spy = shutil.which("py-spy", path=str(Path(python).parent)) or shutil.which("py-spy")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="uplink-profile-", dir=RESULTS))
    (folder / "data").mkdir()
    relay = Relay(
        python, write_relay_config(folder / "relay", unlimited=relay_has_rate_limit(python))
    )
    bridge: Bridge | None = None
    try:
        token = add_venue_cli(python, relay.config, VENUE)
        relay.start()
        config = write_config(folder, [LOCATION])
        add_tunnel_section(config, relay.port, VENUE, token)
        bridge = Bridge(python, config, folder, plain=False)
        bridge.start()
        relay.wait_online(VENUE)
        print(f"bridge pid {bridge.pid}, relay pid {relay.pid}; {args.rate}/s via the relay")
        if py_spy is not None and not args.no_pyspy:
            raw = RESULTS / f"uplink-profile-{stamp}-pyspy.txt"
            seconds = max(1, int(args.duration) - 1)
            command = [py_spy, "record", "--pid", str(bridge.pid), "--duration", str(seconds)]
            command += ["--rate", str(args.samples), "--format", "raw", "--threads"]
            command += ["--nonblocking", "--output", str(raw)]
            spy: list[subprocess.Popen[bytes]] = []
            result = relayed_load(
                args,
                relay,
                bridge,
                lambda: spy.append(subprocess.Popen(command, stdout=subprocess.DEVNULL)),
                lambda: None,
            )
            spy[0].wait(args.duration + 30)
            done = round(result["achieved_per_s"] * seconds)
            print(
                f"\npy-spy window: {result['achieved_per_s']:.0f}/s answered, errors"
                f" {result['errors']}, bridge {result['bridge_ms_per_request']:.3f} ms CPU/request"
            )
            print_pyspy(summarise_raw(raw, args.samples, done, seconds))
        if not args.no_cprofile:
            result = relayed_load(
                args, relay, bridge, bridge.toggle_cprofile, bridge.toggle_cprofile
            )
            deadline = time.monotonic() + 30
            while not bridge.cprofile_path.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # the dump may still be being written
            stats = RESULTS / f"uplink-profile-{stamp}.cprofile"
            shutil.copy(bridge.cprofile_path, stats)
            served = requests_served(stats) or round(result["achieved_per_s"] * args.duration)
            print(
                f"\ncProfile window: {result['achieved_per_s']:.0f}/s answered, errors"
                f' {result["errors"]}; {served} requests served in it ("per payment" below'
                " means per request served)"
            )
            print(summarise_cprofile(stats, served, 40))
            print(f"\nstats: {stats.relative_to(REPO)}")
    finally:
        if bridge is not None:
            bridge.stop()
        relay.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

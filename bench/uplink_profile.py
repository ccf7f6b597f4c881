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

``--cpu`` instead runs direct, relay, direct, relay windows with no profiler and prints the
bridge's user and system CPU per request in each (the kernel's share is what callgrind
cannot see) and its garbage collector's time per request. ``--callgrind`` instead runs the
bridge under ``valgrind --tool=callgrind --instr-atstart=no`` (as ``bench/instructions.py``)
and counts the instructions it executes per request over a window direct to its listener and
one via the relay (``callgrind_control`` zeroes, switches on, off and dumps at each window's
edges; an idle window's count per second is taken off): the difference is what the tunnel
costs the bridge in user space, a figure other tenants cannot move. Keep ``--rate`` where
the bridge keeps up although it runs ~50 times slower under callgrind (``--rate 40 --duration
20 --warmup 10``: all answered on 2 shared cores): a backlog would blur "per request". Direct
counts vary by a few per cent between runs; compare relayed figures.

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

from bench import common  # noqa: E402
from bench.bridge_process import SECRET, TABLES, Bridge, bridge_python, write_config  # noqa: E402
from bench.common import CLK_TCK, RESULTS, run_generator  # noqa: E402
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
    args: argparse.Namespace,
    relay: Relay,
    bridge: Bridge,
    on_start: Any,
    on_end: Any,
    direct: bool = False,
) -> dict[str, Any]:
    """One open-loop run through the relay (or ``direct`` to the bridge's listener);
    ``on_start``/``on_end`` at the counted window."""
    job = {
        "port": bridge.port if direct else relay.port,
        "prefix": "" if direct else f"/v/{VENUE}",
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
        return {"cpu": proc_cpu_s(bridge.pid), "split": user_system_s(bridge.pid)}

    timeout_s = 60 + args.warmup + args.duration
    result, snaps, code = run_generator("bench.openloop", job, timeout_s, snapshot)
    if result is None or {"start", "end"} - snaps.keys():
        raise RuntimeError(f"open-loop generator failed (exit {code})")
    done = result["achieved_per_s"] * args.duration
    cpu_s = snaps["end"]["cpu"] - snaps["start"]["cpu"]
    result["bridge_ms_per_request"] = 1000 * cpu_s / done if done else None
    user, system = (
        b - a for a, b in zip(snaps["start"]["split"], snaps["end"]["split"], strict=True)
    )
    result["bridge_user_system_ms"] = (1000 * user / done, 1000 * system / done) if done else None
    return result


def user_system_s(pid: int) -> tuple[float, float]:
    """A process's user and system CPU seconds (``/proc/<pid>/stat``), zeros when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_windows(args: argparse.Namespace, relay: Relay, bridge: Bridge) -> None:
    """The bridge's user and system CPU per request, direct and via the relay, and the time
    its garbage collector took (``serve_counted``'s counters)."""
    for path in ("direct", "relay", "direct", "relay"):
        counters: list[dict[str, Any]] = []

        def count(counters: list[dict[str, Any]] = counters) -> None:
            counters.append(bridge.counters() or {})

        r = relayed_load(args, relay, bridge, count, count, path == "direct")
        user, system = r["bridge_user_system_ms"] or (0.0, 0.0)
        done = r["achieved_per_s"] * args.duration
        gc_ms = (counters[1].get("gc_ns", 0) - counters[0].get("gc_ns", 0)) / 1e6
        gcs = counters[1].get("gcs", 0) - counters[0].get("gcs", 0)
        print(
            f"{path:>6}: {r['achieved_per_s']:.0f}/s answered, errors {r['errors']}; bridge"
            f" {user:.3f} ms user + {system:.3f} ms system = {user + system:.3f} ms CPU/request;"
            f" GC {gc_ms / done if done else 0:.3f} ms/request ({gcs} collections)"
        )


def requests_served(stats_path: Path) -> int:
    """Tunnelled requests the bridge served while profiled: one ``encode_request_head`` each.
    Under overload this differs from those answered in the window, and call counts per
    request must not move with the backlog."""
    stats = pstats.Stats(str(stats_path), stream=io.StringIO())
    entries = stats.stats  # type: ignore[attr-defined]
    return sum(v[1] for k, v in entries.items() if k[2] == "encode_request_head")


def callgrind_windows(args: argparse.Namespace, relay: Relay, bridge: Bridge) -> None:
    """Instructions per request, direct and via the relay, each counted over its window."""

    def control(*flags: str) -> None:
        subprocess.run(["callgrind_control", *flags, str(bridge.pid)], capture_output=True)

    def window_end() -> None:
        control("-i", "off")
        control("-d")

    def new_dump(before: set[Path]) -> int:
        deadline = time.monotonic() + 60
        while not (new := set(bridge.folder.glob("callgrind.out*")) - before):
            if time.monotonic() > deadline:
                raise RuntimeError("callgrind wrote no dump")
            time.sleep(0.2)
        time.sleep(1.0)  # the dump may still be being written
        return max(callgrind_total_of(p) for p in new)

    # What the bridge does with no request at all (timers, the outbox's poll, the tunnel's
    # heartbeat) is counted over an idle window and taken off each window's count.
    before = set(bridge.folder.glob("callgrind.out*"))
    control("-z")
    control("-i", "on")
    time.sleep(args.duration)
    window_end()
    idle_per_s = new_dump(before) / args.duration
    print(f"  idle: {idle_per_s:,.0f} instructions/s, taken off each window's count")
    figures = {}
    for path in ("direct", "relay"):
        before = set(bridge.folder.glob("callgrind.out*"))
        result = relayed_load(
            args,
            relay,
            bridge,
            lambda: (control("-z"), control("-i", "on")),
            window_end,
            direct=path == "direct",
        )
        total = new_dump(before) - idle_per_s * args.duration
        done = result["achieved_per_s"] * args.duration
        figures[path] = total / done if done else 0.0
        print(
            f"{path:>6}: {done:.0f} answered (errors {result['errors']}),"
            f" {total:,.0f} instructions, {figures[path]:,.0f} per request (user space)"
        )
    print(f"the tunnel adds {figures['relay'] - figures['direct']:,.0f} instructions per request")


def callgrind_total_of(path: Path) -> int:
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            total = max(total, int(line.split()[1]))
    return total


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
    parser.add_argument(
        "--cpu", action="store_true", help="instead: user/system CPU direct and via the relay"
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="instead: instructions per request direct and via the relay (try --rate 30)",
    )
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
        if args.callgrind:
            out = folder / "callgrind.out"
            bridge.argv = [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}",
                *bridge.argv,
            ]
            common.START_TIMEOUT_S = 240.0  # read by ServerProcess.start
        bridge.start()
        relay.wait_online(VENUE)
        print(f"bridge pid {bridge.pid}, relay pid {relay.pid}; {args.rate}/s via the relay")
        if args.callgrind:
            callgrind_windows(args, relay, bridge)
            return 0
        if args.cpu:
            cpu_windows(args, relay, bridge)
            return 0
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

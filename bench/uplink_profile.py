"""Where the bridge's CPU goes per bill fetch served through the relay's tunnel.

    .venv/bin/python -m bench.uplink_profile                    # 1,000/s, 5 s per window
    .venv/bin/python -m bench.uplink_profile --rate 500 --duration 8 --no-pyspy

Starts a relay and a bridge exactly as ``bench/relay.py`` (a) does (``bench/relayed.py``: the
venue added by ``pos-bridge relay add-venue``, the relay's rate limit lifted, simulated POS
with 999 tables), except that the bridge runs under ``bench.serve_counted`` so that cProfile
can be toggled in it. Then two open-loop runs (``bench/openloop.py``) at ``--rate`` through
the relay's ``/v/{venue}/…``:

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
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from bench import instructions, profile  # noqa: E402
from bench.bridge_process import Bridge, bridge_python  # noqa: E402
from bench.common import RESULTS  # noqa: E402
from bench.relay_process import Relay  # noqa: E402
from bench.relayed import RELAYED, answered, bill_fetches, relay_and_bridge  # noqa: E402


def load(
    args: argparse.Namespace,
    relay: Relay,
    bridge: Bridge,
    on_start: Callable[[], object] = lambda: None,
    on_end: Callable[[], object] = lambda: None,
    direct: bool = False,
) -> dict[str, Any]:
    """One open-loop run through the relay (or ``direct`` to the bridge's listener), the
    bridge's CPU per request read over it; ``on_start``/``on_end`` at the counted window."""
    port, prefix = (bridge.port, "") if direct else (relay.port, RELAYED)
    return bill_fetches(
        port, prefix, args.rate, args.warmup, args.duration, bridge.pid, on_start, on_end
    )


def cpu_ms(result: dict[str, Any]) -> tuple[float, float]:
    """The bridge's user and system CPU ms per request answered in a run's window."""
    cpu = result["cpu_ms_per_request"] or {"user": 0.0, "system": 0.0}
    return cpu["user"], cpu["system"]


def cpu_windows(args: argparse.Namespace, relay: Relay, bridge: Bridge) -> None:
    """The bridge's user and system CPU per request, direct and via the relay, and the time
    its garbage collector took (``serve_counted``'s counters)."""
    for path in ("direct", "relay", "direct", "relay"):
        counters: list[dict[str, Any]] = []

        def count(counters: list[dict[str, Any]] = counters) -> None:
            counters.append(bridge.counters() or {})

        r = load(args, relay, bridge, count, count, path == "direct")
        user, system = cpu_ms(r)
        done = answered(r, args.duration)
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

    def window_start() -> None:
        instructions.callgrind_control(bridge.pid, "-z")
        instructions.callgrind_control(bridge.pid, "-i", "on")

    def window_end() -> None:
        instructions.callgrind_control(bridge.pid, "-i", "off")
        instructions.callgrind_control(bridge.pid, "-d")

    def new_dump(before: set[Path]) -> int:
        deadline = time.monotonic() + 60
        while not (new := set(bridge.folder.glob("callgrind.out*")) - before):
            if time.monotonic() > deadline:
                raise RuntimeError("callgrind wrote no dump")
            time.sleep(0.2)
        time.sleep(1.0)  # the dump may still be being written
        return instructions.callgrind_total(new)

    # What the bridge does with no request at all (timers, the outbox's poll, the tunnel's
    # heartbeat) is counted over an idle window and taken off each window's count.
    before = set(bridge.folder.glob("callgrind.out*"))
    window_start()
    time.sleep(args.duration)
    window_end()
    idle_per_s = new_dump(before) / args.duration
    print(f"  idle: {idle_per_s:,.0f} instructions/s, taken off each window's count")
    figures = {}
    for path in ("direct", "relay"):
        before = set(bridge.folder.glob("callgrind.out*"))
        result = load(args, relay, bridge, window_start, window_end, direct=path == "direct")
        total = new_dump(before) - idle_per_s * args.duration
        done = answered(result, args.duration)
        figures[path] = total / done if done else 0.0
        print(
            f"{path:>6}: {done:.0f} answered (errors {result['errors']}),"
            f" {total:,.0f} instructions, {figures[path]:,.0f} per request (user space)"
        )
    print(f"the tunnel adds {figures['relay'] - figures['direct']:,.0f} instructions per request")


def profile_windows(
    args: argparse.Namespace, relay: Relay, bridge: Bridge, py_spy: str | None, stamp: str
) -> None:
    """py-spy, then cProfile, each over one window via the relay."""
    if py_spy is not None and not args.no_pyspy:
        seconds = max(1, int(args.duration) - 1)
        raw = RESULTS / f"uplink-profile-{stamp}-pyspy.txt"
        spy = profile.PySpy(py_spy, bridge.pid, seconds, args.samples, raw)
        result = load(args, relay, bridge, spy.start)
        spy.wait()
        user, system = cpu_ms(result)
        print(
            f"\npy-spy window: {result['achieved_per_s']:.0f}/s answered, errors"
            f" {result['errors']}, bridge {user + system:.3f} ms CPU/request"
        )
        profile.print_pyspy(
            profile.summarise_raw(raw, args.samples, answered(result, seconds), seconds)
        )
    if not args.no_cprofile:
        result = load(args, relay, bridge, bridge.toggle_cprofile, bridge.toggle_cprofile)
        stats = profile.collect_cprofile(
            bridge.cprofile_path, RESULTS / f"uplink-profile-{stamp}.cprofile"
        )
        served = requests_served(stats) or answered(result, args.duration)
        print(
            f"\ncProfile window: {result['achieved_per_s']:.0f}/s answered, errors"
            f' {result["errors"]}; {served} requests served in it ("per payment" below'
            " means per request served)"
        )
        print(profile.summarise_cprofile(stats, served, 40))
        print(f"\nstats: {stats.relative_to(REPO)}")


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
    py_spy = profile.py_spy_binary(python)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    callgrind: Literal["bridge"] | None = "bridge" if args.callgrind else None
    with relay_and_bridge(python, "uplink-profile", False, callgrind=callgrind) as pair:
        relay, bridge = pair.relay, pair.bridge
        print(f"bridge pid {bridge.pid}, relay pid {relay.pid}; {args.rate}/s via the relay")
        if args.callgrind:
            callgrind_windows(args, relay, bridge)
        elif args.cpu:
            cpu_windows(args, relay, bridge)
        else:
            profile_windows(args, relay, bridge, py_spy, stamp)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the relay's CPU goes per relayed bill fetch: py-spy, cProfile and callgrind.

    .venv/bin/python -m bench.relay_profile                    # py-spy + cProfile at 1,000/s
    .venv/bin/python -m bench.relay_profile --callgrind        # + instructions per request
    .venv/bin/python -m bench.relay_profile --no-fast-path     # every request through aiohttp
    .venv/bin/python -m bench.relay_profile --canned --rate 3000   # no real bridge competing

Starts the bridge and a relay holding its tunnel as ``bench/relay.py`` does (``bench/relayed.py``,
the relay's rate limit lifted), then drives bill GETs through the relay with the open-loop
generator at a fixed offered ``--rate`` (a load the two cores carry, so the profile is of
work, not of a backlog):

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
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(REPO))

from bench import instructions, profile  # noqa: E402
from bench.bridge_process import bridge_python  # noqa: E402
from bench.common import RESULTS, write_results  # noqa: E402
from bench.relay_process import Relay  # noqa: E402
from bench.relayed import (  # noqa: E402
    RELAYED,
    Relayed,
    answered,
    bill_fetches,
    relay_and_bridge,
    relay_and_canned_bridge,
)

#: The relay's buckets (see :func:`bench.profile.compile_buckets`).
BUCKETS = profile.compile_buckets(
    [
        ("prometheus_client", r"\(prometheus_client/"),
        ("logging", r"\(logging/"),
        ("relay fast path (read, write)", r"\(bridge/(relay/fastpath|http/(fastconn|head))"),
        ("relay proxy (forward, exchange, response)", r"\(relay/(proxy|exchange)"),
        ("relay metrics, rate limit, registry", r"\(relay/"),
        ("http headers (hop-by-hop)", r"\(bridge/http/headers"),
        ("error middleware", r"\(bridge/http/"),
        ("tunnel_io (connection, stream)", r"\(tunnel/asyncio/"),
        ("tunnel protocol (frames, streams)", r"\(tunnel/"),
        ("aiohttp websocket (reader, writer)", r"\(aiohttp/(_websocket|http_websocket|web_ws)"),
        ("aiohttp response", r"\(aiohttp/(web_response|http_writer)"),
        ("aiohttp request (protocol, parser, router)", r"\(aiohttp/"),
        ("multidict/yarl", r"\((multidict|yarl)/"),
        ("asyncio", r"\(asyncio/"),
    ]
)


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
    relay: Relay,
    rate: int,
    on_start: Callable[[], object] = lambda: None,
    on_end: Callable[[], object] = lambda: None,
) -> dict[str, Any]:
    """One open-loop run through the relay, the relay's CPU per request read over it;
    ``on_start``/``on_end`` at the counted window."""
    return bill_fetches(
        relay.port, RELAYED, rate, args.warmup, args.duration, relay.pid, on_start, on_end
    )


def relay_serving(
    python: str, callgrind: bool = False, fast_path: bool = True
) -> AbstractContextManager[Relayed]:
    """Relay and bridge up (:func:`bench.relayed.relay_and_bridge`), the relay run through
    :func:`serve` (its cProfile dumped beside its config), the bridge as ``python -m bridge
    serve``; ``callgrind``: the relay under callgrind."""
    return relay_and_bridge(
        python, "relay-profile", True, relay_argv(python), "relay" if callgrind else None, fast_path
    )


def relay_argv(python: str) -> Callable[[Path], list[str]]:
    """The relay's command: run through :func:`serve`, its cProfile dumped beside its config."""

    def argv(config: Path) -> list[str]:
        cprofile = config.parent / "relay.cprofile"
        return [python, "-m", "bench.relay_profile", "--serve", str(config), str(cprofile)]

    return argv


def profile_run(args: argparse.Namespace, python: str, stamp: str) -> dict[str, Any]:
    py_spy = profile.py_spy_binary(python)
    out: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if args.canned:
            RESULTS.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix="relay-profile-", dir=RESULTS))
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            relay, _ = stack.enter_context(
                relay_and_canned_bridge(
                    python, folder, None, relay_argv(python), not args.no_fast_path
                )
            )
        else:
            relay = stack.enter_context(
                relay_serving(python, fast_path=not args.no_fast_path)
            ).relay
        result = drive(args, relay, args.rate)
        cpu = out["cpu_ms_per_request"] = result["cpu_ms_per_request"]
        print(
            f"relay CPU, unprofiled: {result['achieved_per_s']:.0f}/s answered, user"
            f" {cpu['user']:.3f} + system {cpu['system']:.3f} ms per request"
        )
        if py_spy is not None:
            sampled_s = max(1, int(args.duration) - 1)
            raw = RESULTS / f"relay-profile-{stamp}-pyspy.txt"
            spy = profile.PySpy(py_spy, relay.pid, sampled_s, args.spy_rate, raw, threads=False)
            result = drive(args, relay, args.rate, spy.start)
            spy.wait()
            requests = answered(result, sampled_s)
            summary = profile.summarise_raw(raw, args.spy_rate, requests, sampled_s, BUCKETS)
            print(f"\npy-spy: {result['achieved_per_s']:.0f}/s answered, errors {result['errors']}")
            profile.print_pyspy(summary, unit="request")
            out["pyspy"] = {"result": result, "threads": summary, "raw": str(raw)}
        else:
            print("py-spy not found: `.venv/bin/pip install py-spy` for the sampling profile")
        toggle = lambda: relay.proc.send_signal(signal.SIGUSR2)  # type: ignore[union-attr]  # noqa: E731
        result = drive(args, relay, args.rate, toggle, toggle)
        kept = RESULTS / f"relay-profile-{stamp}.cprofile"
        profile.collect_cprofile(relay.config.parent / "relay.cprofile", kept)
        requests = answered(result, args.duration)
        print(f"\ncProfile: {result['achieved_per_s']:.0f}/s answered, errors {result['errors']}")
        print(profile.summarise_cprofile(kept, requests, unit="request"))
        out["cprofile"] = {"result": result, "stats": str(kept)}
    return out


def callgrind_run(args: argparse.Namespace, python: str, stamp: str) -> dict[str, Any]:
    with relay_serving(python, callgrind=True, fast_path=not args.no_fast_path) as pair:
        relay = pair.relay
        result = drive(
            args,
            relay,
            args.callgrind_rate,
            lambda: instructions.callgrind_control(relay.pid, "-i", "on"),
            lambda: instructions.callgrind_control(relay.pid, "-i", "off"),
        )
        relay.stop()  # callgrind writes its totals as the relay exits
        outputs = list(pair.folder.glob("callgrind.out*"))
        counted = instructions.callgrind_total(outputs)
        for path in outputs:  # for callgrind_annotate
            shutil.copy(path, RESULTS / f"relay-profile-{stamp}-{path.name}")
    # Per request *due* in the window: at a rate the slowed relay carries, the work done
    # in the window is that of the requests due in it, while the count completed in it
    # moves by a few % with where the window's edges fall.
    due = round(args.callgrind_rate * args.duration)
    done = answered(result, args.duration)
    per = counted / due
    print(
        f"\ncallgrind: {due} requests due, {done} answered in the window (errors"
        f" {result['errors']}) at {args.callgrind_rate}/s: {counted:,} instructions,"
        f" {per:,.0f} per request (relay, user space)"
    )
    if done < 0.95 * due:
        print("warning: the relay fell behind under callgrind; lower --callgrind-rate")
    return {"due": due, "answered": done, "instructions": counted, "per_request": per}


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
    parser.add_argument(
        "--no-fast-path", action="store_true", help="the relay with [relay] fast_path = false"
    )
    parser.add_argument(
        "--canned",
        action="store_true",
        help="a fake bridge answering at once instead of the real bridge (not with callgrind)",
    )
    args = parser.parse_args(argv)
    if args.serve:
        return serve(*args.serve)
    if not 0 < args.duration <= 60 or not 1 <= args.rate <= 10_000:
        parser.error("--duration in (0, 60], --rate in [1, 10000]")
    python = bridge_python(args.python)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report: dict[str, Any] = {"rate": args.rate, "duration_s": args.duration}
    if not args.callgrind_only:
        report["profile"] = profile_run(args, python, stamp)
    if args.callgrind or args.callgrind_only:
        report["callgrind"] = callgrind_run(args, python, stamp)
    print()
    write_results(report, f"relay-profile-{stamp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``pos-bridge``: run the bridge, the demo, and the technician's commands."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bridge import __version__
from bridge.config import load_config
from common.settings import ConfigError
from drivers.controls import MODES

DEFAULT_CONFIG = "config.toml"
DEFAULT_RELAY_CONFIG = "relay.toml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pos-bridge", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the bridge")
    serve.add_argument("--config", default=DEFAULT_CONFIG)

    check = commands.add_parser("check-config", help="check a config file and its drivers")
    check.add_argument("--config", default=DEFAULT_CONFIG)

    demo = commands.add_parser("demo", help="bridge + simulated POS, with URLs to try")
    demo.add_argument("--port", type=int, default=8787)
    demo.add_argument("--data-dir", type=Path, default=None)
    demo.add_argument("--exit-after", type=float, default=None, metavar="SECONDS")
    demo.add_argument("--relay-port", type=int, default=None, help="default: --port + 1")
    demo.add_argument(
        "--pos",
        choices=["simulator", "serial", "tcp", "file"],
        default="simulator",
        help="the simulator in process (default), or the POS emulator behind that real driver",
    )

    sim = commands.add_parser(
        "sim", help="switch a driver's simulated POS (SimulatorControls) online/offline/..."
    )
    sim.add_argument("mode", choices=MODES)
    sim.add_argument("--latency-ms", type=int, default=None)
    sim.add_argument("--driver", default="main")
    sim.add_argument("--config", default=DEFAULT_CONFIG)

    status = commands.add_parser("status", help="print the bridge's status")
    status.add_argument("--config", default=DEFAULT_CONFIG)

    openapi = commands.add_parser("openapi", help="print (or --write) the OpenAPI document")
    openapi.add_argument("--write", type=Path, default=None)

    relay = commands.add_parser("relay", help="run the cloud relay, or add a venue to it")
    relay.add_argument("--config", default=DEFAULT_RELAY_CONFIG)
    relay_commands = relay.add_subparsers(dest="relay_command")
    add_venue = relay_commands.add_parser("add-venue", help="add a venue; prints its token once")
    add_venue.add_argument("name")
    add_venue.add_argument("--config", default=argparse.SUPPRESS)

    emulator = commands.add_parser(
        "pos-emulator", help="a POS speaking a reference wire protocol (tcp, serial, file)"
    )
    emulator.add_argument(
        "url", help="tcp://127.0.0.1:4001, serial:pty (opens a pty pair), file:///folder"
    )
    emulator.add_argument("--state", type=Path, default=None, help="SQLite file for its bills")
    emulator.add_argument("--control-port", type=int, default=None, help="fault control API")
    emulator.add_argument("--tables", type=int, default=20)
    emulator.add_argument("--seed", type=int, default=1)

    kit = commands.add_parser(
        "driver-check", help="run the conformance kit against a driver and its test POS"
    )
    kit.add_argument("url", help="the driver's URL, as in [drivers.<name>] url")
    kit.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="a driver option"
    )
    kit.add_argument("--location", default="1", help="the POS location holding the kit's tables")
    kit.add_argument(
        "--control",
        default=None,
        help="switches the POS off and on: an emulator's control URL (http://127.0.0.1:N),"
        " 'simulator' (the default for simulator: URLs), or 'none': those checks then skip",
    )
    kit.add_argument("--check", action="append", default=None, help="run only this check")
    kit.add_argument("--call-timeout", type=float, default=15.0, metavar="SECONDS")
    kit.add_argument("--recovery", type=float, default=20.0, metavar="SECONDS")
    kit.add_argument("--json", action="store_true", help="results as JSON")
    kit.add_argument("--verbose", action="store_true", help="show the driver's own log")

    from bridge.cli import loke_sandbox

    loke_sandbox.add_arguments(commands.add_parser("loke-sandbox", help="a LOKE sandbox"))

    args = parser.parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    from bridge.cli.logs import configure_logging
    from bridge.cli.serve import run_bridge

    config = load_config(args.config)
    configure_logging(config)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        try:
            runner.run(run_bridge(config, ready=_settle_collector))
        except OSError as exc:
            return _cannot_listen("bridge", config.server.host, config.server.port, exc)
    return 0


def _cannot_listen(what: str, host: str, port: int, exc: OSError) -> int:
    """A port that cannot be bound is one line naming it and the key to change, not a
    traceback (a technician's most likely first mistake: two services on one port)."""
    if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
        raise exc
    section = "server" if what == "bridge" else "relay"
    print(
        f"pos-bridge: the {what} cannot listen on {host}:{port}: {exc.strerror}"
        f" (change [{section}] port or host in the config)",
        file=sys.stderr,
    )
    return 1


async def _settle_collector(runner: object, port: int) -> None:
    """Once this process serves: its garbage collector set for the long run (``collector.py``;
    here and not in ``run_bridge``, which tests run inside their own process)."""
    from bridge.cli import collector

    collector.settle()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (not on Windows), else asyncio's own.

    Why: under the payment bench the event loop itself (socket reads and writes, callbacks,
    futures) was a fifth of the bridge's CPU per payment, and uvloop does that work in C; the
    relay, which only moves bytes between sockets, gains the same way.
    ``POS_BRIDGE_EVENT_LOOP=asyncio`` picks asyncio's loop anyway (to compare, or to rule
    uvloop out); any other value, or none, takes uvloop when it can.
    """
    if os.environ.get("POS_BRIDGE_EVENT_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _check(args: argparse.Namespace) -> int:
    """Exit 1 when a configured driver's plugin is broken: the bridge would start without it."""
    import logging

    from bridge.app import build_drivers
    from drivers.registry import available_drivers, check_drivers
    from drivers.unloaded import UnloadedDriver

    config = load_config(args.config)
    logging.disable(logging.ERROR)  # the failures are reported below, once, without traces
    try:
        drivers = build_drivers(config)
        installed = check_drivers()
    finally:
        logging.disable(logging.NOTSET)
    print("installed drivers (entry points pos_bridge.drivers):")
    for scheme, target in sorted(available_drivers().items()):
        problem = installed.get(scheme)
        print(f"  {scheme:<12} {target}  {'BROKEN: ' + problem if problem else 'ok'}")
    broken = {n: d for n, d in drivers.items() if isinstance(d, UnloadedDriver)}
    for name, driver in broken.items():
        users = [k for k, loc in config.locations.items() if loc.driver == name] or ["none"]
        print(
            f"drivers.{name}: {driver.reason}; the bridge starts without it, and its"
            f" locations ({', '.join(users)}) answer 503 pos_offline",
            file=sys.stderr,
        )
    if broken:
        return 1
    print(f"ok: {len(config.drivers)} driver(s), {len(config.locations)} location(s)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from bridge.cli.demo import DemoError, run_demo

    try:
        asyncio.run(
            run_demo(
                args.port, args.data_dir, args.exit_after, relay_port=args.relay_port, pos=args.pos
            )
        )
    except DemoError as exc:
        print(f"pos-bridge demo: {exc}", file=sys.stderr)
        return 1
    return 0


def _admin_call(config_path: str, method: str, path: str, body: dict[str, object] | None) -> int:
    config = load_config(config_path)
    host = "127.0.0.1" if config.server.host in ("0.0.0.0", "::") else config.server.host
    request = urllib.request.Request(
        f"http://{host}:{config.server.port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {config.bridge.admin_token}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(json.dumps(json.load(response), indent=2))
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(errors="replace"), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot reach the bridge: {exc}", file=sys.stderr)
        return 1


def _sim(args: argparse.Namespace) -> int:
    body: dict[str, object] = {"mode": args.mode}
    if args.latency_ms is not None:
        body["latencyMs"] = args.latency_ms
    return _admin_call(args.config, "POST", f"/api/drivers/{args.driver}/simulator", body)


def _status(args: argparse.Namespace) -> int:
    return _admin_call(args.config, "GET", "/api/status", None)


def _openapi(args: argparse.Namespace) -> int:
    from bridge.app import openapi_document

    text = json.dumps(openapi_document(), indent=2) + "\n"
    if args.write:
        args.write.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _relay(args: argparse.Namespace) -> int:
    from relay.config import load_relay_config

    config = load_relay_config(args.config)
    if args.relay_command == "add-venue":
        from relay.venues import add_venue

        token = add_venue(config.relay.venues_file, args.name)
        print(f"venue {args.name} added to {config.relay.venues_file}")
        print("its tunnel token (shown once; put it in the bridge's [tunnel] token):")
        print(token)
        return 0
    import logging

    from bridge.cli.logs import RedactSecrets
    from relay.server import run_relay

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets([config.relay.operator_token]))
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(config.relay.log_level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        try:
            runner.run(run_relay(config, ready=_settle_collector))
        except OSError as exc:
            return _cannot_listen("relay", config.relay.host, config.relay.port, exc)
    return 0


def _pos_emulator(args: argparse.Namespace) -> int:
    import contextlib

    from drivers.emulator.run import make_pos, run_forever

    pos = make_pos(args.state, tables=args.tables, seed=args.seed)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_forever(args.url, pos, args.control_port))
    return 0


def _driver_check(args: argparse.Namespace) -> int:
    from drivers.conformance import CHECKS, EmulatorControl, SimulatorControl, run_kit
    from drivers.conformance.control import PosControl
    from drivers.conformance.runner import format_results
    from drivers.conformance.target import target_from_url
    from drivers.errors import DriverConfigError

    unknown = [name for name in args.check or () if name not in CHECKS]
    if unknown:
        print(f"unknown check {unknown[0]!r} (known: {', '.join(CHECKS)})", file=sys.stderr)
        return 2
    control_name = args.control
    if control_name is None and args.url.startswith("simulator:"):
        control_name = "simulator"
    try:
        options = dict(_option(text) for text in args.option)
        control: PosControl | None = None
        if control_name in ("", "none"):
            control = None
        elif control_name == "simulator":
            control = SimulatorControl()
        elif control_name:
            control = EmulatorControl(control_name)
        target = target_from_url(
            args.url,
            options,
            location=args.location,
            control=control,
            call_timeout_s=args.call_timeout,
            recovery_s=args.recovery,
        )
    except DriverConfigError as exc:
        print(f"driver config error: {exc}", file=sys.stderr)
        return 2
    import logging

    # The checks switch the POS off on purpose: the driver's warnings about it are noise.
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    results = asyncio.run(run_kit(target, args.check))
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        print(format_results(results))
    return 1 if any(r.status == "failed" for r in results) else 0


def _option(text: str) -> tuple[str, object]:
    """``key=value`` from the command line: integers and true/false as in TOML."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        from drivers.errors import DriverConfigError

        raise DriverConfigError(f"options.{key or text}", "give it as --option KEY=VALUE")
    if value.lstrip("-").isdigit():
        return key, int(value)
    if value in ("true", "false"):
        return key, value == "true"
    return key, value


def _loke_sandbox(args: argparse.Namespace) -> int:
    from bridge.cli.loke_sandbox import run

    return run(args)


_COMMANDS = {
    "loke-sandbox": _loke_sandbox,
    "driver-check": _driver_check,
    "pos-emulator": _pos_emulator,
    "relay": _relay,
    "serve": _serve,
    "check-config": _check,
    "demo": _demo,
    "sim": _sim,
    "status": _status,
    "openapi": _openapi,
}

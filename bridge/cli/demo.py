"""``pos-bridge demo``: the embedded default, running, with URLs to try.

Starts a relay and the bridge on 127.0.0.1, the bridge with the simulated POS (a few tables
with open bills), one linked LOKE location and fresh secrets, its tunnel dialled into the
relay; then prints ready-to-paste ``curl`` lines. The platform's URLs go through the relay
(``/v/demo-cafe/…``), as LOKE's would: fetch a bill, pay part of it, pay the rest, see the
audit trail, take the POS offline and pay anyway, ask the relay for the venue's health.

``--pos serial|tcp|file`` puts the POS emulator (the same simulated bills speaking that wire
protocol over a pty, a TCP port or a folder) behind the real driver instead, and the
"offline" lines then silence the emulator through its control API.

Without ``--data-dir`` everything (configs, tokens, databases) goes in a fresh temporary
folder, removed when the demo stops (``--exit-after``, Ctrl-C, SIGTERM). A port already taken
ends the demo with one line naming it and the flag that changes it (``DemoError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import aiohttp
from aiohttp import web

from bridge.cli import demo_loke
from bridge.cli.logs import configure_logging
from bridge.cli.serve import run_bridge
from bridge.config import load_config
from drivers.emulator.run import make_pos, running_emulator
from relay.config import load_relay_config
from relay.server import start_relay_server
from relay.venues import add_venue

LOCATION = "demo-cafe"
VENUE = "demo-cafe"
#: How long the demo waits for the bridge's tunnel to come up before printing anyway.
TUNNEL_WAIT_S = 10.0
POS_CHOICES = ("simulator", "serial", "tcp", "file")
#: A silenced emulator answers nothing; the demo's driver gives up on it after this long.
EMULATED_TIMEOUT_MS = 1000
#: How often the demo's bridge probes the POS: once it is back, a queued payment is applied
#: within about this long (plus one attempt), which the printed guide promises.
PROBE_INTERVAL_S = 1.0


class DemoError(Exception):
    """Why the demo cannot run, in one line for the terminal (``pos-bridge demo`` exits 1)."""


def relay_config_text(port: int, operator_token: str) -> str:
    return f"""\
# Written by `pos-bridge demo`; see relay.example.toml for every option.
[relay]
host = "127.0.0.1"
port = {port}
venues_file = "venues.toml"
operator_token = "{operator_token}"
log_level = "warning"

[limits]
heartbeat_interval_s = 5.0
"""


def demo_config_text(
    data_dir: Path,
    port: int,
    admin_token: str,
    secret: str,
    tunnel_url: str,
    token: str,
    driver_url: str | None = None,
    loke: str = "",
) -> str:
    if driver_url is None:
        driver = f'url = "simulator://{data_dir}/simulated-pos.sqlite3"'
        options = "tables = 8"
    else:
        driver = f'url = "{driver_url}"'
        options = f"timeout_ms = {EMULATED_TIMEOUT_MS}"
    return f"""\
# Written by `pos-bridge demo`; see config.example.toml for every option.
[bridge]
data_dir = "{data_dir}"
admin_token = "{admin_token}"
log_level = "warning"

[server]
host = "127.0.0.1"
port = {port}

[health]
probe_interval_s = {PROBE_INTERVAL_S}

[drivers.main]
{driver}

[drivers.main.options]
{options}

[locations.{LOCATION}]
name = "Demo Cafe"
driver = "main"
pos_location = "1"

[locations.{LOCATION}.auth]
scheme = "bearer"
secrets = ["{secret}"]

[tunnel]
url = "{tunnel_url}"
venue = "{VENUE}"
token = "{token}"
reconnect_max_s = 2.0
{loke}"""


async def run_demo(
    port: int,
    data_dir: Path | None,
    exit_after_s: float | None,
    out: TextIO = sys.stdout,
    relay_port: int | None = None,
    pos: str = "simulator",
) -> None:
    """Run the demo until ``exit_after_s``, SIGINT or SIGTERM; its own temporary folder (when
    ``data_dir`` is None) is removed on the way out.

    Raises:
        DemoError: a port the demo binds is taken (or not allowed).
    """
    stop = asyncio.Event()
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        # Until the bridge serves, ``stop`` is not yet awaited: cancel the start-up instead.
        # ``run_bridge`` then installs its own handlers, which set ``stop``.
        stop.set()
        task.cancel()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    if relay_port is None:
        relay_port = 0 if port == 0 else port + 1
    _check_free(port, relay_port)  # before anything starts, so nothing has to be unwound
    own_dir = data_dir is None
    folder = Path(tempfile.mkdtemp(prefix="pos-bridge-demo-")) if data_dir is None else data_dir
    try:
        await _with_pos(port, folder, exit_after_s, out, relay_port, pos, stop, own_dir)
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
        task.uncancel()  # our own signal: a normal stop
    finally:
        if own_dir:
            shutil.rmtree(folder, ignore_errors=True)


async def _with_pos(
    port: int,
    data_dir: Path,
    exit_after_s: float | None,
    out: TextIO,
    relay_port: int,
    pos: str,
    stop: asyncio.Event,
    temporary: bool,
) -> None:
    """The demo with the simulator, or with the POS emulator behind the ``pos`` driver."""
    if pos == "simulator":
        await _run_demo(port, data_dir, exit_after_s, out, relay_port, None, stop, temporary)
        return
    urls = {"serial": "serial:pty", "tcp": "tcp://127.0.0.1:0", "file": f"file://{data_dir}/pos"}
    (data_dir / "pos").mkdir(parents=True, exist_ok=True)
    emulated = make_pos(data_dir / "emulated-pos.sqlite3", tables=8)
    # The emulator's ports (wire and control API) are picked free (0): they cannot clash.
    async with running_emulator(urls[pos], emulated, control_port=0) as (driver_url, control):
        assert control is not None
        emulator = (driver_url, control)
        await _run_demo(port, data_dir, exit_after_s, out, relay_port, emulator, stop, temporary)


def _relay_flag(port: int, relay_port: int) -> str:
    flag = "choose another with --relay-port N"
    if relay_port and relay_port == port + 1:
        flag += " (by default the relay takes --port + 1)"
    return flag


def _check_free(port: int, relay_port: int) -> None:
    """Raise ``DemoError`` when a port the demo will bind is taken (binding it again later
    still checks: another program may take it meanwhile)."""
    for what, number, flag in (
        ("the demo's relay", relay_port, _relay_flag(port, relay_port)),
        ("the demo's bridge", port, "choose another with --port N"),
    ):
        if number:
            with _port(what, number, flag), socket.create_server(("127.0.0.1", number)):
                pass


@contextlib.contextmanager
def _port(what: str, port: int, flag: str) -> Iterator[None]:
    """Binding ``port`` inside: a taken or forbidden port becomes a one-line ``DemoError``."""
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise DemoError(f"port {port} ({what}) is already in use: {flag}") from None
        if exc.errno == errno.EACCES:
            raise DemoError(f"port {port} ({what}) is not allowed: {flag}") from None
        raise


async def _run_demo(
    port: int,
    data_dir: Path,
    exit_after_s: float | None,
    out: TextIO,
    relay_port: int,
    emulator: tuple[str, str] | None,
    stop: asyncio.Event,
    temporary: bool,
) -> None:
    """The demo with the simulator, or with ``emulator`` = (driver URL, control API URL)."""
    admin_token, secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    operator_token = secrets.token_urlsafe(24)
    relay_dir = data_dir / "relay"
    relay_dir.mkdir(parents=True, exist_ok=True)
    relay_path = relay_dir / "relay.toml"
    relay_path.write_text(relay_config_text(relay_port, operator_token))
    relay_config = load_relay_config(relay_path)
    venues = relay_config.relay.venues_file
    venues.unlink(missing_ok=True)  # a fresh token each run
    token = add_venue(venues, VENUE)

    with _port("the demo's relay", relay_port, _relay_flag(port, relay_port)):
        relay_server = await start_relay_server(relay_config, "127.0.0.1", relay_port)
    loke_secret = secrets.token_urlsafe(24)
    sandbox_runner, sandbox, sandbox_base = await demo_loke.start_demo_sandbox(loke_secret)
    try:
        relay_base = f"http://127.0.0.1:{relay_server.port}"
        config_path = data_dir / "demo.toml"
        config_path.write_text(
            demo_config_text(
                data_dir,
                port,
                admin_token,
                secret,
                relay_base.replace("http", "ws") + "/tunnel",
                token,
                emulator[0] if emulator else None,
                demo_loke.loke_config_text(sandbox_base, loke_secret),
            )
        )
        config = load_config(config_path)
        configure_logging(config)

        async def ready(runner: web.AppRunner, bound_port: int) -> None:
            registry = relay_server.relay.registry
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TUNNEL_WAIT_S
            while registry.get(VENUE) is None and loop.time() < deadline and not stop.is_set():
                await asyncio.sleep(0.02)
            if stop.is_set():
                return
            base = f"http://127.0.0.1:{bound_port}"
            guide = Guide(base, relay_base, admin_token, secret, operator_token, config_path)
            guide.emulator, guide.temporary = emulator, temporary
            await demo_loke.walk(sandbox, sandbox_base, base, admin_token, out)
            await _print_guide(guide, out)
            if exit_after_s is not None:
                loop.call_later(exit_after_s, stop.set)

        with _port("the demo's bridge", port, "choose another with --port N"):
            await run_bridge(config, ready=ready, stop=stop)
    finally:
        await sandbox_runner.cleanup()
        await relay_server.close()


class Guide:
    """Where everything is, for the printed guide."""

    def __init__(
        self, base: str, relay: str, admin: str, secret: str, operator: str, config_path: Path
    ) -> None:
        self.base, self.relay, self.admin, self.secret = base, relay, admin, secret
        self.operator, self.config_path = operator, config_path
        self.emulator: tuple[str, str] | None = None  # (driver URL, control API URL)
        self.temporary = False  # the data folder is the demo's own, removed when it stops

    def pos_switch(self, online: bool) -> str:
        """The curl line that takes the POS offline or brings it back."""
        json_h = "-H 'Content-Type: application/json'"
        if self.emulator is None:
            mode = "online" if online else "offline"
            return (
                f"curl -s -X POST -H 'Authorization: Bearer {self.admin}' {json_h}"
                f' -d \'{{"mode":"{mode}"}}\' {self.base}/api/drivers/main/simulator'
            )
        silent = "false" if online else "true"
        return f"curl -s -X PUT {json_h} -d '{{\"silent\":{silent}}}' {self.emulator[1]}/faults"


async def _print_guide(guide: Guide, out: TextIO) -> None:
    base, admin, secret, config_path = guide.base, guide.admin, guide.secret, guide.config_path
    loke = f"{guide.relay}/v/{VENUE}/loke/v1/locations/{LOCATION}"
    headers = {"Authorization": f"Bearer {secret}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.get(f"{loke}/tables/1/bill") as response,
    ):
        bill = await response.json()
        async with http.get(f"{loke}/tables/2/bill") as response:
            bill2 = await response.json()
    part = bill["balance"] // 2
    rest = bill["balance"] - part
    auth = f"-H 'Authorization: Bearer {secret}'"
    admin_auth = f"-H 'Authorization: Bearer {admin}'"
    json_h = "-H 'Content-Type: application/json'"

    def pay(
        payment_id: str,
        amount: int,
        table: int = 1,
        ref: str | None = None,
        version: str | None = None,
    ) -> str:
        body = (
            f'{{"paymentId":"{payment_id}","billRef":"{ref or bill["id"]}",'
            f'"billVersion":"{version or bill["version"]}","currency":"{bill["currency"]}",'
            f'"amount":{amount},"tip":0}}'
        )
        return f"curl -s -X POST {auth} {json_h} -d '{body}' {loke}/tables/{table}/payments"

    if guide.emulator is None:
        pos_line = "simulated POS (8 tables with open bills)"
    else:
        pos_line = f"POS emulator at {guide.emulator[0]} (8 tables with open bills)"
    kept = "removed when the demo stops" if guide.temporary else "kept: --data-dir"
    lines = [
        "",
        f"POS Bridge demo: relay + bridge + {pos_line} on 127.0.0.1",
        f"  config:       {config_path}",
        f"  data:         {config_path.parent}   ({kept})",
        f"  relay:        {guide.relay}   (platforms call {guide.relay}/v/{VENUE}/...)",
        f"  bridge:       {base}   (the venue; reached through its tunnel)",
        f"  OpenAPI:      {base}/openapi.json",
        "",
        "# 1. LOKE fetches the open bill of table 1, through the relay",
        f"curl -s {auth} {loke}/tables/1/bill",
        f"# 2. a guest pays part of it ({part} of {bill['balance']} minor units of "
        f"{bill['currency']})",
        pay("demo-pay-1", part),
        "# 3. another guest pays the rest: the bill closes",
        pay("demo-pay-2", rest),
        "# 4. the same request again is answered from the store, not applied twice",
        pay("demo-pay-2", rest),
        "# 5. the audit trail of a payment",
        f"curl -s {admin_auth} {base}/api/payments/loke/demo-pay-1",
        "# 6. take the POS offline, pay on table 2 anyway (202 queued), bring it back",
        guide.pos_switch(online=False),
        f"curl -s {auth} {loke}/tables/2/bill   # 503 pos_offline while it is down",
        pay("demo-pay-3", bill2["balance"] // 3, table=2, ref=bill2["id"], version=bill2["version"])
        + "   # 202 queued: durable at the venue",
        guide.pos_switch(online=True),
        f"# 7. within a few seconds the bridge sees the POS back (it probes every "
        f"{PROBE_INTERVAL_S:g} s) and applies",
        '#    the queued payment: LOKE asks where it is ("queued", "applying", then "applied")',
        f"curl -s {auth} {loke}/payments/demo-pay-3",
        "# 8. status: posOnline (true once probed), queue depth (0 once that payment is applied)",
        f"curl -s {admin_auth} {base}/api/status",
        "# 9. the relay's view of the venue: tunnel up, and the POS state and queue depth its last",
        "#    heartbeat carried",
        f"curl -s -H 'Authorization: Bearer {guide.operator}' {guide.relay}/venues/{VENUE}/health",
        "",
        "Ctrl-C stops the demo.",
        "",
    ]
    out.write("\n".join(lines))
    out.flush()

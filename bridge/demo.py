"""``pos-bridge demo``: the embedded default, running, with URLs to try.

Starts the bridge on 127.0.0.1 with the simulated POS (a few tables with open bills), one
linked LOKE location, fresh secrets, and prints ready-to-paste ``curl`` lines: fetch a bill,
pay part of it, pay the rest, see the audit trail, take the POS offline and pay anyway.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
from pathlib import Path
from typing import TextIO

import aiohttp
from aiohttp import web

from bridge.config import load_config
from bridge.logs import configure_logging
from bridge.serve import run_bridge

LOCATION = "demo-cafe"


def demo_config_text(data_dir: Path, port: int, admin_token: str, secret: str) -> str:
    return f"""\
# Written by `pos-bridge demo`; see config.example.toml for every option.
[bridge]
data_dir = "{data_dir}"
admin_token = "{admin_token}"
log_level = "warning"

[server]
host = "127.0.0.1"
port = {port}

[drivers.main]
url = "simulator://{data_dir}/simulated-pos.sqlite3"

[drivers.main.options]
tables = 8

[locations.{LOCATION}]
name = "Demo Cafe"
driver = "main"
pos_location = "1"

[locations.{LOCATION}.auth]
scheme = "bearer"
secrets = ["{secret}"]
"""


async def run_demo(
    port: int, data_dir: Path | None, exit_after_s: float | None, out: TextIO = sys.stdout
) -> None:
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="pos-bridge-demo-"))
    admin_token, secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    config_path = data_dir / "demo.toml"
    config_path.write_text(demo_config_text(data_dir, port, admin_token, secret))
    config = load_config(config_path)
    configure_logging(config)
    stop = asyncio.Event()

    async def ready(runner: web.AppRunner, bound_port: int) -> None:
        base = f"http://127.0.0.1:{bound_port}"
        await _print_guide(base, admin_token, secret, config_path, out)
        if exit_after_s is not None:
            asyncio.get_running_loop().call_later(exit_after_s, stop.set)

    await run_bridge(config, ready=ready, stop=stop)


async def _print_guide(base: str, admin: str, secret: str, config_path: Path, out: TextIO) -> None:
    loke = f"{base}/loke/v1/locations/{LOCATION}"
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

    lines = [
        "",
        "POS Bridge demo: bridge + simulated POS (8 tables with open bills) on 127.0.0.1",
        f"  config:       {config_path}",
        f"  bridge:       {base}",
        f"  OpenAPI:      {base}/openapi.json",
        "",
        "# 1. LOKE fetches the open bill of table 1",
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
        f'curl -s -X POST {admin_auth} {json_h} -d \'{{"mode":"offline"}}\' '
        f"{base}/api/drivers/main/simulator",
        f"curl -s {auth} {loke}/tables/2/bill   # 503 pos_offline while it is down",
        pay("demo-pay-3", bill2["balance"] // 3, table=2, ref=bill2["id"], version=bill2["version"])
        + "   # 202 queued: durable at the venue",
        f'curl -s -X POST {admin_auth} {json_h} -d \'{{"mode":"online"}}\' '
        f"{base}/api/drivers/main/simulator",
        "# 7. status: POS online, queue depth (the queued payment has reached the POS)",
        f"curl -s {admin_auth} {base}/api/status",
        "",
        "Ctrl-C stops the demo.",
        "",
    ]
    out.write("\n".join(lines))
    out.flush()

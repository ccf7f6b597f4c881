"""The tunnel survives relays that restart and notices bridges that stop answering."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import LOKE_AUTH, config_data, loke_url
from tests.relay.harness import (
    add_venues,
    free_port,
    relay_config,
    running_bridge,
    running_relay,
    tunnel_section,
    wait_until,
)


async def bill_status(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(f"{base}/v/cafe-a{loke_url(1)}", headers=LOKE_AUTH) as response:
        await response.read()
        return response.status


async def test_after_a_relay_restart_the_bridge_is_back_within_the_backoff_cap(tmp_path):
    port = free_port()
    config = relay_config(tmp_path / "relay", port=port)
    token = add_venues(config, "cafe-a")["cafe-a"]
    cap_s = 0.5
    tunnel = tunnel_section(f"ws://127.0.0.1:{port}/tunnel", "cafe-a", token)
    tunnel["reconnect_max_s"] = cap_s
    async with (
        aiohttp.ClientSession() as http,
        running_relay(config) as relay,
        running_bridge(tmp_path, tunnel) as uplink,
    ):
        await wait_until(lambda: relay.relay.registry.get("cafe-a") is not None)
        first_epoch = uplink.epoch
        assert await bill_status(http, relay.url) == 200
        await relay.stop()  # the relay goes away (CLOSE + 1001)
        await asyncio.sleep(1.0)  # the bridge keeps retrying meanwhile
        async with running_relay(config) as again:
            took = await wait_until(lambda: again.relay.registry.get("cafe-a") is not None)
            assert took <= cap_s + 0.5, took
            assert await bill_status(http, again.url) == 200
            assert uplink.epoch > first_epoch


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
async def test_a_stopped_bridge_is_offline_within_the_liveness_timeout_and_back_after(tmp_path):
    heartbeat_s = 0.25
    config = relay_config(tmp_path / "relay", heartbeat_interval_s=heartbeat_s)
    token = add_venues(config, "cafe-a")["cafe-a"]
    async with running_relay(config) as relay, aiohttp.ClientSession() as http:
        bridge = start_bridge_process(tmp_path, tunnel_section(relay.tunnel_url, "cafe-a", token))
        try:
            await wait_until(lambda: relay.relay.registry.get("cafe-a") is not None, 20)
            assert await bill_status(http, relay.url) == 200
            os.kill(bridge.pid, signal.SIGSTOP)
            stopped = time.monotonic()
            await wait_until(lambda: relay.relay.registry.get("cafe-a") is None, 5)
            assert await bill_status(http, relay.url) == 503
            # Detected within two heartbeat intervals (plus scheduling slack).
            assert time.monotonic() - stopped <= 2 * heartbeat_s + 0.5
            os.kill(bridge.pid, signal.SIGCONT)

            async def back() -> bool:
                return await bill_status(http, relay.url) == 200

            await wait_until(back, 10)
        finally:
            os.kill(bridge.pid, signal.SIGCONT)
            bridge.terminate()  # the relay keeps running meanwhile: it answers the CLOSE
            await wait_until(lambda: bridge.poll() is not None, 15)


def start_bridge_process(tmp_path: Path, tunnel: dict[str, object]) -> subprocess.Popen[bytes]:
    """``pos-bridge serve`` in its own process, with a ``[tunnel]`` section."""
    data = config_data(tmp_path, tunnel=tunnel, server={"port": 0})
    path = tmp_path / "bridge.toml"
    path.write_text(to_toml(data))
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", "serve", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def to_toml(data: dict[str, object], prefix: str = "") -> str:
    """Just enough TOML for the test config (tables, strings, numbers, lists of strings)."""
    scalars, tables = [], []
    for key, value in data.items():
        name = f'"{key}"'
        if isinstance(value, dict):
            tables.append((f"{prefix}{name}", value))
        elif isinstance(value, str):
            scalars.append(f'{name} = "{value}"')
        elif isinstance(value, list):
            scalars.append(f"{name} = [" + ", ".join(f'"{v}"' for v in value) + "]")
        else:
            scalars.append(f"{name} = {value}")
    text = (f"[{prefix.rstrip('.')}]\n" if prefix and scalars else "") + "".join(
        line + "\n" for line in scalars
    )
    for table_name, table in tables:
        text += to_toml(table, table_name + ".")
    return text

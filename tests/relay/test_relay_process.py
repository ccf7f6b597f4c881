"""``pos-bridge relay`` as its own process: it serves, and big bodies do not grow its memory."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.relay.harness import (
    OPERATOR_TOKEN,
    free_port,
    running_uplink,
    serving,
    sha,
    tunnel_section,
    wait_until,
)
from tests.relay.test_forwarding import echo_app

MIB = 1024 * 1024


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(90)
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
async def test_the_relay_process_streams_10_mib_bodies_in_bounded_memory(tmp_path):
    port = free_port()
    config = tmp_path / "relay.toml"
    config.write_text(
        f'[relay]\nport = {port}\noperator_token = "{OPERATOR_TOKEN}"\nlog_level = "warning"\n'
    )
    added = subprocess.run(
        [sys.executable, "-m", "bridge", "relay", "add-venue", "cafe-a", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    token = added.stdout.strip().splitlines()[-1]
    relay = subprocess.Popen([sys.executable, "-m", "bridge", "relay", "--config", str(config)])
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def up() -> bool:
                try:
                    async with http.get(f"{base}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_until(up, 20)
            tunnel = tunnel_section(f"ws://127.0.0.1:{port}/tunnel", "cafe-a", token)
            async with serving(echo_app({})) as local, running_uplink(tmp_path, local, tunnel):
                auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}

                async def online() -> bool:
                    async with http.get(f"{base}/venues/cafe-a/health", headers=auth) as r:
                        return (await r.json())["online"] is True

                await wait_until(online, 10)
                body = os.urandom(10 * MIB)
                size = 10 * MIB + 7

                async def echo() -> bool:
                    async with http.post(f"{base}/v/cafe-a/echo", data=body) as response:
                        return response.status == 200 and sha(await response.read()) == sha(body)

                async def download() -> bool:
                    """A GET: the relay's fast path streams the answer, with backpressure."""
                    async with http.get(f"{base}/v/cafe-a/blob?n={size}") as response:
                        total = 0
                        async for part in response.content.iter_chunked(64 * 1024):
                            total += len(part)
                            await asyncio.sleep(0.01)  # a slow reader (6 MiB/s): the relay waits
                        return response.status == 200 and total == size

                # Warm up: buffers, imports, allocator pools. Then the peak RSS (VmHWM) is
                # read around each kind, downloads first: a peak only grows.
                assert await echo() and await download()
                # 40 or 80 MiB cross; far less than one body's size may stay in the relay. A
                # download's bound is tighter: without backpressure on the slow reader the
                # relay's buffers grew by ~10 MiB here, with it by ~2 MiB.
                runs = (("4 × 10 MiB downloads", download, 5), ("4 × 2 × 10 MiB", echo, 10))
                for kind, exchange, bound_mib in runs:
                    before = peak_rss_bytes(relay.pid)
                    results = await asyncio.gather(*(exchange() for _ in range(4)))
                    grown = peak_rss_bytes(relay.pid) - before
                    assert results == [True] * 4
                    print(f"relay peak RSS grew by {grown / MIB:.1f} MiB for {kind}")
                    assert grown < bound_mib * MIB, (kind, grown)
    finally:
        relay.send_signal(signal.SIGTERM)
        await wait_until(lambda: relay.poll() is not None, 15)
    assert relay.returncode == 0

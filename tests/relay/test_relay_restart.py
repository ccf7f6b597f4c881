"""The relay restarted (SIGTERM, then kill -9) in the middle of a payment load through it.

The relay runs as its own process (``python -m bridge relay``) on a fixed port; the bridge runs
in this process with its simulated POS kept in a SQLite file. Payers post one payment per bill
through the relay's public URL and send the very same request again (same id, same body) on a
cut connection or a 502/503/504, as a platform would. The relay is stopped twice while they
are at work and started again on the same port; the bridge must find it again by itself within
its backoff cap. Afterwards the POS's own file must hold every payment exactly once, and every
2xx answer for one id must be the same.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.venues import add_venue
from tests.conftest import LOKE_AUTH, loke_url, payment_body
from tests.relay.harness import (
    OPERATOR_TOKEN,
    free_port,
    running_bridge,
    tunnel_section,
    wait_until,
)

TABLES = 30
RECONNECT_MAX_S = 0.5
HEARTBEAT_S = 0.5
RETRY = frozenset({502, 503, 504})
CUT = (aiohttp.ClientError, TimeoutError)


class RelayProcess:
    def __init__(self, tmp_path: Path, port: int) -> None:
        self.port = port
        self.config = tmp_path / "relay.toml"
        self.config.write_text(
            f'[relay]\nport = {port}\noperator_token = "{OPERATOR_TOKEN}"\n'
            f'log_level = "warning"\n[limits]\nheartbeat_interval_s = {HEARTBEAT_S}\n'
        )
        self.token = add_venue(tmp_path / "venues.toml", "cafe-a")
        self.process: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "relay", "--config", str(self.config)]
        )

    async def stop(self, signum: int) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        await wait_until(lambda: self.process is not None and self.process.poll() is not None, 10)
        return self.process.returncode

    async def online(self, http: aiohttp.ClientSession) -> bool:
        auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        try:
            async with http.get(f"{self.base}/venues/cafe-a/health", headers=auth) as response:
                return response.status == 200 and (await response.json())["online"] is True
        except CUT:
            return False

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


async def _send(
    http: aiohttp.ClientSession, method: str, url: str, body: dict[str, Any] | None
) -> tuple[int, dict[str, Any]] | None:
    """One attempt; ``None`` when it must be sent again (cut, 502/503/504, 409 in_progress)."""
    try:
        async with http.request(method, url, json=body, headers=LOKE_AUTH) as response:
            answer = await response.json(content_type=None)
            if response.status in RETRY:
                return None
            if response.status == 409 and answer.get("error") == "in_progress":
                return None
            return response.status, answer
    except CUT:
        return None


async def _until_answered(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    body: dict[str, Any] | None,
    tries: list[int],
) -> tuple[int, dict[str, Any]]:
    while True:
        tries[0] += 1
        answer = await _send(http, method, url, body)
        if answer is not None:
            return answer
        await asyncio.sleep(0.05)


@pytest.mark.timeout(60)
async def test_a_relay_restart_mid_load_applies_every_payment_exactly_once(tmp_path):
    port = free_port()
    relay = RelayProcess(tmp_path, port)
    sim_path = tmp_path / "sim.sqlite3"
    drivers = {"main": {"url": f"simulator://{sim_path}", "options": {"tables": TABLES}}}
    drivers["main"]["options"]["latency_ms"] = 20
    tunnel = tunnel_section(
        f"ws://127.0.0.1:{port}/tunnel", "cafe-a", relay.token, reconnect_max_s=RECONNECT_MAX_S
    )
    venue = f"{relay.base}/v/cafe-a"

    def on_pos() -> list[tuple[str, int]]:
        conn = sqlite3.connect(sim_path)
        try:
            rows = conn.execute("SELECT payment_id, amount FROM sim_payments").fetchall()
        finally:
            conn.close()
        return [(str(p), int(a)) for p, a in rows]

    answers: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    tries = [0]
    reconnect_s: list[float] = []
    relay.start()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
            running_bridge(tmp_path, tunnel, drivers=drivers),
        ):
            await wait_until(lambda: relay.online(http), 20)
            bills = {}
            for table in range(1, TABLES + 1):
                status, bill = await _until_answered(
                    http, "GET", venue + loke_url(table), None, tries
                )
                assert status == 200, bill
                bills[table] = bill

            async def pay(table: int) -> None:
                await asyncio.sleep(table * 0.05)  # spread over 1.5 s: the restarts land mid-load
                payment_id = f"restart-t{table}"
                bill = bills[table]
                body = payment_body(bill, payment_id, bill["balance"])
                url = venue + loke_url(table, "payments")
                for _ in range(2):  # the second time: a resend after the answer, same id
                    answer = await _until_answered(http, "POST", url, body, tries)
                    answers.setdefault(payment_id, []).append(answer)

            async def restart(signum: int, after_s: float) -> None:
                await asyncio.sleep(after_s)
                code = await relay.stop(signum)
                assert code == (0 if signum == signal.SIGTERM else -signal.SIGKILL)
                relay.start()
                began = time.monotonic()
                await wait_until(lambda: relay.online(http), 10, 0.01)
                reconnect_s.append(time.monotonic() - began)

            async def restarts() -> None:
                await restart(signal.SIGTERM, 0.4)
                await restart(signal.SIGKILL, 0.3)

            await asyncio.gather(restarts(), *(pay(t) for t in range(1, TABLES + 1)))
            # A 202 (queued) reaches the POS from the bridge's outbox shortly after.
            await wait_until(lambda: len(on_pos()) >= TABLES, 10)
    finally:
        relay.close()

    print(f"reconnects after restart: {[f'{s:.2f}s' for s in reconnect_s]}; attempts {tries[0]}")
    # The relay process itself takes a moment to start; the bridge adds at most its cap.
    assert len(reconnect_s) == 2 and all(s < RECONNECT_MAX_S + 5 for s in reconnect_s)
    assert tries[0] > 2 * TABLES + TABLES  # some requests really were cut and sent again
    assert sorted(answers) == sorted(f"restart-t{t}" for t in range(1, TABLES + 1))
    for payment_id, got in answers.items():
        assert all(200 <= status < 300 for status, _ in got), (payment_id, got)
        assert all(answer == got[0] for answer in got), (payment_id, got)

    rows = on_pos()
    assert sorted(p for p, _ in rows) == sorted(answers), rows
    for payment_id, amount in rows:
        table = int(payment_id.removeprefix("restart-t"))
        assert amount == bills[table]["balance"]

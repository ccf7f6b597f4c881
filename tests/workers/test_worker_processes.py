"""The bridge with HTTP workers (``[server] workers``), as real process trees on 127.0.0.1.

What a platform or a technician sees must not depend on the workers: every answer is
compared with a one-process bridge's. Then the tree's lives: a killed worker is replaced by
its owner, a killed owner's workers leave by themselves (so a new owner can bind the port),
and SIGTERM, to the owner or to the whole process group as systemd and a terminal send it,
stops everything cleanly.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import ADMIN_AUTH, LOKE_AUTH, config_data, loke_url, payment_body
from tests.crash.load import until
from tests.crash.process import HOST, BridgeProcess, alive, free_port, to_toml

pytestmark = pytest.mark.timeout(120)

Request = tuple[str, str, dict[str, str], bytes | None]


def write_config(folder: Path, port: int, workers: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = config_data(folder)
    data["server"] = {"host": HOST, "port": port, "workers": workers, "max_body_bytes": 2048}
    data["drivers"]["main"]["options"]["seed"] = 7
    path = folder / "bridge.toml"
    path.write_text(to_toml(data))
    return path


@contextlib.asynccontextmanager
async def running(folder: Path, workers: int) -> AsyncIterator[BridgeProcess]:
    port = free_port()
    config = write_config(folder, port, workers)
    bridge = BridgeProcess(config, port, folder / "bridge.log", workers)
    try:
        bridge.start()
        async with aiohttp.ClientSession() as session:
            await bridge.wait_ready(session)
        yield bridge
    except BaseException:
        print(bridge.log_tail())
        raise
    finally:
        bridge.close()


async def send(
    session: aiohttp.ClientSession, bridge: BridgeProcess, request: Request
) -> tuple[int, dict[str, str], bytes]:
    method, path, headers, body = request
    async with session.request(method, bridge.base_url + path, headers=headers, data=body) as r:
        return r.status, dict(r.headers), await r.read()


def requests(bill: dict[str, Any]) -> list[Request]:
    """One of each kind of answer, in an order that builds on itself (pay, replay, reuse)."""
    json_auth = {**LOKE_AUTH, "Content-Type": "application/json"}
    charset = {**LOKE_AUTH, "Content-Type": "application/json; charset=utf-8"}
    body = payment_body(bill, "pay-w-1", 500)
    other = payment_body(bill, "pay-w-1", 600)
    return [
        ("GET", loke_url(1), LOKE_AUTH, None),
        ("GET", loke_url(1), {}, None),
        ("GET", loke_url(1, location="nowhere"), LOKE_AUTH, None),
        ("GET", loke_url("abc"), LOKE_AUTH, None),
        ("GET", loke_url(99), LOKE_AUTH, None),
        ("POST", loke_url(1, "payments"), json_auth, b"{not json"),
        ("POST", loke_url(1, "payments"), {**LOKE_AUTH, "Content-Type": "text/plain"}, b"{}"),
        ("POST", loke_url(1, "payments"), json_auth, b"x" * 4096),
        ("POST", loke_url(1, "payments"), json_auth, b'{"paymentId": 5}'),
        ("PUT", loke_url(1, "payments"), json_auth, b"{}"),
        ("POST", loke_url(1, "payments"), json_auth, orjson.dumps(body)),
        ("POST", loke_url(1, "payments"), json_auth, orjson.dumps(body)),
        ("POST", loke_url(1, "payments"), json_auth, orjson.dumps(other)),
        # Handed from the worker's fast path to aiohttp (``bridge/http/head.py``):
        ("POST", loke_url(1, "payments"), charset, orjson.dumps(body)),
        ("GET", loke_url(1) + "?via=query", LOKE_AUTH, None),
        ("GET", "/loke/v1/locations/loc%2Dmain/tables/1/bill", LOKE_AUTH, None),
        ("HEAD", loke_url(1), LOKE_AUTH, None),
        ("GET", loke_url(1), {**LOKE_AUTH, "Connection": "close"}, None),
        ("GET", "/loke/v1/locations/loc-main/payments/pay-w-1", LOKE_AUTH, None),
        ("GET", "/loke/v1/locations/loc-main/payments/nope", LOKE_AUTH, None),
        ("GET", "/loke/v1/locations/loc-main/tables", LOKE_AUTH, None),
        ("GET", "/api/status", {}, None),
        ("GET", "/api/payments/loke/pay-w-1", ADMIN_AUTH, None),
        ("POST", "/api/drivers/main/simulator", {**ADMIN_AUTH}, b'{"mode": "bogus"}'),
        ("GET", "/openapi.json", {}, None),
        ("GET", "/no/such/url", {}, None),
        ("GET", "/healthz", {}, None),
    ]


_VARYING = {"created", "updated", "at", "startedAt", "now", "since"}


def comparable(body: bytes) -> Any:
    """The JSON with its clock readings blanked (the two bridges started apart)."""

    def blank(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "…" if k in _VARYING else blank(v) for k, v in value.items()}
        if isinstance(value, list):
            return [blank(v) for v in value]
        return value

    try:
        return blank(orjson.loads(body))
    except orjson.JSONDecodeError:
        return body


async def test_a_worker_answers_exactly_as_the_bridge_itself(tmp_path: Path) -> None:
    async with (
        running(tmp_path / "one", 0) as alone,
        running(tmp_path / "tree", 2) as tree,
        aiohttp.ClientSession() as session,
    ):
        assert len(tree.worker_pids()) == 2 and not alone.worker_pids()
        fetch: Request = ("GET", loke_url(1), LOKE_AUTH, None)
        bills = [await send(session, bridge, fetch) for bridge in (alone, tree)]
        assert bills[0][0] == bills[1][0] == 200
        bill = orjson.loads(bills[0][2])
        assert comparable(bills[0][2]) == comparable(bills[1][2])
        kept = ("Content-Type", "ETag", "Idempotent-Replayed", "Retry-After", "Allow")
        for request in requests(bill):
            a_status, a_headers, a_body = await send(session, alone, request)
            t_status, t_headers, t_body = await send(session, tree, request)
            where = f"{request[0]} {request[1]}"
            assert t_status == a_status, f"{where}: {t_status} {t_body!r} vs {a_status} {a_body!r}"
            assert comparable(t_body) == comparable(a_body), where
            assert {k: t_headers.get(k) for k in kept} == {k: a_headers.get(k) for k in kept}, where


def raw_answers(port: int, data: bytes, count: int) -> list[tuple[int, bytes]]:
    """Send ``data`` on one connection; read up to ``count`` answers (status, body) in order,
    each framed by its ``Content-Length`` (fewer if the server closes first)."""
    answers: list[tuple[int, bytes]] = []
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(data)
        buffer = b""
        while len(answers) < count:
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = buffer[:end].decode("latin-1").split("\r\n")
                fields = dict(line.split(": ", 1) for line in head[1:])
                length = int(fields.get("Content-Length", "0"))
                if len(buffer) >= end + 4 + length:
                    body = buffer[end + 4 : end + 4 + length]
                    answers.append((int(head[0].split(" ")[1]), body))
                    buffer = buffer[end + 4 + length :]
                    continue
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
    return answers


def http(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bridge"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def test_pipelined_and_smuggling_requests_read_as_the_bridge_itself_reads_them(
    tmp_path: Path,
) -> None:
    """Raw bytes on one connection, to a worker (fast path, then aiohttp after a hand-over)
    and to a one-process bridge (aiohttp throughout): the same answers in the same order."""
    async with (
        running(tmp_path / "one", 0) as alone,
        running(tmp_path / "tree", 1) as tree,
        aiohttp.ClientSession() as session,
    ):
        bill = orjson.loads((await send(session, alone, ("GET", loke_url(3), LOKE_AUTH, None)))[2])
        json_auth = {**LOKE_AUTH, "Content-Type": "application/json"}
        pay = orjson.dumps(payment_body(bill, "pay-raw-1", 100))
        pipelined = b"".join(
            [
                http("GET", loke_url(3), LOKE_AUTH),
                http(
                    "POST",
                    loke_url(3, "payments"),
                    {**json_auth, "Content-Length": str(len(pay))},
                    pay,
                ),
                http("GET", "/loke/v1/locations/loc-main/payments/pay-raw-1", LOKE_AUTH),
                http("GET", "/api/status", {}),  # handed over (401: no token), aiohttp from here
                http("GET", loke_url(3), LOKE_AUTH),
            ]
        )
        smuggled = {
            "CL and TE": http(
                "POST",
                loke_url(3, "payments"),
                {**json_auth, "Content-Length": "4", "Transfer-Encoding": "chunked"},
                b"0\r\n\r\nGET /api/status HTTP/1.1\r\n\r\n",
            ),
            "two lengths": http(
                "POST",
                loke_url(3, "payments"),
                {**json_auth, "Content-Length": "2", "content-length": "30"},
                b"{}",
            )
            + http("GET", loke_url(3), LOKE_AUTH),
            "bare LF": b"GET "
            + loke_url(3).encode()
            + b" HTTP/1.1\nHost: bridge\n"
            + b"Authorization: "
            + LOKE_AUTH["Authorization"].encode()
            + b"\n\n",
        }
        for name, data in {"pipelined": pipelined, **smuggled}.items():
            seen = [raw_answers(bridge.port, data, 5) for bridge in (alone, tree)]
            assert [status for status, _ in seen[1]] == [status for status, _ in seen[0]], name
            assert [comparable(b) for _, b in seen[1]] == [comparable(b) for _, b in seen[0]], name
            if name == "pipelined":
                assert [status for status, _ in seen[0]] == [200, 201, 200, 401, 200]
        # The worker took the pipelined payment once: the one-process bridge took its own.
        status = await send(
            session, tree, ("GET", "/api/payments/loke/pay-raw-1", ADMIN_AUTH, None)
        )
        assert status[0] == 200 and orjson.loads(status[2])["payment"]["state"] == "applied"


async def pays(session: aiohttp.ClientSession, bridge: BridgeProcess, payment_id: str) -> int:
    """Fetch table 2's bill and pay 1 cent of it; the status (0: no HTTP answer)."""
    try:
        status, _, raw = await send(session, bridge, ("GET", loke_url(2), LOKE_AUTH, None))
        if status != 200:
            return status
        body = orjson.dumps(payment_body(orjson.loads(raw), payment_id, 1))
        headers = {**LOKE_AUTH, "Content-Type": "application/json"}
        request: Request = ("POST", loke_url(2, "payments"), headers, body)
        return (await send(session, bridge, request))[0]
    except aiohttp.ClientError:
        return 0


async def test_a_killed_worker_is_replaced_and_a_killed_owner_leaves_no_worker(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, 1) as bridge, aiohttp.ClientSession() as session:
        assert await pays(session, bridge, "before") == 201
        (first,) = bridge.worker_pids()
        assert await bridge.kill9_worker(random.Random(1))

        async def replaced() -> bool:
            pids = bridge.worker_pids()
            return bool(pids) and pids != [first] and await pays(session, bridge, "after") == 201

        await until(replaced, 20, "a new worker serving")
        assert "HTTP worker 0 exited" in bridge.log_tail(200)

        await bridge.kill9()  # the owner: its worker must exit by itself (checked in kill9)
        bridge.start()  # and the port is free again for the next owner
        await bridge.wait_ready(session)
        assert await pays(session, bridge, "restarted") == 201


@pytest.mark.parametrize("to_group", [False, True], ids=["owner", "process-group"])
async def test_sigterm_stops_the_whole_tree_cleanly(tmp_path: Path, to_group: bool) -> None:
    """To the owner only (a service manager's main pid), or to every process at once (a
    terminal's Ctrl-C, systemd's control-group stop): no worker is started again, none is
    left, and the owner exits 0."""
    port = free_port()
    bridge = BridgeProcess(write_config(tmp_path, port, 2), port, tmp_path / "bridge.log", 2)
    try:
        bridge.start(new_session=True)
        async with aiohttp.ClientSession() as session:
            await bridge.wait_ready(session)
        workers = bridge.worker_pids()
        assert len(workers) == 2
        assert bridge.proc is not None
        if to_group:
            os.killpg(bridge.proc.pid, signal.SIGTERM)
            assert await bridge.wait_exit(20) == 0
        else:
            assert await bridge.stop() == 0
        log = bridge.log_tail(200)
        assert "exited (status" not in log, log
        assert not [pid for pid in workers if alive(pid)]
    except BaseException:
        print(bridge.log_tail())
        raise
    finally:
        bridge.close()

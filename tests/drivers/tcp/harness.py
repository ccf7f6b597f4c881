"""What the TCP tests share: the emulator as a real process, a stalling proxy, payments.

- :class:`EmulatorProcess`: ``python -m bridge pos-emulator tcp://127.0.0.1:PORT --state
  FILE --control-port 0`` as a child process; kill -9, SIGSTOP/SIGCONT, restart on the same
  port with the same state file; its fault control API.
- :class:`StallingProxy`: a TCP relay on 127.0.0.1 that can stop forwarding (one way or
  both) without closing anything: the half-open connection a bridge sees when the POS's
  switch loses power or its process hangs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bridge.core.bill import Bill
from bridge.core.money import Money
from drivers.base import DriverSettings, PaymentInstruction
from drivers.tcp.driver import TcpDriver
from tests.crash.process import REPO, free_port

HOST = "127.0.0.1"
START_TIMEOUT_S = 20.0


def tcp_driver(url: str, **options: Any) -> TcpDriver:
    return TcpDriver(DriverSettings("pos", urlsplit(url), options))


def instruction(bill: Bill, payment_id: str, amount: int, tip: int = 0) -> PaymentInstruction:
    money = lambda minor: Money(minor, bill.currency)  # noqa: E731
    return PaymentInstruction(
        payment_id, "1", bill.table, bill.id, money(amount), money(tip), "App"
    )


def payments_on_pos(state: Path, payment_id: str) -> int:
    """How many times the POS's own file holds ``payment_id`` (read-only, WAL-safe)."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM sim_payments WHERE payment_id = ?", (payment_id,)
        ).fetchone()
    return int(count)


class EmulatorProcess:
    """The emulated POS in its own process; see the module docstring."""

    def __init__(self, state: Path, log: Path, port: int | None = None, tables: int = 8) -> None:
        self.state = state
        self.tables = tables
        self.log = log
        self.port = port or free_port()
        self.url = f"tcp://{HOST}:{self.port}"
        self.control = ""
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        argv = [sys.executable, "-m", "bridge", "pos-emulator", self.url]
        argv += ["--state", str(self.state), "--control-port", "0", "--tables", str(self.tables)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=log)
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        text, loop = b"", asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while b"control API: " not in text or not text.endswith(b"\n"):
            assert self.proc.poll() is None, f"emulator exited: {self.log.read_text()}"
            assert loop.time() < deadline, f"emulator not ready: {text!r}"
            text += self.proc.stdout.read() or b""
            await asyncio.sleep(0.02)
        assert f"driver url = {self.url}".encode() in text, text
        self.control = text.split(b"control API: ")[1].split()[0].decode().removesuffix("/faults")

    async def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await self._wait_exit()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            await self._wait_exit()

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts and ACKs; nothing is read or answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    async def faults(self, **changes: Any) -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            response = await session.put(f"{self.control}/faults", json=changes)
            assert response.status == 200, await response.text()
            result: dict[str, Any] = await response.json()
            return result

    async def reboot(self, seconds: float) -> None:
        """Cut every connection and refuse new ones for ``seconds`` (0: back at once)."""
        async with aiohttp.ClientSession() as session:
            response = await session.post(f"{self.control}/reboot", json={"seconds": seconds})
            assert response.status == 200, await response.text()

    async def requests_seen(self) -> int:
        async with aiohttp.ClientSession() as session:
            response = await session.get(f"{self.control}/state")
            return int((await response.json())["requests_seen"])

    async def _wait_exit(self) -> None:
        assert self.proc is not None
        for _ in range(500):
            if self.proc.poll() is not None:
                break
            await asyncio.sleep(0.02)
        assert self.proc.poll() is not None, "emulator did not exit"
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class StallingProxy:
    """127.0.0.1:port → target, byte for byte, until told to stall a direction."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.forward_requests = asyncio.Event()
        self.forward_replies = asyncio.Event()
        self.forward_requests.set()
        self.forward_replies.set()
        self.connections = 0
        #: once a request chunk containing these bytes is forwarded, replies stop
        self.stall_replies_after: bytes | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def __aenter__(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"tcp://{HOST}:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(HOST, self.target_port)
        self._writers += [writer, up_writer]
        for task in (
            asyncio.create_task(self._pump(reader, up_writer, self.forward_requests, True)),
            asyncio.create_task(self._pump(up_reader, writer, self.forward_replies, False)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        go: asyncio.Event,
        requests: bool,
    ) -> None:
        """Copy until EOF; while ``go`` is clear, read and hold nothing back, send nothing."""
        try:
            while data := await reader.read(65536):
                if not go.is_set():
                    continue  # the bytes vanish, as in a dead switch; nothing is closed
                trigger = self.stall_replies_after
                if requests and trigger is not None and trigger in data:
                    self.forward_replies.clear()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()

"""The bridge as a real child process: its TOML config, start, readiness, kill -9, stop."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import aiohttp

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def free_port() -> int:
    """A port nobody listens on now (the same port is reused across restarts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def to_toml(data: dict[str, Any]) -> str:
    """Enough TOML for a config as ``tests/conftest.py::config_data`` builds it."""
    lines: list[str] = []

    def key(name: str) -> str:
        return name if _BARE_KEY.match(name) else json.dumps(name)

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        if isinstance(item, str):
            return json.dumps(item)  # a JSON string is a valid TOML basic string
        if isinstance(item, list):
            return "[" + ", ".join(value(x) for x in item) + "]"
        raise TypeError(f"no TOML for {item!r}")

    def table(prefix: str, section: dict[str, Any]) -> None:
        scalars = {k: v for k, v in section.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in section.items() if isinstance(v, dict)}
        if prefix and (scalars or not tables):
            lines.append(f"\n[{prefix}]")
        lines.extend(f"{key(k)} = {value(v)}" for k, v in scalars.items())
        for name, sub in tables.items():
            table(f"{prefix}.{key(name)}" if prefix else key(name), sub)

    table("", data)
    return "\n".join(lines).strip() + "\n"


class BridgeProcess:
    """``python -m bridge serve --config FILE`` on a fixed port; output goes to ``log_path``."""

    def __init__(self, config_path: Path, port: int, log_path: Path) -> None:
        self.config_path = config_path
        self.port = port
        self.log_path = log_path
        self.base_url = f"http://{HOST}:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, new_session: bool = False) -> None:
        """Start it; ``new_session``: as the leader of its own process group (to signal the
        whole tree at once, as a terminal or systemd does)."""
        assert not self.running, "the previous bridge is still running"
        if self._log is None:
            self._log = self.log_path.open("ab")
        self.starts += 1
        self._log.write(f"\n===== start {self.starts} =====\n".encode())
        self._log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--config", str(self.config_path)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )

    async def wait_ready(self, session: aiohttp.ClientSession, timeout: float = 20.0) -> float:
        """Poll ``GET /healthz`` until it answers 200; returns the seconds it took."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout
        while loop.time() < deadline:
            if not self.running:
                raise AssertionError(f"the bridge exited at start\n{self.log_tail()}")
            try:
                async with session.get(
                    f"{self.base_url}/healthz", timeout=aiohttp.ClientTimeout(total=2)
                ) as response:
                    if response.status == 200:
                        return loop.time() - started
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.03)
        raise AssertionError(f"the bridge was not ready within {timeout}s\n{self.log_tail()}")

    async def kill9(self, timeout: float = 10.0) -> None:
        """SIGKILL, then wait (bounded) until the process is gone."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        code = await self.wait_exit(timeout)
        assert code == -signal.SIGKILL, f"the bridge exited with {code}, not by SIGKILL"

    async def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: the bridge shuts down in order and exits 0."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await self.wait_exit(timeout)

    async def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (code := self.proc.poll()) is None:
            if loop.time() > deadline:
                raise AssertionError(f"the bridge did not exit within {timeout}s")
            await asyncio.sleep(0.01)
        return code

    def close(self) -> None:
        """Whatever happened, leave no process behind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no bridge log)"
        return "--- bridge log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])


class EmulatorProcess:
    """``python -m bridge pos-emulator URL --state FILE --control-port N``: a POS in its own
    process, so that killing the bridge leaves it (and the payments it took) standing."""

    def __init__(self, url: str, state: Path, tables: int, log_path: Path) -> None:
        self.url = url
        self.state = state
        self.tables = tables
        self.log_path = log_path
        self.control_url = f"http://{HOST}:{free_port()}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, *, new_session: bool = False) -> None:
        """Start it; ``new_session``: as the leader of its own process group (to signal the
        whole tree at once, as a terminal or systemd does)."""
        self._log = self.log_path.open("ab")
        port = self.control_url.rsplit(":", 1)[1]
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "bridge", "pos-emulator", self.url),
                *("--state", str(self.state), "--control-port", port),
                *("--tables", str(self.tables)),
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def driver_url(self, timeout: float = 20.0) -> str:
        """The driver URL the emulator prints once it serves (a pty's path, a port...)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the POS emulator exited at start\n{self.log_tail()}")
            for line in self.log_path.read_text(errors="replace").splitlines():
                if "driver url = " in line:
                    return line.split("driver url = ", 1)[1].strip()
            await asyncio.sleep(0.03)
        raise AssertionError(f"the POS emulator was not ready in {timeout}s\n{self.log_tail()}")

    def close(self) -> None:
        """SIGINT (it shuts down in order), then SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no emulator log)"
        return "--- POS emulator log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

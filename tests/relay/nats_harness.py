"""A real ``nats-server`` on 127.0.0.1 and relays that share it, in process or as processes.

The server is Debian's ``nats-server`` (``.ci/run`` installs it). Tests that need it skip,
with the reason, only when the binary is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.config import RelayConfig, parse_relay_config
from tests.relay.harness import OPERATOR_TOKEN, free_port


def nats_server_binary() -> str | None:
    # Debian installs it in /usr/sbin, which a non-root PATH may lack.
    return shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/bin")


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def nats_url() -> Iterator[str]:
    """A fresh nats-server on a free 127.0.0.1 port, killed after the test."""
    binary = nats_server_binary()
    if binary is None:
        pytest.skip("nats-server is not installed (apt-get install nats-server; .ci/run does)")
    port = free_port()
    server = subprocess.Popen(
        [binary, "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _accepts(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("nats-server did not start")
            time.sleep(0.02)
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait(10)


def cluster_config(base: Path, nats_url: str, port: int = 0, **limits: Any) -> RelayConfig:
    """A relay of the cluster; relays built on the same ``base`` share the venues file."""
    data = {
        "relay": {"operator_token": OPERATOR_TOKEN, "port": port, "venues_file": "venues.toml"},
        "limits": {"heartbeat_interval_s": 1.0, **limits},
        "nats": {"url": nats_url, "chunk_bytes": 128 * 1024, "window_chunks": 4},
    }
    return parse_relay_config(data, {}, base)


@contextlib.contextmanager
def relay_process(
    base: Path, name: str, nats_url: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``pos-bridge relay`` as its own process, in the cluster; yields it and its port."""
    port = free_port()
    config = base / f"{name}.toml"
    config.write_text(
        f'[relay]\nport = {port}\noperator_token = "{OPERATOR_TOKEN}"\nlog_level = "warning"\n'
        f'venues_file = "venues.toml"\n[limits]\nheartbeat_interval_s = 1.0\n'
        f'[nats]\nurl = "{nats_url}"\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "relay", "--config", str(config)],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)

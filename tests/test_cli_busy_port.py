"""A port already taken is one line naming it and the key to change, exit code 1, no
traceback: for ``pos-bridge serve`` and ``pos-bridge relay`` (the demo has its own test)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import config_data
from tests.crash.process import to_toml


def _taken_port() -> socket.socket:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    return holder


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=60
    )


def test_serve_on_a_taken_port_says_so_in_one_line(tmp_path: Path) -> None:
    with _taken_port() as holder:
        port = holder.getsockname()[1]
        data = config_data(tmp_path)
        data["server"] = {"host": "127.0.0.1", "port": port}
        path = tmp_path / "bridge.toml"
        path.write_text(to_toml(data))
        result = _run("serve", "--config", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert f"the bridge cannot listen on 127.0.0.1:{port}" in line
    assert "[server] port" in line


def test_relay_on_a_taken_port_says_so_in_one_line(tmp_path: Path) -> None:
    with _taken_port() as holder:
        port = holder.getsockname()[1]
        path = tmp_path / "relay.toml"
        path.write_text(
            "[relay]\n"
            f'host = "127.0.0.1"\nport = {port}\n'
            'venues_file = "venues.toml"\n'
            f'operator_token = "{"o" * 32}"\n'
        )
        result = _run("relay", "--config", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert f"the relay cannot listen on 127.0.0.1:{port}" in line
    assert "[relay] port" in line

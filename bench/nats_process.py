"""``nats-server`` as a subprocess, for ``bench/relay.py``'s NATS-routed path.

Debian's ``nats-server`` (``/usr/sbin``, which a non-root ``PATH`` may lack), on a free
127.0.0.1 port, no persistence, killed at the end. When the binary is missing the bench
skips that path and says so. Standard library only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time


def nats_server_binary() -> str | None:
    return shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class NatsServer:
    """One ``nats-server -a 127.0.0.1 -p PORT`` until :meth:`stop`."""

    def __init__(self, binary: str) -> None:
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _accepts(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("nats-server did not start within 10 s")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

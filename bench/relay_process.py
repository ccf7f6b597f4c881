"""The relay as a subprocess for ``bench/relay.py``, its venues, and a process's memory.

- :func:`write_relay_config` writes a ``relay.toml`` (127.0.0.1, port 0, a venues file beside
  it); :func:`add_venue_cli` runs ``python -m bridge relay add-venue NAME --config …`` (the
  ``pos-bridge relay add-venue`` command) and returns the token it prints;
  :func:`write_bulk_venues` writes many venues at once in the same file format (for the idle
  tunnels, where 10,000 separate ``add-venue`` runs would each rewrite and fsync the file).
- :class:`Relay` runs ``python -m bridge relay --config …`` (``pos-bridge relay``) until
  :meth:`Relay.stop`, with its open-file limit raised (in the child, before exec).
- :func:`add_tunnel_section` appends the bridge's ``[tunnel]`` to a bench bridge config.
- :func:`rss_kib`, :func:`proc_cpu_s`, :func:`proc_user_system_s`: a process's resident and
  peak memory and CPU seconds (in all, or user and system), from ``/proc`` (the machine's CPU
  jiffies: ``bench.common.stat_fields``).
- :class:`Client`: one ``bench/idle_tunnels.py`` process and its ``READY``/``RESULT`` lines.

Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import queue
import resource
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import REPO, ServerProcess, child_env, user_system_seconds

OPERATOR_TOKEN = "bench-operator-token-0123456789abcdef"


def relay_has_rate_limit(python: str) -> bool:
    """Whether this relay has the per-venue ``[rate_limit]`` table (newer than the bench)."""
    done = subprocess.run(
        [python, "-c", "from relay.config import RateLimits"],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        timeout=60,
    )
    return done.returncode == 0


def write_relay_config(
    folder: Path,
    heartbeat_s: float = 20.0,
    log_level: str = "info",
    unlimited: bool = False,
    nats_url: str | None = None,
    venues_file: Path | None = None,
    fast_path: bool = True,
) -> Path:
    """``unlimited``: lift the per-venue request rate limit (``[rate_limit]``), which would
    otherwise answer 429 above its default (200/s): the bench measures the relay's capacity,
    not the limit. ``nats_url``: join that NATS server's cluster (``[nats]``, defaults
    otherwise). ``venues_file``: another relay's, so both know the same venues. ``fast_path``
    false: every public request through aiohttp's route (written only then, so a relay from
    before the key existed can be measured too)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "relay.toml"
    rate_limit = "\n[rate_limit]\nrequests_per_s = 1000000.0\nburst = 1000000\n"
    nats = f'\n[nats]\nurl = "{nats_url}"\n' if nats_url else ""
    path.write_text(
        "[relay]\n"
        'host = "127.0.0.1"\n'
        "port = 0\n"
        f"venues_file = {json.dumps(str(venues_file or 'venues.toml'))}\n"
        f'operator_token = "{OPERATOR_TOKEN}"\n'
        f'log_level = "{log_level}"\n'
        + ("" if fast_path else "fast_path = false\n")
        + "\n[limits]\n"
        f"heartbeat_interval_s = {heartbeat_s}\n" + (rate_limit if unlimited else "") + nats
    )
    return path


def add_venue_cli(python: str, config: Path, name: str) -> str:
    """``pos-bridge relay add-venue NAME --config …``; the token it prints once."""
    done = subprocess.run(
        [python, "-m", "bridge", "relay", "add-venue", name, "--config", str(config)],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1].strip()


def write_bulk_venues(venues_file: Path, names: list[str]) -> list[tuple[str, str]]:
    """Append ``names`` with fresh tokens, in ``relay/venues.py``'s format (the token's
    SHA-256 only); returns ``[(name, token), …]``."""
    added = datetime.now(UTC).isoformat(timespec="seconds")
    pairs = [(name, "pbv_" + secrets.token_urlsafe(32)) for name in names]
    old = venues_file.read_text(encoding="utf-8") if venues_file.exists() else ""
    entries = [
        f'\n[venues."{name}"]\ntoken_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
        f'added_at = "{added}"\n'
        for name, token in pairs
    ]
    venues_file.write_text(old + "".join(entries), encoding="utf-8")
    return pairs


def add_tunnel_section(config: Path, port: int, venue: str, token: str) -> None:
    with config.open("a") as f:
        f.write(
            "\n[tunnel]\n"
            f'url = "ws://127.0.0.1:{port}/tunnel"\n'
            f'venue = "{venue}"\n'
            f'token = "{token}"\n'
            "reconnect_max_s = 2.0\n"
        )


def rss_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of ``pid`` in KiB (zeros off Linux)."""
    out = {"rss_kib": 0, "peak_kib": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_kib"] = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                out["peak_kib"] = int(line.split()[1])
    except OSError:
        pass
    return out


def nofile_limits() -> dict[str, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"soft": soft, "hard": hard}


def _raise_nofile_in_child() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class Relay(ServerProcess):
    """``python -m bridge relay --config …`` until :meth:`stop`."""

    name = "relay"

    def __init__(self, python: str, config: Path) -> None:
        self.config = config
        argv = [python, "-m", "bridge", "relay", "--config", str(config)]
        super().__init__(argv, config.parent / "relay.log")

    def _popen_options(self) -> dict[str, Any]:
        return {"preexec_fn": _raise_nofile_in_child}

    def nofile(self) -> dict[str, int]:
        """The running relay's open-file limit, from ``/proc``."""
        try:
            for line in Path(f"/proc/{self.pid}/limits").read_text().splitlines():
                if line.startswith("Max open files"):
                    soft, hard = line.split()[3:5]
                    return {"soft": int(soft), "hard": int(hard)}
        except (OSError, ValueError):
            pass
        return {}

    def get(self, path: str, token: str = OPERATOR_TOKEN) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def wait_online(self, venue: str, timeout_s: float = 20.0) -> float:
        """Seconds until ``venue``'s tunnel is up (raises past ``timeout_s``)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            status, body = self.get(f"/venues/{venue}/health")
            if status == 200 and body and body.get("online"):
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"venue {venue} not online in {timeout_s}s:\n{self.log_tail()}")


def proc_user_system_s(pid: int) -> tuple[float, float]:
    """A process's user and system CPU seconds so far, zeros when it is gone."""
    try:
        return user_system_seconds(Path(f"/proc/{pid}/stat"))
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def proc_cpu_s(pid: int) -> float:
    """A process's user + system CPU seconds so far, zero when it is gone."""
    return sum(proc_user_system_s(pid))


class Client:
    """One fake-bridge process; its stdout lines read on a thread (so waits are bounded)."""

    def __init__(self, python: str, job: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [python, "-m", "bench.idle_tunnels", json.dumps(job)],
            cwd=REPO,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def wait_for(self, prefix: str, timeout_s: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if not line:
                return None
            if line.startswith(prefix + " "):
                found: dict[str, Any] = json.loads(line[len(prefix) + 1 :])
                return found
        return None

    def release(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

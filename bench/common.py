"""What the benchmarks share: the bridge, relay and ``nats-server`` as child processes, the
load generator's run, ``/proc`` CPU and memory readings, and the results file.

Every child runs from the repository root with it on ``PYTHONPATH``, under ``.venv/bin/python``
when that exists; a server is started until its "listening on" log line names its port and
stopped with SIGTERM. Standard library only.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
START_TIMEOUT_S = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

SECRET = "bench-loke-secret-0123456789abcdef"
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
OPERATOR_TOKEN = "bench-operator-token-0123456789abcdef"
TABLES = 999


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def python() -> str:
    """The interpreter for the bridge, the relay and anything importing them."""
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


# -- servers -----------------------------------------------------------------------------------


def _raise_nofile() -> None:
    """In the child before exec: the open-file limit up to the hard limit (10,000 tunnels)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (1 << 20 if hard == resource.RLIM_INFINITY else hard, hard)
        )


class Server:
    """``python -m bridge <command> --config CONFIG`` (``serve`` or ``relay``) from
    :meth:`start` until :meth:`stop`, its stderr in ``<config folder>/<name>.log``."""

    def __init__(self, name: str, command: str, config: Path) -> None:
        self.name, self.config = name, config
        self.argv = [python(), "-m", "bridge", command, "--config", str(config)]
        self.log_path = config.parent / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=REPO,
                env=child_env(),
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=_raise_nofile,
            )
        marker = " listening on http://127.0.0.1:"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if marker in text:
                self.port = int(text.split(marker, 1)[1].split()[0])
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_tail()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start in {START_TIMEOUT_S} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def get(self, path: str, token: str = OPERATOR_TOKEN) -> tuple[int, Any]:
        """A GET on the server with ``token``: the status and the JSON body (or ``None``)."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def bridge_config(folder: Path, locations: list[str]) -> Path:
    """``folder/bridge.toml``: one process, the in-memory simulator (``TABLES`` tables), one
    bearer location per name."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"[bridge]\ndata_dir = {json.dumps(str(folder / 'data'))}",
        f'admin_token = "{ADMIN_TOKEN}"\nlog_level = "info"\n',  # "listening on" gives the port
        '[server]\nhost = "127.0.0.1"\nport = 0\n',
        f'[drivers.sim]\nurl = "simulator:"\noptions = {{ tables = {TABLES} }}\n',
    ]
    for name in locations:
        lines.append(
            f'[locations.{name}]\ndriver = "sim"\npos_location = "{name}"\n'
            f'auth = {{ scheme = "bearer", secrets = ["{SECRET}"] }}\n'
        )
    path = folder / "bridge.toml"
    path.write_text("\n".join(lines))
    return path


def relay_config(
    folder: Path, heartbeat_s: float = 20.0, nats_url: str | None = None, venues: str = ""
) -> Path:
    """``folder/relay.toml`` on a free port, its per-venue rate limit lifted (the bench
    measures capacity, not the limit); ``nats_url``: join that cluster; ``venues``: another
    relay's venues file, so both know the same venues."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "relay.toml"
    path.write_text(
        f'[relay]\nhost = "127.0.0.1"\nport = 0\nlog_level = "info"\n'
        f"venues_file = {json.dumps(venues or 'venues.toml')}\n"
        f'operator_token = "{OPERATOR_TOKEN}"\n\n'
        f"[limits]\nheartbeat_interval_s = {heartbeat_s}\n\n"
        "[rate_limit]\nrequests_per_s = 1000000.0\nburst = 1000000\n"
        + (f'\n[nats]\nurl = "{nats_url}"\n' if nats_url else "")
    )
    return path


def add_venue(config: Path, name: str) -> str:
    """``pos-bridge relay add-venue NAME --config …``; the token it prints once."""
    done = subprocess.run(
        [python(), "-m", "bridge", "relay", "add-venue", name, "--config", str(config)],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1].strip()


class NatsServer:
    """Debian's ``nats-server`` (in ``/usr/sbin``, which a user's ``PATH`` may lack) on a free
    127.0.0.1 port until :meth:`stop`; :meth:`find` is ``None`` when it is not installed."""

    @staticmethod
    def find() -> str | None:
        return shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")

    def __init__(self, binary: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port: int = s.getsockname()[1]
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("nats-server did not start within 10 s")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


# -- the load generator ------------------------------------------------------------------------


def run_generator(
    job: dict[str, Any], timeout_s: float, snapshot: Callable[[], dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``python -m bench.loadgen JOB`` (killed after ``timeout_s``); its ``MARK start`` and
    ``MARK end`` lines answered with ``snapshot()``. Returns its ``RESULT`` and the two
    snapshots, or raises when it printed them not."""
    proc = subprocess.Popen(
        [python(), "-m", "bench.loadgen", json.dumps(job)],
        cwd=REPO,
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    killer = threading.Timer(timeout_s, proc.kill)
    killer.start()
    snaps: dict[str, dict[str, Any]] = {}
    result: dict[str, Any] | None = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("MARK "):
                snaps[line.split()[1]] = snapshot()
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
        proc.wait(30)
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
    if result is None or {"start", "end"} - snaps.keys():
        raise RuntimeError(f"load generator failed (exit {proc.returncode})")
    return result, snaps["start"], snaps["end"]


# -- /proc and the machine ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU seconds so far (zero when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_jiffies() -> list[int]:
    """The machine's CPU jiffies: user nice system idle iowait irq softirq steal."""
    try:
        return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return [0] * 8


def others_pct(before: list[int], after: list[int], ours_pct: float) -> float:
    """CPU % (of one core) the machine spent on neither us nor irq/softirq nor steal: other
    tenants' work, which lowers every figure of a run."""
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta)
    if not total:
        return 0.0
    scale = 100 * (os.cpu_count() or 1) / total
    busy = total - delta[3] - delta[4] - delta[5] - delta[6] - delta[7]
    return round(max(0.0, busy * scale - ours_pct), 1)


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def commit() -> str:
    """The commit measured, ``+dirty`` when bridge/ or drivers/ have uncommitted edits."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    dirty = git("status", "--porcelain", "--", "bridge", "drivers")
    return (git("rev-parse", "--short", "HEAD") or "?") + ("+dirty" if dirty else "")


def write_results(report: dict[str, Any], name: str) -> Path:
    """``report`` as ``bench/results/<name>-<timestamp>.json`` (git-ignored)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {out.relative_to(REPO)}")
    return out


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)

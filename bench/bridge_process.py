"""The bridge as a subprocess for the benchmarks, and what a run records about its machine.

- :func:`write_config` writes a bridge config (``bench.toml``) with the in-memory simulator POS
  (``tables = 999``) and one bearer-authenticated location per name; :func:`level_location`
  names a concurrency level's location.
- :class:`Bridge` runs ``python -m bench.serve_counted --config …`` (or ``python -m bridge serve
  --config …`` with ``plain``) until :meth:`Bridge.stop`, and reads its group-commit counters
  (``SIGUSR1``), toggles its cProfile (``SIGUSR2``) and reads its CPU time per thread.
- :func:`machine_cpu`, :func:`mount_of` and :func:`code_version`: the whole machine's CPU, the
  filesystem a folder lives on, and the commit measured.

Standard library only, like every bench module; used by ``bench/payments.py`` and
``bench/profile.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

SECRET = "bench-loke-secret-0123456789abcdef"
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
TABLES = 999
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# -- the config --------------------------------------------------------------------------------


def level_location(concurrency: int, index: int) -> str:
    return f"bench-{index}-c{concurrency}"


def write_config(folder: Path, locations: list[str], port: int = 0) -> Path:
    lines = [
        "[bridge]",
        f"data_dir = {json.dumps(str(folder / 'data'))}",
        f'admin_token = "{ADMIN_TOKEN}"',
        'log_level = "info"',  # the "listening on" line gives the port
        "",
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "",
        "[drivers.sim]",
        'url = "simulator:"',
        f"options = {{ tables = {TABLES} }}",
        "",
    ]
    for name in locations:
        lines += [
            f"[locations.{name}]",
            'driver = "sim"',
            f'pos_location = "{name}"',
            f'auth = {{ scheme = "bearer", secrets = ["{SECRET}"] }}',
            "",
        ]
    path = folder / "bench.toml"
    path.write_text("\n".join(lines))
    return path


def bridge_python(explicit: str | None) -> str:
    if explicit:
        return explicit
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


# -- the bridge process ------------------------------------------------------------------------


class Bridge:
    """``python -m bench.serve_counted`` (or ``-m bridge serve``) until :meth:`stop`."""

    def __init__(
        self,
        python: str,
        config: Path,
        folder: Path,
        plain: bool,
        switch_interval: float | None = None,
    ) -> None:
        self.folder = folder
        self.log_path = folder / "bridge.log"
        self.counters_path = folder / "counters.json"
        self.cprofile_path = folder / "bridge.cprofile"
        self.plain = plain
        if plain:
            self.argv = [python, "-m", "bridge", "serve", "--config", str(config)]
        else:
            self.argv = [
                python,
                "-m",
                "bench.serve_counted",
                "--config",
                str(config),
                "--counters",
                str(self.counters_path),
                "--cprofile",
                str(self.cprofile_path),
            ]
            if switch_interval is not None:
                self.argv += ["--switch-interval", str(switch_interval)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._seq = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv, cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL, stderr=log
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        marker = "bridge listening on http://127.0.0.1:"
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if marker in text:
                self.port = int(text.split(marker, 1)[1].split()[0])
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"bridge exited ({self.proc.returncode}):\n{self.log_tail()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"bridge did not start in {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def counters(self) -> dict[str, Any] | None:
        """Group-commit counters, now (``None`` with ``--plain-bridge``)."""
        if self.plain or self.proc is None or self.proc.poll() is not None:
            return None
        self._seq += 1
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                data: dict[str, Any] = json.loads(self.counters_path.read_text())
                if data["seq"] >= self._seq:
                    self._seq = data["seq"]
                    return data
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.002)
        return None

    def toggle_cprofile(self) -> None:
        if not self.plain:
            os.kill(self.pid, signal.SIGUSR2)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: the main (event-loop) thread, the other threads, all."""
        main = other = 0.0
        task_dir = Path(f"/proc/{self.pid}/task")
        try:
            for task in task_dir.iterdir():
                try:
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                seconds = (int(fields[11]) + int(fields[12])) / CLK_TCK
                if task.name == str(self.pid):
                    main += seconds
                else:
                    other += seconds
        except OSError:
            pass
        return {"main": main, "other": other, "total": main + other}

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# -- the machine and the code measured ---------------------------------------------------------


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat (zeros elsewhere)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return float(total - idle), float(total)


def mount_of(path: Path) -> dict[str, str]:
    """The filesystem ``path`` lives on (Linux), so a tmpfs is not mistaken for a disk."""
    best = {"mount": "?", "device": "?", "fstype": "?"}
    resolved = str(path.resolve())
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, fstype = line.split()[:3]
            inside = resolved == mount or resolved.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best["mount"].replace("?", "")):
                best = {"mount": mount, "device": device, "fstype": fstype}
    except OSError:
        pass
    return best


def code_version() -> dict[str, Any]:
    """The commit measured, and whether bridge/ or drivers/ had uncommitted edits."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    dirty = git("status", "--porcelain", "--", "bridge", "drivers")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_files": dirty.count("\n") + 1 if dirty else 0,
    }

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

from bench.common import REPO, ServerProcess, cpu_seconds, stat_fields

SECRET = "bench-loke-secret-0123456789abcdef"
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
TABLES = 999


# -- the config --------------------------------------------------------------------------------


def level_location(concurrency: int, index: int) -> str:
    return f"bench-{index}-c{concurrency}"


def write_config(folder: Path, locations: list[str], port: int = 0, workers: int = 0) -> Path:
    lines = [
        "[bridge]",
        f"data_dir = {json.dumps(str(folder / 'data'))}",
        f'admin_token = "{ADMIN_TOKEN}"',
        'log_level = "info"',  # the "listening on" line gives the port
        "",
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        f"workers = {workers}",
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


# -- the bridge process ------------------------------------------------------------------------


class Bridge(ServerProcess):
    """``python -m bench.serve_counted`` (or ``-m bridge serve``) until :meth:`stop`."""

    name = "bridge"

    def __init__(
        self,
        python: str,
        config: Path,
        folder: Path,
        plain: bool,
        switch_interval: float | None = None,
    ) -> None:
        self.folder = folder
        self.counters_path = folder / "counters.json"
        self.cprofile_path = folder / "bridge.cprofile"
        self.plain = plain
        if plain:
            argv = [python, "-m", "bridge", "serve", "--config", str(config)]
        else:
            argv = [
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
                argv += ["--switch-interval", str(switch_interval)]
        super().__init__(argv, folder / "bridge.log")
        self._seq = 0

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
        """CPU seconds so far: the main (event-loop) thread, the other threads, the HTTP
        worker processes (``[server] workers``), all."""
        main = other = workers = 0.0
        task_dir = Path(f"/proc/{self.pid}/task")
        try:
            for task in task_dir.iterdir():
                try:
                    seconds = cpu_seconds(task / "stat")
                except OSError:
                    continue
                if task.name == str(self.pid):
                    main += seconds
                else:
                    other += seconds
        except OSError:
            pass
        for child in child_pids(self.pid):
            try:
                workers += cpu_seconds(Path(f"/proc/{child}/stat"))
            except OSError:
                continue
        return {"main": main, "other": other, "workers": workers, "total": main + other + workers}


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (its HTTP workers), from ``/proc``."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


# -- the machine and the code measured ---------------------------------------------------------


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat (zeros elsewhere)."""
    fields = stat_fields()
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

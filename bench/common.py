"""What the bench drivers share: child processes, and ``/proc`` readings.

- :func:`child_env`: the environment for a child process (the repository on ``PYTHONPATH``).
- :class:`ServerProcess`: a server subprocess (the bridge, the relay) with its stderr in a log
  file, started until its "listening on" line names the port, and stopped with ``SIGTERM``.
- :func:`run_generator`: a load-generator process (``bench/loadgen.py``, ``bench/openloop.py``)
  whose ``MARK start``/``MARK end`` lines are answered with snapshots, and its ``RESULT`` line.
- :func:`stat_fields`, :func:`cpu_seconds`, :func:`user_system_seconds`: the machine's CPU
  jiffies and a process's (or thread's) CPU seconds, in all or split user/system, from
  ``/proc``.
- :func:`write_results`: a run's JSON file in ``bench/results/``.

Standard library only, like every bench module.
"""

from __future__ import annotations

import json
import os
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
STOP_TIMEOUT_S = 20.0
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


# -- a server subprocess ----------------------------------------------------------------------


class ServerProcess:
    """``argv`` (stderr to ``log_path``) from :meth:`start` until :meth:`stop`; ``name`` is what
    its log calls it (``"<name> listening on http://127.0.0.1:PORT"``) and its errors say."""

    name = "server"

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _popen_options(self) -> dict[str, Any]:
        """Extra ``subprocess.Popen`` arguments (e.g. a ``preexec_fn``)."""
        return {}

    def start(self) -> None:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
            **self._popen_options(),
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        marker = f"{self.name} listening on http://127.0.0.1:"
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if marker in text:
                self.port = int(text.split(marker, 1)[1].split()[0])
                return
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}"
                )
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start in {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # SIGTERM
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# -- a load generator -------------------------------------------------------------------------


def run_generator(
    module: str,
    job: dict[str, Any],
    timeout_s: float,
    snapshot: Callable[[str], dict[str, Any]],
) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]], int | None]:
    """``python -m <module> <job as JSON>``, killed after ``timeout_s``: each ``MARK <name>``
    line it prints is answered by ``snapshot(name)``. Returns its ``RESULT`` (``None`` if it
    printed none), the snapshots by name, and its exit code."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, json.dumps(job)],
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
        for line in proc.stdout:  # ends when the generator exits (or the timer kills it)
            if line.startswith("MARK "):
                name = line.split()[1]
                snaps[name] = snapshot(name)
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
        proc.wait(30)
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
    return result, snaps, proc.returncode


# -- /proc ------------------------------------------------------------------------------------


def stat_fields() -> list[int]:
    """The machine's CPU jiffies: user nice system idle iowait irq softirq steal."""
    try:
        return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return [0] * 8


def user_system_seconds(stat_path: Path) -> tuple[float, float]:
    """User and system CPU seconds from a ``/proc/<pid>/stat`` or ``…/task/<tid>/stat`` file
    (``OSError`` when it is gone): the system share is the kernel's work (socket syscalls),
    which callgrind does not count."""
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(stat_path: Path) -> float:
    """User + system CPU seconds (see :func:`user_system_seconds`)."""
    return sum(user_system_seconds(stat_path))


# -- results ----------------------------------------------------------------------------------


def write_results(report: dict[str, Any], name: str) -> Path:
    """``report`` as ``bench/results/<name>.json`` (the folder made if need be), and says so
    (with how long the run took when the report has ``run_seconds``)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    took = f" (run took {report['run_seconds']} s)" if "run_seconds" in report else ""
    print(f"results: {out.relative_to(REPO)}{took}")
    return out

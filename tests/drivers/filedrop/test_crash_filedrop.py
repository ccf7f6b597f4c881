"""The payment spine's crash test (``tests/test_crash.py``) with the file-drop driver in place
of the simulator: real processes, real folder.

The bridge (``python -m bridge serve``, killed with SIGKILL at random moments and restarted)
reaches the POS through ``file://<tmp>/drop``; the POS is the emulator in its own process
(``python -m bridge pos-emulator``), its bills in a SQLite file that outlives everything. The
POS is switched away and back through the emulator's control API instead of the simulator's
modes: ``offline`` is a reboot (no request is taken, so each is withdrawn: not delivered),
``failing`` is ``silent`` (requests taken, never answered: outcome unknown), ``lossy`` is
``drop_replies`` (carried out, answer lost). The load, the kills and every check afterwards
are those of ``tests/test_crash.py``: each 2xx payment on the POS exactly once, no refused
or unknown one, every bill adding up, every audit trail unbroken.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.platforms.loke import PLATFORM
from tests.conftest import config_data
from tests.crash.load import CUT, CrashLoad, admin_json, plan_payments, until
from tests.crash.process import HOST, REPO, BridgeProcess, free_port, to_toml
from tests.crash.verify import check_bridge, check_pos
from tests.test_crash import (
    LOAD_BUDGET_S,
    MIN_KILLS,
    POS_LOCATION,
    TABLES,
    WINDOW_S,
    fetch_all_bills,
    summary,
)

SEED = int(os.environ.get("CRASH_SEED", "7301"))
POS_DELAY_MS = 2  # the emulator takes one request at a time: keep each one short
DRIVER_OPTIONS = {"timeout_ms": 400, "write_timeout_ms": 800}

#: The simulator's modes as emulator faults (each sets every fault, so each is absolute).
FAULTS: dict[str, tuple[dict[str, Any], float]] = {
    "online": ({"silent": False, "drop_replies": False}, 0),
    "offline": ({"silent": False, "drop_replies": False}, 600),
    "failing": ({"silent": True, "drop_replies": False}, 0),
    "lossy": ({"silent": False, "drop_replies": True}, 0),
}


class EmulatorProcess:
    """``pos-bridge pos-emulator file://…`` with its control API, until :meth:`stop`."""

    def __init__(self, folder: Path, state: Path, log: Path) -> None:
        self.control_port = free_port()
        self._log = open(log, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "pos-emulator", f"file://{folder}",
             "--state", str(state), "--tables", str(TABLES),
             "--control-port", str(self.control_port)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self._log,
        )  # fmt: skip
        self.control = f"http://{HOST}:{self.control_port}"

    async def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), 30)
        assert line.startswith(b"POS emulator ready"), line

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


class EmulatedPosLoad(CrashLoad):
    """The crash load, switching the emulator instead of the simulator."""

    def __init__(self, emulator: EmulatorProcess, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.emulator = emulator

    async def set_pos(self, mode: str) -> bool:
        faults, reboot_s = FAULTS[mode]
        try:
            async with self.session.put(
                f"{self.emulator.control}/faults", json={**faults, "delay_ms": POS_DELAY_MS}
            ) as response:
                if response.status != 200:
                    self._problem(f"emulator faults {mode}: {response.status}")
                    return False
            async with self.session.post(
                f"{self.emulator.control}/reboot", json={"seconds": reboot_s}
            ) as response:
                return response.status == 200
        except CUT:
            return False


def write_config(tmp_path: Path, port: int, folder: Path) -> Path:
    data = config_data(tmp_path)
    data["server"] = {"host": HOST, "port": port}
    data["drivers"] = {"main": {"url": f"file://{folder}", "options": DRIVER_OPTIONS}}
    data["outbox"] = {"retry_initial_s": 0.05, "retry_max_s": 0.2, "idle_poll_s": 0.05}
    data["health"] = {"probe_interval_s": 0.2}
    path = tmp_path / "bridge.toml"
    path.write_text(to_toml(data))
    return path


@pytest.mark.timeout(300)
async def test_payments_survive_kill_9_and_pos_outages_over_file_drop(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    folder, sim_path = tmp_path / "drop", tmp_path / "pos.sqlite3"
    emulator = EmulatorProcess(folder, sim_path, tmp_path / "emulator.log")
    port = free_port()
    bridge = BridgeProcess(write_config(tmp_path, port, folder), port, tmp_path / "bridge.log")
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        await emulator.wait_ready()
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=15, sock_connect=2),
            connector=aiohttp.TCPConnector(limit=200),
        ) as session:
            bridge.start()
            await bridge.wait_ready(session)
            load = EmulatedPosLoad(
                emulator, bridge, session, SEED, deadline=loop.time() + LOAD_BUDGET_S
            )
            assert await load.set_pos("online")
            plan = plan_payments(rng, SEED, await fetch_all_bills(load), WINDOW_S)
            assert sum(len(b.payments) for b in plan) >= 300

            stop = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                group.create_task(load.flip_pos(random.Random(f"{SEED}:pos"), stop))
                killer = group.create_task(
                    load.kill_and_restart(random.Random(f"{SEED}:kill"), rng.randint(6, 7))
                )
                try:
                    await load.launch(plan, reserve=len(plan) // 8)
                    await killer
                finally:
                    stop.set()

            async def online() -> bool:
                return await load.set_pos("online")

            async def drained() -> bool:
                status = await admin_json(session, bridge, "/api/status")
                return bool(status["queue"]["depth"] == 0)

            await until(online, 10, f"seed {SEED}: switching the POS online")
            await until(drained, 30, f"seed {SEED}: draining the outbox")
            status = await admin_json(session, bridge, "/api/status")
            assert await bridge.stop() == 0, f"seed {SEED}: unclean stop\n{bridge.log_tail()}"
    except BaseException:
        print(f"file-drop crash test seed {SEED} failed\n{bridge.log_tail()}")
        raise
    finally:
        bridge.close()
        emulator.stop()
    elapsed = loop.time() - began

    answers = load.ledger.answers
    problems = list(load.ledger.problems)
    missing = sorted({p.id for b in plan for p in b.payments} - set(answers))
    problems += [f"{payment_id}: never answered" for payment_id in missing]
    if status["needsAttention"]:
        problems.append(f"bridge: {status['needsAttention']} payment(s) need attention")
    pos_problems, pos_sequence = check_pos(sim_path, POS_LOCATION, plan, answers)
    problems += pos_problems
    problems += check_bridge(tmp_path / "data" / "bridge.sqlite3", PLATFORM, answers, pos_sequence)
    if load.kills_with_posts_in_flight < MIN_KILLS:
        problems.append(f"only {load.kills_with_posts_in_flight} kill(s) with payments in flight")
    if not load.flips["offline"]:
        problems.append("the POS was never switched offline")
    report = summary(load, plan, elapsed)
    print(report)
    assert not problems, (
        f"seed {SEED} (rerun with CRASH_SEED={SEED}): {len(problems)} problem(s)\n"
        + "\n".join(problems[:40])
        + f"\n{report}"
    )

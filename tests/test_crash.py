"""Crash test, real processes.

The bridge runs as a subprocess (``python -m bridge serve``) with the simulated POS kept in a
SQLite file, so the POS outlives every kill. A client sends a few hundred payments over many
bills (splits, partial payments, rivals over-claiming one bill, latecomers to a paid bill,
resends and twins with the same id, several payers of one bill at once) while the POS is
switched offline and online (offline is sometimes ``failing``, errors, or ``lossy``, a payment
applied but its answer lost), and the bridge is killed with SIGKILL at random moments (with
payments in flight) at least five times and restarted. A request cut by a kill is sent again,
same id and body, until it gets an answer.

Afterwards, from the POS's own file: every payment answered 2xx is on the POS exactly once
(right bill, amount and tip), none answered 4xx is, nothing unknown is, and every bill adds
up (balance = total - payments, closed iff the balance is 0, and equal to what the client's
2xx answers imply). From the bridge's file: every 2xx payment is ``applied`` with the POS's
reference, the replay records match the answers, and every audit trail is an unbroken chain.

The same run is repeated with each real driver in place of the simulator (one per scheme in
``drivers/emulator/run.py`` ``SERVERS``; skipped until its emulator server is merged): the POS
is then ``pos-bridge pos-emulator`` in its own process, keeping its bills in a simulator
state file that the verification reads the same way; the bridge's ``[drivers.main]`` is the
driver URL the emulator prints, and the POS is switched through the emulator's control API
(``offline`` = silent, ``failing`` = reboot, ``lossy`` = replies dropped). It is never
restarted: only the bridge is killed.

``CRASH_SEED=<n> pytest tests/test_crash.py -s`` replays a scenario (timing still varies) and
prints a summary.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest

from bridge.config import load_config
from bridge.platforms.loke import PLATFORM
from tests.conftest import config_data
from tests.crash.load import (
    CrashLoad,
    EmulatorSwitch,
    PosSwitch,
    SimulatorSwitch,
    admin_json,
    until,
)
from tests.crash.plan import Answer, PlannedBill, plan_payments
from tests.crash.process import HOST, BridgeProcess, EmulatorProcess, free_port, to_toml
from tests.crash.verify import check_bridge, check_pos
from tests.emulators import emulated_schemes, emulator_url

SEED = int(os.environ.get("CRASH_SEED", "7301"))
TABLES = 160  # one open bill each: 1–4 payers per bill gives well over 300 payments
POS_LOCATION = "1"  # LOCATION's location on the simulated POS (see tests/conftest.py)
WINDOW_S = 12.0  # bills start at random moments over this many seconds
LOAD_BUDGET_S = 60.0  # no payer retries past this; the test fails instead (a run takes ~15s)
POS_LATENCY_MS = 20  # every POS call takes a moment, so kills and switches land mid-call
MIN_KILLS = 5
# Over a wire driver every call shares one link (a serial line answers one request at a
# time), so the POS is quicker and the reply timeout longer than the simulator's latency
# would suggest: a silent POS costs REPLY_TIMEOUT_MS per call, a busy one must not time out.
EMULATOR_LATENCY_MS = 5
REPLY_TIMEOUT_MS = 500


@dataclass(frozen=True, slots=True)
class Scenario:
    """How big a run is: tables (one open bill each), the window bills start in, the fewest
    payments the plan must hold, and how many times the bridge is killed."""

    tables: int
    window_s: float
    min_payments: int
    kills: tuple[int, int]


SIMULATOR = Scenario(TABLES, WINDOW_S, 300, (6, 7))
# Over a wire driver the same promises hold at the same size: at least 300 payments and five
# kills (the spine's acceptance line), on a few fewer bills started over a shorter window,
# since a silent POS costs a reply timeout per call and a restart waits for a health probe.
EMULATED = Scenario(140, 10.0, 300, (MIN_KILLS, MIN_KILLS + 1))


def write_config(tmp_path: Path, port: int, driver: dict[str, Any]) -> Path:
    data = config_data(tmp_path)
    data["server"] = {"host": HOST, "port": port}
    data["drivers"] = {"main": driver}
    data["outbox"] = {"retry_initial_s": 0.05, "retry_max_s": 0.2, "idle_poll_s": 0.05}
    data["health"] = {"probe_interval_s": 0.1}
    path = tmp_path / "bridge.toml"
    path.write_text(to_toml(data))
    config = load_config(path, {})  # the file says what we meant
    assert config.server.port == port and config.drivers["main"].url == urlsplit(driver["url"])
    return path


async def fetch_all_bills(load: CrashLoad, tables: int) -> dict[int, dict[str, Any]]:
    """Every table's open bill before the load: the plan splits these balances."""
    gate = asyncio.Semaphore(16)

    async def one(table: int) -> tuple[int, dict[str, Any] | None]:
        async with gate:
            return table, await load.fetch_bill(table)

    fetched = await asyncio.gather(*(one(t) for t in range(1, tables + 1)))
    bills = {table: bill for table, bill in fetched if bill is not None}
    assert len(bills) == tables, f"seed {SEED}: {load.ledger.problems}"
    assert all(b["balance"] == b["total"] > 0 and not b["payments"] for b in bills.values())
    return bills


def summary(load: CrashLoad, plan: list[PlannedBill], elapsed: float) -> str:
    tables = len(plan)
    answers: dict[str, Answer] = load.ledger.answers
    planned = sum(len(b.payments) for b in plan)
    by_status = Counter(a.status for a in answers.values())
    refusals = Counter(
        f"{a.status} {a.body.get('error')}" for a in answers.values() if a.status >= 400
    )
    kinds = {p.id: b.kind for b in plan for p in b.payments}
    refused_by_kind = Counter(kinds[i] for i, a in answers.items() if a.status >= 400)
    events = load.ledger.events
    restart = sum(load.restart_s) / len(load.restart_s) if load.restart_s else 0.0
    return (
        f"crash test seed {SEED}: {planned} payments on {tables} bills in {elapsed:.1f}s;"
        f" 201={by_status[201]} 202={by_status[202]}"
        f" 4xx={sum(n for s, n in by_status.items() if 400 <= s < 500)} {dict(refusals)}"
        f" by bill kind {dict(refused_by_kind)};"
        f" kills={load.kills} (with payments in flight: {load.kills_with_posts_in_flight},"
        f" requests cut: {events['post cut']} POST / {events['get cut']} GET,"
        f" restart {restart:.2f}s avg); POS switched offline={load.flips['offline']}"
        f" failing={load.flips['failing']} lossy={load.flips['lossy']}"
        f" online={load.flips['online']}; POST 503={events['post 503']}"
        f" 409 in_progress={events['409 in_progress']} resends={events['resends']}"
    )


@pytest.mark.timeout(240)
async def test_payments_survive_kill_9_and_pos_outages(tmp_path: Path) -> None:
    sim_path = tmp_path / "sim.sqlite3"
    options = {"tables": TABLES, "latency_ms": POS_LATENCY_MS}
    driver = {"url": f"simulator://{sim_path}", "options": options}
    await crash_run(tmp_path, driver, sim_path, SimulatorSwitch, SIMULATOR)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("scheme", emulated_schemes())
async def test_payments_survive_kill_9_and_pos_outages_over_a_real_driver(
    tmp_path: Path, scheme: str
) -> None:
    """The same, with the POS an emulator process behind the ``scheme`` driver: switched
    silent, rebooted or losing its replies through its control API, never restarted, and
    checked from its simulator state file afterwards."""
    sim_path = tmp_path / "sim.sqlite3"
    url = emulator_url(scheme, tmp_path / "pos-folder")
    emulator = EmulatorProcess(url, sim_path, EMULATED.tables, tmp_path / "emulator.log")
    try:
        emulator.start()
        driver = {"url": await emulator.driver_url(), "options": {"timeout_ms": REPLY_TIMEOUT_MS}}
        switch = EmulatorSwitch(emulator.control_url, EMULATOR_LATENCY_MS)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

            async def latency_on() -> bool:
                try:
                    return await switch.set(session, "online") is None
                except (aiohttp.ClientError, TimeoutError):
                    return False

            await until(latency_on, 10, "the emulator's control API")
        await crash_run(tmp_path, driver, sim_path, lambda bridge: switch, EMULATED)
    except BaseException:
        print(emulator.log_tail())
        raise
    finally:
        emulator.close()


async def crash_run(
    tmp_path: Path,
    driver: dict[str, Any],
    sim_path: Path,
    make_switch: Callable[[BridgeProcess], PosSwitch],
    scenario: Scenario,
) -> None:
    """The scenario of the module docstring with ``driver`` as the bridge's only driver;
    ``sim_path`` is the simulator state file the POS keeps its bills and payments in."""
    rng = random.Random(SEED)
    port = free_port()
    config_path = write_config(tmp_path, port, driver)
    bridge = BridgeProcess(config_path, port, tmp_path / "bridge.log")
    switch = make_switch(bridge)
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=15, sock_connect=2),
            connector=aiohttp.TCPConnector(limit=200),
        ) as session:
            bridge.start()
            await bridge.wait_ready(session)
            load = CrashLoad(
                bridge, session, SEED, deadline=loop.time() + LOAD_BUDGET_S, switch=switch
            )
            bills = await fetch_all_bills(load, scenario.tables)
            plan = plan_payments(rng, SEED, bills, scenario.window_s)
            planned = sum(len(b.payments) for b in plan)
            assert planned >= scenario.min_payments, f"seed {SEED}: only {planned} planned"

            stop = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                group.create_task(load.flip_pos(random.Random(f"{SEED}:pos"), stop))
                kills = rng.randint(*scenario.kills)
                killer = group.create_task(
                    load.kill_and_restart(random.Random(f"{SEED}:kill"), kills)
                )
                try:
                    await load.launch(plan, reserve=len(plan) // 8)
                    await killer
                finally:
                    stop.set()

            # The POS is back for good: everything queued must reach it.
            async def online() -> bool:
                return await load.set_pos("online")

            async def drained() -> bool:
                status = await admin_json(session, bridge, "/api/status")
                return bool(status["queue"]["depth"] == 0)

            await until(online, 10, f"seed {SEED}: switching the POS online")
            await until(drained, 20, f"seed {SEED}: draining the outbox")
            status = await admin_json(session, bridge, "/api/status")
            assert await bridge.stop() == 0, f"seed {SEED}: unclean stop\n{bridge.log_tail()}"
    except BaseException:
        print(f"crash test seed {SEED} failed\n{bridge.log_tail()}")
        raise
    finally:
        bridge.close()
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
        problems.append(
            f"only {load.kills_with_posts_in_flight} kill(s) with payments in flight,"
            f" {MIN_KILLS} needed"
        )
    if not load.flips["offline"]:
        problems.append("the POS was never switched offline")

    report = summary(load, plan, elapsed)
    print(report)
    assert not problems, (
        f"seed {SEED} (rerun with CRASH_SEED={SEED}): {len(problems)} problem(s)\n"
        + "\n".join(problems[:40])
        + f"\n{report}"
    )

"""The crash test's client side: payers, the POS switch, and the killer (the plan: plan.py).

Everything talks HTTP to the bridge process on 127.0.0.1, as LOKE and a technician would.
Payers never give up on a request that got no answer: the same id and body are sent again
until an HTTP answer comes back, which is what the bridge's durability promise is about.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from tests.conftest import ADMIN_AUTH, LOKE_AUTH, loke_url, payment_body
from tests.crash.plan import Answer, PlannedBill, PlannedPayment
from tests.crash.process import BridgeProcess

#: Refusals a payer may legitimately get for good (its bill was paid or closed by others).
FINAL_REFUSALS = frozenset(
    {(409, "bill_closed"), (409, "bill_changed"), (422, "amount_exceeds_balance")}
)

CUT = (aiohttp.ClientError, TimeoutError)  # no HTTP answer: the request must be sent again
#: 503s a platform retries: the POS is away, or the bridge restarts.
RETRY_LATER = frozenset({"pos_offline", "bridge_restarting"})


@dataclass
class Ledger:
    """What the client saw: one final answer per payment id, and everything odd."""

    answers: dict[str, Answer] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    posts_in_flight: int = 0


class PosSwitch(Protocol):
    """Switches the POS ``online`` or away (``offline``, ``failing``, ``lossy``).

    ``set`` returns a problem to report, or ``None``; it raises a ``CUT`` error when its
    request got no answer. ``resets_on_restart``: a bridge restart brings the POS back
    online (true of the simulator inside the bridge, not of a POS in its own process).
    """

    resets_on_restart: bool

    async def set(self, session: aiohttp.ClientSession, mode: str) -> str | None: ...


class SimulatorSwitch:
    """The simulator driver's modes, through the bridge's admin API."""

    resets_on_restart = True

    def __init__(self, bridge: BridgeProcess) -> None:
        self.bridge = bridge

    async def set(self, session: aiohttp.ClientSession, mode: str) -> str | None:
        async with session.post(
            f"{self.bridge.base_url}/api/drivers/main/simulator",
            json={"mode": mode},
            headers=ADMIN_AUTH,
        ) as response:
            text = await response.text()
            if response.status != 200:
                return f"switching the POS {mode}: {response.status} {text[:300]}"
            return None


class EmulatorSwitch:
    """The POS emulator's faults, through its control API: ``offline`` is silent (it hangs),
    ``failing`` a reboot (connections cut, nothing accepted for a moment), ``lossy`` drops
    its replies after carrying requests out. Every reply is ``latency_ms`` late throughout."""

    resets_on_restart = False
    REBOOT_S = 0.5

    def __init__(self, control_url: str, latency_ms: int) -> None:
        self.control_url = control_url
        self.latency_ms = latency_ms

    async def set(self, session: aiohttp.ClientSession, mode: str) -> str | None:
        if mode == "failing":
            return await self._send(session, "POST", "/reboot", {"seconds": self.REBOOT_S})
        faults = {
            "online": {"silent": False, "drop_replies": False, "delay_ms": self.latency_ms},
            "offline": {"silent": True},
            "lossy": {"drop_replies": True},
        }[mode]
        return await self._send(session, "PUT", "/faults", faults)

    async def _send(
        self, session: aiohttp.ClientSession, method: str, path: str, body: dict[str, Any]
    ) -> str | None:
        async with session.request(method, self.control_url + path, json=body) as response:
            if response.status != 200:
                return f"emulator {method} {path}: {response.status} {await response.text()}"
            return None


class CrashLoad:
    def __init__(
        self,
        bridge: BridgeProcess,
        session: aiohttp.ClientSession,
        seed: int,
        deadline: float,
        switch: PosSwitch | None = None,
    ) -> None:
        self.bridge = bridge
        self.session = session
        self.seed = seed
        self.switch: PosSwitch = switch or SimulatorSwitch(bridge)
        self.deadline = deadline  # loop time after which nobody retries any more
        self.ledger = Ledger()
        self.kills = 0
        self.kills_with_posts_in_flight = 0
        self.restart_s: list[float] = []
        self.flips: Counter[str] = Counter()
        self.generation = 0  # bumped by every restart: the simulated POS is online again
        self.killer_done = asyncio.Event()

    # -- helpers -----------------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _problem(self, text: str) -> None:
        self.ledger.problems.append(text)

    def _late(self) -> bool:
        return self._now() > self.deadline

    # -- payers ------------------------------------------------------------------------------

    async def fetch_bill(self, table: int) -> dict[str, Any] | None:
        """The table's open bill; ``None`` once it has none. Retries 503 and cut requests."""
        url = self.bridge.base_url + loke_url(table)
        while not self._late():
            try:
                async with self.session.get(url, headers=LOKE_AUTH) as response:
                    status, text = response.status, await response.text()
            except CUT:
                self.ledger.events["get cut"] += 1
                await asyncio.sleep(0.05)
                continue
            body = _json(text)
            if status == 200 and body is not None:
                return body
            if status == 503 and body and body.get("error") in RETRY_LATER:
                self.ledger.events["get 503"] += 1
                await asyncio.sleep(0.05)
                continue
            if status == 404 and body and body.get("error") == "no_open_bill":
                return None
            self._problem(f"GET bill of table {table}: unexpected {status} {text[:300]}")
            return None
        self._problem(f"GET bill of table {table}: no answer before the deadline")
        return None

    async def post_until_final(self, payment: PlannedPayment, body: dict[str, Any]) -> Answer:
        """POST until a final answer: cut requests, 409 in_progress and 503 are retried."""
        url = self.bridge.base_url + loke_url(payment.table, "payments")
        while not self._late():
            answered = await self._post(url, body)
            if answered is None:
                self.ledger.events["post cut"] += 1
                await asyncio.sleep(0.05)
                continue
            status, text = answered
            data = _json(text)
            if data is None:
                self._problem(f"{payment.id}: {status} with a body that is not JSON: {text[:300]}")
                return Answer(status, {})
            code = data.get("error")
            if status in (201, 202):
                return Answer(status, data)
            if status == 409 and code == "in_progress":
                self.ledger.events["409 in_progress"] += 1
                await asyncio.sleep(0.1)
                continue
            if status == 503 and code in RETRY_LATER:
                self.ledger.events["post 503"] += 1
                await asyncio.sleep(0.1)
                continue
            if (status, code) not in FINAL_REFUSALS:
                self._problem(f"{payment.id}: unexpected {status} {text[:300]}")
            return Answer(status, data)
        self._problem(f"{payment.id}: no final answer before the deadline")
        return Answer(0, {})

    async def _post(self, url: str, body: dict[str, Any]) -> tuple[int, str] | None:
        """One POST: its status and text, or ``None`` if it got no HTTP answer."""
        self.ledger.posts_in_flight += 1
        try:
            async with self.session.post(url, json=body, headers=LOKE_AUTH) as response:
                return response.status, await response.text()
        except CUT:
            return None
        finally:
            self.ledger.posts_in_flight -= 1

    async def pay(self, planned: PlannedBill, payment: PlannedPayment) -> None:
        """One guest: fetch the bill, think, pay; maybe a twin; maybe a resend later."""
        rng = random.Random(f"{self.seed}:{payment.id}")
        await asyncio.sleep(payment.delay_s + rng.uniform(0, 0.3))
        seen = await self.fetch_bill(payment.table) or planned.bill
        await asyncio.sleep(rng.uniform(0, 0.3))  # the guest picks a tip; the POS may go away
        body = payment_body(seen, payment.id, payment.amount, payment.tip)
        senders = [self.post_until_final(payment, body)]
        if payment.twin:
            senders.append(self.post_until_final(payment, body))
        first, *others = await asyncio.gather(*senders)
        if not first.status:  # no answer before the deadline: already a problem
            return
        self.ledger.answers[payment.id] = first
        for other in others:
            self._same_answer(payment, first, other, "twin")
        if payment.resend:
            await asyncio.sleep(rng.uniform(0, 1.5))
            again = await self.post_until_final(payment, body)
            self.ledger.events["resends"] += 1
            self._same_answer(payment, first, again, "resend")

    def _same_answer(self, payment: PlannedPayment, first: Answer, other: Answer, how: str) -> None:
        if other != first:
            self._problem(
                f"{payment.id}: the {how} got {other.status} {other.body}, "
                f"the first answer was {first.status} {first.body}"
            )

    async def run_bill(self, planned: PlannedBill) -> None:
        """Every payer of one bill at once: splits race each other on the bill's balance."""
        await asyncio.gather(*(self.pay(planned, p) for p in planned.payments))

    async def launch(self, plan: list[PlannedBill], reserve: int) -> None:
        """Start bills at their planned moments; keep ``reserve`` bills to drip out while
        the killer is still at work, so every kill finds payments in flight."""
        timed, kept = plan[: len(plan) - reserve], list(plan[len(plan) - reserve :])
        started = self._now()
        async with asyncio.TaskGroup() as group:
            for planned in timed:
                await asyncio.sleep(max(0.0, started + planned.start_at - self._now()))
                group.create_task(self.run_bill(planned))
            while kept and not self.killer_done.is_set() and not self._late():
                if self.ledger.posts_in_flight == 0:
                    group.create_task(self.run_bill(kept.pop(0)))
                await asyncio.sleep(0.2)
            for planned in kept:
                group.create_task(self.run_bill(planned))

    # -- the POS switch ----------------------------------------------------------------------

    async def set_pos(self, mode: str) -> bool:
        try:
            problem = await self.switch.set(self.session, mode)
        except CUT:
            return False
        if problem is not None:
            self._problem(problem)
        return problem is None

    async def flip_pos(self, rng: random.Random, stop: asyncio.Event) -> None:
        """Switch the simulated POS away and back at random moments until ``stop``.

        Away is mostly ``offline`` (refuses connections), sometimes ``failing`` (answers with
        errors) or ``lossy`` (applies a payment, then its answer is lost): a payment applied
        in ``lossy`` is on the POS although the bridge never heard so, and must not be
        applied again.
        """
        mode, generation = "online", self.generation
        while not stop.is_set() and not self._late():
            pause = rng.uniform(0.2, 0.9) if mode == "online" else rng.uniform(0.1, 0.7)
            await asyncio.sleep(pause)
            if self.switch.resets_on_restart and generation != self.generation:
                # a restart brought the simulator inside the bridge back online
                mode, generation = "online", self.generation
            wanted = "online"
            if mode == "online":
                wanted = rng.choices(("offline", "failing", "lossy"), (5, 2, 3))[0]
            if await self.set_pos(wanted):
                mode = wanted
                self.flips[wanted] += 1

    # -- the killer --------------------------------------------------------------------------

    async def kill_and_restart(self, rng: random.Random, kills: int) -> None:
        """``kills`` times: wait a random while, kill -9 with payments in flight, restart."""
        try:
            while self.kills < kills and not self._late():
                await asyncio.sleep(rng.uniform(0.4, 1.4))
                await self._until(lambda: self.ledger.posts_in_flight > 0, 3.0)
                in_flight = self.ledger.posts_in_flight
                await self.bridge.kill9()
                self.kills += 1
                self.kills_with_posts_in_flight += in_flight > 0
                self.ledger.events["posts in flight at kills"] += in_flight
                self.generation += 1
                await asyncio.sleep(rng.uniform(0, 0.3))  # payers hammer a closed port
                self.bridge.start()
                self.restart_s.append(await self.bridge.wait_ready(self.session))
        finally:
            self.killer_done.set()

    async def _until(self, condition: Callable[[], bool], timeout: float) -> bool:
        end = self._now() + timeout
        while not condition():
            if self._now() > end:
                return False
            await asyncio.sleep(0.002)
        return True


async def admin_json(
    session: aiohttp.ClientSession, bridge: BridgeProcess, path: str
) -> dict[str, Any]:
    async with session.get(bridge.base_url + path, headers=ADMIN_AUTH) as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        if loop.time() > end:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.1)


def _json(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None

"""The outbox worker: applies queued payments to the POS exactly once.

At most once comes from asking first: before every attempt the worker calls
``find_payment``, so a payment that landed before a crash, or whose confirmation was lost,
is marked applied instead of being applied again. Exactly once in the end comes from never
giving up on a transient failure (capped backoff, drained at once when the POS recovers) and
never dropping a permanent one: the POS's refusal moves the payment to ``needs_attention``,
where the status endpoint shows it until a technician acts.

While the POS is unreachable the worker writes no audit rows: a failed ``find_payment`` only
pushes the claim back. Audit rows record what happened to the payment, not to the network.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from bridge.config import LocationConfig, OutboxConfig
from bridge.core.backoff import retry_delay
from bridge.core.idempotency import StoredResponse
from bridge.core.payment import Payment, PaymentState, transition
from bridge.services.health import PosHealth
from bridge.services.locks import BillLocks
from bridge.services.payments import instruction_for
from bridge.store.payments import OutboxClaim, PaymentStore
from drivers.base import PosDriver
from drivers.errors import PaymentRefusedError, PosUnavailableError

logger = logging.getLogger(__name__)


class OutboxWorker:
    def __init__(
        self,
        store: PaymentStore,
        drivers: Mapping[str, PosDriver],
        locations: Mapping[str, LocationConfig],
        health: PosHealth,
        locks: BillLocks,
        settings: OutboxConfig,
        pos_timeout_s: float,
        clock: Callable[[], datetime],
        render_queued: Callable[[Payment], StoredResponse],
    ) -> None:
        self._store = store
        self._drivers = drivers
        self._locations = locations
        self._health = health
        self._locks = locks
        self._settings = settings
        self._pos_timeout_s = pos_timeout_s
        self._clock = clock
        self._render_queued = render_queued
        self._wake = asyncio.Event()
        self._random = random.Random()

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()

    async def recover(self) -> int:
        """Run once at start-up, before serving: finish what a dead process left mid-flight.

        Claims are handed back; a payment caught ``applying`` goes back to ``queued`` (the
        worker asks the POS before applying again); a payment never answered gets its
        answer now, ``202 queued``, which a retry of the same request will receive.
        """
        await self._store.release_all_claims()
        stranded = await self._store.unanswered_or_applying()
        now = self._clock()
        for payment in stranded:
            current = payment
            if payment.state is PaymentState.APPLYING:
                current, audit = transition(
                    payment,
                    PaymentState.QUEUED,
                    now,
                    "bridge restarted while applying: the outbox checks the POS before retrying",
                )
                await self._store.save_transition(
                    current, audit, outbox="release", next_attempt_at=now, error="restart"
                )
            await self._store.answer_if_unanswered(current, self._render_queued(current))
        if stranded:
            logger.info("recovered %d payment(s) left in flight by the last run", len(stranded))
        return len(stranded)

    async def run(self) -> None:
        """Work until cancelled; a failed step is logged and retried, never fatal."""
        while True:
            try:
                claim = await self._claim()
                if claim is None:
                    await self._idle()
                    continue
                await self.process(claim)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox step failed; retrying")
                await asyncio.sleep(self._settings.idle_poll_s)

    async def _claim(self) -> OutboxClaim | None:
        now = self._clock()
        stale = now - timedelta(seconds=self._settings.claim_timeout_s)
        return await self._store.claim_next(now, stale)

    async def _idle(self) -> None:
        self._wake.clear()
        try:
            async with asyncio.timeout(self._settings.idle_poll_s):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def process(self, claim: OutboxClaim) -> None:
        payment = claim.payment
        location = self._locations.get(payment.location_id)
        if location is None:
            await self._retry_later(
                payment, claim.attempts, f"location {payment.location_id} is no longer configured"
            )
            return
        driver = self._drivers[location.driver]
        if payment.state is PaymentState.APPLYING:
            # A claim whose owner died mid-request: the payer may still be waiting for an
            # answer, and the answer is now "queued".
            await self._store.answer_if_unanswered(payment, self._render_queued(payment))
        async with self._locks.for_table(payment.location_id, payment.table):
            try:
                async with asyncio.timeout(self._pos_timeout_s):
                    found = await driver.find_payment(location.pos_location, payment.id)
            except (PosUnavailableError, TimeoutError) as exc:
                await self._health.observe(location.driver, False, str(exc) or "timeout")
                await self._retry_later(payment, claim.attempts, f"POS unreachable: {exc}")
                return
            await self._health.observe(location.driver, True)
            if found is not None:
                applied, audit = transition(
                    payment,
                    PaymentState.APPLIED,
                    self._clock(),
                    f"found on the POS as {found.pos_reference}: not applied again",
                    pos_reference=found.pos_reference,
                )
                await self._store.save_transition(applied, audit, outbox="remove", bill=found.bill)
                return
            await self._apply(payment, location, driver, claim.attempts)

    async def _apply(
        self, payment: Payment, location: LocationConfig, driver: PosDriver, attempts: int
    ) -> None:
        if payment.state is not PaymentState.APPLYING:
            payment, audit = transition(
                payment,
                PaymentState.APPLYING,
                self._clock(),
                f"outbox attempt {attempts}: applying to the POS",
            )
            await self._store.save_transition(payment, audit)
        try:
            async with asyncio.timeout(self._pos_timeout_s):
                receipt = await driver.apply_payment(instruction_for(payment, location))
        except PaymentRefusedError as exc:
            moved, audit = transition(
                payment,
                PaymentState.NEEDS_ATTENTION,
                self._clock(),
                f"POS refused it for good: {exc}",
            )
            await self._store.save_transition(moved, audit, outbox="remove")
            logger.warning("payment %s needs attention: %s", payment.id, exc)
            return
        except (PosUnavailableError, TimeoutError) as exc:
            await self._health.observe(location.driver, False, str(exc) or "timeout")
            moved, audit = transition(
                payment,
                PaymentState.QUEUED,
                self._clock(),
                f"POS did not confirm ({exc or 'timeout'}): will check before retrying",
            )
            await self._store.save_transition(
                moved,
                audit,
                outbox="release",
                next_attempt_at=self._next_attempt(attempts),
                error=str(exc),
            )
            return
        applied, audit = transition(
            payment,
            PaymentState.APPLIED,
            self._clock(),
            f"applied on the POS as {receipt.pos_reference}",
            pos_reference=receipt.pos_reference,
        )
        await self._store.save_transition(applied, audit, outbox="remove", bill=receipt.bill)

    async def _retry_later(self, payment: Payment, attempts: int, error: str) -> None:
        await self._store.release_claim(payment, self._next_attempt(attempts), error)

    def _next_attempt(self, attempts: int) -> datetime:
        delay = retry_delay(
            attempts,
            self._settings.retry_initial_s,
            self._settings.retry_max_s,
            self._random.random(),
        )
        return self._clock() + timedelta(seconds=delay)

    async def requeue(self, payment: Payment, reason: str) -> Payment:
        """A technician fixed what made the POS refuse ``payment``: try it again now.

        The outbox still asks the POS first, so a payment staff entered by hand meanwhile is
        found, not applied twice.
        """
        queued, audit = transition(payment, PaymentState.QUEUED, self._clock(), reason)
        await self._store.save_transition(
            queued, audit, outbox="release", next_attempt_at=self._clock()
        )
        self.wake()
        return queued

    async def pos_recovered(self, driver: str) -> None:
        """The POS is back: make its waiting payments due now and wake up."""
        await self._store.make_due(self._clock())
        self.wake()

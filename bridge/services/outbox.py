"""The outbox worker: applies queued payments to the POS exactly once.

At most once comes from asking first: every claim is the event
:class:`~bridge.core.payment_events.Claimed`, whose decision is to call ``find_payment``, so
a payment that landed before a crash, or whose confirmation was lost, is marked applied
instead of being applied again. Exactly once in the end comes from never giving up on a
transient failure (capped backoff, drained at once when the POS recovers) and never dropping
a permanent one: the POS's refusal moves the payment to ``needs_attention``, where the status
endpoint shows it until a technician acts (:meth:`OutboxWorker.retry_by_hand`,
:meth:`OutboxWorker.resolve_by_hand`).

What each answer of the POS does to a payment is decided by
:func:`bridge.core.lifecycle.decide` and carried out by :class:`PaymentSteps`, the same as on
the request's own path; this module only claims, locks and loops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from bridge.config import OutboxConfig
from bridge.core.payment import Payment, PaymentState
from bridge.core.payment_events import (
    Claimed,
    FindFailed,
    PaymentEvent,
    Restarted,
    TechnicianResolve,
    TechnicianRetry,
)
from bridge.services.locations import LocationRef
from bridge.services.locks import BillLocks
from bridge.services.steps import PaymentSteps
from bridge.store.payments import OutboxClaim, PaymentStore

logger = logging.getLogger(__name__)


class OutboxWorker:
    def __init__(
        self,
        store: PaymentStore,
        steps: PaymentSteps,
        locations: Mapping[tuple[str, str], LocationRef],
        locks: BillLocks,
        settings: OutboxConfig,
        clock: Callable[[], datetime],
        due: asyncio.Event,
    ) -> None:
        """``due`` is set by whoever gives the outbox work (``PaymentSteps``' ``WakeOutbox``);
        shared rather than a callback so the steps and the worker need not know each other."""
        self._store = store
        self._steps = steps
        self._locations = locations
        self._locks = locks
        self._settings = settings
        self._clock = clock
        self._wake = due

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()

    async def recover(self) -> int:
        """Run once at start-up, before serving: finish what a dead process left mid-flight.

        Claims are handed back; each payment caught ``applying`` or never answered is the
        event :class:`Restarted` (``applying`` goes back to ``queued``, and the worker asks
        the POS before applying again; one never answered gets ``202 queued`` now, which a
        retry of the same request will receive).
        """
        await self._store.release_all_claims()
        stranded = await self._store.unanswered_or_applying()
        for payment in stranded:
            await self._steps.run(payment, Restarted(), None)
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
        """One claimed payment: ask the POS, then apply it if the POS does not have it."""
        payment = claim.payment
        location = self._locations.get((payment.platform, payment.location_id))
        event: PaymentEvent = Claimed(claim.attempts)
        if location is None:
            error = f"location {payment.location_id} is no longer configured"
            event = FindFailed(error, claim.attempts)
        async with self._locks.for_table(payment.location_id, payment.table):
            decision = await self._steps.run(payment, event, location)
        if decision.payment.state is PaymentState.NEEDS_ATTENTION:
            logger.warning("payment %s needs attention: %s", payment.id, decision.audits[-1].reason)

    async def retry_by_hand(self, payment: Payment, note: str) -> Payment:
        """A technician fixed what made the POS refuse ``payment``: try it again now.

        The outbox still asks the POS first, so a payment staff entered by hand meanwhile is
        found, not applied twice.
        """
        decision = await self._steps.run(payment, TechnicianRetry(note), None)
        return decision.payment

    async def resolve_by_hand(self, payment: Payment, by: str, note: str) -> Payment:
        """A technician settled a payment that needs attention outside the bridge (keyed in
        at the till, refunded): it leaves the queue's count, with who and why audited."""
        decision = await self._steps.run(payment, TechnicianResolve(by, note), None)
        return decision.payment

    async def pos_recovered(self, driver: str) -> None:
        """The POS is back: make its waiting payments due now and wake up."""
        await self._store.make_due(self._clock())
        self.wake()

"""Carrying out the state machine's decisions: write them, call the POS, feed its answer back.

Why its own module: the request's path, the outbox worker, start-up recovery and a
technician's actions all change payments the same way. Each hands an event to
:meth:`PaymentSteps.run`, which asks :func:`bridge.core.lifecycle.decide`, stores the new
state, its audit row, its answer and its outbox change in one transaction, and then runs the
effects: a POS call's outcome is the next event, until a decision asks for no more calls.
No code here chooses a state, an audit text or whether to retry.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from bridge.core.backoff import retry_delay
from bridge.core.bill import Bill
from bridge.core.idempotency import StoredResponse
from bridge.core.lifecycle import Decision, decide
from bridge.core.payment import Payment
from bridge.core.payment_events import (
    AnswerKind,
    ApplyOnPos,
    Dequeue,
    DriverApplied,
    DriverOutcome,
    Enqueue,
    FindFailed,
    FindOnPos,
    FoundOnPos,
    KeepBill,
    NotFoundOnPos,
    PaymentEvent,
    ReleaseClaim,
    StoreAnswer,
    WakeOutbox,
    driver_failure,
)
from bridge.services.locations import LocationRef
from bridge.services.payment_answers import PaymentRenderer
from bridge.services.pos_calls import PosCalls
from bridge.services.snapshots import BillSnapshots
from bridge.store.payments import PaymentStore
from common.errors import RULE_STATUS, ConflictError
from drivers.base import PaymentInstruction
from drivers.errors import PaymentRefusedError, PosUnavailableError


class PaymentSteps:
    def __init__(
        self,
        store: PaymentStore,
        pos: PosCalls,
        renderers: Mapping[str, PaymentRenderer],
        snapshots: BillSnapshots,
        clock: Callable[[], datetime],
        wake_outbox: Callable[[], None],
        retry_initial_s: float,
        retry_max_s: float,
    ) -> None:
        self._store = store
        self._pos = pos
        self._renderers = renderers
        self._snapshots = snapshots
        self._clock = clock
        self.wake_outbox = wake_outbox
        self._retry = (retry_initial_s, retry_max_s)
        self._random = random.Random()

    async def run(
        self, payment: Payment, event: PaymentEvent, location: LocationRef | None
    ) -> Decision:
        """Decide ``event`` for the stored ``payment``, write it, and follow its effects.

        ``location`` is needed only for decisions that call the POS.

        Returns:
            The last decision (its payment is the payment as stored now).
        """
        decision = decide(payment, event, self._clock())
        await self.write(decision)
        return await self.follow(decision, location)

    async def follow(self, decision: Decision, location: LocationRef | None) -> Decision:
        """Run the effects of a decision already written; a POS call's outcome is decided,
        written and followed in turn."""
        while True:
            event = await self._effects(decision, location)
            if event is None:
                return decision
            decision = decide(decision.payment, event, self._clock())
            await self.write(decision)

    def answer(self, decision: Decision) -> StoredResponse | None:
        """The answer a decision stores with its payment (not an ``only_if_unanswered``
        one), in the payment's platform's words."""
        for effect in decision.effects:
            if isinstance(effect, StoreAnswer) and not effect.only_if_unanswered:
                bill = next((e.bill for e in decision.effects if isinstance(e, KeepBill)), None)
                return self._render(decision.payment, effect, bill)
        return None

    def _render(self, payment: Payment, effect: StoreAnswer, bill: Bill | None) -> StoredResponse:
        if effect.kind is AnswerKind.REJECTED:
            assert effect.refusal is not None  # decide() gives every rejection its refusal
            refusal = effect.refusal
            error = RULE_STATUS.get(refusal.code, ConflictError)(
                refusal.code, refusal.message, dict(refusal.details)
            )
            return StoredResponse(error.status, error.body())
        render = self._renderers[payment.platform]
        if effect.kind is AnswerKind.APPLIED:
            return render.applied(payment, bill)
        return render.queued(payment)

    async def write(self, decision: Decision) -> None:
        """Store a decision about a payment already stored: its new state with its audit
        row, answer, outbox change and bill in one transaction; or, when it did not move,
        only the claim it hands back or the answer it gives if none was given."""
        payment = decision.payment
        if not decision.moved:
            for effect in decision.effects:
                if isinstance(effect, ReleaseClaim):
                    await self._store.release_claim(
                        payment, self._backoff(effect.attempt), effect.error
                    )
        else:
            outbox, due, error, bill = "keep", None, None, None
            for effect in decision.effects:
                if isinstance(effect, Enqueue):
                    outbox, due, error = "release", effect.due_at, effect.error
                elif isinstance(effect, ReleaseClaim):
                    outbox, due, error = "release", self._backoff(effect.attempt), effect.error
                elif isinstance(effect, Dequeue):
                    outbox = "remove"
                elif isinstance(effect, KeepBill):
                    bill = self._bill_to_write(payment, effect)
            (audit,) = decision.audits
            await self._store.save_transition(
                payment,
                audit,
                response=self.answer(decision),
                outbox=outbox,
                next_attempt_at=due,
                error=error,
                bill=bill,
            )
        for effect in decision.effects:
            if isinstance(effect, StoreAnswer) and effect.only_if_unanswered:
                response = self._render(payment, effect, None)
                await self._store.answer_if_unanswered(payment, response)

    def _bill_to_write(self, payment: Payment, effect: KeepBill) -> Bill | None:
        if effect.batched and not self._snapshots.write_now(
            payment.location_id, effect.bill, payment.updated_at
        ):
            return None  # kept for the next flush
        return effect.bill

    async def _effects(
        self, decision: Decision, location: LocationRef | None
    ) -> PaymentEvent | None:
        """Run the effects that are not writes; the POS's answer, if one was asked for."""
        event: PaymentEvent | None = None
        for effect in decision.effects:
            if isinstance(effect, WakeOutbox):
                self.wake_outbox()
            elif isinstance(effect, ApplyOnPos):
                assert location is not None, "a POS call needs the payment's location"
                event = await self._apply(decision.payment, location, effect.attempt)
            elif isinstance(effect, FindOnPos):
                assert location is not None, "a POS call needs the payment's location"
                event = await self._find(decision.payment, location, effect.attempt)
        return event

    async def _apply(self, payment: Payment, location: LocationRef, attempt: int) -> DriverOutcome:
        driver = self._pos.driver(location.driver)
        try:
            receipt = await self._pos.call(
                location.driver, driver.apply_payment(instruction_for(payment, location))
            )
        except (PaymentRefusedError, PosUnavailableError) as exc:
            return driver_failure(exc, attempt)
        return DriverApplied(receipt.pos_reference, receipt.bill, attempt)

    async def _find(
        self, payment: Payment, location: LocationRef, attempt: int
    ) -> FoundOnPos | NotFoundOnPos | FindFailed:
        driver = self._pos.driver(location.driver)
        try:
            found = await self._pos.call(
                location.driver, driver.find_payment(location.pos_location, payment.id)
            )
        except PosUnavailableError as exc:
            return FindFailed(f"POS unreachable: {exc}", attempt)
        if found is None:
            return NotFoundOnPos(attempt)
        return FoundOnPos(found.pos_reference, found.bill, attempt)

    def _backoff(self, attempt: int) -> datetime:
        initial_s, max_s = self._retry
        delay = retry_delay(attempt, initial_s, max_s, self._random.random())
        return self._clock() + timedelta(seconds=delay)


def instruction_for(payment: Payment, location: LocationRef) -> PaymentInstruction:
    return PaymentInstruction(
        payment_id=payment.id,
        location=location.pos_location,
        table=payment.table,
        bill_ref=payment.bill_ref,
        amount=payment.amount,
        tip=payment.tip,
        label=payment.label,
    )

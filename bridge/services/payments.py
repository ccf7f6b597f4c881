"""Taking a platform's payment: check it, make it durable, apply it or queue it.

The one way any platform's payment enters the bridge. The order of steps is the guarantee:

1. A replayed payment id gets its stored answer (or 422 if the body differs, 409 while the
   first request is still in flight). The insert that records a payment is the check (a taken
   id conflicts, and only then is its record read); a refusal that would come before any
   record (unknown table, POS offline with nothing to check against, offline limit) looks the
   id up first. Why not look every id up first: a new id, nearly every payment, would be a
   read that finds nothing, on the request's path, before the insert that checks it anyway.
2. Under the bill's lock, the payment is checked against the table's open bill (from the POS,
   or from the last snapshot when the POS is unreachable) minus what is already pending.
3. It is written to SQLite with its audit rows and idempotency record, and fsynced, before the
   POS is touched and before any 2xx.
4. If the POS is reachable it is applied now (201, with the new balance); otherwise the outbox
   owns it (202). A POS that times out may have taken it: the outbox asks before retrying.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from bridge.config import PaymentsConfig
from bridge.core.bill import Bill
from bridge.core.lifecycle import decide
from bridge.core.limits import OfflineLimitError, check_offline_limits
from bridge.core.money import Money
from bridge.core.payment import Payment, receive
from bridge.core.payment_events import CheckedOk, Enqueue, PaymentEvent, Refusal, RuleBroken
from bridge.core.rules import PaymentRuleError, check_payment
from bridge.services.locations import LocationRef
from bridge.services.locks import BillLocks
from bridge.services.payment_answers import (
    PaymentOutcome,
    PaymentRequest,
    in_progress,
    replay,
)
from bridge.services.pos_calls import PosCalls
from bridge.services.snapshots import BillSnapshots, slack
from bridge.services.steps import PaymentSteps
from bridge.store.payments import PaymentStore
from common.errors import (
    ApiError,
    ConflictError,
    NotFoundError,
    pos_offline,
    unknown_table,
)
from drivers.base import Table
from drivers.errors import PosUnavailableError, UnknownTableError

logger = logging.getLogger(__name__)


class PaymentService:
    def __init__(
        self,
        store: PaymentStore,
        steps: PaymentSteps,
        pos: PosCalls,
        locks: BillLocks,
        snapshots: BillSnapshots,
        settings: PaymentsConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._steps = steps
        self._pos = pos
        self._locks = locks
        self._snapshots = snapshots
        self._settings = settings
        self._clock = clock
        self._in_flight: set[tuple[str, str]] = set()

    # -- bills -----------------------------------------------------------------------------

    async def tables(self, location: LocationRef) -> list[Table]:
        """The location's tables, to publish to the platform."""
        try:
            return await self._pos.call(
                location.driver,
                self._pos.driver(location.driver).list_tables(location.pos_location),
            )
        except PosUnavailableError as exc:
            raise pos_offline(self._settings.retry_after_s, str(exc)) from exc

    async def open_bill(self, location: LocationRef, table: int) -> Bill:
        """The table's open bill, straight from the POS.

        Raises:
            NotFoundError: ``unknown_table`` or ``no_open_bill``.
            ServiceUnavailableError: ``pos_offline``.
        """
        try:
            driver = self._pos.driver(location.driver)
            bill = await self._pos.call(
                location.driver, driver.get_open_bill(location.pos_location, table)
            )
        except UnknownTableError as exc:
            raise unknown_table(table) from exc
        except PosUnavailableError as exc:
            raise pos_offline(self._settings.retry_after_s, str(exc)) from exc
        if bill is None or not bill.is_open:
            raise NotFoundError("no_open_bill", f"table {table} has no open bill", {"table": table})
        await self._remember(location.location_id, bill)
        return bill

    async def _remember(self, location_id: str, bill: Bill) -> None:
        """Keep the bill a payer saw, to check payments against while the POS is away."""
        if not self._snapshots.is_known(location_id, bill):
            now = self._clock()
            await self._store.save_bill_snapshot(location_id, bill, now)
            self._snapshots.written(location_id, bill, now)

    async def flush_snapshots(self) -> None:
        """Write the tables' bills kept in memory (``snapshots.py``); run periodically and
        when the bridge stops."""
        kept = self._snapshots.take_unwritten()
        if kept:
            bills = [(k.location_id, k.bill, k.seen_at) for k in kept]
            await self._store.save_bill_snapshots(bills)

    async def _last_bill_seen(self, location_id: str, table: int) -> tuple[Bill, datetime] | None:
        """The newest copy of the table's bill: in the file, or kept in memory since."""
        stored = await self._store.bill_snapshot(location_id, table)
        kept = self._snapshots.newest(location_id, table)
        if kept is not None and (stored is None or kept.seen_at > stored[1]):
            return kept.bill, kept.seen_at
        return stored

    # -- payments --------------------------------------------------------------------------

    async def take_payment(self, request: PaymentRequest) -> PaymentOutcome:
        """Check, record and apply (or queue) one payment; see the module docstring.

        Raises:
            ApiError: a typed refusal that was not recorded (in progress, key reused, unknown
                table, POS offline with nothing to check against, offline limit).
        """
        key = (request.platform, request.payment_id)
        if key in self._in_flight:
            raise in_progress(request.payment_id)
        self._in_flight.add(key)
        try:
            async with self._locks.for_table(request.location.location_id, request.table):
                return await self._take_locked(request)
        finally:
            self._in_flight.discard(key)

    async def _take_locked(self, request: PaymentRequest) -> PaymentOutcome:
        location, claim = request.location, request.claim
        now = self._clock()
        payment, received = receive(
            payment_id=request.payment_id,
            platform=request.platform,
            location_id=location.location_id,
            table=request.table,
            bill_ref=claim.bill_ref,
            bill_version=claim.bill_version,
            amount=claim.amount,
            tip=claim.tip,
            label=request.label,
            now=now,
        )
        driver = self._pos.driver(location.driver)
        seen_at: datetime | None = None  # when the bill was seen, if not just now
        try:
            bill = await self._pos.call(
                location.driver, driver.get_open_bill(location.pos_location, request.table)
            )
        except UnknownTableError:
            return self._refuse(request, payment, unknown_table(request.table))
        except PosUnavailableError:
            known = await self._last_bill_seen(location.location_id, request.table)
            if known is None:
                return self._refuse(
                    request,
                    payment,
                    pos_offline(
                        self._settings.retry_after_s,
                        "no earlier copy of this bill to check the payment against",
                    ),
                )
            bill, seen_at = known

        pending = self._store.pending_on_bill(location.location_id, claim.bill_ref)
        if seen_at is not None:  # and what was applied since that copy (``snapshots.py``)
            since = seen_at - slack(self._settings.pos_timeout_s)
            applied = await self._store.applied_since(location.location_id, claim.bill_ref, since)
            pending = applied | pending
        event: PaymentEvent
        try:
            check_payment(bill, claim, not_yet_on(bill, pending, claim.amount.currency))
        except PaymentRuleError as exc:
            event = RuleBroken(Refusal(exc.code, str(exc), exc.details))
        else:
            if seen_at is not None:  # the POS is away
                try:
                    check_offline_limits(
                        self._settings.offline_limits,
                        await self._store.exposure(),
                        payment.charged,
                        now,
                    )
                except OfflineLimitError as exc:
                    error = ConflictError(exc.code, str(exc), exc.details)
                    return self._refuse(request, payment, error)
            event = CheckedOk(pos_online=seen_at is None)

        decision = decide(payment, event, now)
        response = self._steps.answer(decision)
        enqueue = next((e for e in decision.effects if isinstance(e, Enqueue)), None)
        # Applying now writes no outbox entry: applied now, or queued with one after. If
        # this path dies in between, the worker adopts the payment once it is stale
        # (``PaymentStore.claim_next``) and a restart queues every payment left
        # ``applying`` (``OutboxWorker.recover``).
        hit = await self._store.record_payment(
            decision.payment,
            [received, *decision.audits],
            request.fingerprint,
            response=response,
            outbox_at=enqueue.due_at if enqueue is not None else None,
            claimed=False,
            now=now,
        )
        if hit is not None:  # the insert is the check (module docstring)
            return replay(hit, request, payment)
        final = await self._steps.follow(decision, location)
        answer = self._steps.answer(final) if final is not decision else response
        assert answer is not None  # every path from a received payment ends answered
        return PaymentOutcome(answer)

    def _refuse(self, request: PaymentRequest, payment: Payment, error: ApiError) -> PaymentOutcome:
        """Raise ``error``, a refusal of a payment never recorded, unless its id was taken
        before: then its stored answer, as a replay gets it (see the module docstring)."""
        hit = self._store.idempotency(request.platform, request.payment_id)
        if hit is not None:
            return replay(hit, request, payment)
        raise error


def not_yet_on(bill: Bill | None, pending: dict[str, int], currency: str) -> Money:
    """What of ``pending`` the bill does not show yet.

    A payment the POS took but did not confirm (its answer was lost) is already off the
    POS's balance while the bridge still holds it as pending: counting it twice would refuse
    a guest whose payment fits.
    """
    if not pending:  # the usual case: nothing else in flight on this bill
        return Money(0, currency)
    landed = {p.ref for p in bill.payments} if bill is not None else set()
    return Money(sum(a for pid, a in pending.items() if pid not in landed), currency)

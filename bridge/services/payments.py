"""Taking a platform's payment: check it, make it durable, apply it or queue it.

The one way any platform's payment enters the bridge. The order of steps is the guarantee:

1. A replayed payment id gets its stored answer (or 422 if the body differs, 409 while the
   first request is still in flight). The insert that records a payment is the check (a taken
   id conflicts, and only then is its record read); a refusal that would come before any
   record (unknown table, POS offline with nothing to check against, offline limit) looks the
   id up first. Why not look every id up first: a new id, nearly every payment, was a miss on
   the read-only connection whose cache each commit empties, 19–31 µs of the owner's loop.
2. Under the bill's lock, the payment is checked against the table's open bill (from the POS,
   or from the last snapshot when the POS is unreachable) minus what is already pending.
3. It is written to SQLite with its audit rows and idempotency record, and fsynced, before the
   POS is touched and before any 2xx.
4. If the POS is reachable it is applied now (201, with the new balance); otherwise the outbox
   owns it (202). A POS that times out may have taken it: the outbox asks before retrying.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TypeVar

from bridge.config import LocationConfig, PaymentsConfig
from bridge.core.bill import Bill
from bridge.core.idempotency import StoredResponse
from bridge.core.limits import OfflineLimitError, check_offline_limits
from bridge.core.money import Money
from bridge.core.payment import AuditRecord, Payment, PaymentState, receive, transition
from bridge.core.rules import PaymentRuleError, check_payment
from bridge.errors import (
    ApiError,
    ConflictError,
    NotFoundError,
    pos_offline,
)
from bridge.services.deadlines import Deadlines
from bridge.services.health import PosHealth
from bridge.services.locks import BillLocks
from bridge.services.payment_answers import (
    PaymentOutcome,
    PaymentRenderer,
    PaymentRequest,
    in_progress,
    rejection,
    replay,
)
from bridge.services.snapshots import BillSnapshots, slack
from bridge.store.payments import PaymentStore
from drivers.base import PaymentInstruction, PosDriver, Table
from drivers.errors import (
    PaymentRefusedError,
    PosOfflineError,
    PosTimeoutError,
    PosUnavailableError,
    UnknownTableError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class PaymentService:
    def __init__(
        self,
        store: PaymentStore,
        drivers: Mapping[str, PosDriver],
        health: PosHealth,
        locks: BillLocks,
        settings: PaymentsConfig,
        clock: Callable[[], datetime],
        wake_outbox: Callable[[], None],
    ) -> None:
        self._store = store
        self._drivers = drivers
        self._health = health
        self._locks = locks
        self._settings = settings
        self._clock = clock
        self._wake_outbox = wake_outbox
        self._in_flight: set[tuple[str, str]] = set()
        self._deadlines = Deadlines()
        self._snapshots = BillSnapshots()

    # -- bills -----------------------------------------------------------------------------

    async def tables(self, location: LocationConfig) -> list[Table]:
        """The location's tables, to publish to the platform."""
        try:
            return await self._pos_call(
                location.driver, self._driver(location).list_tables(location.pos_location)
            )
        except PosUnavailableError as exc:
            raise pos_offline(self._settings.retry_after_s, str(exc)) from exc

    async def open_bill(self, location: LocationConfig, table: int) -> Bill:
        """The table's open bill, straight from the POS.

        Raises:
            NotFoundError: ``unknown_table`` or ``no_open_bill``.
            ServiceUnavailableError: ``pos_offline``.
        """
        try:
            bill = await self._pos_call(
                location.driver, self._driver(location).get_open_bill(location.pos_location, table)
            )
        except UnknownTableError as exc:
            raise NotFoundError(
                "unknown_table", f"there is no table {table} here", {"table": table}
            ) from exc
        except PosUnavailableError as exc:
            raise pos_offline(self._settings.retry_after_s, str(exc)) from exc
        if bill is None or not bill.is_open:
            raise NotFoundError("no_open_bill", f"table {table} has no open bill", {"table": table})
        await self._remember(location.loke_location_id, bill)
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

    async def take_payment(
        self, request: PaymentRequest, render: PaymentRenderer
    ) -> PaymentOutcome:
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
            async with self._locks.for_table(request.location.loke_location_id, request.table):
                return await self._take_locked(request, render)
        finally:
            self._in_flight.discard(key)

    async def _take_locked(
        self, request: PaymentRequest, render: PaymentRenderer
    ) -> PaymentOutcome:
        location, claim = request.location, request.claim
        now = self._clock()
        payment, received = receive(
            payment_id=request.payment_id,
            platform=request.platform,
            location_id=location.loke_location_id,
            table=request.table,
            bill_ref=claim.bill_ref,
            bill_version=claim.bill_version,
            amount=claim.amount,
            tip=claim.tip,
            label=request.label,
            now=now,
        )
        driver = self._driver(location)
        seen_at: datetime | None = None  # when the bill was seen, if not just now
        try:
            bill = await self._pos_call(
                location.driver, driver.get_open_bill(location.pos_location, request.table)
            )
        except UnknownTableError:
            return self._refuse(
                request,
                NotFoundError(
                    "unknown_table",
                    f"there is no table {request.table} here",
                    {"table": request.table},
                ),
            )
        except PosUnavailableError:
            known = await self._last_bill_seen(location.loke_location_id, request.table)
            if known is None:
                return self._refuse(
                    request,
                    pos_offline(
                        self._settings.retry_after_s,
                        "no earlier copy of this bill to check the payment against",
                    ),
                )
            bill, seen_at = known

        pending = self._store.pending_on_bill(location.loke_location_id, claim.bill_ref)
        if seen_at is not None:  # and what was applied since that copy (``snapshots.py``)
            since = seen_at - slack(self._settings.pos_timeout_s)
            applied = await self._store.applied_since(
                location.loke_location_id, claim.bill_ref, since
            )
            pending = applied | pending
        try:
            check_payment(bill, claim, not_yet_on(bill, pending, claim.amount.currency))
        except PaymentRuleError as exc:
            rejected, audit = transition(payment, PaymentState.REJECTED, now, f"{exc.code}: {exc}")
            response = rejection(exc)
            earlier = await self._record(request, rejected, [received, audit], response, None)
            return earlier or PaymentOutcome(response)

        if seen_at is not None:  # the POS is away
            try:
                check_offline_limits(
                    self._settings.offline_limits,
                    await self._store.exposure(),
                    payment.charged,
                    now,
                )
            except OfflineLimitError as exc:
                return self._refuse(request, ConflictError(exc.code, str(exc), exc.details))
            queued, audit = transition(
                payment, PaymentState.QUEUED, now, "POS unreachable: queued for the outbox"
            )
            response = render.queued(queued)
            earlier = await self._record(request, queued, [received, audit], response, now)
            return earlier or PaymentOutcome(response)

        applying, audit = transition(
            payment, PaymentState.APPLYING, now, "POS online: applying now"
        )
        # No outbox entry: applied now, or queued with one below. If this path dies in
        # between, the worker adopts the payment once it is stale (``PaymentStore.claim_next``)
        # and a restart queues every payment left ``applying`` (``OutboxWorker.recover``).
        earlier = await self._record(request, applying, [received, audit], None, None)
        if earlier is not None:
            return earlier
        return await self._apply_now(applying, location, driver, render)

    def _refuse(self, request: PaymentRequest, error: ApiError) -> PaymentOutcome:
        """Raise ``error``, a refusal of a payment never recorded, unless its id was taken
        before: then its stored answer, as a replay gets it (see the module docstring)."""
        hit = self._store.idempotency(request.platform, request.payment_id)
        if hit is not None:
            return replay(hit, request)
        raise error

    async def _record(
        self,
        request: PaymentRequest,
        payment: Payment,
        audits: list[AuditRecord],
        response: StoredResponse | None,
        outbox_at: datetime | None,
    ) -> PaymentOutcome | None:
        """Write the payment durably; ``None`` when written, else the earlier answer.

        The earlier answer is a replay's: the insert is the check (module docstring).
        """
        hit = await self._store.record_payment(
            payment,
            audits,
            request.fingerprint,
            response=response,
            outbox_at=outbox_at,
            claimed=False,
            now=payment.updated_at,
        )
        if hit is not None:
            return replay(hit, request)
        if payment.state is PaymentState.QUEUED:
            self._wake_outbox()
        return None

    async def _apply_now(
        self, payment: Payment, location: LocationConfig, driver: PosDriver, render: PaymentRenderer
    ) -> PaymentOutcome:
        instruction = instruction_for(payment, location)
        try:
            receipt = await self._pos_call(location.driver, driver.apply_payment(instruction))
        except PaymentRefusedError as exc:
            now = self._clock()
            rejected, audit = transition(payment, PaymentState.REJECTED, now, f"POS refused: {exc}")
            response = rejection(exc)
            await self._store.save_transition(rejected, audit, response=response)
            return PaymentOutcome(response)
        except PosUnavailableError as exc:
            now = self._clock()
            reason = (
                "POS unreachable before applying: queued"
                if isinstance(exc, PosOfflineError)
                else f"POS did not confirm ({exc}): queued; the outbox checks before retrying"
            )
            queued, audit = transition(payment, PaymentState.QUEUED, now, reason)
            response = render.queued(queued)
            await self._store.save_transition(
                queued,
                audit,
                response=response,
                outbox="release",
                next_attempt_at=now,
                error=str(exc),
            )
            self._wake_outbox()
            return PaymentOutcome(response)
        now = self._clock()
        applied, audit = transition(
            payment,
            PaymentState.APPLIED,
            now,
            f"applied on the POS as {receipt.pos_reference}",
            pos_reference=receipt.pos_reference,
        )
        response = render.applied(applied, receipt.bill)
        bill = receipt.bill
        if bill is not None:
            location_id = location.loke_location_id
            if not self._snapshots.write_now(location_id, bill, now):
                bill = None  # kept for the next flush
        await self._store.save_transition(applied, audit, response=response, bill=bill)
        return PaymentOutcome(response)

    # -- helpers ---------------------------------------------------------------------------

    def _driver(self, location: LocationConfig) -> PosDriver:
        return self._drivers[location.driver]

    async def _pos_call(self, driver_name: str, call: Awaitable[T]) -> T:
        """Await a driver call with the POS deadline, and tell the health monitor."""
        try:
            result = await self._deadlines.run(call, self._settings.pos_timeout_s)
        except TimeoutError as exc:
            if isinstance(exc, PosTimeoutError):
                await self._health.observe(driver_name, False, str(exc))
                raise
            await self._health.observe(driver_name, False, "no answer within the deadline")
            raise PosTimeoutError("the POS did not answer in time") from exc
        except PosUnavailableError as exc:
            await self._health.observe(driver_name, False, str(exc))
            raise
        if not self._health.is_online(driver_name):  # observing "still online" changes nothing
            await self._health.observe(driver_name, True)
        return result


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


def instruction_for(payment: Payment, location: LocationConfig) -> PaymentInstruction:
    return PaymentInstruction(
        payment_id=payment.id,
        location=location.pos_location,
        table=payment.table,
        bill_ref=payment.bill_ref,
        amount=payment.amount,
        tip=payment.tip,
        label=payment.label,
    )

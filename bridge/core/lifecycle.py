"""The payment state machine: one pure function from (payment, event, now) to a decision.

Why one function: the request's own path (apply now, or queue), the outbox worker (find, then
apply), start-up recovery and a technician's hand all change payments. Each of them observes
an event (``payment_events.py``), asks :func:`decide`, and carries out the effects it returns;
none of them chooses a target state, an audit text or a retry on its own, so the two ways a
payment reaches the POS cannot drift apart. Nothing here reads a clock or does I/O.

The rules that matter for money:

- A refusal becomes a 4xx (``rejected``) only while the platform has no answer
  (``attempt == ON_REQUEST``); after a 202 it is ``needs_attention``, never dropped.
- An attempt whose outcome is unknown (timed out) goes back to ``queued``, and every outbox
  attempt starts with :class:`FindOnPos`: the payment is applied only after the POS said it
  does not have it.
- ``applied``, ``rejected`` and ``resolved`` are final: only a replay (and a restart, which
  changes nothing) is accepted there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bridge.core.payment import AuditRecord, Payment, PaymentState, transition
from bridge.core.payment_events import (
    ON_REQUEST,
    AnswerInProgress,
    AnswerKind,
    ApplyOnPos,
    CheckedOk,
    Claimed,
    Dequeue,
    DriverApplied,
    DriverOffline,
    DriverRefused,
    DriverTimedOut,
    Effect,
    Enqueue,
    FindFailed,
    FindOnPos,
    FoundOnPos,
    KeepBill,
    NotFoundOnPos,
    PaymentEvent,
    Refusal,
    ReleaseClaim,
    ReplayAnswer,
    Replayed,
    Restarted,
    RuleBroken,
    StoreAnswer,
    TechnicianResolve,
    TechnicianRetry,
    WakeOutbox,
)

S = PaymentState


@dataclass(frozen=True, slots=True)
class Decision:
    """The payment after the event, the audit rows to store with it (in one transaction),
    and what to do next, in order."""

    payment: Payment
    audits: tuple[AuditRecord, ...] = ()
    effects: tuple[Effect, ...] = ()

    @property
    def moved(self) -> bool:
        return bool(self.audits)


class IllegalEventError(RuntimeError):
    """An event the payment's state does not accept: a bug in a caller, never user input."""

    def __init__(self, payment: Payment, event: PaymentEvent) -> None:
        super().__init__(
            f"payment {payment.id}: {type(event).__name__} is not accepted in {payment.state}"
        )
        self.payment_id = payment.id
        self.state = payment.state
        self.event = event


def decide(payment: Payment, event: PaymentEvent, now: datetime) -> Decision:
    """What ``event`` does to ``payment`` at ``now``.

    Raises:
        IllegalEventError: ``payment``'s state does not accept ``event``.
    """
    state = payment.state
    match event:
        case Replayed(answered=answered):
            return Decision(payment, (), (ReplayAnswer() if answered else AnswerInProgress(),))
        case CheckedOk(pos_online=True) if state is S.RECEIVED:
            return _move(
                payment, S.APPLYING, now, "POS online: applying now", ApplyOnPos(ON_REQUEST)
            )
        case CheckedOk(pos_online=False) if state is S.RECEIVED:
            return _queue_now(payment, now, "POS unreachable: queued for the outbox", None)
        case RuleBroken(refusal=refusal) if state is S.RECEIVED:
            return _move(
                payment,
                S.REJECTED,
                now,
                f"{refusal.code}: {refusal.message}",
                StoreAnswer(AnswerKind.REJECTED, refusal),
            )
        case Claimed(attempt=attempt) if state is S.QUEUED:
            return Decision(payment, (), (FindOnPos(attempt),))
        case Claimed(attempt=attempt) if state is S.APPLYING:
            # Its request path died: the payer may still wait, and the answer is now "queued".
            answer = StoreAnswer(AnswerKind.QUEUED, only_if_unanswered=True)
            return Decision(payment, (), (answer, FindOnPos(attempt)))
        case FoundOnPos(pos_reference=ref, bill=bill) if state in (S.QUEUED, S.APPLYING):
            effects: list[Effect] = [Dequeue()]
            if bill is not None:
                effects.append(KeepBill(bill, batched=False))
            return _move(
                payment,
                S.APPLIED,
                now,
                f"found on the POS as {ref}: not applied again",
                *effects,
                pos_reference=ref,
            )
        case NotFoundOnPos(attempt=attempt) if state is S.QUEUED:
            reason = f"outbox attempt {attempt}: applying to the POS"
            return _move(payment, S.APPLYING, now, reason, ApplyOnPos(attempt))
        case NotFoundOnPos(attempt=attempt) if state is S.APPLYING:
            return Decision(payment, (), (ApplyOnPos(attempt),))
        case FindFailed(error=error, attempt=attempt) if state in (S.QUEUED, S.APPLYING):
            # No audit row: nothing happened to the payment, only to the network.
            return Decision(payment, (), (ReleaseClaim(attempt, error),))
        case DriverApplied() | DriverRefused() | DriverTimedOut() | DriverOffline() if (
            state is S.APPLYING
        ):
            return _driver_answered(payment, event, now)
        case Restarted() if state is S.APPLYING:
            return _move(
                payment,
                S.QUEUED,
                now,
                "bridge restarted while applying: the outbox checks the POS before retrying",
                Enqueue(now, "restart"),
                StoreAnswer(AnswerKind.QUEUED, only_if_unanswered=True),
            )
        case Restarted() if state in (S.QUEUED, S.NEEDS_ATTENTION):
            answer = StoreAnswer(AnswerKind.QUEUED, only_if_unanswered=True)
            return Decision(payment, (), (answer,))
        case Restarted() if state is not S.RECEIVED:
            return Decision(payment)  # final: answered when it got there
        case TechnicianRetry(note=note) if state is S.NEEDS_ATTENTION:
            reason = f"retried by a technician: {note}"
            return _move(payment, S.QUEUED, now, reason, Enqueue(now), WakeOutbox())
        case TechnicianResolve(by=by, note=note) if state is S.NEEDS_ATTENTION:
            return _move(payment, S.RESOLVED, now, f"resolved by hand by {by}: {note}")
    raise IllegalEventError(payment, event)


def _driver_answered(
    payment: Payment,
    event: DriverApplied | DriverRefused | DriverTimedOut | DriverOffline,
    now: datetime,
) -> Decision:
    """The POS's answer to ``apply_payment``, on the request's path or the outbox's."""
    on_request = event.attempt == ON_REQUEST
    match event:
        case DriverApplied(pos_reference=ref, bill=bill):
            effects: list[Effect] = [StoreAnswer(AnswerKind.APPLIED)] if on_request else [Dequeue()]
            if bill is not None:
                effects.append(KeepBill(bill, batched=on_request))
            reason = f"applied on the POS as {ref}"
            return _move(payment, S.APPLIED, now, reason, *effects, pos_reference=ref)
        case DriverRefused(reason=code, message=message) if on_request:
            answer = StoreAnswer(AnswerKind.REJECTED, Refusal(code, message))
            return _move(payment, S.REJECTED, now, f"POS refused: {message}", answer)
        case DriverRefused(message=message):
            reason = f"POS refused it for good: {message}"
            return _move(payment, S.NEEDS_ATTENTION, now, reason, Dequeue())
        case DriverOffline(error=error) if on_request:
            return _queue_now(payment, now, "POS unreachable before applying: queued", error)
        case DriverTimedOut(error=error) if on_request:
            reason = f"POS did not confirm ({error}): queued; the outbox checks before retrying"
            return _queue_now(payment, now, reason, error)
        case DriverOffline(error=error, attempt=attempt):
            reason = "POS unreachable before applying: will retry"
            return _move(payment, S.QUEUED, now, reason, ReleaseClaim(attempt, error))
        case DriverTimedOut(error=error, attempt=attempt):
            reason = f"POS did not confirm ({error}): will check before retrying"
            return _move(payment, S.QUEUED, now, reason, ReleaseClaim(attempt, error))
    raise IllegalEventError(payment, event)  # pragma: no cover - the cases are exhaustive


def _queue_now(payment: Payment, now: datetime, reason: str, error: str | None) -> Decision:
    """Queued from the request's path: answered 202, in the outbox, due now."""
    return _move(
        payment,
        S.QUEUED,
        now,
        reason,
        StoreAnswer(AnswerKind.QUEUED),
        Enqueue(now, error),
        WakeOutbox(),
    )


def _move(
    payment: Payment,
    target: PaymentState,
    now: datetime,
    reason: str,
    *effects: Effect,
    pos_reference: str | None = None,
) -> Decision:
    moved, audit = transition(payment, target, now, reason, pos_reference=pos_reference)
    return Decision(moved, (audit,), effects)

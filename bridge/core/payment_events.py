"""What can happen to a payment (events) and what the bridge must do about it (effects).

The vocabulary of :func:`bridge.core.lifecycle.decide`. Events are facts the services
observed (the bill check, the POS's answer, a restart, a technician's click); effects are
instructions the services carry out (call the POS, store an answer, touch the outbox). Both
are plain values, so the decision between them is a pure function a table can test.

Which driver failures are retried, which need a person, and which may have reached the POS
is decided once, here, by :func:`driver_failure`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from bridge.core.bill import Bill
from drivers.errors import PaymentRefusedError, PosOfflineError

#: ``attempt`` of an event on the request's own path: the platform has no answer yet, so a
#: refusal can still be a 4xx. The outbox's attempts are numbered from 1, after a 202.
ON_REQUEST = 0

# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckedOk:
    """The payment fits the table's bill; ``pos_online``: the bill came from the POS now
    (else from the last snapshot, and the payment waits in the outbox)."""

    pos_online: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a payment was refused, for its stored 4xx: a rule's code, or the POS's reason."""

    code: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleBroken:
    """The payment breaks a payment rule (``bridge/core/rules.py``): refused before any 2xx."""

    refusal: Refusal


@dataclass(frozen=True, slots=True)
class Claimed:
    """The outbox claimed the payment for its ``attempt``-th try."""

    attempt: int


@dataclass(frozen=True, slots=True)
class FoundOnPos:
    """``find_payment`` saw the payment on the POS (it landed before, answer lost)."""

    pos_reference: str
    bill: Bill | None
    attempt: int


@dataclass(frozen=True, slots=True)
class NotFoundOnPos:
    """``find_payment`` answered, and the POS does not have the payment."""

    attempt: int


@dataclass(frozen=True, slots=True)
class FindFailed:
    """The POS could not be asked (offline, no answer, location gone): nothing happened."""

    error: str
    attempt: int


@dataclass(frozen=True, slots=True)
class DriverApplied:
    """``apply_payment`` confirmed the payment as ``pos_reference``."""

    pos_reference: str
    bill: Bill | None
    attempt: int


@dataclass(frozen=True, slots=True)
class DriverRefused:
    """The POS refused the payment for good (``PaymentRefusedError``)."""

    reason: str
    message: str
    attempt: int


@dataclass(frozen=True, slots=True)
class DriverTimedOut:
    """The POS did not confirm: the payment may have been delivered."""

    error: str
    attempt: int


@dataclass(frozen=True, slots=True)
class DriverOffline:
    """The POS was unreachable before the payment was sent: not delivered."""

    error: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Restarted:
    """The bridge started again; the payment was left mid-flight by the last run."""


@dataclass(frozen=True, slots=True)
class Replayed:
    """The platform sent the same payment id again; ``answered``: it has a stored answer."""

    answered: bool


@dataclass(frozen=True, slots=True)
class TechnicianRetry:
    """A technician fixed what made the POS refuse the payment: try it again."""

    note: str


@dataclass(frozen=True, slots=True)
class TechnicianResolve:
    """A technician settled the payment by hand (e.g. keyed in at the till, or refunded)."""

    by: str
    note: str


PaymentEvent = (
    CheckedOk
    | RuleBroken
    | Claimed
    | FoundOnPos
    | NotFoundOnPos
    | FindFailed
    | DriverApplied
    | DriverRefused
    | DriverTimedOut
    | DriverOffline
    | Restarted
    | Replayed
    | TechnicianRetry
    | TechnicianResolve
)

#: The events the POS's answer to ``apply_payment`` becomes.
DriverOutcome = DriverApplied | DriverRefused | DriverTimedOut | DriverOffline


def driver_failure(
    error: Exception, attempt: int
) -> DriverRefused | DriverTimedOut | DriverOffline:
    """The event for a failed ``apply_payment``: the one place retryability is decided.

    A refusal is for good (a person must act); an unreachable POS never got the payment
    (retry); anything else (a timeout, a broken link, an unreadable reply, a driver's bug)
    may have reached the POS, so the next attempt asks ``find_payment`` first.
    """
    if isinstance(error, PaymentRefusedError):
        return DriverRefused(error.reason, str(error), attempt)
    if isinstance(error, PosOfflineError):
        return DriverOffline(str(error) or type(error).__name__, attempt)
    return DriverTimedOut(str(error) or "timeout", attempt)


# -- effects -----------------------------------------------------------------------------------


class AnswerKind(StrEnum):
    APPLIED = "applied"
    QUEUED = "queued"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ApplyOnPos:
    """Send the payment to the POS; its answer is the next event (a :data:`DriverOutcome`)."""

    attempt: int


@dataclass(frozen=True, slots=True)
class FindOnPos:
    """Ask the POS whether it has the payment; the next event is found, not found, or
    :class:`FindFailed`."""

    attempt: int


@dataclass(frozen=True, slots=True)
class StoreAnswer:
    """Keep this answer for the platform (and its replays). ``only_if_unanswered``: a
    payment that was answered keeps its answer."""

    kind: AnswerKind
    refusal: Refusal | None = None
    only_if_unanswered: bool = False


@dataclass(frozen=True, slots=True)
class Enqueue:
    """The outbox owns the payment: its entry (made, or handed back) is due at ``due_at``."""

    due_at: datetime
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ReleaseClaim:
    """Hand the outbox claim back, due after the retry backoff for ``attempt``."""

    attempt: int
    error: str


@dataclass(frozen=True, slots=True)
class Dequeue:
    """The outbox is done with the payment (applied, or a person's now)."""


@dataclass(frozen=True, slots=True)
class KeepBill:
    """The bill the POS returned becomes the table's snapshot. ``batched``: it may wait in
    memory for the next flush (``services/snapshots.py``); a payment the outbox applied was
    created before the last copy, so ``applied_since`` would not cover it: written at once."""

    bill: Bill
    batched: bool


@dataclass(frozen=True, slots=True)
class WakeOutbox:
    """Tell the outbox worker there is work now, rather than at its next poll."""


@dataclass(frozen=True, slots=True)
class ReplayAnswer:
    """Give the platform the payment's stored answer, marked as a replay."""


@dataclass(frozen=True, slots=True)
class AnswerInProgress:
    """Tell the platform the first request is still being processed (409, retry shortly)."""


Effect = (
    ApplyOnPos
    | FindOnPos
    | StoreAnswer
    | Enqueue
    | ReleaseClaim
    | Dequeue
    | KeepBill
    | WakeOutbox
    | ReplayAnswer
    | AnswerInProgress
)

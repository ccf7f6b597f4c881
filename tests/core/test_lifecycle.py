"""The payment state machine, purely: every state × every event, and random sequences.

The table below is the specification: for each (state, event) pair it names the state the
payment ends in, the audit text (``None``: no audit row), and the effects. Every pair not in
it must raise :class:`IllegalEventError`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.lifecycle import Decision, IllegalEventError, decide
from bridge.core.money import Money
from bridge.core.payment import FINAL_STATES, Payment, PaymentState, receive
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
    driver_failure,
)
from drivers.errors import PaymentRefusedError, PosOfflineError, PosTimeoutError
from tests.core.factories import T0, a_bill, later

S = PaymentState
NOW = later(5)
BILL = a_bill()


def in_state(state: PaymentState) -> Payment:
    payment, _ = receive(
        payment_id="p1",
        platform="loke",
        location_id="L",
        table=4,
        bill_ref="B-0001",
        bill_version="v",
        amount=Money(500, "AUD"),
        tip=Money(0, "AUD"),
        label="App",
        now=T0,
    )
    return replace(payment, state=state)


# One instance of every event type, named for the table.
EVENTS: dict[str, PaymentEvent] = {
    "ok-online": CheckedOk(pos_online=True),
    "ok-away": CheckedOk(pos_online=False),
    "rule": RuleBroken(Refusal("amount_exceeds_balance", "too much", {"balance": 100})),
    "claimed": Claimed(3),
    "found": FoundOnPos("POS-9", BILL, 3),
    "not-found": NotFoundOnPos(3),
    "find-failed": FindFailed("POS unreachable: down", 3),
    "applied-now": DriverApplied("POS-1", BILL, ON_REQUEST),
    "applied-outbox": DriverApplied("POS-2", None, 3),
    "refused-now": DriverRefused("bill_closed", "bill_closed: closed", ON_REQUEST),
    "refused-outbox": DriverRefused("bill_closed", "bill_closed: closed", 3),
    "timeout-now": DriverTimedOut("slow", ON_REQUEST),
    "timeout-outbox": DriverTimedOut("slow", 3),
    "offline-now": DriverOffline("down", ON_REQUEST),
    "offline-outbox": DriverOffline("down", 3),
    "restart": Restarted(),
    "replay-answered": Replayed(answered=True),
    "replay-unanswered": Replayed(answered=False),
    "tech-retry": TechnicianRetry("bill reopened"),
    "tech-resolve": TechnicianResolve("sam", "keyed in at the till"),
}

QUEUED_IF_UNANSWERED = StoreAnswer(AnswerKind.QUEUED, only_if_unanswered=True)
QUEUE_NOW = (StoreAnswer(AnswerKind.QUEUED), Enqueue(NOW, None), WakeOutbox())

# (state, event) -> (new state, audit reason or None, effects)
TABLE: dict[tuple[PaymentState, str], tuple[PaymentState, str | None, tuple[object, ...]]] = {
    (S.RECEIVED, "ok-online"): (S.APPLYING, "POS online: applying now", (ApplyOnPos(0),)),
    (S.RECEIVED, "ok-away"): (S.QUEUED, "POS unreachable: queued for the outbox", QUEUE_NOW),
    (S.RECEIVED, "rule"): (
        S.REJECTED,
        "amount_exceeds_balance: too much",
        (
            StoreAnswer(
                AnswerKind.REJECTED, Refusal("amount_exceeds_balance", "too much", {"balance": 100})
            ),
        ),
    ),
    (S.QUEUED, "claimed"): (S.QUEUED, None, (FindOnPos(3),)),
    (S.APPLYING, "claimed"): (S.APPLYING, None, (QUEUED_IF_UNANSWERED, FindOnPos(3))),
    (S.QUEUED, "found"): (
        S.APPLIED,
        "found on the POS as POS-9: not applied again",
        (Dequeue(), KeepBill(BILL, batched=False)),
    ),
    (S.APPLYING, "found"): (
        S.APPLIED,
        "found on the POS as POS-9: not applied again",
        (Dequeue(), KeepBill(BILL, batched=False)),
    ),
    (S.QUEUED, "not-found"): (
        S.APPLYING,
        "outbox attempt 3: applying to the POS",
        (ApplyOnPos(3),),
    ),
    (S.APPLYING, "not-found"): (S.APPLYING, None, (ApplyOnPos(3),)),
    (S.QUEUED, "find-failed"): (S.QUEUED, None, (ReleaseClaim(3, "POS unreachable: down"),)),
    (S.APPLYING, "find-failed"): (S.APPLYING, None, (ReleaseClaim(3, "POS unreachable: down"),)),
    (S.APPLYING, "applied-now"): (
        S.APPLIED,
        "applied on the POS as POS-1",
        (StoreAnswer(AnswerKind.APPLIED), KeepBill(BILL, batched=True)),
    ),
    (S.APPLYING, "applied-outbox"): (S.APPLIED, "applied on the POS as POS-2", (Dequeue(),)),
    (S.APPLYING, "refused-now"): (
        S.REJECTED,
        "POS refused: bill_closed: closed",
        (StoreAnswer(AnswerKind.REJECTED, Refusal("bill_closed", "bill_closed: closed")),),
    ),
    (S.APPLYING, "refused-outbox"): (
        S.NEEDS_ATTENTION,
        "POS refused it for good: bill_closed: closed",
        (Dequeue(),),
    ),
    (S.APPLYING, "timeout-now"): (
        S.QUEUED,
        "POS did not confirm (slow): queued; the outbox checks before retrying",
        (StoreAnswer(AnswerKind.QUEUED), Enqueue(NOW, "slow"), WakeOutbox()),
    ),
    (S.APPLYING, "timeout-outbox"): (
        S.QUEUED,
        "POS did not confirm (slow): will check before retrying",
        (ReleaseClaim(3, "slow"),),
    ),
    (S.APPLYING, "offline-now"): (
        S.QUEUED,
        "POS unreachable before applying: queued",
        (StoreAnswer(AnswerKind.QUEUED), Enqueue(NOW, "down"), WakeOutbox()),
    ),
    (S.APPLYING, "offline-outbox"): (
        S.QUEUED,
        "POS unreachable before applying: will retry",
        (ReleaseClaim(3, "down"),),
    ),
    (S.APPLYING, "restart"): (
        S.QUEUED,
        "bridge restarted while applying: the outbox checks the POS before retrying",
        (Enqueue(NOW, "restart"), QUEUED_IF_UNANSWERED),
    ),
    (S.QUEUED, "restart"): (S.QUEUED, None, (QUEUED_IF_UNANSWERED,)),
    (S.NEEDS_ATTENTION, "restart"): (S.NEEDS_ATTENTION, None, (QUEUED_IF_UNANSWERED,)),
    (S.APPLIED, "restart"): (S.APPLIED, None, ()),
    (S.REJECTED, "restart"): (S.REJECTED, None, ()),
    (S.RESOLVED, "restart"): (S.RESOLVED, None, ()),
    (S.NEEDS_ATTENTION, "tech-retry"): (
        S.QUEUED,
        "retried by a technician: bill reopened",
        (Enqueue(NOW), WakeOutbox()),
    ),
    (S.NEEDS_ATTENTION, "tech-resolve"): (
        S.RESOLVED,
        "resolved by hand by sam: keyed in at the till",
        (),
    ),
}
for _state in PaymentState:  # a replay changes nothing, in any state
    TABLE[(_state, "replay-answered")] = (_state, None, (ReplayAnswer(),))
    TABLE[(_state, "replay-unanswered")] = (_state, None, (AnswerInProgress(),))

ALL_PAIRS = [(state, name) for state in PaymentState for name in EVENTS]


@pytest.mark.parametrize(("state", "name"), [p for p in ALL_PAIRS if p in TABLE])
def test_legal_pairs_decide_as_the_table_says(state, name):
    payment = in_state(state)
    decision = decide(payment, EVENTS[name], NOW)
    target, reason, effects = TABLE[(state, name)]
    assert decision.payment.state is target
    assert decision.effects == effects
    if reason is None:
        assert decision.audits == () and decision.payment == payment
    else:
        (audit,) = decision.audits
        assert (audit.from_state, audit.to_state, audit.at, audit.reason) == (
            state,
            target,
            NOW,
            reason,
        )
        assert decision.payment.updated_at == NOW


@pytest.mark.parametrize(("state", "name"), [p for p in ALL_PAIRS if p not in TABLE])
def test_every_other_pair_is_a_typed_error(state, name):
    with pytest.raises(IllegalEventError) as raised:
        decide(in_state(state), EVENTS[name], NOW)
    assert (raised.value.state, raised.value.event) == (state, EVENTS[name])


def test_the_table_covers_each_event_somewhere_and_leaves_illegal_pairs():
    assert {name for _, name in TABLE} == set(EVENTS)
    assert len([p for p in ALL_PAIRS if p not in TABLE]) > 0


def test_applied_keeps_the_pos_reference():
    decision = decide(in_state(S.APPLYING), EVENTS["applied-now"], NOW)
    assert decision.payment.pos_reference == "POS-1"
    found = decide(in_state(S.QUEUED), EVENTS["found"], NOW)
    assert found.payment.pos_reference == "POS-9"


def test_an_applied_bill_with_no_bill_keeps_none():
    decision = decide(in_state(S.APPLYING), DriverApplied("R", None, ON_REQUEST), NOW)
    assert decision.effects == (StoreAnswer(AnswerKind.APPLIED),)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (PaymentRefusedError("bill_closed", "closed"), DriverRefused),
        (PosOfflineError("cable out"), DriverOffline),
        (PosTimeoutError("no reply"), DriverTimedOut),
        (TimeoutError(), DriverTimedOut),
    ],
)
def test_retryability_is_decided_by_the_error_type(error, expected):
    event = driver_failure(error, 2)
    assert type(event) is expected and event.attempt == 2
    if isinstance(event, DriverTimedOut):
        assert event.error  # never empty: it ends up in the audit text


# -- random sequences ------------------------------------------------------------------------


def _events() -> st.SearchStrategy[PaymentEvent]:
    attempts = st.integers(0, 4)
    return st.one_of(
        st.sampled_from(list(EVENTS.values())),
        st.builds(DriverApplied, st.just("R"), st.none(), attempts),
        st.builds(DriverTimedOut, st.just("t"), attempts),
        st.builds(DriverOffline, st.just("o"), attempts),
        st.builds(DriverRefused, st.just("bill_closed"), st.just("m"), attempts),
        st.builds(NotFoundOnPos, attempts),
        st.builds(Claimed, st.integers(1, 4)),
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(_events(), max_size=40))
def test_random_sequences_never_leave_a_final_state_and_never_apply_twice(events):
    payment = in_state(S.RECEIVED)
    landed = 0  # times the payment reached the POS (applied, or found there)
    maybe_delivered = False  # an attempt may have landed: must be asked about first
    for step, event in enumerate(events):
        before = payment.state
        try:
            decision: Decision = decide(payment, event, NOW + timedelta(seconds=step))
        except IllegalEventError:
            continue
        payment = decision.payment
        if before in FINAL_STATES:
            assert payment.state is before and decision.audits == ()
            assert not any(isinstance(e, (ApplyOnPos, FindOnPos)) for e in decision.effects)
        if isinstance(event, DriverTimedOut):
            maybe_delivered = True
        if isinstance(event, (NotFoundOnPos, FoundOnPos)):
            maybe_delivered = False
        if any(isinstance(e, ApplyOnPos) for e in decision.effects):
            assert not maybe_delivered, "applied again without asking the POS first"
            assert landed == 0
        if payment.state is S.APPLIED and before is not S.APPLIED:
            landed += 1
        assert landed <= 1
        if payment.state is S.REJECTED and before is not S.REJECTED:
            assert before in (S.RECEIVED, S.APPLYING)

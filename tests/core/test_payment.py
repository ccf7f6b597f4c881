import pytest

from bridge.core.money import Money
from bridge.core.payment import (
    FINAL_STATES,
    InvalidTransitionError,
    PaymentState,
    receive,
    transition,
)
from tests.core.factories import T0, later

S = PaymentState


def fresh():
    return receive(
        payment_id="p1",
        platform="loke",
        location_id="L",
        table=4,
        bill_ref="B-0001",
        bill_version="v",
        amount=Money(500, "AUD"),
        tip=Money(50, "AUD"),
        label="App",
        now=T0,
    )


def test_receive_starts_the_audit_trail():
    payment, audit = fresh()
    assert payment.state is S.RECEIVED and payment.charged == Money(550, "AUD")
    assert (audit.from_state, audit.to_state, audit.at) == (None, S.RECEIVED, T0)


def test_happy_path_through_the_queue_records_every_step():
    payment, _ = fresh()
    trail = []
    for step, target in enumerate([S.QUEUED, S.APPLYING, S.APPLIED]):
        payment, audit = transition(payment, target, later(step), f"step {step}")
        trail.append((audit.from_state, audit.to_state, audit.reason))
    assert trail == [
        (S.RECEIVED, S.QUEUED, "step 0"),
        (S.QUEUED, S.APPLYING, "step 1"),
        (S.APPLYING, S.APPLIED, "step 2"),
    ]
    assert payment.updated_at == later(2)


def test_pos_reference_is_kept_once_set():
    payment, _ = fresh()
    payment, _ = transition(payment, S.APPLYING, later(1), "x")
    payment, _ = transition(payment, S.APPLIED, later(2), "x", pos_reference="SIM-1")
    assert payment.pos_reference == "SIM-1"


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_final_states_never_move(final):
    payment, _ = fresh()
    path = {
        S.APPLIED: [S.APPLYING, S.APPLIED],
        S.REJECTED: [S.REJECTED],
        S.RESOLVED: [S.QUEUED, S.NEEDS_ATTENTION, S.RESOLVED],
    }[final]
    for target in path:
        payment, _ = transition(payment, target, later(1), "x")
    for target in PaymentState:
        with pytest.raises(InvalidTransitionError):
            transition(payment, target, later(2), "x")


def test_a_queued_payment_cannot_be_rejected_after_its_2xx():
    payment, _ = fresh()
    payment, _ = transition(payment, S.QUEUED, later(1), "x")
    with pytest.raises(InvalidTransitionError):
        transition(payment, S.REJECTED, later(2), "x")


def test_needs_attention_can_only_be_requeued_by_hand():
    payment, _ = fresh()
    payment, _ = transition(payment, S.QUEUED, later(1), "x")
    payment, _ = transition(payment, S.NEEDS_ATTENTION, later(2), "refused")
    payment, audit = transition(payment, S.QUEUED, later(3), "technician retried")
    assert audit.from_state is S.NEEDS_ATTENTION

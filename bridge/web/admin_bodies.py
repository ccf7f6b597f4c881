"""The request bodies and query of the technician's API (``bridge/web/admin.py``).

Each defined once: the route validates with it (``bridge/contracts/validation.py``) and the
OpenAPI document shows its JSON Schema (``bridge/web/openapi.py``). What the API answers is
``views.py``. Pure.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from bridge.contracts.fields import Body, MinorUnits, NonNegative, text
from bridge.core.payment import PaymentState
from drivers.controls import MODES

#: What a simulated POS can be told to do (``drivers.controls.MODES``); a driver may offer
#: fewer, and refuses the others with 400 ``invalid_field``.
Mode = Literal["online", "offline", "failing", "lossy"]
assert get_args(Mode) == MODES, "Mode must list drivers.controls.MODES"


class PaymentsQuery(BaseModel):
    """``GET /api/payments?state=…``. Other query parameters are ignored, as they always
    were."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    state: PaymentState = Field(
        PaymentState.NEEDS_ATTENTION, description="Which payments: those in this state."
    )


class RetryRequest(Body):
    """Send a payment that needs attention back to the outbox; the reason is audited."""

    reason: Annotated[str, text(200)] | None = None


class SimulatorModeRequest(Body):
    mode: Mode
    latency_ms: NonNegative | None = Field(None, description="Added to every POS call.")


class SimulatorTableRequest(Body):
    """A simulator table operation; the body may be empty (``{}``)."""

    pos_location: Annotated[str, text(128)] | None = Field(
        None, description="The POS location; absent is 1."
    )


class SimulatorItemRequest(SimulatorTableRequest):
    name: Annotated[str, text(100)]
    quantity: MinorUnits | None = None
    amount: MinorUnits


class TillPaymentRequest(SimulatorTableRequest):
    amount: MinorUnits

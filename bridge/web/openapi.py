"""The technician's API (``admin.py``): its part of the bridge's OpenAPI 3.1 document.

Its paths, the schemas of its request bodies (``admin_bodies.py``) and its credentials; the
composition root (``bridge/app.py``) merges it with the platforms' parts into the one
document. Pure.

Two of its answers are documented by components this part does not define: the payment the
retry answers, as ``PaymentStatus``, and the bill the simulator routes answer, as ``Bill``.
LOKE's part defines both. The technician's views (``views.py``) are their own, and today
render the same JSON as those two; naming them keeps the served document as it was, and
holds the views to it: ``tests/platforms/test_loke_openapi_responses.py`` validates these
answers against the document, and the simulator's bills against LOKE's own schema.
:func:`~bridge.contracts.openapi.merge_parts` refuses a document in which a ``$ref`` names
no component, so this part is never served without a part that defines them. Should the
views come to differ from LOKE's, they get components of their own here, from their models.
The status, the payment lists and audits, and a mode change are documented as objects, as
they always were.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from bridge.contracts.openapi import (
    COMMON_ERRORS,
    TABLE_PARAMETER,
    Error,
    error_content,
    json_content,
    model_schemas,
    path_param,
    query_parameters,
    ref,
    request_body,
)
from bridge.web.admin_bodies import (
    PaymentsQuery,
    RetryRequest,
    SimulatorItemRequest,
    SimulatorModeRequest,
    SimulatorTableRequest,
    TillPaymentRequest,
)

#: Named here, defined by LOKE's part (see the module's docstring).
PAYMENT = "PaymentStatus"
BILL = "Bill"

_AUTH: list[dict[str, list[str]]] = [{"adminBearer": []}]
_SIMULATOR = {
    "404": error_content("unknown_simulator: no driver of that name offering simulator controls."),
    "409": error_content("simulator_refused: no such table, or no open bill."),
}

#: Every body model of the technician's API, and the side of the wire it is on.
_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (PaymentsQuery, "validation"),
    (RetryRequest, "validation"),
    (SimulatorModeRequest, "validation"),
    (SimulatorTableRequest, "validation"),
    (SimulatorItemRequest, "validation"),
    (TillPaymentRequest, "validation"),
    (Error, "serialization"),
]


def _simulator_table_op(
    operation_id: str, summary: str, answer: str, body: dict[str, Any]
) -> dict[str, Any]:
    """A technician's simulator operation on one table, answered with the bill."""
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "security": _AUTH,
            "parameters": [path_param("driver"), TABLE_PARAMETER],
            "requestBody": body,
            "responses": {
                "200": json_content(ref(BILL), answer),
                **COMMON_ERRORS,
                **_SIMULATOR,
            },
        }
    }


def _object(description: str) -> dict[str, Any]:
    return json_content({"type": "object"}, description)


@cache
def openapi_part() -> dict[str, Any]:
    """The technician's paths, schemas and credentials; cached, they never change while the
    bridge runs."""
    schemas = model_schemas(_MODELS)
    query = schemas.pop(PaymentsQuery.__name__)  # its fields are query parameters, not a body
    return {
        "paths": {
            "/api/status": {
                "get": {
                    "operationId": "status",
                    "summary": "Bridge health for technicians.",
                    "security": _AUTH,
                    "responses": {"200": _object("Status."), **COMMON_ERRORS},
                }
            },
            "/api/payments": {
                "get": {
                    "operationId": "listPayments",
                    "summary": "Payments in one state.",
                    "security": _AUTH,
                    "parameters": query_parameters(query),
                    "responses": {"200": _object("Payments."), **COMMON_ERRORS},
                }
            },
            "/api/payments/{platform}/{paymentId}": {
                "get": {
                    "operationId": "paymentAudit",
                    "summary": "A payment and its audit trail.",
                    "security": _AUTH,
                    "parameters": [path_param("platform"), path_param("paymentId")],
                    "responses": {
                        "200": _object("Payment and audit."),
                        **COMMON_ERRORS,
                        "404": error_content("unknown_payment."),
                    },
                }
            },
            "/api/payments/{platform}/{paymentId}/retry": {
                "post": {
                    "operationId": "paymentRetry",
                    "summary": "Send a payment that needs attention back to the outbox.",
                    "security": _AUTH,
                    "parameters": [path_param("platform"), path_param("paymentId")],
                    "requestBody": request_body("RetryRequest", required=False),
                    "responses": {
                        "200": json_content(ref(PAYMENT), "Queued again."),
                        **COMMON_ERRORS,
                        "404": error_content("unknown_payment."),
                        "409": error_content("not_needs_attention."),
                    },
                }
            },
            "/api/drivers/{driver}/simulator": {
                "post": {
                    "operationId": "simulatorMode",
                    "summary": "Simulated POS: the modes its driver offers, latency.",
                    "security": _AUTH,
                    "parameters": [path_param("driver")],
                    "requestBody": request_body("SimulatorModeRequest"),
                    "responses": {
                        "200": _object("Mode set."),
                        **COMMON_ERRORS,
                        "404": _SIMULATOR["404"],
                    },
                }
            },
            "/api/drivers/{driver}/simulator/tables/{table}/bill": _simulator_table_op(
                "simulatorSeat",
                "Open a new bill on a table.",
                "The open bill.",
                request_body("SimulatorTableRequest", required=False),
            ),
            "/api/drivers/{driver}/simulator/tables/{table}/items": _simulator_table_op(
                "simulatorAddItem",
                "Add a line to an open bill.",
                "The changed bill.",
                request_body("SimulatorItemRequest"),
            ),
            "/api/drivers/{driver}/simulator/tables/{table}/till-payments": _simulator_table_op(
                "simulatorPayAtTill",
                "Staff take cash at the POS itself.",
                "The bill after it.",
                request_body("TillPaymentRequest"),
            ),
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "adminBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The technician's bridge.admin_token.",
                },
            },
        },
    }

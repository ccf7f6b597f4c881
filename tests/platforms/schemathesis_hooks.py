"""Schemathesis hooks for ``test_loke_schemathesis.py`` (loaded by ``SCHEMATHESIS_HOOKS``).

Two changes to generated bodies, both keeping a body exactly as schema-valid as it was.

Whole floats in a generated body are sent as integers. To JSON Schema ``12110.0``
is the integer 12110 (its data model has one number type), so schemathesis sometimes spells a
schema-valid integer as a float; the bridge refuses a float amount by contract (money is never
a float, ``docs/loke-pay-at-table.md``), which no JSON Schema can say. Respelling does not
change whether a body is schema-valid, so positive and negative cases keep their meaning; the
float refusal is tested in ``test_loke_openapi_requests.py``. No request body of the bridge
has a ``number`` field that a float could legitimately fill.

The simulator's ``latencyMs`` is kept at most :data:`MAX_LATENCY_MS`: it slows every later
POS call of the run (up to 10^9 ms is valid), and a run of minutes per request would measure
the simulator, not the contract.
"""

from __future__ import annotations

from typing import Any

import schemathesis


def _respelled(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _respelled(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_respelled(item) for item in value]
    return value


MAX_LATENCY_MS = 20


@schemathesis.hook
def map_body(context: schemathesis.HookContext, body: Any) -> Any:
    body = _respelled(body)
    operation = context.operation
    if operation is not None and operation.path.endswith("/simulator") and isinstance(body, dict):
        latency = body.get("latencyMs")
        if isinstance(latency, int) and not isinstance(latency, bool):
            body["latencyMs"] = min(latency, MAX_LATENCY_MS)
    return body

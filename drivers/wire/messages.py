"""The message catalogue every reference wire protocol carries (serial, TCP, file-drop).

Pure: requests and replies as values, their JSON payload, and the mapping between them and
the driver interface's types. The three protocols differ only in how they frame, check and
deliver a payload; what a payload says is defined once, here and in
``docs/drivers/messages.md``.

A request payload is a UTF-8 JSON object ``{"id": 7, "op": "get_open_bill", "args": {...}}``;
its reply is ``{"id": 7, "ok": true, "result": {...}}`` or ``{"id": 7, "ok": false,
"error": {"code": "...", "message": "..."}}``. ``id`` is chosen by the bridge, unique among
the requests in flight on one link, and echoed by the POS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.core.bill import Bill, bill_from_dict, bill_to_dict
from bridge.core.money import Money
from drivers.base import DriverHealth, PaymentInstruction, PosPayment, Table
from drivers.errors import (
    DriverError,
    PaymentRefusedError,
    PosUnavailableError,
    UnknownTableError,
)

OPS = ("health", "list_tables", "get_open_bill", "apply_payment", "find_payment")

#: Error codes a POS may answer with, and what each means to the bridge.
REFUSAL_CODES = frozenset(
    {
        "bill_closed",
        "bill_not_found",
        "amount_exceeds_balance",
        "currency_mismatch",
        "tips_not_allowed",
    }
)
ERROR_CODES = REFUSAL_CODES | {"unknown_table", "unavailable", "bad_request", "unknown_op"}

MAX_ID = 2**32 - 1
MAX_PAYLOAD = 1 << 20  # 1 MiB: a bill is a few kB; anything larger is a broken peer


class WireFormatError(DriverError, ValueError):
    """A payload that is not a valid message: bad JSON, a missing or mistyped field."""


class PosProtocolError(PosUnavailableError):
    """The POS answered, but not in a way the catalogue allows (``bad_request``,
    ``unknown_op``, a malformed result). Transient to the outbox, so no payment is dropped;
    visible in health, because it will not fix itself."""


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    op: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Reply:
    id: int
    result: Mapping[str, Any] | None = None
    error: ErrorInfo | None = None


@dataclass(frozen=True, slots=True)
class Undelivered:
    """A link gave up on a request (e.g. no ACK after the last retransmit).

    ``maybe_received`` is ``False`` only when the link knows the POS never took it (it was
    never fully sent); otherwise the outcome is unknown and the bridge must reconcile.
    """

    id: int
    reason: str
    maybe_received: bool = True


# -- payloads --------------------------------------------------------------------------------


def encode_request(request: Request) -> bytes:
    return _dump({"id": request.id, "op": request.op, "args": dict(request.args)})


def decode_request(payload: bytes) -> Request:
    """A request payload, checked: ``WireFormatError`` names what is wrong."""
    data = _load(payload)
    request_id = _id(data)
    op = data.get("op")
    if not isinstance(op, str):
        raise WireFormatError("op: must be a string")
    args = data.get("args", {})
    if not isinstance(args, dict):
        raise WireFormatError("args: must be an object")
    return Request(request_id, op, args)


def encode_reply(reply: Reply) -> bytes:
    if reply.error is not None:
        body: dict[str, Any] = {
            "id": reply.id,
            "ok": False,
            "error": {"code": reply.error.code, "message": reply.error.message},
        }
    else:
        body = {"id": reply.id, "ok": True, "result": dict(reply.result or {})}
    return _dump(body)


def decode_reply(payload: bytes) -> Reply:
    data = _load(payload)
    reply_id = _id(data)
    ok = data.get("ok")
    if ok is True:
        result = data.get("result")
        if not isinstance(result, dict):
            raise WireFormatError("result: must be an object")
        return Reply(reply_id, result=result)
    if ok is False:
        error = data.get("error")
        if not isinstance(error, dict):
            raise WireFormatError("error: must be an object")
        code, message = error.get("code"), error.get("message", "")
        if not isinstance(code, str) or not isinstance(message, str):
            raise WireFormatError("error: code and message must be strings")
        return Reply(reply_id, error=ErrorInfo(code, message))
    raise WireFormatError("ok: must be true or false")


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _load(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD:
        raise WireFormatError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD}")
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireFormatError(f"not UTF-8 JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise WireFormatError("payload must be a JSON object")
    return data


def _id(data: Mapping[str, Any]) -> int:
    value = data.get("id")
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise WireFormatError(f"id: must be an integer from 0 to {MAX_ID}")
    return value


# -- the driver interface as requests ---------------------------------------------------------


def instruction_args(instruction: PaymentInstruction) -> dict[str, Any]:
    return {
        "payment_id": instruction.payment_id,
        "location": instruction.location,
        "table": instruction.table,
        "bill_ref": instruction.bill_ref,
        "currency": instruction.amount.currency,
        "amount": instruction.amount.minor,
        "tip": instruction.tip.minor,
        "label": instruction.label,
    }


def instruction_from_args(args: Mapping[str, Any]) -> PaymentInstruction:
    """The POS side's reading of ``apply_payment`` arguments."""
    currency = _field(args, "currency", str)
    return PaymentInstruction(
        payment_id=_field(args, "payment_id", str),
        location=_field(args, "location", str),
        table=_field(args, "table", int),
        bill_ref=_field(args, "bill_ref", str),
        amount=Money(_field(args, "amount", int), currency),
        tip=Money(_field(args, "tip", int), currency),
        label=_field(args, "label", str),
    )


def payment_result(payment: PosPayment | None) -> dict[str, Any]:
    if payment is None:
        return {"payment": None}
    return {
        "payment": {
            "payment_id": payment.payment_id,
            "pos_reference": payment.pos_reference,
            "bill_ref": payment.bill_ref,
            "currency": payment.amount.currency,
            "amount": payment.amount.minor,
            "tip": payment.tip.minor,
            "bill": bill_to_dict(payment.bill) if payment.bill is not None else None,
        }
    }


def payment_from_result(result: Mapping[str, Any]) -> PosPayment | None:
    data = result.get("payment")
    if data is None:
        return None
    if not isinstance(data, dict):
        raise PosProtocolError("payment: must be an object or null")
    currency = _field(data, "currency", str)
    bill = data.get("bill")
    return PosPayment(
        payment_id=_field(data, "payment_id", str),
        pos_reference=_field(data, "pos_reference", str),
        bill_ref=_field(data, "bill_ref", str),
        amount=Money(_field(data, "amount", int), currency),
        tip=Money(_field(data, "tip", int), currency),
        bill=_bill(bill) if bill is not None else None,
    )


def bill_result(bill: Bill | None) -> dict[str, Any]:
    return {"bill": bill_to_dict(bill) if bill is not None else None}


def bill_from_result(result: Mapping[str, Any]) -> Bill | None:
    data = result.get("bill")
    return _bill(data) if data is not None else None


def tables_result(tables: list[Table]) -> dict[str, Any]:
    return {"tables": [{"number": t.number, "name": t.name} for t in tables]}


def tables_from_result(result: Mapping[str, Any]) -> list[Table]:
    rows = result.get("tables")
    if not isinstance(rows, list):
        raise PosProtocolError("tables: must be a list")
    return [Table(_field(r, "number", int), _field(r, "name", str)) for r in rows]


def health_result(health: DriverHealth) -> dict[str, Any]:
    return {"online": health.online, "detail": health.detail}


def health_from_result(result: Mapping[str, Any]) -> DriverHealth:
    return DriverHealth(_field(result, "online", bool), str(result.get("detail", "")))


def error_reply(request_id: int, exc: BaseException) -> Reply:
    """The reply a POS gives for a driver error (the emulator's side of :func:`raise_for`)."""
    if isinstance(exc, PaymentRefusedError):
        return Reply(request_id, error=ErrorInfo(exc.reason, str(exc)))
    if isinstance(exc, UnknownTableError):
        return Reply(request_id, error=ErrorInfo("unknown_table", str(exc)))
    if isinstance(exc, WireFormatError):
        return Reply(request_id, error=ErrorInfo("bad_request", str(exc)))
    return Reply(request_id, error=ErrorInfo("unavailable", str(exc) or type(exc).__name__))


def raise_for(reply: Reply, request: Request) -> Mapping[str, Any]:
    """The reply's result, or the driver error its code stands for."""
    if reply.error is None:
        return reply.result or {}
    code, message = reply.error.code, reply.error.message
    if code in REFUSAL_CODES:
        raise PaymentRefusedError(code, message)
    if code == "unknown_table":
        raise UnknownTableError(str(request.args.get("location")), int(request.args["table"]))
    if code == "unavailable":
        raise PosUnavailableError(f"POS unavailable: {message}")
    raise PosProtocolError(f"POS answered {code}: {message}")


def _field(data: Any, key: str, kind: type[Any]) -> Any:
    if not isinstance(data, Mapping):
        raise WireFormatError(f"{key}: its parent must be an object")
    value = data.get(key)
    if type(value) is not kind:
        raise WireFormatError(f"{key}: must be {kind.__name__}")
    return value


def _bill(data: Any) -> Bill:
    if not isinstance(data, dict):
        raise PosProtocolError("bill: must be an object")
    try:
        return bill_from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise PosProtocolError(f"bill: {exc!r}") from exc

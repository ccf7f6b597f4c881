"""The message catalogue, pure: payloads in and out, conversions, error mapping."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.core.money import Money
from drivers.base import DriverHealth, PaymentInstruction, PosPayment, Table
from drivers.errors import PaymentRefusedError, PosUnavailableError, UnknownTableError
from drivers.simulator.model import make_bill
from drivers.wire import messages
from drivers.wire.messages import (
    ErrorInfo,
    PosProtocolError,
    Reply,
    Request,
    WireFormatError,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BILL = make_bill("1", 4, 1, NOW, Random(3), "AUD")


def test_request_round_trip() -> None:
    request = Request(7, "get_open_bill", {"location": "1", "table": 4})
    payload = messages.encode_request(request)
    assert payload == b'{"id":7,"op":"get_open_bill","args":{"location":"1","table":4}}'
    assert messages.decode_request(payload) == request


def test_reply_round_trips() -> None:
    ok = Reply(9, result=messages.bill_result(BILL))
    assert messages.decode_reply(messages.encode_reply(ok)) == ok
    failed = Reply(9, error=ErrorInfo("bill_closed", "bill B is closed"))
    assert messages.decode_reply(messages.encode_reply(failed)) == failed


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        (b"\xff", "UTF-8"),
        (b"[1]", "object"),
        (b'{"op":"health"}', "id"),
        (b'{"id":-1,"op":"health"}', "id"),
        (b'{"id":4294967296,"op":"health"}', "id"),
        (b'{"id":true,"op":"health"}', "id"),
        (b'{"id":1,"op":3}', "op"),
        (b'{"id":1,"op":"health","args":[]}', "args"),
    ],
)
def test_bad_requests_name_what_is_wrong(payload: bytes, names: str) -> None:
    with pytest.raises(WireFormatError, match=names):
        messages.decode_request(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"id":1}',
        b'{"id":1,"ok":true}',
        b'{"id":1,"ok":false}',
        b'{"id":1,"ok":false,"error":{"code":1}}',
        b'{"id":1,"ok":"yes","result":{}}',
    ],
)
def test_bad_replies_are_typed(payload: bytes) -> None:
    with pytest.raises(WireFormatError):
        messages.decode_reply(payload)


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(WireFormatError, match="over"):
        messages.decode_reply(b" " * (messages.MAX_PAYLOAD + 1))


@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_typed(payload: bytes) -> None:
    for decode in (messages.decode_request, messages.decode_reply):
        with contextlib.suppress(WireFormatError):
            decode(payload)


def test_payment_instruction_survives_the_wire() -> None:
    instruction = PaymentInstruction(
        "pay-1", "1", 4, BILL.id, Money(1250, "AUD"), Money(100, "AUD"), "LOKE"
    )
    args = json.loads(json.dumps(messages.instruction_args(instruction)))
    assert messages.instruction_from_args(args) == instruction


def test_amounts_must_be_integers_on_the_wire() -> None:
    args = messages.instruction_args(
        PaymentInstruction("p", "1", 4, BILL.id, Money(1, "AUD"), Money(0, "AUD"), "x")
    )
    with pytest.raises(WireFormatError, match="amount"):
        messages.instruction_from_args({**args, "amount": 12.5})


def test_pos_payment_and_bill_survive_the_wire() -> None:
    payment = PosPayment("pay-1", "SIM-000001", BILL.id, Money(500, "AUD"), Money(0, "AUD"), BILL)
    result = json.loads(json.dumps(messages.payment_result(payment)))
    assert messages.payment_from_result(result) == payment
    assert messages.payment_from_result({"payment": None}) is None
    assert messages.bill_from_result(json.loads(json.dumps(messages.bill_result(BILL)))) == BILL
    assert messages.bill_from_result({"bill": None}) is None


def test_tables_and_health_survive_the_wire() -> None:
    tables = [Table(1, "Table 1"), Table(2, "Bar")]
    assert messages.tables_from_result(messages.tables_result(tables)) == tables
    health = messages.health_from_result(messages.health_result(DriverHealth(True, "ok")))
    assert health == DriverHealth(True, "ok")


def test_a_malformed_bill_is_the_pos_fault() -> None:
    with pytest.raises(PosProtocolError, match="bill"):
        messages.bill_from_result({"bill": {"id": "x"}})
    with pytest.raises(PosProtocolError):
        messages.tables_from_result({"tables": "many"})


REQUEST = Request(3, "get_open_bill", {"location": "1", "table": 99})


@pytest.mark.parametrize("code", sorted(messages.REFUSAL_CODES))
def test_refusal_codes_raise_payment_refused(code: str) -> None:
    with pytest.raises(PaymentRefusedError) as caught:
        messages.raise_for(Reply(3, error=ErrorInfo(code, "no")), REQUEST)
    assert caught.value.reason == code


def test_other_codes_raise_their_typed_errors() -> None:
    with pytest.raises(UnknownTableError) as unknown:
        messages.raise_for(Reply(3, error=ErrorInfo("unknown_table", "no")), REQUEST)
    assert (unknown.value.location, unknown.value.table) == ("1", 99)
    with pytest.raises(PosUnavailableError) as busy:
        messages.raise_for(Reply(3, error=ErrorInfo("unavailable", "busy")), REQUEST)
    assert not isinstance(busy.value, PosProtocolError)
    for code in ("bad_request", "unknown_op", "something_new"):
        with pytest.raises(PosProtocolError, match=code):
            messages.raise_for(Reply(3, error=ErrorInfo(code, "?")), REQUEST)


@pytest.mark.parametrize(
    "error",
    [
        PaymentRefusedError("bill_closed", "closed"),
        UnknownTableError("1", 99),
        PosUnavailableError("busy"),
    ],
)
def test_error_reply_is_the_inverse_of_raise_for(error: Exception) -> None:
    reply = messages.error_reply(3, error)
    with pytest.raises(type(error)):
        messages.raise_for(reply, REQUEST)


def test_the_catalogue_page_examples_are_what_the_code_speaks() -> None:
    from pathlib import Path

    page = (Path(__file__).parents[3] / "docs" / "drivers" / "messages.md").read_text()
    blocks = page.split("```json\n")[1:]
    request_example = blocks[0].split("\n")[0]
    assert messages.decode_request(request_example.encode()) == Request(
        7, "get_open_bill", {"location": "1", "table": 4}
    )
    bill_example = json.loads(blocks[2].split("```")[0])
    bill = messages.bill_from_result({"bill": bill_example})
    assert bill is not None and bill.balance == Money(3 * (900 + 150) - 500, "AUD")

"""Which requests a worker answers on its fast path, and which go to aiohttp; bytes only."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.http.head import HAND_OVER, MAX_HEAD_BYTES, FastRequest, Route, read_request

MAX_BODY = 2048
BILL = b"GET /loke/v1/locations/loc-main/tables/12/bill HTTP/1.1\r\n"
PAY = b"POST /loke/v1/locations/loc-main/tables/12/payments HTTP/1.1\r\n"
JSON = b"Content-Type: application/json\r\n"


def request(line: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    return line + b"".join(headers) + b"\r\n" + body


def test_each_loke_route_with_its_parameters() -> None:
    cases = {
        b"GET /loke/v1/locations/loc-main/tables HTTP/1.1\r\n": (Route.TABLES, None, None),
        BILL: (Route.BILL, "12", None),
        b"GET /loke/v1/locations/loc-main/payments/pay-1.a_b~c HTTP/1.1\r\n": (
            Route.PAYMENT_STATUS,
            None,
            "pay-1.a_b~c",
        ),
    }
    for line, (route, table, payment_id) in cases.items():
        raw = request(line, b"Host: bridge\r\n", b"Authorization: Bearer s3cret\r\n")
        parsed = read_request(raw, MAX_BODY)
        assert isinstance(parsed, FastRequest)
        assert (parsed.route, parsed.location, parsed.table, parsed.payment_id) == (
            route,
            "loc-main",
            table,
            payment_id,
        )
        assert parsed.headers == {"host": "bridge", "authorization": "Bearer s3cret"}
        assert (parsed.body, parsed.close, parsed.length) == (b"", False, len(raw))


def test_a_payment_is_framed_by_its_content_length_alone() -> None:
    raw = request(PAY, JSON, b"Content-Length: 7\r\n", body=b'{"a":1}')
    parsed = read_request(raw + b"GET /next", MAX_BODY)  # a pipelined request follows
    assert isinstance(parsed, FastRequest)
    assert parsed.route is Route.PAYMENT and parsed.body == b'{"a":1}'
    assert parsed.length == len(raw)


def test_incomplete_heads_and_bodies_wait_at_every_byte() -> None:
    raw = request(PAY, JSON, b"Content-Length: 7\r\n", body=b'{"a":1}')
    for cut in range(len(raw)):
        assert read_request(raw[:cut], MAX_BODY) is None, cut
    assert isinstance(read_request(raw, MAX_BODY), FastRequest)


def test_whitespace_around_values_and_name_case_do_not_matter() -> None:
    raw = request(BILL, b"AUTHORIZATION: \t Bearer a b \t\r\n", b"X-Empty:\r\n")
    parsed = read_request(raw, MAX_BODY)
    assert isinstance(parsed, FastRequest)
    assert parsed.headers == {"authorization": "Bearer a b", "x-empty": ""}


@pytest.mark.parametrize(
    ("value", "close"),
    [(b"close", True), (b"keep-alive", False), (b"Keep-Alive, close", True)],
)
def test_connection_close_is_honoured(value: bytes, close: bool) -> None:
    parsed = read_request(request(BILL, b"Connection: " + value + b"\r\n"), MAX_BODY)
    assert isinstance(parsed, FastRequest) and parsed.close is close


HANDED_OVER = {
    "HTTP/1.0": request(b"GET /loke/v1/locations/loc-main/tables/12/bill HTTP/1.0\r\n"),
    "HEAD": request(b"HEAD /loke/v1/locations/loc-main/tables/12/bill HTTP/1.1\r\n"),
    "PUT": request(b"PUT /loke/v1/locations/loc-main/tables/12/payments HTTP/1.1\r\n"),
    "lower-case method": request(b"get /loke/v1/locations/loc-main/tables/12/bill HTTP/1.1\r\n"),
    "two spaces": request(b"GET  /loke/v1/locations/loc-main/tables/12/bill HTTP/1.1\r\n"),
    "query": request(b"GET /loke/v1/locations/loc-main/tables/12/bill?x=1 HTTP/1.1\r\n"),
    "percent": request(b"GET /loke/v1/locations/loc%2Dmain/tables/12/bill HTTP/1.1\r\n"),
    "braces": request(b"GET /loke/v1/locations/loc-main/payments/{x} HTTP/1.1\r\n"),
    "empty segment": request(b"GET /loke/v1/locations//tables/12/bill HTTP/1.1\r\n"),
    "trailing slash": request(b"GET /loke/v1/locations/loc-main/tables/12/bill/ HTTP/1.1\r\n"),
    "absolute form": request(b"GET http://h/loke/v1/locations/l/tables/1/bill HTTP/1.1\r\n"),
    "other URL": request(b"GET /api/status HTTP/1.1\r\n"),
    "GET to payments": request(b"GET /loke/v1/locations/loc-main/tables/12/payments HTTP/1.1\r\n"),
    "POST to bill": request(b"POST /loke/v1/locations/loc-main/tables/12/bill HTTP/1.1\r\n"),
    "chunked": request(PAY, JSON, b"Transfer-Encoding: chunked\r\n", body=b"0\r\n\r\n"),
    "CL and TE": request(
        PAY, JSON, b"Content-Length: 2\r\n", b"Transfer-Encoding: chunked\r\n", body=b"{}"
    ),
    "two lengths": request(PAY, JSON, b"Content-Length: 2\r\n", b"Content-Length: 2\r\n"),
    "signed length": request(PAY, JSON, b"Content-Length: +2\r\n", body=b"{}"),
    "hex length": request(PAY, JSON, b"Content-Length: 0x2\r\n", body=b"{}"),
    "length over the limit": request(PAY, JSON, b"Content-Length: 2049\r\n"),
    "GET with a body": request(BILL, b"Content-Length: 2\r\n", body=b"{}"),
    "expect": request(PAY, JSON, b"Content-Length: 2\r\n", b"Expect: 100-continue\r\n"),
    "upgrade": request(BILL, b"Upgrade: websocket\r\n"),
    "other connection token": request(BILL, b"Connection: upgrade\r\n"),
    "charset": request(PAY, b"Content-Type: application/json; charset=utf-8\r\n"),
    "no content type": request(PAY, b"Content-Length: 2\r\n", body=b"{}"),
    "folded line": request(BILL, b"Authorization: Bearer\r\n", b" s3cret\r\n"),
    "space before colon": request(BILL, b"Authorization : Bearer s3cret\r\n"),
    "no colon": request(BILL, b"Authorization Bearer s3cret\r\n"),
    "NUL in value": request(BILL, b"Authorization: Bearer s3\x00cret\r\n"),
    "bare CR in value": request(BILL, b"Authorization: Bearer s3\rcret\r\n"),
    "non-ASCII value": request(BILL, b"X-Name: caf\xc3\xa9\r\n"),
    "repeated header": request(
        BILL, b"Authorization: Bearer a\r\n", b"Authorization: Bearer b\r\n"
    ),
    "bare LF lines": b"GET /loke/v1/locations/loc-main/tables/12/bill HTTP/1.1\nHost: x\n\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
}


@pytest.mark.parametrize("raw", list(HANDED_OVER.values()), ids=list(HANDED_OVER))
def test_anything_unusual_is_handed_to_aiohttp(raw: bytes) -> None:
    assert read_request(raw, MAX_BODY) is HAND_OVER


def test_a_head_that_never_ends_is_handed_over() -> None:
    raw = BILL + b"X-Long: " + b"a" * MAX_HEAD_BYTES
    assert read_request(raw[: MAX_HEAD_BYTES - 1], MAX_BODY) is None
    assert read_request(raw, MAX_BODY) is HAND_OVER


@given(st.binary(max_size=600))
def test_any_bytes_give_one_of_three_outcomes(data: bytes) -> None:
    parsed = read_request(data, MAX_BODY)
    assert parsed is None or parsed is HAND_OVER or isinstance(parsed, FastRequest)
    if isinstance(parsed, FastRequest):
        assert 0 < parsed.length <= len(data)


@given(st.lists(st.sampled_from([BILL, PAY, JSON, b"Content-Length: 2\r\n", b"\r\n", b"{}"])))
def test_any_arrangement_of_real_parts_is_never_misread(parts: list[bytes]) -> None:
    data = b"".join(parts)
    parsed = read_request(data, MAX_BODY)
    if isinstance(parsed, FastRequest):  # then it is exactly one well-formed request
        head_end = data.index(b"\r\n\r\n") + 4
        assert parsed.length == head_end + len(parsed.body)
        assert data[:head_end].count(b"\r\n") == len(parsed.headers) + 2

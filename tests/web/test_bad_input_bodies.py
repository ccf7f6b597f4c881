"""Bad bodies get a typed 4xx JSON error: never a 500, never a trace.

This module: arbitrary bytes, bytes that are not UTF-8, NaN and Infinity, integers too long to
parse, duplicate keys, a wrong Content-Type, bodies over (and exactly at) the size limit, and
gzip (bodies that do not decompress, and bombs). Shared helpers, constants and strategies are
in ``tests/web/bad_input.py``.

Real bridge, real socket, nothing of ours mocked; how Hypothesis runs here (on the test's own
event loop, derandomized) is explained in ``tests/web/bad_input.py``.
"""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.app import create_app
from bridge.runtime import RUNTIME
from tests.conftest import (
    ADMIN_AUTH,
    HMAC_LOCATION,
    LOCATION,
    LOKE_AUTH,
    fetch_bill,
    loke_url,
    make_config,
    payment_body,
)
from tests.web.bad_input import (
    FIELDS,
    FUZZ,
    PAY_HEADERS,
    PAY_URL,
    SIM,
    TABLE,
    assert_not_recorded,
    assert_pos_untouched,
    assert_typed_error,
    json_values,
    pos_payments,
    post_payment,
    send,
)

DEFAULT_LIMIT = 64 * 1024


# -- raw bytes -------------------------------------------------------------------------------


@FUZZ
@given(raw=st.binary(max_size=300))
async def test_arbitrary_bytes_are_refused(client, raw):
    for path, headers in [(PAY_URL, PAY_HEADERS), ("/api/drivers/main/simulator", ADMIN_AUTH)]:
        response, text = await send(client, "POST", path, raw, headers)
        assert_typed_error(response, text, 400)
    assert_pos_untouched(client)


NOT_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc3\x28",
    b"\xc0\xaf",
    b"\xf5\x80\x80\x80",
    b"\xe2\x28\xa1",
]


@FUZZ
@given(position=st.integers(min_value=0), junk=st.sampled_from(NOT_UTF8))
async def test_non_utf8_bytes_are_invalid_json(client, position, junk):
    bill = await fetch_bill(client, TABLE)
    raw = json.dumps(payment_body(bill, "fuzz-utf8", 100)).encode()
    position %= len(raw)
    raw = raw[:position] + junk + raw[position:]
    response, text = await post_payment(client, raw)
    assert_typed_error(response, text, 400, "invalid_json")
    response, text = await send(client, "POST", "/api/drivers/main/simulator", raw, ADMIN_AUTH)
    assert_typed_error(response, text, 400, "invalid_json")
    assert_pos_untouched(client)


def with_literal(body: dict[str, Any], field: str, literal: str) -> bytes:
    """``body`` as JSON with ``field``'s value replaced by a bare ``literal``."""
    marker = "__LITERAL__"
    target = body.setdefault("customer", {}) if field.startswith("customer.") else body
    target[field.removeprefix("customer.")] = marker
    return json.dumps(body).replace(json.dumps(marker), literal).encode()


@FUZZ
@given(
    field=st.sampled_from([*FIELDS, "customer.email"]),
    literal=st.sampled_from(["NaN", "Infinity", "-Infinity"]),
)
async def test_nan_and_infinity_are_invalid_json(client, field, literal):
    bill = await fetch_bill(client, TABLE)
    raw = with_literal(payment_body(bill, "fuzz-nan", 100), field, literal)
    response, text = await post_payment(client, raw)
    assert_typed_error(response, text, 400, "invalid_json")
    raw = json.dumps({"mode": "online", "latencyMs": "__LITERAL__"}).replace(
        '"__LITERAL__"', literal
    )
    response, text = await send(
        client, "POST", "/api/drivers/main/simulator", raw.encode(), ADMIN_AUTH
    )
    assert_typed_error(response, text, 400, "invalid_json")
    assert_pos_untouched(client)


LONE_SURROGATES = ['"\\ud800"', '"a\\udfff"', '"\\udc00\\ud800"', '"\\uDBFFx"']


@FUZZ
@given(
    field=st.sampled_from([*FIELDS, "customer.email"]),
    literal=st.sampled_from(LONE_SURROGATES),
    as_key=st.booleans(),
)
async def test_lone_surrogates_are_invalid_json(client, field, literal, as_key):
    """A ``\\uD800`` escape with no partner is valid JSON syntax but not Unicode text: it
    could not be hashed into the fingerprint, stored or echoed (it used to be a 500). As a
    key, given twice too, so the duplicate check meets it first."""
    bill = await fetch_bill(client, TABLE)
    body = payment_body(bill, "fuzz-surrogate", 100)
    if as_key:
        raw = json.dumps(body)[:-1] + f", {literal}: 1, {literal}: 2}}"
        raw_bytes = raw.encode()
    else:
        raw_bytes = with_literal(body, field, literal)
    response, text = await post_payment(client, raw_bytes)
    assert_typed_error(response, text, 400)
    assert '"error":"internal_error"' not in text.replace(" ", "")
    await assert_not_recorded(client, "fuzz-surrogate")
    assert_pos_untouched(client)


@FUZZ
@given(field=st.sampled_from(["amount", "tip", "customer.id"]), digits=st.integers(4301, 30000))
async def test_integers_too_long_to_parse_are_refused(client, field, digits):
    """Python refuses to parse integers of more than 4300 digits (CVE-2020-10735)."""
    bill = await fetch_bill(client, TABLE)
    raw = with_literal(payment_body(bill, "fuzz-huge", 100), field, "9" * digits)
    response, text = await post_payment(client, raw)
    assert_typed_error(response, text, 400, "invalid_json")
    raw = b'{"mode": "online", "latencyMs": ' + b"1" * digits + b"}"
    response, text = await send(client, "POST", "/api/drivers/main/simulator", raw, ADMIN_AUTH)
    assert_typed_error(response, text, 400, "invalid_json")
    assert_pos_untouched(client)


@FUZZ
@given(key=st.sampled_from(FIELDS), value=json_values)
async def test_duplicate_keys_are_refused(client, key, value):
    bill = await fetch_bill(client, TABLE)
    pairs = [*payment_body(bill, "fuzz-dup", 100).items(), (key, value)]
    if sum(1 for k, _ in pairs if k == key) < 2:
        pairs.append((key, value))
    raw = "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}"
    response, text = await post_payment(client, raw.encode())
    error = assert_typed_error(response, text, 400, "duplicate_field")
    assert error["details"]["field"] == key
    response, text = await send(
        client,
        "POST",
        "/api/drivers/main/simulator",
        b'{"mode": "online", "mode": "offline"}',
        ADMIN_AUTH,
    )
    assert_typed_error(response, text, 400, "duplicate_field")
    assert client.app[RUNTIME].drivers["main"].control.mode == "online"
    await assert_not_recorded(client, "fuzz-dup")
    assert_pos_untouched(client)


WRONG_TYPES = [
    None,
    "text/plain",
    "text/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=zz",
    "application/xml",
    "application/octet-stream",
    "application/problem+json",
    "application/json-seq",
    "*/*",
]


@FUZZ
@given(content_type=st.sampled_from(WRONG_TYPES))
async def test_a_valid_payment_with_a_wrong_content_type_is_refused(client, content_type):
    payment_id = f"fuzz-{uuid.uuid4()}"
    bill = await fetch_bill(client, TABLE)
    raw = json.dumps(payment_body(bill, payment_id, 100)).encode()
    headers = {**LOKE_AUTH, **({"Content-Type": content_type} if content_type else {})}
    response, text = await send(
        client, "POST", PAY_URL, raw, headers, no_content_type=content_type is None
    )
    assert_typed_error(response, text, 415, "unsupported_media_type")
    await assert_not_recorded(client, payment_id)
    assert_pos_untouched(client)


# -- bodies and their size ---------------------------------------------------------------------


# Every route that reads its body (the platform's GETs do: an HMAC signs the raw body). The
# admin GETs, /healthz and /openapi.json never read a body, so they ignore one of any size.
BODY_ROUTES = [
    ("POST", PAY_URL, PAY_HEADERS),
    ("POST", "/api/drivers/main/simulator", ADMIN_AUTH),
    ("POST", "/api/drivers/main/simulator/tables/3/bill", ADMIN_AUTH),
    ("POST", "/api/drivers/main/simulator/tables/3/items", ADMIN_AUTH),
    ("POST", "/api/drivers/main/simulator/tables/3/till-payments", ADMIN_AUTH),
    ("GET", loke_url(3), LOKE_AUTH),
    ("GET", f"/loke/v1/locations/{LOCATION}/tables", LOKE_AUTH),
    ("GET", f"/loke/v1/locations/{LOCATION}/payments/p-1", LOKE_AUTH),
    ("GET", f"/loke/v1/locations/{HMAC_LOCATION}/tables", {}),
]


@pytest.mark.parametrize(("method", "path", "headers"), BODY_ROUTES)
async def test_a_body_over_the_default_limit_is_413(client, method, path, headers):
    assert client.app[RUNTIME].config.server.max_body_bytes == DEFAULT_LIMIT
    body = b'{"a": "' + b"x" * DEFAULT_LIMIT + b'"}'
    response, text = await send(client, method, path, body, headers)
    assert_typed_error(response, text, 413, "payload_too_large")
    assert_pos_untouched(client)


def padded(body: dict[str, Any], size: int) -> bytes:
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


async def test_a_body_of_exactly_the_limit_is_accepted(client):
    bill = await fetch_bill(client, TABLE)
    raw = padded(payment_body(bill, "at-the-limit", 100), DEFAULT_LIMIT)
    assert len(raw) == DEFAULT_LIMIT
    response, text = await post_payment(client, raw)
    assert response.status == 201, text
    assert [p[0] for p in pos_payments(client)] == ["at-the-limit"]


async def test_the_configured_body_limit_is_enforced(aiohttp_client, tmp_path):
    config = make_config(tmp_path, server={"max_body_bytes": 2048})
    client = await aiohttp_client(create_app(config))
    bill = await fetch_bill(client, TABLE)
    over = padded(payment_body(bill, "over", 100), 2049)
    response, text = await post_payment(client, over)
    assert_typed_error(response, text, 413, "payload_too_large")
    response, text = await send(client, "POST", "/api/drivers/main/simulator", over, ADMIN_AUTH)
    assert_typed_error(response, text, 413, "payload_too_large")
    assert_pos_untouched(client)
    response, text = await post_payment(client, padded(payment_body(bill, "fits", 100), 2048))
    assert response.status == 201, text


@pytest.mark.parametrize(
    ("path", "headers"), [(PAY_URL, PAY_HEADERS), (SIM.format(driver="main"), ADMIN_AUTH)]
)
async def test_a_body_that_does_not_decompress_is_a_typed_400(client, path, headers):
    headers = {**headers, "Content-Encoding": "gzip"}
    response, text = await send(client, "POST", path, b"not gzip at all", headers)
    assert_typed_error(response, text, 400)
    assert_pos_untouched(client)


async def test_a_gzipped_body_is_read_like_any_other(client):
    bill = await fetch_bill(client, TABLE)
    raw = gzip.compress(json.dumps(payment_body(bill, "gzipped", 100, extra=1)).encode())
    headers = {**PAY_HEADERS, "Content-Encoding": "gzip"}
    response, text = await send(client, "POST", PAY_URL, raw, headers)
    assert_typed_error(response, text, 400, "unknown_field")


async def test_a_bomb_is_measured_after_decompression(client):
    raw = gzip.compress(b" " * (DEFAULT_LIMIT * 4) + b"{}")
    assert len(raw) < DEFAULT_LIMIT
    headers = {**PAY_HEADERS, "Content-Encoding": "gzip"}
    response, text = await send(client, "POST", PAY_URL, raw, headers)
    assert_typed_error(response, text, 413, "payload_too_large")

"""The HTTP/1.1 bytes between a tunnel stream and the in-process server, with bytes only:
what a request head may carry, and responses as aiohttp writes them, split anywhere."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.uplink.http1 import (
    BadTunnelRequestError,
    Head,
    ResponseFramingError,
    ResponseReader,
    chunk,
    encode_request_head,
)

HOST = b"127.0.0.1:8080"


def test_a_get_keeps_its_headers_in_order_and_gets_the_bridges_host():
    framing = encode_request_head(
        "GET",
        "/t?x=%2F",
        [
            (b"Host", b"relay"),
            (b"X-A", b"1"),
            (b"x-a", b"2"),
            (b"Connection", b"x-b"),
            (b"X-B", b""),
        ],
        HOST,
        has_body=False,
    )
    assert (
        framing.head == b"GET /t?x=%2F HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
    )
    assert not framing.chunked


def test_headers_from_any_iterable_and_hop_by_hop_ones_dropped():
    pairs = iter([(b"Keep-Alive", b"5"), (b"Connection", b"X-B"), (b"x-b", b"1"), (b"X-C", b"2")])
    framing = encode_request_head("GET", "/", pairs, HOST, has_body=False)
    assert framing.head == b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-C: 2\r\n\r\n"


def test_a_body_without_a_length_is_chunked_and_a_bodiless_post_says_zero():
    streamed = encode_request_head("POST", "/p", [], HOST, has_body=True)
    assert streamed.chunked and streamed.head.endswith(b"Transfer-Encoding: chunked\r\n\r\n")
    empty = encode_request_head("POST", "/p", [], HOST, has_body=False)
    assert empty.head.endswith(b"Content-Length: 0\r\n\r\n")
    sized = encode_request_head("PUT", "/p", [(b"Content-Length", b"3")], HOST, has_body=True)
    assert not sized.chunked and sized.head.endswith(b"Content-Length: 3\r\n\r\n")
    assert chunk(b"abc") == b"3\r\nabc\r\n"


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/a b", []),
        ("GET", "/a\r\nX: 1", []),
        ("GET", "http://elsewhere/", []),
        ("G T", "/", []),
        ("GET", "/", [(b"X-A", b"1\r\nContent-Length: 5")]),
        ("GET", "/", [(b"X-A\r\nB", b"1")]),
        ("GET", "/", [(b"X A", b"1")]),
        ("GET", "/", [(b"X-A", b"\0")]),
        ("GET", "/", [(b"X-A", b"1"), (b"", b"2")]),
        ("GET", "/", [(b"X-A", b"1"), (b"X-B", b"2\n"), (b"X-C", b"3")]),
        ("GET", "/", [(b"Connection", b"x-b"), (b"X-A", b"1\r")]),
        ("POST", "/", [(b"Content-Length", b"1"), (b"Content-Length", b"2")]),
        ("POST", "/", [(b"Content-Length", b"-1")]),
    ],
)
def test_nothing_that_could_smuggle_a_second_request_is_written(method, path, headers):
    with pytest.raises(BadTunnelRequestError):
        encode_request_head(method, path, headers, HOST, has_body=False)


def _read(data: bytes, cuts: list[int], head_request: bool = False) -> tuple[Head, bytes, bool]:
    reader = ResponseReader(head_request)
    items: list[Head | bytes] = []
    last = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        items += reader.feed(data[last:cut])
        last = cut
    heads = [i for i in items if isinstance(i, Head)]
    assert len(heads) == 1
    return heads[0], b"".join(i for i in items if isinstance(i, bytes)), reader.done


BODY = b"0123456789" * 50
LENGTH = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\nX-A: 1\r\n\r\n" + BODY
CHUNKED = (
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(chunk(BODY[i : i + 64]) for i in range(0, 500, 64))
    + b"0\r\n\r\n"
)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n" + LENGTH


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([LENGTH, CHUNKED, CONTINUE]), st.lists(st.integers(0, 2000), max_size=6))
def test_responses_read_the_same_however_the_bytes_are_split(raw, cuts):
    head, body, done = _read(raw, cuts)
    assert head.status in (200, 201) and body == BODY and done


def test_no_body_after_head_or_204_and_a_close_delimited_body_ends_at_eof():
    head, body, done = _read(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", [], True)
    assert (head.status, body, done) == (200, b"", True)
    assert _read(b"HTTP/1.1 204 No Content\r\n\r\n", [])[2]
    reader = ResponseReader(False)
    items = reader.feed(b"HTTP/1.0 200 OK\r\n\r\nabc")
    assert items[1:] == [b"abc"] and not reader.done and reader.eof()
    assert not ResponseReader(False).eof()


def test_a_response_that_closes_the_connection_says_so():
    reader = ResponseReader(False)
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: Close\r\n\r\n")
    assert reader.done and not reader.keep_alive
    reader = ResponseReader(False)
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert reader.done and reader.keep_alive


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab",
        b"SPDY/3 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    ],
)
def test_bytes_that_are_not_such_a_response_are_refused(raw):
    with pytest.raises(ResponseFramingError):
        ResponseReader(False).feed(raw)

"""``send_response`` and ``send_request_head`` with a body, the one-call complete answer and
request, with bytes only: each must put on the wire exactly what the head, ``send_body`` and
``send_end`` calls put there, and leave the streams and windows as they leave them, whether
or not the body fits at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.tunnel.pairs import SMALL, connected, frames_in, transfer
from tunnel.errors import TunnelUsageError
from tunnel.messages import BodyChunk, EndOfBody, Limits, ResponseHead
from tunnel.protocol import StreamState, TunnelProtocol

HEADERS = [(b"Content-Type", b"application/json")]
Setup = Callable[[TunnelProtocol, TunnelProtocol], int]


def one_request(client: TunnelProtocol, relay: TunnelProtocol, *, end: bool = True) -> int:
    sid = relay.send_request_head("GET", "/bills/7")
    if end:
        relay.send_end(sid)
    transfer(relay, client)
    client.events_received()
    client.data_to_send()
    return sid


def three_calls(client: TunnelProtocol, sid: int, body: bytes) -> None:
    client.send_response_head(sid, 200, HEADERS)
    client.send_body(sid, body)
    client.send_end(sid)


def both_ways(body: bytes, limits: Limits = SMALL, setup: Setup = one_request) -> list[bytes]:
    """Send the same answer both ways on identical connections; check that bytes and state
    match, and return the bytes."""
    sent = []
    for send in (three_calls, lambda c, s, b: c.send_response(s, 200, HEADERS, b)):
        client, relay = connected(limits)
        sid = setup(client, relay)
        send(client, sid, body)
        state = (
            client.stream_state(sid),
            client.send_window(sid),
            client.send_window(),
            client.queued(sid),
            client.queued(),
            client.open_streams,
        )
        sent.append((client.data_to_send(), state))
    assert sent[0] == sent[1]
    return sent[0][0]


def test_a_bill_is_the_head_one_chunk_and_the_end_as_the_three_calls_send_them():
    sid = 1  # the relay's first stream
    data = both_ways(b'{"total": 1250}')
    assert len(data) == 3  # one item per frame, as before
    assert frames_in(data) == [
        ResponseHead(sid, 200, tuple(HEADERS)),
        BodyChunk(sid, b'{"total": 1250}'),
        EndOfBody(sid),
    ]


def test_an_empty_body_sends_no_chunk():
    assert [type(f) for f in frames_in(both_ways(b""))] == [ResponseHead, EndOfBody]


@pytest.mark.parametrize(
    "size",
    [
        SMALL.max_frame_bytes,  # just fits
        SMALL.max_frame_bytes + 1,  # two frames
        SMALL.initial_stream_window + 1,  # past the stream window: the rest waits
    ],
)
def test_bodies_at_and_past_one_frame_and_the_stream_window_match(size):
    both_ways(bytes(size))


def test_a_body_past_the_connection_window_waits_as_it_did():
    limits = Limits(max_frame_bytes=16_384, initial_stream_window=40_000, connection_window=1_000)
    frames = frames_in(both_ways(bytes(5_000), limits))
    sizes = [len(f.data) for f in frames if isinstance(f, BodyChunk)]
    assert sizes == [1_000]


def test_other_streams_held_back_by_their_windows_stay_held_and_in_order():
    limits = Limits(max_frame_bytes=16_384, initial_stream_window=8_000, connection_window=9_000)

    def two_streams(client: TunnelProtocol, relay: TunnelProtocol) -> int:
        first = one_request(client, relay)
        client.send_response_head(first, 200)
        client.send_body(first, bytes(10_000))  # 8 000 go; 2 000 wait for the stream window
        return one_request(client, relay)

    for body in (b"", bytes(500), bytes(1_000), bytes(1_001)):  # the connection has 1 000 left
        both_ways(body, limits, two_streams)


def test_the_request_body_still_open_leaves_the_stream_half_closed():
    def open_request(client: TunnelProtocol, relay: TunnelProtocol) -> int:
        return one_request(client, relay, end=False)

    client, relay = connected()
    sid = open_request(client, relay)
    client.send_response(sid, 200, HEADERS, b"{}")
    assert client.stream_state(sid) is StreamState.HALF_CLOSED_LOCAL
    both_ways(b"{}", setup=open_request)


def test_a_cancelled_stream_drops_the_answer():
    client, relay = connected()
    sid = one_request(client, relay)
    client.send_cancel(sid)
    client.data_to_send()
    client.send_response(sid, 200, HEADERS, b"{}")
    assert client.data_to_send() == []


def test_misuse_is_refused_before_anything_is_sent():
    client, relay = connected()
    sid = one_request(client, relay)
    with pytest.raises(TunnelUsageError):
        relay.send_response(sid, 200)  # only the client answers
    with pytest.raises(TunnelUsageError):  # a head past the frame limit
        client.send_response(sid, 200, [(b"X-Big", bytes(SMALL.max_frame_bytes))], b"{}")
    assert client.data_to_send() == []
    assert client.stream_state(sid) is StreamState.HALF_CLOSED_REMOTE
    client.send_response_head(sid, 200)
    with pytest.raises(TunnelUsageError):
        client.send_response(sid, 200, HEADERS, b"{}")  # it has a head already
    with pytest.raises(TunnelUsageError):
        client.send_response(sid + 2, 200)  # never opened


def request_both_ways(body: bytes, limits: Limits = SMALL) -> list[bytes]:
    """``send_request_head`` with the whole ``body`` against the head, body and end calls,
    on identical connections: the same bytes and state; returns the bytes."""
    sent = []
    for whole in (False, True):
        _client, relay = connected(limits)
        if whole:
            sid = relay.send_request_head("POST", "/pay", HEADERS, body)
        else:
            sid = relay.send_request_head("POST", "/pay", HEADERS)
            relay.send_body(sid, body)
            relay.send_end(sid)
        state = (
            relay.stream_state(sid),
            relay.send_window(sid),
            relay.send_window(),
            relay.queued(sid),
            relay.open_streams,
        )
        sent.append((relay.data_to_send(), state))
    assert sent[0] == sent[1]
    return sent[0][0]


@pytest.mark.parametrize(
    "size",
    [0, 100, SMALL.max_frame_bytes, SMALL.max_frame_bytes + 1, SMALL.initial_stream_window + 1],
)
def test_a_whole_request_is_framed_as_the_head_body_and_end_calls_frame_it(size):
    frames = frames_in(request_both_ways(bytes(size)))
    assert isinstance(frames[-1], EndOfBody) or size > SMALL.initial_stream_window
    if size <= SMALL.max_frame_bytes:
        assert len(frames) == (3 if size else 2)  # head, [chunk,] end: at once

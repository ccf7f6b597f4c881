"""The tunnel state machine, with bytes only and no event loop: flow control and the
stream lifecycle (cancel, late frames, stream ids and the stream limit)."""

from __future__ import annotations

import pytest

from tests.tunnel.pairs import SMALL, connected, fails_with, frames_in, pump, transfer
from tunnel.errors import CloseCode, FlowControlError, StreamStateError, TunnelUsageError
from tunnel.frames import encode_frame
from tunnel.messages import (
    MAX_WINDOW_BYTES,
    BodyChunk,
    Cancel,
    CancelCode,
    EndOfBody,
    Limits,
    RequestHead,
    ResponseHead,
    WindowUpdate,
)
from tunnel.protocol import StreamState

# -- flow control ---------------------------------------------------------------------------


def body_sizes(data: list[bytes]) -> list[int]:
    return [len(f.data) for f in frames_in(data) if isinstance(f, BodyChunk)]


def test_send_body_splits_by_frame_size_and_queues_what_the_window_does_not_allow():
    _client, relay = connected(SMALL)  # frames of 16 KiB, a 40 000-byte stream window
    sid = relay.send_request_head("POST", "/big")
    relay.send_body(sid, bytes(100_000))
    assert body_sizes(relay.data_to_send()) == [16_384, 16_384, 7_232]
    assert (relay.send_window(sid), relay.queued(sid)) == (0, 60_000)
    assert relay.send_window() == SMALL.connection_window - 40_000


def test_a_blocked_stream_resumes_when_the_receiver_consumes_half_a_window():
    client, relay = connected(SMALL)
    sid = relay.send_request_head("POST", "/big")
    relay.send_body(sid, bytes(100_000))
    relay.send_end(sid)
    pump(client, relay)
    assert client.unconsumed(sid) == 40_000 and relay.queued(sid) == 60_000
    client.consumed(sid, 19_999)
    assert client.data_to_send() == []  # credit goes back in batches, not per chunk
    client.consumed(sid, 1)
    update = client.data_to_send()
    assert frames_in(update) == [WindowUpdate(sid, 20_000)]
    relay.receive_data(b"".join(update))
    transfer(relay, client)
    assert client.unconsumed(sid) == 40_000 and relay.queued(sid) == 40_000
    while relay.queued(sid) or client.unconsumed(sid):
        client.consumed(sid, client.unconsumed(sid))
        pump(client, relay)
    assert EndOfBody(sid) in client.events_received()
    assert client.stream_state(sid) is StreamState.HALF_CLOSED_REMOTE


def test_streams_share_the_connection_window_and_resume_together():
    limits = Limits(max_frame_bytes=16_384, initial_stream_window=40_000, connection_window=50_000)
    client, relay = connected(limits)
    a, b = relay.send_request_head("POST", "/a"), relay.send_request_head("POST", "/b")
    relay.send_body(a, bytes(40_000))
    relay.send_body(b, bytes(40_000))
    pump(client, relay)
    assert relay.send_window() == 0 and relay.queued() == 30_000
    assert client.unconsumed() == 50_000
    client.consumed(a, client.unconsumed(a))  # only stream a's reader keeps up
    pump(client, relay)
    assert relay.queued() == 0 and client.unconsumed(b) == 40_000


def test_more_body_than_the_stream_window_closes_with_flow_control_error():
    client, relay = connected(Limits(initial_stream_window=40_000))
    sid = relay.send_request_head("POST", "/x")
    transfer(relay, client)
    error = fails_with(client, encode_frame(BodyChunk(sid, bytes(40_001))), FlowControlError)
    assert (error.stream_id, error.size, error.window) == (sid, 40_001, 40_000)


def test_more_body_than_the_connection_window_closes_with_flow_control_error():
    limits = Limits(initial_stream_window=40_000, connection_window=10_000)
    client, relay = connected(limits)
    sid = relay.send_request_head("POST", "/x")
    transfer(relay, client)
    error = fails_with(client, encode_frame(BodyChunk(sid, bytes(10_001))), FlowControlError)
    assert (error.stream_id, error.window) == (0, 10_000)
    assert str(error) == "10001 body bytes on connection exceed its window of 10000"


def test_a_window_update_past_2_31_minus_1_closes_with_flow_control_error():
    _client, relay = connected(SMALL)
    error = fails_with(relay, encode_frame(WindowUpdate(0, MAX_WINDOW_BYTES)), FlowControlError)
    assert error.overflow and error.close_code is CloseCode.FLOW_CONTROL_ERROR


# -- stream lifecycle, cancel, late frames ----------------------------------------------------


def test_a_stream_goes_open_half_closed_closed_on_both_sides():
    client, relay = connected()
    sid = relay.send_request_head("GET", "/bill")
    assert sid == 1 and relay.stream_state(sid) is StreamState.OPEN
    relay.send_end(sid)
    transfer(relay, client)
    assert relay.stream_state(sid) is StreamState.HALF_CLOSED_LOCAL
    assert client.stream_state(sid) is StreamState.HALF_CLOSED_REMOTE
    client.send_response_head(sid, 200, [(b"content-type", b"application/json")])
    client.send_body(sid, b"{}")
    client.send_end(sid)
    transfer(client, relay)
    assert client.stream_state(sid) is relay.stream_state(sid) is StreamState.CLOSED
    assert [type(e) for e in relay.events_received()] == [ResponseHead, BodyChunk, EndOfBody]
    assert relay.send_request_head("GET", "/next") == 3  # relay ids are odd and grow
    assert client.stream_state(2) is None


def test_cancel_drops_queued_bytes_returns_credit_and_ignores_late_frames():
    client, relay = connected(SMALL)
    sid = relay.send_request_head("POST", "/slow")
    relay.send_body(sid, bytes(100_000))
    transfer(relay, client)
    client.send_response_head(sid, 200)  # written before the CANCEL arrives
    client.send_body(sid, b"late")
    relay.send_cancel(sid, CancelCode.TIMEOUT)
    assert relay.queued(sid) == 0 and relay.stream_state(sid) is StreamState.CANCELLED
    assert relay.open_streams == 0 and client.open_streams == 1  # a cancelled stream is not open
    transfer(relay, client)
    events = client.events_received()
    assert events[-1] == Cancel(sid, CancelCode.TIMEOUT)
    assert client.unconsumed() == 0 and client.stream_state(sid) is StreamState.CLOSED
    client.send_body(sid, b"after the cancel")  # a write racing the cancel is dropped
    client.consumed(sid, 65_536)  # and so is a late report: the credit went back already
    transfer(client, relay)
    assert relay.events_received() == []  # the late head and body were ignored
    assert relay.stream_state(sid) is StreamState.CLOSED  # forgotten after the answer
    assert relay.send_window() == client.receive_window()  # the cancelled bytes' credit


def test_crossing_cancels_end_the_stream_on_both_sides_without_a_third():
    client, relay = connected()
    sid = relay.send_request_head("GET", "/x")
    transfer(relay, client)
    client.events_received()
    relay.send_cancel(sid)
    client.send_cancel(sid, CancelCode.REFUSED)
    pump(client, relay)
    assert client.stream_state(sid) is relay.stream_state(sid) is StreamState.CLOSED
    assert client.open_streams == relay.open_streams == 0
    assert client.events_received() == relay.events_received() == []


def test_a_cancel_for_a_stream_that_has_ended_is_answered_not_an_error():
    client, relay = connected()
    sid = relay.send_request_head("GET", "/x")
    relay.send_end(sid)
    transfer(relay, client)
    client.send_response_head(sid, 204)
    client.send_end(sid)
    client.receive_data(encode_frame(Cancel(sid)))  # relay cancelled before seeing the END
    assert frames_in(client.data_to_send()) == [ResponseHead(sid, 204), EndOfBody(sid), Cancel(sid)]
    client.receive_data(encode_frame(WindowUpdate(sid, 10)))  # late credit: ignored too


@pytest.mark.parametrize(
    "frame",
    [BodyChunk(1, b"x"), EndOfBody(1), BodyChunk(99, b"x"), WindowUpdate(99, 1), Cancel(99)],
    ids=["body-after-close", "end-after-close", "unknown-body", "unknown-update", "unknown-cancel"],
)
def test_frames_for_ended_or_never_opened_streams_close_with_stream_state_error(frame):
    client, relay = connected()
    relay.send_end(relay.send_request_head("GET", "/x"))
    transfer(relay, client)
    client.send_response_head(1, 200)
    client.send_end(1)
    error = fails_with(client, encode_frame(frame), StreamStateError)
    assert error.close_code is CloseCode.STREAM_STATE_ERROR and error.stream_id == frame.stream_id


@pytest.mark.parametrize("sid", [2, 1], ids=["even-id", "reused-id"])
def test_request_heads_must_use_fresh_odd_ids(sid):
    client, relay = connected()
    relay.send_request_head("GET", "/x")
    transfer(relay, client)
    fails_with(client, encode_frame(RequestHead(sid, "GET", "/y")), StreamStateError)


def test_body_before_the_response_head_or_after_the_end_is_a_stream_state_error():
    client, relay = connected()
    sid = relay.send_request_head("GET", "/x")
    fails_with(relay, encode_frame(BodyChunk(sid, b"x")), StreamStateError)
    client, relay = connected()
    sid = relay.send_request_head("GET", "/x")
    relay.send_end(sid)
    transfer(relay, client)
    fails_with(client, encode_frame(EndOfBody(sid)), StreamStateError)


def test_the_stream_limit_is_kept_by_the_relay_and_enforced_by_the_client():
    _client, relay = connected(Limits(max_concurrent_streams=2))
    first = relay.send_request_head("GET", "/1")
    relay.send_request_head("GET", "/2")
    with pytest.raises(TunnelUsageError, match="2 streams are open"):
        relay.send_request_head("GET", "/3")
    relay.send_cancel(first)
    assert relay.send_request_head("GET", "/3") == 5  # a cancelled stream no longer counts
    other_client, _other_relay = connected(Limits(max_concurrent_streams=2))
    heads = b"".join(encode_frame(RequestHead(i, "GET", "/")) for i in (1, 3, 5))
    fails_with(other_client, heads, StreamStateError)

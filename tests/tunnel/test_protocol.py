"""The tunnel state machine, with bytes only and no event loop: a client and a relay object
wired back to back, or one of them fed hand-made frames."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.tunnel.errors import (
    CloseCode,
    ConnectionClosedError,
    FlowControlError,
    FrameTooLargeError,
    MalformedFrameError,
    StreamStateError,
    TunnelProtocolError,
    TunnelUsageError,
    UnexpectedFrameError,
    UnknownFrameTypeError,
    UnsupportedVersionError,
)
from bridge.tunnel.frames import HEADER, FrameDecoder, UnknownFrame, encode_frame
from bridge.tunnel.messages import (
    MAX_WINDOW_BYTES,
    BodyChunk,
    Cancel,
    CancelCode,
    Close,
    EndOfBody,
    Health,
    Hello,
    Limits,
    Ping,
    Pong,
    RequestHead,
    ResponseHead,
    Welcome,
    WindowUpdate,
)
from bridge.tunnel.protocol import SEND_EOF, ConnectionState, Side, StreamState, TunnelProtocol

MiB = 1 << 20
SMALL = Limits(max_frame_bytes=16_384, initial_stream_window=40_000, connection_window=1_000_000)


def transfer(src: TunnelProtocol, dst: TunnelProtocol) -> bool:
    """Move everything ``src`` has to send into ``dst``; True if anything moved."""
    moved = False
    for data in src.data_to_send():
        if data == SEND_EOF:
            break
        dst.receive_data(data)
        moved = True
    return moved


def pump(a: TunnelProtocol, b: TunnelProtocol) -> None:
    while transfer(a, b) | transfer(b, a):
        pass


def frames_in(data: list[bytes]) -> list[object]:
    decoder = FrameDecoder(1 << 24)
    decoder.feed(b"".join(data))
    out = []
    while (frame := decoder.next_frame()) is not None:
        out.append(frame)
    return out


def hello_from(client: TunnelProtocol) -> None:
    client.send_hello(venue_id="venue-7", token="t0ken", session_epoch=3, bridge_version="0.1.0")


def connected(limits: Limits = SMALL) -> tuple[TunnelProtocol, TunnelProtocol]:
    client, relay = TunnelProtocol(Side.CLIENT), TunnelProtocol(Side.RELAY)
    hello_from(client)
    transfer(client, relay)
    assert isinstance(relay.events_received()[0], Hello)
    relay.accept(limits)
    transfer(relay, client)
    assert client.events_received() == [Welcome(1, limits)]
    return client, relay


def fails_with(proto: TunnelProtocol, data: bytes, error: type[TunnelProtocolError]):
    """Feed ``data``; check the typed error, the CLOSE it queued and that no more is read."""
    with pytest.raises(error) as caught:
        proto.receive_data(data)
    *frames, eof = proto.data_to_send()
    assert eof == SEND_EOF
    assert frames_in(frames)[-1] == Close(caught.value.close_code, str(caught.value))
    assert proto.state is ConnectionState.CLOSED and proto.failure is caught.value
    with pytest.raises(ConnectionClosedError) as closed:
        proto.receive_data(encode_frame(Ping(bytes(8))))
    assert closed.value.code == caught.value.close_code
    return caught.value


# -- handshake and versions -----------------------------------------------------------------


def test_handshake_agrees_on_the_highest_common_version_and_the_relays_limits():
    client = TunnelProtocol(Side.CLIENT, versions=[3, 1, 2])
    relay = TunnelProtocol(Side.RELAY, versions=[2, 3, 4])
    hello_from(client)
    transfer(client, relay)
    [hello] = relay.events_received()
    assert (hello.venue_id, hello.token, hello.session_epoch) == ("venue-7", "t0ken", 3)
    assert hello.versions == (1, 2, 3) and relay.version == 3
    welcome = relay.accept(SMALL)
    transfer(relay, client)
    assert client.events_received() == [welcome] == [Welcome(3, SMALL)]
    assert client.version == relay.version == 3 and client.limits == relay.limits == SMALL
    assert client.state is relay.state is ConnectionState.OPEN


def test_relay_refuses_with_a_typed_close_when_no_version_is_common():
    client = TunnelProtocol(Side.CLIENT, versions=[1, 2])
    relay = TunnelProtocol(Side.RELAY, versions=[4, 5])
    hello_from(client)
    error = fails_with(relay, b"".join(client.data_to_send()), UnsupportedVersionError)
    assert (error.offered, error.supported) == ((1, 2), (4, 5))
    assert str(error) == "no common protocol version: offered [1, 2], supported [4, 5]"


def test_client_sees_the_refusal_as_a_close_event_and_answers_it():
    client, relay = TunnelProtocol(Side.CLIENT), TunnelProtocol(Side.RELAY, versions=[2])
    hello_from(client)
    with pytest.raises(UnsupportedVersionError):
        transfer(client, relay)
    transfer(relay, client)
    [close] = client.events_received()
    assert close.code is CloseCode.UNSUPPORTED_VERSION
    assert client.state is ConnectionState.CLOSED and client.close_received == close
    assert frames_in(client.data_to_send()[:-1]) == [Close(CloseCode.UNSUPPORTED_VERSION)]


def test_relay_application_refuses_a_bad_token_with_unauthorized():
    client, relay = TunnelProtocol(Side.CLIENT), TunnelProtocol(Side.RELAY)
    hello_from(client)
    transfer(client, relay)
    relay.send_close(CloseCode.UNAUTHORIZED, "unknown venue")
    pump(client, relay)
    assert client.events_received() == [Close(CloseCode.UNAUTHORIZED, "unknown venue")]
    assert client.state is relay.state is ConnectionState.CLOSED
    with pytest.raises(ConnectionClosedError):
        relay.accept()


def test_client_rejects_a_welcome_for_a_version_it_never_offered():
    client = TunnelProtocol(Side.CLIENT, versions=[1])
    hello_from(client)
    fails_with(client, encode_frame(Welcome(9, SMALL)), UnsupportedVersionError)


@pytest.mark.parametrize(
    ("side", "frame"),
    [
        (Side.RELAY, Ping(bytes(8))),  # the relay's first frame must be HELLO
        (Side.CLIENT, Ping(bytes(8))),  # nothing but WELCOME or CLOSE before WELCOME
        (Side.CLIENT, Welcome(1, SMALL)),  # a WELCOME before any HELLO was sent
    ],
)
def test_frames_before_the_handshake_completes_are_unexpected(side, frame):
    proto = TunnelProtocol(side)
    if side is Side.CLIENT and not isinstance(frame, Welcome):
        hello_from(proto)
        proto.data_to_send()
    fails_with(proto, encode_frame(frame), UnexpectedFrameError)


def test_a_second_hello_is_unexpected():
    client, relay = TunnelProtocol(Side.CLIENT), TunnelProtocol(Side.RELAY)
    hello_from(client)
    wire = b"".join(client.data_to_send())
    fails_with(relay, wire + wire, UnexpectedFrameError)
    assert isinstance(relay.events_received()[0], Hello)  # the first one was delivered


def test_handshake_frames_are_capped_at_16_kib_on_both_sides():
    client = TunnelProtocol(Side.CLIENT)
    with pytest.raises(TunnelUsageError):
        client.send_hello(venue_id="v", token="x" * 20_000, session_epoch=1, bridge_version="b")
    assert client.data_to_send() == [] and client.hello is None
    big_hello = Hello("v", "x" * 20_000, 1, (1,), "b")
    fails_with(TunnelProtocol(Side.RELAY), encode_frame(big_hello), FrameTooLargeError)


def test_the_welcomes_larger_frame_limit_applies_to_frames_in_the_same_read():
    client, relay = TunnelProtocol(Side.CLIENT), TunnelProtocol(Side.RELAY)
    hello_from(client)
    transfer(client, relay)
    relay.accept(Limits(max_frame_bytes=65_536, initial_stream_window=65_536))
    sid = relay.send_request_head("PUT", "/big")
    relay.send_body(sid, bytes(65_536))
    client.receive_data(b"".join(relay.data_to_send()))
    assert [type(e) for e in client.events_received()] == [Welcome, RequestHead, BodyChunk]


# -- sides ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("receiver", "frame"),
    [
        (Side.RELAY, RequestHead(1, "GET", "/")),
        (Side.CLIENT, ResponseHead(1, 200)),
        (Side.CLIENT, Health(True, 0, 0, 0)),
        (Side.CLIENT, Hello("v", "t", 1, (1,), "b")),
        (Side.RELAY, Welcome(1, SMALL)),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, Side) else v.value,
)
def test_a_frame_from_the_wrong_side_closes_with_protocol_error(receiver, frame):
    client, relay = connected()
    proto = client if receiver is Side.CLIENT else relay
    error = fails_with(proto, encode_frame(frame), UnexpectedFrameError)
    assert error.close_code is CloseCode.PROTOCOL_ERROR and error.side == receiver.value


def test_only_the_relay_opens_streams_and_only_the_client_reports_health():
    client, relay = connected()
    with pytest.raises(TunnelUsageError, match="only the relay"):
        client.send_request_head("GET", "/")
    with pytest.raises(TunnelUsageError, match="only the client"):
        relay.send_health(pos_online=True, queue_depth=0, oldest_queued_age_ms=0, clock_ms=0)


# -- many streams, back to back ---------------------------------------------------------------


def test_many_interleaved_streams_carry_multi_mib_bodies_intact_within_their_windows():
    limits = Limits(
        max_frame_bytes=16_384,
        initial_stream_window=65_536,
        connection_window=262_144,
        max_concurrent_streams=16,
    )
    client, relay = connected(limits)
    rng = random.Random(20_240_901)
    requests, responses = {}, {}
    for i in range(8):
        sid = relay.send_request_head("POST", f"/upload/{i}", [(b"x-n", str(i).encode())])
        requests[sid] = rng.randbytes(rng.randint(2 * MiB, 3 * MiB))
        responses[sid] = rng.randbytes(rng.randint(2 * MiB, 3 * MiB))
        relay.send_body(sid, requests[sid])
        relay.send_end(sid)
    received = {client: defaultdict(bytearray), relay: defaultdict(bytearray)}
    ended = {client: set(), relay: set()}
    held = {client: [], relay: []}  # (stream, bytes) the slow application has not consumed
    wire = {client: bytearray(), relay: bytearray()}  # bytes in flight from each side

    for _ in range(20_000):
        for src, dst in ((relay, client), (client, relay)):
            wire[src] += b"".join(src.data_to_send())
            cut = rng.randint(0, min(len(wire[src]), 100_000))  # a partial, arbitrary read
            dst.receive_data(bytes(wire[src][:cut]))
            del wire[src][:cut]
        for side in (client, relay):
            for event in side.events_received():
                if isinstance(event, RequestHead):
                    side.send_response_head(event.stream_id, 200)
                    side.send_body(event.stream_id, responses[event.stream_id])
                    side.send_end(event.stream_id)
                elif isinstance(event, BodyChunk):
                    received[side][event.stream_id] += event.data
                    held[side].append((event.stream_id, len(event.data)))
                elif isinstance(event, EndOfBody):
                    ended[side].add(event.stream_id)
            assert side.unconsumed() <= limits.connection_window
            assert all(side.unconsumed(s) <= limits.initial_stream_window for s in requests)
            assert side.send_window() >= 0 and all(side.send_window(s) >= 0 for s in requests)
            take = rng.randint(0, len(held[side]))
            for sid, n in held[side][:take]:
                side.consumed(sid, n)
            del held[side][:take]
        if ended[client] == ended[relay] == set(requests) and not any(held.values()):
            break
    else:
        pytest.fail("the transfer stalled")

    assert received[client] == requests and received[relay] == responses
    for side in (client, relay):
        assert side.open_streams == side.queued() == side.unconsumed() == 0
        assert {side.stream_state(s) for s in requests} == {StreamState.CLOSED}
    # Both ends agree on the connection's credit in each direction once nothing is in flight.
    pump(client, relay)
    assert client.send_window() == relay.receive_window()
    assert relay.send_window() == client.receive_window()


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


# -- ping, health, unknown frames, close --------------------------------------------------------


def test_ping_is_answered_with_a_pong_carrying_the_same_payload():
    client, relay = connected()
    relay.send_ping(b"\x00\x00\x01\x8b\xcf\xe5\x68\x00")
    pump(client, relay)
    assert client.events_received() == [Ping(b"\x00\x00\x01\x8b\xcf\xe5\x68\x00")]
    assert relay.events_received() == [Pong(b"\x00\x00\x01\x8b\xcf\xe5\x68\x00")]


def test_health_reaches_the_relay_as_integers():
    client, relay = connected()
    client.send_health(
        pos_online=False, queue_depth=4, oldest_queued_age_ms=93_000, clock_ms=1_767_225_600_000
    )
    transfer(client, relay)
    assert relay.events_received() == [Health(False, 4, 93_000, 1_767_225_600_000)]


def test_unknown_frames_flagged_may_ignore_are_skipped_and_others_close_the_connection():
    client, _relay = connected()
    client.receive_data(
        encode_frame(UnknownFrame(0x30, 0x80, 0, b"hint")) + encode_frame(Ping(bytes(8)))
    )
    assert client.events_received() == [Ping(bytes(8))]
    client.data_to_send()
    error = fails_with(client, HEADER.pack(0x30, 0, 0, 0), UnknownFrameTypeError)
    assert error.close_code is CloseCode.UNKNOWN_FRAME_TYPE


def test_events_before_a_bad_frame_are_still_delivered():
    client, _relay = connected()
    with pytest.raises(MalformedFrameError):
        client.receive_data(encode_frame(Ping(bytes(8))) + HEADER.pack(0x04, 0, 0, 3) + b"abc")
    assert client.events_received() == [Ping(bytes(8))]


def test_a_tls_client_hello_sent_by_mistake_is_refused_from_its_header():
    _client, relay = connected()
    tls_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64)
    error = fails_with(relay, tls_hello, FrameTooLargeError)
    assert error.frame_type == 0x16 and error.length == 0x0001FC03


def test_close_ends_every_stream_and_the_connection_on_both_sides():
    client, relay = connected()
    sid = relay.send_request_head("POST", "/x")
    relay.send_body(sid, bytes(100_000))
    client.send_close(CloseCode.GOING_AWAY, "restarting for an update")
    assert client.state is ConnectionState.CLOSING
    with pytest.raises(ConnectionClosedError):
        client.send_ping(bytes(8))
    transfer(relay, client)  # the relay's frames sent before it saw the CLOSE: ignored
    assert client.events_received() == []
    transfer(client, relay)
    assert relay.events_received() == [Close(CloseCode.GOING_AWAY, "restarting for an update")]
    assert relay.state is ConnectionState.CLOSED and relay.queued() == 0
    *answer, eof = relay.data_to_send()
    assert eof == SEND_EOF and frames_in(answer) == [Close(CloseCode.GOING_AWAY)]
    client.receive_data(answer[0])
    assert client.state is ConnectionState.CLOSED and client.data_to_send() == [SEND_EOF]
    with pytest.raises(ConnectionClosedError, match="GOING_AWAY"):
        relay.send_body(sid, b"more")
    client.send_close()  # a second close is a no-op


def test_eof_without_close_ends_the_connection_and_refuses_more_data():
    client, _relay = connected()
    client.receive_eof()
    assert client.state is ConnectionState.CLOSED and client.data_to_send() == []
    with pytest.raises(ConnectionClosedError) as caught:
        client.receive_data(b"\x04")
    assert caught.value.code is None


# -- the application's mistakes -----------------------------------------------------------------


def test_api_misuse_raises_usage_errors_and_leaves_the_connection_up():
    client, relay = connected()
    with pytest.raises(TunnelUsageError):
        TunnelProtocol(Side.CLIENT).send_ping(bytes(8))  # before the handshake
    with pytest.raises(TunnelUsageError):
        TunnelProtocol(Side.RELAY).accept()  # before any HELLO
    with pytest.raises(TunnelUsageError):
        hello_from(client)  # HELLO is sent once
    with pytest.raises(TunnelUsageError):
        relay.accept()  # and answered once
    sid = relay.send_request_head("POST", "/x")
    relay.send_body(sid, b"abc")
    transfer(relay, client)
    with pytest.raises(TunnelUsageError, match="response head first"):
        client.send_body(sid, b"x")
    client.send_response_head(sid, 200)
    with pytest.raises(TunnelUsageError, match="has one"):
        client.send_response_head(sid, 200)
    with pytest.raises(TunnelUsageError, match="3 are unconsumed"):
        client.consumed(sid, 4)
    with pytest.raises(TunnelUsageError, match="never opened"):
        client.send_body(7, b"x")
    client.send_end(sid)
    with pytest.raises(TunnelUsageError, match="body has ended"):
        client.send_body(sid, b"x")
    with pytest.raises(ValueError):
        relay.send_request_head("GET", "no-slash")
    assert client.state is relay.state is ConnectionState.OPEN


# -- the whole protocol, split anywhere ---------------------------------------------------------


def relay_conversation() -> tuple[bytes, list[object]]:
    """Everything a relay sends in a busy session, and the client's events for it in one read."""
    client, relay = TunnelProtocol(Side.CLIENT), TunnelProtocol(Side.RELAY)
    hello_from(client)
    transfer(client, relay)
    relay.accept(SMALL)
    for i in range(3):
        sid = relay.send_request_head("POST", f"/p/{i}", [(b"k", bytes([i]))])
        relay.send_body(sid, bytes([i]) * 30_000)
        relay.send_end(sid)
    relay.send_ping(b"pingpong")
    relay.send_cancel(3)
    wire = b"".join(relay.data_to_send())
    client.receive_data(wire)
    return wire, client.events_received()


WIRE, EVENTS = relay_conversation()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, len(WIRE)), max_size=30))
def test_the_client_sees_the_same_events_however_the_relays_bytes_are_split(cuts):
    client = TunnelProtocol(Side.CLIENT)
    hello_from(client)
    events = []
    points = sorted(cuts)
    for start, end in zip([0, *points], [*points, len(WIRE)], strict=True):
        client.receive_data(WIRE[start:end])
        events += client.events_received()
    assert events == EVENTS


def test_the_client_sees_the_same_events_when_fed_one_byte_at_a_time():
    client = TunnelProtocol(Side.CLIENT)
    hello_from(client)
    events = []
    for i in range(len(WIRE)):
        client.receive_data(WIRE[i : i + 1])
        events += client.events_received()
    assert events == EVENTS

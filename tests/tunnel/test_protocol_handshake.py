"""The tunnel state machine, with bytes only and no event loop: the handshake and versions,
which side may send what, ping, health, unknown frames, close, and the application's mistakes."""

from __future__ import annotations

import pytest

from tests.tunnel.pairs import SMALL, connected, fails_with, frames_in, hello_from, pump, transfer
from tunnel.errors import (
    CloseCode,
    ConnectionClosedError,
    FrameTooLargeError,
    MalformedFrameError,
    TunnelUsageError,
    UnexpectedFrameError,
    UnknownFrameTypeError,
    UnsupportedVersionError,
)
from tunnel.frames import HEADER, UnknownFrame, encode_frame
from tunnel.messages import (
    BodyChunk,
    Close,
    Health,
    Hello,
    Limits,
    Ping,
    Pong,
    RequestHead,
    ResponseHead,
    Welcome,
)
from tunnel.protocol import SEND_EOF, ConnectionState, Side, TunnelProtocol

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

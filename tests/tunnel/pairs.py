"""Shared helpers for the tunnel state-machine tests: a client and a relay object wired
back to back (the pump, a connected pair) and checks on what one of them sends."""

from __future__ import annotations

import pytest

from tunnel.errors import ConnectionClosedError, TunnelProtocolError
from tunnel.frames import FrameDecoder, encode_frame
from tunnel.messages import Close, Hello, Limits, Ping, Welcome
from tunnel.protocol import SEND_EOF, ConnectionState, Side, TunnelProtocol

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

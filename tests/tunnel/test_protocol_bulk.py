"""The tunnel state machine, with bytes only and no event loop: many streams carrying
multi-MiB bodies back to back, and a busy relay session split at any byte."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tunnel.pairs import SMALL, MiB, connected, hello_from, pump, transfer
from tunnel.messages import BodyChunk, EndOfBody, Limits, RequestHead
from tunnel.protocol import Side, StreamState, TunnelProtocol

LIVE = (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL, StreamState.HALF_CLOSED_REMOTE)

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
            live = [s for s in requests if side.stream_state(s) in LIVE]
            assert side.open_streams == len(live)  # the kept count matches the states
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

"""PBS1's ARQ rules with a fake clock: ACKs, retransmits, duplicates, give-up, resync."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import DriverConfigError
from drivers.serial.codec import Pbs1ClientCodec, Pbs1PosCodec
from drivers.serial.frames import (
    CONTROL_FRAME_BYTES,
    MAX_PAYLOAD_BYTES,
    AckFrame,
    DataFrame,
    FrameReader,
    NakFrame,
    RstAckFrame,
    RstFrame,
)
from drivers.serial.settings import LineSettings, Timers, line_settings
from drivers.wire import messages
from drivers.wire.messages import Reply, Request, Undelivered

REQUEST = Request(5, "find_payment", {"location": "1", "payment_id": "p-1"})
REPLY = Reply(5, result={"payment": None})


def pair(**options: Any) -> tuple[Pbs1ClientCodec, Pbs1PosCodec]:
    """Both ends powered on and through the handshake, nothing left on the line."""
    client = Pbs1ClientCodec({"baudrate": 9600, **options}, first_seq=10, first_nonce=0x31)
    pos = Pbs1PosCodec({"baudrate": 9600, **options}, first_seq=200, first_nonce=0x70)
    pos.connection_made(0.0)
    client.connection_made(0.0)
    shuttle(client, pos, 0.0)
    assert client.link.synchronised and pos.link.synchronised
    return client, pos


def shuttle(client: Pbs1ClientCodec, pos: Pbs1PosCodec, now: float) -> None:
    """Carry bytes both ways until the line is quiet (a perfect cable)."""
    for _ in range(10):
        to_pos, to_client = client.data_to_send(), pos.data_to_send()
        if not to_pos and not to_client:
            return
        pos.receive_data(to_pos, now)
        client.receive_data(to_client, now)
    raise AssertionError("the line never went quiet")


def frames(data: bytes) -> list[object]:
    return list(FrameReader().feed(data, 0.0))


class TestTimers:
    def test_ack_timeout_exceeds_the_frames_wire_time_at_every_speed(self) -> None:
        for baud in (1200, 9600, 115200):
            timers = Timers(LineSettings(baudrate=baud))
            frame = 1000
            wire = frame * 10 / baud
            assert timers.ack_timeout(frame) > wire + CONTROL_FRAME_BYTES * 10 / baud
        assert Timers(LineSettings(9600)).ack_timeout(1000) > Timers(
            LineSettings(115200)
        ).ack_timeout(1000)

    def test_bits_per_char_follow_parity_and_stop_bits(self) -> None:
        assert LineSettings().bits_per_char == 10
        assert LineSettings(parity="E", stopbits=2).bits_per_char == 12

    @pytest.mark.parametrize(
        ("options", "key"),
        [
            ({"baudrate": 0}, "options.baudrate"),
            ({"baudrate": "fast"}, "options.baudrate"),
            ({"bytesize": 7}, "options.bytesize"),
            ({"parity": "X"}, "options.parity"),
            ({"stopbits": 3}, "options.stopbits"),
            ({"retransmits": 99}, "options.retransmits"),
            ({"turnaround_ms": 0}, "options.turnaround_ms"),
        ],
    )
    def test_bad_line_settings_name_their_key(self, options: dict[str, Any], key: str) -> None:
        with pytest.raises(DriverConfigError) as caught:
            Pbs1ClientCodec(options)
        assert caught.value.key == key

    def test_line_settings_are_popped_only_when_asked(self) -> None:
        options: dict[str, Any] = {"baudrate": 19200, "stopbits": "1.5"}
        assert line_settings(options) == LineSettings(19200, 8, "N", 1.5)
        assert options and line_settings(options, pop=True).baudrate == 19200
        assert not options


class TestStopAndWait:
    def test_request_ack_reply_ack(self) -> None:
        client, pos = pair()
        client.send_request(REQUEST, 0.0)
        pos.receive_data(client.data_to_send(), 0.01)
        assert pos.requests_received() == [REQUEST]
        pos.send_reply(REPLY, 0.02)
        wire = pos.data_to_send()
        assert frames(wire)[0] == AckFrame(10)  # the ACK goes before the reply
        client.receive_data(wire, 0.03)
        assert client.events_received() == [REPLY]
        pos.receive_data(client.data_to_send(), 0.04)
        assert pos.next_deadline() is None and client.next_deadline() is None

    def test_one_unacknowledged_frame_per_direction(self) -> None:
        client, _ = pair()
        client.send_request(REQUEST, 0.0)
        client.send_request(Request(6, "health"), 0.0)
        assert [type(f) for f in frames(client.data_to_send())] == [DataFrame]
        client.receive_data(AckFrame(10).to_bytes(), 0.05)
        sent = frames(client.data_to_send())
        assert len(sent) == 1 and isinstance(sent[0], DataFrame) and sent[0].seq == 11

    def test_retransmits_after_the_ack_timeout_then_gives_up(self) -> None:
        client, _ = pair(retransmits=2)
        client.send_request(REQUEST, 0.0)
        first = client.data_to_send()
        deadline = client.next_deadline()
        assert deadline is not None and deadline > len(first) * 10 / 9600
        client.handle_timeouts(deadline - 0.001)
        assert client.data_to_send() == b""
        for _ in range(2):
            now = client.next_deadline()
            assert now is not None
            client.handle_timeouts(now)
            assert client.data_to_send() == first
        now = client.next_deadline()
        assert now is not None
        client.handle_timeouts(now)
        [event] = client.events_received()
        assert isinstance(event, Undelivered) and event.id == 5 and event.maybe_received
        assert client.link.stats.given_up == 1 and client.next_deadline() is None

    def test_nak_makes_the_frame_go_again_at_once(self) -> None:
        client, _ = pair()
        client.send_request(REQUEST, 0.0)
        first = client.data_to_send()
        client.receive_data(NakFrame(10).to_bytes(), 0.01)
        assert client.data_to_send() == first
        client.receive_data(NakFrame(99).to_bytes(), 0.02)  # not ours: ignored
        assert client.data_to_send() == b""

    def test_ack_timer_waits_while_the_peer_is_still_sending(self) -> None:
        client, _ = pair()
        client.send_request(REQUEST, 0.0)
        client.data_to_send()
        deadline = client.next_deadline()
        assert deadline is not None
        client.receive_data(b"\x00" * 10, deadline - 0.001)  # bytes of a long reply arriving
        later = client.next_deadline()
        assert later is not None and later > deadline

    def test_too_large_a_request_is_undelivered_and_not_sent(self) -> None:
        client, _ = pair()
        client.send_request(Request(9, "health", {"x": "y" * MAX_PAYLOAD_BYTES}), 0.0)
        [event] = client.events_received()
        assert isinstance(event, Undelivered) and not event.maybe_received
        assert client.data_to_send() == b""

    def test_too_large_a_reply_becomes_an_unavailable_error(self) -> None:
        client, pos = pair()
        pos.send_reply(Reply(3, result={"x": "y" * MAX_PAYLOAD_BYTES}), 0.0)
        client.receive_data(pos.data_to_send(), 0.01)
        [event] = client.events_received()
        assert isinstance(event, Reply) and event.error is not None
        assert event.error.code == "unavailable"


class TestDuplicates:
    def test_retransmit_whose_ack_was_lost_is_acked_again_but_not_delivered(self) -> None:
        client, pos = pair()
        client.send_request(REQUEST, 0.0)
        frame = client.data_to_send()
        pos.receive_data(frame, 0.01)
        assert pos.requests_received() == [REQUEST]
        assert frames(pos.data_to_send()) == [AckFrame(10)]  # ...and this ACK is lost
        now = client.next_deadline()
        assert now is not None
        client.handle_timeouts(now)
        pos.receive_data(client.data_to_send(), now + 0.01)
        assert pos.requests_received() == []
        assert frames(pos.data_to_send()) == [AckFrame(10)]
        assert pos.link.stats.duplicates == 1

    def test_a_reset_keeps_counting_so_the_next_frame_is_not_a_duplicate(self) -> None:
        client, pos = pair()
        client.send_request(REQUEST, 0.0)
        pos.receive_data(client.data_to_send(), 0.01)
        pos.requests_received()
        client.connection_made(1.0)  # the bridge dropped the stream and reconnected
        client.send_request(Request(6, "health"), 1.0)
        assert frames(client.data_to_send()) == [RstFrame(0x32)]  # the request waits
        pos.receive_data(RstFrame(0x32).to_bytes(), 1.01)
        client.receive_data(pos.data_to_send(), 1.02)  # RSTACK
        sent = frames(client.data_to_send())
        assert isinstance(sent[0], DataFrame) and sent[0].seq == 11
        pos.receive_data(sent[0].to_bytes(), 1.03)
        assert pos.requests_received() == [Request(6, "health")]

    def test_frames_from_before_a_reset_are_forgotten(self) -> None:
        client, _ = pair()
        client.receive_data(DataFrame(1, b"{").to_bytes()[:6], 0.0)
        client.connection_made(0.1)
        assert client.link.reader.buffered == 0
        assert client.next_deadline() == 0.1 + client.link.timers.ack_timeout(8)  # RST only


class TestResyncTimer:
    def test_a_stalled_partial_frame_is_dropped_after_the_idle_time(self) -> None:
        client, _ = pair()
        reply = DataFrame(200, messages.encode_reply(REPLY)).to_bytes()
        bogus = bytes([0x02, 0x44, 0, 0x10, 0x00])  # garbage header promising 4096 bytes
        client.receive_data(bogus + reply, 0.0)
        assert client.events_received() == []
        deadline = client.next_deadline()
        assert deadline is not None and deadline >= 0.1
        client.handle_timeouts(deadline)
        assert client.events_received() == [REPLY]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(max_size=80) | st.sampled_from([AckFrame(10).to_bytes(), b"\x02\x44"]),
            st.floats(0, 2),
        ),
        max_size=20,
    )
)
def test_codecs_never_raise_on_any_stream(chunks: list[tuple[bytes, float]]) -> None:
    client, pos = pair()
    client.send_request(REQUEST, 0.0)
    now = 0.0
    for data, step in chunks:
        now += step
        for codec in (client, pos):
            codec.receive_data(data, now)
            codec.handle_timeouts(now)
            codec.data_to_send()
        for event in client.events_received():
            assert isinstance(event, Reply | Undelivered)
        pos.requests_received()


class TestHandshake:
    """RST/RSTACK: a receiver that forgot what it delivered never gets an old frame again."""

    def test_a_fresh_pos_refuses_data_until_the_bridge_answers_its_rst(self) -> None:
        pos = Pbs1PosCodec({"baudrate": 9600}, first_nonce=0x70)
        pos.connection_made(0.0)
        assert frames(pos.data_to_send()) == [RstFrame(0x70)]
        pos.receive_data(DataFrame(10, messages.encode_request(REQUEST)).to_bytes(), 0.1)
        assert pos.requests_received() == []
        assert frames(pos.data_to_send()) == [RstFrame(0x70)]  # not an ACK: RST again
        assert pos.link.stats.refused == 1
        pos.receive_data(RstAckFrame(0x6F).to_bytes(), 0.2)  # an older session's: ignored
        assert not pos.link.synchronised
        pos.receive_data(RstAckFrame(0x70).to_bytes(), 0.3)
        pos.receive_data(DataFrame(10, messages.encode_request(REQUEST)).to_bytes(), 0.4)
        assert pos.requests_received() == [REQUEST]
        assert frames(pos.data_to_send()) == [AckFrame(10)]

    def test_a_pos_with_nothing_to_send_says_rst_once(self) -> None:
        pos = Pbs1PosCodec({"baudrate": 9600})
        pos.connection_made(0.0)
        pos.data_to_send()
        deadline = pos.next_deadline()
        assert deadline is not None
        pos.handle_timeouts(deadline)
        assert pos.data_to_send() == b"" and pos.next_deadline() is None

    def test_lost_ack_then_pos_reboot_fails_the_request_and_never_retransmits_it(self) -> None:
        client, pos = pair()
        client.send_request(REQUEST, 0.0)
        pos.receive_data(client.data_to_send(), 0.01)
        assert pos.requests_received() == [REQUEST]  # applied...
        pos.data_to_send()  # ...and its ACK is lost
        pos.connection_made(0.02)  # the POS reboots: the SEQ it delivered is forgotten
        client.receive_data(pos.data_to_send(), 0.03)  # its RST
        [event] = client.events_received()
        assert isinstance(event, Undelivered) and event.id == 5 and event.maybe_received
        assert frames(client.data_to_send()) == [RstAckFrame(pos.link.nonce)]  # no data
        assert client.next_deadline() is None  # nothing left to retransmit
        assert client.link.stats.dropped_on_reset == 1

    def test_lost_ack_then_reboot_whose_rst_is_lost_too(self) -> None:
        client, pos = pair()
        client.send_request(REQUEST, 0.0)
        pos.receive_data(client.data_to_send(), 0.01)
        assert pos.requests_received() == [REQUEST]
        pos.data_to_send()  # the ACK is lost
        pos.connection_made(0.02)
        pos.data_to_send()  # and so is the RST
        now = client.next_deadline()
        assert now is not None
        client.handle_timeouts(now)  # the bridge retransmits...
        pos.receive_data(client.data_to_send(), now + 0.01)
        assert pos.requests_received() == []  # ...the rebooted POS does not deliver it
        client.receive_data(pos.data_to_send(), now + 0.02)  # it answers RST
        [event] = client.events_received()
        assert isinstance(event, Undelivered) and event.maybe_received
        shuttle(client, pos, now + 0.03)
        assert pos.link.synchronised and pos.requests_received() == []
        client.send_request(Request(6, "health"), now + 0.1)  # new requests go through
        shuttle(client, pos, now + 0.1)
        assert pos.requests_received() == [Request(6, "health")]

    def test_a_pos_reboot_fails_requests_waiting_for_their_reply_too(self) -> None:
        client, pos = pair()
        client.send_request(REQUEST, 0.0)
        shuttle(client, pos, 0.01)  # delivered and ACKed: the POS is working on it
        assert pos.requests_received() == [REQUEST] and client.events_received() == []
        client.send_request(Request(6, "health"), 0.02)  # sent, not yet ACKed
        pos.connection_made(0.03)
        client.receive_data(pos.data_to_send(), 0.04)
        failed = client.events_received()
        assert {e.id for e in failed} == {5, 6}
        assert all(isinstance(e, Undelivered) and e.maybe_received for e in failed)

    def test_requests_queued_at_the_rst_go_after_it(self) -> None:
        client, pos = pair()
        client.send_request(REQUEST, 0.0)
        client.send_request(Request(6, "health"), 0.0)  # queued behind the first
        client.data_to_send()
        pos.connection_made(0.01)
        client.receive_data(pos.data_to_send(), 0.02)
        [event] = client.events_received()
        assert event.id == 5  # only the one that was sent
        sent = frames(client.data_to_send())
        assert sent[0] == RstAckFrame(pos.link.nonce) and isinstance(sent[1], DataFrame)
        pos.receive_data(b"".join(f.to_bytes() for f in sent), 0.03)  # type: ignore[attr-defined]
        assert pos.requests_received() == [Request(6, "health")]

    def test_a_new_bridge_is_never_taken_for_a_retransmit_of_the_old_one(self) -> None:
        old, pos = pair()
        old.send_request(REQUEST, 0.0)
        frame = old.data_to_send()
        pos.receive_data(frame + frame, 0.01)  # delivered; the stale copy is a duplicate
        assert pos.requests_received() == [REQUEST] and pos.link.stats.duplicates == 1
        pos.data_to_send()
        new = Pbs1ClientCodec({"baudrate": 9600}, first_seq=10, first_nonce=0x90)  # same SEQ
        new.connection_made(1.0)
        new.send_request(Request(6, "health"), 1.0)
        shuttle(new, pos, 1.0)
        assert pos.requests_received() == [Request(6, "health")]

    def test_the_bridge_gives_up_a_handshake_nobody_answers_then_tries_again(self) -> None:
        client = Pbs1ClientCodec({"baudrate": 9600, "retransmits": 2}, first_nonce=4)
        client.connection_made(0.0)
        client.send_request(REQUEST, 0.0)
        sent = [*frames(client.data_to_send())]
        while (deadline := client.next_deadline()) is not None:
            client.handle_timeouts(deadline)
            sent += frames(client.data_to_send())
        assert sent == [RstFrame(4)] * 3
        [event] = client.events_received()
        assert isinstance(event, Undelivered) and not event.maybe_received  # never sent
        client.send_request(Request(6, "health"), 10.0)
        assert frames(client.data_to_send()) == [RstFrame(4)]

    def test_a_retransmitted_bridge_rst_does_not_drop_the_pos_reply(self) -> None:
        client, pos = pair()
        client.send_request(REQUEST, 0.0)
        shuttle(client, pos, 0.0)
        pos.requests_received()
        pos.send_reply(REPLY, 0.1)
        pos.receive_data(RstFrame(client.link.nonce).to_bytes(), 0.1)  # a slow RSTACK's RST
        assert pos.link.stats.duplicate_resets == 1
        client.receive_data(pos.data_to_send(), 0.2)
        assert client.events_received() == [REPLY]

    def test_every_rst_from_the_pos_is_a_restart_even_with_its_old_nonce(self) -> None:
        client, _ = pair()
        client.send_request(REQUEST, 0.0)
        client.data_to_send()
        client.receive_data(RstFrame(0x70).to_bytes(), 0.01)  # the nonce it had: no matter
        [event] = client.events_received()
        assert isinstance(event, Undelivered) and event.maybe_received

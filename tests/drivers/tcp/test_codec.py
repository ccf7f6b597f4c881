"""PBT1 framing, both ends, with bytes only: no event loop, no socket, no clock."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.tcp.codec import (
    HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    Frame,
    FrameError,
    FrameReader,
    FrameType,
    TcpClientCodec,
    TcpPosCodec,
    frame_crc,
    reply_frame,
    request_frame,
)
from drivers.wire.messages import ErrorInfo, Reply, Request, Undelivered, encode_reply

NOW = 100.0


def pair() -> tuple[TcpClientCodec, TcpPosCodec]:
    client, pos = TcpClientCodec({}), TcpPosCodec({})
    client.connection_made(NOW)
    pos.connection_made(NOW)
    return client, pos


def frame_with(kind: int, request_id: int, payload: bytes, *, magic=b"PB", version=1) -> bytes:
    head = struct.pack(">2sBBII", magic, version, kind, request_id, len(payload))
    return head + frame_crc(head, payload).to_bytes(4, "big") + payload


class TestFrameLayout:
    def test_header_is_sixteen_bytes_big_endian_with_crc_over_header_and_payload(self):
        data = Frame(FrameType.REQUEST, 0x01020304, b"{}").to_bytes()
        assert data[:12] == bytes.fromhex("5042 01 01 01020304 00000002")
        assert int.from_bytes(data[12:16], "big") == frame_crc(data[:12], b"{}")
        assert data[16:] == b"{}" and HEADER_BYTES == 16

    def test_crc_is_the_ieee_crc32_of_the_check_string(self):
        assert frame_crc(b"1234", b"56789") == 0xCBF43926

    @given(
        kind=st.sampled_from(FrameType),
        request_id=st.integers(0, 2**32 - 1),
        payload=st.binary(max_size=2000),
    )
    def test_round_trip(self, kind, request_id, payload):
        frame = Frame(kind, request_id, payload)
        assert Frame.from_bytes(frame.to_bytes()) == frame

    def test_an_id_or_payload_the_format_cannot_carry_is_refused_when_sending(self):
        with pytest.raises(ValueError):
            Frame(FrameType.REQUEST, 2**32, b"").to_bytes()
        with pytest.raises(ValueError):
            Frame(FrameType.REQUEST, 1, b" " * (MAX_PAYLOAD_BYTES + 1)).to_bytes()


class TestStreamCutting:
    def test_codec_waits_for_rest_of_split_frame_one_byte_at_a_time(self):
        data = request_frame(Request(7, "health")).to_bytes()
        reader = FrameReader()
        for byte in data[:-1]:
            assert reader.feed(bytes([byte])) == []
        assert reader.feed(data[-1:]) == [request_frame(Request(7, "health"))]
        assert reader.buffered == 0

    def test_several_frames_in_one_read(self):
        frames = [request_frame(Request(i, "health")) for i in range(1, 6)]
        assert FrameReader().feed(b"".join(f.to_bytes() for f in frames)) == frames

    def test_empty_payload_is_a_frame(self):
        assert FrameReader().feed(Frame(FrameType.REPLY, 3, b"").to_bytes()) == [
            Frame(FrameType.REPLY, 3, b"")
        ]


class TestBadStream:
    """Every one of these ends the stream: the codec raises, the link reconnects."""

    def test_bad_magic_is_refused_at_the_first_two_bytes(self):
        with pytest.raises(FrameError, match="bad magic"):
            FrameReader().feed(b"GE")  # e.g. an HTTP client: "GET / HTTP/1.1"

    def test_garbage_before_a_frame_is_refused(self):
        with pytest.raises(FrameError, match="bad magic"):
            FrameReader().feed(b"\x00" + request_frame(Request(1, "health")).to_bytes())

    def test_other_version_is_refused(self):
        with pytest.raises(FrameError, match="version 2"):
            FrameReader().feed(frame_with(1, 1, b"{}", version=2))

    def test_unknown_type_is_refused(self):
        with pytest.raises(FrameError, match="type 0x07"):
            FrameReader().feed(frame_with(7, 1, b"{}"))

    def test_oversized_length_is_refused_from_the_header_alone(self):
        head = struct.pack(">2sBBIII", b"PB", 1, 1, 1, MAX_PAYLOAD_BYTES + 1, 0)
        with pytest.raises(FrameError, match="over"):
            FrameReader().feed(head)  # refused before a megabyte is buffered

    def test_crc_mismatch_is_refused(self):
        data = bytearray(request_frame(Request(1, "health")).to_bytes())
        data[-3] ^= 0x01
        with pytest.raises(FrameError, match="CRC"):
            FrameReader().feed(bytes(data))

    def test_every_single_bit_flip_is_caught_never_read_as_another_frame(self):
        args = {"payment_id": "p-1", "amount": 1000, "tip": 0}
        data = request_frame(Request(5, "apply_payment", args)).to_bytes()
        for bit in range(len(data) * 8):
            flipped = bytearray(data)
            flipped[bit // 8] ^= 1 << (bit % 8)
            reader = FrameReader()
            try:
                frames = reader.feed(bytes(flipped))
            except FrameError:
                continue
            # A flip in the length field can only make the reader wait for bytes that will
            # never come (the exchange then times out); it never yields a frame.
            assert frames == [] and 8 <= bit // 8 < 12, bit

    def test_a_frame_sent_the_wrong_way_is_refused(self):
        client, pos = pair()
        with pytest.raises(FrameError, match="wrong way"):
            client.receive_data(request_frame(Request(1, "health")).to_bytes(), NOW)
        with pytest.raises(FrameError, match="wrong way"):
            pos.receive_data(reply_frame(Reply(1, {})).to_bytes(), NOW)

    @settings(max_examples=300)
    @given(st.binary(max_size=200))
    def test_fuzz_arbitrary_bytes_give_frames_or_frame_error_only(self, data):
        client, pos = pair()
        for codec in (client, pos):
            with contextlib.suppress(FrameError):  # anything else fails the test
                codec.receive_data(data, NOW)


class TestExchange:
    def test_request_reaches_the_pos_and_its_reply_the_client(self):
        client, pos = pair()
        request = Request(1, "get_open_bill", {"location": "1", "table": 4})
        client.send_request(request, NOW)
        pos.receive_data(client.data_to_send(), NOW)
        assert pos.requests_received() == [request]
        pos.send_reply(Reply(1, {"bill": None}), NOW)
        client.receive_data(pos.data_to_send(), NOW)
        assert client.events_received() == [Reply(1, {"bill": None})]
        assert client.data_to_send() == b"" and client.events_received() == []

    def test_pipelined_requests_answered_out_of_order(self):
        client, pos = pair()
        requests = [Request(i, "find_payment", {"payment_id": f"p{i}"}) for i in (1, 2, 3)]
        for request in requests:
            client.send_request(request, NOW)
        pos.receive_data(client.data_to_send(), NOW)
        assert pos.requests_received() == requests
        for request_id in (3, 1, 2):
            pos.send_reply(Reply(request_id, {"payment": None}), NOW)
        wire = pos.data_to_send()
        for i in range(0, len(wire), 5):  # and cut into odd pieces
            client.receive_data(wire[i : i + 5], NOW)
        assert [e.id for e in client.events_received()] == [3, 1, 2]

    def test_error_reply_round_trip(self):
        client, pos = pair()
        pos.send_reply(Reply(9, error=ErrorInfo("bill_closed", "paid")), NOW)
        client.receive_data(pos.data_to_send(), NOW)
        assert client.events_received() == [Reply(9, error=ErrorInfo("bill_closed", "paid"))]

    def test_reply_whose_ids_disagree_is_undelivered_not_given_to_either_request(self):
        client, _ = pair()
        client.receive_data(Frame(FrameType.REPLY, 4, encode_reply(Reply(5, {}))).to_bytes(), NOW)
        [event] = client.events_received()
        assert isinstance(event, Undelivered) and event.id == 4 and event.maybe_received

    def test_unreadable_reply_payload_is_undelivered_and_the_stream_goes_on(self):
        client, _ = pair()
        bad = Frame(FrameType.REPLY, 4, b"{not json").to_bytes()
        good = reply_frame(Reply(6, {"online": True})).to_bytes()
        client.receive_data(bad + good, NOW)
        first, second = client.events_received()
        assert isinstance(first, Undelivered) and first.id == 4 and first.maybe_received
        assert second == Reply(6, {"online": True})

    @pytest.mark.parametrize(
        "payload",
        [b"[1]", b'{"id": 8}', b'{"id": 9, "op": "health"}', "\xff".encode("latin-1")],
    )
    def test_pos_answers_a_bad_request_payload_with_bad_request_under_the_header_id(self, payload):
        client, pos = pair()
        pos.receive_data(Frame(FrameType.REQUEST, 8, payload).to_bytes(), NOW)
        assert pos.requests_received() == []
        client.receive_data(pos.data_to_send(), NOW)
        [reply] = client.events_received()
        assert isinstance(reply, Reply) and reply.id == 8
        assert reply.error is not None and reply.error.code == "bad_request"

    def test_a_new_connection_forgets_a_half_received_frame(self):
        client, _ = pair()
        data = reply_frame(Reply(1, {})).to_bytes()
        client.receive_data(data[:10], NOW)
        client.connection_made(NOW)
        client.receive_data(data, NOW)
        assert client.events_received() == [Reply(1, {})]

    def test_no_timers(self):
        client, pos = pair()
        client.send_request(Request(1, "health"), NOW)
        assert client.next_deadline() is None and pos.next_deadline() is None

    @settings(max_examples=100)
    @given(
        ids=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=8, unique=True),
        cuts=st.lists(st.integers(1, 40), min_size=1, max_size=30),
    )
    def test_fuzz_pipelined_round_trip_with_any_read_sizes(self, ids, cuts):
        client, pos = pair()
        for request_id in ids:
            client.send_request(Request(request_id, "find_payment", {"payment_id": "é€"}), NOW)
        wire = client.data_to_send()
        pieces, at = [], 0
        for cut in cuts * (len(wire) // sum(cuts) + 1):
            if at >= len(wire):
                break
            pieces.append(wire[at : at + cut])
            at += cut
        for piece in pieces:
            pos.receive_data(piece, NOW)
        received = pos.requests_received()
        assert [r.id for r in received] == ids
        for request in reversed(received):
            pos.send_reply(Reply(request.id, {"payment": None}), NOW)
        client.receive_data(pos.data_to_send(), NOW)
        assert [e.id for e in client.events_received()] == list(reversed(ids))

"""PBS1 frames and the resynchronising reader, with bytes only (no event loop, no clock)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.serial.frames import (
    CRC_CHECK,
    ETX,
    KIND_RST,
    MAX_PAYLOAD_BYTES,
    STX,
    AckFrame,
    DataFrame,
    FrameReader,
    FrameTooLargeError,
    NakFrame,
    RstAckFrame,
    RstFrame,
    crc16,
    frame_from_bytes,
)

PAYLOAD = b'{"id":7,"op":"get_open_bill","args":{"location":"1","table":4}}'
FRAME = DataFrame(7, PAYLOAD)


def read_all(reader: FrameReader, data: bytes, *, expire: bool = True) -> list[object]:
    """Feed ``data``; then let the idle timer fire until the buffer is empty (bounded)."""
    frames: list[object] = list(reader.feed(data, 0.0))
    for _ in range(len(data) + 1):
        if not (expire and reader.buffered):
            break
        frames += reader.expire()
    return frames


class TestLayout:
    def test_crc_is_ccitt_false_with_its_check_value(self) -> None:
        assert crc16(b"123456789") == CRC_CHECK == 0x29B1

    def test_data_frame_layout(self) -> None:
        raw = FRAME.to_bytes()
        assert raw[0] == STX and raw[1] == 0x44 and raw[2] == 7
        assert int.from_bytes(raw[3:5], "big") == len(PAYLOAD)
        assert raw[5:-3] == PAYLOAD and raw[-3] == ETX
        assert int.from_bytes(raw[-2:], "big") == crc16(raw[1:-2])

    @pytest.mark.parametrize(
        "frame",
        [FRAME, AckFrame(0), NakFrame(255), DataFrame(1, b""), RstFrame(7), RstAckFrame(200)],
    )
    def test_round_trip(self, frame: object) -> None:
        assert frame_from_bytes(frame.to_bytes()) == frame  # type: ignore[attr-defined]

    def test_payload_over_the_maximum_cannot_be_framed(self) -> None:
        DataFrame(0, bytes(MAX_PAYLOAD_BYTES)).to_bytes()
        with pytest.raises(FrameTooLargeError):
            DataFrame(0, bytes(MAX_PAYLOAD_BYTES + 1)).to_bytes()


class TestChecksum:
    @pytest.mark.parametrize(
        "frame",
        [FRAME, AckFrame(3), NakFrame(9), RstFrame(4), RstAckFrame(4)],
        ids=["data", "ack", "nak", "rst", "rstack"],
    )
    def test_every_single_bit_flip_is_rejected_and_the_next_copy_is_read(
        self, frame: DataFrame | AckFrame | NakFrame | RstFrame | RstAckFrame
    ) -> None:
        raw = frame.to_bytes()
        for bit in range(len(raw) * 8):
            damaged = bytearray(raw)
            damaged[bit // 8] ^= 1 << (bit % 8)
            reader = FrameReader()
            assert read_all(reader, bytes(damaged)) == [], f"bit {bit} got through"
            assert reader.stats.frames_rejected or reader.stats.bytes_discarded
            assert read_all(reader, bytes(damaged) + raw) == [frame], f"bit {bit}: no resync"

    def test_a_damaged_data_frame_is_reported_for_a_nak(self) -> None:
        damaged = bytearray(FRAME.to_bytes())
        damaged[20] ^= 0x10
        reader = FrameReader()
        assert reader.feed(bytes(damaged), 0.0) == []
        assert reader.stats.crc_errors == 1 and reader.damaged_seqs == [7]


class TestResync:
    def test_garbage_with_stx_bytes_before_a_frame(self) -> None:
        garbage = bytes([0x00, STX, 0xFF, STX, 0x44, STX, 0x02, ETX, 0x55])
        reader = FrameReader()
        assert read_all(reader, garbage + FRAME.to_bytes()) == [FRAME]
        assert reader.stats.bytes_discarded >= len(garbage)

    def test_one_byte_at_a_time(self) -> None:
        reader = FrameReader()
        frames = [f for byte in FRAME.to_bytes() for f in reader.feed(bytes([byte]), 0.0)]
        assert frames == [FRAME] and not reader.buffered

    def test_several_frames_in_one_read(self) -> None:
        frames = [FRAME, AckFrame(1), DataFrame(8, b"{}"), NakFrame(2)]
        reader = FrameReader()
        assert reader.feed(b"".join(f.to_bytes() for f in frames), 0.0) == frames

    def test_waits_for_the_rest_of_a_split_frame(self) -> None:
        raw = FRAME.to_bytes()
        reader = FrameReader()
        assert reader.feed(raw[:30], 0.0) == []
        assert reader.feed(raw[30:], 0.0) == [FRAME]

    def test_a_reset_frame_with_a_payload_is_garbage(self) -> None:
        bogus = bytes([STX, KIND_RST, 1, 0, 1, 0x7B, ETX])
        body = bogus[1:]
        reader = FrameReader()
        assert reader.feed(bogus + crc16(body).to_bytes(2, "big"), 0.0) == []
        assert reader.stats.framing_errors >= 1

    def test_oversized_length_is_garbage(self) -> None:
        bogus = bytes([STX, 0x44, 0, *((MAX_PAYLOAD_BYTES + 1).to_bytes(2, "big"))])
        reader = FrameReader()
        assert reader.feed(bogus + FRAME.to_bytes(), 0.0) == [FRAME]
        assert reader.stats.framing_errors == 1

    def test_a_garbage_header_claiming_a_long_frame_is_expired(self) -> None:
        bogus = bytes([STX, 0x44, 0, 0x10, 0x00])  # 4096 bytes promised, never sent
        reader = FrameReader()
        assert reader.feed(bogus + FRAME.to_bytes(), 0.0) == []
        assert reader.expire() == [FRAME]

    def test_half_a_frame_then_silence_leaves_nothing_behind(self) -> None:
        reader = FrameReader()
        assert read_all(reader, FRAME.to_bytes()[:40]) == []
        assert reader.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64) | st.sampled_from([FRAME.to_bytes(), b"\x02"])))
def test_reader_never_raises_on_any_stream(chunks: list[bytes]) -> None:
    reader = FrameReader()
    for chunk in chunks:
        for frame in reader.feed(chunk, 0.0):
            assert isinstance(frame, DataFrame | AckFrame | NakFrame | RstFrame | RstAckFrame)
        if len(chunks) % 3 == 0:
            reader.expire()

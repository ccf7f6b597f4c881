"""The owner↔worker channel's frames, bytes only (no event loop)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.answers import Answer
from bridge.workers import frames
from bridge.workers.frames import ChannelProtocolError, Frame, FrameReader


def _stream() -> tuple[bytes, list[Frame]]:
    calls = [
        (frames.PAYMENT, 7, ["cafe", 12, "pay-1", "bill-1", "v1", "AUD", 1500, 0, "Guest", "ab"]),
        (frames.BILL, 8, ["cafe", 3]),
        (frames.HELLO, 0, []),
    ]
    data = b"".join(frames.encode_call(kind, call_id, args) for kind, call_id, args in calls)
    answer = frames.encode_answer(9, Answer(201, b'{"status":"applied"}', {"ETag": '"v2"'}))
    expected = [
        Frame(kind, call_id, frames.encode_call(kind, call_id, args)[9:])
        for kind, call_id, args in calls
    ]
    expected.append(Frame(frames.ANSWER, 9, answer[9:]))
    return data + answer, expected


def test_frames_split_at_every_byte_come_out_whole_and_in_order() -> None:
    data, expected = _stream()
    for cut in range(len(data) + 1):
        reader = FrameReader()
        got = reader.feed(data[:cut]) + reader.feed(data[cut:])
        assert got == expected, cut
        assert reader.buffered == 0


def test_one_byte_at_a_time() -> None:
    data, expected = _stream()
    reader = FrameReader()
    got: list[Frame] = []
    for i in range(len(data)):
        got += reader.feed(data[i : i + 1])
    assert got == expected


def test_call_arguments_round_trip() -> None:
    args = ["cafe", 12, "pay-é", "bill", "v", "AUD", 1500, 25, "Ann", "f" * 64]
    (frame,) = FrameReader().feed(frames.encode_call(frames.PAYMENT, 3, args))
    assert frame.kind == frames.PAYMENT and frame.call_id == 3
    assert frames.decode_args(frame.payload) == args


@given(
    status=st.integers(100, 599),
    body=st.binary(max_size=300),
    headers=st.none() | st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
)
def test_answers_round_trip(status: int, body: bytes, headers: dict[str, str] | None) -> None:
    (frame,) = FrameReader().feed(frames.encode_answer(5, Answer(status, body, headers)))
    assert frame.kind == frames.ANSWER
    assert frames.decode_answer(frame.payload) == Answer(status, body, headers or None)


def test_oversized_frame_is_refused_before_its_body_arrives() -> None:
    reader = FrameReader(max_payload=100)
    with pytest.raises(ChannelProtocolError, match="over the limit"):
        reader.feed(struct.pack(">IIB", 101, 1, frames.BILL))


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ChannelProtocolError, match="unknown frame kind 9"):
        FrameReader().feed(struct.pack(">IIB", 0, 1, 9))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "not JSON"),
        (b'{"a": 1}', "must be an array"),
    ],
)
def test_bad_call_arguments(payload: bytes, message: str) -> None:
    with pytest.raises(ChannelProtocolError, match=message):
        frames.decode_args(payload)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00", "shorter than its header"),
        (struct.pack(">HI", 200, 50) + b"{}", "run past the frame"),
        (struct.pack(">HI", 200, 3) + b"{x}", "not JSON"),
        (struct.pack(">HI", 200, 2) + b"[]", "map strings to strings"),
        (struct.pack(">HI", 200, 7) + b'{"a":1}', "map strings to strings"),
    ],
)
def test_bad_answers(payload: bytes, message: str) -> None:
    with pytest.raises(ChannelProtocolError, match=message):
        frames.decode_answer(payload)

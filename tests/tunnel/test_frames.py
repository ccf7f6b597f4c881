"""The frame codec, with bytes only: layouts, any split of the stream, and every way the bytes
can be wrong."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunnel.errors import (
    CloseCode,
    FrameError,
    FrameTooLargeError,
    MalformedFrameError,
    UnknownFrameTypeError,
)
from tunnel.frames import (
    HANDSHAKE_MAX_FRAME_BYTES,
    HEADER,
    FrameDecoder,
    FrameFlag,
    FrameType,
    UnknownFrame,
    decode_frame,
    encode_frame,
)
from tunnel.messages import (
    MAX_MAX_FRAME_BYTES,
    MAX_WINDOW_BYTES,
    MIN_MAX_FRAME_BYTES,
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

BIG = MAX_MAX_FRAME_BYTES

EXAMPLES = [
    Hello("venue-7", "s3cret", 42, (1, 2), "0.1.0"),
    Welcome(1, Limits()),
    Close(CloseCode.UNAUTHORIZED, "token revoked"),
    Ping(b"\x00\x01\x02\x03\x04\x05\x06\x07"),
    Pong(b"\xff" * 8),
    Health(True, 3, 61_000, 1_767_225_600_000),
    WindowUpdate(0, 65_536),
    WindowUpdate(5, 1),
    RequestHead(1, "POST", "/loke/v1/x?y=1", ((b"content-type", b"application/json"),)),
    ResponseHead(1, 201, ((b"set-cookie", b"a=1"), (b"set-cookie", b"b=\xff"))),
    BodyChunk(1, b'{"amount": 1250}'),
    BodyChunk(3, b""),
    EndOfBody(1),
    Cancel(3, CancelCode.TIMEOUT),
    UnknownFrame(0x7E, FrameFlag.MAY_IGNORE, 9, b"future"),
]


def decode_all(data: bytes, limit: int = BIG) -> list[object]:
    decoder = FrameDecoder(limit)
    decoder.feed(data)
    frames = []
    while (frame := decoder.next_frame()) is not None:
        frames.append(frame)
    assert decoder.buffered == 0
    return frames


def raw(kind: int, payload: bytes, stream_id: int = 0, flags: int = 0) -> bytes:
    return HEADER.pack(kind, flags, stream_id, len(payload)) + payload


def s(text: bytes) -> bytes:
    return len(text).to_bytes(2, "big") + text


# -- round trips ---------------------------------------------------------------------------


def test_examples_cover_every_frame_type():
    kinds = {encode_frame(frame)[0] for frame in EXAMPLES}
    assert kinds >= {int(kind) for kind in FrameType}


@pytest.mark.parametrize("frame", EXAMPLES, ids=lambda f: type(f).__name__)
def test_every_frame_type_round_trips(frame):
    assert decode_all(encode_frame(frame)) == [frame]


def test_decoded_codes_are_enum_members_and_unknown_codes_stay_ints():
    close, cancel = decode_all(encode_frame(Close(9, "")) + encode_frame(Cancel(1, 999)))
    assert close.code is CloseCode.UNAUTHORIZED
    assert cancel.code == 999 and not isinstance(cancel.code, CancelCode)


def test_hello_never_shows_its_token_in_repr():
    assert "s3cret" not in repr(EXAMPLES[0])


def u(bits):
    return st.integers(0, 2**bits - 1)


stream_ids = st.integers(1, 2**32 - 1)
texts = st.text(max_size=30)
header_lists = st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=12)), max_size=4)
limits = st.builds(
    Limits,
    max_frame_bytes=st.integers(MIN_MAX_FRAME_BYTES, MAX_MAX_FRAME_BYTES),
    initial_stream_window=st.integers(1, MAX_WINDOW_BYTES),
    connection_window=st.integers(1, MAX_WINDOW_BYTES),
    max_concurrent_streams=st.integers(1, MAX_WINDOW_BYTES),
    heartbeat_interval_ms=u(32),
)
frames = st.one_of(
    st.builds(
        Hello, texts, texts, u(64), st.lists(u(16), min_size=1, max_size=9).map(tuple), texts
    ),
    st.builds(Welcome, u(16), limits),
    st.builds(Close, u(16), texts),
    st.builds(Ping, st.binary(min_size=8, max_size=8)),
    st.builds(Pong, st.binary(min_size=8, max_size=8)),
    st.builds(Health, st.booleans(), u(32), u(64), u(64)),
    st.builds(WindowUpdate, u(32), st.integers(1, MAX_WINDOW_BYTES)),
    st.builds(
        RequestHead,
        stream_ids,
        st.text(string.ascii_uppercase, min_size=1, max_size=8),
        texts.map(lambda t: "/" + t),
        header_lists,
    ),
    st.builds(ResponseHead, stream_ids, st.integers(100, 599), header_lists),
    st.builds(BodyChunk, stream_ids, st.binary(max_size=300)),
    st.builds(EndOfBody, stream_ids),
    st.builds(Cancel, stream_ids, u(16)),
    st.builds(
        UnknownFrame,
        st.integers(0x20, 0xFF),
        st.integers(0x80, 0xFF),
        u(32),
        st.binary(max_size=30),
    ),
)


@given(frames)
def test_any_valid_frame_round_trips(frame):
    assert decode_all(encode_frame(frame)) == [frame]


@settings(max_examples=150)
@given(st.lists(frames, min_size=1, max_size=12), st.data())
def test_a_stream_of_frames_decodes_the_same_however_it_is_split(frame_list, data):
    wire = b"".join(encode_frame(frame) for frame in frame_list)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=20)))
    decoder = FrameDecoder(BIG)
    decoded = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        decoder.feed(wire[start:end])
        while (frame := decoder.next_frame()) is not None:
            decoded.append(frame)
    assert decoded == frame_list
    assert decoder.buffered == 0


# -- splits and batches ---------------------------------------------------------------------


WIRE = b"".join(encode_frame(frame) for frame in EXAMPLES)


def test_decoder_returns_the_same_frames_for_a_split_at_every_byte_boundary():
    for cut in range(len(WIRE) + 1):
        decoder = FrameDecoder(BIG)
        decoded = []
        for piece in (WIRE[:cut], WIRE[cut:]):
            decoder.feed(piece)
            while (frame := decoder.next_frame()) is not None:
                decoded.append(frame)
        assert decoded == EXAMPLES, f"split at byte {cut}"


def test_decoder_takes_one_byte_at_a_time_and_waits_for_the_rest_of_a_frame():
    decoder = FrameDecoder(BIG)
    decoded = []
    for i in range(len(WIRE)):
        decoder.feed(WIRE[i : i + 1])
        while (frame := decoder.next_frame()) is not None:
            decoded.append(frame)
    assert decoded == EXAMPLES


def test_decoder_returns_several_frames_from_one_read():
    assert decode_all(WIRE) == EXAMPLES


# -- the DoS guard --------------------------------------------------------------------------


def test_oversized_length_is_rejected_from_the_header_alone_and_nothing_is_kept():
    decoder = FrameDecoder(HANDSHAKE_MAX_FRAME_BYTES)
    decoder.feed(HEADER.pack(FrameType.BODY_CHUNK, 0, 1, 0xFFFF_FFFF))  # claims 4 GiB
    with pytest.raises(FrameTooLargeError) as caught:
        decoder.next_frame()
    assert (caught.value.length, caught.value.limit) == (0xFFFF_FFFF, HANDSHAKE_MAX_FRAME_BYTES)
    assert caught.value.frame_type is FrameType.BODY_CHUNK
    assert caught.value.close_code is CloseCode.FRAME_TOO_LARGE
    assert decoder.buffered == 0
    assert "4294967295 bytes exceeds the 16384-byte limit" in str(caught.value)


def test_a_frame_exactly_at_the_limit_is_accepted_and_one_byte_more_is_not():
    assert decode_all(raw(FrameType.BODY_CHUNK, b"x" * 100, 1), limit=100)
    with pytest.raises(FrameTooLargeError):
        decode_all(raw(FrameType.BODY_CHUNK, b"x" * 101, 1), limit=100)


def test_the_limit_applies_to_unknown_frame_types_too():
    with pytest.raises(FrameTooLargeError) as caught:
        decode_all(HEADER.pack(0x7E, 0x80, 0, 10_000), limit=100)
    assert caught.value.frame_type == 0x7E


# -- bytes that are not frames --------------------------------------------------------------


def test_garbage_before_a_frame_is_a_frame_error_not_a_resync():
    with pytest.raises(FrameError):
        decode_all(b"GET / HTTP/1.1\r\n\r\n" + encode_frame(EndOfBody(1)), limit=16_384)


def test_an_unknown_frame_type_fails_unless_flagged_may_ignore():
    with pytest.raises(UnknownFrameTypeError) as caught:
        decode_all(raw(0x42, b"?"))
    assert (caught.value.frame_type, caught.value.close_code) == (
        0x42,
        CloseCode.UNKNOWN_FRAME_TYPE,
    )
    assert decode_all(raw(0x42, b"?", flags=0x80)) == [UnknownFrame(0x42, 0x80, 0, b"?")]


def test_may_ignore_on_a_known_type_changes_nothing():
    frame = EndOfBody(7)
    wire = bytearray(encode_frame(frame))
    wire[1] = FrameFlag.MAY_IGNORE | 0x01  # and an undefined flag bit, ignored too
    assert decode_all(bytes(wire)) == [frame]


HEAD = FrameType.REQUEST_HEAD
MALFORMED = {
    "bad UTF-8 in a path": raw(HEAD, s(b"GET") + s(b"/\xff") + b"\x00\x00", 1),
    "bad UTF-8 in a venue id": raw(
        FrameType.HELLO, s(b"\xc3\x28") + s(b"t") + bytes(8) + b"\x01\x00\x01" + s(b"v")
    ),
    "an encoded surrogate": raw(FrameType.CLOSE, b"\x00\x00" + s(b"\xed\xa0\x80")),
    "a string longer than its payload": raw(HEAD, s(b"GET") + b"\x00\x09/", 1),
    "a header cut short": raw(HEAD, s(b"GET") + s(b"/") + b"\x00\x01\x00\x04ab", 1),
    "trailing bytes": raw(FrameType.END_OF_BODY, b"\x00", 1),
    "a 7-byte PING": raw(FrameType.PING, bytes(7)),
    "pos_online neither 0 nor 1": raw(FrameType.HEALTH, b"\x02" + bytes(20)),
    "a status below 100": raw(FrameType.RESPONSE_HEAD, b"\x00\x63\x00\x00", 1),
    "a zero window increment": raw(FrameType.WINDOW_UPDATE, bytes(4), 1),
    "a path without a leading slash": raw(HEAD, s(b"GET") + s(b"http://evil/") + bytes(2), 1),
    "an empty method": raw(HEAD, s(b"") + s(b"/") + bytes(2), 1),
    "a WELCOME with a tiny frame limit": raw(FrameType.WELCOME, b"\x00\x01" + bytes(20)),
    "a HELLO offering no versions": raw(FrameType.HELLO, s(b"v") + s(b"t") + bytes(9) + s(b"")),
    "a stream id on a connection frame": raw(FrameType.PING, bytes(8), stream_id=1),
    "stream id 0 on a stream frame": raw(FrameType.END_OF_BODY, b"", stream_id=0),
}


@pytest.mark.parametrize("wire", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_payload_is_a_typed_error(wire):
    with pytest.raises(MalformedFrameError) as caught:
        decode_all(wire)
    assert caught.value.close_code is CloseCode.MALFORMED_FRAME
    assert str(caught.value).startswith("malformed ")


def test_malformed_error_names_the_field():
    with pytest.raises(MalformedFrameError, match="path is not valid UTF-8"):
        decode_all(MALFORMED["bad UTF-8 in a path"])


def test_hello_alone_may_carry_trailing_bytes_for_later_versions():
    wire = encode_frame(EXAMPLES[0])
    extended = raw(FrameType.HELLO, wire[10:] + b"\x01future-field")
    assert decode_all(extended) == [EXAMPLES[0]]


def test_decode_frame_reads_a_header_and_payload_already_split():
    assert decode_frame(FrameType.CANCEL, 0, 3, b"\x00\x02") == Cancel(3, CancelCode.REFUSED)


# -- frames that cannot be built ------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: RequestHead(1, "GET", "relative"),
        lambda: RequestHead(0, "GET", "/"),
        lambda: RequestHead(1, "GET", "/", [("name", "str")]),
        lambda: ResponseHead(1, 600),
        lambda: ResponseHead(1, True),
        lambda: Health(1, 0, 0, 0),
        lambda: Health(True, -1, 0, 0),
        lambda: Health(True, 0, 0.5, 0),
        lambda: Ping(b"short"),
        lambda: WindowUpdate(1, 2**31),
        lambda: Close(70_000),
        lambda: Close(0, "\udc80"),
        lambda: Hello("v", "t", 0, (), "b"),
        lambda: Limits(max_frame_bytes=1024),
        lambda: Limits(connection_window=0),
        lambda: UnknownFrame(FrameType.PING, 0x80, 0, b""),
        lambda: BodyChunk(1, "text"),
    ],
)
def test_a_frame_with_a_field_out_of_range_cannot_be_built(build):
    with pytest.raises(ValueError):
        build()


def test_int_enums_are_accepted_where_ints_are():
    from http import HTTPStatus

    assert decode_all(encode_frame(ResponseHead(1, HTTPStatus.CREATED))) == [ResponseHead(1, 201)]


def test_headers_keep_their_order_and_repeats_as_byte_pairs():
    frame = RequestHead(1, "GET", "/", [(b"a", b"1"), (bytearray(b"a"), b"2")])
    assert frame.headers == ((b"a", b"1"), (b"a", b"2"))


# -- the protocol document ------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "tunnel-protocol.md"
DOCUMENTED = [
    Hello("venue-7", "s3cret", 42, (1,), "0.1.0"),
    Welcome(1, Limits()),
    RequestHead(1, "GET", "/t?x=1", ((b"host", b"relay"),)),
    ResponseHead(1, 201, ((b"content-type", b"application/json"),)),
    BodyChunk(1, b'{"a":1}'),
    EndOfBody(1),
    WindowUpdate(0, 524_288),
    Cancel(3, CancelCode.TIMEOUT),
    Ping(bytes.fromhex("0000018bcfe56800")),
    Health(False, 4, 93_000, 1_767_225_600_000),
    Close(CloseCode.UNAUTHORIZED, "bad token"),
    UnknownFrame(0x7E, FrameFlag.MAY_IGNORE, 0, b"hi"),
]


def documented_examples() -> list[bytes]:
    """Each ```hex block of the document as bytes: a line's bytes end at two spaces."""
    blocks = re.findall(r"```hex\n(.*?)```", DOC.read_text(), re.DOTALL)
    return [
        bytes.fromhex("".join(line.strip().split("  ")[0] for line in block.splitlines()))
        for block in blocks
    ]


def test_every_hex_example_in_the_protocol_document_is_what_the_encoder_writes():
    examples = documented_examples()
    assert examples == [encode_frame(frame) for frame in DOCUMENTED]
    assert [decode_all(example) for example in examples] == [[frame] for frame in DOCUMENTED]

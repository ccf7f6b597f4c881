"""PBS1 frames: layout, CRC and the resynchronising reader (pure; ``docs/drivers/serial.md``).

Every frame, data or control, has the same shape, so one reader and one checksum cover
everything that crosses the line::

    STX | KIND | SEQ | LEN (2, big-endian) | PAYLOAD (LEN bytes) | ETX | CRC (2, big-endian)

The CRC is CRC-16/CCITT-FALSE over KIND..ETX. There is no byte stuffing: LEN says where ETX
must be, and a candidate frame whose KIND, LEN, ETX or CRC is wrong is dropped by skipping
its STX and scanning again, so a real frame hidden behind garbage is still found.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

STX = 0x02  # ASCII start of text: every frame begins with it
ETX = 0x03  # ASCII end of text: the byte after the payload, checked, then the CRC
KIND_DATA = 0x44  # "D": a payload of the message catalogue, to be ACKed
KIND_ACK = 0x06  # ASCII ACK: the data frame with this SEQ arrived intact
KIND_NAK = 0x15  # ASCII NAK: a data frame with this SEQ arrived damaged; send it again
KIND_RST = 0x52  # "R": I (re)started; SEQ is my session nonce; see the codec's handshake
KIND_RSTACK = 0x72  # "r": your RST with this nonce arrived; nothing from before it is in flight
KINDS = frozenset({KIND_DATA, KIND_ACK, KIND_NAK, KIND_RST, KIND_RSTACK})

HEADER_BYTES = 5  # STX, KIND, SEQ, LEN
TRAILER_BYTES = 3  # ETX, CRC
OVERHEAD_BYTES = HEADER_BYTES + TRAILER_BYTES
CONTROL_FRAME_BYTES = OVERHEAD_BYTES  # an ACK, NAK, RST or RSTACK has no payload
#: Largest payload a frame may carry. A bill is a few kB; 16 KiB is ~17 s of wire at 9600 baud,
#: and the cap bounds how long a garbage header claiming a long frame can stall the reader.
MAX_PAYLOAD_BYTES = 16_384
MAX_FRAME_BYTES = MAX_PAYLOAD_BYTES + OVERHEAD_BYTES
#: Bytes kept while waiting for a frame to complete; more means the line is full of noise.
MAX_BUFFER_BYTES = 2 * MAX_FRAME_BYTES

#: CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0. That is the
#: XMODEM CRC the standard library computes (``binascii.crc_hqx``, in C) started at 0xFFFF
#: instead of 0: the same polynomial, unreflected, with no final xor.
CRC_INIT = 0xFFFF
CRC_CHECK = 0x29B1  # crc16(b"123456789"), the catalogue's check value


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value :data:`CRC_CHECK`); ``crc`` continues a
    CRC over earlier bytes."""
    return binascii.crc_hqx(data, crc)


class FrameTooLargeError(ValueError):
    """A payload over :data:`MAX_PAYLOAD_BYTES`: it cannot be framed at all."""


@dataclass(frozen=True, slots=True)
class DataFrame:
    seq: int
    payload: bytes

    def to_bytes(self) -> bytes:
        return _frame(KIND_DATA, self.seq, self.payload)


@dataclass(frozen=True, slots=True)
class AckFrame:
    seq: int

    def to_bytes(self) -> bytes:
        return _frame(KIND_ACK, self.seq, b"")


@dataclass(frozen=True, slots=True)
class NakFrame:
    seq: int

    def to_bytes(self) -> bytes:
        return _frame(KIND_NAK, self.seq, b"")


@dataclass(frozen=True, slots=True)
class RstFrame:
    """A reset: the sender forgot what it received and will send nothing from before it."""

    nonce: int

    def to_bytes(self) -> bytes:
        return _frame(KIND_RST, self.nonce, b"")


@dataclass(frozen=True, slots=True)
class RstAckFrame:
    """The answer to ``RstFrame(nonce)``: the sender dropped every frame it had in flight."""

    nonce: int

    def to_bytes(self) -> bytes:
        return _frame(KIND_RSTACK, self.nonce, b"")


Frame = DataFrame | AckFrame | NakFrame | RstFrame | RstAckFrame
_CONTROL: dict[int, type[AckFrame | NakFrame | RstFrame | RstAckFrame]] = {
    KIND_ACK: AckFrame,
    KIND_NAK: NakFrame,
    KIND_RST: RstFrame,
    KIND_RSTACK: RstAckFrame,
}


def _frame(kind: int, seq: int, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise FrameTooLargeError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"seq {seq} is not a byte")
    body = bytes((kind, seq)) + len(payload).to_bytes(2, "big") + payload + bytes((ETX,))
    return bytes((STX,)) + body + crc16(body).to_bytes(2, "big")


def frame_from_bytes(data: bytes) -> Frame:
    """Exactly one whole frame (for tests and the docs); ``ValueError`` if it is not one."""
    reader = FrameReader()
    frames = reader.feed(data, 0.0)
    if len(frames) != 1 or reader.buffered or reader.stats.bytes_discarded:
        raise ValueError("not exactly one valid frame")
    return frames[0]


@dataclass(slots=True)
class ReaderStats:
    """What the reader threw away, so noise on a line can be seen and counted."""

    frames_ok: int = 0
    crc_errors: int = 0  # a complete candidate frame whose CRC did not match
    framing_errors: int = 0  # a candidate with a bad KIND, LEN or ETX
    bytes_discarded: int = 0  # every byte skipped while looking for STX

    @property
    def frames_rejected(self) -> int:
        return self.crc_errors + self.framing_errors


class FrameReader:
    """Bytes in, valid frames out; never raises on any input.

    Damaged data frames with a readable header are reported in :attr:`damaged_seqs` so the
    receiver can NAK them. :meth:`expire` drops a partial frame that stopped growing: a
    garbage STX claiming a long LEN must not hold up the real frames behind it.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.stats = ReaderStats()
        self.damaged_seqs: list[int] = []

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def reset(self) -> None:
        self.stats.bytes_discarded += len(self._buffer)
        self._buffer.clear()

    def feed(self, data: bytes, now: float) -> list[Frame]:
        """Every frame completed by ``data`` (``now`` is unused: kept for symmetry)."""
        self._buffer += data
        if len(self._buffer) > MAX_BUFFER_BYTES:
            excess = len(self._buffer) - MAX_BUFFER_BYTES
            del self._buffer[:excess]
            self.stats.bytes_discarded += excess
        return self._scan()

    def expire(self) -> list[Frame]:
        """Give up on the partial frame at the head of the buffer; scan past its STX."""
        if not self._buffer:
            return []
        if len(self._buffer) >= HEADER_BYTES and self._buffer[1] == KIND_DATA:
            self.damaged_seqs.append(self._buffer[2])  # it lost bytes on the way: NAK it
        self._skip(1)
        self.stats.framing_errors += 1
        return self._scan()

    def _skip(self, count: int) -> None:
        del self._buffer[:count]
        self.stats.bytes_discarded += count

    def _scan(self) -> list[Frame]:
        frames: list[Frame] = []
        buf = self._buffer
        while buf:
            start = buf.find(STX)
            if start < 0:
                self._skip(len(buf))
                break
            if start:
                self._skip(start)
            if len(buf) < HEADER_BYTES:
                break
            kind, seq, length = buf[1], buf[2], int.from_bytes(buf[3:5], "big")
            if kind not in KINDS or length > MAX_PAYLOAD_BYTES or (kind != KIND_DATA and length):
                self.stats.framing_errors += 1
                self._skip(1)
                continue
            end = HEADER_BYTES + length + TRAILER_BYTES
            if len(buf) < end:
                break  # wait for the rest (or for expire())
            if buf[end - 3] != ETX:  # a byte lost or gained inside: damaged as well
                self.stats.framing_errors += 1
                if kind == KIND_DATA:
                    self.damaged_seqs.append(seq)
                self._skip(1)
                continue
            if crc16(bytes(buf[1 : end - 2])) != int.from_bytes(buf[end - 2 : end], "big"):
                self.stats.crc_errors += 1
                if kind == KIND_DATA:
                    self.damaged_seqs.append(seq)
                self._skip(1)
                continue
            payload = bytes(buf[HEADER_BYTES : end - 3])
            del buf[:end]
            self.stats.frames_ok += 1
            frames.append(DataFrame(seq, payload) if kind == KIND_DATA else _CONTROL[kind](seq))
        return frames

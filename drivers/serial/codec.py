"""PBS1, the reference serial protocol, as sans-I/O codecs for both ends of the cable.

:class:`LinkEndpoint` is stop-and-wait ARQ over :mod:`drivers.serial.frames`, the same for
bridge and POS: one unacknowledged data frame per direction; every intact data frame is
ACKed at once; a data frame whose SEQ equals the last one delivered is a retransmit whose
ACK was lost, so it is ACKed again and **not** delivered again (a payment is never applied
twice because a line dropped an ACK); a frame without ACK is sent again after its ACK
timeout (or at once on a NAK) up to ``retransmits`` times, then given up.
:class:`Pbs1ClientCodec` (the bridge) and :class:`Pbs1PosCodec` (the POS, the emulator's)
add the message catalogue's payloads on top. ``now`` is monotonic seconds, passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from drivers.options import int_option
from drivers.serial.frames import (
    AckFrame,
    DataFrame,
    Frame,
    FrameReader,
    FrameTooLargeError,
    NakFrame,
    ReaderStats,
)
from drivers.serial.settings import RETRANSMITS, TURNAROUND_S, Timers, line_settings
from drivers.wire import messages
from drivers.wire.messages import ErrorInfo, Reply, Request, Undelivered, WireFormatError

CODEC_NAME = "pbs1"


@dataclass(slots=True)
class LinkStats:
    """Counters of one endpoint; the reader's own (``ReaderStats``) count the rejected."""

    sent: int = 0
    retransmitted: int = 0
    duplicates: int = 0  # retransmits received again, ACKed, not delivered
    given_up: int = 0
    naks_sent: int = 0
    bad_payloads: int = 0  # intact frames whose payload was not a message (must stay 0)


@dataclass(slots=True)
class _Outstanding:
    seq: int
    frame: bytes
    key: int | None
    copies: int
    deadline: float


class LinkEndpoint:
    """One end of a PBS1 line: frames, ACKs, retransmits, duplicate detection."""

    def __init__(self, timers: Timers, first_seq: int = 0) -> None:
        self.timers = timers
        self.reader = FrameReader()
        self.stats = LinkStats()
        self._next_seq = first_seq & 0xFF
        self._queue: deque[tuple[int | None, bytes]] = deque()
        self._outstanding: _Outstanding | None = None
        self._last_delivered: int | None = None
        self._last_rx = 0.0
        self._out = bytearray()
        self._delivered: list[bytes] = []
        self._given_up: list[int | None] = []

    @property
    def reader_stats(self) -> ReaderStats:
        return self.reader.stats

    def reset(self) -> None:
        """A fresh line (connect, reboot): drop partial input, queue and duplicate memory.

        The next SEQ keeps counting, so this end's first frame after a reset is never taken
        for a duplicate of its last one before it.
        """
        self.reader.reset()
        self.reader.damaged_seqs.clear()
        self._queue.clear()
        self._outstanding = None
        self._last_delivered = None
        self._out.clear()

    def send(self, payload: bytes, key: int | None, now: float) -> None:
        """Queue ``payload``; raises :class:`FrameTooLargeError` before queueing if too big."""
        DataFrame(0, payload).to_bytes()  # size check, before anything is queued
        self._queue.append((key, payload))
        self._pump(now)

    def receive(self, data: bytes, now: float) -> None:
        self._last_rx = now
        self._handle(self.reader.feed(data, now), now)
        if self._outstanding is not None:
            self._outstanding.deadline = max(
                self._outstanding.deadline, now + self.timers.ack_wait_after_rx
            )

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def take_delivered(self) -> list[bytes]:
        delivered, self._delivered = self._delivered, []
        return delivered

    def take_given_up(self) -> list[int | None]:
        given_up, self._given_up = self._given_up, []
        return given_up

    def next_deadline(self) -> float | None:
        deadlines = []
        if self._outstanding is not None:
            deadlines.append(self._outstanding.deadline)
        if self.reader.buffered:
            deadlines.append(self._last_rx + self.timers.resync_idle)
        return min(deadlines, default=None)

    def handle_timeouts(self, now: float) -> None:
        if self.reader.buffered and now >= self._last_rx + self.timers.resync_idle:
            self._last_rx = now
            self._handle(self.reader.expire(), now)
        sent = self._outstanding
        if sent is not None and now >= sent.deadline:
            self._retransmit(sent, now)

    # -- internals ---------------------------------------------------------------------------

    def _handle(self, frames: list[Frame], now: float) -> None:
        for seq in self.reader.damaged_seqs:
            self._out += NakFrame(seq).to_bytes()
            self.stats.naks_sent += 1
        self.reader.damaged_seqs.clear()
        for frame in frames:
            if isinstance(frame, DataFrame):
                self._out += AckFrame(frame.seq).to_bytes()
                if frame.seq == self._last_delivered:
                    self.stats.duplicates += 1
                    continue
                self._last_delivered = frame.seq
                self._delivered.append(frame.payload)
            elif self._outstanding is None or frame.seq != self._outstanding.seq:
                continue  # a late ACK, or a NAK for a frame already given up
            elif isinstance(frame, AckFrame):
                self._outstanding = None
            else:
                self._retransmit(self._outstanding, now)
        self._pump(now)

    def _pump(self, now: float) -> None:
        if self._outstanding is not None or not self._queue:
            return
        key, payload = self._queue.popleft()
        seq, self._next_seq = self._next_seq, (self._next_seq + 1) & 0xFF
        frame = DataFrame(seq, payload).to_bytes()
        self._outstanding = _Outstanding(seq, frame, key, 1, now)
        self._transmit(self._outstanding, now)

    def _transmit(self, sent: _Outstanding, now: float) -> None:
        self._out += sent.frame
        self.stats.sent += 1
        sent.deadline = now + self.timers.ack_timeout(len(sent.frame))

    def _retransmit(self, sent: _Outstanding, now: float) -> None:
        if sent.copies > self.timers.retransmits:
            self._outstanding = None
            self.stats.given_up += 1
            self._given_up.append(sent.key)
            self._pump(now)
            return
        sent.copies += 1
        self.stats.retransmitted += 1
        self._transmit(sent, now)


def timers_from_options(options: dict[str, Any]) -> Timers:
    """The line's timers; pops ``retransmits`` and ``turnaround_ms``, reads the speed."""
    line = line_settings(options)
    retransmits = int_option(options, "retransmits", RETRANSMITS, 0, 10)
    turnaround_ms = int_option(options, "turnaround_ms", int(TURNAROUND_S * 1000), 1, 10_000)
    return Timers(line, turnaround_ms / 1000, retransmits)


class Pbs1ClientCodec:
    """The bridge's end: requests out, replies in (a :class:`~drivers.wire.codec.ClientCodec`).

    Args:
        options: the driver's options (URL query and config); pops its own.
        first_seq: the first SEQ to send; the link draws it at random so that a restarted
            bridge is not taken for a retransmit of the last frame before the restart.
    """

    def __init__(self, options: dict[str, Any], *, first_seq: int = 0) -> None:
        self.link = LinkEndpoint(timers_from_options(options), first_seq)
        self._events: list[Reply | Undelivered] = []

    def connection_made(self, now: float) -> None:
        self.link.reset()
        self._events.clear()

    def send_request(self, request: Request, now: float) -> None:
        try:
            self.link.send(messages.encode_request(request), request.id, now)
        except FrameTooLargeError as exc:
            self._events.append(Undelivered(request.id, str(exc), maybe_received=False))

    def receive_data(self, data: bytes, now: float) -> None:
        self.link.receive(data, now)
        self._collect()

    def data_to_send(self) -> bytes:
        return self.link.data_to_send()

    def events_received(self) -> list[Reply | Undelivered]:
        self._collect()
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        return self.link.next_deadline()

    def handle_timeouts(self, now: float) -> None:
        self.link.handle_timeouts(now)
        self._collect()

    def _collect(self) -> None:
        for payload in self.link.take_delivered():
            try:
                self._events.append(messages.decode_reply(payload))
            except WireFormatError:
                self.link.stats.bad_payloads += 1
        copies = self.link.timers.retransmits + 1
        for key in self.link.take_given_up():
            if key is not None:
                reason = f"no ACK after {copies} transmissions"
                self._events.append(Undelivered(key, reason, maybe_received=True))


class Pbs1PosCodec:
    """The POS's end: requests in, replies out (a :class:`~drivers.wire.codec.PosCodec`).

    A reply too large for one frame is answered with ``unavailable`` instead, so the bridge
    hears about it rather than waiting out its timeout.
    """

    def __init__(self, options: dict[str, Any], *, first_seq: int = 0) -> None:
        self.link = LinkEndpoint(timers_from_options(options), first_seq)
        self._requests: list[Request] = []

    def connection_made(self, now: float) -> None:
        self.link.reset()
        self._requests.clear()

    def receive_data(self, data: bytes, now: float) -> None:
        self.link.receive(data, now)

    def requests_received(self) -> list[Request]:
        for payload in self.link.take_delivered():
            try:
                self._requests.append(messages.decode_request(payload))
            except WireFormatError:
                self.link.stats.bad_payloads += 1
        self.link.take_given_up()  # a reply never ACKed: the bridge's timeout covers it
        requests, self._requests = self._requests, []
        return requests

    def send_reply(self, reply: Reply, now: float) -> None:
        try:
            self.link.send(messages.encode_reply(reply), None, now)
        except FrameTooLargeError as exc:
            error = Reply(reply.id, error=ErrorInfo("unavailable", f"reply too large: {exc}"))
            self.link.send(messages.encode_reply(error), None, now)

    def data_to_send(self) -> bytes:
        return self.link.data_to_send()

    def next_deadline(self) -> float | None:
        return self.link.next_deadline()

    def handle_timeouts(self, now: float) -> None:
        self.link.handle_timeouts(now)

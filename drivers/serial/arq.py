"""PBS1's link layer, sans-I/O, the same for both ends of the cable.

:class:`LinkEndpoint` is stop-and-wait ARQ over :mod:`drivers.serial.frames`, the same for
bridge and POS: one unacknowledged data frame per direction; every intact data frame is
ACKed at once; a data frame whose SEQ equals the last one delivered is a retransmit whose
ACK was lost, so it is ACKed again and **not** delivered again (a payment is never applied
twice because a line dropped an ACK); a frame without ACK is sent again after its ACK
timeout (or at once on a NAK) up to ``retransmits`` times, then given up.

The duplicate memory lives in the receiver, and a receiver that restarts loses it. So every
session begins with a handshake (ASH's RST/RSTACK, simplified): an end that starts (the POS
at power-on or after a reboot, the bridge at each connect) sends ``RST(nonce)`` and delivers
no data frame until it gets ``RSTACK(nonce)`` (it answers each data frame with its RST
again, not with an ACK). An end that receives an RST **never retransmits** what it had in
flight: it drops its unacknowledged frame (the bridge reports it, and every request still
waiting for a reply, as outcome unknown), forgets the peer's last SEQ and answers RSTACK.
A retransmission from before a restart therefore never reaches a receiver that forgot it
had delivered it.

``drivers/serial/codec.py`` puts the message catalogue's payloads on top, for each end.
``now`` is monotonic seconds, passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from drivers.serial.frames import (
    CONTROL_FRAME_BYTES,
    AckFrame,
    DataFrame,
    Frame,
    FrameReader,
    NakFrame,
    ReaderStats,
    RstAckFrame,
    RstFrame,
)
from drivers.serial.settings import Timers


@dataclass(slots=True)
class LinkStats:
    """Counters of one endpoint; the reader's own (``ReaderStats``) count the rejected."""

    sent: int = 0
    retransmitted: int = 0
    duplicates: int = 0  # retransmits received again, ACKed, not delivered
    given_up: int = 0
    naks_sent: int = 0
    bad_payloads: int = 0  # intact frames whose payload was not a message (must stay 0)
    resets_sent: int = 0  # RST frames sent, retransmissions included
    peer_resets: int = 0  # RST frames received and taken as a restart of the peer
    duplicate_resets: int = 0  # RST frames answered again, taken as a retransmission
    refused: int = 0  # data frames refused (answered with RST) while not synchronised
    dropped_on_reset: int = 0  # unacknowledged frames dropped, never retransmitted, on an RST


@dataclass(slots=True)
class _Outstanding:
    seq: int
    frame: bytes
    key: int | None
    copies: int
    deadline: float


class LinkEndpoint:
    """One end of a PBS1 line: handshake, frames, ACKs, retransmits, duplicate detection.

    Args:
        first_seq: the first data SEQ (wraps at 255; keeps counting across resets).
        first_nonce: the RST nonce of the first session; each :meth:`reset` takes the next.
        pos_side: the POS's end. Frames queued for a peer that restarted (replies to a
            bridge session that is gone) are dropped, not sent; and an RST with the nonce
            of the RST it last answered is a retransmission (its RSTACK was slow or lost):
            answered again, nothing dropped. The bridge's end takes every RST as a restart:
            a POS that rebooted may draw the nonce it had before.
    """

    def __init__(
        self,
        timers: Timers,
        first_seq: int = 0,
        *,
        first_nonce: int = 0,
        pos_side: bool = False,
    ) -> None:
        self.timers = timers
        self.reader = FrameReader()
        self.stats = LinkStats()
        self._next_seq = first_seq & 0xFF
        self._nonce = (first_nonce - 1) & 0xFF
        self._pos_side = pos_side
        self._peer_nonce: int | None = None  # of the peer's RST last answered (POS side)
        self._queue: deque[tuple[int | None, bytes]] = deque()
        self._outstanding: _Outstanding | None = None
        self._last_delivered: int | None = None
        self._last_rx = 0.0
        self._out = bytearray()
        self._delivered: list[bytes] = []
        self._given_up: list[int | None] = []
        self._not_sent: list[int | None] = []
        self._peer_reset: set[int | None] | None = None  # keys still queued at the last RST
        self.synchronised = False
        self._rst_copies = 0
        self._rst_deadline: float | None = None

    @property
    def reader_stats(self) -> ReaderStats:
        return self.reader.stats

    @property
    def nonce(self) -> int:
        """The nonce of this end's current session (the SEQ byte of its RST)."""
        return self._nonce

    def reset(self, now: float) -> None:
        """A fresh session (connect, power-on, reboot): drop partial input, queue, frame in
        flight and duplicate memory; send ``RST`` and deliver nothing until ``RSTACK``.

        The next SEQ keeps counting; the nonce moves on, so an RSTACK meant for an earlier
        session does not complete this one.
        """
        self.reader.reset()
        self.reader.damaged_seqs.clear()
        self._queue.clear()
        self._outstanding = None
        self._last_delivered = None
        self._peer_nonce = None
        self._out.clear()
        self._nonce = (self._nonce + 1) & 0xFF
        self.synchronised = False
        self._rst_copies = 0
        self._send_rst(now)

    def send(self, payload: bytes, key: int | None, now: float) -> None:
        """Queue ``payload``; raises :class:`FrameTooLargeError` before queueing if too big.

        Not synchronised and the handshake given up: it starts again.
        """
        DataFrame(0, payload).to_bytes()  # size check, before anything is queued
        self._queue.append((key, payload))
        if not self.synchronised and self._rst_deadline is None:
            self._rst_copies = 0
            self._send_rst(now)
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
        """Keys of frames sent but never ACKed: the peer may have them."""
        given_up, self._given_up = self._given_up, []
        return given_up

    def take_not_sent(self) -> list[int | None]:
        """Keys of frames dropped before they were ever sent (the handshake failed)."""
        not_sent, self._not_sent = self._not_sent, []
        return not_sent

    def take_peer_reset(self) -> set[int | None] | None:
        """``None``, or the peer restarted (sent RST) since the last call: then the keys of
        the frames that were still queued, unsent, at its last RST (they go after it, to the
        peer's new session; whatever else was sent before may have been lost with it)."""
        reset, self._peer_reset = self._peer_reset, None
        return reset

    def next_deadline(self) -> float | None:
        deadlines = []
        if self._outstanding is not None:
            deadlines.append(self._outstanding.deadline)
        if self._rst_deadline is not None:
            deadlines.append(self._rst_deadline)
        if self.reader.buffered:
            deadlines.append(self._last_rx + self.timers.resync_idle)
        return min(deadlines, default=None)

    def handle_timeouts(self, now: float) -> None:
        if self.reader.buffered and now >= self._last_rx + self.timers.resync_idle:
            self._last_rx = now
            self._handle(self.reader.expire(), now)
        if self._rst_deadline is not None and now >= self._rst_deadline:
            if not self._queue:
                self._rst_deadline = None  # nothing to send: the peer's data will ask again
            elif self._rst_copies > self.timers.retransmits:
                self._rst_deadline = None  # nobody answers: the next send() tries again
                self._not_sent.extend(key for key, _ in self._queue)
                self._queue.clear()
            else:
                self._send_rst(now)
        sent = self._outstanding
        if sent is not None and now >= sent.deadline:
            self._retransmit(sent, now)

    # -- internals ---------------------------------------------------------------------------

    def _send_rst(self, now: float) -> None:
        self._out += RstFrame(self._nonce).to_bytes()
        self.stats.resets_sent += 1
        self._rst_copies += 1
        self._rst_deadline = now + self.timers.ack_timeout(CONTROL_FRAME_BYTES)

    def _handle(self, frames: list[Frame], now: float) -> None:
        for seq in self.reader.damaged_seqs:
            self._out += NakFrame(seq).to_bytes()
            self.stats.naks_sent += 1
        self.reader.damaged_seqs.clear()
        for frame in frames:
            if isinstance(frame, DataFrame):
                if not self.synchronised:
                    # The peer does not know this end restarted: its frame may be one this
                    # end delivered before and forgot. Neither ACK nor deliver: say RST again.
                    self.stats.refused += 1
                    if self._rst_deadline is None:
                        self._rst_copies = 0
                    self._send_rst(now)
                    continue
                self._out += AckFrame(frame.seq).to_bytes()
                if frame.seq == self._last_delivered:
                    self.stats.duplicates += 1
                    continue
                self._last_delivered = frame.seq
                self._delivered.append(frame.payload)
            elif isinstance(frame, RstFrame):
                self._peer_restarted(frame.nonce)
            elif isinstance(frame, RstAckFrame):
                if not self.synchronised and frame.nonce == self._nonce:
                    self.synchronised = True
                    self._rst_deadline = None
            elif self._outstanding is None or frame.seq != self._outstanding.seq:
                continue  # a late ACK, or a NAK for a frame already given up
            elif isinstance(frame, AckFrame):
                self._outstanding = None
            else:
                self._retransmit(self._outstanding, now)
        self._pump(now)

    def _peer_restarted(self, nonce: int) -> None:
        """The peer forgot what it received and sends nothing from before its RST: never
        retransmit to it what was in flight, forget its last SEQ, and say so (RSTACK)."""
        self._out += RstAckFrame(nonce).to_bytes()
        if self._pos_side and nonce == self._peer_nonce:
            self.stats.duplicate_resets += 1
            return
        self._peer_nonce = nonce
        self.stats.peer_resets += 1
        if self._outstanding is not None:
            self._outstanding = None
            self.stats.dropped_on_reset += 1
        if self._pos_side:
            self._queue.clear()
        self._peer_reset = {key for key, _ in self._queue}
        self._last_delivered = None
        # The peer's stream restarts here: what follows its RST is new, so this end may
        # deliver it even if its own RST is still unanswered.
        self.synchronised = True
        self._rst_deadline = None

    def _pump(self, now: float) -> None:
        if self._outstanding is not None or not self._queue or not self.synchronised:
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

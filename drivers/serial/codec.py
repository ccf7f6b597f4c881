"""PBS1, the reference serial protocol, as sans-I/O codecs for both ends of the cable.

The link layer (stop-and-wait ARQ, duplicate detection, the RST/RSTACK handshake) is
:class:`drivers.serial.arq.LinkEndpoint`, the same for both ends; :class:`Pbs1ClientCodec`
(the bridge) and :class:`Pbs1PosCodec` (the POS, the emulator's) put the message catalogue's
payloads on it. ``now`` is monotonic seconds, passed in.
"""

from __future__ import annotations

from typing import Any

from drivers.options import int_option
from drivers.serial.arq import LinkEndpoint
from drivers.serial.frames import FrameTooLargeError
from drivers.serial.settings import RETRANSMITS, TURNAROUND_S, Timers, line_settings
from drivers.wire import messages
from drivers.wire.messages import ErrorInfo, Reply, Request, Undelivered, WireFormatError

CODEC_NAME = "pbs1"


def timers_from_options(options: dict[str, Any]) -> Timers:
    """The line's timers; pops ``retransmits`` and ``turnaround_ms``, reads the speed."""
    line = line_settings(options)
    retransmits = int_option(options, "retransmits", RETRANSMITS, 0, 10)
    turnaround_ms = int_option(options, "turnaround_ms", int(TURNAROUND_S * 1000), 1, 10_000)
    return Timers(line, turnaround_ms / 1000, retransmits)


class Pbs1ClientCodec:
    """The bridge's end: requests out, replies in (a :class:`~drivers.wire.codec.ClientCodec`).

    Each connect starts a session with the handshake; requests wait for it. When the POS
    restarts (its RST), every request it may have had and not answered is reported as
    outcome unknown at once: its reply will never come, and it is never retransmitted.

    Args:
        options: the driver's options (URL query and config); pops its own.
        first_seq: the first SEQ to send.
        first_nonce: the RST nonce of the first connect; the driver draws both at random.
    """

    def __init__(
        self, options: dict[str, Any], *, first_seq: int = 0, first_nonce: int = 0
    ) -> None:
        self.link = LinkEndpoint(timers_from_options(options), first_seq, first_nonce=first_nonce)
        self._events: list[Reply | Undelivered] = []
        self._awaiting: set[int] = set()  # requests queued or sent, not answered or failed

    def connection_made(self, now: float) -> None:
        self.link.reset(now)
        self._events.clear()
        self._awaiting.clear()

    def send_request(self, request: Request, now: float) -> None:
        try:
            self.link.send(messages.encode_request(request), request.id, now)
        except FrameTooLargeError as exc:
            self._events.append(Undelivered(request.id, str(exc), maybe_received=False))
        else:
            self._awaiting.add(request.id)

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
                reply = messages.decode_reply(payload)
            except WireFormatError:
                self.link.stats.bad_payloads += 1
                continue
            self._awaiting.discard(reply.id)
            self._events.append(reply)
        copies = self.link.timers.retransmits + 1
        for key in self.link.take_given_up():
            if key is not None:
                self._fail(key, f"no ACK after {copies} transmissions", maybe_received=True)
        for key in self.link.take_not_sent():
            if key is not None:
                self._fail(key, "no RSTACK: the POS does not answer", maybe_received=False)
        queued = self.link.take_peer_reset()
        if queued is not None:  # the POS restarted: what it had is gone, answers never come
            for key in sorted(self._awaiting - queued):
                self._fail(key, "the POS restarted (RST)", maybe_received=True)

    def _fail(self, key: int, reason: str, *, maybe_received: bool) -> None:
        if key in self._awaiting:
            self._awaiting.discard(key)
            self._events.append(Undelivered(key, reason, maybe_received=maybe_received))


class Pbs1PosCodec:
    """The POS's end: requests in, replies out (a :class:`~drivers.wire.codec.PosCodec`).

    ``connection_made`` is the POS's power-on: it sends RST and delivers nothing until the
    bridge's RSTACK. A reply too large for one frame is answered with ``unavailable``
    instead, so the bridge hears about it rather than waiting out its timeout.
    """

    def __init__(
        self, options: dict[str, Any], *, first_seq: int = 0, first_nonce: int = 0
    ) -> None:
        self.link = LinkEndpoint(
            timers_from_options(options),
            first_seq,
            first_nonce=first_nonce,
            pos_side=True,
        )
        self._requests: list[Request] = []

    def connection_made(self, now: float) -> None:
        self.link.reset(now)
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
        self.link.take_not_sent()
        self.link.take_peer_reset()
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

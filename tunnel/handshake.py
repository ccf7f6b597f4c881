"""The tunnel's handshake: HELLO, then WELCOME or CLOSE, and the version both ends speak.

- The client's first frame is HELLO, listing every version it speaks. It sends nothing else
  until WELCOME or CLOSE arrives.
- The relay protocol picks the highest version both sides list (or fails with
  ``UNSUPPORTED_VERSION``) and emits the HELLO; the relay application checks venue and token,
  then calls :meth:`~Handshake.accept` (WELCOME, with the limits both directions keep) or
  :meth:`~tunnel.protocol.TunnelProtocol.send_close` (refusal). Who may connect is the
  application's business; which version is spoken is the protocol's.
- The client checks that the WELCOME names a version it offered, and answers only its one
  HELLO. The WELCOME, sent or received, opens the connection and its streams.

HELLO is read before any version is agreed, so its layout is the same in every version: a
later version may only append fields, which this one's decoder ignores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum

from tunnel.errors import TunnelUsageError, UnexpectedFrameError, UnsupportedVersionError
from tunnel.frames import Frame, FrameType
from tunnel.messages import Event, Hello, Limits, Welcome

#: Versions this code speaks; the relay picks the highest one both sides list.
PROTOCOL_VERSIONS: tuple[int, ...] = (1,)


class Side(Enum):
    CLIENT = "client"  # the bridge at the venue: sends HELLO, answers requests
    RELAY = "relay"  # the cloud relay: sends WELCOME, forwards platforms' requests


class Handshake:
    """The handshake's half of :class:`~tunnel.protocol.TunnelProtocol`, which inherits
    it: the versions offered, the HELLO, then the agreed version and limits.

    A base class rather than an object the protocol holds, so that ``hello``, ``version`` and
    ``limits`` stay plain attributes of the protocol: the I/O layers read them, and the
    protocol reads ``limits`` for every frame it writes, where a delegating property would add
    a call per frame. What it needs from the connection is declared below and defined there.

    Args:
        side: the end this object plays.
        versions: the protocol versions to offer (client) or accept (relay).
    """

    # The connection's (TunnelProtocol's): queue a frame, refuse to act once closed, open the
    # streams on the WELCOME, and the events the application reads.
    _write: Callable[[Frame], None]
    _check_not_closed: Callable[[], None]
    _open: Callable[[Welcome], None]
    _events: list[Event]

    def __init__(self, side: Side, versions: Iterable[int]) -> None:
        offered = tuple(sorted(set(versions)))
        if not offered or any(type(v) is not int or not 0 < v < 1 << 16 for v in offered):
            raise ValueError(f"versions must be ints in [1, 65535], not {offered!r}")
        self.side = side
        self.versions = offered
        #: The HELLO this client sent, or the one this relay received.
        self.hello: Hello | None = None
        #: The agreed version: on the relay from HELLO, on the client from WELCOME.
        self.version: int | None = None
        self.limits: Limits | None = None

    def send_hello(
        self, *, venue_id: str, token: str, session_epoch: int, bridge_version: str
    ) -> None:
        """Client: start the handshake offering :attr:`versions`; WELCOME or CLOSE follows."""
        if self.side is not Side.CLIENT or self.hello is not None:
            raise TunnelUsageError("send HELLO", "only a client sends it, and only once")
        self._check_not_closed()
        hello = Hello(venue_id, token, session_epoch, self.versions, bridge_version)
        self._write(hello)
        self.hello = hello

    def accept(self, limits: Limits | None = None) -> Welcome:
        """Relay: answer the HELLO event with WELCOME, once venue and token check out. The
        limits apply to both directions. To refuse,
        :meth:`~tunnel.protocol.TunnelProtocol.send_close` with ``UNAUTHORIZED``,
        ``SUPERSEDED`` or ``GOING_AWAY`` instead."""
        if self.side is not Side.RELAY or self.version is None or self.limits is not None:
            raise TunnelUsageError("accept", "only a relay accepts, once, after a HELLO")
        self._check_not_closed()
        welcome = Welcome(self.version, limits or Limits())
        self._write(welcome)
        self._open(welcome)
        return welcome

    def _receive_hello(self, hello: Hello) -> None:
        if self.hello is not None:
            raise UnexpectedFrameError(FrameType.HELLO, "relay", "HELLO came twice")
        common = set(hello.versions) & set(self.versions)
        if not common:
            raise UnsupportedVersionError(hello.versions, self.versions)
        self.hello = hello
        self.version = max(common)
        self._events.append(hello)

    def _receive_welcome(self, welcome: Welcome) -> None:
        if self.hello is None or self.limits is not None:
            kind = FrameType.WELCOME
            raise UnexpectedFrameError(kind, self.side.value, "it answers our one HELLO")
        if welcome.version not in self.versions:
            raise UnsupportedVersionError(self.versions, (welcome.version,))
        self._open(welcome)
        self._events.append(welcome)

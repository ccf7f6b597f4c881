"""The sans-I/O codec interface that the serial and TCP links carry, and its registry.

A codec turns requests into bytes and bytes into replies; it owns framing, checksums,
sequence numbers and retransmit timers, and knows nothing of ports or sockets. Time comes in
as ``now`` (monotonic seconds), so a codec with timers is tested without a clock. A link
(``drivers/wire/stream.py``) only moves bytes between a codec and its transport.

A vendor whose POS speaks its own protocol over a serial cable or a TCP port ships a codec,
not a driver::

    [project.entry-points."pos_bridge.codecs"]
    acme = "acme_pos.codec:AcmeCodec"

and the technician writes ``serial:///dev/ttyUSB0?codec=acme``. The POS side of a reference
protocol (the emulator's) implements :class:`PosCodec`, the mirror image.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, Protocol

from drivers.errors import DriverConfigError
from drivers.options import text_option
from drivers.wire.messages import Reply, Request, Undelivered

CODEC_ENTRY_POINT_GROUP = "pos_bridge.codecs"

logger = logging.getLogger(__name__)


class ClientCodec(Protocol):
    """The bridge's side of a byte protocol. Drive it like websockets' protocol objects:
    feed it, then collect what it wants sent and what it has understood."""

    def connection_made(self, now: float) -> None:
        """A fresh byte stream: forget any half-received frame and any sequence state."""
        ...

    def send_request(self, request: Request, now: float) -> None:
        """Queue ``request``; its bytes appear in :meth:`data_to_send`."""
        ...

    def receive_data(self, data: bytes, now: float) -> None: ...

    def data_to_send(self) -> bytes:
        """Bytes to write now (empty if none); each byte is returned once."""
        ...

    def events_received(self) -> list[Reply | Undelivered]:
        """Replies and given-up requests since the last call."""
        ...

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeouts` must next run (retransmits), or ``None``."""
        ...

    def handle_timeouts(self, now: float) -> None: ...


class PosCodec(Protocol):
    """The POS's side of a byte protocol (the emulator's; a vendor's POS mirrors it)."""

    def connection_made(self, now: float) -> None: ...

    def receive_data(self, data: bytes, now: float) -> None: ...

    def requests_received(self) -> list[Request]: ...

    def send_reply(self, reply: Reply, now: float) -> None: ...

    def data_to_send(self) -> bytes: ...

    def next_deadline(self) -> float | None: ...

    def handle_timeouts(self, now: float) -> None: ...


class CodecFactory(Protocol):
    """A codec class: built from the link's options (it pops the ones it knows)."""

    def __call__(self, options: dict[str, Any]) -> ClientCodec: ...


def available_codecs() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=CODEC_ENTRY_POINT_GROUP)}


def load_codec(name: str, builtin: Mapping[str, CodecFactory]) -> CodecFactory:
    """``builtin[name]``, else the codec registered as ``name``.

    Raises:
        DriverConfigError: unknown, or its package failed to import (logged, not fatal to
            any other driver).
    """
    if name in builtin:
        return builtin[name]
    matches = [ep for ep in entry_points(group=CODEC_ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(sorted({*builtin, *available_codecs()}))
        raise DriverConfigError("options.codec", f"unknown codec {name!r} (installed: {known})")
    try:
        factory: CodecFactory = matches[0].load()
    except Exception as exc:  # a vendor's broken package must not take the bridge down
        logger.exception("codec %s failed to load", name)
        raise DriverConfigError("options.codec", f"codec {name!r} failed to load: {exc}") from exc
    return factory


def codec_from_options(
    options: dict[str, Any], builtin: Mapping[str, CodecFactory], default: str
) -> ClientCodec:
    """The codec ``options["codec"]`` names (``default`` if none), built from ``options``."""
    return load_codec(text_option(options, "codec", default), builtin)(options)

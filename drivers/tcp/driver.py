"""The TCP driver: a POS listening on a TCP port, spoken to in PBT1 (or a vendor's codec).

URL: ``tcp://10.0.0.5:4001`` (an IPv6 address in brackets: ``tcp://[fd00::5]:4001``).

Options (in ``[drivers.<name>.options]`` or the URL's query):

- ``timeout_ms`` (5000), ``write_timeout_ms`` (2 × timeout_ms): how long a reply may take
  (``drivers/wire/driver.py``); past it the request is ``PosTimeoutError`` and the connection
  is dropped, so a half-open connection costs one timeout;
- ``connect_timeout_ms`` (3000): how long a connect may take before ``PosOfflineError``;
- ``keepalive_s`` (15): TCP keepalive idle time; 0 turns keepalive off;
- ``codec`` (``pbt1``): the framing; a vendor's codec registered in ``pos_bridge.codecs``
  rides this link by name.

The bridge connects; the POS listens. One connection carries every request, pipelined.
"""

from __future__ import annotations

from typing import Any, ClassVar

from drivers.base import DriverInfo, DriverSettings
from drivers.errors import DriverConfigError
from drivers.options import int_option
from drivers.tcp.codec import CODEC_NAME, TcpClientCodec
from drivers.tcp.link import TcpLink
from drivers.wire.codec import CodecFactory, codec_from_options
from drivers.wire.driver import Exchange, WireDriver
from drivers.wire.stream import StreamExchange

#: Codecs built in to the TCP link; others are found in ``pos_bridge.codecs``.
BUILTIN_CODECS: dict[str, CodecFactory] = {CODEC_NAME: TcpClientCodec}


class TcpDriver(WireDriver):
    """A POS on a TCP port; see the module docstring."""

    info: ClassVar[DriverInfo] = DriverInfo(
        name="tcp",
        version="1.0",
        description="POS on a TCP port: PBT1 frames (docs/drivers/tcp.md), pipelined.",
    )

    def make_exchange(self, settings: DriverSettings, options: dict[str, Any]) -> Exchange:
        host, port = tcp_address(settings)
        connect_timeout = int_option(options, "connect_timeout_ms", 3000, 1, 600_000) / 1000
        keepalive_s = int_option(options, "keepalive_s", 15, 0, 7200)
        codec = codec_from_options(options, BUILTIN_CODECS, CODEC_NAME)
        link = TcpLink(host, port, connect_timeout=connect_timeout, keepalive_s=keepalive_s)
        return StreamExchange(link, codec)


def tcp_address(settings: DriverSettings) -> tuple[str, int]:
    """The URL's host and port. Raises :class:`DriverConfigError` naming ``url``."""
    url = settings.url
    try:
        host, port = url.hostname, url.port
    except ValueError as exc:  # a port that is not a number, or out of range
        raise DriverConfigError("url", f"bad port in {url.geturl()!r}: {exc}") from exc
    if not host or port is None or port == 0:
        raise DriverConfigError("url", "must be tcp://HOST:PORT, e.g. tcp://10.0.0.5:4001")
    if url.path not in ("", "/"):
        raise DriverConfigError("url", f"unexpected path {url.path!r}; use tcp://HOST:PORT")
    return host, port

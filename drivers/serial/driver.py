"""The serial driver: the message catalogue over a serial cable (``docs/drivers/serial.md``).

URL ``serial:///dev/ttyUSB0?baudrate=9600&parity=N&bytesize=8&stopbits=1``; any option may
be given in the query or in ``[drivers.<name>.options]`` (they must agree). The bytes on the
cable are PBS1 (:mod:`drivers.serial.codec`) unless ``codec=NAME`` picks a vendor's codec
registered in the ``pos_bridge.codecs`` entry-point group, which then rides the same link.
"""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from drivers.base import DriverInfo, DriverSettings
from drivers.errors import DriverConfigError
from drivers.serial.codec import CODEC_NAME, Pbs1ClientCodec
from drivers.serial.link import SerialLink
from drivers.serial.settings import line_settings
from drivers.wire.codec import CodecFactory, codec_from_options
from drivers.wire.driver import Exchange, WireDriver
from drivers.wire.stream import StreamExchange


def new_pbs1_codec(options: dict[str, Any]) -> Pbs1ClientCodec:
    """PBS1's bridge end with a random first SEQ and RST nonce, so each process's sessions are
    its own. Registered as the ``pbs1`` codec too, so PBS1 carried over another link (e.g.
    ``tcp://…?codec=pbs1``) starts the same way."""
    return Pbs1ClientCodec(
        options, first_seq=secrets.randbelow(256), first_nonce=secrets.randbelow(256)
    )


BUILTIN_CODECS: dict[str, CodecFactory] = {CODEC_NAME: new_pbs1_codec}


class SerialDriver(WireDriver):
    """A POS on a serial port; see the module docstring."""

    info: ClassVar[DriverInfo] = DriverInfo(
        name="serial",
        version="1.0",
        description="POS on a serial port (pyserial); PBS1 framing: STX…ETX, CRC-16, ACK/NAK",
    )

    def make_exchange(self, settings: DriverSettings, options: dict[str, Any]) -> Exchange:
        """A stream exchange of the chosen codec over the port in ``settings.url``.

        Raises:
            DriverConfigError: no port path, a bad line setting or an unknown codec.
        """
        port = settings.url.path
        if settings.url.netloc or not port:
            raise DriverConfigError("url", "must be serial:///path/to/port (three slashes)")
        codec = codec_from_options(options, BUILTIN_CODECS, CODEC_NAME)
        link = SerialLink(port, line_settings(options, pop=True))
        return StreamExchange(link, codec)

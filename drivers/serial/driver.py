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
from drivers.options import text_option
from drivers.serial.codec import CODEC_NAME, Pbs1ClientCodec
from drivers.serial.link import SerialLink
from drivers.serial.settings import line_settings
from drivers.wire.codec import ClientCodec, CodecFactory, load_codec
from drivers.wire.driver import Exchange, WireDriver
from drivers.wire.stream import StreamExchange

BUILTIN_CODECS: dict[str, CodecFactory] = {CODEC_NAME: Pbs1ClientCodec}


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
        codec_name = text_option(options, "codec", CODEC_NAME)
        codec: ClientCodec
        if codec_name == CODEC_NAME:
            # Random first SEQ and RST nonce: each process's sessions are its own.
            codec = Pbs1ClientCodec(
                options, first_seq=secrets.randbelow(256), first_nonce=secrets.randbelow(256)
            )
        else:
            codec = load_codec(codec_name, BUILTIN_CODECS)(options)
        link = SerialLink(port, line_settings(options, pop=True))
        return StreamExchange(link, codec)

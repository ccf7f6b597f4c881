"""A noisy cable between the bridge and the POS: real ptys both sides, seeded damage.

Acceptance: every damaged frame is rejected by the checksum (none gets through as a wrong
message), the exchange recovers, and no payment is applied twice across a retransmit.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from drivers.emulator.serial_line import Noise, serial_line
from drivers.errors import PosUnavailableError
from tests.drivers.serial.harness import (
    LOCATION,
    instruction,
    serial_driver,
    serial_pos,
    settle,
)

# Per byte, each direction: ~1 byte in 1,000 damaged, so a 700-byte bill frame is hit about
# every other time and a retransmit is needed often; 8 retransmits make giving up rare.
NOISE = Noise(garbage=0.0003, drop=0.0003, flip=0.0003, seed=20261123)
LINE = "baudrate=115200&retransmits=8"


async def test_noise_is_rejected_by_the_crc_and_every_payment_lands_once() -> None:
    async with serial_pos(LINE, tables=6) as (pos, pos_url):
        emulator = urlsplit(pos_url)
        async with (
            serial_line(emulator.path, noise=NOISE) as (port, line),
            serial_driver(f"serial://{port}?{LINE}", timeout_ms=1500) as driver,
        ):
            paid = []
            for table in range(1, 7):
                bill = None
                for _ in range(10):  # a bill frame may be lost for good: ask again
                    try:
                        bill = await driver.get_open_bill(LOCATION, table)
                        break
                    except PosUnavailableError:
                        continue
                assert bill is not None
                for part in range(2):
                    payment = instruction(bill, f"noisy-{table}-{part}", 100 + part)
                    settled = await settle(driver, payment)
                    assert settled.payment_id == payment.payment_id
                    paid.append((payment.payment_id, bill.id, 100 + part, 0))
            client = driver.exchange._codec.link  # type: ignore[attr-defined]
            server = pos_codec_link(pos)
        on_pos = pos.simulator.payments(LOCATION)

    print(line, client.stats, client.reader.stats, server.stats, server.reader.stats)
    assert line.damage > 20, line  # the line really was noisy
    # Each payment exactly once, on the right bill, for the amount sent: nothing damaged
    # passed the CRC as a different but well-formed message.
    assert sorted(on_pos) == sorted(paid)
    rejected = client.reader.stats.frames_rejected + server.reader.stats.frames_rejected
    assert rejected > 0 and client.stats.retransmitted + server.stats.retransmitted > 0
    # Nothing damaged got past the CRC: every intact-looking frame decoded as a message.
    assert client.stats.bad_payloads == server.stats.bad_payloads == 0


def pos_codec_link(pos: object) -> object:
    """The emulator's codec link (its server registered itself as a reboot listener)."""
    listener = pos._reboot_listeners[-1]  # type: ignore[attr-defined]
    return listener.__self__.codec.link

"""The TCP driver against the emulated POS on a real 127.0.0.1 socket (in this process)."""

from __future__ import annotations

import asyncio
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from drivers.base import DriverSettings, PosDriver
from drivers.emulator.pos import EmulatedPos
from drivers.emulator.run import make_pos, running_emulator
from drivers.errors import (
    DriverConfigError,
    PaymentRefusedError,
    PosOfflineError,
    PosTimeoutError,
    UnknownTableError,
)
from drivers.registry import load_driver
from drivers.tcp.driver import BUILTIN_CODECS, TcpDriver
from drivers.wire.messages import (
    Reply,
    Request,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)
from tests.crash.process import free_port
from tests.drivers.tcp.harness import instruction, tcp_driver

FAST = {"timeout_ms": 400, "connect_timeout_ms": 400}


@pytest.fixture
async def emulator() -> AsyncIterator[tuple[str, EmulatedPos]]:
    pos = make_pos(None, tables=6)
    async with running_emulator("tcp://127.0.0.1:0", pos) as (url, _):
        yield url, pos


@pytest.fixture
async def driver(emulator: tuple[str, EmulatedPos]) -> AsyncIterator[TcpDriver]:
    tcp = tcp_driver(emulator[0], **FAST)
    await tcp.open()
    yield tcp
    await tcp.close()


def test_tcp_is_registered_by_entry_point():
    assert load_driver("tcp") is TcpDriver
    assert isinstance(tcp_driver("tcp://127.0.0.1:4001"), PosDriver)


@pytest.mark.parametrize(
    ("url", "options", "key"),
    [
        ("tcp://127.0.0.1", {}, "url"),
        ("tcp://:4001", {}, "url"),
        ("tcp://127.0.0.1:port", {}, "url"),
        ("tcp://127.0.0.1:4001/pos", {}, "url"),
        ("tcp://127.0.0.1:4001?codec=acme-none", {}, "options.codec"),
        ("tcp://127.0.0.1:4001?connect_timeout_ms=0", {}, "options.connect_timeout_ms"),
        ("tcp://127.0.0.1:4001", {"keepalive_s": -1}, "options.keepalive_s"),
        ("tcp://127.0.0.1:4001", {"nagle": 1}, "options.nagle"),
    ],
)
def test_bad_url_or_option_is_a_config_error_naming_its_key(url, options, key):
    with pytest.raises(DriverConfigError) as caught:
        tcp_driver(url, **options)
    assert caught.value.key == key


class LineCodec:
    """A vendor's codec standing in for one from ``pos_bridge.codecs``: one JSON payload per
    line, no header. It shows a foreign framing riding the TCP link unchanged."""

    def __init__(self, options: dict[str, object]) -> None:
        self.options = options
        self._out = b""
        self._buffer = b""
        self._events: list[Reply] = []

    def connection_made(self, now: float) -> None:
        self._buffer = b""

    def send_request(self, request: Request, now: float) -> None:
        self._out += encode_request(request) + b"\n"

    def receive_data(self, data: bytes, now: float) -> None:
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        self._events += [decode_reply(line) for line in lines]

    def data_to_send(self) -> bytes:
        out, self._out = self._out, b""
        return out

    def events_received(self) -> list[Reply]:
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        return None

    def handle_timeouts(self, now: float) -> None:
        return None


async def test_a_vendor_codec_named_in_the_url_rides_the_tcp_link(monkeypatch):
    async def line_pos(reader, writer):
        while line := await reader.readline():
            request = decode_request(line.rstrip(b"\n"))
            writer.write(encode_reply(Reply(request.id, {"online": True, "detail": "acme"})))
            writer.write(b"\n")

    server = await asyncio.start_server(line_pos, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setitem(BUILTIN_CODECS, "acme-lines", LineCodec)
    driver = tcp_driver(f"tcp://127.0.0.1:{port}?codec=acme-lines", timeout_ms=3000)
    try:
        health = await driver.health()
        assert health.online and health.detail == "acme"
    finally:
        await driver.close()
        server.close()


async def test_tables_bills_and_a_split_payment(driver: TcpDriver):
    assert [t.number for t in await driver.list_tables("1")] == [1, 2, 3, 4, 5, 6]
    bill = await driver.get_open_bill("1", 3)
    assert bill is not None and bill.balance.minor > 1
    half = bill.balance.minor // 2
    first = await driver.apply_payment(instruction(bill, "pay-a", half, tip=50))
    assert first.bill is not None and first.bill.balance.minor == bill.balance.minor - half
    rest = await driver.apply_payment(instruction(bill, "pay-b", bill.balance.minor - half))
    assert rest.bill is not None and not rest.bill.is_open
    found = await driver.find_payment("1", "pay-a")
    assert found is not None and found.pos_reference == first.pos_reference
    assert found.tip.minor == 50
    assert await driver.find_payment("1", "pay-none") is None
    assert await driver.get_open_bill("1", 3) is None


async def test_refusals_and_unknown_tables_are_typed(driver: TcpDriver):
    bill = await driver.get_open_bill("1", 1)
    assert bill is not None
    with pytest.raises(PaymentRefusedError) as refused:
        await driver.apply_payment(instruction(bill, "too-much", bill.balance.minor + 1))
    assert refused.value.reason == "amount_exceeds_balance"
    with pytest.raises(UnknownTableError):
        await driver.get_open_bill("1", 99)


async def test_pipelined_requests_on_one_connection(emulator):
    url, pos = emulator
    pos.faults.delay_ms = 100  # every answer waits: one at a time, 30 take 3 s
    # Within 2 s each (20x what pipelined answers need, so a busy machine cannot fail it;
    # answered one by one, the last ones would time out).
    driver = tcp_driver(url, timeout_ms=2000, connect_timeout_ms=2000)
    await driver.open()
    try:
        bills = await asyncio.gather(*(driver.get_open_bill("1", 1 + i % 6) for i in range(30)))
        assert [b.table for b in bills] == [1 + i % 6 for i in range(30)]
        assert driver.exchange.connected and pos.requests_seen == 30
    finally:
        await driver.close()


async def test_nothing_listening_is_offline_and_retries_back_off():
    driver = tcp_driver(f"tcp://127.0.0.1:{free_port()}", **FAST)
    await driver.open()  # a POS that is down is not an error yet
    outcomes = []
    for _ in range(10):  # back to back: most must fail at once, without a connect
        with pytest.raises(PosOfflineError) as caught:
            await driver.list_tables("1")
        outcomes.append("waited" if "next try in" in str(caught.value) else "connected")
    assert outcomes.count("waited") >= 5, outcomes  # open() has just tried and failed
    health = await driver.health()
    assert not health.online and "cannot connect" in health.detail
    await driver.close()


async def test_silent_pos_times_out_then_recovers_on_a_new_connection(driver, emulator):
    _, pos = emulator
    pos.faults.silent = True
    with pytest.raises(PosTimeoutError, match="no reply"):
        await driver.get_open_bill("1", 1)
    assert not driver.exchange.connected  # dropped: the next call starts afresh
    pos.faults.silent = False
    assert await driver.get_open_bill("1", 1) is not None


async def test_corrupted_reply_is_caught_by_the_crc_never_read_as_data(driver, emulator):
    _, pos = emulator
    bill = await driver.get_open_bill("1", 2)
    assert bill is not None
    pos.faults.corrupt_per_mille = 1000  # every chunk written gets a flipped bit
    for _ in range(5):
        with pytest.raises(PosTimeoutError):
            await driver.get_open_bill("1", 2)
    pos.faults.corrupt_per_mille = 0
    assert await driver.get_open_bill("1", 2) == bill


async def test_payment_whose_reply_is_lost_is_found_not_applied_again(driver, emulator):
    _, pos = emulator
    bill = await driver.get_open_bill("1", 4)
    assert bill is not None
    pos.faults.drop_replies = True
    with pytest.raises(PosTimeoutError):
        await driver.apply_payment(instruction(bill, "lost-reply", 100))
    pos.faults.drop_replies = False
    found = await driver.find_payment("1", "lost-reply")
    assert found is not None and found.amount.minor == 100
    after = await driver.get_open_bill("1", 4)
    assert after is not None and after.balance.minor == bill.balance.minor - 100


async def test_reboot_cuts_connections_refuses_then_serves_again(driver, emulator):
    _, pos = emulator
    assert await driver.get_open_bill("1", 1) is not None
    pos.faults.delay_ms = 200
    call = asyncio.create_task(driver.get_open_bill("1", 1))
    await asyncio.sleep(0.05)
    pos.reboot(0.5)
    with pytest.raises(PosTimeoutError, match="stream lost"):
        await call  # in flight when the POS went down: outcome unknown
    with pytest.raises(PosOfflineError):
        await driver.get_open_bill("1", 1)  # refused: nothing was sent
    pos.faults.delay_ms = 0
    for _ in range(100):
        await asyncio.sleep(0.05)
        try:
            assert await driver.get_open_bill("1", 1) is not None
            break
        except PosOfflineError:
            continue
    else:
        pytest.fail("no recovery after the reboot")


async def test_a_peer_not_speaking_pbt1_is_a_dropped_stream_not_a_hang():
    async def http_server(reader, writer):
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()

    server = await asyncio.start_server(http_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    driver = tcp_driver(f"tcp://127.0.0.1:{port}", timeout_ms=5000)
    try:
        with pytest.raises(PosTimeoutError, match="bad magic"):
            await asyncio.wait_for(driver.list_tables("1"), 2)  # long before timeout_ms
        assert not driver.exchange.connected
    finally:
        await driver.close()
        server.close()


def test_config_example_documents_every_option_and_they_are_accepted():
    text = (Path(__file__).resolve().parents[3] / "config.example.toml").read_text()
    section = text.split("# [drivers.tcp-example]")[1].split("\n\n")[0]
    lines = re.findall(r"^# (\[drivers\.tcp-example[\w.]*\]|\w+ = .*)$", section, re.M)
    example = tomllib.loads("[drivers.tcp-example]\n" + "\n".join(lines))["drivers"]
    spec = example["tcp-example"]
    options = spec["options"]
    assert sorted(options) == [
        "codec",
        "connect_timeout_ms",
        "keepalive_s",
        "timeout_ms",
        "write_timeout_ms",
    ]
    TcpDriver(DriverSettings("tcp-example", urlsplit(spec["url"]), options))

"""The emulator's TCP server on a real 127.0.0.1 port, spoken to with raw PBT1 bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from drivers.emulator.pos import EmulatedPos
from drivers.emulator.run import make_pos, running_emulator
from drivers.tcp.codec import Frame, FrameReader, FrameType, request_frame
from drivers.wire.messages import Reply, Request, decode_reply
from tests.drivers.tcp.harness import instruction, tcp_driver

BOUND_S = 5.0


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, EmulatedPos]]:
    pos = make_pos(None, tables=4)
    async with running_emulator("tcp://127.0.0.1:0", pos) as (url, _):
        yield int(url.rsplit(":", 1)[1]), pos


async def read_reply(reader: asyncio.StreamReader, frames: FrameReader) -> Reply:
    while True:
        got = frames.feed(await asyncio.wait_for(reader.read(65536), BOUND_S))
        if got:
            [frame] = got
            assert frame.type is FrameType.REPLY
            return decode_reply(frame.payload)


async def test_yields_the_real_port(served):
    port, _ = served
    assert port > 0


async def test_garbage_closes_the_connection_without_an_answer(served):
    port, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    assert await asyncio.wait_for(reader.read(100), BOUND_S) == b""
    writer.close()


async def test_bad_payload_is_answered_bad_request_and_the_connection_goes_on(served):
    port, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    frames = FrameReader()
    writer.write(Frame(FrameType.REQUEST, 41, b"not json").to_bytes())
    reply = await read_reply(reader, frames)
    assert reply.id == 41 and reply.error is not None and reply.error.code == "bad_request"
    writer.write(request_frame(Request(42, "health")).to_bytes())
    reply = await read_reply(reader, frames)
    assert reply.id == 42 and reply.result == {"online": True, "detail": reply.result["detail"]}
    writer.close()


async def test_many_connections_each_pipelining(served):
    port, pos = served
    drivers = [tcp_driver(f"tcp://127.0.0.1:{port}", timeout_ms=3000) for _ in range(5)]
    pos.faults.delay_ms = 50
    results = await asyncio.gather(
        *(d.get_open_bill("1", 1 + i % 4) for d in drivers for i in range(8))
    )
    assert len(results) == 40 and all(b is not None for b in results)
    assert pos.requests_seen == 40
    for driver in drivers:
        await driver.close()


async def test_a_request_from_a_connection_already_closed_is_not_carried_out(served):
    port, pos = served
    bill = await pos.simulator.get_open_bill("1", 2)
    assert bill is not None
    args = {
        "payment_id": "abandoned",
        "location": "1",
        "table": 2,
        "bill_ref": bill.id,
        "currency": bill.currency,
        "amount": 100,
        "tip": 0,
        "label": "App",
    }
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_frame(Request(1, "apply_payment", args)).to_bytes())
    writer.close()  # the request and the end of stream arrive together: the bridge gave up
    await writer.wait_closed()
    await asyncio.sleep(0.2)  # the server has read both by now (one loop turn would do)
    assert await pos.simulator.find_payment("1", "abandoned") is None
    # …while the same request on a live connection is carried out
    driver = tcp_driver(f"tcp://127.0.0.1:{port}")
    await driver.apply_payment(instruction(bill, "abandoned", 100))
    assert await pos.simulator.find_payment("1", "abandoned") is not None
    await driver.close()


async def test_reboot_refuses_connections_then_listens_on_the_same_port(served):
    port, pos = served
    pos.reboot(0.3)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    for _ in range(100):
        await asyncio.sleep(0.05)
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            continue
        writer.close()
        break
    else:
        pytest.fail("not listening again after the reboot")

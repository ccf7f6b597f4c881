"""The TCP link on real sockets: options set, bounded connect, a close that cannot hang."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys

import pytest

from drivers.errors import PosOfflineError
from drivers.tcp.link import TcpLink
from tests.drivers.tcp.harness import tcp_driver

BOUND_S = 5.0


@pytest.fixture
async def listener():
    accepted: list[asyncio.StreamWriter] = []

    async def hold(reader, writer):  # accepts, never reads
        accepted.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in accepted:
        writer.transport.abort()
    server.close()


def opt(sock: socket.socket, level: int, name: str) -> int:
    return sock.getsockopt(level, getattr(socket, name))


async def test_nodelay_and_keepalive_timers_are_set(listener):
    link = TcpLink("127.0.0.1", listener, connect_timeout=BOUND_S, keepalive_s=12)
    await link.connect()
    sock = link._writer.get_extra_info("socket")  # type: ignore[union-attr]
    assert opt(sock, socket.IPPROTO_TCP, "TCP_NODELAY") == 1
    assert opt(sock, socket.SOL_SOCKET, "SO_KEEPALIVE") == 1
    if sys.platform == "linux":
        assert opt(sock, socket.IPPROTO_TCP, "TCP_KEEPIDLE") == 12
        assert opt(sock, socket.IPPROTO_TCP, "TCP_KEEPINTVL") == 4
        assert opt(sock, socket.IPPROTO_TCP, "TCP_KEEPCNT") == 3
        assert opt(sock, socket.IPPROTO_TCP, "TCP_USER_TIMEOUT") == 24_000
    await link.close()


async def test_keepalive_zero_turns_it_off(listener):
    link = TcpLink("127.0.0.1", listener, connect_timeout=BOUND_S, keepalive_s=0)
    await link.connect()
    sock = link._writer.get_extra_info("socket")  # type: ignore[union-attr]
    assert opt(sock, socket.SOL_SOCKET, "SO_KEEPALIVE") == 0
    await link.close()


def test_a_write_after_the_connection_is_gone_is_a_connection_error_under_uvloop():
    """The bridge's loop is uvloop (``bridge.cli.main.event_loop_factory``), whose closed
    transports raise ``RuntimeError`` on write; the link must say ``ConnectionError``, which
    the driver maps to the POS going offline."""
    from bridge.cli.main import event_loop_factory

    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: w.transport.abort(), "127.0.0.1", 0)
        link = TcpLink("127.0.0.1", server.sockets[0].getsockname()[1], connect_timeout=BOUND_S)
        await link.connect()
        assert await asyncio.wait_for(link.read(), BOUND_S) == b""  # the peer reset it
        link._writer.transport.abort()  # type: ignore[union-attr]  (as a reset leaves it)
        await asyncio.sleep(0)
        with pytest.raises(ConnectionError):
            await link.write(b"ping")
        await link.close()
        server.close()

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(scenario())


@pytest.mark.skipif(sys.platform != "linux", reason="a full accept queue drops SYNs on Linux")
async def test_connect_that_gets_no_answer_is_bounded_and_offline():
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):  # fill the accept queue: later SYNs are dropped, not refused
                filler = socket.socket()
                filler.setblocking(False)
                fillers.append(filler)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            driver = tcp_driver(f"tcp://127.0.0.1:{port}", connect_timeout_ms=300)
            with pytest.raises(PosOfflineError, match=r"no answer to connect within 0\.3 s"):
                await asyncio.wait_for(driver.list_tables("1"), BOUND_S)
        finally:
            for filler in fillers:
                filler.close()


async def test_close_does_not_hang_on_a_peer_that_never_reads(listener):
    link = TcpLink("127.0.0.1", listener, connect_timeout=BOUND_S, keepalive_s=0)
    await link.connect()
    writer = link._writer
    assert writer is not None
    writer.write(b"x" * 50_000_000)  # far more than the socket buffers hold
    await asyncio.wait_for(link.close(), BOUND_S)  # a graceful close would wait forever
    assert writer.transport.is_closing()


async def test_reads_and_writes_without_a_connection_are_oserrors():
    link = TcpLink("127.0.0.1", 1, connect_timeout=BOUND_S)
    with pytest.raises(OSError):
        await link.read()
    with pytest.raises(OSError):
        await link.write(b"x")


async def test_ipv6_loopback_works_and_is_described_in_brackets():
    try:
        server = await asyncio.start_server(lambda r, w: None, "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port = server.sockets[0].getsockname()[1]
    link = TcpLink("::1", port, connect_timeout=BOUND_S)
    assert link.describe == f"tcp://[::1]:{port}"
    await link.connect()
    await link.close()
    server.close()

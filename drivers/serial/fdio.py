"""Reading and writing a non-blocking file descriptor on the event loop (POSIX).

A serial port and a pty master are both file descriptors; the link, the emulator and the
test line all move their bytes through these two functions, so none of them needs a thread.
"""

from __future__ import annotations

import asyncio
import os

READ_BYTES = 4096


async def read_fd(fd: int, waiters: set[asyncio.Future[None]] | None = None) -> bytes:
    """Some bytes from ``fd`` once it has any; ``b""`` when it is gone.

    A tty in non-blocking raw mode (VMIN=0) reads 0 bytes when it has none, so an empty read
    means "nothing yet" until the loop has said the fd is readable: empty then is a hang-up
    (pyserial's "device reports readiness to read but returned no data"). A pty whose other
    side closed raises ``OSError`` (EIO) instead.
    """
    waited = False
    while True:
        try:
            data = os.read(fd, READ_BYTES)
        except BlockingIOError:
            data = None
        if data or (waited and data is not None):
            return data
        await _ready(fd, waiters, writer=False)
        waited = True


async def write_fd(fd: int, data: bytes, waiters: set[asyncio.Future[None]] | None = None) -> None:
    """All of ``data`` to ``fd``, waiting whenever the kernel's buffer is full."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _ready(fd, waiters, writer=True)


def forget_fd(fd: int, waiters: set[asyncio.Future[None]]) -> None:
    """Call before closing ``fd``: take it out of the loop's selector and fail its waiters.

    Closing first would leave the selector holding a number the kernel hands to the next
    socket: epoll then refuses that socket ("No such file or directory") and a late
    ``remove_reader`` would unhook it. The conformance kit caught this.
    """
    loop = asyncio.get_running_loop()
    loop.remove_reader(fd)
    loop.remove_writer(fd)
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(OSError(f"fd {fd} closed"))
    waiters.clear()


async def _ready(fd: int, waiters: set[asyncio.Future[None]] | None, *, writer: bool) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if writer:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    if waiters is not None:
        waiters.add(ready)
    try:
        await ready
    finally:
        forgotten = waiters is not None and ready not in waiters
        if waiters is not None:
            waiters.discard(ready)
        if not (forgotten and ready.done()):  # forget_fd unhooked it; the number may be reused
            if writer:
                loop.remove_writer(fd)
            else:
                loop.remove_reader(fd)

"""The emulated POS's side of file-drop: take request files, answer with response files.

It follows ``docs/drivers/file-drop.md`` as a vendor's POS must: it watches ``requests/``
(watchfiles), takes one complete request at a time by reading it and then deleting it (a
request the bridge withdrew first is left alone), carries it out, and writes the response
atomically into ``responses/``. The faults of :class:`EmulatedPos`:

- ``silent`` / ``drop_replies``: the request is taken (and, for ``drop_replies``, carried
  out) but no response file is written;
- ``delay_ms``: each response waits that long;
- ``corrupt_per_mille``: that chance (in 1,000) that a response file is cut short, as a POS
  that renames a half-written file would leave it (the bridge must reject it, typed);
- ``reboot(seconds)``: no request is taken for that long; what was written meanwhile is
  answered afterwards.

If the folder disappears, the emulator waits for it to come back (watching its parent) and
carries on; it never creates the shared folder's parents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import SplitResult

from drivers.emulator.pos import EmulatedPos
from drivers.filedrop import files, naming
from drivers.filedrop.driver import folder_of
from drivers.filedrop.watch import FolderWatch
from drivers.wire.messages import ErrorInfo, Reply, WireFormatError, encode_reply

logger = logging.getLogger(__name__)

#: With nothing happening, the emulator lists ``requests/`` again this often anyway.
RESCAN_MS = 1000
#: Pause before trying a folder again after it failed (e.g. there, but read-only).
RETRY_S = 0.2


@asynccontextmanager
async def serve(url: SplitResult, pos: EmulatedPos) -> AsyncIterator[str]:
    """Answer requests in the folder ``url`` names; yields the bridge's driver URL."""
    server = FolderPos(folder_of(url), pos)
    await asyncio.to_thread(server.prepare)
    task = asyncio.create_task(server.run(), name=f"file-drop POS {server.root}")
    try:
        yield f"file://{server.root.as_posix()}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class FolderPos:
    """The POS side of one shared folder; see the module docstring."""

    def __init__(self, root: Path, pos: EmulatedPos) -> None:
        self.root = root
        self.requests = root / naming.REQUESTS_DIR
        self.responses = root / naming.RESPONSES_DIR
        self.pos = pos
        self.taken = 0
        self.answered = 0

    def prepare(self) -> None:
        """(Worker thread.) Make the folders, and delete the POS's own unfinished responses
        from before a crash (their requests were taken, so the bridge reconciles them)."""
        for folder in (self.requests, self.responses):
            folder.mkdir(parents=True, exist_ok=True)
        for name in files.names(self.responses):
            if naming.temp_target(name) is not None:
                files.remove(self.responses / name)

    async def run(self) -> None:
        """Serve until cancelled, surviving the folder going away and coming back."""
        while True:
            try:
                await self._serve_folder()
            except (OSError, RuntimeError, StopAsyncIteration) as exc:
                logger.warning("file-drop POS: %s: %s; waiting for it to return", self.root, exc)
                await asyncio.sleep(RETRY_S)  # bounded pace if the folder is there but unusable
            await self._wait_for_folder()

    async def _serve_folder(self) -> None:
        await asyncio.to_thread(self.prepare)
        watch = FolderWatch(self.requests, quiet_ms=RESCAN_MS)
        try:
            await watch.start()
            await self._drain()  # what was written before the watch began
            while True:
                await watch.changed()
                if not await asyncio.to_thread(self.requests.is_dir):
                    raise FileNotFoundError(f"{self.requests} is gone")
                await self._drain()
        finally:
            await watch.close()

    async def _wait_for_folder(self) -> None:
        if await asyncio.to_thread(self.root.is_dir):
            return
        watch = FolderWatch(self.root.parent, quiet_ms=RESCAN_MS)
        try:
            await watch.start()
            while not await asyncio.to_thread(self.root.is_dir):
                await watch.changed()
        finally:
            await watch.close()

    async def _drain(self) -> None:
        """Take and answer complete requests, one at a time, until none is left."""
        while True:
            await self._sit_out_reboot()
            listing = await asyncio.to_thread(files.names, self.requests)
            parsed = sorted(
                (p for p in map(naming.MessageName.parse, listing) if p is not None),
                key=lambda p: (p.bridge_id, p.session, p.request_id),
            )
            requests = [p for p in parsed if p.kind == naming.REQUEST_PREFIX]
            if not requests:
                return
            for name in requests:
                await self._sit_out_reboot()
                await self._take(name)

    async def _sit_out_reboot(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pos.rebooting:
            # In short steps: the control API may end or extend the reboot meanwhile.
            await asyncio.sleep(min(0.1, max(0.0, self.pos.rebooting_until - loop.time())))

    async def _take(self, name: naming.MessageName) -> None:
        path = self.requests / name.to_name()
        try:
            data = await asyncio.to_thread(files.read_bounded, path)
        except FileNotFoundError:
            return  # withdrawn by the bridge
        if not await asyncio.to_thread(files.remove, path):
            return  # withdrawn between our read and our taking it: never carried out
        self.taken += 1
        try:
            request = naming.decode_request_file(data, name.request_id)
        except WireFormatError as exc:
            reply: Reply | None = Reply(name.request_id, error=ErrorInfo("bad_request", str(exc)))
        else:
            reply = await self.pos.handle(request)
        if reply is None:
            return
        body = naming.encode_file(encode_reply(reply))
        rng, faults = self.pos.rng, self.pos.faults
        if rng.randrange(1000) < faults.corrupt_per_mille:
            body = body[: rng.randrange(1, len(body) - 1)]  # cut before the closing brace
        await asyncio.to_thread(
            files.write_atomically, self.responses, name.response().to_name(), body
        )
        self.answered += 1

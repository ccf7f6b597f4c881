"""The bridge's side of file-drop: requests as files in a shared folder, replies as files back.

:class:`FolderExchange` is the :class:`drivers.wire.driver.Exchange` of ``file:///path``. It
writes each request atomically (``drivers/filedrop/files.py``), waits for the response by
watching ``responses/`` with watchfiles (inotify, FSEvents, ReadDirectoryChangesW; or
polling, for shares that send no change notifications), reads only complete files
(``drivers/filedrop/naming.py``), and deletes what it has read.

Failure rules, each chosen so that a payment is never applied twice:

- the folder is missing, not a folder, or not writable → :class:`PosOfflineError` naming it
  (no request was written). The bridge never creates the folder itself: a missing folder is
  usually an unmounted share, and writing into the bare mount point would hide that;
- no response within the timeout → the bridge *withdraws* its request by deleting it. The
  POS takes a request by deleting it before carrying it out, so exactly one of the two
  deletions succeeds: if ours did, the POS never saw it (:class:`PosOfflineError`); if the
  file was already gone, the POS took it and the outcome is unknown
  (:class:`PosTimeoutError`: the outbox reconciles with ``find_payment``);
- a response file that is not a valid reply (a POS that writes in place instead of
  renaming, a damaged file) is re-read when it changes and, if still invalid after
  :data:`SETTLE_S`, is :class:`PosProtocolError` (the request was taken: reconcile);
- the folder vanishes while requests wait → :class:`PosTimeoutError` for each at once; the
  watch is re-created by the next call once the folder is back;
- a caller cancelled while waiting (its own deadline) → its request is withdrawn the same
  way, so the POS cannot take it later, behind a ``find_payment`` that did not see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from drivers.errors import PosOfflineError, PosTimeoutError, PosUnavailableError
from drivers.filedrop import files, naming
from drivers.filedrop.naming import Disposition
from drivers.filedrop.watch import FolderWatch
from drivers.wire.messages import (
    MAX_ID,
    PosProtocolError,
    Reply,
    Request,
    WireFormatError,
    encode_request,
)

logger = logging.getLogger(__name__)

#: With requests waiting, ``responses/`` is listed again after this long without an event:
#: covers a notification lost while the watch was being (re)created.
RESCAN_MS = 1000
#: How long an invalid response file may stay invalid (a writer still writing in place).
SETTLE_S = 0.5
#: How long closing waits for the withdrawals of cancelled calls (each is one unlink).
WITHDRAW_WAIT_S = 5.0


@dataclass(slots=True)
class _Waiting:
    future: asyncio.Future[Reply]
    name: str
    malformed: str = ""
    give_up: asyncio.TimerHandle | None = field(default=None)


class FolderExchange:
    """Requests and replies as files under ``root``; see the module docstring."""

    def __init__(
        self,
        root: Path,
        *,
        bridge_id: str,
        polling: bool = False,
        poll_interval_ms: int = 300,
        session: str | None = None,
    ) -> None:
        self.root = root
        self.requests = root / naming.REQUESTS_DIR
        self.responses = root / naming.RESPONSES_DIR
        self.bridge_id = bridge_id
        self.session = session or secrets.token_hex(4)
        self.describe = f"file-drop folder {root}"
        self.polling = polling
        self.poll_interval_ms = poll_interval_ms
        self._settle_s = max(SETTLE_S, 2 * poll_interval_ms / 1000) if polling else SETTLE_S
        self._ids = itertools.count(1)
        self._waiting: dict[int, _Waiting] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._ready_lock = asyncio.Lock()
        self._scan_lock = asyncio.Lock()
        self._recovered = False
        self._abandoned: set[asyncio.Task[None]] = set()

    def __str__(self) -> str:
        return self.describe

    async def open(self) -> None:
        """Check the folder, clean up after an earlier session, and start watching; a folder
        that is not there yet is not an error yet (the next call tries again)."""
        try:
            await self._ensure_ready()
        except PosOfflineError as exc:
            logger.warning("%s: not usable yet (%s); will retry on the next call", self, exc)

    async def close(self) -> None:
        # A request still waiting may have been taken: its outcome is unknown, not "offline".
        await self._stop_watching(PosTimeoutError(f"{self}: driver closed while waiting"))
        if self._abandoned:  # withdrawals of cancelled calls: one unlink each, after a write
            await asyncio.wait(self._abandoned, timeout=WITHDRAW_WAIT_S)

    async def call(self, op: str, args: dict[str, object], timeout: float) -> Reply:
        """Write one request, wait for its response (see the failure rules above)."""
        await self._ensure_ready()
        request = Request(self._next_id(), op, args)
        name = naming.request_name(self.bridge_id, self.session, request.id)
        data = naming.encode_file(encode_request(request))
        waiting = _Waiting(asyncio.get_running_loop().create_future(), name)
        self._waiting[request.id] = waiting
        # Shielded: a cancelled caller must not leave the write running unseen (see _abandon).
        write = asyncio.ensure_future(
            asyncio.to_thread(files.write_atomically, self.requests, name, data)
        )
        try:
            try:
                await asyncio.shield(write)
            except OSError as exc:
                await self._stop_watching(None)  # the next call checks the folder afresh
                # Only a failed fsync of the folder comes after the rename: then withdraw.
                visible = await asyncio.to_thread((self.requests / name).exists)
                if not visible or await self._withdraw(name):
                    raise PosOfflineError(
                        f"{self}: cannot write {op} request into {self.requests}: {exc}"
                    ) from exc
                raise PosTimeoutError(f"{self}: {op} request written, then: {exc}") from exc
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(waiting.future), timeout)
            await self._scan()  # a last look: a notification may have been lost
            if waiting.future.done():
                return waiting.future.result()
            if waiting.malformed:
                raise PosProtocolError(f"{self}: {op} response unreadable: {waiting.malformed}")
            if await self._withdraw(name):
                raise PosOfflineError(
                    f"{self}: the POS did not take the {op} request within {timeout:g} s;"
                    " withdrawn, not carried out"
                )
            raise PosTimeoutError(
                f"{self}: the POS took the {op} request but did not answer within {timeout:g} s"
            )
        except PosProtocolError:
            await self._discard_response(name)
            raise
        except asyncio.CancelledError:
            self._abandon(name, write)
            raise
        finally:
            del self._waiting[request.id]
            if waiting.give_up is not None:
                waiting.give_up.cancel()

    # -- readiness and start-up recovery ----------------------------------------------------

    def _next_id(self) -> int:
        request_id = next(self._ids)
        if request_id > MAX_ID:  # a new session would be the other way; 4 billion is plenty
            self._ids = itertools.count(2)
            request_id = 1
        return request_id

    async def _ensure_ready(self) -> None:
        if self._watcher is not None and not self._watcher.done():
            return
        async with self._ready_lock:
            if self._watcher is not None and not self._watcher.done():
                return
            watch = FolderWatch(
                self.responses,
                quiet_ms=RESCAN_MS,
                polling=self.polling,
                poll_interval_ms=self.poll_interval_ms,
            )
            try:
                await asyncio.to_thread(self._prepare_folder)
                await watch.start()
            except (OSError, RuntimeError) as exc:
                await watch.close()
                raise PosOfflineError(f"{self}: {exc}") from exc
            self._watcher = asyncio.create_task(self._watch(watch), name=f"{self} watcher")
        await self._scan()  # responses that arrived while nobody watched

    def _prepare_folder(self) -> None:
        """(Worker thread.) Check the folder, make its two subfolders, and on the first
        success of this session withdraw and discard what an earlier session left."""
        if not self.root.is_dir():
            what = "is not a folder" if self.root.exists() else "does not exist"
            raise NotADirectoryError(f"the folder {self.root} {what} (is the share mounted?)")
        for folder in (self.requests, self.responses):
            folder.mkdir(exist_ok=True)
        if self._recovered:
            return
        withdrawn = [
            name
            for name in files.names(self.requests)
            if naming.stale_request(name, self.bridge_id, self.session)
            and files.remove(self.requests / name)
        ]
        discarded = [
            name
            for name in files.names(self.responses)
            if naming.response_disposition(name, self.bridge_id, self.session, ())
            is Disposition.DISCARD
            and files.remove(self.responses / name)
        ]
        if withdrawn or discarded:
            logger.warning(
                "%s: earlier session left %d request(s), withdrawn: %s; %d response(s),"
                " discarded: %s (the outbox reconciles their payments with find_payment)",
                self,
                len(withdrawn),
                withdrawn,
                len(discarded),
                discarded,
            )
        self._recovered = True

    # -- watching and reading responses --------------------------------------------------------

    async def _watch(self, watch: FolderWatch) -> None:
        try:
            while True:
                changed = await watch.changed()
                if not await asyncio.to_thread(self.responses.is_dir):
                    raise FileNotFoundError(f"{self.responses} is gone")
                # A response (or a duplicate to clean up) arrived; or a quiet spell while
                # requests wait, when a last look costs one listing.
                if any(map(_is_response, changed)) or (not changed and self._waiting):
                    await self._scan()
        except (OSError, RuntimeError, StopAsyncIteration) as exc:
            logger.warning("%s: stopped watching: %s", self, exc)
            self._fail_waiting(PosTimeoutError(f"{self}: the folder went away: {exc}"))
        finally:
            await watch.close()

    async def _scan(self) -> None:
        """Read every response a caller waits for; discard the ones nobody waits for."""
        async with self._scan_lock:
            wanted = {rid: w.name for rid, w in self._waiting.items() if not w.future.done()}
            try:
                found = await asyncio.to_thread(self._collect, wanted)
            except OSError as exc:
                logger.warning("%s: cannot list %s: %s", self, self.responses, exc)
                return
        for request_id, outcome in found:
            waiting = self._waiting.get(request_id)
            if waiting is None or waiting.future.done():
                continue
            if isinstance(outcome, Reply):
                waiting.future.set_result(outcome)
            elif not waiting.malformed:
                waiting.malformed = outcome
                waiting.give_up = asyncio.get_running_loop().call_later(
                    self._settle_s, self._give_up, request_id
                )

    def _collect(self, wanted: dict[int, str]) -> list[tuple[int, Reply | str]]:
        """(Worker thread.) Read, check and delete the wanted responses; delete duplicates and
        stale ones. An invalid file is left in place: its writer may still be at work."""
        found: list[tuple[int, Reply | str]] = []
        for name in files.names(self.responses):
            disposition = naming.response_disposition(name, self.bridge_id, self.session, wanted)
            if disposition is Disposition.DISCARD:
                logger.info("%s: discarded %s: no request waits for it", self, name)
                files.remove(self.responses / name)
            elif disposition is Disposition.READ:
                parsed = naming.MessageName.parse(name)
                assert parsed is not None
                try:
                    data = files.read_bounded(self.responses / name)
                    reply = naming.decode_response_file(data, parsed.request_id)
                except FileNotFoundError:
                    continue
                except WireFormatError as exc:
                    found.append((parsed.request_id, str(exc)))
                    continue
                files.remove(self.responses / name)
                files.remove(self.requests / wanted[parsed.request_id])  # a POS that kept it
                found.append((parsed.request_id, reply))
        return found

    def _give_up(self, request_id: int) -> None:
        waiting = self._waiting.get(request_id)
        if waiting is not None and not waiting.future.done():
            waiting.future.set_exception(
                PosProtocolError(f"{self}: response unreadable: {waiting.malformed}")
            )

    async def _discard_response(self, request_name: str) -> None:
        parsed = naming.MessageName.parse(request_name)
        assert parsed is not None
        with contextlib.suppress(OSError):
            await asyncio.to_thread(files.remove, self.responses / parsed.response().to_name())

    def _abandon(self, name: str, write: asyncio.Future[None]) -> None:
        """A caller was cancelled (e.g. the payment service's own deadline): withdraw its
        request once its write is done. Left in the folder, the POS could take it later,
        after a ``find_payment`` that did not see it, and the payment would land twice."""

        async def withdraw() -> None:
            with contextlib.suppress(OSError):
                await write
            if await self._withdraw(name):
                logger.info("%s: withdrew %s: its caller gave up", self, name)

        task = asyncio.get_running_loop().create_task(withdraw(), name=f"withdraw {name}")
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)

    async def _withdraw(self, name: str) -> bool:
        """Delete our request: ``True`` if it was still there, so the POS never took it."""
        try:
            return await asyncio.to_thread(files.remove, self.requests / name)
        except OSError:  # the folder is gone or read-only: we cannot know
            return False

    async def _stop_watching(self, error: PosUnavailableError | None) -> None:
        task, self._watcher = self._watcher, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if error is not None:
            self._fail_waiting(error)

    def _fail_waiting(self, error: PosUnavailableError) -> None:
        for waiting in self._waiting.values():
            if not waiting.future.done():
                waiting.future.set_exception(error)
                waiting.future.exception()  # retrieved: its caller may have stopped waiting


def _is_response(path: str) -> bool:
    return naming.MessageName.parse(Path(path).name) is not None

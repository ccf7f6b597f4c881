"""Scale-out over NATS: a request that lands on a relay without the venue's tunnel is routed
to a relay that holds one (docs/relay.md, "Scale-out over NATS").

Why NATS request/reply on a per-venue subject rather than a presence table plus direct
relay-to-relay HTTP: the subscription *is* the presence. A relay subscribes to
``<prefix>.venue.<venue>.req`` while it holds a live tunnel of that venue and unsubscribes
when it ends, so there is no table to go stale, and a relay killed with ``kill -9`` vanishes
from the subject as soon as NATS sees its socket close. NATS answers "no responders" at once
when nobody holds the venue: 503 ``venue_offline``.

Subscriptions are in one queue group, so when two relays hold the venue (a bridge connected
to both) exactly one of them serves each routed request: a payment POST is never forwarded
twice. Each relay routes locally first; only a relay without a live tunnel uses NATS.

The exchange (``chunks.py`` for the body framing): the requester subscribes to an inbox
``I`` and sends a NATS request whose headers carry the HTTP head (``Pb-Head``, JSON), ``I``
(``Pb-Reply``) and whether more body follows (``Pb-More``); the payload is the first chunk of
the body. The holder replies ``accept`` with its own inbox ``U`` (``Pb-Upload``), or
``offline`` if its tunnel went away meanwhile. The rest of the request body goes to ``U``;
the response head, body chunks and end come back on ``I``; acks flow the other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import nats
import nats.errors
from aiohttp import web

from common.errors import ApiError, BadGatewayError
from relay.chunks import KIND, Channel, ExchangeBrokenError, Inboxes, Sender
from relay.config import NatsConfig, RelayLimits
from relay.exchange import TunnelExchange, pos_timeout, too_large, venue_offline
from relay.proxy import forwarded_headers, sent_whole, tunnel_path
from relay.registry import Registry
from tunnel.asyncio import StreamCancelledError, TunnelGoneError, end_to_end

logger = logging.getLogger(__name__)

HEAD = "Pb-Head"
REPLY = "Pb-Reply"
UPLOAD = "Pb-Upload"
MORE = "Pb-More"


def _encode_head(**fields: Any) -> str:
    return json.dumps(fields, separators=(",", ":"))


def _headers_text(headers: Any) -> list[list[str]]:
    return [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers]


def _headers_bytes(headers: list[list[str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


class Cluster:
    """This relay's NATS side: presence subscriptions, serving routed requests, routing."""

    def __init__(self, config: NatsConfig, registry: Registry, limits: RelayLimits) -> None:
        self.config = config
        self.registry = registry
        self.limits = limits
        self.nc: Any = None
        self.inboxes: Inboxes | None = None
        self._subs: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def subject(self, venue: str) -> str:
        return f"{self.config.subject_prefix}.venue.{venue}.req"

    async def connect(self) -> None:
        self.nc = await nats.connect(
            servers=list(self.config.servers),
            connect_timeout=self.config.connect_timeout_s,
            max_reconnect_attempts=-1,
            name="pos-bridge-relay",
        )
        if self.config.chunk_bytes + 4096 > self.nc.max_payload:
            limit = self.nc.max_payload
            await self.nc.close()
            raise ValueError(f"nats.chunk_bytes must be under the server's max_payload {limit}")
        self.inboxes = Inboxes(self.nc, self.limits.request_timeout_s)
        await self.inboxes.start()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()

    async def hold(self, venue: str) -> None:
        """This relay now holds a live tunnel of ``venue``: answer its subject."""
        async with self._lock:
            if venue not in self._subs:
                queue = f"{self.config.subject_prefix}.relays"
                self._subs[venue] = await self.nc.subscribe(
                    self.subject(venue), queue=queue, cb=self._on_request
                )

    async def release(self, venue: str) -> None:
        """Stop answering for ``venue`` unless a live tunnel of it is still registered."""
        async with self._lock:
            if self.registry.get(venue) is None and venue in self._subs:
                with contextlib.suppress(Exception):
                    await self._subs.pop(venue).unsubscribe()

    # The holder's side ---------------------------------------------------------------------

    async def _on_request(self, msg: Any) -> None:
        # nats-py runs one subscription's callbacks one after another: serve in a task.
        task = asyncio.create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, msg: Any) -> None:
        nc, config, limits = self.nc, self.config, self.limits
        headers = msg.headers or {}
        venue = msg.subject[len(config.subject_prefix) + len(".venue.") : -len(".req")]
        link = self.registry.get(venue)
        if link is None or REPLY not in headers or HEAD not in headers:
            await nc.publish(msg.reply, b"", headers={KIND: "offline"})
            return
        head = json.loads(headers[HEAD])
        assert self.inboxes is not None  # connected
        channel = self.inboxes.open()
        reply = Sender(
            nc, headers[REPLY], config.chunk_bytes, config.window_chunks, limits.request_timeout_s
        )
        channel.sender, channel.ack_to = reply, headers[REPLY]
        task = asyncio.current_task()
        channel.on_cancel = task.cancel if task is not None else None
        first: list[bytes] = [bytes(msg.data)] if msg.data else []
        more = headers.get(MORE) == "1"

        async def read() -> bytes:
            if first:
                return first.pop()
            return await channel.read() if more else b""

        head_sent = False
        try:
            await nc.publish(msg.reply, b"", headers={KIND: "accept", UPLOAD: channel.subject})
            async with TunnelExchange(
                link, head["method"], head["path"], _headers_bytes(head["headers"]), read, limits
            ) as (stream, response):
                fields = _encode_head(
                    status=response.status, headers=_headers_text(end_to_end(response.headers))
                )
                parts: list[bytes] = []
                while data := stream.read_nowait():  # what is here already (window-bounded)
                    parts.append(data)
                body = b"".join(parts)
                small = data == b"" and len(body) <= config.chunk_bytes
                if small and sent_whole(head["method"], response.status):
                    # The whole answer came with its head (a bill): one message, no acks.
                    await reply.publish("whole", body, headers={HEAD: fields})
                    return
                await reply.publish("head", headers={HEAD: fields})
                head_sent = True
                if body:
                    await reply.data(body)
                while data != b"":
                    data = await asyncio.wait_for(stream.read(), limits.request_timeout_s)
                    if data:
                        await reply.data(data)
                await reply.end()
        except ApiError as exc:
            if not head_sent:
                await self._send_error(reply, exc)
            else:
                await reply.publish("abort")
        except (
            ExchangeBrokenError,
            TimeoutError,
            TunnelGoneError,
            StreamCancelledError,
            nats.errors.Error,
        ) as exc:
            logger.info("routed request for %r broke off: %r", venue, exc)
            with contextlib.suppress(Exception):
                await reply.publish("abort")
        finally:
            self.inboxes.close(channel)

    @staticmethod
    async def _send_error(reply: Sender, exc: ApiError) -> None:
        headers = [["Content-Type", "application/json; charset=utf-8"], *exc.headers.items()]
        await reply.publish(
            "head", headers={HEAD: _encode_head(status=exc.status, headers=headers)}
        )
        await reply.data(json.dumps(exc.body()).encode())
        await reply.end()

    # The requester's side ------------------------------------------------------------------

    async def forward(self, request: web.Request) -> web.StreamResponse:
        """Route ``request`` to a relay holding its venue; stream the answer back."""
        nc, config, limits = self.nc, self.config, self.limits
        venue = request.match_info["venue"]
        if (request.content_length or 0) > limits.max_body_bytes:
            raise too_large(limits.max_body_bytes)
        total = 0

        async def read_chunk() -> bytes:
            nonlocal total
            data = await request.content.read(config.chunk_bytes)
            while data and len(data) < config.chunk_bytes and not request.content.at_eof():
                more = await request.content.read(config.chunk_bytes - len(data))
                if not more:
                    break
                data += more
            total += len(data)
            if total > limits.max_body_bytes:
                raise too_large(limits.max_body_bytes)
            return data

        first = await read_chunk()
        more = not request.content.at_eof()
        head = _encode_head(
            method=request.method,
            path=tunnel_path(request.rel_url),
            headers=_headers_text(
                forwarded_headers(request.raw_headers, request.remote, request.scheme)
            ),
        )
        with self._inbox() as channel:
            fields = {
                KIND: "request",
                HEAD: head,
                REPLY: channel.subject,
                MORE: "1" if more else "0",
            }
            try:
                accept = await nc.request(
                    self.subject(venue), first, timeout=limits.request_timeout_s, headers=fields
                )
            except nats.errors.NoRespondersError:
                raise venue_offline(venue, limits.retry_after_s) from None
            except nats.errors.TimeoutError:
                raise pos_timeout(limits.request_timeout_s) from None
            except nats.errors.Error as exc:  # NATS itself down or reconnecting
                logger.warning("cannot route %r over NATS: %r", venue, exc)
                raise venue_offline(venue, limits.retry_after_s) from None
            accepted = accept.headers or {}
            if accepted.get(KIND) != "accept":
                raise venue_offline(venue, limits.retry_after_s)
            upload = Sender(
                nc,
                accepted[UPLOAD],
                config.chunk_bytes,
                config.window_chunks,
                limits.request_timeout_s,
            )
            channel.sender, channel.ack_to = upload, accepted[UPLOAD]
            finished = False
            uploading = asyncio.create_task(self._upload(upload, read_chunk, more))
            try:
                response, finished = await self._response(request, channel, uploading)
                return response
            finally:
                if not uploading.done():
                    uploading.cancel()
                    with contextlib.suppress(BaseException):
                        await uploading
                elif not uploading.cancelled():
                    uploading.exception()  # mapped in _response, or moot once answered
                if not finished:
                    with contextlib.suppress(Exception):
                        await upload.publish("cancel")

    @contextlib.contextmanager
    def _inbox(self) -> Iterator[Channel]:
        assert self.inboxes is not None  # connected
        channel = self.inboxes.open()
        try:
            yield channel
        finally:
            self.inboxes.close(channel)

    @staticmethod
    async def _upload(sender: Sender, read: Any, more: bool) -> None:
        while more and (data := await read()):
            await sender.data(data)
        if more:
            await sender.end()

    async def _response(
        self, request: web.Request, channel: Channel, uploading: asyncio.Task[None]
    ) -> tuple[web.StreamResponse, bool]:
        """The routed answer, streamed to the caller; and whether it arrived whole."""
        limits = self.limits
        head_wait = asyncio.create_task(channel.next(limits.request_timeout_s))
        try:
            while not head_wait.done():
                waiting: set[asyncio.Future[Any]] = {head_wait}
                if not uploading.done():
                    waiting.add(uploading)
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if uploading.done() and not uploading.cancelled():
                    error = uploading.exception()
                    if isinstance(error, ApiError):
                        raise error
                    if error is not None:
                        raise BadGatewayError("venue_error", "the routed request broke off")
            try:
                msg = head_wait.result()
            except ExchangeBrokenError:
                raise pos_timeout(limits.request_timeout_s) from None
        finally:
            head_wait.cancel()
        headers = msg.headers or {}
        if headers.get(KIND) == "whole":
            head = json.loads(headers[HEAD])
            whole = web.Response(
                status=head["status"],
                body=bytes(msg.data),
                headers=[(name, value) for name, value in head["headers"]],
            )
            return whole, True
        if headers.get(KIND) != "head":
            raise BadGatewayError("venue_error", "the relay holding the venue gave up")
        head = json.loads(headers[HEAD])
        response = web.StreamResponse(status=head["status"])
        for name, value in head["headers"]:
            response.headers.add(name, value)
        await response.prepare(request)
        try:
            while data := await channel.read():
                await response.write(data)
        except ConnectionResetError:  # the caller left: the holder is told to cancel
            return response, False
        except ExchangeBrokenError as exc:
            # As in proxy.py: once the head is out, cut the connection; never a wrong body.
            logger.warning("routed response body broke off: %s", exc)
            if request.transport is not None:
                request.transport.close()
            return response, False
        await response.write_eof()
        return response, True

"""The file-drop protocol's rules, as pure functions: names, completeness, clean-up, sizes.

Pure (no ``os``, no clock): the folder exchange (``drivers/filedrop/exchange.py``) and the
emulator's POS side (``drivers/emulator/file_server.py``) both decide with these, so the
two ends cannot disagree on what a name means. The rules are specified for POS vendors in
``docs/drivers/file-drop.md``; this module is their executable form.

Layout under the shared folder (the driver URL's path)::

    requests/req-<bridge>-<session>-<id>.json      written by the bridge, taken by the POS
    responses/resp-<bridge>-<session>-<id>.json    written by the POS, read by the bridge

- ``bridge`` names one bridge (driver option ``bridge_id``), so several may share a folder;
- ``session`` is 8 lowercase hex digits drawn each time the driver opens: a file of an earlier
  session is stale, whatever its id (ids restart at 1 in every session);
- ``id`` is the message's ``id`` (``drivers/wire/messages.py``), decimal, no leading zeros.

A file is *complete* only under a name that matches one of the two patterns exactly. Writers
write under a temporary name (``.`` + final name + ``.tmp``) in the same folder and rename;
readers ignore every other name, so a half-written file is never read.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Container
from dataclasses import dataclass

from drivers.wire.messages import (
    MAX_ID,
    MAX_PAYLOAD,
    Reply,
    Request,
    WireFormatError,
    decode_reply,
    decode_request,
)

REQUESTS_DIR = "requests"
RESPONSES_DIR = "responses"

REQUEST_PREFIX = "req"
RESPONSE_PREFIX = "resp"
SUFFIX = ".json"

#: A writer's temporary name is ``TEMP_PREFIX + final name + TEMP_SUFFIX``; readers skip it.
TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"

#: Largest file either side accepts: one payload of the message catalogue.
MAX_FILE_BYTES = MAX_PAYLOAD

#: Lowercase only: Windows shares fold case, and two bridges must never collide.
BRIDGE_ID_PATTERN = r"[a-z0-9_]{1,32}"
SESSION_PATTERN = r"[0-9a-f]{8}"
_ID_PATTERN = r"[1-9][0-9]{0,9}"

_NAME = re.compile(
    rf"(?P<kind>{REQUEST_PREFIX}|{RESPONSE_PREFIX})-(?P<bridge>{BRIDGE_ID_PATTERN})"
    rf"-(?P<session>{SESSION_PATTERN})-(?P<id>{_ID_PATTERN}){re.escape(SUFFIX)}"
)
_BRIDGE_ID = re.compile(BRIDGE_ID_PATTERN)
_SESSION = re.compile(SESSION_PATTERN)

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class MessageName:
    """A complete request or response file's name, parsed."""

    kind: str  # REQUEST_PREFIX or RESPONSE_PREFIX
    bridge_id: str
    session: str
    request_id: int

    def to_name(self) -> str:
        return f"{self.kind}-{self.bridge_id}-{self.session}-{self.request_id}{SUFFIX}"

    @classmethod
    def parse(cls, name: str) -> MessageName | None:
        """The parsed name, or ``None`` when ``name`` is not a complete message file (a
        temporary file, a stranger's file): the caller must leave it alone."""
        match = _NAME.fullmatch(name)
        if match is None:
            return None
        request_id = int(match["id"])
        if request_id > MAX_ID:
            return None
        return cls(match["kind"], match["bridge"], match["session"], request_id)

    def response(self) -> MessageName:
        """The name of the response to this request (the POS's side of the rule)."""
        return MessageName(RESPONSE_PREFIX, self.bridge_id, self.session, self.request_id)


def check_bridge_id(value: str) -> bool:
    return _BRIDGE_ID.fullmatch(value) is not None


def check_session(value: str) -> bool:
    return _SESSION.fullmatch(value) is not None


def request_name(bridge_id: str, session: str, request_id: int) -> str:
    return MessageName(REQUEST_PREFIX, bridge_id, session, request_id).to_name()


def temp_name(final_name: str) -> str:
    """Where a writer puts ``final_name``'s bytes before renaming them into place."""
    return f"{TEMP_PREFIX}{final_name}{TEMP_SUFFIX}"


def temp_target(name: str) -> MessageName | None:
    """The message a temporary file was going to become, or ``None`` if ``name`` is not one
    of the protocol's temporary names."""
    if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
        return None
    return MessageName.parse(name[len(TEMP_PREFIX) : -len(TEMP_SUFFIX)])


# -- what the bridge does with a file it finds ------------------------------------------------


class Disposition(enum.Enum):
    LEAVE = "leave"  # not ours (another bridge's, a stranger's, someone's temporary file)
    READ = "read"  # the response a caller is waiting for
    DISCARD = "discard"  # ours, but nobody waits: stale session, answered, timed out, unknown


def response_disposition(
    name: str, bridge_id: str, session: str, pending: Container[int]
) -> Disposition:
    """What the bridge does with ``responses/<name>``.

    A response for an unknown or already-answered request, or from an earlier session, is
    deleted unread: that is what makes a duplicate response file harmless.
    """
    parsed = MessageName.parse(name)
    if parsed is None or parsed.kind != RESPONSE_PREFIX or parsed.bridge_id != bridge_id:
        return Disposition.LEAVE
    if parsed.session == session and parsed.request_id in pending:
        return Disposition.READ
    return Disposition.DISCARD


def stale_request(name: str, bridge_id: str, session: str) -> bool:
    """Whether the bridge withdraws ``requests/<name>`` when it opens in ``session``.

    Its own requests (or temporary files) from earlier sessions: their callers died with the
    process, and the outbox reconciles every payment they carried with ``find_payment``.
    Withdrawing (deleting) one the POS has not taken yet means it is never carried out.
    """
    parsed = MessageName.parse(name) or temp_target(name)
    return (
        parsed is not None
        and parsed.kind == REQUEST_PREFIX
        and parsed.bridge_id == bridge_id
        and parsed.session != session
    )


def own_temp_response(name: str, bridge_id: str) -> bool:
    """Whether ``responses/<name>`` is the POS's unfinished response to one of our requests
    (not ours to delete: the POS cleans its own temporary files)."""
    parsed = temp_target(name)
    return parsed is not None and parsed.bridge_id == bridge_id


# -- contents -----------------------------------------------------------------------------------


def encode_file(payload: bytes) -> bytes:
    """A message file's bytes: the payload, UTF-8 JSON, and a final newline for people."""
    if len(payload) + 1 > MAX_FILE_BYTES:
        raise WireFormatError(f"message of {len(payload)} bytes is over {MAX_FILE_BYTES}")
    return payload + b"\n"


def decode_response_file(data: bytes, expected_id: int) -> Reply:
    """A response file's reply, checked against the request it answers.

    Raises:
        WireFormatError: too large, not UTF-8 JSON, not a reply, or a reply to another id
            (a half-written file from a POS that does not rename lands here).
    """
    reply = decode_reply(_payload(data))
    if reply.id != expected_id:
        raise WireFormatError(f"id {reply.id} in the file named for request {expected_id}")
    return reply


def decode_request_file(data: bytes, expected_id: int) -> Request:
    """The POS side's reading of a request file (same checks as responses)."""
    request = decode_request(_payload(data))
    if request.id != expected_id:
        raise WireFormatError(f"id {request.id} in the file named for request {expected_id}")
    return request


def _payload(data: bytes) -> bytes:
    if len(data) > MAX_FILE_BYTES:
        raise WireFormatError(f"file of {len(data)} bytes is over {MAX_FILE_BYTES}")
    # A UTF-8 byte order mark is tolerated: some Windows tools write one unasked.
    return data.removeprefix(_BOM)

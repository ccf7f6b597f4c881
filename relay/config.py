"""The relay's configuration: its own small TOML file (``relay.example.toml``) as typed models.

One model per table, and they are what the relay reads (``config.limits.request_timeout_s``);
loaded like the bridge's, by :func:`common.settings.load_file`, with the file's folder for
the paths in it. Errors name the key path (``limits.request_timeout_s: must be a number >=
0.05``); ``relay.example.toml`` documents every key.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from common.settings import (
    ConfigError,
    EnvName,
    ExistingFile,
    FilePath,
    KeyProblem,
    Listed,
    LogLevel,
    Port,
    Seconds,
    Secret,
    Section,
    checked,
    ignored,
    load_file,
    read_toml,
    url_or_urls,
)
from tunnel.messages import MIN_MAX_FRAME_BYTES

__all__ = ["ConfigError", "RelayConfig", "load_relay_config", "parse_relay_config"]

MIB = 1024 * 1024


class RelaySettings(Section):
    """``[relay]``: the relay's own keys."""

    #: The venues and their hashed tokens; relative to the config file's folder.
    venues_file: FilePath = checked("venues.toml")
    operator_token_env: EnvName = ""
    operator_token: Secret = ""
    log_level: LogLevel = "info"
    host: str = "127.0.0.1"
    port: Port = 8443
    #: ``/metrics`` without the operator token (for a scraper on a private network).
    metrics_public: bool = False
    #: An older version's switch for its fast path: accepted and ignored.
    fast_path: Annotated[Any, AfterValidator(partial(ignored, "relay.fast_path"))] = None
    #: PEM certificate chain and key: the relay serves https:// and wss:// itself.
    tls_cert: ExistingFile = None
    tls_key: ExistingFile = None

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        """Both or neither, loaded once here so a bad pair stops the relay at start."""
        if (self.tls_cert is None) != (self.tls_key is None):
            raise KeyProblem(
                "tls_key" if self.tls_cert else "tls_cert", "give tls_cert and tls_key"
            )
        try:
            self.ssl_context()
        except ssl.SSLError as exc:
            raise KeyProblem("tls_cert", f"cannot load the certificate and key: {exc}") from exc
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context from ``tls_cert``/``tls_key``; ``None`` for plain HTTP."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_cert, self.tls_key)
        return context


class RelayLimits(Section):
    """``[limits]``."""

    #: Largest request body forwarded to a venue; larger gets 413 payload_too_large.
    max_body_bytes: Annotated[int, Field(ge=0, le=2**40)] = 16 * MIB
    #: Deadline for the venue's response head; past it 504 pos_timeout and a CANCEL.
    request_timeout_s: Seconds = 30.0
    #: Retry-After sent with 503 venue_offline.
    retry_after_s: Annotated[int, Field(ge=1, le=3600)] = 5
    #: The PING interval both ends use (sent in WELCOME); a dead peer is noticed within 2×.
    heartbeat_interval_s: Seconds = 20.0
    #: A connected websocket must send HELLO within this.
    handshake_timeout_s: Seconds = 10.0
    #: Largest websocket message either end sends (frames are coalesced up to it).
    max_message_bytes: Annotated[int, Field(ge=2 * MIN_MAX_FRAME_BYTES, le=64 * MIB)] = MIB
    #: Requests in flight per venue; more wait for a free stream.
    max_concurrent_streams: Annotated[int, Field(ge=1, le=10_000)] = 100


class RateLimits(Section):
    """``[rate_limit]``: per-venue request buckets and bad-HELLO refusals (``ratelimit.py``)."""

    #: Requests a second each venue's public URLs take, sustained; past it 429 rate_limited.
    requests_per_s: Annotated[float, Field(ge=0.001)] = 200.0
    #: Requests a venue may send at once above the rate (the bucket's size).
    burst: Annotated[int, Field(ge=1, le=10_000_000)] = 400
    #: Refused HELLOs (bad token, unknown venue) one source address may send per window...
    hello_failures: Annotated[int, Field(ge=1, le=1_000_000)] = 10
    #: ...of this many seconds; past it its HELLOs get CLOSE(RATE_LIMITED) unchecked.
    hello_window_s: Annotated[float, Field(ge=0.01)] = 60.0


def _nats_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        raise ValueError(f"{url!r}: must be nats://host:port or tls://host:port")
    return url


def _nats_urls(urls: tuple[str, ...]) -> tuple[str, ...]:
    for url in urls:
        _nats_url(url)
    return urls


_SUBJECT_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def _subject_prefix(prefix: str) -> str:
    if not all(_SUBJECT_TOKEN.fullmatch(part) for part in prefix.split(".")):
        raise ValueError(f"{prefix!r}: use dot-separated A-Z a-z 0-9 _ -")
    return prefix


class NatsConfig(Section):
    """``[nats]``: relays sharing a NATS server route requests to the relay holding a venue's
    tunnel (``cluster.py``, docs/relay.md "Scale-out over NATS"). Absent: a lone relay."""

    #: Several NATS servers of one cluster; ``url`` is then the first.
    urls: Annotated[tuple[str, ...], Listed, AfterValidator(_nats_urls)] | None = None
    url: Annotated[str, AfterValidator(_nats_url)]
    #: Subjects are ``<prefix>.venue.<venue>.req``; relays of one cluster share the prefix.
    subject_prefix: Annotated[str, AfterValidator(_subject_prefix)] = "posbridge"
    #: Body bytes per NATS message; must stay under the server's max_payload (1 MiB default).
    chunk_bytes: Annotated[int, Field(ge=1024, le=8 * MIB)] = 256 * 1024
    #: Chunks a sender may have unacknowledged; bounds what waits in the receiver's memory.
    window_chunks: Annotated[int, Field(ge=1, le=1024)] = 8
    connect_timeout_s: Seconds = 5.0

    _one_form = model_validator(mode="before")(url_or_urls)

    @property
    def servers(self) -> tuple[str, ...]:
        """Every NATS server to connect to: ``urls``, or just ``url``."""
        return self.urls or (self.url,)


class RelayConfig(Section):
    """The whole file: each key read at its path (``relay.host`` is ``config.relay.host``)."""

    relay: RelaySettings = checked({})
    limits: RelayLimits = checked({})
    nats: NatsConfig | None = None
    rate_limit: RateLimits = checked({})

    # ``relay.venues_file``, ``relay.tls_cert`` by their earlier, flat names (tests read them).
    @property
    def venues_file(self) -> Path:
        return self.relay.venues_file

    @property
    def tls_cert(self) -> Path | None:
        return self.relay.tls_cert

    def ssl_context(self) -> ssl.SSLContext | None:
        return self.relay.ssl_context()


def load_relay_config(path: Path | str, env: Mapping[str, str] | None = None) -> RelayConfig:
    """Read and check the relay's TOML file; its relative paths are from the file's folder.

    Raises:
        ConfigError: the file is missing, is not TOML, or a value is wrong.
    """
    path = Path(path)
    return parse_relay_config(read_toml(path), env if env is not None else os.environ, path.parent)


def parse_relay_config(data: dict[str, Any], env: Mapping[str, str], base: Path) -> RelayConfig:
    """Decoded TOML as the relay's :class:`RelayConfig`; relative paths are from ``base``.

    Raises:
        ConfigError: a value is wrong; ``path`` names its key.
    """
    return load_file(RelayConfig, data, env, base)

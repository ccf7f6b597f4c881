"""The relay's configuration: its own small TOML file, checked at start like the bridge's.

The file is validated by its typed models (``relay/config_file.py``) through the
bridge's own loader (``common/settings.py``); what relates several keys is checked here.

Errors name the key path (``limits.request_timeout_s: must be a number >= 0.05``);
``relay.example.toml`` documents every key.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common.settings import ConfigError, ignored, load_file, read_toml, secret
from relay.config_file import MIB, NatsTable, RelayFile, RelayTable

__all__ = ["ConfigError", "RelayConfig", "load_relay_config", "parse_relay_config"]


@dataclass(frozen=True, slots=True)
class RelayLimits:
    #: Largest request body forwarded to a venue; larger gets 413 payload_too_large.
    max_body_bytes: int = 16 * MIB
    #: Deadline for the venue's response head; past it 504 pos_timeout and a CANCEL.
    request_timeout_s: float = 30.0
    #: Retry-After sent with 503 venue_offline.
    retry_after_s: int = 5
    #: The PING interval both ends use (sent in WELCOME); a dead peer is noticed within 2×.
    heartbeat_interval_s: float = 20.0
    #: A connected websocket must send HELLO within this.
    handshake_timeout_s: float = 10.0
    #: Largest websocket message either end sends (frames are coalesced up to it).
    max_message_bytes: int = MIB
    #: Requests in flight per venue; more wait for a free stream.
    max_concurrent_streams: int = 100


@dataclass(frozen=True, slots=True)
class RateLimits:
    """``[rate_limit]``: per-venue request buckets and bad-HELLO refusals (``ratelimit.py``)."""

    #: Requests a second each venue's public URLs take, sustained; past it 429 rate_limited.
    requests_per_s: float = 200.0
    #: Requests a venue may send at once above the rate (the bucket's size).
    burst: int = 400
    #: Refused HELLOs (bad token, unknown venue) one source address may send per window...
    hello_failures: int = 10
    #: ...of this many seconds; past it its HELLOs get CLOSE(RATE_LIMITED) unchecked.
    hello_window_s: float = 60.0


@dataclass(frozen=True, slots=True)
class NatsConfig:
    """``[nats]``: relays sharing a NATS server route requests to the relay holding a venue's
    tunnel (``cluster.py``, docs/relay.md "Scale-out over NATS"). Absent: a lone relay."""

    urls: tuple[str, ...]
    #: Subjects are ``<prefix>.venue.<venue>.req``; relays of one cluster share the prefix.
    subject_prefix: str = "posbridge"
    #: Body bytes per NATS message; must stay under the server's max_payload (1 MiB default).
    chunk_bytes: int = 256 * 1024
    #: Chunks a sender may have unacknowledged; bounds what waits in the receiver's memory.
    window_chunks: int = 8
    connect_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class RelayConfig:
    venues_file: Path
    operator_token: str
    host: str = "127.0.0.1"
    port: int = 8443
    log_level: str = "info"
    #: ``/metrics`` without the operator token (for a scraper on a private network).
    metrics_public: bool = False
    #: PEM certificate chain and key: the relay serves https:// and wss:// itself.
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context from ``tls_cert``/``tls_key``; ``None`` for plain HTTP."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.tls_cert, self.tls_key)
        return context

    limits: RelayLimits = field(default_factory=RelayLimits)
    nats: NatsConfig | None = None
    rate_limit: RateLimits = field(default_factory=RateLimits)


def load_relay_config(path: Path | str, env: Mapping[str, str] | None = None) -> RelayConfig:
    """Read and check the relay's TOML file; a relative ``venues_file`` is taken from the
    file's folder.

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
    file = load_file(RelayFile, data)
    relay = file.relay
    token = secret("relay.operator_token", relay.operator_token, relay.operator_token_env, env)
    ignored("relay.fast_path", relay.fast_path)
    tls_cert, tls_key = _tls(relay, base)
    venues_file = Path(relay.venues_file)
    t, r = file.limits, file.rate_limit
    return RelayConfig(
        venues_file=venues_file if venues_file.is_absolute() else base / venues_file,
        operator_token=token,
        host=relay.host,
        port=relay.port,
        log_level=relay.log_level,
        metrics_public=relay.metrics_public,
        tls_cert=tls_cert,
        tls_key=tls_key,
        limits=RelayLimits(
            max_body_bytes=t.max_body_bytes,
            request_timeout_s=t.request_timeout_s,
            retry_after_s=t.retry_after_s,
            heartbeat_interval_s=t.heartbeat_interval_s,
            handshake_timeout_s=t.handshake_timeout_s,
            max_message_bytes=t.max_message_bytes,
            max_concurrent_streams=t.max_concurrent_streams,
        ),
        nats=_nats(file.nats) if file.nats is not None else None,
        rate_limit=RateLimits(r.requests_per_s, r.burst, r.hello_failures, r.hello_window_s),
    )


def _tls(relay: RelayTable, base: Path) -> tuple[Path | None, Path | None]:
    """``tls_cert`` and ``tls_key``, both or neither, loaded once here so a bad pair stops
    the relay at start with the key's name."""
    cert, key = relay.tls_cert, relay.tls_key
    if not cert and not key:
        return None, None
    if not cert or not key:
        raise ConfigError(
            "relay.tls_key" if cert else "relay.tls_cert", "give tls_cert and tls_key"
        )
    paths = {
        name: base / Path(raw).expanduser() for name, raw in (("tls_cert", cert), ("tls_key", key))
    }
    for name, path in paths.items():
        if not path.is_file():
            raise ConfigError(f"relay.{name}", f"{str(path)!r}: no such file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            paths["tls_cert"], paths["tls_key"]
        )
    except ssl.SSLError as exc:
        raise ConfigError("relay.tls_cert", f"cannot load the certificate and key: {exc}") from exc
    return paths["tls_cert"], paths["tls_key"]


_SUBJECT_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def _nats(t: NatsTable) -> NatsConfig:
    if t.url is not None and t.urls is not None:
        raise ConfigError("nats.urls", "give url or urls, not both")
    if t.urls is None and t.url is None:
        raise ConfigError("nats.url", "is required")
    urls = t.urls if t.urls is not None else [t.url or ""]
    if not urls:
        raise ConfigError("nats.urls", "must be a non-empty list of strings")
    key = "nats.urls" if t.urls is not None else "nats.url"
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ConfigError(key, f"{url!r}: must be nats://host:port or tls://host:port")
    prefix = t.subject_prefix
    if not all(_SUBJECT_TOKEN.fullmatch(part) for part in prefix.split(".")):
        raise ConfigError("nats.subject_prefix", f"{prefix!r}: use dot-separated A-Z a-z 0-9 _ -")
    return NatsConfig(
        urls=tuple(urls),
        subject_prefix=prefix,
        chunk_bytes=t.chunk_bytes,
        window_chunks=t.window_chunks,
        connect_timeout_s=t.connect_timeout_s,
    )

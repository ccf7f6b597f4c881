"""The relay's configuration: its own small TOML file, checked at start like the bridge's.

Errors name the key path (``limits.request_timeout_s: must be a number >= 0.05``);
``relay.example.toml`` documents every key.
"""

from __future__ import annotations

import os
import re
import ssl
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge.toml_table import LOG_LEVELS, ConfigError, TomlTable
from tunnel.messages import MIN_MAX_FRAME_BYTES

MIB = 1024 * 1024


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
    #: Plain public requests relayed without aiohttp's web layer (``fastpath.py``); off,
    #: every request takes aiohttp's route (the same answers, more CPU).
    fast_path: bool = True
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
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    return parse_relay_config(data, env if env is not None else os.environ, path.parent)


def parse_relay_config(data: dict[str, Any], env: Mapping[str, str], base: Path) -> RelayConfig:
    root = TomlTable(data, "")
    relay = root.table("relay")
    venues_file = Path(relay.text("venues_file", "venues.toml"))
    token = relay.secret("operator_token", env)
    log_level = relay.choice("log_level", "info", LOG_LEVELS)
    host = relay.text("host", "127.0.0.1")
    port = relay.integer("port", 8443, 0, 65535) or 0
    metrics_public = _flag(relay, "metrics_public", False)
    fast_path = _flag(relay, "fast_path", True)
    tls_cert, tls_key = _tls(relay, base)
    relay.done()

    t = root.table("limits")
    limits = RelayLimits(
        max_body_bytes=t.integer("max_body_bytes", 16 * MIB, 0, 2**40) or 0,
        request_timeout_s=t.number("request_timeout_s", 30.0, 0.05),
        retry_after_s=t.integer("retry_after_s", 5, 1, 3600) or 5,
        heartbeat_interval_s=t.number("heartbeat_interval_s", 20.0, 0.05),
        handshake_timeout_s=t.number("handshake_timeout_s", 10.0, 0.05),
        max_message_bytes=t.integer("max_message_bytes", MIB, 2 * MIN_MAX_FRAME_BYTES, 64 * MIB)
        or MIB,
        max_concurrent_streams=t.integer("max_concurrent_streams", 100, 1, 10_000) or 100,
    )
    t.done()
    nats = _nats(root.table("nats")) if "nats" in data else None
    rate_limit = _rate_limit(root.table("rate_limit"))
    root.done()
    return RelayConfig(
        venues_file=venues_file if venues_file.is_absolute() else base / venues_file,
        operator_token=token,
        host=host,
        port=port,
        log_level=log_level,
        metrics_public=metrics_public,
        fast_path=fast_path,
        tls_cert=tls_cert,
        tls_key=tls_key,
        limits=limits,
        nats=nats,
        rate_limit=rate_limit,
    )


def _flag(t: TomlTable, name: str, default: bool) -> bool:
    value = t.raw(name, default)
    if type(value) is not bool:
        raise ConfigError(t.key(name), "must be true or false")
    return value


def _tls(t: TomlTable, base: Path) -> tuple[Path | None, Path | None]:
    """``tls_cert`` and ``tls_key``, both or neither, loaded once here so a bad pair stops
    the relay at start with the key's name."""
    cert, key = t.text("tls_cert", ""), t.text("tls_key", "")
    if not cert and not key:
        return None, None
    if not cert or not key:
        raise ConfigError(t.key("tls_key" if cert else "tls_cert"), "give tls_cert and tls_key")
    paths = {
        name: base / Path(raw).expanduser() for name, raw in (("tls_cert", cert), ("tls_key", key))
    }
    for name, path in paths.items():
        if not path.is_file():
            raise ConfigError(t.key(name), f"{str(path)!r}: no such file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            paths["tls_cert"], paths["tls_key"]
        )
    except ssl.SSLError as exc:
        raise ConfigError(t.key("tls_cert"), f"cannot load the certificate and key: {exc}") from exc
    return paths["tls_cert"], paths["tls_key"]


def _rate_limit(t: TomlTable) -> RateLimits:
    rate = t.number("requests_per_s", 200.0, 0.001)
    burst = t.integer("burst", 400, 1, 10_000_000) or 400
    failures = t.integer("hello_failures", 10, 1, 1_000_000) or 10
    config = RateLimits(
        requests_per_s=rate,
        burst=burst,
        hello_failures=failures,
        hello_window_s=t.number("hello_window_s", 60.0, 0.01),
    )
    t.done()
    return config


_SUBJECT_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def _nats(t: TomlTable) -> NatsConfig:
    if "url" in t.data and "urls" in t.data:
        raise ConfigError(t.key("urls"), "give url or urls, not both")
    raw = t.raw("urls") if "urls" in t.data else [t.text("url", required=True)]
    if not isinstance(raw, list) or not raw or not all(isinstance(u, str) for u in raw):
        raise ConfigError(t.key("urls"), "must be a non-empty list of strings")
    key = t.key("urls" if "urls" in t.data else "url")
    for url in raw:
        parts = urlsplit(url)
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ConfigError(key, f"{url!r}: must be nats://host:port or tls://host:port")
    prefix = t.text("subject_prefix", "posbridge")
    if not all(_SUBJECT_TOKEN.fullmatch(part) for part in prefix.split(".")):
        raise ConfigError(t.key("subject_prefix"), f"{prefix!r}: use dot-separated A-Z a-z 0-9 _ -")
    config = NatsConfig(
        urls=tuple(raw),
        subject_prefix=prefix,
        chunk_bytes=t.integer("chunk_bytes", 256 * 1024, 1024, 8 * MIB) or 256 * 1024,
        window_chunks=t.integer("window_chunks", 8, 1, 1024) or 8,
        connect_timeout_s=t.number("connect_timeout_s", 5.0, 0.05),
    )
    t.done()
    return config

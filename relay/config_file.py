"""The relay's config file as typed models: one per TOML table (``relay.example.toml``).

Loaded by :func:`common.settings.load_file`, the bridge's loader too; ``relay/config.py``
checks what relates several keys and builds the :class:`~relay.config.RelayConfig`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from common.settings import LogLevel, Section
from tunnel.messages import MIN_MAX_FRAME_BYTES

MIB = 1024 * 1024
Seconds = Annotated[float, Field(ge=0.05)]


class RelayTable(Section):
    venues_file: str = "venues.toml"
    operator_token: str = ""
    operator_token_env: str = ""
    log_level: LogLevel = "info"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8443
    metrics_public: bool = False
    #: An older version's switch for its fast path: accepted and ignored (``settings.ignored``).
    fast_path: Any = None
    tls_cert: str = ""
    tls_key: str = ""


class LimitsTable(Section):
    max_body_bytes: Annotated[int, Field(ge=0, le=2**40)] = 16 * MIB
    request_timeout_s: Seconds = 30.0
    retry_after_s: Annotated[int, Field(ge=1, le=3600)] = 5
    heartbeat_interval_s: Seconds = 20.0
    handshake_timeout_s: Seconds = 10.0
    max_message_bytes: Annotated[int, Field(ge=2 * MIN_MAX_FRAME_BYTES, le=64 * MIB)] = MIB
    max_concurrent_streams: Annotated[int, Field(ge=1, le=10_000)] = 100


class NatsTable(Section):
    url: str | None = None
    urls: list[str] | None = None
    subject_prefix: str = "posbridge"
    chunk_bytes: Annotated[int, Field(ge=1024, le=8 * MIB)] = 256 * 1024
    window_chunks: Annotated[int, Field(ge=1, le=1024)] = 8
    connect_timeout_s: Seconds = 5.0


class RateLimitTable(Section):
    requests_per_s: Annotated[float, Field(ge=0.001)] = 200.0
    burst: Annotated[int, Field(ge=1, le=10_000_000)] = 400
    hello_failures: Annotated[int, Field(ge=1, le=1_000_000)] = 10
    hello_window_s: Annotated[float, Field(ge=0.01)] = 60.0


class RelayFile(Section):
    relay: RelayTable = RelayTable()
    limits: LimitsTable = LimitsTable()
    nats: NatsTable | None = None
    rate_limit: RateLimitTable = RateLimitTable()

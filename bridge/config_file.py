"""The bridge's config file as typed models: one per TOML table (``config.example.toml``).

Loaded by :func:`common.settings.load_file`; ``bridge/config.py`` checks what relates several
keys and builds the :class:`~bridge.config.Config` the rest of the bridge reads.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from common.settings import LogLevel, Section

Port = Annotated[int, Field(ge=0, le=65535)]


class BridgeTable(Section):
    data_dir: str = ""
    admin_token: str = ""
    admin_token_env: str = ""
    log_level: LogLevel = "info"


class ServerTable(Section):
    host: str = "127.0.0.1"
    port: Port = 8787
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    #: An older version's HTTP worker processes: accepted and ignored (``settings.ignored``).
    workers: Any = None


class DriverTable(Section):
    url: str
    options: dict[str, Any] = Field(default_factory=dict)


class AuthTable(Section):
    scheme: Literal["bearer", "hmac-sha256"] = "bearer"
    secrets: list[str] = Field(default_factory=list)
    secrets_env: str = ""
    signature_header: str = "X-Event-Signature"


class LocationTable(Section):
    driver: str
    pos_location: str = "1"
    name: str | None = None
    auth: AuthTable = AuthTable()


class OfflineLimitsTable(Section):
    max_payment_minor: Annotated[int, Field(ge=1, le=2**53)] | None = None
    max_total_minor: dict[str, Annotated[int, Field(ge=0, le=2**53)]] = Field(default_factory=dict)
    max_count: Annotated[int, Field(ge=1, le=2**53)] | None = None
    max_age_hours: Annotated[int, Field(ge=1, le=24 * 365)] = 72


class PaymentsTable(Section):
    idempotency_retention_days: Annotated[int, Field(ge=1, le=3650)] = 45
    pos_timeout_s: Annotated[float, Field(ge=0.05)] = 10.0
    retry_after_s: Annotated[int, Field(ge=1, le=3600)] = 5
    offline_limits: OfflineLimitsTable = OfflineLimitsTable()


class OutboxTable(Section):
    retry_initial_s: Annotated[float, Field(ge=0.01)] = 1.0
    retry_max_s: Annotated[float, Field(ge=0.01)] = 30.0
    claim_timeout_s: Annotated[float, Field(ge=1.0)] = 60.0
    idle_poll_s: Annotated[float, Field(ge=0.01)] = 1.0


class HealthTable(Section):
    probe_interval_s: Annotated[float, Field(ge=0.05)] = 5.0


class TunnelTable(Section):
    url: str | None = None
    urls: list[str] | None = None
    venue: str
    token: str = ""
    token_env: str = ""
    reconnect_initial_s: Annotated[float, Field(ge=0.01)] = 0.5
    reconnect_max_s: Annotated[float, Field(ge=0.01)] = 30.0
    stable_after_s: Annotated[float, Field(ge=0.0)] = 30.0
    health_interval_s: Annotated[float, Field(ge=0.05)] = 10.0
    connect_timeout_s: Annotated[float, Field(ge=0.05)] = 10.0
    ca_file: str = ""


class ConfigFile(Section):
    bridge: BridgeTable = BridgeTable()
    server: ServerTable = ServerTable()
    drivers: dict[str, DriverTable] = Field(default_factory=dict)
    locations: dict[str, LocationTable] = Field(default_factory=dict)
    payments: PaymentsTable = PaymentsTable()
    outbox: OutboxTable = OutboxTable()
    health: HealthTable = HealthTable()
    tunnel: TunnelTable | None = None

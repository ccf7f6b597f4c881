"""The bridge's configuration: one TOML file into frozen dataclasses, checked at start.

The file is validated by its typed models (``bridge/config_file.py``) through the loader the
relay shares (``common/settings.py``); what relates several keys is checked here. Every
error names the key path (``drivers.main.url: unknown scheme 'com'``) so a technician can
find the line. ``config.example.toml`` documents every key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import platformdirs

from bridge.config_file import (
    ConfigFile,
    DriverTable,
    LocationTable,
    PaymentsTable,
    TunnelTable,
)
from bridge.core.limits import OfflineLimits
from bridge.core.money import CURRENCIES
from common.settings import ConfigError, ignored, load_file, read_toml, secret

__all__ = ["Config", "ConfigError", "load_config", "parse_config"]

AUTH_SCHEMES = ("bearer", "hmac-sha256")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    max_body_bytes: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class DriverConfig:
    name: str
    url: SplitResult
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return self.url.scheme


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """How a platform proves a call is its own; several secrets allow rotation."""

    scheme: str
    secrets: tuple[str, ...]
    signature_header: str = "X-Event-Signature"


@dataclass(frozen=True, slots=True)
class LocationConfig:
    """A LOKE location linked to a location of one POS driver."""

    loke_location_id: str
    driver: str
    pos_location: str
    name: str
    auth: AuthConfig


@dataclass(frozen=True, slots=True)
class PaymentsConfig:
    idempotency_retention: timedelta = timedelta(days=45)
    offline_limits: OfflineLimits = field(default_factory=OfflineLimits)
    pos_timeout_s: float = 10.0
    retry_after_s: int = 5


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    retry_initial_s: float = 1.0
    retry_max_s: float = 30.0
    claim_timeout_s: float = 60.0
    idle_poll_s: float = 1.0


@dataclass(frozen=True, slots=True)
class TunnelConfig:
    """The outbound tunnel to the relay (``[tunnel]``); absent: no tunnel."""

    url: str
    venue: str
    token: str
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    stable_after_s: float = 30.0
    health_interval_s: float = 10.0
    connect_timeout_s: float = 10.0
    #: All relay URLs when ``urls`` is given (one tunnel to each, at once); ``url`` is the first.
    urls: tuple[str, ...] = ()
    #: A CA bundle (PEM) to trust for ``wss://`` instead of the system's; ``None``: the system's.
    ca_file: Path | None = None

    @property
    def relay_urls(self) -> tuple[str, ...]:
        """Every relay to keep a tunnel to: ``urls``, or just ``url``."""
        return self.urls or (self.url,)


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path
    admin_token: str
    log_level: str = "info"
    server: ServerConfig = field(default_factory=ServerConfig)
    drivers: Mapping[str, DriverConfig] = field(default_factory=dict)
    locations: Mapping[str, LocationConfig] = field(default_factory=dict)
    payments: PaymentsConfig = field(default_factory=PaymentsConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    health_probe_interval_s: float = 5.0
    tunnel: TunnelConfig | None = None

    @property
    def database_path(self) -> Path:
        return self.data_dir / "bridge.sqlite3"


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Read and check the TOML file at ``path``.

    Raises:
        ConfigError: the file is missing, is not TOML, or a value is wrong.
    """
    return parse_config(read_toml(path), env if env is not None else os.environ)


def parse_config(data: dict[str, Any], env: Mapping[str, str]) -> Config:
    """Decoded TOML as the bridge's :class:`Config`.

    Raises:
        ConfigError: a value is wrong; ``path`` names its key.
    """
    file = load_file(ConfigFile, data)
    bridge = file.bridge
    data_dir = Path(bridge.data_dir or platformdirs.user_data_dir("pos-bridge"))
    admin_token = secret("bridge.admin_token", bridge.admin_token, bridge.admin_token_env, env)
    ignored("server.workers", file.server.workers)
    server = ServerConfig(file.server.host, file.server.port, file.server.max_body_bytes)
    drivers = _drivers(file.drivers)
    outbox = file.outbox
    return Config(
        data_dir=data_dir,
        admin_token=admin_token,
        log_level=bridge.log_level,
        server=server,
        drivers=drivers,
        locations=_locations(file.locations, drivers, env),
        payments=_payments(file.payments),
        outbox=OutboxConfig(
            outbox.retry_initial_s, outbox.retry_max_s, outbox.claim_timeout_s, outbox.idle_poll_s
        ),
        health_probe_interval_s=file.health.probe_interval_s,
        tunnel=_tunnel(file.tunnel, env) if file.tunnel is not None else None,
    )


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _relay_url(url: str, key: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("wss", "ws") or not parts.hostname:
        raise ConfigError(key, f"{url!r}: must be wss://host/path")
    if parts.scheme == "ws" and parts.hostname not in LOOPBACK_HOSTS:
        raise ConfigError(key, "plain ws:// is only for 127.0.0.1; use wss://")
    return url


def _tunnel_urls(table: TunnelTable) -> tuple[str, ...]:
    """``url = "…"`` (one relay) or ``urls = ["…", "…"]`` (a tunnel to each at once)."""
    if table.urls is None:
        if table.url is None:
            raise ConfigError("tunnel.url", "is required")
        return (_relay_url(table.url, "tunnel.url"),)
    if table.url is not None:
        raise ConfigError("tunnel.urls", "give url or urls, not both")
    if not table.urls:
        raise ConfigError("tunnel.urls", "must be a non-empty list of strings")
    if len(set(table.urls)) != len(table.urls):
        raise ConfigError("tunnel.urls", "lists a relay twice")
    return tuple(_relay_url(u, f"tunnel.urls[{i}]") for i, u in enumerate(table.urls))


def _tunnel(table: TunnelTable, env: Mapping[str, str]) -> TunnelConfig:
    urls = _tunnel_urls(table)
    if not table.venue:
        raise ConfigError("tunnel.venue", "must not be empty")
    token = secret("tunnel.token", table.token, table.token_env, env)
    if table.reconnect_max_s < table.reconnect_initial_s:
        raise ConfigError("tunnel.reconnect_max_s", "must be >= reconnect_initial_s")
    return TunnelConfig(
        url=urls[0],
        urls=urls if len(urls) > 1 else (),
        venue=table.venue,
        token=token,
        reconnect_initial_s=table.reconnect_initial_s,
        reconnect_max_s=table.reconnect_max_s,
        stable_after_s=table.stable_after_s,
        health_interval_s=table.health_interval_s,
        connect_timeout_s=table.connect_timeout_s,
        ca_file=_ca_file(table.ca_file),
    )


def _ca_file(raw: str) -> Path | None:
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ConfigError("tunnel.ca_file", f"{raw!r}: no such file")
    return path


def _drivers(tables: Mapping[str, DriverTable]) -> dict[str, DriverConfig]:
    drivers: dict[str, DriverConfig] = {}
    for name, table in tables.items():
        url = urlsplit(table.url)
        if not url.scheme:
            raise ConfigError(
                f"drivers.{name}.url", f"{table.url!r} has no scheme (e.g. simulator:)"
            )
        drivers[name] = DriverConfig(name, url, table.options)
    if not drivers:
        raise ConfigError("drivers", "at least one driver is required")
    return drivers


def _locations(
    tables: Mapping[str, LocationTable], drivers: Mapping[str, DriverConfig], env: Mapping[str, str]
) -> dict[str, LocationConfig]:
    locations: dict[str, LocationConfig] = {}
    for loke_id, table in tables.items():
        key = f"locations.{loke_id}"
        if table.driver not in drivers:
            raise ConfigError(f"{key}.driver", f"no driver named {table.driver!r} under [drivers]")
        auth = table.auth
        secrets = list(auth.secrets)
        if auth.secrets_env:
            secrets += filter(None, env.get(auth.secrets_env, "").split(","))
        if not secrets or any(len(s) < 16 for s in secrets):
            raise ConfigError(f"{key}.auth.secrets", "needs at least one secret of 16+ characters")
        locations[loke_id] = LocationConfig(
            loke_location_id=loke_id,
            driver=table.driver,
            pos_location=table.pos_location,
            name=table.name if table.name is not None else loke_id,
            auth=AuthConfig(auth.scheme, tuple(secrets), auth.signature_header),
        )
    return locations


def _payments(table: PaymentsTable) -> PaymentsConfig:
    limits_t = table.offline_limits
    for currency in limits_t.max_total_minor:
        if currency not in CURRENCIES:
            raise ConfigError(
                f"payments.offline_limits.max_total_minor.{currency}", "unknown currency"
            )
    limits = OfflineLimits(
        max_payment_minor=limits_t.max_payment_minor,
        max_total_minor=dict(limits_t.max_total_minor),
        max_count=limits_t.max_count,
        max_age=timedelta(hours=limits_t.max_age_hours),
    )
    retention = timedelta(days=table.idempotency_retention_days)
    if limits.max_age is not None and retention < limits.max_age + timedelta(days=1):
        raise ConfigError(
            "payments.idempotency_retention_days",
            "must outlive the longest offline window (offline_limits.max_age_hours) by a day",
        )
    return PaymentsConfig(retention, limits, table.pos_timeout_s, table.retry_after_s)

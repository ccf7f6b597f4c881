"""The bridge's configuration: one TOML file into frozen dataclasses, checked at start.

Every error names the key path (``drivers.main.url: unknown scheme 'com'``) so a technician
can find the line. ``config.example.toml`` documents every key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import platformdirs

from bridge.core.limits import OfflineLimits
from bridge.core.money import CURRENCIES
from bridge.toml_table import LOG_LEVELS, ConfigError, TomlTable

AUTH_SCHEMES = ("bearer", "hmac-sha256")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    max_body_bytes: int = 64 * 1024
    #: HTTP worker processes in front of this one (``bridge/workers/``); 0 serves HTTP here.
    workers: int = 0


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
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    return parse_config(data, env if env is not None else os.environ)


def parse_config(data: dict[str, Any], env: Mapping[str, str]) -> Config:
    root = TomlTable(data, "")
    bridge = root.table("bridge")
    data_dir_text = bridge.text("data_dir", "")
    data_dir = (
        Path(data_dir_text) if data_dir_text else Path(platformdirs.user_data_dir("pos-bridge"))
    )
    admin_token = bridge.secret("admin_token", env)
    log_level = bridge.choice("log_level", "info", LOG_LEVELS)
    bridge.done()

    server_t = root.table("server")
    server = ServerConfig(
        host=server_t.text("host", "127.0.0.1"),
        port=server_t.integer("port", 8787, 0, 65535) or 0,
        max_body_bytes=server_t.integer("max_body_bytes", 64 * 1024, 1024, 16 * 1024 * 1024) or 0,
        workers=_workers(server_t),
    )
    server_t.done()

    drivers = _drivers(root.table("drivers"))
    locations = _locations(root.table("locations"), drivers, env)
    payments = _payments(root.table("payments"))
    outbox_t = root.table("outbox")
    outbox = OutboxConfig(
        retry_initial_s=outbox_t.number("retry_initial_s", 1.0, 0.01),
        retry_max_s=outbox_t.number("retry_max_s", 30.0, 0.01),
        claim_timeout_s=outbox_t.number("claim_timeout_s", 60.0, 1.0),
        idle_poll_s=outbox_t.number("idle_poll_s", 1.0, 0.01),
    )
    outbox_t.done()
    health_t = root.table("health")
    probe = health_t.number("probe_interval_s", 5.0, 0.05)
    health_t.done()
    tunnel = _tunnel(root.table("tunnel"), env) if "tunnel" in data else None
    root.done()
    return Config(
        data_dir=data_dir,
        admin_token=admin_token,
        log_level=log_level,
        server=server,
        drivers=drivers,
        locations=locations,
        payments=payments,
        outbox=outbox,
        health_probe_interval_s=probe,
        tunnel=tunnel,
    )


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _workers(section: TomlTable) -> int:
    workers = section.integer("workers", 0, 0, 64) or 0
    if workers and os.name != "posix":
        raise ConfigError("server.workers", "HTTP workers need a POSIX system; use 0 here")
    return workers


def _relay_url(url: str, key: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("wss", "ws") or not parts.hostname:
        raise ConfigError(key, f"{url!r}: must be wss://host/path")
    if parts.scheme == "ws" and parts.hostname not in LOOPBACK_HOSTS:
        raise ConfigError(key, "plain ws:// is only for 127.0.0.1; use wss://")
    return url


def _tunnel_urls(section: TomlTable) -> tuple[str, ...]:
    """``url = "…"`` (one relay) or ``urls = ["…", "…"]`` (a tunnel to each at once)."""
    if "urls" not in section.data:
        return (_relay_url(section.text("url", required=True), section.key("url")),)
    if "url" in section.data:
        raise ConfigError(section.key("urls"), "give url or urls, not both")
    raw = section.raw("urls")
    if not isinstance(raw, list) or not raw or not all(isinstance(u, str) for u in raw):
        raise ConfigError(section.key("urls"), "must be a non-empty list of strings")
    if len(set(raw)) != len(raw):
        raise ConfigError(section.key("urls"), "lists a relay twice")
    return tuple(_relay_url(u, f"{section.key('urls')}[{i}]") for i, u in enumerate(raw))


def _tunnel(section: TomlTable, env: Mapping[str, str]) -> TunnelConfig:
    urls = _tunnel_urls(section)
    venue = section.text("venue", required=True)
    if not venue:
        raise ConfigError(section.key("venue"), "must not be empty")
    token = section.secret("token", env)
    initial = section.number("reconnect_initial_s", 0.5, 0.01)
    cap = section.number("reconnect_max_s", 30.0, 0.01)
    if cap < initial:
        raise ConfigError(section.key("reconnect_max_s"), "must be >= reconnect_initial_s")
    config = TunnelConfig(
        url=urls[0],
        urls=urls if len(urls) > 1 else (),
        venue=venue,
        token=token,
        reconnect_initial_s=initial,
        reconnect_max_s=cap,
        stable_after_s=section.number("stable_after_s", 30.0, 0.0),
        health_interval_s=section.number("health_interval_s", 10.0, 0.05),
        connect_timeout_s=section.number("connect_timeout_s", 10.0, 0.05),
        ca_file=_ca_file(section),
    )
    section.done()
    return config


def _ca_file(section: TomlTable) -> Path | None:
    raw = section.text("ca_file", "")
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ConfigError(section.key("ca_file"), f"{raw!r}: no such file")
    return path


def _drivers(section: TomlTable) -> dict[str, DriverConfig]:
    drivers: dict[str, DriverConfig] = {}
    for name in list(section.data):
        table = section.table(name)
        url_text = table.text("url", required=True)
        url = urlsplit(url_text)
        if not url.scheme:
            raise ConfigError(table.key("url"), f"{url_text!r} has no scheme (e.g. simulator:)")
        options = table.raw("options", {})
        if not isinstance(options, dict):
            raise ConfigError(table.key("options"), "must be a table")
        table.done()
        drivers[name] = DriverConfig(name, url, options)
    if not drivers:
        raise ConfigError("drivers", "at least one driver is required")
    return drivers


def _locations(
    section: TomlTable, drivers: Mapping[str, DriverConfig], env: Mapping[str, str]
) -> dict[str, LocationConfig]:
    locations: dict[str, LocationConfig] = {}
    for loke_id in list(section.data):
        table = section.table(loke_id)
        driver = table.text("driver", required=True)
        if driver not in drivers:
            raise ConfigError(table.key("driver"), f"no driver named {driver!r} under [drivers]")
        pos_location = table.text("pos_location", "1")
        name = table.text("name", loke_id)
        auth_t = table.table("auth")
        scheme = auth_t.text("scheme", "bearer")
        if scheme not in AUTH_SCHEMES:
            raise ConfigError(auth_t.key("scheme"), f"must be one of {', '.join(AUTH_SCHEMES)}")
        secrets = auth_t.raw("secrets", [])
        if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
            raise ConfigError(auth_t.key("secrets"), "must be a list of strings")
        secrets_env = auth_t.text("secrets_env", "")
        if secrets_env:
            secrets = [*secrets, *filter(None, env.get(secrets_env, "").split(","))]
        if not secrets or any(len(s) < 16 for s in secrets):
            raise ConfigError(auth_t.key("secrets"), "needs at least one secret of 16+ characters")
        header = auth_t.text("signature_header", "X-Event-Signature")
        auth_t.done()
        table.done()
        locations[loke_id] = LocationConfig(
            loke_location_id=loke_id,
            driver=driver,
            pos_location=pos_location,
            name=name,
            auth=AuthConfig(scheme, tuple(secrets), header),
        )
    return locations


def _payments(section: TomlTable) -> PaymentsConfig:
    retention_days = section.integer("idempotency_retention_days", 45, 1, 3650) or 45
    pos_timeout = section.number("pos_timeout_s", 10.0, 0.05)
    retry_after = section.integer("retry_after_s", 5, 1, 3600) or 5
    limits_t = section.table("offline_limits")
    totals_t = limits_t.table("max_total_minor")
    totals: dict[str, int] = {}
    for currency in list(totals_t.data):
        if currency not in CURRENCIES:
            raise ConfigError(totals_t.key(currency), "unknown currency")
        totals[currency] = totals_t.integer(currency, None, 0) or 0
    totals_t.done()
    age_hours = limits_t.integer("max_age_hours", 72, 1, 24 * 365)
    limits = OfflineLimits(
        max_payment_minor=limits_t.integer("max_payment_minor", None, 1),
        max_total_minor=totals,
        max_count=limits_t.integer("max_count", None, 1),
        max_age=timedelta(hours=age_hours) if age_hours else None,
    )
    limits_t.done()
    section.done()
    retention = timedelta(days=retention_days)
    if limits.max_age is not None and retention < limits.max_age + timedelta(days=1):
        raise ConfigError(
            section.key("idempotency_retention_days"),
            "must outlive the longest offline window (offline_limits.max_age_hours) by a day",
        )
    return PaymentsConfig(retention, limits, pos_timeout, retry_after)

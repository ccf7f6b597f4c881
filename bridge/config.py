"""The bridge's configuration: its TOML file (``config.example.toml``) as typed models.

One model per table, and they are what the bridge reads (``config.payments.pos_timeout_s``).
Loaded by :func:`common.settings.load_file`, the relay's loader too: the models check types,
ranges and unknown keys, and their validators what relates several keys (a location's driver
exists, a secret from the environment). Every error names the key path
(``drivers.main.url: unknown scheme 'com'``, that one from the driver registry at start) so
a technician can find the line; ``config.example.toml`` documents every key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import SplitResult, urlsplit

import platformdirs
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from bridge.core.limits import OfflineLimits
from bridge.core.money import CURRENCIES
from common.settings import (
    ConfigError,
    EnvName,
    ExistingFile,
    FilePath,
    KeyProblem,
    Listed,
    LogLevel,
    Port,
    ReadAs,
    Seconds,
    Secret,
    Section,
    checked,
    context,
    ignored,
    load_file,
    read_toml,
    url_or_urls,
)

__all__ = ["Config", "ConfigError", "load_config", "parse_config"]


def _platform_data_dir(value: Any) -> Any:
    return platformdirs.user_data_dir("pos-bridge") if value == "" else value


class BridgeSettings(Section):
    """``[bridge]``: the bridge's own keys."""

    #: Empty: the platform's data folder.
    data_dir: Annotated[FilePath, BeforeValidator(_platform_data_dir)] = checked("")
    admin_token_env: EnvName = ""
    admin_token: Secret = ""
    log_level: LogLevel = "info"


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: Port = 8787
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    #: An older version's HTTP worker processes: accepted and ignored.
    workers: Annotated[Any, AfterValidator(partial(ignored, "server.workers"))] = None


def _driver_url(url: str) -> SplitResult:
    parts = urlsplit(url)
    if not parts.scheme:
        raise ValueError(f"{url!r} has no scheme (e.g. simulator:)")
    return parts


class DriverConfig(Section):
    """``[drivers.NAME]``: the URL's scheme picks the driver; the options are its own."""

    url: Annotated[SplitResult, ReadAs(str, _driver_url)]
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return self.url.scheme


class AuthConfig(Section):
    """How a platform proves a call is its own; several secrets allow rotation."""

    scheme: Literal["bearer", "hmac-sha256"] = "bearer"
    #: An environment variable holding more secrets, comma-separated.
    secrets_env: str = ""
    secrets: Annotated[tuple[str, ...], Listed] = checked(())
    signature_header: str = "X-Event-Signature"

    @field_validator("secrets")
    @classmethod
    def _enough(cls, secrets: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if variable := info.data.get("secrets_env"):
            secrets += tuple(filter(None, context(info).env.get(variable, "").split(",")))
        if not secrets or any(len(s) < 16 for s in secrets):
            raise ValueError("needs at least one secret of 16+ characters")
        return secrets


class LocationConfig(Section):
    """``[locations.ID]``: a LOKE location (the key is LOKE's id) linked to a location of one
    POS driver."""

    driver: str
    pos_location: str = "1"
    #: Default: the table's key.
    name: str
    auth: AuthConfig = checked({})
    _key: str = PrivateAttr("")

    @property
    def loke_location_id(self) -> str:
        return self._key


def _keyed(tables: Any, validate: ValidatorFunctionWrapHandler) -> Any:
    """Each ``[locations.KEY]`` knows KEY, its LOKE id and its name unless it has one."""
    if isinstance(tables, dict):
        tables = {k: {"name": k, **t} if isinstance(t, dict) else t for k, t in tables.items()}
    locations = validate(tables)
    for key, location in locations.items():
        location._key = key
    return locations


Locations = Annotated[dict[str, LocationConfig], WrapValidator(_keyed)]


class OfflineLimitsTable(Section):
    """``[payments.offline_limits]``, read as the domain's :class:`OfflineLimits`."""

    max_payment_minor: Annotated[int, Field(ge=1, le=2**53)] | None = None
    max_total_minor: dict[str, Annotated[int, Field(ge=0, le=2**53)]] = Field(default_factory=dict)
    max_count: Annotated[int, Field(ge=1, le=2**53)] | None = None
    max_age_hours: Annotated[int, Field(ge=1, le=24 * 365)] = 72

    @field_validator("max_total_minor")
    @classmethod
    def _known_currencies(cls, totals: dict[str, int]) -> dict[str, int]:
        for currency in totals:
            if currency not in CURRENCIES:
                raise KeyProblem(currency, "unknown currency")
        return totals

    def limits(self) -> OfflineLimits:
        return OfflineLimits(
            max_payment_minor=self.max_payment_minor,
            max_total_minor=dict(self.max_total_minor),
            max_count=self.max_count,
            max_age=timedelta(hours=self.max_age_hours),
        )


Limits = Annotated[OfflineLimits, ReadAs(OfflineLimitsTable, OfflineLimitsTable.limits)]


class PaymentsConfig(Section):
    idempotency_retention_days: Annotated[int, Field(ge=1, le=3650)] = 45
    pos_timeout_s: Seconds = 10.0
    retry_after_s: Annotated[int, Field(ge=1, le=3600)] = 5
    offline_limits: Limits = checked({})

    @property
    def idempotency_retention(self) -> timedelta:
        return timedelta(days=self.idempotency_retention_days)

    @model_validator(mode="after")
    def _retention_outlives_offline(self) -> Self:
        max_age = self.offline_limits.max_age
        if max_age is not None and self.idempotency_retention < max_age + timedelta(days=1):
            raise KeyProblem(
                "idempotency_retention_days",
                "must outlive the longest offline window (offline_limits.max_age_hours) by a day",
            )
        return self


class OutboxConfig(Section):
    retry_initial_s: Annotated[float, Field(ge=0.01)] = 1.0
    retry_max_s: Annotated[float, Field(ge=0.01)] = 30.0
    claim_timeout_s: Annotated[float, Field(ge=1.0)] = 60.0
    idle_poll_s: Annotated[float, Field(ge=0.01)] = 1.0


class HealthConfig(Section):
    probe_interval_s: Seconds = 5.0


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _relay_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("wss", "ws") or not parts.hostname:
        raise ValueError(f"{url!r}: must be wss://host/path")
    if parts.scheme == "ws" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError("plain ws:// is only for 127.0.0.1; use wss://")
    return url


def _each_once(urls: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(urls)) != len(urls):
        raise ValueError("lists a relay twice")
    return urls


RelayUrl = Annotated[str, AfterValidator(_relay_url)]
RelayUrls = Annotated[tuple[RelayUrl, ...], Listed, AfterValidator(_each_once)]


class TunnelConfig(Section):
    """``[tunnel]``: the outbound tunnel to the relay; absent: no tunnel."""

    #: Several relays, one tunnel to each at once; ``url`` is then the first.
    urls: RelayUrls | None = None
    url: RelayUrl
    venue: Annotated[str, Field(min_length=1)]
    token_env: EnvName = ""
    token: Secret = ""
    reconnect_initial_s: Annotated[float, Field(ge=0.01)] = 0.5
    reconnect_max_s: Annotated[float, Field(ge=0.01)] = 30.0
    stable_after_s: Annotated[float, Field(ge=0.0)] = 30.0
    health_interval_s: Seconds = 10.0
    connect_timeout_s: Seconds = 10.0
    #: A CA bundle (PEM) to trust for ``wss://`` instead of the system's.
    ca_file: ExistingFile = None

    _one_form = model_validator(mode="before")(url_or_urls)

    @field_validator("reconnect_max_s")
    @classmethod
    def _not_below_initial(cls, value: float, info: ValidationInfo) -> float:
        if value < info.data.get("reconnect_initial_s", 0):
            raise ValueError("must be >= reconnect_initial_s")
        return value

    @property
    def relay_urls(self) -> tuple[str, ...]:
        """Every relay to keep a tunnel to: ``urls``, or just ``url``."""
        return self.urls or (self.url,)


LOKE_SCOPES = ("openid", "offline", "email")


class LokeConfig(Section):
    """``[loke]``: the LOKE addon (``docs/loke-linking.md``); absent: no linking page, only
    the ``[locations.*]`` written in this file."""

    #: The OIDC issuer; its ``/.well-known/openid-configuration`` names the endpoints.
    issuer: str = "https://auth.loke.global/"
    #: LOKE's platform API (organisations, locations, tables, the pay-at-table URLs).
    api_url: str = "https://api.loke.global/"
    client_id: str = checked("")
    client_secret_env: EnvName = ""
    client_secret: Secret = ""
    scopes: Annotated[tuple[str, ...], Listed] = checked(LOKE_SCOPES)
    #: Where LOKE sends the technician's browser back; empty: this bridge's own
    #: ``http://{server.host}:{server.port}/admin/loke/callback``.
    redirect_uri: str = ""
    #: The venue's public prefix at the relay (``https://relay.example.com/v/cafe``); the URLs
    #: registered with LOKE start with it. Empty: derived from ``[tunnel]``.
    public_url: str = ""
    #: Refresh an access token this long before it expires (clock skew, slow networks).
    refresh_margin_s: Annotated[float, Field(ge=0, le=3600)] = 120.0
    #: Publish every linked location's tables again this often (a POS's tables change).
    republish_interval_s: Annotated[float, Field(ge=10, le=86400)] = 300.0
    #: LOKE does not publish these two calls (inferred, ``docs/loke-linking.md``).
    tables_path: str = "/organizations/{organizationId}/locations/{locationId}/tables"
    pay_at_table_path: str = "/organizations/{organizationId}/locations/{locationId}/pay-at-table"
    #: How LOKE proves its calls to a linked location: ``bearer`` or ``hmac-sha256``.
    link_auth_scheme: Literal["bearer", "hmac-sha256"] = "bearer"
    http_timeout_s: Seconds = 15.0

    @field_validator("issuer", "api_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{url!r}: must be an https:// URL")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            raise ValueError("plain http:// is only for 127.0.0.1 (a sandbox); use https://")
        return url

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, client_id: str) -> str:
        if not client_id:
            raise ValueError("is required (LOKE support issues it)")
        return client_id


class Config(Section):
    """The whole file: each key read at its path (``bridge.admin_token`` is
    ``config.bridge.admin_token``)."""

    bridge: BridgeSettings = checked({})
    server: ServerConfig = checked({})
    drivers: dict[str, DriverConfig] = Field(default_factory=dict)
    locations: Locations = Field(default_factory=dict)
    payments: PaymentsConfig = checked({})
    outbox: OutboxConfig = checked({})
    health: HealthConfig = checked({})
    tunnel: TunnelConfig | None = None
    loke: LokeConfig | None = None

    @model_validator(mode="after")
    def _drivers_exist(self) -> Self:
        if not self.drivers:
            raise KeyProblem("drivers", "at least one driver is required")
        for key, location in self.locations.items():
            if location.driver not in self.drivers:
                raise KeyProblem(
                    f"locations.{key}.driver",
                    f"no driver named {location.driver!r} under [drivers]",
                )
        return self

    @property
    def admin_token(self) -> str:
        """``bridge.admin_token`` by its earlier, flat name (tests read it)."""
        return self.bridge.admin_token

    @property
    def database_path(self) -> Path:
        return self.bridge.data_dir / "bridge.sqlite3"


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Read and check the TOML file at ``path``.

    Raises:
        ConfigError: the file is missing, is not TOML, or a value is wrong.
    """
    return parse_config(read_toml(path), env if env is not None else os.environ)


def parse_config(data: dict[str, Any], env: Mapping[str, str]) -> Config:
    """Decoded TOML as the bridge's :class:`Config`; secrets named by ``*_env`` from ``env``.

    Raises:
        ConfigError: a value is wrong; ``path`` names its key.
    """
    return load_file(Config, data, env)

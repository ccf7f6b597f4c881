"""Configuration: the example parses, and every mistake names its key path."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.app import build_drivers
from bridge.config import load_config, parse_config
from common.settings import ConfigError
from tests.conftest import config_data

ROOT = Path(__file__).resolve().parents[1]


def test_the_example_config_parses_and_its_drivers_build():
    config = load_config(ROOT / "config.example.toml")
    assert config.server.host == "127.0.0.1"
    assert config.locations["demo-cafe"].auth.scheme == "bearer"
    assert config.payments.offline_limits.max_age == timedelta(hours=72)
    assert config.payments.offline_limits.max_total_minor["AUD"] == 500000
    assert set(build_drivers(config)) == {"main"}


def error_for(tmp_path, mutate, env=None):
    data = copy.deepcopy(config_data(tmp_path))
    mutate(data)
    with pytest.raises(ConfigError) as caught:
        config = parse_config(data, env or {})
        build_drivers(config)
    return str(caught.value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["drivers"]["main"].update(url="com://COM1"),
            "drivers.main.url: unknown scheme 'com'",
        ),
        (lambda d: d["drivers"]["main"].update(url="no-scheme"), "drivers.main.url:"),
        (
            lambda d: d["drivers"]["main"]["options"].update(tables=-1),
            "drivers.main.options.tables:",
        ),
        (lambda d: d["bridge"].update(admin_token="short"), "bridge.admin_token:"),
        (lambda d: d["bridge"].update(colour="red"), "bridge.colour: unknown key"),
        (
            lambda d: (
                d["server"].update(port=70000)
                if "server" in d
                else d.update(server={"port": 70000})
            ),
            "server.port:",
        ),
        (
            lambda d: d["locations"]["loc-main"].update(driver="other"),
            "locations.loc-main.driver: no driver named 'other'",
        ),
        (
            lambda d: d["locations"]["loc-main"]["auth"].update(scheme="basic"),
            "locations.loc-main.auth.scheme:",
        ),
        (
            lambda d: d["locations"]["loc-main"]["auth"].update(secrets=["short"]),
            "locations.loc-main.auth.secrets:",
        ),
        (
            lambda d: d.update(
                payments={"idempotency_retention_days": 2, "offline_limits": {"max_age_hours": 72}}
            ),
            "payments.idempotency_retention_days: must outlive",
        ),
        (
            lambda d: d.update(payments={"offline_limits": {"max_total_minor": {"USD": 1}}}),
            "payments.offline_limits.max_total_minor.USD: unknown currency",
        ),
        (lambda d: d.update(outbox={"retry_max_s": "soon"}), "outbox.retry_max_s:"),
        (lambda d: d.pop("drivers"), "drivers: at least one driver"),
    ],
)
def test_errors_name_the_key_path(tmp_path, mutate, message):
    assert message in error_for(tmp_path, mutate)


def test_secrets_can_come_from_the_environment(tmp_path):
    data = copy.deepcopy(config_data(tmp_path))
    data["bridge"] = {"data_dir": str(tmp_path), "admin_token_env": "ADMIN"}
    data["locations"]["loc-main"]["auth"] = {"secrets_env": "LOKE"}
    config = parse_config(data, {"ADMIN": "a" * 20, "LOKE": "b" * 16 + "," + "c" * 16})
    assert config.admin_token == "a" * 20
    assert config.locations["loc-main"].auth.secrets == ("b" * 16, "c" * 16)
    with pytest.raises(ConfigError, match=r"bridge\.admin_token_env"):
        parse_config(data, {})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[bridge\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


TUNNEL = {"url": "wss://relay.example.com/tunnel", "venue": "cafe-1", "token": "t" * 32}


def test_no_tunnel_section_means_no_tunnel_and_a_section_is_read(tmp_path):
    assert parse_config(copy.deepcopy(config_data(tmp_path)), {}).tunnel is None
    data = copy.deepcopy(config_data(tmp_path, tunnel={**TUNNEL, "reconnect_max_s": 5}))
    tunnel = parse_config(data, {}).tunnel
    assert tunnel is not None
    assert (tunnel.venue, tunnel.reconnect_initial_s, tunnel.reconnect_max_s) == ("cafe-1", 0.5, 5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "ws://relay.example.com/tunnel"}, "tunnel.url: plain ws:// is only for 127.0.0.1"),
        ({"url": "https://relay.example.com/"}, "tunnel.url: 'https://relay.example.com/': must"),
        ({"token": "short"}, "tunnel.token: must be set"),
        ({"venue": ""}, "tunnel.venue: must not be empty"),
        ({"reconnect_initial_s": 9, "reconnect_max_s": 1}, "tunnel.reconnect_max_s: must be >="),
        ({"ping": 1}, "tunnel.ping: unknown key"),
        ({"urls": ["wss://a.example.com/t"]}, "tunnel.urls: give url or urls, not both"),
        ({"url": None, "urls": []}, "tunnel.urls: must be a non-empty list"),
        ({"url": None, "urls": ["wss://a/t", "wss://a/t"]}, "tunnel.urls: lists a relay twice"),
        ({"url": None, "urls": ["wss://a/t", "ws://b/t"]}, "tunnel.urls[1]: plain ws://"),
    ],
)
def test_tunnel_errors_name_the_key_path(tmp_path, change, message):
    section = {k: v for k, v in {**TUNNEL, **change}.items() if v is not None}
    assert message in error_for(tmp_path, lambda d: d.update(tunnel=section))


def test_tunnel_urls_keep_one_tunnel_per_relay_and_url_stays_the_single_form(tmp_path):
    urls = ["wss://relay-a.example.com/tunnel", "wss://relay-b.example.com/tunnel"]
    section = {k: v for k, v in TUNNEL.items() if k != "url"} | {"urls": urls}
    tunnel = parse_config(copy.deepcopy(config_data(tmp_path, tunnel=section)), {}).tunnel
    assert tunnel is not None and tunnel.relay_urls == tuple(urls) and tunnel.url == urls[0]
    single = parse_config(copy.deepcopy(config_data(tmp_path, tunnel=TUNNEL)), {}).tunnel
    assert single is not None and single.relay_urls == (TUNNEL["url"],)


def test_plain_ws_is_allowed_to_loopback_and_the_token_may_come_from_the_environment(tmp_path):
    section = {"url": "ws://127.0.0.1:8443/tunnel", "venue": "cafe-1", "token_env": "TUNNEL"}
    data = copy.deepcopy(config_data(tmp_path, tunnel=section))
    assert parse_config(data, {"TUNNEL": "x" * 20}).tunnel.token == "x" * 20
    with pytest.raises(ConfigError, match=r"tunnel\.token_env"):
        parse_config(copy.deepcopy(data), {})


def test_server_workers_is_accepted_ignored_and_logged(tmp_path, caplog):
    """An upgraded venue's config may still say it; the bridge must start, and say why not."""
    data = copy.deepcopy(config_data(tmp_path, server={"workers": 2}))
    with caplog.at_level("WARNING", logger="common.settings"):
        parse_config(data, {})
    assert "server.workers no longer does anything" in caplog.text

"""TLS on the relay from a configured certificate, and the bridge trusting a configured CA.

The certificate is self-signed for localhost and 127.0.0.1, made here with the ``openssl``
command (the venv has no ``cryptography``)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest

from bridge.config import parse_config
from common.settings import ConfigError
from relay.config import parse_relay_config
from tests.conftest import config_data
from tests.relay.harness import (
    OPERATOR_TOKEN,
    add_venues,
    relay_config,
    running_relay,
    running_uplink,
    serving,
    tunnel_section,
    wait_until,
)
from tests.relay.test_forwarding import echo_app

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "relay.crt", folder / "relay.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def tls_relay_sections(cert: Path, key: Path) -> dict[str, object]:
    relay = {"operator_token": OPERATOR_TOKEN, "venues_file": "venues.toml", "port": 0}
    return {"relay": {**relay, "tls_cert": str(cert), "tls_key": str(key)}}


async def test_the_relay_serves_tls_and_the_bridge_trusts_the_configured_ca(tmp_path):
    cert, key = self_signed(tmp_path)
    config = relay_config(tmp_path, sections=tls_relay_sections(cert, key))
    token = add_venues(config, "cafe-a")["cafe-a"]
    client_tls = ssl.create_default_context(cafile=str(cert))
    async with (
        running_relay(config) as relay,
        serving(echo_app({})) as local,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_tls)) as http,
    ):
        assert relay.tunnel_url.startswith("wss://127.0.0.1:")
        # Without the CA the bridge's client refuses the self-signed certificate.
        untrusted = tunnel_section(relay.tunnel_url, "cafe-a", token, connect_timeout_s=1.0)
        async with running_uplink(tmp_path / "untrusted", local, untrusted):
            with pytest.raises(AssertionError):
                await wait_until(lambda: relay.relay.registry.get("cafe-a") is not None, 0.8)
        tunnel = tunnel_section(relay.tunnel_url, "cafe-a", token, ca_file=cert)
        async with running_uplink(tmp_path, local, tunnel):
            await wait_until(lambda: relay.relay.registry.get("cafe-a") is not None)
            async with http.post(f"{relay.url}/v/cafe-a/echo", data=b"over tls") as response:
                assert response.status == 200
                assert await response.read() == b"over tls"
                assert response.headers["X-Seen-X-Forwarded-Proto"] == "https"
            # A body too large for the relay's fast path: aiohttp's route, the same header.
            async with http.post(f"{relay.url}/v/cafe-a/echo", data=b"x" * 100_000) as response:
                assert len(await response.read()) == 100_000
                assert response.headers["X-Seen-X-Forwarded-Proto"] == "https"


def test_tls_config_errors_name_the_key(tmp_path):
    cert, key = self_signed(tmp_path)
    relay = {"operator_token": OPERATOR_TOKEN}
    bad = [
        ({"tls_cert": str(cert)}, "relay.tls_key"),
        ({"tls_key": str(key)}, "relay.tls_cert"),
        ({"tls_cert": "missing.crt", "tls_key": str(key)}, "relay.tls_cert"),
        ({"tls_cert": str(key), "tls_key": str(cert)}, "relay.tls_cert"),  # swapped
    ]
    for extra, path in bad:
        with pytest.raises(ConfigError) as info:
            parse_relay_config({"relay": {**relay, **extra}}, {}, tmp_path)
        assert info.value.path == path, info.value
    ok = parse_relay_config(
        {"relay": {**relay, "tls_cert": "relay.crt", "tls_key": "relay.key"}}, {}, tmp_path
    )
    assert ok.tls_cert == cert and ok.ssl_context() is not None
    tunnel = tunnel_section("wss://relay.example.com/tunnel", "cafe-a", "t" * 20)
    data = config_data(tmp_path, tunnel={**tunnel, "ca_file": str(tmp_path / "none.pem")})
    with pytest.raises(ConfigError) as info:
        parse_config(data, {})
    assert info.value.path == "tunnel.ca_file"
    data = config_data(tmp_path, tunnel={**tunnel, "ca_file": str(cert)})
    assert parse_config(data, {}).tunnel.ca_file == cert

"""The relay's config file, venue tokens, ``pos-bridge relay add-venue``, and the epoch file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli.main import main
from bridge.uplink.client import next_epoch
from common.settings import ConfigError
from relay.config import load_relay_config, parse_relay_config
from relay.venues import VenueTokens, add_venue, token_hash

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_relay_config_parses(tmp_path):
    config = load_relay_config(ROOT / "relay.example.toml")
    assert config.venues_file == ROOT / "venues.toml"
    assert config.limits.max_body_bytes == 16 * 1024 * 1024
    assert config.limits.request_timeout_s == 30.0
    assert config.nats is None  # a lone relay needs no NATS


def test_a_nats_section_is_read(tmp_path):
    data = {
        "relay": {"operator_token": "o" * 20},
        "nats": {"urls": ["nats://10.0.0.1:4222", "nats://10.0.0.2:4222"], "subject_prefix": "pb"},
    }
    nats = parse_relay_config(data, {}, tmp_path).nats
    assert nats is not None and nats.urls == ("nats://10.0.0.1:4222", "nats://10.0.0.2:4222")
    assert (nats.subject_prefix, nats.chunk_bytes, nats.window_chunks) == ("pb", 256 * 1024, 8)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"relay": {}}, "relay.operator_token: must be set"),
        ({"relay": {"operator_token": "o" * 20, "port": -1}}, "relay.port:"),
        (
            {"relay": {"operator_token": "o" * 20}, "limits": {"request_timeout_s": 0}},
            "limits.request_timeout_s:",
        ),
        (
            {"relay": {"operator_token": "o" * 20}, "limits": {"max_message_bytes": 10}},
            "limits.max_message_bytes:",
        ),
        ({"relay": {"operator_token": "o" * 20}, "limit": {}}, "limit: unknown key"),
        (
            {"relay": {"operator_token_env": "NOPE"}},
            "relay.operator_token_env: environment variable NOPE is empty",
        ),
        ({"relay": {"operator_token": "o" * 20}, "nats": {}}, "nats.url: is required"),
        (
            {"relay": {"operator_token": "o" * 20}, "nats": {"url": "http://127.0.0.1:4222"}},
            "nats.url: 'http://127.0.0.1:4222': must be nats://",
        ),
        (
            {"relay": {"operator_token": "o" * 20}, "nats": {"urls": []}},
            "nats.urls: must be a non-empty list",
        ),
        (
            {"relay": {"operator_token": "o" * 20}, "nats": {"url": "nats://h:1", "urls": []}},
            "nats.urls: give url or urls, not both",
        ),
        (
            {
                "relay": {"operator_token": "o" * 20},
                "nats": {"url": "nats://h:1", "subject_prefix": "a.*"},
            },
            "nats.subject_prefix:",
        ),
        (
            {
                "relay": {"operator_token": "o" * 20},
                "nats": {"url": "nats://h:1", "chunk_bytes": 1},
            },
            "nats.chunk_bytes:",
        ),
        (
            {"relay": {"operator_token": "o" * 20}, "nats": {"url": "nats://h:1", "ur": 1}},
            "nats.ur: unknown key",
        ),
    ],
)
def test_relay_config_errors_name_the_key_path(tmp_path, data, message):
    with pytest.raises(ConfigError) as caught:
        parse_relay_config(data, {}, tmp_path)
    assert message in str(caught.value)


def test_fast_path_is_accepted_ignored_and_logged(tmp_path, caplog):
    """An upgraded relay's config may still say it; the relay must start, and say why not."""
    data = {"relay": {"operator_token": "o" * 20, "fast_path": False}}
    with caplog.at_level("WARNING", logger="common.settings"):
        parse_relay_config(data, {}, tmp_path)
    assert "relay.fast_path no longer does anything" in caplog.text


def test_tokens_are_stored_hashed_and_checked_per_venue(tmp_path):
    path = tmp_path / "venues.toml"
    token_a = add_venue(path, "cafe-a")
    token_b = add_venue(path, "cafe-b")
    text = path.read_text()
    assert token_a not in text and token_hash(token_a) in text
    tokens = VenueTokens(path)
    assert tokens.check("cafe-a", token_a) and tokens.check("cafe-b", token_b)
    assert not tokens.check("cafe-a", token_b)
    assert not tokens.check("nowhere", token_a)
    with pytest.raises(ConfigError, match="exists already"):
        add_venue(path, "cafe-a")
    with pytest.raises(ConfigError, match="use 1-64"):
        add_venue(path, "no spaces")
    add_venue(path, "cafe-c")  # picked up by the running relay without a restart
    assert "cafe-c" in tokens.names()


def test_add_venue_prints_the_token_once(tmp_path, capsys):
    config = tmp_path / "relay.toml"
    config.write_text('[relay]\noperator_token = "operator-token-0123456789"\n')
    assert main(["relay", "add-venue", "cafe-a", "--config", str(config)]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("pbv_")
    assert VenueTokens(tmp_path / "venues.toml").check("cafe-a", token)
    assert main(["relay", "add-venue", "cafe-a", "--config", str(config)]) == 2
    assert "exists already" in capsys.readouterr().err


def test_the_session_epoch_grows_with_every_connection_and_survives_restarts(tmp_path):
    path = tmp_path / "data" / "tunnel-epoch"
    assert [next_epoch(path) for _ in range(3)] == [1, 2, 3]
    path.write_text("garbage")  # unreadable: restart above any count, from the clock
    assert next_epoch(path, now_ms=1_767_225_600_000) == 1_767_225_600_001
    assert next_epoch(path) == 1_767_225_600_002

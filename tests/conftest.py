"""Shared fixtures: a config on a temporary folder, and the bridge app on a real socket."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bridge.app import create_app
from bridge.config import Config, parse_config

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
LOKE_SECRET = "loke-secret-for-tests-0123456789"
HMAC_SECRET = "loke-hmac-secret-for-tests-012345"
LOCATION = "loc-main"
HMAC_LOCATION = "loc-signed"


def config_data(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """A complete config as TOML would decode it; ``sections`` override whole tables."""
    data: dict[str, Any] = {
        "bridge": {"data_dir": str(tmp_path / "data"), "admin_token": ADMIN_TOKEN},
        "drivers": {"main": {"url": "simulator:", "options": {"tables": 12}}},
        "locations": {
            LOCATION: {
                "driver": "main",
                "pos_location": "1",
                "name": "Main",
                "auth": {"scheme": "bearer", "secrets": [LOKE_SECRET]},
            },
            HMAC_LOCATION: {
                "driver": "main",
                "pos_location": "2",
                "name": "Signed",
                "auth": {"scheme": "hmac-sha256", "secrets": [HMAC_SECRET]},
            },
        },
        "outbox": {"retry_initial_s": 0.05, "retry_max_s": 0.2, "idle_poll_s": 0.05},
        "health": {"probe_interval_s": 0.1},
    }
    for name, value in sections.items():
        data[name] = value
    return data


def make_config(tmp_path: Path, **sections: Any) -> Config:
    return parse_config(copy.deepcopy(config_data(tmp_path, **sections)), {})


ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
async def client(aiohttp_client: ClientFactory, config: Config) -> TestClient:
    """The bridge, built by the composition root, on 127.0.0.1 with a real socket."""
    return await aiohttp_client(create_app(config))


LOKE_AUTH = {"Authorization": f"Bearer {LOKE_SECRET}"}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def loke_url(table: int | str, what: str = "bill", location: str = LOCATION) -> str:
    return f"/loke/v1/locations/{location}/tables/{table}/{what}"


def payment_body(
    bill: dict[str, Any], payment_id: str, amount: int, tip: int = 0, **extra: Any
) -> dict[str, Any]:
    return {
        "paymentId": payment_id,
        "billRef": bill["id"],
        "billVersion": bill["version"],
        "currency": bill["currency"],
        "amount": amount,
        "tip": tip,
        **extra,
    }


async def fetch_bill(client: TestClient, table: int) -> dict[str, Any]:
    response = await client.get(loke_url(table), headers=LOKE_AUTH)
    assert response.status == 200, await response.text()
    return await response.json()


async def set_mode(client: TestClient, mode: str, driver: str = "main") -> None:
    response = await client.post(
        f"/api/drivers/{driver}/simulator", json={"mode": mode}, headers=ADMIN_AUTH
    )
    assert response.status == 200, await response.text()

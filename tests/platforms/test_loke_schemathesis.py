"""Schemathesis against a real bridge, with the bridge's own OpenAPI document.

The bridge runs as a child process (``python -m bridge serve``) on 127.0.0.1 with the
simulated POS; schemathesis loads ``/openapi.json`` from it and, for every operation, sends
requests the document says are valid and requests it says are not, running all its checks
(``--checks all``): no 5xx, every status and body as documented, a schema-valid request never
refused as malformed (``positive_data_acceptance``), a schema-invalid one never accepted
(``negative_data_rejection``). It authenticates as the document says: the LOKE location's
bearer secret for ``lokeBearer``, the admin token for ``adminBearer``.

Bounded and deterministic: 25 examples per operation and phase, ``deterministic = true``,
run as the CLI would be (``schemathesis run --checks all``), in a child process of its own.

What is configured rather than disabled:

- ``{location}``, ``{driver}`` and ``{platform}`` are pinned to the linked location, the
  simulator and ``loke``: any other value is a well-formed request for a location that is not
  linked (401, exactly as for a wrong secret, by design) and would test nothing else.
- ``positive_data_acceptance`` also expects 422: a well-formed payment larger than the
  balance, in the wrong currency or with a tip the bill does not take is refused by a rule
  (documented 422), not because the schema was wrong. 404 (an unknown table or payment),
  409 (a changed or closed bill) and 503 (the POS set offline) are in its defaults.
- ``not_a_server_error`` also expects 503: the simulator's modes (``offline``, ``failing``)
  are a valid technician request, and after one the POS is unreachable: 503 ``pos_offline``,
  documented for the operations that reach the POS (``status_code_conformance`` still holds
  every other operation to its documented statuses).
- A whole float (``12110.0``) is an integer to JSON Schema but never money to the bridge;
  ``schemathesis_hooks.py`` sends such values as integers (why, there).
- The stateful phase is not run: the document has no links between operations.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN, LOCATION, LOKE_SECRET, config_data
from tests.crash.process import HOST, free_port, to_toml

REPO = Path(__file__).resolve().parents[2]

#: The statuses a schema-valid request may get: schemathesis's defaults, and 422 (above).
POSITIVE = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]


def _wait_ready(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the bridge exited at start\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the bridge was not ready\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def bridge_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bridge process with the tests' usual config (simulated POS, two locations)."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    port = free_port()
    data = config_data(tmp, server={"host": HOST, "port": port})
    config = tmp / "config.toml"
    config.write_text(to_toml(data))
    log = tmp / "bridge.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", "--config", str(config)],
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://{HOST}:{port}"
    try:
        _wait_ready(base_url, proc, log)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def schemathesis_config(base_url: str) -> dict[str, Any]:
    return {
        "base-url": base_url,
        "generation": {"mode": "all", "max-examples": 25, "deterministic": True},
        "auth": {
            "openapi": {
                "lokeBearer": {"bearer": LOKE_SECRET},
                "adminBearer": {"bearer": ADMIN_TOKEN},
            },
        },
        "parameters": {"path.location": LOCATION, "path.driver": "main", "path.platform": "loke"},
        "checks": {
            "positive_data_acceptance": {"expected-statuses": POSITIVE},
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]},
        },
    }


def test_the_bridge_keeps_its_openapi_document(bridge_url: str, tmp_path: Path) -> None:
    """``schemathesis run --checks all`` with the config above; it exits 0 only when no
    check failed on any operation."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(to_toml(schemathesis_config(bridge_url)))
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--no-color",
        "--config-file",
        str(config),
        "run",
        f"{bridge_url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
    ]
    hooks = Path(__file__).with_name("schemathesis_hooks.py")
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(hooks)},
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]

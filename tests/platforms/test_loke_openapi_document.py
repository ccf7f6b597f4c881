"""The OpenAPI document is the contract: valid OpenAPI 3.1, committed as served, and complete.

Every route is in it and nothing else is. That what the routes answer validates against it is
in ``test_loke_openapi_responses.py``; that its PaymentRequest schema and the route agree, in
``test_loke_openapi_requests.py``; the shared :class:`Contract` in ``openapi_contract.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from bridge.web.pages import is_page
from tests.platforms.openapi_contract import FORMATS, served

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "loke-pay-at-table.openapi.json"
REGENERATE = ".venv/bin/pos-bridge openapi --write docs/loke-pay-at-table.openapi.json"


# -- the document ------------------------------------------------------------------------------


async def test_the_served_document_is_valid_openapi_3_1(client):
    document = await served(client)
    assert document["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(document).validate()
    assert "date-time" in FORMATS.checkers, "install rfc3339-validator: formats are not checked"


async def test_the_committed_document_is_the_served_one(client):
    document = await served(client)
    message = f"{COMMITTED.relative_to(ROOT)} is out of date with the routes: run `{REGENERATE}`"
    if not COMMITTED.exists():
        pytest.fail(f"{COMMITTED.relative_to(ROOT)} is missing: run `{REGENERATE}`")
    assert json.loads(COMMITTED.read_text()) == document, message


def _shape(path: str) -> str:
    """A path with its parameters' names erased: the route's names are not the contract's."""
    return re.sub(r"\{[^}]+\}", "{}", path)


async def test_every_route_is_documented_and_every_documented_path_is_routed(client):
    document = await served(client)
    routed = {
        (route.method, _shape(route.resource.canonical))
        for route in client.app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and not is_page(route.resource.canonical)  # HTML for a browser, not API
    }
    documented = {
        (method.upper(), _shape(path))
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("get", "put", "post", "delete", "patch", "options", "head", "trace")
    }
    assert routed - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routed == set(), "documented operations with no route"

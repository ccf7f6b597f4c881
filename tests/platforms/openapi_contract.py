"""What the OpenAPI contract tests (``tests/platforms/test_loke_openapi_*.py``) share.

The OpenAPI document is the contract; the tests of it are split by theme: the document and
the routes it covers (``_document``), what the routes really answer validated against it
(``_responses``), and what its PaymentRequest schema accepts against what the route accepts
(``_requests``).

Responses are validated with jsonschema (Draft 2020-12, the dialect of OpenAPI 3.1) against
the served document itself (:func:`served`), registered in a ``referencing.Registry`` so that
its ``$ref``s resolve, with format checking on (``date-time`` needs ``rfc3339-validator``,
asserted in ``_document``): :class:`Contract`. Bills are also validated against LOKE's own
schema (:func:`assert_lokes_bill`). :func:`answer` makes a request and decodes its JSON.
``tests/platforms/__init__.py`` registers this module for pytest's assertion rewriting, so its
asserts report as they would in a test module.
"""

from __future__ import annotations

import json
import weakref
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient
from jsonschema import Draft7Validator, Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bridge.platforms.loke.openapi import lokes_bill_schema

DOC_URI = "urn:pos-bridge:openapi"
FORMATS = Draft202012Validator.FORMAT_CHECKER
LOKE = "/loke/v1/locations/{location}"
TABLES_PATH = f"{LOKE}/tables"
BILL_PATH = f"{LOKE}/tables/{{table}}/bill"
PAY_PATH = f"{LOKE}/tables/{{table}}/payments"
STATUS_PATH = f"{LOKE}/payments/{{paymentId}}"
SIM = "/api/drivers/{driver}/simulator"


# -- the document and its schemas --------------------------------------------------------------


async def served(client: TestClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    return await response.json()


def _pointer(*parts: str) -> str:
    return "#" + quote("".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts), "/~")


class Contract:
    """The served document, with validators for what it says each operation answers."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(DOC_URI, resource)

    def validator(self, pointer: str) -> Draft202012Validator:
        return Draft202012Validator(
            {"$ref": DOC_URI + pointer}, registry=self.registry, format_checker=FORMATS
        )

    def component(self, name: str) -> Draft202012Validator:
        return self.validator(_pointer("components", "schemas", name))

    def check(self, method: str, path: str, response: Any, body: Any) -> None:
        """``body`` (of ``response``) is what the document says ``method path`` answers."""
        operation = self.document["paths"][path][method.lower()]
        status = str(response.status)
        assert status in operation["responses"], (
            f"{method} {path} answered {status} {body}, which the OpenAPI document does not list"
        )
        content = operation["responses"][status].get("content")
        if content is None:
            return
        assert response.content_type in content, (method, path, status, response.content_type)
        schema = _pointer("paths", path, method.lower(), "responses", status, "content")
        schema += _pointer(response.content_type, "schema")[1:]
        errors = list(self.validator(schema).iter_errors(body))
        assert not errors, f"{method} {path} {status}: {[e.message for e in errors][:5]} in {body}"


_CONTRACTS: weakref.WeakKeyDictionary[TestClient, Contract] = weakref.WeakKeyDictionary()


async def contract_of(client: TestClient) -> Contract:
    """The served document's contract, fetched once per bridge (examples share a bridge)."""
    if client not in _CONTRACTS:
        _CONTRACTS[client] = Contract(await served(client))
    return _CONTRACTS[client]


LOKES_BILL = Draft7Validator(lokes_bill_schema(), format_checker=Draft7Validator.FORMAT_CHECKER)


def assert_lokes_bill(bill: dict[str, Any]) -> None:
    errors = [e.message for e in LOKES_BILL.iter_errors(bill)]
    assert not errors, f"not a LOKE TableBills.Bill: {errors[:5]} in {bill}"


async def answer(client: TestClient, method: str, url: str, **kwargs: Any) -> tuple[Any, Any]:
    response = await client.request(method, url, **kwargs)
    text = await response.text()
    assert response.status < 500 or response.status == 503, text
    return response, json.loads(text) if text else None

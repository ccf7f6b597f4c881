"""LOKE's platform API as the bridge uses it: organisations, paged locations, and the two
inferred calls (tables, pay-at-table) of ``docs/loke-linking.md``.

Documented by LOKE (``shared/research/loke.md`` §2): the organisation and location routes,
their JSON, bearer tokens, ``X-Next-Page`` paging with an opaque ``after``. Inferred, exactly
as ``docs/loke-linking.md`` writes them: ``…/tables`` and ``…/pay-at-table``. Every route
takes the sandbox's failure injection (``state.take_fault``) and is recorded in
``state.calls``. What the sandbox invents is listed in ``docs/loke-sandbox.md``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlsplit

from aiohttp import web
from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from bridge.platforms.loke.sandbox.errors import (
    LokeError,
    code_for,
    parse,
    read_json,
    unauthorized,
)
from bridge.platforms.loke.sandbox.keys import CLOCK, STATE, base_url
from bridge.platforms.loke.sandbox.state import (
    AccessGrant,
    Location,
    Organization,
    Published,
    SandboxState,
)

ORG = "/organizations/{organizationId}"
LOC = ORG + "/locations/{locationId}"
#: Plain http:// only to these hosts (a bridge on this machine, in tests and the demo).
LOOPBACK = ("127.0.0.1", "localhost")

routes = web.RouteTableDef()
GrantHandler = Callable[[web.Request, AccessGrant], Awaitable[web.StreamResponse]]
T = TypeVar("T", Organization, Location)


class StrictBody(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="forbid", alias_generator=AliasGenerator(alias=to_camel)
    )


class TableEntry(StrictBody):
    number: int = Field(ge=1, le=999_999)
    name: str = Field(min_length=1, max_length=100)


class TablesBody(StrictBody):
    tables: list[TableEntry] = Field(max_length=5000)

    @field_validator("tables")
    @classmethod
    def _unique(cls, tables: list[TableEntry]) -> list[TableEntry]:
        seen: set[int] = set()
        for table in tables:
            if table.number in seen:
                raise ValueError(f"table numbers must be unique: {table.number} is given twice")
            seen.add(table.number)
        return tables


class PayAtTableAuth(StrictBody):
    scheme: Literal["bearer", "hmac-sha256"]
    secret: str = Field(min_length=16, max_length=512)


class PayAtTableBody(StrictBody):
    fetch_bill_url: str = Field(max_length=2048)
    add_payment_url: str = Field(max_length=2048)
    auth: PayAtTableAuth

    @field_validator("fetch_bill_url", "add_payment_url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        secure = parts.scheme == "https" and bool(parts.hostname)
        local = parts.scheme == "http" and parts.hostname in LOOPBACK
        if not (secure or local):
            raise ValueError("must be an https:// URL (http:// only to 127.0.0.1)")
        if "{tableNumber}" not in url:
            raise ValueError("must contain {tableNumber}")
        return url


def platform_route(handler: GrantHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Record the call, apply any injected fault, then require a live bearer token."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        state.calls.append(f"{request.method} {request.path}")
        fault = state.take_fault(request.path)
        if fault is not None:
            if fault.delay_s > 0:
                await asyncio.sleep(fault.delay_s)
            if fault.status:
                raise LokeError(fault.status, code_for(fault.status), "injected by the sandbox")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        grant = None
        if scheme.lower() == "bearer" and token.strip():
            grant = state.grant_for(token.strip(), request.app[CLOCK]())
        if grant is None:
            raise unauthorized()
        return await handler(request, grant)

    return wrapped


def _organization(request: web.Request, grant: AccessGrant) -> Organization:
    org_id = request.match_info["organizationId"]
    organization = request.app[STATE].organizations.get(org_id)
    if organization is None:
        raise LokeError(404, "not_found", f"no organization {org_id}")
    if org_id not in grant.organizations:
        raise LokeError(403, "forbidden", f"this token does not reach organization {org_id}")
    return organization


def _location(request: web.Request, grant: AccessGrant) -> tuple[Organization, Location]:
    organization = _organization(request, grant)
    loc_id = request.match_info["locationId"]
    for location in organization.locations:
        if location.id == loc_id:
            return organization, location
    raise LokeError(404, "not_found", f"no location {loc_id} in organization {organization.id}")


def organization_json(organization: Organization) -> dict[str, Any]:
    return {
        "id": organization.id,
        "name": organization.name,
        "currency": organization.currency,
        "timezone": organization.timezone,
        "created": organization.created,
    }


def location_json(location: Location) -> dict[str, Any]:
    return {"id": location.id, "name": location.name, "timezone": location.timezone}


def _cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def _after(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("v1:"):
        raise LokeError(400, "validation", "after is not a cursor this API gave", field="after")
    return text[3:]


def _paged(
    request: web.Request, items: Sequence[T], render: Callable[[T], dict[str, Any]]
) -> web.Response:
    """One page of ``items`` after the request's ``after``; ``X-Next-Page`` is the full URL
    of the next page, absent on the last."""
    state: SandboxState = request.app[STATE]
    start = 0
    if "after" in request.query:
        last = _after(request.query["after"])
        ids = [item.id for item in items]
        if last not in ids:
            raise LokeError(400, "validation", "after is not a cursor this API gave", field="after")
        start = ids.index(last) + 1
    page = list(items[start : start + state.page_size])
    headers = {}
    if start + len(page) < len(items):
        headers["X-Next-Page"] = (
            f"{base_url(request)}{request.path}?after={quote(_cursor(page[-1].id), safe='')}"
        )
    return web.json_response([render(item) for item in page], headers=headers)


@routes.get("/organizations")
@platform_route
async def list_organizations(request: web.Request, grant: AccessGrant) -> web.StreamResponse:
    state = request.app[STATE]
    reached = [o for o in state.organizations.values() if o.id in grant.organizations]
    return _paged(request, reached, organization_json)


@routes.get(ORG)
@platform_route
async def get_organization(request: web.Request, grant: AccessGrant) -> web.StreamResponse:
    return web.json_response(organization_json(_organization(request, grant)))


@routes.get(ORG + "/locations")
@platform_route
async def list_locations(request: web.Request, grant: AccessGrant) -> web.StreamResponse:
    return _paged(request, _organization(request, grant).locations, location_json)


@routes.get(LOC)
@platform_route
async def get_location(request: web.Request, grant: AccessGrant) -> web.StreamResponse:
    return web.json_response(location_json(_location(request, grant)[1]))


def _published(request: web.Request, grant: AccessGrant) -> tuple[tuple[str, str], Published]:
    organization, location = _location(request, grant)
    key = (organization.id, location.id)
    return key, request.app[STATE].published.get(key) or Published()


def _keep(state: SandboxState, key: tuple[str, str], published: Published) -> None:
    if published.tables is None and published.pay_at_table is None:
        state.published.pop(key, None)
    else:
        state.published[key] = published


@routes.put(LOC + "/tables")
@platform_route
async def put_tables(request: web.Request, grant: AccessGrant) -> web.StreamResponse:
    key, published = _published(request, grant)
    body: TablesBody = parse(TablesBody, await read_json(request))
    published.tables = [t.model_dump() for t in body.tables]
    _keep(request.app[STATE], key, published)
    return web.Response(status=204)


@routes.get(LOC + "/tables")
@platform_route
async def get_tables(request: web.Request, grant: AccessGrant) -> web.StreamResponse:
    _, published = _published(request, grant)
    if published.tables is None:
        raise LokeError(404, "not_found", "no tables published for this location")
    return web.json_response({"tables": published.tables})


@routes.delete(LOC + "/tables")
@platform_route
async def delete_tables(request: web.Request, grant: AccessGrant) -> web.StreamResponse:
    key, published = _published(request, grant)
    published.tables = None
    _keep(request.app[STATE], key, published)
    return web.Response(status=204)


@routes.put(LOC + "/pay-at-table")
@platform_route
async def put_pay_at_table(request: web.Request, grant: AccessGrant) -> web.StreamResponse:
    key, published = _published(request, grant)
    body: PayAtTableBody = parse(PayAtTableBody, await read_json(request))
    published.pay_at_table = body.model_dump(by_alias=True)
    _keep(request.app[STATE], key, published)
    return web.Response(status=204)


def pay_at_table_view(registration: dict[str, Any]) -> dict[str, Any]:
    """A registration as the platform shows it back: the secret never leaves again."""
    auth = registration["auth"]
    return {
        "fetchBillUrl": registration["fetchBillUrl"],
        "addPaymentUrl": registration["addPaymentUrl"],
        "auth": {"scheme": auth["scheme"], "secretLength": len(auth["secret"])},
    }


@routes.get(LOC + "/pay-at-table")
@platform_route
async def get_pay_at_table(request: web.Request, grant: AccessGrant) -> web.StreamResponse:
    _, published = _published(request, grant)
    if published.pay_at_table is None:
        raise LokeError(404, "not_found", "no pay-at-table URLs registered for this location")
    return web.json_response(pay_at_table_view(published.pay_at_table))


@routes.delete(LOC + "/pay-at-table")
@platform_route
async def delete_pay_at_table(request: web.Request, grant: AccessGrant) -> web.StreamResponse:
    key, published = _published(request, grant)
    published.pay_at_table = None
    _keep(request.app[STATE], key, published)
    return web.Response(status=204)

"""The sandbox's refusals in LOKE's error style, so the bridge's client meets what LOKE sends.

LOKE's errors (``LOKE/errors``, ``@loke/http-rpc``; ``shared/research/loke.md`` §6) are
``{"message": …, "code": …, "type": "<prefix>/<code>", …extra}`` with a 4xx/5xx status. The
``type`` prefix of the documented validation example is used for every code (invented for
the others). One middleware turns every failure of a sandbox route into that shape: never a
traceback, never aiohttp's text pages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

logger = logging.getLogger(__name__)

TYPE_PREFIX = "https://errors.loke.global/@loke/http-rpc/"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal",
    502: "bad_gateway",
    503: "unavailable",
    504: "timeout",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LokeError(Exception):
    """A refusal: ``status`` and LOKE's ``code``; ``extra`` joins the body's top level."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def code_for(status: int) -> str:
    return _HTTP_CODES.get(status, "internal" if status >= 500 else "bad_request")


def error_body(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, "code": code, "type": TYPE_PREFIX + code, **extra}


def error_response(error: LokeError) -> web.Response:
    body = error_body(error.status, error.code, error.message, **error.extra)
    headers = {"WWW-Authenticate": 'Bearer realm="loke"'} if error.status == 401 else None
    return web.json_response(body, status=error.status, headers=headers)


def unauthorized() -> LokeError:
    return LokeError(401, "unauthorized", "a valid access token is required")


def validation_error(exc: ValidationError, prefix: str = "") -> LokeError:
    """pydantic's first problem, named by its field path (``tables.0.number``) and by LOKE's
    ``instancePath`` (``/tables/0/number``)."""
    first = exc.errors(include_url=False)[0]
    parts = [str(p) for p in first["loc"]]
    if prefix:
        parts.insert(0, prefix)
    field = ".".join(parts) or "body"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "is not a field of this request"
    elif first["type"] in ("model_type", "model_attributes_type", "dict_type"):
        message = "must be a JSON object"
    return LokeError(
        400,
        "validation",
        f"{field} {message[0].lower()}{message[1:]}",
        field=field,
        instancePath="/" + "/".join(parts),
    )


async def read_json(request: web.Request) -> Any:
    """The body as JSON, or a 400 ``validation`` naming ``body``."""
    raw = await request.read()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise LokeError(
            400, "validation", "body must be JSON", field="body", instancePath=""
        ) from None


def parse(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


@web.middleware
async def loke_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except LokeError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = LokeError(exc.status, code_for(exc.status), exc.reason)
        response = error_response(error)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        logger.exception("sandbox: unhandled error on %s %s", request.method, request.path)
        return error_response(LokeError(500, "internal", "the sandbox failed; it was logged"))

"""One middleware turns every failure into the bridge's typed JSON error.

:class:`ApiError` keeps its status and code; aiohttp's own HTTP errors (404 route, 405, 413)
get a code of their own; anything else is a bug: logged with its trace, answered as a plain
500 ``internal_error`` without one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from common.errors import INTERNAL_ERROR, ApiError
from common.responses import json_response

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(error: ApiError) -> web.Response:
    return json_response(error.body(), status=error.status, headers=error.headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc)
    except web.RequestPayloadError:  # the body's framing or Content-Encoding is broken
        body = {"error": "invalid_body", "message": "the body cannot be read", "details": {}}
        return json_response(body, status=400)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason
        if exc.status == 413:
            message = "the request body is too large"
        body = {"error": code, "message": message, "details": {}}
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return json_response(body, status=exc.status, headers=headers)
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return json_response(INTERNAL_ERROR, status=500)

"""Errors a caller of the bridge's HTTP API can receive, as one tree.

Every :class:`ApiError` becomes ``{"error": code, "message": …, "details": {…}}`` with its
``status`` (``common/middleware.py``); nothing else reaches a caller, and a stack trace
never does::

    ApiError
    ├── BadRequestError (400)        body or parameters malformed; details name the field
    ├── UnauthorizedError (401)      credentials missing or wrong
    ├── NotFoundError (404)          unknown location, table, payment; no open bill
    ├── MethodNotAllowedError (405)
    ├── ConflictError (409)          bill closed or changed, in progress, offline limit
    ├── PayloadTooLargeError (413)
    ├── UnsupportedMediaTypeError (415)
    ├── UnprocessableError (422)     well-formed but breaks a rule: amount, currency, tip, key reuse
    ├── BadGatewayError (502)        the relay: the venue's bridge failed the exchange
    ├── ServiceUnavailableError (503) POS unreachable, venue offline; carries Retry-After
    └── GatewayTimeoutError (504)    the relay: the venue did not answer within its deadline
"""

from __future__ import annotations

from typing import Any, ClassVar

#: The body of every answer to a bridge bug: logged with its trace, never sent one.
INTERNAL_ERROR: dict[str, Any] = {
    "error": "internal_error",
    "message": "the bridge failed; it was logged",
    "details": {},
}


class BridgeError(Exception):
    """Root of the bridge's own errors."""


class ApiError(BridgeError):
    status: ClassVar[int] = 400

    def __init__(
        self,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "details": self.details}

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class BadRequestError(ApiError):
    status = 400


class UnauthorizedError(ApiError):
    status = 401


class NotFoundError(ApiError):
    status = 404


class MethodNotAllowedError(ApiError):
    status = 405


class ConflictError(ApiError):
    status = 409


class PayloadTooLargeError(ApiError):
    status = 413


class UnsupportedMediaTypeError(ApiError):
    status = 415


class UnprocessableError(ApiError):
    status = 422


class TooManyRequestsError(ApiError):
    status = 429


class BadGatewayError(ApiError):
    status = 502


class ServiceUnavailableError(ApiError):
    status = 503


class GatewayTimeoutError(ApiError):
    status = 504


#: HTTP meaning of each payment rule (``bridge.core.rules``, ``bridge.core.limits``).
RULE_STATUS: dict[str, type[ApiError]] = {
    "bill_closed": ConflictError,
    "bill_changed": ConflictError,
    "offline_limit": ConflictError,
    "amount_exceeds_balance": UnprocessableError,
    "currency_mismatch": UnprocessableError,
    "tips_not_allowed": UnprocessableError,
    "bill_not_found": ConflictError,
}


def unknown_table(table: int) -> NotFoundError:
    return NotFoundError("unknown_table", f"there is no table {table} here", {"table": table})


def pos_offline(retry_after_s: int, detail: str = "") -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "pos_offline",
        "the point-of-sale cannot be reached; try again shortly",
        {"retryAfterSeconds": retry_after_s, **({"detail": detail} if detail else {})},
        {"Retry-After": str(retry_after_s)},
    )

"""Strict JSON decoding of request bodies, shared by every route that takes one. Pure."""

from __future__ import annotations

import json
from typing import Any

from bridge.errors import BadRequestError


def decode_json(raw: bytes) -> Any:
    """Strict JSON: no NaN or Infinity, no key given twice (one would be silently lost)."""
    try:
        return json.loads(raw, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequestError(
            "invalid_json", "the body is not valid JSON", {"position": getattr(exc, "pos", None)}
        ) from exc
    except _DuplicateKeyError as exc:
        raise BadRequestError(
            "duplicate_field", f"{exc} is given twice", {"field": str(exc)}
        ) from exc
    except ValueError as exc:  # an integer longer than Python converts (sys.int_info)
        raise BadRequestError("invalid_json", "a number in the body is too long", {}) from exc
    except RecursionError as exc:
        raise BadRequestError("invalid_json", "the body is nested too deeply", {}) from exc


class _DuplicateKeyError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key[:64])
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)

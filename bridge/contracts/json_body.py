"""Strict JSON decoding of request bodies, shared by every route that takes one. Pure."""

from __future__ import annotations

import json
import re
from typing import Any

from common.errors import BadRequestError

#: A ``\\uD800``–``\\uDFFF`` escape: the only way a lone UTF-16 surrogate gets into a string.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def decode_json(raw: bytes) -> Any:
    """Strict JSON: no NaN or Infinity, no key given twice (one would be silently lost), no
    lone surrogate (text that is not Unicode: it cannot be stored, hashed or sent on)."""
    try:
        value = json.loads(raw, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
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
    if _SURROGATE_ESCAPE.search(raw) and _holds_lone_surrogate(value):
        raise BadRequestError(
            "invalid_json", "a string in the body holds a lone UTF-16 surrogate escape", {}
        )
    return value


def _holds_lone_surrogate(value: Any) -> bool:
    """Any string, key or value, at any depth, that UTF-8 cannot encode. Iterative: the
    parser already bounded the depth, but a loop needs no stack."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode()
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class _DuplicateKeyError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:  # named in the answer: a lone surrogate shown as its escape
            raise _DuplicateKeyError(key[:64].encode("utf-8", "backslashreplace").decode())
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)

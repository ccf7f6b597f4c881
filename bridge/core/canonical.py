"""Canonical JSON bytes, the input of every digest the bridge hands out. Pure.

Why it matters: a request fingerprint is stored with each idempotency record and a bill
version is quoted back by platforms, so the bytes these digests hash must never change for
the same value, across releases. They were defined by the standard library's
``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=...)``.

Why orjson first: it writes the same bytes several times faster (two digests per payment
made ``json``'s encoder a visible share of a payment's CPU, bench/). For the values digested
here (dicts with string keys, lists, strings, integers, booleans, null) the output is the
same byte for byte: same separators, same escapes (``\\b \\t \\n \\f \\r``, ``\\u00XX`` for
other controls), keys in code point order; ``tests/core/test_canonical.py`` checks it on
generated values. Where the two could differ, the standard library decides: orjson refuses
the value (an integer past 64 bits, a non-string key, a lone surrogate), or ``ensure_ascii``
asks for ``\\uXXXX`` escapes and the output holds a character json escapes that way and
orjson does not (anything past ASCII, and DEL: found by the test). Floats are not digested (amounts
are integer minor units and request bodies holding one are refused before); their text
differs between the two, so a float would make the bytes depend on the encoder.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def canonical_json(value: Any, *, ensure_ascii: bool) -> bytes:
    """``value`` as sorted-key, compact JSON, exactly as ``json.dumps`` writes it (UTF-8)."""
    try:
        raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError: see the module docstring
        raw = None
    if raw is None or (ensure_ascii and (not raw.isascii() or b"\x7f" in raw)):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii)
        return text.encode()
    return raw

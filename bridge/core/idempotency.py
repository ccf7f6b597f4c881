"""Fingerprints of requests, so a retried payment can be told from a reused payment id."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from bridge.core.canonical import canonical_json


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The answer given to a payment, kept so a retry of the same request gets it again."""

    status: int
    body: dict[str, Any]


def request_fingerprint(scope: dict[str, Any]) -> str:
    """SHA-256 of the request's meaning, not its bytes.

    Keys are sorted and whitespace ignored, so a platform that re-serialises the same body
    gets the same fingerprint; ``scope`` should include the route's path parameters.
    """
    return hashlib.sha256(canonical_json(scope, ensure_ascii=False)).hexdigest()

"""Simulated guests: fetch a table's bill through the URL an addon registered with LOKE and
pay it in splits, racing each other, retrying on timeouts as a payment platform must.

What each guest sends is the contract of ``docs/loke-pay-at-table.md`` (the bodies of
``bridge/platforms/loke/bodies.py``) with the credentials the addon registered: ``bearer``
sends ``Authorization: Bearer <secret>``, ``hmac-sha256`` sends ``X-Event-Signature:
sha256=<hex HMAC-SHA256 of the raw body>`` (an empty body for the GET), exactly what
``bridge/web/auth.py`` checks. A retry of a timed-out, 5xx or ``409 in_progress`` attempt
sends the same bytes with the same payment id, so the addon's idempotency decides; the
number of retries and the backoff are bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

#: Backoff between attempts of one payment: doubled from the first, capped (a ``Retry-After``
#: is honoured up to the cap).
BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 0.5


@dataclass(frozen=True)
class Registration:
    """What an addon registered for one location (``PUT …/pay-at-table``)."""

    fetch_bill_url: str
    add_payment_url: str
    scheme: str
    secret: str = field(repr=False)

    @classmethod
    def from_published(cls, data: dict[str, Any]) -> Registration:
        auth = data["auth"]
        return cls(data["fetchBillUrl"], data["addPaymentUrl"], auth["scheme"], auth["secret"])

    def headers(self, body: bytes) -> dict[str, str]:
        if self.scheme == "bearer":
            return {"Authorization": f"Bearer {self.secret}"}
        digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return {"X-Event-Signature": f"sha256={digest}"}


@dataclass
class SplitResult:
    """One guest's payment: the last answer (status 0: no answer, ``body`` says why) and
    the status of every attempt, in order."""

    payment_id: str
    amount: int
    status: int
    body: Any
    history: list[int]

    @property
    def attempts(self) -> int:
        return len(self.history)

    def as_json(self) -> dict[str, Any]:
        return {
            "paymentId": self.payment_id,
            "amount": self.amount,
            "status": self.status,
            "body": self.body,
            "attempts": self.history,
        }


@dataclass
class GuestsResult:
    """The bill as fetched, each split's result, and the bill fetched again afterwards (a
    closed bill answers ``404 no_open_bill``)."""

    fetch_status: int
    bill: Any
    splits: list[SplitResult]
    after_status: int = 0
    bill_after: Any = None

    def as_json(self) -> dict[str, Any]:
        return {
            "fetch": {"status": self.fetch_status, "body": self.bill},
            "splits": [s.as_json() for s in self.splits],
            "after": {"status": self.after_status, "body": self.bill_after},
        }


def split_amounts(balance: int, splits: int) -> list[int]:
    """``balance`` in ``splits`` integer parts, the remainder on the last; never a part of 0
    (a balance smaller than ``splits`` is paid in fewer parts)."""
    if splits < 1:
        raise ValueError("splits must be at least 1")
    parts = max(1, min(splits, balance))
    share = balance // parts
    return [share] * (parts - 1) + [balance - share * (parts - 1)]


def _url(template: str, table: int) -> str:
    return template.replace("{tableNumber}", str(table))


async def _answer(response: aiohttp.ClientResponse) -> Any:
    text = await response.text()
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


async def fetch_bill(
    session: aiohttp.ClientSession, registration: Registration, table: int, timeout_s: float
) -> tuple[int, Any]:
    """``(status, body)`` of the fetch-bill URL; status 0 when it did not answer."""
    try:
        async with session.get(
            _url(registration.fetch_bill_url, table),
            headers=registration.headers(b""),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            return response.status, await _answer(response)
    except (TimeoutError, aiohttp.ClientError) as exc:
        return 0, {"error": type(exc).__name__}


def _retryable(status: int, body: Any) -> bool:
    if status == 0 or status >= 500:
        return True
    return status == 409 and isinstance(body, dict) and body.get("error") == "in_progress"


async def _pay_one(
    session: aiohttp.ClientSession,
    registration: Registration,
    table: int,
    payment: dict[str, Any],
    timeout_s: float,
    retries: int,
) -> SplitResult:
    raw = json.dumps(payment, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", **registration.headers(raw)}
    url = _url(registration.add_payment_url, table)
    status, body, backoff = 0, None, BACKOFF_FIRST_S
    history: list[int] = []
    while len(history) <= retries:
        retry_after = backoff
        try:
            async with session.post(
                url, data=raw, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                status, body = response.status, await _answer(response)
                retry_after = _seconds(response.headers.get("Retry-After"), backoff)
        except (TimeoutError, aiohttp.ClientError) as exc:
            status, body = 0, {"error": type(exc).__name__}
        history.append(status)
        if not _retryable(status, body) or len(history) > retries:
            break
        await asyncio.sleep(min(retry_after, BACKOFF_MAX_S))
        backoff = min(backoff * 2, BACKOFF_MAX_S)
    return SplitResult(payment["paymentId"], payment["amount"], status, body, history)


def _seconds(header: str | None, default: float) -> float:
    try:
        return max(0.0, float(header)) if header else default
    except ValueError:
        return default


async def pay_bill(
    session: aiohttp.ClientSession,
    registration: Registration,
    table: int,
    splits: int,
    *,
    tip_minor: int = 0,
    payment_ids: Sequence[str] | None = None,
    timeout_s: float = 10.0,
    retries: int = 3,
    fetch_timeout_s: float | None = None,
) -> GuestsResult:
    """Fetch ``table``'s open bill and pay its balance in ``splits`` concurrent payments.

    ``payment_ids``: one per split (default: fresh ids); ``tip_minor``: each guest's tip (0
    on a bill that allows none); ``timeout_s``: one payment attempt; ``retries``: further
    attempts per payment; ``fetch_timeout_s``: the fetches (default ``timeout_s``).
    """
    fetch_timeout = fetch_timeout_s if fetch_timeout_s is not None else timeout_s
    status, bill = await fetch_bill(session, registration, table, fetch_timeout)
    if status != 200 or not isinstance(bill, dict):
        return GuestsResult(status, bill, [])
    amounts = split_amounts(int(bill["balance"]), splits)
    ids = list(payment_ids) if payment_ids is not None else []
    ids += [f"sbx_{uuid.uuid4().hex}" for _ in range(len(amounts) - len(ids))]
    tip = tip_minor if bill.get("tipsAllowed", True) else 0
    payments = [
        {
            "paymentId": ids[i],
            "billRef": bill["id"],
            "billVersion": bill["version"],
            "currency": bill["currency"],
            "amount": amount,
            "tip": tip,
            "name": f"LOKE Pay at Table - Guest {i + 1}",
        }
        for i, amount in enumerate(amounts)
    ]
    results = await asyncio.gather(
        *(_pay_one(session, registration, table, p, timeout_s, retries) for p in payments)
    )
    after_status, after = await fetch_bill(session, registration, table, fetch_timeout)
    return GuestsResult(status, bill, list(results), after_status, after)

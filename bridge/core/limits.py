"""Merchant limits on what the bridge may accept while the POS is unreachable.

A payment accepted offline is a promise made without the POS's word; the merchant bounds that
risk the way card terminals bound store-and-forward (per payment, total per currency, count,
age). Pure: the store supplies :class:`QueueExposure`, the caller supplies ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

from bridge.core.money import Money
from bridge.core.rules import PaymentRuleError


class OfflineLimitError(PaymentRuleError):
    code: ClassVar[str] = "offline_limit"


@dataclass(frozen=True, slots=True)
class OfflineLimits:
    """``None`` means "no limit". Amounts are minor units, per currency where keyed."""

    max_payment_minor: int | None = None
    max_total_minor: dict[str, int] = field(default_factory=dict)
    max_count: int | None = None
    max_age: timedelta | None = None


@dataclass(frozen=True, slots=True)
class QueueExposure:
    """What is already queued for a POS that has not confirmed it."""

    count: int
    total_minor: dict[str, int]
    oldest_queued_at: datetime | None


def check_offline_limits(
    limits: OfflineLimits, exposure: QueueExposure, charged: Money, now: datetime
) -> None:
    """Raise :class:`OfflineLimitError` naming the first limit ``charged`` would break."""
    if limits.max_payment_minor is not None and charged.minor > limits.max_payment_minor:
        raise OfflineLimitError(
            "payment is above the offline per-payment limit",
            limit="max_payment",
            max=limits.max_payment_minor,
        )
    cap = limits.max_total_minor.get(charged.currency)
    queued = exposure.total_minor.get(charged.currency, 0)
    if cap is not None and queued + charged.minor > cap:
        raise OfflineLimitError(
            "total queued while offline would pass the merchant's limit",
            limit="max_total",
            currency=charged.currency,
            max=cap,
            queued=queued,
        )
    if limits.max_count is not None and exposure.count + 1 > limits.max_count:
        raise OfflineLimitError(
            "too many payments queued while offline", limit="max_count", max=limits.max_count
        )
    if (
        limits.max_age is not None
        and exposure.oldest_queued_at is not None
        and now - exposure.oldest_queued_at > limits.max_age
    ):
        raise OfflineLimitError(
            "the POS has been unreachable longer than the merchant allows",
            limit="max_age",
            max_seconds=int(limits.max_age.total_seconds()),
        )

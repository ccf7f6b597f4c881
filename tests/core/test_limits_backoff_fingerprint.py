from datetime import timedelta

import pytest

from bridge.core.backoff import full_jitter_delay, retry_delay
from bridge.core.idempotency import request_fingerprint
from bridge.core.limits import OfflineLimitError, OfflineLimits, QueueExposure, check_offline_limits
from bridge.core.money import Money
from tests.core.factories import T0, later

NOTHING = QueueExposure(0, {}, None)


def limit_hit(limits, exposure, amount, now=T0):
    with pytest.raises(OfflineLimitError) as caught:
        check_offline_limits(limits, exposure, Money(amount, "AUD"), now)
    return caught.value.details["limit"]


def test_no_limits_accept_anything():
    check_offline_limits(
        OfflineLimits(), QueueExposure(10**6, {"AUD": 10**9}, T0), Money(10**9, "AUD"), later(10**7)
    )


def test_each_limit_names_itself():
    assert limit_hit(OfflineLimits(max_payment_minor=100), NOTHING, 101) == "max_payment"
    assert (
        limit_hit(
            OfflineLimits(max_total_minor={"AUD": 1000}), QueueExposure(1, {"AUD": 950}, T0), 51
        )
        == "max_total"
    )
    assert limit_hit(OfflineLimits(max_count=3), QueueExposure(3, {}, T0), 1) == "max_count"
    assert (
        limit_hit(
            OfflineLimits(max_age=timedelta(hours=1)), QueueExposure(1, {}, T0), 1, now=later(3601)
        )
        == "max_age"
    )


def test_limits_at_the_edge_accept():
    limits = OfflineLimits(
        max_payment_minor=100,
        max_total_minor={"AUD": 1000},
        max_count=3,
        max_age=timedelta(hours=1),
    )
    check_offline_limits(limits, QueueExposure(2, {"AUD": 900}, T0), Money(100, "AUD"), later(3600))


def test_total_limit_is_per_currency():
    limits = OfflineLimits(max_total_minor={"NZD": 10})
    check_offline_limits(limits, QueueExposure(1, {"NZD": 10}, T0), Money(500, "AUD"), T0)


def test_retry_delay_grows_to_its_cap_and_stays_within_the_window():
    assert retry_delay(1, 1.0, 30.0, 0.0) == 0.5
    assert retry_delay(1, 1.0, 30.0, 0.999) < 1.0
    assert retry_delay(4, 1.0, 30.0, 0.0) == 4.0
    assert retry_delay(50, 1.0, 30.0, 0.5) == pytest.approx(22.5)


def test_full_jitter_spans_the_whole_window_up_to_the_cap():
    assert full_jitter_delay(1, 0.5, 30.0, 0.0) == 0.0
    assert full_jitter_delay(1, 0.5, 30.0, 0.999) < 0.5
    assert full_jitter_delay(3, 0.5, 30.0, 1.0) == 2.0
    assert full_jitter_delay(60, 0.5, 30.0, 0.999) < 30.0


def test_fingerprint_ignores_key_order_but_not_values():
    a = request_fingerprint({"a": 1, "b": [1, 2]})
    assert a == request_fingerprint({"b": [1, 2], "a": 1})
    assert a != request_fingerprint({"a": 2, "b": [1, 2]})

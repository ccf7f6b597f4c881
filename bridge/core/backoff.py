"""Retry delays: capped exponential with full jitter (the jitter draw is an argument)."""

from __future__ import annotations


def retry_delay(attempt: int, initial_s: float, cap_s: float, draw: float) -> float:
    """Delay before retry number ``attempt`` (1-based).

    ``draw`` in [0, 1) spreads retries of many payments over the window, so a POS that
    comes back is not hit by all of them at once; the window never drops below half.
    """
    window = min(cap_s, initial_s * 2.0 ** max(attempt - 1, 0))
    return window / 2 + (window / 2) * draw


def full_jitter_delay(attempt: int, initial_s: float, cap_s: float, draw: float) -> float:
    """Delay before reconnect number ``attempt`` (1-based): "full jitter", a uniform draw
    over the whole capped exponential window, so many bridges that lost one relay at the
    same moment spread their reconnects over the window instead of arriving together."""
    return min(cap_s, initial_s * 2.0 ** max(attempt - 1, 0)) * draw

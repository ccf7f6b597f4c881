"""Rate limits on the relay: a token bucket per venue for the public URLs, and a refusal
counter per source address for tunnel HELLOs.

- **Requests** (``/v/{venue}/…``): each venue has a bucket holding up to ``burst`` tokens,
  refilled at ``requests_per_s``; a request takes one, and with none left it gets 429
  ``rate_limited`` with ``Retry-After`` (the whole seconds until a token is back). One busy
  venue cannot starve the relay for the others.
- **Bad HELLOs** (a wrong token, an unknown venue): each source address may fail
  ``hello_failures`` times within ``hello_window_s``; past that its HELLOs get
  ``CLOSE(RATE_LIMITED)`` at once, before any token is looked at, until the window has slid
  past its failures. A brute-forcer is thus held to a handful of guesses a minute (the tokens
  have 256 bits: this is about log noise and CPU, not about guessing).

Both are in memory and per relay process. Clocks are ``time.monotonic``, passed in for tests.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from common.errors import TooManyRequestsError

#: Entries kept at most, each; the oldest idle ones are dropped past it (bounded memory).
MAX_TRACKED = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class VenueRateLimiter:
    """A token bucket per venue: ``rate`` tokens a second, at most ``burst`` held."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, venue: str) -> float:
        """Take a token for ``venue``: 0.0 when granted, else the seconds until one is back."""
        now = self._clock()
        bucket = self._buckets.get(venue)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED:
                self._buckets.pop(next(iter(self._buckets)))
            bucket = self._buckets[venue] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def check(self, venue: str) -> None:
        """Raises:
        TooManyRequestsError: 429 ``rate_limited``, with ``Retry-After``."""
        wait_s = self.take(venue)
        if wait_s > 0:
            retry_after = max(1, math.ceil(wait_s))
            raise TooManyRequestsError(
                "rate_limited",
                f"too many requests for venue {venue!r}; slow down",
                {
                    "venue": venue,
                    "retryAfterSeconds": retry_after,
                    "requestsPerSecond": self.rate,
                    "burst": self.burst,
                },
                {"Retry-After": str(retry_after)},
            )


class HelloGuard:
    """Counts refused HELLOs per source address over a sliding window."""

    def __init__(
        self, failures: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures = failures
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}

    def _recent(self, source: str) -> deque[float] | None:
        times = self._seen.get(source)
        if times is None:
            return None
        cutoff = self._clock() - self.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._seen[source]
            return None
        return times

    def blocked(self, source: str) -> bool:
        """Whether ``source`` has used up its failures in the window."""
        times = self._recent(source)
        return times is not None and len(times) >= self.failures

    def failed(self, source: str) -> None:
        times = self._recent(source)
        if times is None:
            if len(self._seen) >= MAX_TRACKED:
                self._seen.pop(next(iter(self._seen)))
            times = self._seen[source] = deque(maxlen=self.failures)
        times.append(self._clock())

"""What a driver may raise. The tree says what the caller must do::

    DriverError
    ├── PosUnavailableError        transient: retry later, with backoff
    │   ├── PosOfflineError        the request never reached the POS: nothing happened
    │   └── PosTimeoutError        no answer: it may or may not have happened; reconcile
    ├── PaymentRefusedError        permanent: the POS will never take this payment
    ├── UnknownTableError          the table number is not a table at this location
    └── DriverConfigError          the driver's URL or options are wrong (names the key)

Drivers turn their transport's exceptions into these with ``raise … from exc``.
"""

from __future__ import annotations


class DriverError(Exception):
    """Base of every driver error."""


class PosUnavailableError(DriverError):
    """The POS could not be reached or did not answer; try again later."""


class PosOfflineError(PosUnavailableError):
    """The POS is unreachable and the request was not delivered."""


class PosTimeoutError(PosUnavailableError, TimeoutError):
    """The POS did not answer in time; the request may have taken effect."""


class PaymentRefusedError(DriverError):
    """The POS refuses the payment for good, e.g. the bill was closed meanwhile.

    ``reason`` is a stable code (``bill_closed``, ``bill_not_found``,
    ``amount_exceeds_balance``, ``currency_mismatch``, ``tips_not_allowed``).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class UnknownTableError(DriverError):
    def __init__(self, location: str, table: int) -> None:
        super().__init__(f"no table {table} at location {location!r}")
        self.location = location
        self.table = table


class DriverConfigError(DriverError, ValueError):
    """A driver's configuration is wrong; ``key`` is relative to the driver's table."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message

"""Money as integer minor units with a currency.

Floats never represent money here: a float that reaches this module is a bug upstream, so
:class:`Money` refuses it instead of rounding it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: ISO 4217 codes accepted by LOKE's bill schema; other platforms may widen this later.
CURRENCIES: frozenset[str] = frozenset({"AUD", "NZD", "SGD", "GBP"})


#: Codes that passed the format check once (money is made often; codes are few).
_CHECKED_CODES: set[str] = set()


class CurrencyMismatchError(ValueError):
    """Two amounts in different currencies met in one calculation."""

    def __init__(self, left: str, right: str) -> None:
        super().__init__(f"cannot combine {left} with {right}")
        self.left = left
        self.right = right


@dataclass(frozen=True, slots=True, order=True)
class Money:
    """An amount in the currency's minor unit (cents, pence).

    Raises:
        TypeError: ``minor`` is not an ``int`` (``bool`` and ``float`` included).
        ValueError: ``currency`` is not a three-letter upper-case code.
    """

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.minor) is not int:
            raise TypeError(f"minor units must be int, not {type(self.minor).__name__}")
        if self.currency not in _CHECKED_CODES:
            if (
                len(self.currency) != 3
                or not self.currency.isalpha()
                or not self.currency.isupper()
            ):
                raise ValueError(f"bad currency code {self.currency!r}")
            _CHECKED_CODES.add(self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def _check(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatchError(self.currency, other.currency)

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor - other.minor, self.currency)

    def __mul__(self, factor: int) -> Money:
        if type(factor) is not int:
            raise TypeError("money can only be multiplied by an int")
        return Money(self.minor * factor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __str__(self) -> str:
        sign = "-" if self.minor < 0 else ""
        units, cents = divmod(abs(self.minor), 100)
        return f"{sign}{units}.{cents:02d} {self.currency}"

"""Strict reading of a decoded JSON object: types checked, unknown fields refused.

Pure (no aiohttp): every complaint is a :class:`BadRequestError` whose ``details.field``
names the field, so a platform engineer sees what to fix.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from common.errors import BadRequestError

#: Unicode categories a label may not hold: controls (Cc) and line/paragraph separators
#: (Zl, Zp), which would break a POS receipt or a log line. Format characters (Cf: the zero
#: width joiner in an emoji, a soft hyphen) are fine.
_BREAKING = frozenset({"Cc", "Zl", "Zp"})

MAX_MINOR = 10**9  # 10 million in major units: above any single table payment

_PRINTABLE_ASCII = re.compile(r"[!-~]*")


def _unbroken(value: str) -> bool:
    """No character of a :data:`_BREAKING` category. For ASCII those are exactly the
    characters ``str.isprintable`` refuses (C0 controls and DEL), checked in C at once;
    other text is looked up character by character."""
    if value.isascii():
        return value.isprintable()
    return not any(unicodedata.category(c) in _BREAKING for c in value)


class Fields:
    """One JSON object being read; call :meth:`done` last to refuse unread fields."""

    def __init__(self, data: Any, prefix: str = "") -> None:
        if not isinstance(data, dict):
            raise BadRequestError(
                "invalid_body" if not prefix else "invalid_field",
                f"{prefix or 'the body'} must be a JSON object",
                {"field": prefix or None},
            )
        self._data: dict[str, Any] = data
        self._prefix = prefix
        self._read: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self._prefix}.{key}" if self._prefix else key

    def _get(self, key: str, required: bool) -> Any:
        self._read.add(key)
        if key not in self._data or self._data[key] is None:
            if required:
                raise BadRequestError(
                    "missing_field", f"{self._name(key)} is required", {"field": self._name(key)}
                )
            return None
        return self._data[key]

    def _bad(self, key: str, expected: str) -> BadRequestError:
        return BadRequestError(
            "invalid_field",
            f"{self._name(key)} must be {expected}",
            {"field": self._name(key), "expected": expected},
        )

    def string(
        self,
        key: str,
        *,
        required: bool = True,
        min_len: int = 1,
        max_len: int = 256,
        printable_ascii: bool = False,
    ) -> str | None:
        value = self._get(key, required)
        if value is None:
            return None
        expected = f"a string of {min_len} to {max_len} characters"
        if not isinstance(value, str) or not min_len <= len(value) <= max_len:
            raise self._bad(key, expected)
        if printable_ascii:
            if not _PRINTABLE_ASCII.fullmatch(value):
                raise self._bad(key, expected + " (printable ASCII, no spaces)")
        elif not _unbroken(value):
            raise self._bad(key, expected + " without control characters or line breaks")
        return value

    def minor_units(self, key: str, *, required: bool = True, minimum: int = 1) -> int | None:
        """An amount in minor units: an integer, never a float, never a bool."""
        value = self._get(key, required)
        if value is None:
            return None
        if type(value) is not int or not minimum <= value <= MAX_MINOR:
            raise self._bad(key, f"an integer number of minor units from {minimum} to {MAX_MINOR}")
        return value

    def choice(self, key: str, choices: frozenset[str], *, required: bool = True) -> str | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, str) or value not in choices:
            raise self._bad(key, "one of " + ", ".join(sorted(choices)))
        return value

    def object(self, key: str) -> Fields | None:
        value = self._get(key, False)
        return None if value is None else Fields(value, self._name(key))

    def done(self) -> None:
        unknown = sorted(set(self._data) - self._read)
        if unknown:
            raise BadRequestError(
                "unknown_field",
                f"{self._name(unknown[0])} is not a field of this request",
                {"field": self._name(unknown[0]), "unknown": [self._name(k) for k in unknown]},
            )


def parse_table_number(text: str) -> int:
    """LOKE tables are numeric: 1 to 999999, digits only."""
    if not (text.isascii() and text.isdigit()) or len(text) > 6 or int(text) < 1:
        raise BadRequestError(
            "invalid_table", "the table must be a number from 1 to 999999", {"table": text[:32]}
        )
    return int(text)

"""Reading a driver's ``[drivers.<name>.options]`` table: one checked value at a time.

Each reader pops its key, so whatever is left at the end is an unknown option, reported by
:func:`reject_unknown` under its own key instead of being silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from drivers.errors import DriverConfigError


def int_option(options: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    """``options[key]`` as an int in ``[low, high]`` (``default`` when absent)."""
    value = options.pop(key, default)
    if type(value) is not int or not low <= value <= high:
        raise DriverConfigError(f"options.{key}", f"must be an integer from {low} to {high}")
    return value


def text_option(
    options: dict[str, Any], key: str, default: str, choices: tuple[str, ...] = ()
) -> str:
    """``options[key]`` as a string, one of ``choices`` when they are given."""
    value = options.pop(key, default)
    if not isinstance(value, str) or not value:
        raise DriverConfigError(f"options.{key}", "must be a non-empty string")
    if choices and value not in choices:
        raise DriverConfigError(f"options.{key}", f"must be one of {', '.join(choices)}")
    return value


def merged_options(query: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The URL's query parameters overlaid by the config's options table.

    ``serial:///dev/ttyUSB0?baudrate=9600`` and ``options = {baudrate = 9600}`` mean the same;
    a key given both ways must agree, so a technician never wonders which one won.
    """
    merged: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key in merged:
            raise DriverConfigError(f"url.{key}", "given twice in the URL")
        merged[key] = int(value) if value.isdigit() else value  # a URL has only text
    for key, value in options.items():
        if key in merged and str(merged[key]) != str(value):
            raise DriverConfigError(
                f"options.{key}", f"{value!r} disagrees with {merged[key]!r} in the URL"
            )
        merged[key] = value
    return merged


def reject_unknown(options: Mapping[str, Any]) -> None:
    """Raise for the first option no reader took."""
    if options:
        raise DriverConfigError(f"options.{sorted(options)[0]}", "unknown option")

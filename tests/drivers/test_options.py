"""Driver option readers: URL query and config table, one meaning."""

from __future__ import annotations

import pytest

from drivers.errors import DriverConfigError
from drivers.options import int_option, merged_options, reject_unknown, text_option


def test_url_query_and_options_merge_and_integers_are_read_from_text() -> None:
    merged = merged_options("baudrate=9600&parity=N", {"timeout_ms": 500})
    assert merged == {"baudrate": 9600, "parity": "N", "timeout_ms": 500}
    assert int_option(merged, "baudrate", 19200, 50, 4_000_000) == 9600
    assert text_option(merged, "parity", "N", ("N", "E", "O")) == "N"
    assert merged == {"timeout_ms": 500}


def test_a_key_given_twice_must_agree() -> None:
    assert merged_options("baudrate=9600", {"baudrate": 9600}) == {"baudrate": 9600}
    with pytest.raises(DriverConfigError) as caught:
        merged_options("baudrate=9600", {"baudrate": 19200})
    assert caught.value.key == "options.baudrate"
    with pytest.raises(DriverConfigError) as twice:
        merged_options("a=1&a=2", {})
    assert twice.value.key == "url.a"


@pytest.mark.parametrize("value", ["9600", 1.5, True, 0, 10**9])
def test_int_option_names_its_key(value: object) -> None:
    with pytest.raises(DriverConfigError) as caught:
        int_option({"baudrate": value}, "baudrate", 9600, 50, 4_000_000)
    assert caught.value.key == "options.baudrate"


def test_text_option_and_unknown_options() -> None:
    with pytest.raises(DriverConfigError, match="one of"):
        text_option({"parity": "X"}, "parity", "N", ("N", "E"))
    with pytest.raises(DriverConfigError) as caught:
        reject_unknown({"zeta": 1, "alpha": 2})
    assert caught.value.key == "options.alpha"

import pytest

from bridge.core.money import CurrencyMismatchError, Money


def test_money_adds_and_subtracts_in_one_currency():
    assert Money(250, "AUD") + Money(100, "AUD") == Money(350, "AUD")
    assert Money(250, "AUD") - Money(300, "AUD") == Money(-50, "AUD")
    assert Money(250, "AUD") * 3 == Money(750, "AUD")
    assert -Money(5, "GBP") == Money(-5, "GBP")


@pytest.mark.parametrize("minor", [1.0, 2.5, True, "100", None])
def test_money_refuses_anything_but_int_minor_units(minor):
    with pytest.raises(TypeError):
        Money(minor, "AUD")


@pytest.mark.parametrize("currency", ["aud", "AU", "AUDD", "12A", ""])
def test_money_refuses_malformed_currency_codes(currency):
    with pytest.raises(ValueError):
        Money(1, currency)


def test_money_never_mixes_currencies():
    with pytest.raises(CurrencyMismatchError):
        Money(1, "AUD") + Money(1, "NZD")


def test_money_multiplies_only_by_int():
    with pytest.raises(TypeError):
        Money(1, "AUD") * 1.5


def test_money_prints_major_units_without_floats():
    assert str(Money(-1205, "AUD")) == "-12.05 AUD"
    assert str(Money(7, "GBP")) == "0.07 GBP"

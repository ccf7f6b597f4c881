"""A kit that passes everything proves nothing: each wrong driver fails the check for it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from drivers.base import DriverSettings, PosDriver
from drivers.conformance import CheckStatus, KitTarget, SimulatorControl, run_check, run_kit
from drivers.simulator.driver import SimulatorDriver
from tests.conformance import broken_drivers as broken


def target(kind: type[SimulatorDriver], tmp_path: Path) -> KitTarget:
    url = urlsplit(f"simulator://{tmp_path / 'pos.sqlite3'}")

    def make() -> PosDriver:
        return kind(DriverSettings("broken", url, {"tables": 8}))

    return KitTarget(make, "1", SimulatorControl(), call_timeout_s=0.5, recovery_s=2)


@pytest.mark.parametrize(
    ("kind", "check", "says"),
    [
        (broken.AppliesTwice, "split_payments", "expected the same bill with balance"),
        (broken.FloatMoney, "bills_valid", "is not an integer of minor units"),
        (broken.ForgetsPayments, "find_payment", "did not find"),
        (broken.ForgetsPayments, "find_payment_after_crash", "a fresh driver did not find"),
        (broken.NoneForUnknownTables, "get_open_bill", "does not exist"),
        (broken.AcceptsOverpayment, "refusals", "was accepted"),
        (broken.UntypedOffline, "pos_offline", "ConnectionRefusedError"),
        (broken.HangsWhenOffline, "pos_offline", "hung"),
        (broken.LostReplyIsOffline, "lost_reply", "said undelivered"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
async def test_kit_fails_a_driver_that_breaks_the_rule(
    kind: type[SimulatorDriver], check: str, says: str, tmp_path: Path
) -> None:
    result = await run_check(check, target(kind, tmp_path))
    assert result.status is CheckStatus.FAILED, result
    assert says in result.detail, result.detail


async def test_a_full_run_reports_every_check_and_does_not_stop_at_a_failure(
    tmp_path: Path,
) -> None:
    results = await run_kit(target(broken.AppliesTwice, tmp_path))
    by_status = {r.name: r.status for r in results}
    assert by_status["split_payments"] is CheckStatus.FAILED
    assert by_status["list_tables"] is CheckStatus.PASSED
    assert len(results) == len(by_status) == 11


async def test_kit_says_when_the_test_pos_holds_too_few_open_bills(tmp_path: Path) -> None:
    url = urlsplit(f"simulator://{tmp_path / 'pos.sqlite3'}")

    def make() -> PosDriver:
        return SimulatorDriver(DriverSettings("small", url, {"tables": 2}))

    target = KitTarget(make, "1", SimulatorControl(), call_timeout_s=1, recovery_s=2)
    results = {r.name: r for r in await run_kit(target)}
    assert results["split_payments"].status is CheckStatus.PASSED  # table 1
    assert results["refusals"].status is CheckStatus.PASSED  # table 2
    starved = results["find_payment"]
    assert starved.status is CheckStatus.FAILED
    assert "not enough POS state for find_payment" in starved.detail

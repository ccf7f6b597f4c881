"""Every driver passes every check of the conformance kit (``drivers/conformance``)."""

from __future__ import annotations

import pytest

from drivers.conformance import CHECKS, CheckStatus, KitTarget, run_check, run_kit


@pytest.mark.parametrize("check", list(CHECKS))
async def test_driver_passes_conformance_check(kit_target: KitTarget, check: str) -> None:
    result = await run_check(check, kit_target)
    assert result.status is CheckStatus.PASSED, f"{check}: {result.status}: {result.detail}"


async def test_checks_that_need_a_pos_switch_skip_without_one_and_say_why(
    kit_target: KitTarget,
) -> None:
    kit_target.control = None
    results = {r.name: r for r in await run_kit(kit_target, ["lost_reply", "pos_offline"])}
    for result in results.values():
        assert result.status is CheckStatus.SKIPPED
        assert "no POS control given" in result.detail

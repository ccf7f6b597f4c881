"""Running the checks: one at a time (the pytest suite) or all in order (driver-check).

Each check runs under its own overall deadline; whatever it raises becomes its verdict, so a
driver that crashes with a ``KeyError`` fails a check instead of stopping the kit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

from drivers.conformance import checks
from drivers.conformance.target import (
    CheckFailed,
    CheckResult,
    CheckSkipped,
    CheckStatus,
    KitRun,
    KitTarget,
)

Check = Callable[[KitRun], Awaitable[str]]

#: Every check, in the order driver-check runs them: reads first, then payments, then faults.
CHECKS: dict[str, Check] = {
    "open_close": checks.open_close,
    "health": checks.health,
    "list_tables": checks.list_tables,
    "get_open_bill": checks.get_open_bill,
    "bills_valid": checks.bills_valid,
    "split_payments": checks.split_payments,
    "refusals": checks.refusals,
    "find_payment": checks.find_payment,
    "find_payment_after_crash": checks.find_payment_after_crash,
    "lost_reply": checks.lost_reply,
    "pos_offline": checks.pos_offline,
}


async def run_check(name: str, target: KitTarget, run: KitRun | None = None) -> CheckResult:
    """Run the check called ``name``; never raises for what the driver does."""
    run = run or KitRun(target)
    # A check makes a handful of calls, each bounded by call_timeout_s, plus recoveries.
    budget = 12 * target.call_timeout_s + 2 * target.recovery_s
    started = time.monotonic()
    try:
        async with asyncio.timeout(budget) as deadline:
            detail = await CHECKS[name](run)
        status = CheckStatus.PASSED
    except CheckFailed as exc:
        status, detail = CheckStatus.FAILED, str(exc)
    except CheckSkipped as exc:
        status, detail = CheckStatus.SKIPPED, str(exc)
    except TimeoutError as exc:
        status = CheckStatus.FAILED
        if deadline.expired():
            detail = f"did not finish within {budget:g} s"
        else:
            detail = f"raised {type(exc).__name__}: {exc}"
    except Exception as exc:  # the driver's bug is the verdict, not the kit's crash
        status, detail = CheckStatus.FAILED, f"raised {type(exc).__name__}: {exc}"
    return CheckResult(name, status, detail, time.monotonic() - started)


async def run_kit(target: KitTarget, names: Iterable[str] | None = None) -> list[CheckResult]:
    """Every check (or those in ``names``), in order, sharing one run's tables."""
    run = KitRun(target)
    return [await run_check(name, target, run) for name in (names or CHECKS)]


def format_results(results: list[CheckResult]) -> str:
    """A table a technician reads in a terminal, and a closing verdict."""
    width = max(len(r.name) for r in results)
    lines = [f"{'check':<{width}}  result   time    detail"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.status.value:<7}  {r.seconds:5.2f}s  {r.detail}")
    failed = sum(r.status is CheckStatus.FAILED for r in results)
    skipped = sum(r.status is CheckStatus.SKIPPED for r in results)
    passed = len(results) - failed - skipped
    lines.append(f"{passed} passed, {failed} failed, {skipped} skipped")
    return "\n".join(lines)

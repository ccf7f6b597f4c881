"""The conformance kit: the checks every POS driver must pass, shipped with the product.

A vendor runs it against their own driver and a test POS (``pos-bridge driver-check URL``);
our CI runs it against the simulator and each reference driver over the POS emulator. The
checks are plain async functions over a :class:`~drivers.conformance.target.KitTarget`,
independent of pytest; what they need the POS to hold is in ``docs/drivers/conformance.md``.
"""

from drivers.conformance.control import EmulatorControl, PosControl, SimulatorControl
from drivers.conformance.runner import CHECKS, run_check, run_kit
from drivers.conformance.target import CheckResult, CheckStatus, KitTarget, target_from_url

__all__ = [
    "CHECKS",
    "CheckResult",
    "CheckStatus",
    "EmulatorControl",
    "KitTarget",
    "PosControl",
    "SimulatorControl",
    "run_check",
    "run_kit",
    "target_from_url",
]

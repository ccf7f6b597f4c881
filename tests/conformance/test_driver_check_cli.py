"""``pos-bridge driver-check`` end to end, as a vendor runs it: a real process, its output
and its exit status."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.conformance import CHECKS
from tests.crash.process import REPO, EmulatorProcess
from tests.emulators import emulated_schemes, emulator_url


def driver_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge", "driver-check", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_driver_check_passes_the_simulator_and_prints_every_check(tmp_path: Path) -> None:
    done = driver_check(f"simulator://{tmp_path / 'pos.db'}", "--option", "tables=8")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for name in CHECKS:
        assert any(line.split()[:2] == [name, "passed"] for line in lines), done.stdout
    assert lines[-1] == f"{len(CHECKS)} passed, 0 failed, 0 skipped"


def test_driver_check_exits_non_zero_when_a_check_fails() -> None:
    # In memory, the simulator forgets its payments when a fresh driver is built: a POS
    # like that would let a bridge crash apply a payment twice.
    done = driver_check("simulator:", "--json", "--option", "tables=8")
    assert done.returncode == 1, done.stdout + done.stderr
    results = {r["check"]: r for r in json.loads(done.stdout)}
    assert set(results) == set(CHECKS)
    assert results["find_payment_after_crash"]["status"] == "failed"
    assert "a fresh driver did not find" in results["find_payment_after_crash"]["detail"]
    assert results["split_payments"]["status"] == "passed"


def test_driver_check_without_a_control_skips_the_outage_checks(tmp_path: Path) -> None:
    done = driver_check(
        f"simulator://{tmp_path / 'pos.db'}",
        "--control",
        "none",
        "--check",
        "pos_offline",
        "--json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (result,) = json.loads(done.stdout)
    assert result["status"] == "skipped" and "no POS control given" in result["detail"]


def test_driver_check_names_a_bad_url_or_option_and_exits_2(tmp_path: Path) -> None:
    unknown = driver_check("com:")
    assert unknown.returncode == 2 and "unknown scheme 'com'" in unknown.stderr
    bad = driver_check(f"simulator://{tmp_path / 'pos.db'}", "--option", "tables=zero")
    assert bad.returncode == 2 and "options.tables" in bad.stderr


@pytest.mark.parametrize("scheme", emulated_schemes())
async def test_driver_check_passes_a_reference_driver_against_the_emulator_process(
    tmp_path: Path, scheme: str
) -> None:
    """A vendor's workflow, both halves as processes: ``pos-bridge pos-emulator`` serves a
    POS, ``pos-bridge driver-check`` runs the kit against the URL it prints, switching it
    through the control API it prints."""
    url = emulator_url(scheme, tmp_path / "pos-folder")
    emulator = EmulatorProcess(url, tmp_path / "pos.sqlite3", 12, tmp_path / "emulator.log")
    try:
        emulator.start()
        driver_url = await emulator.driver_url()
        done = await asyncio.to_thread(
            driver_check,
            driver_url,
            *("--option", "timeout_ms=400", "--control", emulator.control_url),
            *("--call-timeout", "5", "--recovery", "10"),
        )
        assert done.returncode == 0, done.stdout + done.stderr + emulator.log_tail()
        assert done.stdout.splitlines()[-1] == f"{len(CHECKS)} passed, 0 failed, 0 skipped"
    finally:
        emulator.close()

"""README's first command: `pos-bridge demo` starts relay + bridge, and every curl line it
prints answers (the platform's lines through the relay)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest


def run_curl(line: str) -> dict:
    result = subprocess.run(
        line, shell=True, capture_output=True, text=True, timeout=15, check=True
    )
    return json.loads(result.stdout)


@pytest.mark.timeout(90)
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("pos", ["simulator", "serial", "tcp", "file"])
def test_demo_prints_curl_lines_that_answer(tmp_path, pos):
    """With the simulator (README's command), and with the POS emulator behind each real
    driver (``--pos serial|tcp|file``), whose offline lines silence it through its control
    API."""
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "demo",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--exit-after",
            "60",
            "--pos",
            pos,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C stops the demo."):
                break
        curls = [line for line in lines if line.startswith("curl ")]
        assert len(curls) == 11, "\n".join(lines)
        assert all("/v/demo-cafe/loke/v1/" in line for line in curls if "/loke/v1/" in line)
        answers = [run_curl(line) for line in curls]
        status_deadline = time.monotonic() + 10
        while answers[9].get("posOnline") is not True and time.monotonic() < status_deadline:
            time.sleep(0.2)  # the health probe's next round sees the POS back
            answers[9] = run_curl(curls[9])
        bill, part, rest, replay, audit, offline, down, queued, online, status, venue = answers
        assert bill["balance"] == part["amount"] + rest["amount"]
        assert (part["status"], rest["status"], rest["billClosed"]) == ("applied", "applied", True)
        assert replay == rest
        assert [s["to"] for s in audit["audit"]] == ["received", "applying", "applied"]
        if pos == "simulator":
            assert offline["mode"] == "offline" and online["mode"] == "online"
        else:
            assert offline["silent"] is True and online["silent"] is False
        assert down["error"] == "pos_offline"
        assert queued["status"] == "queued"
        assert status["version"] and status["posOnline"] is True
        assert venue["online"] is True and venue["venue"] == "demo-cafe"
    finally:
        demo.terminate()
        demo.wait(timeout=15)

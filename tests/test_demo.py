"""README's first command: `pos-bridge demo` starts relay + bridge, every curl line it prints
answers as its comment says when pasted at once (the platform's lines through the relay), a
taken port is one line naming the flag, and the demo's temporary folder (tokens) goes with it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

READY = "Ctrl-C stops the demo."


def run_curl(line: str) -> dict:
    result = subprocess.run(
        line, shell=True, capture_output=True, text=True, timeout=15, check=True
    )
    return json.loads(result.stdout)


def start_demo(*args: str, tmpdir: Path | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)  # where the demo's own temporary folder goes
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def read_guide(demo: subprocess.Popen[str]) -> list[str]:
    """The printed lines up to the last one of the guide (or the end of the output)."""
    assert demo.stdout is not None
    lines: list[str] = []
    while line := demo.stdout.readline():
        lines.append(line.rstrip("\n"))
        if line.startswith(READY):
            break
    return lines


def poll(line: str, done: str, until: object, seconds: float = 15.0) -> dict:
    """``line``'s answer once its ``done`` field equals ``until`` (re-run while it does not)."""
    deadline = time.monotonic() + seconds
    answer = run_curl(line)
    while answer.get(done) != until and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = run_curl(line)
    return answer


@pytest.fixture
def listener() -> Iterator[int]:
    """A port on 127.0.0.1 that something already listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


@pytest.mark.timeout(90)
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("pos", ["simulator", "serial", "tcp", "file"])
def test_demo_prints_curl_lines_that_answer(tmp_path, pos):
    """With the simulator (README's command), and with the POS emulator behind each real
    driver (``--pos serial|tcp|file``), whose offline lines silence it through its control
    API. All lines are run at once, as a paste would: the queued payment's lines then say
    "queued" or "applied" and the POS's state as it is, and within seconds what they promise."""
    demo = start_demo(
        *("--port", "0", "--data-dir", str(tmp_path), "--exit-after", "60", "--pos", pos)
    )
    try:
        lines = read_guide(demo)
        curls = [line for line in lines if line.startswith("curl ")]
        assert len(curls) == 12, "\n".join(lines)
        assert all("/v/demo-cafe/loke/v1/" in line for line in curls if "/loke/v1/" in line)
        answers = [run_curl(line) for line in curls]
        bill, part, rest, replay, audit, offline, down, queued, online = answers[:9]
        where, status, venue = answers[9:]
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
        assert where["paymentId"] == "demo-pay-3"
        assert where["state"] in ("queued", "applying", "applied")
        assert status["version"] and status["queue"]["depth"] in (0, 1)
        assert venue["online"] is True and venue["venue"] == "demo-cafe"
        # "within a few seconds":
        assert poll(curls[9], "state", "applied")["state"] == "applied"
        status = poll(curls[10], "posOnline", True)
        assert status["posOnline"] is True and status["queue"]["depth"] == 0
    finally:
        demo.terminate()
        demo.wait(timeout=15)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--relay-port", "0", "--port", "{busy}"), "--port N"),
        (("--port", "0", "--relay-port", "{busy}"), "--relay-port N"),
        (("--port", "{below}"), "--port + 1"),  # the relay's default port is the busy one
    ],
    ids=["bridge", "relay", "relay-default"],
)
def test_a_taken_port_is_one_line_naming_it_and_its_flag(tmp_path, listener, args, flag):
    args = tuple(a.format(busy=listener, below=listener - 1) for a in args)
    demo = start_demo(*args, "--exit-after", "30", tmpdir=tmp_path)
    output, _ = demo.communicate(timeout=45)
    assert demo.returncode == 1, output
    assert "Traceback" not in output, output
    error = output.strip().splitlines()[-1]
    assert f"port {listener} " in error and "already in use" in error and flag in error, output
    assert list(tmp_path.iterdir()) == []  # its temporary folder went too


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("when", ["serving", "starting"])
def test_a_stopped_demo_removes_its_temporary_folder(tmp_path, signum, when):
    """Its tokens and databases live in a folder of its own, gone however the demo stops
    (here: stopped while it serves, or as soon as the folder exists)."""
    demo = start_demo("--port", "0", "--exit-after", "50", tmpdir=tmp_path)
    try:
        if when == "serving":
            lines = read_guide(demo)
            assert lines[-1].startswith(READY), "\n".join(lines)
            (folder,) = tmp_path.iterdir()
            assert folder.name.startswith("pos-bridge-demo-")
            assert any(str(folder) in line and "removed when" in line for line in lines)
            assert (folder / "relay" / "venues.toml").is_file()  # the tunnel's token
        else:
            deadline = time.monotonic() + 30
            while not any(tmp_path.iterdir()) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert any(tmp_path.iterdir())
        demo.send_signal(signum)
        output, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 0, output
    assert "Traceback" not in output, output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(60)
def test_a_demo_that_exits_on_its_own_removes_its_folder_and_keeps_a_given_one(tmp_path):
    own, given = tmp_path / "tmp", tmp_path / "given"
    own.mkdir()
    for args in (("--port", "0"), ("--port", "0", "--data-dir", str(given))):
        demo = start_demo(*args, "--exit-after", "0.5", tmpdir=own)
        output, _ = demo.communicate(timeout=45)
        assert demo.returncode == 0 and READY in output, output
    assert list(own.iterdir()) == []
    assert (given / "demo.toml").is_file()

"""``pos-bridge loke-sandbox`` as a real process: it prints its URL and the ``[loke]`` lines
for a bridge, answers LOKE's API, and stops cleanly on SIGINT (Ctrl-C)."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import tomllib
from pathlib import Path

import aiohttp

from bridge.config import parse_config
from tests.conftest import config_data


async def _line(stream: asyncio.StreamReader) -> str:
    return (await asyncio.wait_for(stream.readline(), timeout=30)).decode()


async def test_the_cli_serves_until_sigint(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "loke-sandbox",
        "--port",
        "0",
        "--client-secret",
        "cli-test-secret-0123456789",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        lines = [await _line(process.stdout)]
        while "Ctrl-C" not in lines[-1] and len(lines) < 20 and lines[-1]:
            lines.append(await _line(process.stdout))
        text = "".join(lines)
        assert lines[0].startswith("LOKE sandbox on http://127.0.0.1:"), text
        base_url = lines[0].split()[-1]
        assert "client id: pos-bridge" in text
        section = text[text.index("[loke]") : text.index("Ctrl-C")]
        loke = tomllib.loads(section)["loke"]
        assert loke["api_url"] == base_url + "/" and loke["client_id"] == "pos-bridge"
        config = parse_config(config_data(tmp_path, loke=loke), {})  # a bridge takes it
        assert config.loke is not None and config.loke.api_url == base_url + "/"

        async with (
            aiohttp.ClientSession() as session,
            session.get(base_url + "/organizations") as response,
        ):
            assert response.status == 401
            assert (await response.json())["code"] == "unauthorized"

        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
        rest = (await process.stdout.read()).decode()
        assert "stopped" in rest
        assert "Traceback" not in (await process.stderr.read()).decode()
        port = int(base_url.rsplit(":", 1)[1])
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

"""The bridge's side of file-drop against a POS played by hand, one file operation at a time:
which files it reads, which it deletes, and what each folder failure raises."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from drivers.base import Table
from drivers.emulator.pos import EmulatedPos
from drivers.errors import PosOfflineError, PosUnavailableError
from drivers.filedrop import naming
from drivers.filedrop.driver import FileDropDriver
from drivers.wire import messages
from drivers.wire.messages import PosProtocolError
from tests.drivers.filedrop.conftest import (
    LOCATION,
    WAIT_S,
    HandPos,
    eventually,
    instruction,
    listing,
    make_driver,
    payments_on_pos,
)

ROOT = Path(__file__).resolve().parents[3]
TABLES = {"tables": [{"number": 1, "name": "T1"}]}


def tables_reply(request_id: int) -> bytes:
    return json.dumps({"id": request_id, "ok": True, "result": TABLES}).encode()


@pytest.fixture
async def hand_driver(spool: Path) -> FileDropDriver:
    spool.mkdir()
    driver = make_driver(f"file://{spool}", timeout_ms=3000)
    await driver.open()
    yield driver  # type: ignore[misc]
    await driver.close()


async def test_a_temporary_file_is_never_read_only_the_renamed_one(
    spool: Path, hand_driver: FileDropDriver
) -> None:
    hand = HandPos(spool)
    call = asyncio.create_task(hand_driver.list_tables(LOCATION))
    name, request = await hand.take()
    assert request.op == "list_tables" and request.args == {"location": LOCATION}
    temp = hand.responses / naming.temp_name(name.response().to_name())
    temp.write_bytes(tables_reply(name.request_id))
    await asyncio.sleep(0.3)  # many watch batches: the bridge has seen the temporary file
    assert not call.done()
    os.replace(temp, hand.responses / name.response().to_name())
    assert await asyncio.wait_for(call, WAIT_S) == [Table(1, "T1")]
    assert listing(hand.responses) == [] and listing(hand.requests) == []


async def test_a_response_written_in_place_by_a_slow_writer_is_read_once_complete(
    spool: Path, hand_driver: FileDropDriver
) -> None:
    hand = HandPos(spool)
    call = asyncio.create_task(hand_driver.list_tables(LOCATION))
    name, _request = await hand.take()
    body = tables_reply(name.request_id)
    with open(hand.responses / name.response().to_name(), "wb") as file:  # breaks the rule
        file.write(body[:10])
        file.flush()
        await asyncio.sleep(0.2)  # the bridge sees half a file, and must not trust it
        assert not call.done()
        file.write(body[10:])
    assert await asyncio.wait_for(call, WAIT_S) == [Table(1, "T1")]


async def test_a_truncated_response_is_a_protocol_error_and_is_cleaned_up(
    spool: Path, hand_driver: FileDropDriver
) -> None:
    hand = HandPos(spool)
    call = asyncio.create_task(hand_driver.list_tables(LOCATION))
    name, _request = await hand.take()
    (hand.responses / name.response().to_name()).write_bytes(tables_reply(name.request_id)[:-5])
    with pytest.raises(PosProtocolError, match="unreadable") as raised:
        await asyncio.wait_for(call, WAIT_S)
    assert isinstance(raised.value, PosUnavailableError)  # the outbox retries, reconciling
    assert listing(hand.responses) == []
    again = asyncio.create_task(hand_driver.list_tables(LOCATION))
    name, _request = await hand.take()
    hand.answer(name, TABLES)
    assert await asyncio.wait_for(again, WAIT_S) == [Table(1, "T1")]


async def test_a_duplicate_response_is_harmless_and_cleaned_up(
    spool: Path, hand_driver: FileDropDriver, pos: EmulatedPos, state: Path
) -> None:
    await pos.simulator.open()
    try:
        hand = HandPos(spool)
        payment = await instruction(pos, "pay-dup")
        call = asyncio.create_task(hand_driver.apply_payment(payment))
        name, request = await hand.take()
        reply = await pos.handle(request)
        assert reply is not None
        body = messages.encode_reply(reply)
        path = hand.answer(name, {})
        path.write_bytes(body)  # the real answer (the file above was a first, empty try)
        applied = await asyncio.wait_for(call, WAIT_S)
        assert applied.payment_id == "pay-dup"
        await eventually(lambda: not path.exists(), "the response to be consumed")

        path.write_bytes(body)  # the same response again: nobody waits for it
        unknown = hand.responses / f"resp-bridge-{name.session}-999.json"
        unknown.write_bytes(body)
        foreign = hand.responses / f"resp-kitchen-{name.session}-{name.request_id}.json"
        foreign.write_bytes(body)
        await eventually(
            lambda: listing(hand.responses) == [foreign.name], "duplicates to be discarded"
        )

        found_call = asyncio.create_task(hand_driver.find_payment(LOCATION, "pay-dup"))
        name, request = await hand.take()
        reply = await pos.handle(request)
        assert reply is not None
        hand.answer(name, dict(reply.result or {}))
        found = await asyncio.wait_for(found_call, WAIT_S)
        assert found is not None and found.pos_reference == applied.pos_reference
        assert payments_on_pos(state, "pay-dup") == 1
    finally:
        await pos.simulator.close()


async def test_opening_withdraws_and_discards_what_an_earlier_session_left(spool: Path) -> None:
    requests, responses = spool / "requests", spool / "responses"
    requests.mkdir(parents=True)
    responses.mkdir()
    for name in ("req-bridge-12345678-1.json", ".req-bridge-12345678-2.json.tmp"):
        (requests / name).write_text("{}")
    (requests / "req-kitchen-12345678-1.json").write_text("{}")
    for name in (
        "resp-bridge-12345678-3.json",
        "resp-kitchen-12345678-1.json",
        ".resp-bridge-12345678-4.json.tmp",
    ):
        (responses / name).write_text("{}")
    driver = make_driver(f"file://{spool}")
    await driver.open()
    try:
        assert listing(requests) == ["req-kitchen-12345678-1.json"]
        assert listing(responses) == [
            ".resp-bridge-12345678-4.json.tmp",  # the POS's to finish or clean
            "resp-kitchen-12345678-1.json",
        ]
    finally:
        await driver.close()


async def test_a_missing_folder_is_offline_never_created_and_usable_once_there(
    spool: Path,
) -> None:
    driver = make_driver(f"file://{spool}", timeout_ms=3000)
    await driver.open()  # not an error yet: the share may be mounted later
    try:
        with pytest.raises(PosOfflineError, match=str(spool)):
            await driver.list_tables(LOCATION)
        assert not spool.exists()  # an unmounted share's mount point stays bare
        spool.mkdir()
        hand = HandPos(spool)
        call = asyncio.create_task(driver.list_tables(LOCATION))
        name, _request = await hand.take()
        hand.answer(name, TABLES)
        assert await asyncio.wait_for(call, WAIT_S) == [Table(1, "T1")]
    finally:
        await driver.close()


async def test_a_folder_replaced_by_a_file_is_offline_until_it_is_a_folder_again(
    spool: Path, hand_driver: FileDropDriver
) -> None:
    hand = HandPos(spool)
    shutil.rmtree(spool)
    spool.write_text("not a folder")
    with pytest.raises(PosOfflineError, match=str(spool)):
        await hand_driver.list_tables(LOCATION)
    spool.unlink()
    spool.mkdir()
    call = asyncio.create_task(hand_driver.list_tables(LOCATION))
    name, _request = await hand.take()
    hand.answer(name, TABLES)
    assert await asyncio.wait_for(call, WAIT_S) == [Table(1, "T1")]


def _without_dac_override() -> list[str] | None:
    """How to run a command so permission bits bind: as is for a normal user; as root, under
    ``setpriv`` without CAP_DAC_OVERRIDE; ``None`` when neither is possible."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", "--"]


@pytest.mark.timeout(60)
def test_a_folder_turning_read_only_is_offline_naming_it_then_recovers(tmp_path: Path) -> None:
    prefix = _without_dac_override()
    if prefix is None:
        pytest.skip("running as root without setpriv: chmod 0o555 would not stop our writes")
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "tests.drivers.filedrop.read_only_scenario",
         str(tmp_path / "spool")],
        cwd=ROOT, capture_output=True, text=True, timeout=45, check=False,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines[0] == "tables 3"
    assert lines[1].startswith("offline") and str(tmp_path / "spool" / "requests") in lines[1]
    assert lines[2] == "recovered tables 3"

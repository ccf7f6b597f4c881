"""The file-drop rules as pure functions: bytes and names in, decisions out, no folder."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from drivers.filedrop import naming
from drivers.filedrop.naming import Disposition, MessageName
from drivers.wire import messages
from drivers.wire.messages import (
    MAX_ID,
    ErrorInfo,
    Reply,
    Request,
    WireFormatError,
    encode_reply,
    encode_request,
)

SESSION = "0badcafe"
OLD_SESSION = "12345678"


def reply_file(request_id: int = 7) -> bytes:
    return naming.encode_file(encode_reply(Reply(request_id, result={"bill": None})))


def test_naming_imports_no_io() -> None:
    tree = ast.parse(Path(naming.__file__).read_text())
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        )
    }  # fmt: skip
    assert (
        imported & {"os", "asyncio", "time", "socket", "pathlib", "shutil", "watchfiles"} == set()
    )


class TestNames:
    def test_request_name_round_trips_and_names_its_response(self) -> None:
        name = naming.request_name("bridge", SESSION, 42)
        assert name == "req-bridge-0badcafe-42.json"
        parsed = MessageName.parse(name)
        assert parsed == MessageName("req", "bridge", SESSION, 42)
        assert parsed.response().to_name() == "resp-bridge-0badcafe-42.json"

    @pytest.mark.parametrize(
        "name",
        [
            ".req-bridge-0badcafe-42.json.tmp",  # a writer's temporary file
            "req-bridge-0badcafe-42.json.tmp",
            "req-bridge-0badcafe-42.JSON",
            "req-Bridge-0badcafe-42.json",  # case folds on Windows shares: refused
            "req-bridge-0BADCAFE-42.json",
            "req-bridge-0badcafe-042.json",  # one spelling per id
            "req-bridge-0badcafe-0.json",
            f"req-bridge-0badcafe-{MAX_ID + 1}.json",
            "req-bridge-42.json",  # no session
            "req-bri-dge-0badcafe-42.json",
            "ack-bridge-0badcafe-42.json",
            "req-bridge-0badcafe-42.json~",
        ],
    )
    def test_only_exact_final_names_are_complete_files(self, name: str) -> None:
        assert MessageName.parse(name) is None

    def test_temp_name_is_ignored_by_readers_but_says_what_it_will_become(self) -> None:
        final = naming.request_name("bridge", SESSION, 3)
        temp = naming.temp_name(final)
        assert temp == ".req-bridge-0badcafe-3.json.tmp"
        assert MessageName.parse(temp) is None
        assert naming.temp_target(temp) == MessageName.parse(final)
        assert naming.temp_target(final) is None

    def test_bridge_ids_and_sessions_are_checked(self) -> None:
        assert naming.check_bridge_id("front_bar_2")
        assert not naming.check_bridge_id("Front")
        assert not naming.check_bridge_id("a-b")
        assert not naming.check_bridge_id("x" * 33)
        assert naming.check_session(SESSION) and not naming.check_session("0badcaf")


class TestWhatTheBridgeDoesWithAResponse:
    def test_the_awaited_response_is_read(self) -> None:
        name = f"resp-bridge-{SESSION}-7.json"
        assert naming.response_disposition(name, "bridge", SESSION, {7}) is Disposition.READ

    @pytest.mark.parametrize(
        "name",
        [
            f"resp-bridge-{SESSION}-8.json",  # answered already (a duplicate), or never asked
            f"resp-bridge-{OLD_SESSION}-7.json",  # an earlier session's
        ],
    )
    def test_a_response_nobody_waits_for_is_discarded(self, name: str) -> None:
        assert naming.response_disposition(name, "bridge", SESSION, {7}) is Disposition.DISCARD

    @pytest.mark.parametrize(
        "name",
        [
            f"resp-kitchen-{SESSION}-7.json",  # another bridge's
            f".resp-bridge-{SESSION}-7.json.tmp",  # the POS still writing it
            f"req-bridge-{SESSION}-7.json",
            "notes.txt",
        ],
    )
    def test_other_files_are_left_alone(self, name: str) -> None:
        assert naming.response_disposition(name, "bridge", SESSION, {7}) is Disposition.LEAVE


class TestStartUpRecovery:
    def test_own_requests_of_earlier_sessions_are_withdrawn(self) -> None:
        assert naming.stale_request(f"req-bridge-{OLD_SESSION}-1.json", "bridge", SESSION)
        assert naming.stale_request(f".req-bridge-{OLD_SESSION}-1.json.tmp", "bridge", SESSION)

    def test_current_and_foreign_requests_are_kept(self) -> None:
        assert not naming.stale_request(f"req-bridge-{SESSION}-1.json", "bridge", SESSION)
        assert not naming.stale_request(f"req-kitchen-{OLD_SESSION}-1.json", "bridge", SESSION)
        assert not naming.stale_request("readme.txt", "bridge", SESSION)

    def test_the_pos_unfinished_responses_are_not_the_bridges_to_delete(self) -> None:
        assert naming.own_temp_response(f".resp-bridge-{SESSION}-1.json.tmp", "bridge")
        assert not naming.own_temp_response(f"resp-bridge-{SESSION}-1.json", "bridge")


class TestContents:
    def test_reply_file_decodes_to_its_reply(self) -> None:
        error = Reply(7, error=ErrorInfo("bill_closed", "closed"))
        data = naming.encode_file(encode_reply(error))
        assert data.endswith(b"\n")
        assert naming.decode_response_file(data, 7) == error

    def test_request_file_decodes_on_the_pos_side(self) -> None:
        request = Request(9, "get_open_bill", {"location": "1", "table": 4})
        data = naming.encode_file(encode_request(request))
        assert naming.decode_request_file(data, 9) == request

    def test_every_cut_short_file_is_rejected(self) -> None:
        data = reply_file()
        for end in range(len(data) - 1):  # all but the final newline is required
            with pytest.raises(WireFormatError):
                naming.decode_response_file(data[:end], 7)

    def test_a_file_named_for_another_request_is_rejected(self) -> None:
        with pytest.raises(WireFormatError, match="id 7 in the file named for request 8"):
            naming.decode_response_file(reply_file(7), 8)

    def test_a_utf8_byte_order_mark_is_tolerated(self) -> None:
        assert naming.decode_response_file(b"\xef\xbb\xbf" + reply_file(), 7).id == 7

    def test_oversized_files_are_rejected_before_parsing(self) -> None:
        with pytest.raises(WireFormatError, match="over"):
            naming.decode_response_file(b" " * (naming.MAX_FILE_BYTES + 1), 7)
        with pytest.raises(WireFormatError, match="over"):
            naming.encode_file(b"x" * naming.MAX_FILE_BYTES)


class TestThePageForVendors:
    """``docs/drivers/file-drop.md``'s examples follow the rules they describe."""

    PAGE = Path(__file__).resolve().parents[3] / "docs/drivers/file-drop.md"

    def test_every_example_file_name_is_complete_or_a_temporary_name(self) -> None:
        text = self.PAGE.read_text()
        names = set(re.findall(r"\.?(?:req|resp)-bridge-[0-9a-f]{8}-\d+\.json(?:\.tmp)?", text))
        assert len(names) >= 10
        for name in names:
            assert (MessageName.parse(name) or naming.temp_target(name)) is not None, name

    def test_every_example_message_decodes(self) -> None:
        blocks = re.findall(r"```json\n(.*?)```", self.PAGE.read_text(), re.S)
        assert len(blocks) >= 6
        for block in blocks:
            payload = "".join(line.strip() for line in block.splitlines()).encode()
            data = json.loads(payload)
            if "op" in data:
                naming.decode_request_file(payload, data["id"])
            else:
                result = naming.decode_response_file(payload, data["id"]).result or {}
                if "bill" in result:
                    assert messages.bill_from_result(result) is not None
                if "payment" in result:
                    messages.payment_from_result(result)

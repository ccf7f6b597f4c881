"""FileDropDriver's URL and options, and its registration under the ``file`` scheme."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from drivers.errors import DriverConfigError
from drivers.filedrop.driver import FileDropDriver, folder_of
from drivers.filedrop.exchange import FolderExchange
from drivers.registry import load_driver
from tests.drivers.filedrop.conftest import make_driver


@pytest.mark.parametrize(
    ("url", "folder"),
    [
        ("file:///var/spool/pos", "/var/spool/pos"),
        ("file://localhost/var/spool/pos", "/var/spool/pos"),
        ("file:///var/spool/pos%20drop", "/var/spool/pos drop"),
        ("file:///C:/POS/Drop", "C:/POS/Drop"),
        ("file://server/share/pos", "//server/share/pos"),
    ],
)
def test_url_forms_name_the_folder(url: str, folder: str) -> None:
    assert folder_of(urlsplit(url)) == Path(folder)


@pytest.mark.parametrize("url", ["file:", "file://", "file:relative/path"])
def test_a_url_without_an_absolute_folder_is_a_config_error(url: str) -> None:
    with pytest.raises(DriverConfigError) as raised:
        make_driver(url)
    assert raised.value.key == "url"


def test_options_from_the_url_and_the_config_reach_the_exchange(tmp_path: Path) -> None:
    driver = make_driver(f"file://{tmp_path}?watch=poll", bridge_id="front_bar", timeout_ms=700)
    exchange = driver.exchange
    assert isinstance(exchange, FolderExchange)
    assert exchange.root == tmp_path and exchange.bridge_id == "front_bar"
    assert exchange.polling and exchange.poll_interval_ms == 300


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"bridge_id": "Front-Bar"}, "options.bridge_id"),
        ({"watch": "inotify"}, "options.watch"),
        ({"poll_interval_ms": 0}, "options.poll_interval_ms"),
        ({"timeout_ms": 0}, "options.timeout_ms"),
        ({"baudrate": 9600}, "options.baudrate"),
    ],
)
def test_bad_options_name_their_key(tmp_path: Path, options: dict[str, object], key: str) -> None:
    with pytest.raises(DriverConfigError) as raised:
        make_driver(f"file://{tmp_path}", **options)
    assert raised.value.key == key


def test_the_file_scheme_loads_this_driver_through_its_entry_point() -> None:
    assert load_driver("file") is FileDropDriver
    assert FileDropDriver.info.name == "file"


def test_the_commented_example_in_config_example_toml_is_a_valid_driver() -> None:
    text = (Path(__file__).resolve().parents[3] / "config.example.toml").read_text()
    section = text[text.index("# [drivers.file-example]") :].split("\n\n")[0]
    uncommented = "\n".join(
        line[2:]
        for line in section.splitlines()
        if re.match(r"# (\[|[a-z_]+ = )", line)  # tables and settings, not prose
    )
    data = tomllib.loads(uncommented)["drivers"]["file-example"]
    assert set(data["options"]) == {
        "bridge_id", "timeout_ms", "write_timeout_ms", "watch", "poll_interval_ms",
    }  # fmt: skip
    driver = make_driver(data["url"], **data["options"])
    assert isinstance(driver.exchange, FolderExchange)
    assert driver.exchange.root == Path("/var/spool/pos")

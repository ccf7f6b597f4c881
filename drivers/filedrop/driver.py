"""The file-drop driver: ``file:///var/spool/pos``, a POS that trades files in a folder.

For back-office POS systems that offer no socket or serial port but read and write files in
a (often shared) folder. The wire format is ``docs/drivers/file-drop.md``; the exchange is
``drivers/filedrop/exchange.py``.

Options (URL query or ``[drivers.<name>.options]``), besides ``timeout_ms`` and
``write_timeout_ms`` of every wire driver:

- ``bridge_id`` (default ``"bridge"``): this bridge's name in file names, so several bridges
  (or drivers) may share one folder; lowercase letters, digits and ``_``, at most 32;
- ``watch``: ``"events"`` (default; the OS's change notifications) or ``"poll"`` (list the
  folder every ``poll_interval_ms``): for network shares whose server sends no change
  notifications (some SMB/NFS servers), where ``"events"`` would only see responses at the
  exchange's idle rescan;
- ``poll_interval_ms`` (default 300): how often ``"poll"`` looks.

URL forms: ``file:///var/spool/pos``, ``file:///C:/POS/Drop`` (Windows drive),
``file://server/share/pos`` (Windows UNC path ``\\\\server\\share\\pos``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import SplitResult, unquote

from drivers.base import DriverInfo, DriverSettings
from drivers.errors import DriverConfigError
from drivers.filedrop import naming
from drivers.filedrop.exchange import FolderExchange
from drivers.options import int_option, text_option
from drivers.wire.driver import Exchange, WireDriver

WATCH_MODES = ("events", "poll")


class FileDropDriver(WireDriver):
    """A POS reached through request and response files; see the module docstring."""

    info: ClassVar[DriverInfo] = DriverInfo(
        name="file",
        version="1.0",
        description="POS that exchanges JSON request/response files in a shared folder.",
    )

    def make_exchange(self, settings: DriverSettings, options: dict[str, Any]) -> Exchange:
        bridge_id = text_option(options, "bridge_id", "bridge")
        if not naming.check_bridge_id(bridge_id):
            raise DriverConfigError(
                "options.bridge_id", "lowercase letters, digits and _, 1 to 32 characters"
            )
        watch = text_option(options, "watch", "events", WATCH_MODES)
        poll_interval_ms = int_option(options, "poll_interval_ms", 300, 10, 60_000)
        return FolderExchange(
            folder_of(settings.url),
            bridge_id=bridge_id,
            polling=watch == "poll",
            poll_interval_ms=poll_interval_ms,
        )


def folder_of(url: SplitResult) -> Path:
    """The folder a ``file:`` URL names.

    Raises:
        DriverConfigError: no absolute path in the URL.
    """
    path = unquote(url.path)
    if re.fullmatch(r"/[A-Za-z]:(/.*)?", path):  # file:///C:/POS → C:/POS
        path = path[1:]
    elif url.netloc not in ("", "localhost"):  # file://server/share → //server/share (UNC)
        path = f"//{url.netloc}{path}"
    if not path or not (path.startswith("/") or re.match(r"[A-Za-z]:/", path)):
        raise DriverConfigError("url", "file-drop needs an absolute folder: file:///path/to/folder")
    return Path(path)

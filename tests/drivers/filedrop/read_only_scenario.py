"""A folder turning read-only and writable again, as a script: the test runs it as a user
whose writes the permission bits stop (as root, with CAP_DAC_OVERRIDE dropped by setpriv).

``python -m tests.drivers.filedrop.read_only_scenario FOLDER`` prints one line per step and
exits 0 only if every step went as the file-drop rules say.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from drivers.emulator.run import make_pos, running_emulator
from drivers.errors import PosOfflineError
from tests.drivers.filedrop.conftest import make_driver


async def main(folder: Path) -> None:
    async with running_emulator(f"file://{folder}", make_pos(None, tables=3)) as (url, _):
        driver = make_driver(url, timeout_ms=3000)
        await driver.open()
        try:
            print("tables", len(await driver.list_tables("1")), flush=True)
            (folder / "requests").chmod(0o555)
            try:
                await driver.list_tables("1")
                print("written into a read-only folder", flush=True)
                sys.exit(1)
            except PosOfflineError as exc:
                print("offline", exc, flush=True)
            finally:
                (folder / "requests").chmod(0o755)
            print("recovered tables", len(await driver.list_tables("1")), flush=True)
        finally:
            await driver.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))

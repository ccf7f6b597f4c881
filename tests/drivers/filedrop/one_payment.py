"""A bridge reduced to one payment, run as a subprocess so a test can kill it mid-call.

``python -m tests.drivers.filedrop.one_payment URL INSTRUCTION_JSON``: open the file-drop
driver on URL, apply the payment (arguments as ``drivers.wire.messages.instruction_args``),
print the POS's reference.
"""

from __future__ import annotations

import asyncio
import json
import sys

from drivers.wire.messages import instruction_from_args
from tests.drivers.filedrop.conftest import make_driver


async def main(url: str, args: str) -> None:
    driver = make_driver(url, timeout_ms=60_000)
    await driver.open()
    try:
        applied = await driver.apply_payment(instruction_from_args(json.loads(args)))
        print(applied.pos_reference, flush=True)
    finally:
        await driver.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

"""The worked examples of ``docs/drivers/tcp.md``, made by the codec itself.

``python -m tests.drivers.tcp.spec_examples`` prints every example as the page shows it;
``test_spec_examples.py`` checks that the page's hex is exactly this.
"""

from __future__ import annotations

from drivers.tcp.codec import HEADER, Frame, FrameType, reply_frame, request_frame
from drivers.wire.messages import ErrorInfo, Reply, Request

PAYMENT_ARGS = {
    "payment_id": "loke-7f3a",
    "location": "1",
    "table": 4,
    "bill_ref": "1-T004-00004",
    "currency": "AUD",
    "amount": 2500,
    "tip": 0,
    "label": "LOKE",
}

EXAMPLES: dict[str, list[Frame]] = {
    "health": [
        request_frame(Request(1, "health", {})),
        reply_frame(Reply(1, {"online": True, "detail": "ok"})),
    ],
    "apply-refused": [
        request_frame(Request(2, "apply_payment", PAYMENT_ARGS)),
        reply_frame(Reply(2, error=ErrorInfo("bill_closed", "bill 1-T004-00004 is closed"))),
    ],
    "pipelined": [
        request_frame(Request(3, "find_payment", {"location": "1", "payment_id": "loke-7f3a"})),
        request_frame(Request(4, "get_open_bill", {"location": "1", "table": 9})),
        reply_frame(Reply(4, {"bill": None})),
        reply_frame(Reply(3, {"payment": None})),
    ],
}


def render(frame: Frame) -> str:
    """One frame as the page shows it: the header annotated, then 16 payload bytes a line."""
    data = frame.to_bytes()
    _, version, kind, request_id, length, crc = HEADER.unpack(data[:16])
    direction = "bridge → POS" if kind == FrameType.REQUEST else "POS → bridge"
    lines = [
        f"{data[:16].hex(' ')}   {FrameType(kind).name.lower()} ({direction}) v{version}"
        f" id={request_id} length={length} crc={crc:08x}"
    ]
    payload = frame.payload
    for at in range(0, len(payload), 16):
        chunk = payload[at : at + 16]
        text = chunk.decode("utf-8", errors="replace")
        lines.append(f"{chunk.hex(' '):<47}   {text}")
    return "\n".join(lines)


def render_example(name: str) -> str:
    return "\n\n".join(render(frame) for frame in EXAMPLES[name])


if __name__ == "__main__":
    for name in EXAMPLES:
        print(f"<!-- hex:{name} -->\n```text\n{render_example(name)}\n```\n")

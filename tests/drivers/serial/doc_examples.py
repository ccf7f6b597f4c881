"""The worked examples of ``docs/drivers/serial.md``, built by the codec itself.

``python -m tests.drivers.serial.doc_examples`` prints them in the doc's format;
``test_doc_examples.py`` checks that the page shows exactly these bytes.
"""

from __future__ import annotations

from drivers.serial.frames import AckFrame, DataFrame, NakFrame, RstAckFrame, RstFrame
from drivers.wire import messages
from drivers.wire.messages import ErrorInfo, Reply, Request

EXAMPLES: dict[str, bytes] = {
    "pos-rst": RstFrame(0x5C).to_bytes(),
    "pos-rst-ack": RstAckFrame(0x5C).to_bytes(),
    "bridge-rst": RstFrame(0xA1).to_bytes(),
    "bridge-rst-ack": RstAckFrame(0xA1).to_bytes(),
    "health-request": DataFrame(0x2A, messages.encode_request(Request(1, "health"))).to_bytes(),
    "health-ack": AckFrame(0x2A).to_bytes(),
    "health-reply": DataFrame(
        0x07, messages.encode_reply(Reply(1, result={"online": True, "detail": "ok"}))
    ).to_bytes(),
    "health-reply-ack": AckFrame(0x07).to_bytes(),
    "find-payment-request": DataFrame(
        0x2B,
        messages.encode_request(
            Request(2, "find_payment", {"location": "1", "payment_id": "p-42"})
        ),
    ).to_bytes(),
    "refusal-reply": DataFrame(
        0x08,
        messages.encode_reply(
            Reply(3, error=ErrorInfo("bill_closed", "bill 1-T004-00007 is closed"))
        ),
    ).to_bytes(),
    "nak": NakFrame(0x08).to_bytes(),
}


def as_hex(data: bytes) -> str:
    """16 bytes a line, lower-case, space-separated: the doc's format."""
    return "\n".join(data[i : i + 16].hex(" ") for i in range(0, len(data), 16))


if __name__ == "__main__":
    for name, data in EXAMPLES.items():
        print(f"<!-- example: {name} -->\n```text\n{as_hex(data)}\n```\n")

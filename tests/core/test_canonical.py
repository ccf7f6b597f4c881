"""canonical_json writes exactly the bytes json.dumps wrote: digests stored with idempotency
records and bill versions quoted by platforms must not change with the encoder."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.core.bill import BillItem
from bridge.core.canonical import canonical_json
from bridge.core.idempotency import request_fingerprint
from tests.core.factories import a_bill, paid

# Every kind of character, lone surrogates included (st.text leaves them out by default).
any_text = st.text(st.characters(codec=None, categories=None), max_size=12)
digested = st.recursive(
    st.none() | st.booleans() | st.integers() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=20,
)


def stdlib(value: Any, ensure_ascii: bool) -> bytes | None:
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii)
        return text.encode()
    except UnicodeEncodeError:
        return None


@settings(max_examples=400, deadline=None)
@given(digested, st.booleans())
def test_same_bytes_as_the_standard_library(value: Any, ensure_ascii: bool) -> None:
    expected = stdlib(value, ensure_ascii)
    if expected is None:  # a lone surrogate without escapes: neither can write it as UTF-8
        try:
            canonical_json(value, ensure_ascii=ensure_ascii)
        except UnicodeEncodeError:
            return
        raise AssertionError("canonical_json wrote text json.dumps cannot encode")
    assert canonical_json(value, ensure_ascii=ensure_ascii) == expected


def test_values_where_the_encoders_differ_fall_back() -> None:
    """orjson refuses the first two and a lone surrogate; json escapes the others (DEL too)
    under ensure_ascii, orjson does not."""
    for value in ({"a": 2**70}, {1: "x"}, {"é": "日"}, {"k": "a\x7fb"}):
        for ensure_ascii in (True, False):
            assert canonical_json(value, ensure_ascii=ensure_ascii) == stdlib(value, ensure_ascii)
    assert canonical_json(["\ud800"], ensure_ascii=True) == b'["\\ud800"]'  # a lone surrogate


def test_known_digests_do_not_move() -> None:
    """Pinned outputs of the encoder this replaced (json.dumps): a change that moved them
    would 422 every retried payment stored before an upgrade and 409 every bill a guest is
    looking at. Non-ASCII text included: versions escape it, fingerprints do not."""
    scope = {"location": "loc-1", "table": 12, "body": {"paymentId": "p-1", "amount": 1050}}
    assert request_fingerprint(scope) == (
        "55b222be530f6174236e328d60c6d6a4a9edcb20f0fd2edaac5897ea4b8282a5"
    )
    scope = {"location": "l", "table": 1, "body": {"name": "Zoë 🍕", "billRef": "B\u2028"}}
    assert request_fingerprint(scope) == (
        "1f5f00f450fa3612eb5f11d1d3171de1bdaba90671a48e99b339622eee946489"
    )
    bill = a_bill()
    assert bill.version == "c53459446f-f9f239"
    assert paid(bill, 500, 50, "pé").version == "c53459446f-ea4366"
    assert a_bill(items=(BillItem("Crème brûlée 日本", 1, 900, "CB"),)).version == (
        "49c0bfafa3-f9f239"
    )

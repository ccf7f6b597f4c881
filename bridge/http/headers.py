"""HTTP headers that must not cross a proxy: the relay and the tunnel client both drop them."""

from __future__ import annotations

from collections.abc import Iterable

#: RFC 9110 §7.6.1 hop-by-hop headers (and the older Keep-Alive / Proxy-Connection): never
#: forwarded. Headers a ``Connection`` header names are dropped too.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


def end_to_end(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Headers minus the hop-by-hop ones, including those a ``Connection`` header names."""
    pairs = [(bytes(k), bytes(v)) for k, v in headers]
    named = {
        token.strip().lower()
        for k, v in pairs
        if k.lower() == b"connection"
        for token in v.split(b",")
    }
    return [(k, v) for k, v in pairs if k.lower() not in HOP_BY_HOP and k.lower() not in named]

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


def end_to_end(
    headers: Iterable[tuple[bytes, bytes]], drop: frozenset[bytes] = HOP_BY_HOP
) -> list[tuple[bytes, bytes]]:
    """Headers minus the hop-by-hop ones, including those a ``Connection`` header names.
    ``drop``: lower-case names to leave out, a superset of :data:`HOP_BY_HOP` (the relay adds
    the ``X-Forwarded-*`` it sets itself, in the same pass)."""
    pairs = [
        (k, v) if type(k) is bytes and type(v) is bytes else (bytes(k), bytes(v))
        for k, v in headers
    ]
    for k, v in pairs:  # one header in a request at most, usually none: no set built per call
        if k.lower() == b"connection":
            drop = drop | {token.strip().lower() for token in v.split(b",")}
    return [(k, v) for k, v in pairs if k.lower() not in drop]

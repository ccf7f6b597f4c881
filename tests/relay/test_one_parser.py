"""One parser reads every HTTP byte: the same raw request gets the same answer straight from
the bridge and through the relay (``/v/{venue}``…), the real relay and the real bridge on
127.0.0.1, bytes written by hand (``raw_http.py``).

Each acceptance line of the issue is its own test, both ways: no ``Host``; 129 header
fields; ``..`` and ``%2e%2e`` segments (never another route); absolute-form targets; chunk
sizes that are not hex digits. Then a property: generated requests, the same status.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_AUTH, LOKE_AUTH, loke_url
from tests.relay.raw_http import Answer, Ports, request, send, stack, via_relay

LOKE = list(LOKE_AUTH.items())
ADMIN = list(ADMIN_AUTH.items())


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ports]:
    with stack(tmp_path_factory.mktemp("one-parser")) as running:
        yield running


def both(ports: Ports, direct: bytes, relayed: bytes) -> tuple[Answer, Answer]:
    return send(ports.bridge, direct), send(ports.relay, relayed)


def same_both_ways(
    ports: Ports, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
) -> tuple[Answer, Answer]:
    """``target`` straight to the bridge and under ``/v/{venue}`` to the relay."""
    direct, relayed = both(
        ports,
        request(method, target, headers, body),
        request(method, via_relay(target), headers, body),
    )
    assert (relayed.status, relayed.error) == (direct.status, direct.error), target
    return direct, relayed


def test_the_stack_answers_a_plain_bill_both_ways(ports: Ports) -> None:
    direct, relayed = same_both_ways(ports, "GET", loke_url(1), LOKE)
    assert direct.status == 200 and relayed.json == direct.json


def test_http_1_1_without_host_is_400_both_ways(ports: Ports) -> None:
    direct, relayed = both(
        ports,
        request("GET", "/healthz", host=False),
        request("GET", via_relay("/healthz"), host=False),
    )
    assert direct.status == relayed.status == 400


def test_129_header_fields_are_400_both_ways(ports: Ports) -> None:
    """aiohttp's parser takes at most 128 fields (``max_headers``), ``Host`` among them."""
    fields = [(f"X-Field-{i}", "x") for i in range(128)]  # and Host: 129
    direct, relayed = both(
        ports,
        request("GET", "/healthz", fields),
        request("GET", via_relay("/healthz"), fields),
    )
    assert direct.status == relayed.status == 400
    fewer = fields[:100]
    direct, relayed = both(
        ports, request("GET", "/healthz", fewer), request("GET", via_relay("/healthz"), fewer)
    )
    assert direct.status == relayed.status == 200


@pytest.mark.parametrize(
    ("target", "headers", "elsewhere"),
    [
        ("/loke/v1/locations/zzz/../loc-main/tables/1/bill", LOKE, loke_url(1)),
        ("/loke/v1/locations/zzz/%2e%2e/loc-main/tables/1/bill", LOKE, loke_url(1)),
        ("/loke/v1/locations/zzz/%2E%2e/loc-main/tables/1/bill", LOKE, loke_url(1)),
        ("/loke/v1/locations/loc-main/tables/1/./bill", LOKE, loke_url(1)),
        ("/healthz/../api/status", ADMIN, "/api/status"),
        ("/healthz/%2e%2e/api/status", ADMIN, "/api/status"),
        ("/x/..%2fapi/status", ADMIN, "/api/status"),
    ],
)
def test_dot_segments_answer_alike_and_never_reach_another_route(
    ports: Ports, target: str, headers: list[tuple[str, str]], elsewhere: str
) -> None:
    direct, _ = same_both_ways(ports, "GET", target, headers)
    other, _ = same_both_ways(ports, "GET", elsewhere, headers)
    assert other.status == 200  # the route the dots would reach if they were removed...
    assert direct.status != 200  # ...is not the one that answered


def test_dots_in_the_relays_venue_segment_do_not_reach_another_venue(ports: Ports) -> None:
    for target in ("/v/zzz/../cafe-a/healthz", "/v/zzz/%2e%2e/cafe-a/healthz"):
        answer = send(ports.relay, request("GET", target))
        assert (answer.status, answer.error) == (503, "venue_offline"), target


@pytest.mark.parametrize(
    ("target", "headers"),
    [("/healthz", []), (loke_url(2), LOKE), ("/loke/v1/locations/zzz/../loc-main/tables", LOKE)],
)
def test_an_absolute_form_target_answers_alike(
    ports: Ports, target: str, headers: list[tuple[str, str]]
) -> None:
    direct, relayed = both(
        ports,
        request("GET", f"http://bridge.example{target}", headers),
        request("GET", f"http://relay.example{via_relay(target)}", headers),
    )
    origin, _ = same_both_ways(ports, "GET", target, headers)
    assert (direct.status, direct.error) == (relayed.status, relayed.error)
    assert (direct.status, direct.error) == (origin.status, origin.error)
    if direct.status == 200:
        assert relayed.json == direct.json


@pytest.mark.parametrize("size", ["+a", "-1", "0x1", "1_0"])
def test_a_chunk_size_that_is_not_hex_digits_is_400_both_ways(ports: Ports, size: str) -> None:
    headers = [*LOKE, ("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]
    body = f"{size}\r\n{{}}\r\n0\r\n\r\n".encode()
    direct, relayed = same_both_ways(ports, "POST", loke_url(3, "payments"), headers, body)
    assert direct.status == relayed.status == 400


SMUGGLING = {
    "CL and TE": [("Content-Length", "4"), ("Transfer-Encoding", "chunked")],
    "two lengths": [("Content-Length", "2"), ("content-length", "30")],
    "TE not chunked": [("Transfer-Encoding", "gzip")],
    "TE with a space": [("Transfer-Encoding", " chunked")],
}


@pytest.mark.parametrize("name", sorted(SMUGGLING))
def test_ambiguous_framing_answers_alike(ports: Ports, name: str) -> None:
    headers = [*LOKE, ("Content-Type", "application/json"), *SMUGGLING[name]]
    same_both_ways(ports, "POST", loke_url(3, "payments"), headers, b"0\r\n\r\n")


def test_bare_lf_line_ends_answer_alike(ports: Ports) -> None:
    auth = LOKE_AUTH["Authorization"]
    rest = f" HTTP/1.1\nHost: x\nAuthorization: {auth}\nConnection: close\n\n"
    direct, relayed = both(
        ports,
        f"GET {loke_url(3)}{rest}".encode(),
        f"GET {via_relay(loke_url(3))}{rest}".encode(),
    )
    assert direct.status == relayed.status


# -- the property ---------------------------------------------------------------------------

#: Path segments: plain, empty, dots, percent-escapes (of dots, slashes, odd bytes), and the
#: bridge's own route words so generated paths sometimes come close to a real route.
SEGMENT = st.one_of(
    st.sampled_from(
        [
            *("loke", "v1", "locations", "loc-main", "tables", "1", "bill", "payments", "api"),
            *("status", "healthz", "openapi.json", "", ".", "..", "%2e", "%2e%2e", "%2E%2E"),
            *(".%2e", "%2f", "%2F..", "%00", "%25", "%7e", "%ff", "a%20b", "~", ";x", "a=b"),
        ]
    ),
    st.text("abcXYZ019-._~!$&'()*+,;=:@", min_size=1, max_size=6),
)
BASES = ["", loke_url(1), "/loke/v1/locations/loc-main/tables", "/api/status", "/healthz"]
QUERY = st.one_of(
    st.just(""),
    st.text("abc019=&%2e+/?:@", max_size=12).map(lambda q: "?" + q),
)
#: Header fields a platform might send. Not generated, each for a reason: ``Host`` (the
#: relay's and the bridge's names differ, and each sends its own), ``X-Forwarded-*`` (the
#: relay sets them), hop-by-hop fields (the relay drops them, as a proxy must), framing
#: fields (the body's framing is generated below, and written correctly), and non-ASCII
#: bytes (aiohttp's client writes header text as UTF-8: the forwarder refuses a value it
#: could not send unchanged, where the bridge alone would take it).
HEADER = st.one_of(
    st.sampled_from([*LOKE, *ADMIN, ("Authorization", "Bearer wrong")]),
    st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-8"]).map(
        lambda v: ("Content-Type", v)
    ),
    st.tuples(
        st.text("abcdefXYZ-", min_size=1, max_size=8).map(lambda n: "X-" + n),
        st.text("abc xyz019;=,/\"'", max_size=20),
    ),
)
METHOD = st.one_of(
    st.just("GET"), st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
)
BODY = st.one_of(
    st.just(b""),
    st.just(b""),
    st.just(b"{}"),
    st.just(b'{"paymentId": 1}'),
    st.binary(max_size=64),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, list[tuple[str, str]], bytes]:
    base = draw(st.sampled_from(BASES))
    segments = draw(st.one_of(st.just([]), st.lists(SEGMENT, max_size=4)))  # often a real URL
    path = base + "".join("/" + s for s in segments) if segments or base else "/"
    target = path + draw(QUERY)
    headers = draw(st.lists(HEADER, max_size=5))
    method = draw(METHOD)
    body = draw(BODY)
    if body or method in ("POST", "PUT", "PATCH"):
        if draw(st.booleans()):
            headers.append(("Content-Length", str(len(body))))
            raw = body
        else:
            headers.append(("Transfer-Encoding", "chunked"))
            raw = (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        return method, target, headers, raw
    return method, target, headers, b""


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(generated=requests())
def test_generated_requests_get_the_same_status_both_ways(
    ports: Ports, generated: tuple[str, str, list[tuple[str, str]], bytes]
) -> None:
    """Generated method, target (odd segments, percent-escapes, queries), headers and body:
    the bridge's status straight and through the relay are the same. A payment body that is
    valid never comes out of these (it needs the bill's own numbers), so no state changes
    between the two sends."""
    method, target, headers, body = generated
    direct, _ = same_both_ways(ports, method, target, headers, body)
    event(f"status {direct.status}")

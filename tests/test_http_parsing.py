"""Request parsing (RFC 9112 3.2, 6.1, 6.3; RFC 9113 8.1.1), over real sockets.

Each refused request gets one plain error page, then the connection closes;
nothing after the refused head (a smuggled request) is ever answered. Over
HTTP/2 a malformed request resets its own stream, and its siblings finish.
The rules are listed in docs/http.md, "Request parsing".
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import h2.errors
import hyperframe.frame
import pytest
from hyperframe.frame import DataFrame, HeadersFrame

from telex.protocols import http_parsing as parsing
from tests.apps.jsonable import from_jsonable as decode
from tests.support.http import RAW, exchange_until_closed, raw_exchange
from tests.support.processes import TelexServer
from tests.support.redis_server import free_port
from tests.support.waiting import wait_until
from tests.test_http2 import H2Client, RawH2

SMUGGLED = b"GET /message/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """HTTP/1.1 and h2c on ``server.port``, h2c also on ``server.clear_port``; an access log."""
    log = tmp_path_factory.mktemp("parsing") / "access.log"
    clear_port = free_port()
    process = TelexServer(RAW, "-e", f"tcp:{clear_port}:interface=127.0.0.1", "--access-log", str(log))
    process.clear_port = clear_port
    process.access_log = log
    with process:
        yield process
    assert not [line for line in process.lines if "Traceback" in line or "Unhandled" in line], process.lines


def only_response(raw: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    """The one response in ``raw`` (status, headers, body): nothing may follow it."""
    head, separator, rest = raw.partition(b"\r\n\r\n")
    assert separator, raw
    status_line, *lines = head.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers[b"content-length"])
    assert rest[length:] == b"", f"a second response followed: {rest[length:]!r}"
    return int(status_line.split(b" ")[1]), headers, rest[:length]


def refused(server, data: bytes) -> tuple[int, bytes]:
    """Send ``data``; the status and page of the only response, the connection closed after it."""
    status, headers, body = only_response(exchange_until_closed(server, data))
    assert headers[b"connection"] == b"close"
    assert headers[b"content-type"] == b"text/html; charset=utf-8"
    assert b"Traceback" not in body
    return status, body


def served_message(server, data: bytes) -> dict:
    status, _, body = only_response(exchange_until_closed(server, data))
    assert status == 200, body
    return decode(json.loads(body))


# -- Transfer-Encoding (RFC 9112 6.1, 6.3) ------------------------------------------------


@pytest.mark.parametrize(
    "codings",
    [
        [b"identity"],
        [b"IDENTITY"],
        [b"gzip"],
        [b"gzip, chunked"],
        [b"gzip", b"chunked"],
        [b"chunked;ext=1"],
    ],
    ids=["identity", "identity-uppercase", "gzip", "gzip-chunked", "gzip-then-chunked-lines", "parameters"],
)
def test_a_transfer_coding_other_than_chunked_is_501_and_closes(server, codings):
    lines = b"".join(b"Transfer-Encoding: %s\r\n" % coding for coding in codings)
    status, body = refused(
        server, b"POST /body HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n0\r\n\r\n" + SMUGGLED
    )
    assert status == 501 and b"chunked" in body


def test_identity_with_content_length_is_501_and_its_body_is_not_a_request(server):
    smuggle = (
        b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 45\r\nTransfer-Encoding: identity\r\n\r\n"
        + SMUGGLED
    )
    assert refused(server, smuggle)[0] == 501


@pytest.mark.parametrize(
    "codings",
    [[b"chunked, gzip"], [b"chunked, chunked"], [b"chunked", b"chunked"], [b"chunked", b"identity"], [b""]],
    ids=["chunked-gzip", "chunked-twice", "chunked-twice-lines", "chunked-then-identity-lines", "empty"],
)
def test_chunked_not_last_or_not_once_is_400_and_closes(server, codings):
    lines = b"".join(b"Transfer-Encoding: %s\r\n" % coding for coding in codings)
    status, _ = refused(server, b"POST /body HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n0\r\n\r\n" + SMUGGLED)
    assert status == 400


@pytest.mark.parametrize("chunked_first", [True, False], ids=["chunked-first", "length-first"])
def test_transfer_encoding_with_content_length_is_400_and_closes(server, chunked_first):
    framing = [b"Transfer-Encoding: chunked\r\n", b"Content-Length: 5\r\n"]
    if not chunked_first:
        framing.reverse()
    head = b"POST /body HTTP/1.1\r\nHost: x\r\n" + b"".join(framing) + b"\r\n"
    status, body = refused(server, head + b"0\r\n\r\n" + SMUGGLED)
    assert status == 400 and b"Content-Length" in body


def test_transfer_encoding_on_http_1_0_is_400_and_closes(server):
    status, _ = refused(
        server, b"POST /body HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    )
    assert status == 400


def test_a_refused_coding_gets_no_100_continue(server):
    raw = exchange_until_closed(
        server, b"POST /body HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: gzip\r\n\r\n"
    )
    assert raw.startswith(b"HTTP/1.1 501 ")


def test_exactly_chunked_is_accepted_in_any_case_and_the_connection_stays_usable(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            b"GET /message/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    first, second = received.split(b"HTTP/1.1 200 OK")[1:]
    assert b'"size": 3' in first and b"/message/next" in second


# -- Host (RFC 9112 3.2) ---------------------------------------------------------------


def test_an_http_1_1_request_without_host_is_400_and_closes(server):
    status, body = refused(server, b"GET /message HTTP/1.1\r\n\r\n" + SMUGGLED)
    assert status == 400 and b"Host" in body


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
def test_two_host_headers_are_400_and_close(server, version):
    status, _ = refused(server, b"GET /message %s\r\nHost: a\r\nHost: b\r\n\r\n" % version + SMUGGLED)
    assert status == 400


def test_an_http_1_0_request_without_host_is_served(server):
    assert served_message(server, b"GET /message HTTP/1.0\r\n\r\n")["http_version"] == "1.0"


# -- request targets (RFC 9112 3.2.1-3.2.4) -------------------------------------------------


def test_the_absolute_form_is_served_and_its_host_is_the_requests(server):
    message = served_message(
        server,
        b"GET HTTP://Example.test:8080/message/abs?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
    )
    assert message["path"] == "/message/abs" and message["query_string"] == b"q=1"
    assert [value for name, value in message["headers"] if name == b"host"] == [b"Example.test:8080"]


@pytest.mark.parametrize("target", [b"http:///message", b"http://user@x/message", b"ftp://x/message"])
def test_an_absolute_form_without_host_with_userinfo_or_not_http_is_400(server, target):
    assert refused(server, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target + SMUGGLED)[0] == 400


def test_the_asterisk_form_is_for_options_only(server):
    options = exchange_until_closed(server, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert only_response(options)[0] == 200
    assert refused(server, b"GET * HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED)[0] == 400


def test_connect_in_the_authority_form_is_501_and_other_targets_of_connect_400(server):
    status, body = refused(server, b"CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n")
    assert status == 501 and b"proxy" in body
    assert refused(server, b"CONNECT /message HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 400


@pytest.mark.parametrize("target", [b"abc", b"example.test:80", b"message?x=/"])
def test_any_other_target_is_400_and_closes(server, target):
    status, body = refused(server, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % target + SMUGGLED)
    assert status == 400 and b"path" in body


def test_refused_requests_are_in_the_access_log(server):
    raw_exchange(server, b"GET /logged-refusal HTTP/1.1\r\n\r\n")
    raw_exchange(server, b"POST /logged-coding HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n")

    def lines() -> list[str]:
        text = server.access_log.read_text() if server.access_log.exists() else ""
        return [line for line in text.splitlines() if "/logged-" in line]

    assert wait_until(lambda: len(lines()) == 2, timeout=10)
    logged = sorted(lines(), key=lambda line: "coding" in line)
    assert '"GET /logged-refusal HTTP/1.1" 400 ' in logged[0]
    assert '"POST /logged-coding HTTP/1.1" 501 ' in logged[1]


def test_the_rules_as_pure_functions():
    assert parsing.transfer_coding_refusal(b"chunked", b"HTTP/1.1", chunked_before=False) is None
    assert parsing.transfer_coding_refusal(b" Chunked ,", b"HTTP/1.1", chunked_before=False) is None
    assert parsing.transfer_coding_refusal(b"chunked", b"HTTP/1.1", chunked_before=True).status == 400
    assert parsing.transfer_coding_refusal(b"chunked", b"HTTP/1.0", chunked_before=False).status == 400
    assert parsing.transfer_coding_refusal(b"identity", b"HTTP/1.1", chunked_before=False).status == 501
    assert parsing.head_refusal(b"GET", b"/", b"HTTP/1.1", [b"x"]) is None
    assert parsing.head_refusal(b"GET", b"//a", b"HTTP/1.1", [b"x"]) is None
    assert parsing.head_refusal(b"GET", b"/", b"HTTP/2", None) is None  # :authority is h2's to check
    assert parsing.head_refusal(b"GET", b"http://x/", b"HTTP/2", None).status == 400
    assert parsing.head_refusal(b"CONNECT", b"", b"HTTP/2", None) == parsing.NO_CONNECT
    assert parsing.absolute_form_authority(b"https://h:1?q") == b"h:1"
    assert parsing.absolute_form_authority(b"/path") is None


# -- HTTP/2: malformed requests are stream errors (RFC 9113 8.1.1) ---------------------------

#: Requests RFC 9113 calls malformed, which h2 refuses, each with what is wrong.
MALFORMED = {
    "uppercase-name-8.2.1": [(b"X-Upper", b"1")],
    "connection-specific-8.2.2": [(b"connection", b"keep-alive")],
    "te-not-trailers-8.2.2": [(b"te", b"gzip")],
    "pseudo-header-after-regular-8.3": [(b"x-a", b"1"), (b":extra", b"1")],
    "bad-content-length-8.1.1": [(b"content-length", b"abc")],
}


@pytest.fixture
def h2c(server):
    sock = socket.create_connection(("127.0.0.1", server.clear_port), timeout=10)
    client = H2Client(sock, "http")
    client.conn.config.validate_outbound_headers = False
    client.conn.config.normalize_outbound_headers = False
    yield client
    client.close()


def send_malformed(client: H2Client, extra: list[tuple[bytes, bytes]]) -> int:
    stream = client.conn.get_next_available_stream_id()
    headers = [(b":method", b"GET"), (b":path", b"/message"), (b":scheme", b"http"), (b":authority", b"x")]
    client.conn.send_headers(stream, headers + extra, end_stream=True)
    client.flush()
    return stream


@pytest.mark.parametrize("extra", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_http2_request_resets_its_stream_and_a_sibling_finishes(h2c, extra):
    sibling = h2c.request("/body", method="POST", length=5)  # in progress while the other is refused
    malformed = send_malformed(h2c, extra)
    h2c.wait(lambda: malformed in h2c.reset)
    assert h2c.reset[malformed] == h2.errors.ErrorCodes.PROTOCOL_ERROR
    h2c.send(sibling, b"hello", end=True)
    h2c.wait(lambda: sibling in h2c.ended)
    assert h2c.headers[sibling][b":status"] == b"200" and b'"size": 5' in h2c.data[sibling]
    assert h2c.get("/message/after")[0] == 200 and not h2c.terminated


def test_malformed_trailers_reset_a_stream_already_at_the_application(h2c):
    stream = h2c.request("/body", method="POST", length=5)
    h2c.send(stream, b"hello", end=False)
    h2c.conn.send_headers(stream, [(b":path", b"/no-pseudo-headers-in-trailers")], end_stream=True)
    h2c.flush()
    h2c.wait(lambda: stream in h2c.reset)
    assert h2c.reset[stream] == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert h2c.get("/message/after")[0] == 200 and not h2c.terminated


def test_a_flood_of_malformed_requests_is_a_connection_error(server):
    # Each reset spends Twisted's Rapid Reset budget (1000 at once), so a peer
    # cannot make the server reset streams without bound ("MadeYouReset").
    with socket.create_connection(("127.0.0.1", server.clear_port), timeout=10) as sock:
        raw = RawH2(sock)
        headers = [(":method", "GET"), (":scheme", "http"), (":path", "/"), ("X-Bad", "1")]
        flood(
            raw,
            lambda stream, block: [HeadersFrame(stream, block, flags=["END_HEADERS", "END_STREAM"])],
            headers,
        )
        raw.expect_connection_error(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)


def flood(raw: RawH2, frames_of: Callable[[int, bytes], list], headers: list[tuple[str, str]]) -> None:
    """Open 1,500 streams at once, each with the same request head: ``frames_of(stream, block)``."""
    raw.handshake()
    frames = []
    for stream in range(1, 2 * 1500, 2):
        frames += frames_of(stream, raw.encoder.encode(headers))
    raw.send(*frames)


def _request_with_length(client: H2Client, length: int, end_stream: bool = False) -> int:
    stream = client.conn.get_next_available_stream_id()
    headers = [(b":method", b"POST"), (b":path", b"/body"), (b":scheme", b"http"), (b":authority", b"x")]
    client.conn.send_headers(
        stream, [*headers, (b"content-length", str(length).encode())], end_stream=end_stream
    )
    client.data[stream] = bytearray()
    client.flush()
    return stream


def _longer(client: H2Client) -> int:
    stream = _request_with_length(client, 3)
    client.send(stream, b"hello", end=False)  # refused as soon as it passes the length
    return stream


def _shorter(client: H2Client) -> int:
    stream = _request_with_length(client, 10)
    client.send(stream, b"hello", end=True)
    return stream


def _ended_by_headers(client: H2Client) -> int:
    return _request_with_length(client, 5, end_stream=True)


def _ended_by_trailers(client: H2Client) -> int:
    stream = _request_with_length(client, 10)
    client.send(stream, b"hello", end=False)
    client.conn.send_headers(stream, [(b"x-checksum", b"1")], end_stream=True)
    client.flush()
    return stream


@pytest.mark.parametrize("body", [_longer, _shorter, _ended_by_headers, _ended_by_trailers])
def test_a_body_at_odds_with_its_content_length_resets_only_its_stream_8_1_1(h2c, body):
    sibling = h2c.request("/body", method="POST", length=5)
    malformed = body(h2c)
    h2c.wait(lambda: malformed in h2c.reset)
    assert h2c.reset[malformed] == h2.errors.ErrorCodes.PROTOCOL_ERROR
    h2c.send(sibling, b"hello", end=True)
    h2c.wait(lambda: sibling in h2c.ended)
    assert h2c.headers[sibling][b":status"] == b"200" and b'"size": 5' in h2c.data[sibling]
    assert not h2c.terminated


def test_the_window_a_refused_body_used_is_given_back(h2c):
    # Ten refused bodies of one 16,000-byte frame each: without the credit the
    # connection's window (64 KB) would be spent after four, and the uploads
    # that follow would stall.
    for _ in range(10):
        stream = _request_with_length(h2c, 1)
        assert h2c.send(stream, bytes(16_000), end=True, stall=5) == 16_000
        h2c.wait(lambda stream=stream: stream in h2c.reset)
    payload = bytes(200_000)
    assert h2c.get("/body", method="POST", body=payload)[0] == 200


def test_a_flood_of_bodies_at_odds_with_their_length_ends_only_that_connection(server):
    with socket.create_connection(("127.0.0.1", server.clear_port), timeout=10) as sock:
        raw = RawH2(sock)
        headers = [(":method", "POST"), (":scheme", "http"), (":path", "/body"), (":authority", "x")]
        flood(
            raw,
            lambda stream, block: [
                HeadersFrame(stream, block, flags=["END_HEADERS"]),
                DataFrame(stream, b"xy", flags=["END_STREAM"]),
            ],
            [*headers, ("content-length", "1")],
        )
        resets = 0
        while not isinstance(frame := raw.read(), hyperframe.frame.GoAwayFrame):
            assert isinstance(frame, hyperframe.frame.RstStreamFrame), frame
            assert frame.error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR
            resets += 1
        # Twisted's reset budget: 1000 at once, then the connection ends.
        assert 900 < resets < 1500 and frame.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        raw.expect_closed()
    with socket.create_connection(("127.0.0.1", server.clear_port), timeout=10) as sock:
        client = H2Client(sock, "http")
        assert client.get("/message/after")[0] == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "abc", 400), ("GET", "*", 400), ("GET", "http://x/message", 400), ("OPTIONS", "*", 200)],
)
def test_http2_targets_follow_the_same_rules(h2c, method, path, status):
    assert h2c.get(path, method=method)[0] == status


def test_http2_connect_is_501(h2c):
    stream = h2c.conn.get_next_available_stream_id()
    h2c.conn.send_headers(stream, [(b":method", b"CONNECT"), (b":authority", b"example.test:443")])
    h2c.data[stream] = bytearray()
    h2c.flush()
    h2c.wait(lambda: stream in h2c.headers)
    assert h2c.headers[stream][b":status"] == b"501"

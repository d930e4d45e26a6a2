"""What Telex puts on the wire when the application's reply is invalid (issue 18,
"Replies from the application"; docs/http.md, "What Telex does with an invalid reply").

The application is ``tests.apps.scripted_replies``: each test writes the reply
messages itself. HTTP/1.1 over raw sockets, to see the exact bytes and when the
connection closes; HTTP/2 (h2c) with the ``h2`` library, to see streams and resets.
"""

from __future__ import annotations

import re
import socket

import pytest
from h2.errors import ErrorCodes

from tests.apps.scripted_replies import script
from tests.support.http import read_until_closed
from tests.support.processes import TelexServer
from tests.test_http2 import H2Client

APP = "tests.apps.scripted_replies:channel_layer"


@pytest.fixture(scope="module")
def server():
    with TelexServer(APP) as process:
        yield process


def response(status=200, headers=(), content=b"", more=False):
    return {
        "status": status,
        "headers": [list(pair) for pair in headers],
        "content": content,
        "more_content": more,
    }


def chunk(content, more=False):
    return {"content": content, "more_content": more}


def request_bytes(headers: dict[str, str], method="GET", version="HTTP/1.1", path="/") -> bytes:
    lines = [
        f"{method} {path} {version}",
        "Host: x",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Http1:
    """One HTTP/1.1 connection, read byte-exactly."""

    def __init__(self, server) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.buffer = b""

    def send(self, *messages, method="GET", version="HTTP/1.1", **options) -> None:
        self.sock.sendall(request_bytes(script(*messages, **options), method, version))

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buffer += data

    def head(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        """The next response's status and headers (``date`` left out)."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.split(b"\r\n")
        headers = [tuple(line.lower().split(b": ", 1)) for line in lines]
        return int(status_line.split()[1]), [pair for pair in headers if pair[0] != b"date"]

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def rest_until_closed(self) -> bytes:
        """Everything after what was read, once the server has closed."""
        return self.buffer + read_until_closed(self.sock)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def http1(server):
    connection = Http1(server)
    yield connection
    connection.close()


@pytest.fixture
def h2c(server):
    connection = H2Client(socket.create_connection(("127.0.0.1", server.port), timeout=10), "http")
    yield connection
    connection.close()


def h2_request(client: H2Client, *messages, method="GET", **options) -> int:
    stream = client.conn.get_next_available_stream_id()
    headers = [(b":method", method.encode()), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"x")]
    headers += [(name.encode(), value.encode()) for name, value in script(*messages, **options).items()]
    client.conn.send_headers(stream, headers, end_stream=True)
    client.data[stream] = bytearray()
    client.flush()
    return stream


def h2_wait(client: H2Client, stream: int) -> None:
    client.wait(lambda: stream in client.ended or stream in client.reset)


def still_serves(connection: Http1) -> None:
    """The connection is kept alive: it answers a next request."""
    connection.send(response(content=b"next"))
    assert connection.head() == (200, [(b"content-length", b"4")])
    assert connection.read(4) == b"next"


def log_lines(server, pattern: str) -> list[str]:
    return [line for line in server.lines if re.search(pattern, line)]


# -- status ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [100, 101, 103, 199, 600, 999])
def test_a_status_outside_200_to_599_is_answered_500_and_logged_naming_the_reply_channel(
    server, http1, status
):
    http1.send(response(status, content=b"x"))
    code, headers = http1.head()
    assert code == 500
    assert b"invalid response" in http1.read(int(dict(headers)[b"content-length"]))
    server.wait_for(
        rf"malformed reply on telex\.response\.\S+: status must be an integer from 200 to 599, got {status}"
    )
    still_serves(http1)


@pytest.mark.parametrize("status", [200, 599])
def test_statuses_200_to_599_are_final_responses(http1, status):
    http1.send(response(status, content=b"ok"))
    assert http1.head() == (status, [(b"content-length", b"2")])
    assert http1.read(2) == b"ok"


def test_a_1xx_status_over_http2_is_answered_500_on_its_stream(h2c):
    stream = h2_request(h2c, response(101))
    h2_wait(h2c, stream)
    assert h2c.headers[stream][b":status"] == b"500"


# -- Content-Length: more body than declared ------------------------------------------------------


def test_a_body_longer_than_its_content_length_is_cut_and_the_connection_closed(server, http1):
    http1.send(response(headers=[(b"content-length", b"5")], content=b"hello world"))
    code, headers = http1.head()
    assert (code, sorted(headers)) == (200, [(b"connection", b"close"), (b"content-length", b"5")])
    assert http1.rest_until_closed() == b"hello"
    server.wait_for("body is longer than its Content-Length; the excess is dropped")


def test_a_streamed_body_longer_than_its_content_length_is_cut_logged_once_and_closed(server, http1):
    before = len(log_lines(server, "longer than its Content-Length"))
    http1.send(
        response(
            headers=[(b"content-length", b"6"), (b"x-tag", b"overrun-streamed")], content=b"abc", more=True
        ),
        chunk(b"defghi", more=True),
        chunk(b"jkl"),
    )
    code, headers = http1.head()
    assert (code, dict(headers)[b"content-length"]) == (200, b"6")
    assert http1.rest_until_closed() == b"abcdef"
    server.wait_for("longer than its Content-Length")
    assert len(log_lines(server, "longer than its Content-Length")) == before + 1


# -- Content-Length: less body than declared ------------------------------------------------------


def test_a_complete_response_shorter_than_its_content_length_is_answered_500(server, http1):
    http1.send(response(headers=[(b"content-length", b"10")], content=b"abc"))
    code, headers = http1.head()
    assert code == 500
    assert b"invalid response" in http1.read(int(dict(headers)[b"content-length"]))
    server.wait_for("the body has 3 of the 10 bytes of its Content-Length")
    still_serves(http1)


def test_a_streamed_response_ending_short_of_its_content_length_closes_the_connection(server, http1):
    http1.send(response(headers=[(b"content-length", b"10")], content=b"abc", more=True), chunk(b"de"))
    assert http1.head() == (200, [(b"content-length", b"10")])
    assert http1.rest_until_closed() == b"abcde"
    server.wait_for("the body ended 5 bytes short of its Content-Length")


@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", 200), ("GET", 304)], ids=["response to HEAD", "304 Not Modified"]
)
def test_responses_to_head_and_304s_keep_a_content_length_without_a_body(http1, method, status):
    http1.send(response(status, headers=[(b"content-length", b"1234")]), method=method)
    assert http1.head() == (status, [(b"content-length", b"1234")])
    still_serves(http1)  # no body was written, and none was waited for


def test_content_length_is_stripped_from_a_204(http1):
    http1.send(response(204, headers=[(b"content-length", b"10"), (b"x-a", b"1")]))
    assert http1.head() == (204, [(b"x-a", b"1")])
    still_serves(http1)


# -- Content-Length: repeated, invalid ------------------------------------------------------------


@pytest.mark.parametrize(
    "lengths", [[b"5", b"5"], [b"5, 5"], [b"5", b"5, 5"]], ids=["two headers", "a list", "both"]
)
def test_equal_content_lengths_collapse_to_one(http1, lengths):
    http1.send(response(headers=[(b"content-length", value) for value in lengths], content=b"hello"))
    assert http1.head() == (200, [(b"content-length", b"5")])
    assert http1.read(5) == b"hello"
    still_serves(http1)


@pytest.mark.parametrize(
    ("lengths", "problem"),
    [
        ([b"5", b"6"], r"Content-Length headers disagree: \[5, 6\]"),
        ([b"5, 6"], r"Content-Length headers disagree"),
        ([b"-1"], "Content-Length must be a non-negative integer"),
        ([b"five"], "Content-Length must be a non-negative integer"),
        ([b""], "Content-Length must be a non-negative integer"),
    ],
)
def test_disagreeing_or_invalid_content_lengths_are_answered_500(server, http1, lengths, problem):
    http1.send(response(headers=[(b"content-length", value) for value in lengths], content=b"hello"))
    code, headers = http1.head()
    assert code == 500
    assert b"invalid response" in http1.read(int(dict(headers)[b"content-length"]))
    server.wait_for(problem)


# -- Transfer-Encoding from the application -------------------------------------------------------


def test_transfer_encoding_chunked_is_applied_once_with_no_content_length_on_http_1_1(http1):
    http1.send(
        response(headers=[(b"Transfer-Encoding", b"chunked"), (b"content-length", b"5")], content=b"hello")
    )
    assert http1.head() == (200, [(b"transfer-encoding", b"chunked")])
    assert http1.read(15) == b"5\r\nhello\r\n0\r\n\r\n"
    still_serves(http1)


def test_a_streamed_body_with_transfer_encoding_chunked_is_framed_chunk_by_chunk(http1):
    http1.send(
        response(headers=[(b"transfer-encoding", b"chunked")], content=b"abc", more=True),
        chunk(b"", more=True),
        chunk(b"defgh"),
    )
    assert http1.head() == (200, [(b"transfer-encoding", b"chunked")])
    assert http1.read(23) == b"3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"
    still_serves(http1)


def test_transfer_encoding_chunked_to_an_http_1_0_client_is_a_plain_body_ended_by_the_close(http1):
    http1.send(response(headers=[(b"transfer-encoding", b"chunked")], content=b"hello"), version="HTTP/1.0")
    code, headers = http1.head()
    assert code == 200 and b"transfer-encoding" not in dict(headers)
    assert http1.rest_until_closed() == b"hello"


@pytest.mark.parametrize("coding", [b"gzip", b"gzip, chunked", b"identity"])
def test_any_other_transfer_coding_is_answered_500(server, http1, coding):
    http1.send(response(headers=[(b"transfer-encoding", coding)], content=b"hello"))
    assert http1.head()[0] == 500
    server.wait_for("Telex applies no transfer coding but chunked")


# -- HTTP/2 ---------------------------------------------------------------------------------------


def test_an_invalid_reply_over_http2_resets_only_its_stream_and_siblings_finish(h2c):
    sibling = h2_request(h2c, response(content=b"first;", more=True), park="sibling")
    h2c.wait(lambda: h2c.data[sibling] == b"first;")
    broken = h2_request(
        h2c, response(headers=[(b"content-length", b"10")], content=b"abc", more=True), chunk(b"de")
    )
    h2_wait(h2c, broken)
    assert h2c.reset[broken] == ErrorCodes.INTERNAL_ERROR
    finisher = h2_request(h2c, chunk(b"last"), to="sibling")
    h2c.wait(lambda: sibling in h2c.ended and finisher in h2c.ended)
    assert bytes(h2c.data[sibling]) == b"first;last"
    assert sibling not in h2c.reset and not h2c.terminated


def test_a_body_longer_than_its_content_length_over_http2_is_cut_and_the_stream_ends(h2c):
    stream = h2_request(h2c, response(headers=[(b"content-length", b"5")], content=b"hello world"))
    h2_wait(h2c, stream)
    assert stream in h2c.ended and bytes(h2c.data[stream]) == b"hello"
    assert h2c.headers[stream][b"content-length"] == b"5"


@pytest.mark.parametrize("name", [b"transfer-encoding", b"te", b"connection"])
def test_connection_specific_headers_are_dropped_over_http2(h2c, name):
    value = b"chunked" if name == b"transfer-encoding" else b"gzip" if name == b"te" else b"close"
    stream = h2_request(h2c, response(headers=[(name, value), (b"x-kept", b"1")], content=b"hello"))
    h2_wait(h2c, stream)
    assert stream in h2c.ended and bytes(h2c.data[stream]) == b"hello"
    assert name not in h2c.headers[stream] and h2c.headers[stream][b"x-kept"] == b"1"

"""HTTP/2 over the channel layer (www.rst, HTTP), with real HTTP/2 clients.

One server process serves TLS (HTTP/2 by ALPN) on its -b/-p port and
cleartext (HTTP/2 by prior knowledge, h2c) on a second endpoint. Most tests
drive the ``h2`` library directly over a socket, to see streams, resets and
flow-control windows; ``httpx`` and ``h2load`` (when installed) are the
off-the-shelf clients.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import hpack
import httpx
import hyperframe.frame
import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from telex.protocols.http_wire import H2_PREFACE
from tests.support.certs import make_ca, make_server_cert
from tests.support.processes import TelexServer
from tests.support.redis_server import free_port

RAW = "tests.apps.raw_http:channel_layer"
KEEP_ALIVE = 1.0


class H2Client:
    """A blocking HTTP/2 client on the ``h2`` state machine; every wait is bounded."""

    def __init__(self, sock: socket.socket, scheme: str) -> None:
        self.sock = sock
        self.scheme = scheme
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.headers: dict[int, dict[bytes, bytes]] = {}
        self.data: dict[int, bytearray] = {}
        self.ended: list[int] = []  # stream ids, in the order their responses ended
        self.reset: dict[int, int] = {}
        self.pushes = 0
        self.terminated = False
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def request(self, path: str, method: str = "GET", body: bytes = b"", length: int | None = None) -> int:
        """Open a stream; with ``length``, the body is sent later by ``send``."""
        stream = self.conn.get_next_available_stream_id()
        headers = [(b":method", method.encode()), (b":path", path.encode())]
        headers += [(b":scheme", self.scheme.encode()), (b":authority", b"127.0.0.1")]
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        self.conn.send_headers(stream, headers, end_stream=not body and length is None)
        self.data[stream] = bytearray()
        self.flush()
        if body:
            self.send(stream, body, end=True)
        return stream

    def send(self, stream: int, body: bytes, end: bool, stall: float = 10.0) -> int:
        """Send as much of ``body`` as flow control allows; returns bytes sent.

        Stops when all is sent, or when the window stayed shut ``stall`` seconds.
        """
        sent = 0
        deadline = time.monotonic() + 60
        while sent < len(body):
            assert time.monotonic() < deadline, "the upload made no progress for a minute"
            window = min(self.conn.local_flow_control_window(stream), self.conn.max_outbound_frame_size)
            if window <= 0:
                try:
                    self.pump(stall)  # for a WINDOW_UPDATE
                except TimeoutError:
                    return sent
                continue
            piece = body[sent : sent + window]
            sent += len(piece)
            self.conn.send_data(stream, piece, end_stream=end and sent == len(body))
            self.flush()
        return sent

    def pump(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                self.headers[event.stream_id] = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                self.data[event.stream_id] += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.ended.append(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.reset[event.stream_id] = event.error_code
            elif isinstance(event, h2.events.PushedStreamReceived):
                self.pushes += 1
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.terminated = True
        self.flush()

    def wait(self, predicate, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting on the HTTP/2 connection")
            self.pump(remaining)

    def get(self, path: str, **kwargs) -> tuple[int, bytes]:
        stream = self.request(path, **kwargs)
        self.wait(lambda: stream in self.ended or stream in self.reset)
        return int(self.headers[stream][b":status"]), bytes(self.data[stream])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("h2pki"))
    ca = make_ca()
    ca_path = os.path.join(directory, "ca.crt")
    with open(ca_path, "wb") as handle:
        handle.write(ca.cert_pem())
    cert, key = make_server_cert(ca).write(directory, "server")
    return {"ca": ca_path, "cert": cert, "key": key}


@pytest.fixture(scope="module")
def server(pki):
    """TLS on ``server.port``; cleartext (h2c) on ``server.clear_port``."""
    clear_port = free_port()
    process = TelexServer(
        RAW,
        "-e",
        f"tcp:{clear_port}:interface=127.0.0.1",
        "--ssl-certfile",
        pki["cert"],
        "--ssl-keyfile",
        pki["key"],
        "--request-body-chunk-size",
        "64k",
        "--max-request-body-size",
        "16m",
        "--keep-alive-timeout",
        str(KEEP_ALIVE),
        "-v",
        "2",
        env={"RAW_APP_BODY_CAPACITY": "2"},
    )
    process.clear_port = clear_port
    with process:
        yield process


def tls_context(pki, alpn=("h2",)) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["ca"])
    context.set_alpn_protocols(list(alpn))
    return context


@pytest.fixture
def client(server, pki):
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock = tls_context(pki).wrap_socket(raw, server_hostname="127.0.0.1")
    assert sock.selected_alpn_protocol() == "h2"
    connection = H2Client(sock, "https")
    yield connection
    connection.close()


def message_of(body: bytes) -> dict:
    return json.loads(body)


# -- negotiation -----------------------------------------------------------------


def test_http2_over_tls_is_chosen_by_alpn_and_reported_as_version_2(server, pki):
    with httpx.Client(http2=True, verify=tls_context(pki, alpn=("h2", "http/1.1"))) as http:
        response = http.get(f"https://127.0.0.1:{server.port}/message")
    assert response.http_version == "HTTP/2"
    message = message_of(response.content)
    assert message["http_version"] == "2" and message["scheme"] == "https"
    assert message["server"] == ["127.0.0.1", server.port]


def test_cleartext_http2_with_prior_knowledge_is_served(server):
    with httpx.Client(http1=False, http2=True) as http:
        response = http.get(f"http://127.0.0.1:{server.clear_port}/message")
    assert response.http_version == "HTTP/2"
    message = message_of(response.content)
    assert message["http_version"] == "2" and message["scheme"] == "http"


def test_the_h2c_preface_is_recognised_even_a_byte_at_a_time():
    from telex.layers import InMemoryChannelLayer
    from telex.protocols.http_wire import H2_PREFACE, TelexH2Connection, TelexHTTPChannel
    from telex.server.server import Server
    from telex.server.settings import ServerSettings

    factory = Server(ServerSettings(), InMemoryChannelLayer()).http_factory
    h2c, webdav = factory.buildProtocol(None), factory.buildProtocol(None)
    h2c.makeConnection(StringTransport())
    webdav.makeConnection(StringTransport())
    for byte in H2_PREFACE:
        h2c.dataReceived(bytes([byte]))
    for byte in b"PROPFIND / HTTP/1.1\r\n":  # shares "PR" with the preface
        webdav.dataReceived(bytes([byte]))
    assert isinstance(h2c._channel, TelexH2Connection)
    assert isinstance(webdav._channel, TelexHTTPChannel) and webdav._channel._command == b"PROPFIND"


def test_a_bad_preface_sent_slowly_leaves_no_http1_head_deadline_behind():
    from telex.layers import InMemoryChannelLayer
    from telex.protocols.http_wire import TelexH2Connection
    from telex.server.server import Server
    from telex.server.settings import ServerSettings

    clock = Clock()
    factory = Server(ServerSettings(), InMemoryChannelLayer()).http_factory
    protocol = factory.buildProtocol(None)
    protocol.callLater = clock.callLater
    protocol.makeConnection(StringTransport())
    http1 = protocol._channel
    protocol.dataReceived(b"INVALID CONNECTION ")  # could still be an HTTP/1 request line
    assert http1._head_call is not None
    protocol.dataReceived(b"PREFACE\r\n\r\n")
    assert isinstance(protocol._channel, TelexH2Connection)
    assert http1._head_call is None and not http1._closing


# -- streams ----------------------------------------------------------------------


def test_concurrent_streams_get_their_own_reply_channels_and_interleaved_responses(client):
    count = 20
    streams = [client.request(f"/hold?{i}") for i in range(count)]
    # Every response has started before any has finished: they are multiplexed.
    client.wait(lambda: all(client.data[s].endswith(b";") for s in streams))
    assert not client.ended
    reply_channels = {bytes(client.data[s]) for s in streams}
    assert len(reply_channels) == count
    # Finished in the opposite order to the one they were opened in.
    for i in reversed(range(count)):
        assert client.get(f"/release-held?{i}") == (200, b"released")
        client.wait(lambda i=i: streams[i] in client.ended)
        assert client.data[streams[i]].endswith(b";" + str(i).encode())
    held_endings = [s for s in client.ended if s in streams]
    assert held_endings == list(reversed(streams))


def test_a_large_upload_streams_through_body_channel_under_flow_control(client):
    payload = os.urandom(4 * 1024 * 1024)
    stream = client.request("/body-held", method="POST", length=len(payload))
    # The application reads nothing yet (its body channel holds two chunks), so
    # the server must stop opening the flow-control window.
    sent = client.send(stream, payload, end=True, stall=0.5)
    assert sent < 1024 * 1024, f"{sent} bytes accepted while the application was not reading"
    assert client.get("/release-body") == (200, b"released")
    client.send(stream, payload[sent:], end=True)
    client.wait(lambda: stream in client.ended, timeout=30)
    assert json.loads(client.data[stream]) == {
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "streamed": True,
    }


def test_a_reset_stream_sends_http_disconnect_and_spares_the_connection(client):
    stream = client.request("/hold?reset")
    client.wait(lambda: client.data[stream].endswith(b";"))
    reply_channel = client.data[stream][:-1].decode()
    client.conn.reset_stream(stream, error_code=h2.errors.ErrorCodes.CANCEL)
    client.flush()
    deadline = time.monotonic() + 10
    while True:  # on the same connection: it survives its stream's reset
        disconnects = json.loads(client.get("/disconnects")[1])
        if any(d["reply_channel"] == reply_channel for d in disconnects):
            break
        assert time.monotonic() < deadline, "no http.disconnect for the reset stream"
    assert [d["path"] for d in disconnects if d["reply_channel"] == reply_channel] == ["/hold"]


def test_resetting_a_paused_upload_gives_its_unread_bytes_back_to_the_connection(client):
    # The application reads nothing, so the server stops reading the stream:
    # what arrived meanwhile was never acknowledged. Unless the reset gives it
    # back, the connection's window stays short by that much for good, and
    # an upload after a few such resets stalls.
    stream = client.request("/body-held", method="POST", length=4 * 1024 * 1024)
    assert client.send(stream, bytes(4 * 1024 * 1024), end=True, stall=0.5) < 4 * 1024 * 1024
    client.conn.reset_stream(stream, error_code=h2.errors.ErrorCodes.CANCEL)
    client.flush()
    payload = os.urandom(1024 * 1024)
    status, body = client.get("/body", method="POST", body=payload)
    assert status == 200 and message_of(body)["size"] == len(payload)


def test_a_body_over_the_limit_is_refused_413_on_its_stream_only(client):
    stream = client.request("/body", method="POST", length=17 * 1024 * 1024)
    client.wait(lambda: stream in client.ended or stream in client.reset)
    assert client.headers[stream][b":status"] == b"413"
    assert client.get("/still-here") == (200, b"Hello world! You asked for /still-here")


def test_connection_specific_response_headers_are_dropped_on_http2(client, server):
    stream = client.request("/hop-headers")
    client.wait(lambda: stream in client.ended)
    headers = client.headers[stream]
    assert headers[b":status"] == b"200" and headers[b"x-kept"] == b"1"
    assert b"connection" not in headers and b"keep-alive" not in headers


def test_server_push_is_dropped_and_logged_at_debug(client, server):
    assert client.get("/push-then-response") == (200, b"after push")
    assert client.pushes == 0
    server.wait_for("dropping Server Push on")


def test_a_stream_awaiting_the_application_outlives_the_idle_timeout(client):
    stream = client.request("/hold?patient")
    client.wait(lambda: client.data[stream].endswith(b";"))
    time.sleep(2.5 * KEEP_ALIVE)  # the idle timeout is what is tested
    assert client.get("/release-held?patient") == (200, b"released")
    client.wait(lambda: stream in client.ended)
    assert not client.terminated


def test_an_idle_http2_connection_is_closed_after_the_keep_alive_timeout(client):
    assert client.get("/")[0] == 200
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        client.wait(lambda: False, timeout=10 * KEEP_ALIVE)
    assert client.terminated  # GOAWAY first
    assert time.monotonic() - started < 5 * KEEP_ALIVE


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (Debian nghttp2-client) is not installed")
@pytest.mark.parametrize("tls", [True, False], ids=["h2", "h2c"])
def test_h2load_completes_every_request(server, tls):
    url = f"https://127.0.0.1:{server.port}/" if tls else f"http://127.0.0.1:{server.clear_port}/"
    result = subprocess.run(
        ["h2load", "-n", "400", "-c", "4", "-m", "20", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "400 succeeded" in result.stdout, result.stdout + result.stderr


# -- conformance (h2spec cases, as frames over a real socket) ------------------------
#
# h2spec cannot run in CI; each case it failed is reproduced here, on both ways
# into HTTP/2 (TLS with ALPN, and cleartext with prior knowledge), which must
# behave alike. Test names carry the h2spec case numbers.


class RawH2:
    """An HTTP/2 peer writing frames by hand (hyperframe, hpack), for the
    malformed input that the ``h2`` state machine would refuse to send."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.encoder = hpack.Encoder()

    def send(self, *frames: hyperframe.frame.Frame | bytes) -> None:
        self.sock.sendall(b"".join(f if isinstance(f, bytes) else f.serialize() for f in frames))

    def handshake(self, settings: dict[int, int] | None = None) -> None:
        """Preface and SETTINGS both ways, each acknowledged."""
        self.send(H2_PREFACE)
        self.send(hyperframe.frame.SettingsFrame(0, settings=settings or {}))
        acked = server_settings = False
        while not (acked and server_settings):
            frame = self.read()
            assert frame is not None, "the server closed during the handshake"
            if isinstance(frame, hyperframe.frame.SettingsFrame):
                if "ACK" in frame.flags:
                    acked = True
                else:
                    server_settings = True
                    self.send(hyperframe.frame.SettingsFrame(0, flags=["ACK"]))

    def headers(self, stream_id: int, path: str = "/", block: bytes | None = None) -> None:
        if block is None:
            block = self.encoder.encode(
                [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1")]
            )
        self.send(hyperframe.frame.HeadersFrame(stream_id, block, flags=["END_HEADERS", "END_STREAM"]))

    def read(self, timeout: float = 5.0) -> hyperframe.frame.Frame | None:
        """The next frame, or None once the server has closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 9:
                frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(self.buffer[:9]))
                if len(self.buffer) >= 9 + length:
                    frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
                    self.buffer = self.buffer[9 + length :]
                    return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting for a frame or the close")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                assert not self.buffer, f"the connection closed inside a frame: {self.buffer!r}"
                return None
            self.buffer += data

    def read_until(self, kind: type, timeout: float = 5.0) -> hyperframe.frame.Frame:
        while True:
            frame = self.read(timeout)
            assert frame is not None, f"the server closed before sending {kind.__name__}"
            if isinstance(frame, kind):
                return frame

    def expect_connection_error(self, code: h2.errors.ErrorCodes) -> None:
        """RFC 9113, 5.4.1: a GOAWAY with ``code``, then the connection closes."""
        goaway = self.read_until(hyperframe.frame.GoAwayFrame)
        assert goaway.error_code == code, f"GOAWAY {goaway.error_code}, not {code.name}"
        self.expect_closed()

    def expect_closed(self) -> None:
        while (frame := self.read()) is not None:
            assert not isinstance(frame, hyperframe.frame.DataFrame | hyperframe.frame.HeadersFrame), frame


@pytest.fixture(scope="module")
def patient_server(pki):
    """As ``server``, with the default idle timeout: a close seen within a few
    seconds comes from the case under test, not from the idle timer."""
    clear_port = free_port()
    process = TelexServer(
        RAW,
        "-e",
        f"tcp:{clear_port}:interface=127.0.0.1",
        "--ssl-certfile",
        pki["cert"],
        "--ssl-keyfile",
        pki["key"],
    )
    process.clear_port = clear_port
    with process:
        yield process


@pytest.fixture(params=["tls", "h2c"])
def raw(request, patient_server, pki):
    """A raw HTTP/2 connection, over TLS (ALPN h2) or cleartext; not yet handshaken."""
    server = patient_server
    if request.param == "tls":
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock = tls_context(pki).wrap_socket(sock, server_hostname="127.0.0.1")
        assert sock.selected_alpn_protocol() == "h2"
    else:
        sock = socket.create_connection(("127.0.0.1", server.clear_port), timeout=10)
    with sock:
        yield RawH2(sock)


def test_an_invalid_preface_is_a_connection_error_3_5_2(raw):
    raw.send(b"INVALID CONNECTION PREFACE\r\n\r\n")
    raw.expect_connection_error(h2.errors.ErrorCodes.PROTOCOL_ERROR)


def test_the_h2c_sniffing_keeps_http1_apart_from_a_bad_http2_preface():
    from telex.protocols.http_wire import sniff_protocol

    assert sniff_protocol(H2_PREFACE + b"\0\0", 100) == b"h2"
    assert sniff_protocol(H2_PREFACE[:10], 100) is None
    assert sniff_protocol(b"GET / HTTP/1.1\r\nHost: x\r\n", 100) == b"http/1.1"
    assert sniff_protocol(b"\r\nGET / HTTP/1.0\r\n", 100) == b"http/1.1"
    assert sniff_protocol(b"GET / HTTP/1.1", 100) is None  # the line is not complete
    assert sniff_protocol(b"GET /" + b"a" * 100, 100) == b"http/1.1"  # too long: HTTP/1.1 answers 431
    assert sniff_protocol(b"NONSENSE\r\n\r\n", 100) == b"http/1.1"  # HTTP/1.1 answers 400
    assert sniff_protocol(b"INVALID CONNECTION PREFACE\r\n\r\n", 100) == b"h2"
    assert sniff_protocol(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 100) == b"h2"


@pytest.mark.parametrize("error_code", [0x0, 0xFF], ids=["NO_ERROR-3.8.1", "unknown-code-7.1"])
def test_the_peers_goaway_closes_the_connection_3_8_1_and_7_1(raw, error_code):
    raw.handshake()
    raw.send(
        hyperframe.frame.GoAwayFrame(0, error_code=error_code), hyperframe.frame.PingFrame(0, b"telex h2")
    )
    raw.expect_closed()


def test_a_ping_of_the_wrong_length_is_a_connection_error_that_closes_5_4_1_1(raw):
    raw.handshake()
    raw.send(b"\x00\x00\x06\x06\x00\x00\x00\x00\x00" + b"telex!")  # PING with 6 octets, not 8
    raw.expect_connection_error(h2.errors.ErrorCodes.FRAME_SIZE_ERROR)


def test_a_settings_ack_with_a_payload_is_a_frame_size_error_6_5_1(raw):
    raw.handshake()
    raw.send(b"\x00\x00\x01\x04\x01\x00\x00\x00\x00\x00")
    raw.expect_connection_error(h2.errors.ErrorCodes.FRAME_SIZE_ERROR)


# Header blocks that cannot be decoded (RFC 7541); the HPACK decoder's state is
# lost with them, so each is a connection error of type COMPRESSION_ERROR (RFC 9113, 4.3).
_GET = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "x")])
UNDECODABLE_HEADER_BLOCKS = {
    "index-past-the-tables-hpack-2.3.3.1": b"\xc6",
    "literal-with-a-name-index-past-the-tables-hpack-2.3.3.2": b"\x7e\x01a",
    "table-size-update-at-the-end-hpack-4.2.1": _GET + b"\x20",
    "huffman-padding-longer-than-7-bits-hpack-5.2.1": b"\x00\x82\x1f\xff\x01a",
    "huffman-padded-with-zeros-hpack-5.2.2": b"\x00\x81\x18\x01a",
    "huffman-containing-eos-hpack-5.2.3": b"\x00\x84\xff\xff\xff\xff\x01a",
    "index-0-hpack-6.1.1": b"\x80",
    "table-size-update-over-the-setting-hpack-6.3.1": b"\x3f\xe2\x1f" + _GET,
    "truncated-block-http2-4.3.1": b"\x40",
}


@pytest.mark.parametrize("block", UNDECODABLE_HEADER_BLOCKS.values(), ids=UNDECODABLE_HEADER_BLOCKS.keys())
def test_an_undecodable_header_block_is_a_compression_error_that_closes(raw, block):
    raw.handshake()
    raw.headers(1, block=block)
    raw.expect_connection_error(h2.errors.ErrorCodes.COMPRESSION_ERROR)


def test_a_negative_send_window_is_tracked_and_the_data_follows_once_it_is_positive_6_9_2_2(raw):
    initial_window = hyperframe.frame.SettingsFrame.INITIAL_WINDOW_SIZE
    raw.handshake({initial_window: 3})
    raw.headers(1, "/")
    first = raw.read_until(hyperframe.frame.DataFrame)
    assert first.data == b"Hel"
    # The window shrinks by 1 to -1: nothing may be sent until it is positive again.
    raw.send(hyperframe.frame.SettingsFrame(0, settings={initial_window: 2}))
    assert "ACK" in raw.read_until(hyperframe.frame.SettingsFrame).flags
    raw.send(hyperframe.frame.WindowUpdateFrame(1, window_increment=2))
    second = raw.read_until(hyperframe.frame.DataFrame)
    assert second.data == b"l"  # window -1 + 2
    # Opening the window by SETTINGS alone also lets the rest out.
    raw.send(hyperframe.frame.SettingsFrame(0, settings={initial_window: 65535}))
    rest = b""
    while True:
        frame = raw.read_until(hyperframe.frame.DataFrame)
        rest += frame.data
        if "END_STREAM" in frame.flags:
            break
    assert first.data + second.data + rest == b"Hello world! You asked for /"


def test_a_stream_waiting_for_its_window_costs_no_cpu(raw, patient_server):
    """Twisted's sending loop spun (callLater(0)) while a stream had output but no window."""
    raw.handshake({hyperframe.frame.SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    raw.headers(1, "/")
    time.sleep(0.3)  # the response is in the server, waiting for a window
    cpu_before = _cpu_seconds(patient_server.process.pid)
    time.sleep(1.0)  # the CPU the server burns meanwhile is what is measured
    used = _cpu_seconds(patient_server.process.pid) - cpu_before
    assert used < 0.3, f"the server used {used:.2f}s of CPU in 1s while the stream waited"
    raw.send(hyperframe.frame.WindowUpdateFrame(1, window_increment=100))
    assert raw.read_until(hyperframe.frame.DataFrame).data.startswith(b"Hello world!")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

"""WebSocket limits and liveness: layer back-pressure, sizes, slow readers,
pings, lifetime, compression, TLS and shutdown — each against a real server."""

from __future__ import annotations

import datetime
import ipaddress
import signal
import ssl
import time
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.processes import TelexServer
from tests.support.redis_server import free_port
from tests.support.ws import (
    RAW_WS,
    RawClient,
    close_code_of,
    frame,
    handshake_request,
    wait_for_event,
    whoami,
    ws_url,
)


def disconnect_of(port: int, reply_channel: str, timeout: float = 10.0) -> dict:
    return wait_for_event(
        port,
        lambda e: e["channel"] == "websocket.disconnect" and e["reply_channel"] == reply_channel,
        timeout,
    )


@pytest.fixture(scope="module")
def limits():
    env = {"RAW_WS_RECEIVE_CAPACITY": "1", "RAW_WS_MAX_MESSAGE_SIZE": "65536"}
    with TelexServer(
        RAW_WS,
        "--max-pending-output",
        "256k",
        "--websocket-max-frame-size",
        "200k",
        "--websocket-compression",
        env=env,
    ) as process:
        yield process


@pytest.fixture(scope="module")
def timers():
    with TelexServer(
        # Autobahn's ping timers round down to whole seconds: a 2 s timeout
        # fires 1 to 2 s after its ping.
        RAW_WS,
        "--ping-interval",
        "1",
        "--ping-timeout",
        "2",
        "--websocket_timeout",
        "3",
    ) as process:
        yield process


# -- the channel layer pushes back ------------------------------------------------------


def test_channel_full_on_receive_retries_briefly_then_closes_1013(limits):
    try:
        with connect(ws_url(limits, "/stall")) as ws:
            started = time.monotonic()
            for i in range(3):
                ws.send(f"message {i}")  # websocket.receive holds one; nobody reads it
            assert close_code_of(ws) == 1013
            assert 0.5 < time.monotonic() - started < 5  # the retries took about a second
    finally:
        urllib.request.urlopen(f"{limits.url}/unstall", timeout=10).read()


def test_message_too_large_for_the_layer_closes_1009(limits):
    with connect(ws_url(limits, "/echo")) as ws:
        ws.send(b"x" * 100_000)  # under the WebSocket limit, over the layer's 64 KiB
        assert close_code_of(ws) == 1009


def test_frames_over_the_maximum_frame_size_close_1009(limits):
    with connect(ws_url(limits, "/echo"), compression=None) as ws:
        ws.send(b"x" * 300_000)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1009
    assert "frame" in closed.value.rcvd.reason


def test_a_reader_too_slow_for_max_pending_output_is_closed_1008(limits):
    client = RawClient(limits.port)
    client.send(handshake_request("/echo", port=limits.port))
    client.read_head()
    client.send(frame(b"whoami"))
    reply_channel = client.read_message().decode()
    client.send(frame(b"flood:400:32768"))  # 13 MB, far beyond socket buffers + 256 KiB; never read
    assert disconnect_of(limits.port, reply_channel)["code"] == 1008
    client.close()
    limits.wait_for("the client is not reading")


def test_permessage_deflate_is_negotiated_when_enabled(limits):
    with connect(ws_url(limits, "/echo")) as ws:
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        ws.send("squeeze " * 1000)
        assert ws.recv(timeout=10) == "squeeze " * 1000


def test_permessage_deflate_is_not_offered_by_default(timers):
    with connect(ws_url(timers, "/echo")) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


# -- liveness ---------------------------------------------------------------------------------


def test_a_client_that_never_answers_pings_is_closed_after_the_ping_timeout(timers):
    client = RawClient(timers.port)
    client.send(handshake_request("/echo", port=timers.port))
    client.read_head()
    client.send(frame(b"whoami"))
    reply_channel = client.read_message().decode()
    started = time.monotonic()
    disconnect = disconnect_of(timers.port, reply_channel)  # we never pong
    assert disconnect["code"] == 1006
    assert time.monotonic() - started < 5
    client.close()


def test_websocket_timeout_closes_the_socket_after_its_lifetime_with_1001(timers):
    started = time.monotonic()
    with connect(ws_url(timers, "/echo")) as ws:
        # websockets answers the pings, so only the lifetime ends this socket.
        assert close_code_of(ws) == 1001
    assert 2.9 < time.monotonic() - started < 6


# -- TLS and shutdown ------------------------------------------------------------------------


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def test_wss_through_a_tls_endpoint(tmp_path):
    key_path, cert_path = _self_signed(tmp_path)
    tls_port = free_port()
    endpoint = f"ssl:{tls_port}:interface=127.0.0.1:privateKey={key_path}:certKey={cert_path}"
    context = ssl.create_default_context(cafile=str(cert_path))
    with TelexServer(RAW_WS, "-e", endpoint) as process:
        with connect(f"wss://127.0.0.1:{tls_port}/echo", ssl=context) as ws:
            ws.send("secret")
            assert ws.recv(timeout=10) == "secret"
            reply_channel = whoami(ws)
        connect_message = wait_for_event(
            process.port,
            lambda e: e["channel"] == "websocket.connect" and e["reply_channel"] == reply_channel,
        )
    assert connect_message["scheme"] == "wss"


def test_shutdown_closes_websockets_with_1001():
    with TelexServer(RAW_WS) as process:
        with connect(ws_url(process, "/echo")) as ws:
            whoami(ws)
            process.signal(signal.SIGTERM)
            assert close_code_of(ws) == 1001
        assert process.wait(15) == 0

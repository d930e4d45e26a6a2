"""TLS: the --ssl-* flags, ALPN, protocol versions, client certificates, SIGHUP reload.

Certificates are made per test (tests/support/certs.py); the server is a
real ``telex serve`` process and the clients are Python's ``ssl`` module.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.certs import Issued, make_ca, make_client_cert, make_server_cert
from tests.support.processes import TelexServer, run_telex
from tests.support.redis_server import free_port

RAW = "tests.apps.raw_http:channel_layer"


@pytest.fixture
def pki(tmp_path):
    """A CA, a server certificate it signed, and their files."""
    ca = make_ca()
    server = make_server_cert(ca, "first")
    ca_path = str(tmp_path / "ca.crt")
    with open(ca_path, "wb") as handle:
        handle.write(ca.cert_pem())
    cert_path, key_path = server.write(str(tmp_path), "server")
    return {
        "dir": str(tmp_path),
        "ca": ca,
        "ca_path": ca_path,
        "server": server,
        "cert": cert_path,
        "key": key_path,
    }


def tls_flags(pki) -> list[str]:
    return ["--ssl-certfile", pki["cert"], "--ssl-keyfile", pki["key"]]


def client_context(pki, alpn=("http/1.1",), client: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["ca_path"])
    context.set_alpn_protocols(list(alpn))
    if client is not None:
        cert_path, key_path = client.write(pki["dir"], "client-" + os.urandom(4).hex())
        context.load_cert_chain(cert_path, key_path)
    return context


def https_get(port: int, path: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def handshake(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def peer_certificate(sock: ssl.SSLSocket) -> bytes:
    return sock.getpeercert(binary_form=True)


def der(issued: Issued) -> bytes:
    return issued.certificate.public_bytes(serialization.Encoding.DER)


def test_ssl_flags_serve_https_on_the_bind_address_with_scheme_https(pki):
    with TelexServer(RAW, *tls_flags(pki)) as server:
        server.wait_for(rf"listening on https://127\.0\.0\.1:{server.port}")
        status, body = https_get(server.port, "/message", client_context(pki))
        message = json.loads(body)
        assert status == 200
        assert message["scheme"] == "https" and message["http_version"] == "1.1"


def test_alpn_offers_h2_first_then_http_1_1(pki):
    with TelexServer(RAW, *tls_flags(pki)) as server:
        with handshake(server.port, client_context(pki, alpn=("h2", "http/1.1"))) as sock:
            assert sock.selected_alpn_protocol() == "h2"
        with handshake(server.port, client_context(pki, alpn=("http/1.1",))) as sock:
            assert sock.selected_alpn_protocol() == "http/1.1"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_below_1_2_is_refused(pki):
    with TelexServer(RAW, *tls_flags(pki)) as server:
        old = client_context(pki)
        old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer TLS 1.1 at all
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(ssl.SSLError):
            handshake(server.port, old)
        tls12 = client_context(pki)
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        with handshake(server.port, tls12) as sock:
            assert sock.version() == "TLSv1.2"
        with handshake(server.port, client_context(pki)) as sock:
            assert sock.version() == "TLSv1.3"


def test_tls_1_2_admits_only_forward_secret_aead_ciphers(pki):
    with TelexServer(RAW, *tls_flags(pki)) as server:
        for weak in ("AES256-SHA", "AES128-GCM-SHA256", "ECDHE-RSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA"):
            client = client_context(pki)
            client.maximum_version = ssl.TLSVersion.TLSv1_2
            client.set_ciphers(weak)
            with pytest.raises(ssl.SSLError):
                handshake(server.port, client)
        client = client_context(pki)
        client.maximum_version = ssl.TLSVersion.TLSv1_2
        with handshake(server.port, client) as sock:
            assert sock.cipher()[0].startswith("ECDHE-") and (
                "GCM" in sock.cipher()[0] or "CHACHA20" in sock.cipher()[0]
            )


def test_ssl_flags_can_come_from_the_environment(pki):
    env = {"TELEX_SSL_CERTFILE": pki["cert"], "TELEX_SSL_KEYFILE": pki["key"]}
    with TelexServer(RAW, env=env) as server:
        assert https_get(server.port, "/", client_context(pki))[0] == 200


def test_a_key_in_the_certificate_file_needs_no_keyfile(pki):
    combined = os.path.join(pki["dir"], "combined.pem")
    with open(combined, "wb") as handle:
        handle.write(pki["server"].cert_pem() + pki["server"].key_pem())
    with TelexServer(RAW, "--ssl-certfile", combined) as server:
        assert https_get(server.port, "/", client_context(pki))[0] == 200


def test_an_encrypted_private_key_is_opened_with_its_password(pki):
    cert, key = pki["server"].write(pki["dir"], "locked", password="s3cret")
    with TelexServer(
        RAW, "--ssl-certfile", cert, "--ssl-keyfile", key, "--ssl-keyfile-password", "s3cret"
    ) as server:
        assert https_get(server.port, "/", client_context(pki))[0] == 200
    port = str(free_port())
    wrong = run_telex(
        [
            "serve",
            RAW,
            "-p",
            port,
            "--ssl-certfile",
            cert,
            "--ssl-keyfile",
            key,
            "--ssl-keyfile-password",
            "nope",
        ]
    )
    assert wrong.returncode != 0
    assert "wrong password" in wrong.stderr and "Traceback" not in wrong.stderr


def test_unusable_certificate_files_stop_the_start_with_one_line(pki):
    port = str(free_port())
    missing = run_telex(["serve", RAW, "-p", port, "--ssl-certfile", "/nonexistent.pem"])
    assert missing.returncode != 0
    assert "cannot read certificate file /nonexistent.pem" in missing.stderr
    other_key = make_server_cert(pki["ca"]).write(pki["dir"], "other")[1]
    mismatch = run_telex(
        ["serve", RAW, "-p", port, "--ssl-certfile", pki["cert"], "--ssl-keyfile", other_key]
    )
    assert mismatch.returncode != 0
    assert "key values mismatch" in mismatch.stderr and "Traceback" not in mismatch.stderr


def test_ssl_options_need_ssl_certfile(pki):
    result = run_telex(["serve", RAW, "--ssl-keyfile", pki["key"]])
    assert result.returncode != 0 and "--ssl-keyfile needs --ssl-certfile" in result.stderr


def test_client_certificates_are_required_with_ssl_ca_certs(pki):
    with TelexServer(RAW, *tls_flags(pki), "--ssl-ca-certs", pki["ca_path"]) as server:
        good = client_context(pki, client=make_client_cert(pki["ca"]))
        assert https_get(server.port, "/", good)[0] == 200
        stranger = client_context(pki, client=make_client_cert(make_ca("Another CA")))
        # TLS 1.3: the client's handshake ends before the server has checked
        # its certificate; the refusal arrives as an alert on the first read.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            https_get(server.port, "/", stranger)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            https_get(server.port, "/", client_context(pki))  # no certificate at all


def test_sighup_replaces_the_certificate_for_new_connections_and_keeps_open_ones(pki):
    with TelexServer(RAW, *tls_flags(pki)) as server:
        kept = http.client.HTTPSConnection("127.0.0.1", server.port, context=client_context(pki), timeout=10)
        kept.request("GET", "/before")
        assert kept.getresponse().read().endswith(b"/before")
        kept_socket = kept.sock
        assert peer_certificate(kept_socket) == der(pki["server"])

        second = make_server_cert(pki["ca"], "second")
        for data, path in ((second.cert_pem(), pki["cert"]), (second.key_pem(), pki["key"])):
            with open(path + ".new", "wb") as handle:
                handle.write(data)
            os.replace(path + ".new", path)  # as certbot and friends do
        server.signal(signal.SIGHUP)
        server.wait_for("TLS certificate reloaded from " + pki["cert"])

        kept.request("GET", "/after")
        assert kept.getresponse().read().endswith(b"/after")
        assert kept.sock is kept_socket  # the same connection, still working
        kept.close()
        with handshake(server.port, client_context(pki)) as fresh:
            assert peer_certificate(fresh) == der(second)


def test_sighup_with_unusable_files_keeps_the_previous_certificate(pki):
    with TelexServer(RAW, *tls_flags(pki)) as server:
        with open(pki["key"], "wb") as handle:
            handle.write(make_server_cert(pki["ca"]).key_pem())  # a key for some other certificate
        server.signal(signal.SIGHUP)
        server.wait_for("TLS reload failed, keeping the previous certificate: .*key values mismatch")
        with handshake(server.port, client_context(pki)) as sock:
            assert peer_certificate(sock) == der(pki["server"])
        assert server.process.poll() is None


def test_ssl_endpoint_strings_serve_https_and_offer_h2(pki):
    port = free_port()
    endpoint = f"ssl:{port}:interface=127.0.0.1:privateKey={pki['key']}:certKey={pki['cert']}"
    with TelexServer(RAW, "-e", endpoint) as server:
        server.wait_for(f"listening on https://127.0.0.1:{port}")
        status, body = https_get(port, "/message", client_context(pki))
        assert status == 200 and json.loads(body)["scheme"] == "https"
        with handshake(port, client_context(pki, alpn=("h2", "http/1.1"))) as sock:
            assert sock.selected_alpn_protocol() == "h2"

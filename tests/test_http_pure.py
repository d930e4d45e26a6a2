"""The HTTP adapter's pure parts, driven without sockets: error responses,
peer addresses, the request's phases (``http_state``) and flow control."""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet.address import IPv4Address, UNIXAddress

from telex.protocols import http_messages as msgs
from telex.protocols import peers
from telex.protocols.proxy import TrustedProxies

# -- raw error responses -------------------------------------------------------------------


def test_raw_error_response_is_a_whole_closing_response_with_a_small_page():
    response = msgs.raw_error_response(503, "Too many connections; try again shortly.")
    head, body = response.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 503 Service Unavailable"
    assert b"connection: close" in lines
    assert b"content-type: text/html; charset=utf-8" in lines
    assert f"content-length: {len(body)}".encode() in lines
    assert b"try again shortly" in body


def test_raw_error_response_without_detail_has_no_body():
    assert msgs.raw_error_response(408) == (
        b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
    )


# -- peer addresses ------------------------------------------------------------------------


def _request(secure: bool = False, host: str = "10.0.0.7") -> SimpleNamespace:
    return SimpleNamespace(getClientAddress=lambda: IPv4Address("TCP", host, 5000), isSecure=lambda: secure)


def _context(proxy_headers: bool, trusted: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        settings=SimpleNamespace(proxy_headers=proxy_headers), trusted_proxies=TrustedProxies(trusted)
    )


def test_address_is_host_and_port_or_none_for_unix_sockets():
    assert peers.address(IPv4Address("TCP", "127.0.0.1", 80)) == ["127.0.0.1", 80]
    assert peers.address(UNIXAddress(b"/run/telex.sock")) is None


def test_client_and_scheme_come_from_the_socket_unless_a_trusted_proxy_says_otherwise():
    forwarded = [[b"x-forwarded-for", b"203.0.113.9"], [b"x-forwarded-proto", b"https"]]
    untrusted = _context(True, ["127.0.0.1"])
    assert peers.client_and_scheme(untrusted, _request(), forwarded) == (["10.0.0.7", 5000], "http")
    off = _context(False, ["*"])
    assert peers.client_and_scheme(off, _request(secure=True), forwarded, websocket=True) == (
        ["10.0.0.7", 5000],
        "wss",
    )
    trusted = _context(True, ["10.0.0.0/8"])
    assert peers.client_and_scheme(trusted, _request(), forwarded) == (["203.0.113.9", 0], "https")
    assert peers.client_and_scheme(trusted, _request(), forwarded, websocket=True)[1] == "wss"

"""Where the server listens (telex/server/endpoints.py): endpoint strings, SO_REUSEPORT, systemd."""

from __future__ import annotations

import socket

import pytest

from telex.server.endpoints import ReusePortEndpoint, listening_endpoint, split_endpoint


def test_endpoint_fields_split_on_colons_and_a_backslash_escapes_the_next_character():
    assert split_endpoint(r"tcp6:port=8000:interface=\:\:1") == ["tcp6", "port=8000", "interface=::1"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("tcp:8000", ("", 8000, 50)),
        ("tcp:8000:127.0.0.1:10", ("127.0.0.1", 8000, 10)),
        ("tcp:port=8000:interface=127.0.0.1:backlog=5", ("127.0.0.1", 8000, 5)),
        (r"tcp6:port=8000:interface=\:\:1", ("::1", 8000, 50)),
        ("tcp6:8000", ("::", 8000, 50)),
    ],
)
def test_reuse_port_honours_the_tcp_fields_port_interface_and_backlog(spec, expected):
    endpoint = listening_endpoint(spec, reuse_port=True)
    assert isinstance(endpoint, ReusePortEndpoint)
    assert (endpoint.interface, endpoint.port, endpoint.backlog) == expected


@pytest.mark.parametrize(
    ("spec", "message"), [("tcp:8000:nodelay=1", "unknown field"), ("tcp:interface=127.0.0.1", "no port")]
)
def test_reuse_port_refuses_a_tcp_field_it_cannot_honour(spec, message):
    with pytest.raises(ValueError, match=message):
        listening_endpoint(spec, reuse_port=True)


def test_without_reuse_port_twisted_parses_the_string():
    assert not isinstance(listening_endpoint("tcp:8000"), ReusePortEndpoint)
    assert not isinstance(listening_endpoint("unix:/tmp/telex.sock", reuse_port=True), ReusePortEndpoint)


def test_a_systemd_endpoint_without_its_socket_says_so(monkeypatch):
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    with pytest.raises(ValueError, match="no such socket passed by systemd"):
        listening_endpoint("systemd:domain=INET:index=0")


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT here")
def test_two_reuse_port_listeners_share_one_port():
    from twisted.internet.protocol import Factory

    endpoint = ReusePortEndpoint("127.0.0.1", 0)
    first = endpoint.listen(Factory()).result
    try:
        port = first.getHost().port
        second = ReusePortEndpoint("127.0.0.1", port).listen(Factory()).result
        try:
            assert second.getHost().port == port
        finally:
            second.stopListening()
    finally:
        first.stopListening()

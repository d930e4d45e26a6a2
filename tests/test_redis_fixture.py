"""The redis-server fixture itself: a real server on loopback that answers."""

import socket

import pytest

pytestmark = pytest.mark.redis


def test_fixture_starts_a_real_redis_server_on_loopback(redis_server):
    with socket.create_connection((redis_server.host, redis_server.port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(16) == b"+PONG\r\n"
    assert redis_server.host == "127.0.0.1"

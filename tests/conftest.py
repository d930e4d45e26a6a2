"""Shared fixtures: real services on loopback only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer, unique_prefix


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session; tests isolate by prefix or flush."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that kill or restart it."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_shards() -> Iterator[list[RedisServer]]:
    """Three real redis-servers, for sharding tests."""
    servers = [RedisServer() for _ in range(3)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A real Redis Cluster (3 masters, 3 replicas) for the session; tests isolate by prefix
    and must leave its topology as they found it (a test that kills a node makes its own)."""
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture
def layers():
    """Build Redis layers (``hosts=`` and options, a fresh prefix) and close them after the test."""
    from telex.layers.redis import RedisChannelLayer

    made: list[RedisChannelLayer] = []

    def make(**kwargs) -> RedisChannelLayer:
        kwargs.setdefault("prefix", unique_prefix())
        layer = RedisChannelLayer(**kwargs)
        made.append(layer)
        return layer

    yield make
    for layer in made:
        layer.close()

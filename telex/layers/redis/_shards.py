"""Shards: how to reach each one (redis-py clients that make the connections), and which
shard a name lives on.

A *shard* is one Redis server, one Sentinel-monitored master, or one master of
a Redis Cluster with its hash tag (``_cluster``). Each has a stable
*identity* (``host:port/db``, ``unix:/path/db``, ``sentinel:master/db`` or
``cluster:{TAG}``) that the rendezvous hash uses, so every process that
lists the same shards, in any order, maps names to the same shard.
``_urls`` turns the ``hosts`` option and layer URLs into shards.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from redis.backoff import NoBackoff

if TYPE_CHECKING:
    from ._cluster import ClusterMap


@dataclass(frozen=True)
class Shard:
    """How to reach one shard. ``url`` for plain Redis, ``sentinel`` for Sentinel;
    a cluster shard has its ``cluster`` map, the ``slot`` of its tag, and
    ``key_tag`` (``{TAG}``), which starts every key it holds."""

    identity: str
    url: str | None = None
    sentinel: dict[str, Any] | None = field(default=None, hash=False)
    cluster: ClusterMap | None = field(default=None, hash=False, compare=False)
    slot: int = 0
    key_tag: str = ""

    def address(self) -> tuple[str, int] | None:
        """Where a cluster shard's master is now (the wires connect there); None otherwise."""
        return None if self.cluster is None else self.cluster.address(self.slot)

    def _connection_options(self, options: dict[str, Any], retry_class: type) -> dict[str, Any]:
        # No retries inside redis-py: re-sending a command whose reply was lost
        # could deliver a message twice, and the spec wants at most once.
        # Stale pooled connections are still replaced when they are checked out.
        # (redis-py 8.2 warns when an asyncio client is given the sync Retry.)
        options = {"retry": retry_class(NoBackoff(), 0), **options}
        if self.identity.startswith("unix:"):
            options.pop("socket_connect_timeout", None)  # TCP-only options
        else:
            options.setdefault("socket_keepalive", True)
        return options

    def sync_client(self, options: dict[str, Any]) -> redis.Redis:
        kwargs = self._connection_options(options, redis.retry.Retry)
        if self.sentinel is not None:
            from redis.sentinel import Sentinel

            return self._master(Sentinel, kwargs)
        return redis.Redis(connection_pool=redis.ConnectionPool.from_url(self.url, **kwargs))  # type: ignore[arg-type]

    def async_client(self, options: dict[str, Any]) -> redis.asyncio.Redis:
        kwargs = self._connection_options(options, redis.asyncio.retry.Retry)
        if self.sentinel is not None:
            from redis.asyncio.sentinel import Sentinel

            return self._master(Sentinel, kwargs)
        return redis.asyncio.Redis(connection_pool=redis.asyncio.ConnectionPool.from_url(self.url, **kwargs))  # type: ignore[arg-type]

    def _master(self, sentinel_class: Any, kwargs: dict[str, Any]) -> Any:
        spec = self.sentinel
        assert spec is not None
        sentinels = [tuple(address) for address in spec["sentinels"]]
        manager = sentinel_class(sentinels, sentinel_kwargs=spec.get("sentinel_kwargs"), **kwargs)
        master_kwargs = {
            key: spec[key] for key in ("db", "password", "username") if spec.get(key) is not None
        }
        return manager.master_for(spec["master_name"], **master_kwargs, **kwargs)


class ShardRing:
    """Rendezvous (highest random weight) hashing of names onto shards.

    Adding or removing a shard moves only the names that must move (about
    1/N of them); the result depends on shard identities, not their order.
    """

    def __init__(self, identities: Iterable[str]) -> None:
        self._seeds = [hashlib.blake2b(identity.encode(), digest_size=16).digest() for identity in identities]
        self.shard_of = functools.lru_cache(maxsize=8192)(self._shard_of)

    def _shard_of(self, name: str) -> int:
        if len(self._seeds) == 1:
            return 0
        data = name.encode()
        weights = [hashlib.blake2b(data, key=seed, digest_size=8).digest() for seed in self._seeds]
        return weights.index(max(weights))

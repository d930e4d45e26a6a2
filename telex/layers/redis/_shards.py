"""Redis hosts: parsing the ``hosts`` option and URLs, clients per shard, the shard ring.

A *shard* is one Redis server (or one Sentinel-monitored master). Each has a
stable *identity* (``host:port/db``, ``unix:/path/db`` or
``sentinel:master/db``) that the rendezvous hash uses, so every process that
lists the same shards, in any order, maps names to the same shard.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from redis.backoff import NoBackoff

DEFAULT_PORT = 6379


@dataclass(frozen=True)
class Shard:
    """How to reach one shard. ``url`` for plain Redis, ``sentinel`` for Sentinel."""

    identity: str
    url: str | None = None
    sentinel: dict[str, Any] | None = field(default=None, hash=False)

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


def shard_from_entry(entry: Any) -> Shard:
    """One ``hosts`` entry: a URL, a ``(host, port)`` pair, or a Sentinel dict."""
    if isinstance(entry, str):
        if "://" not in entry:
            host, _, port = entry.rpartition(":")
            entry = f"redis://{host or entry}:{port if host else DEFAULT_PORT}/0"
        return _shard_from_url(entry)
    if isinstance(entry, (tuple, list)) and len(entry) == 2:
        host, port = entry
        return Shard(identity=f"{host}:{int(port)}/0", url=f"redis://{_host(host)}:{int(port)}/0")
    if isinstance(entry, dict) and "sentinels" in entry:
        master = entry.get("master_name") or entry.get("service_name")
        if not master or not entry["sentinels"]:
            raise ValueError(f"a Sentinel hosts entry needs 'sentinels' and 'master_name', got {entry!r}")
        spec = {**entry, "master_name": master}
        return Shard(identity=f"sentinel:{master}/{int(entry.get('db') or 0)}", sentinel=spec)
    raise ValueError(
        f"invalid hosts entry {entry!r}: use a redis://, rediss:// or unix:// URL, a (host, port) pair, "
        "or a dict with 'sentinels' and 'master_name'"
    )


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _shard_from_url(url: str) -> Shard:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "unix":
        db = _query_db(parts.query) or "0"
        return Shard(identity=f"unix:{unquote(parts.path)}/{db}", url=url)
    if scheme not in ("redis", "rediss"):
        raise ValueError(f"unsupported Redis URL scheme in {url!r} (use redis://, rediss:// or unix://)")
    db = _query_db(parts.query) or parts.path.strip("/") or "0"
    host = parts.hostname or "localhost"
    port = parts.port or DEFAULT_PORT
    return Shard(identity=f"{host}:{port}/{db}", url=url)


def _query_db(query: str) -> str | None:
    for item in query.split("&"):
        key, _, value = item.partition("=")
        if key == "db":
            return value
    return None


def split_url(url: str) -> tuple[list[Shard], str]:
    """The shards a layer URL names, and its query string (the layer's options).

    Several shards are written as a comma-separated host list sharing the
    credentials and database: ``redis://:pw@h1:6379,h2:6379/0?capacity=200``.
    ``redis+sentinel://[:pw@]s1:26379,s2:26379/master_name[/db]`` is one
    Sentinel-monitored shard.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a URL: {url!r}")
    scheme = scheme.lower()
    rest, _, query = rest.partition("?")
    if scheme == "unix":
        db = _query_db(query) or "0"
        return [Shard(identity=f"unix:{unquote(rest)}/{db}", url=f"unix://{rest}?db={db}")], query
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    credentials = userinfo + at
    hosts = [host for host in hostlist.split(",") if host] or ["localhost"]
    if scheme == "redis+sentinel":
        master, _, db = path.partition("/")
        if not master:
            raise ValueError(f"{url!r}: redis+sentinel:// needs the master name as its path")
        sentinels = []
        for host in hosts:
            name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
            sentinels.append((name or host, int(port or 26379)))
        password = unquote(userinfo.partition(":")[2]) if userinfo else None
        return [
            shard_from_entry(
                {
                    "sentinels": sentinels,
                    "master_name": unquote(master),
                    "db": int(db or 0),
                    "password": password or None,
                }
            )
        ], query
    if scheme not in ("redis", "rediss"):
        raise ValueError(f"unsupported Redis URL scheme {scheme!r} in {url!r}")
    db = _query_db(query) or path.strip("/") or "0"
    return [_shard_from_url(f"{scheme}://{credentials}{host}/{quote(db)}") for host in hosts], query


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

"""Parsing the ``hosts`` option and layer URLs into shards and layer options."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from ._shards import Shard

DEFAULT_PORT = 6379

# Query parameters of a layer URL and their types.
URL_OPTIONS: dict[str, type] = {
    "prefix": str,
    "expiry": float,
    "group_expiry": int,
    "capacity": int,
    "process_local_capacity": int,
    "max_message_size": int,
    "group_entry_members": int,
    "blocking_timeout": float,
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "symmetric_encryption_keys": str,
    "ssl_cert_reqs": str,
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
}
# The URL options that are redis-py connection options rather than the layer's own.
CONNECTION_URL_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def layer_arguments(url: str) -> dict[str, Any]:
    """``RedisChannelLayer``'s keyword arguments for a layer URL; ``ValueError`` names what is wrong."""
    from .. import parse_options

    scheme = url.partition("://")[0].lower()
    if scheme == "redis+cluster":
        entry, query = split_cluster_url(url)
        hosts: list[Any] = [entry]
    else:
        shards, query = split_url(url)
        hosts = [shard.url if shard.sentinel is None else shard.sentinel for shard in shards]
    # ``db`` was consumed with the hosts; the rest are the layer's options.
    query = "&".join(item for item in query.split("&") if item and not item.startswith("db="))
    options = parse_options(query, URL_OPTIONS, scheme)
    keys = options.pop("symmetric_encryption_keys", None)
    connection = {key: options.pop(key) for key in CONNECTION_URL_OPTIONS if key in options}
    return {
        "hosts": hosts,
        "symmetric_encryption_keys": keys.split(",") if keys else None,
        "connection_kwargs": connection or None,
        **options,
    }


def shards_of_hosts(hosts: Iterable[Any] | str | None, options: dict[str, Any]) -> list[Shard]:
    """The shards of the ``hosts`` option. A Redis Cluster (a ``{"cluster": [...]}`` entry or a
    ``redis+cluster://`` URL) must be the only entry; its shards are read from the cluster."""
    if isinstance(hosts, str):
        hosts = [hosts]
    entries = list(hosts or [("localhost", 6379)])
    clusters = [entry for entry in entries if _is_cluster(entry)]
    if not clusters:
        return [shard_from_entry(entry) for entry in entries]
    if len(entries) != 1:
        raise ValueError("a Redis Cluster must be the only hosts entry (its masters are the shards)")
    entry = clusters[0]
    if isinstance(entry, str):
        entry = split_cluster_url(entry)[0]
    from ._cluster import cluster_shards

    return cluster_shards(entry, options)


def _is_cluster(entry: Any) -> bool:
    if isinstance(entry, str):
        return entry.lower().startswith("redis+cluster://")
    return isinstance(entry, dict) and "cluster" in entry


def split_cluster_url(url: str) -> tuple[dict[str, Any], str]:
    """``redis+cluster://[[user]:password@]host:port,host:port[/0][?options]``: the hosts entry
    (``{"cluster": [...]}``, with any credentials) and the query string."""
    rest = url.partition("://")[2]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    if path.strip("/") not in ("", "0") or _query_db(query) not in (None, "0"):
        raise ValueError(f"{url!r}: a Redis Cluster has database 0 only")
    userinfo, _, hostlist = netloc.rpartition("@")
    nodes = []
    for host in hostlist.split(","):
        if host:
            name, _, port = host.rpartition(":")
            if not name or not port.isdigit():
                raise ValueError(f"{url!r}: write each cluster node as host:port, got {host!r}")
            nodes.append((unquote(name).strip("[]"), int(port)))
    if not nodes:
        raise ValueError(f"{url!r}: redis+cluster:// needs at least one host:port")
    entry: dict[str, Any] = {"cluster": nodes}
    if userinfo:
        username, _, password = userinfo.partition(":")
        entry.update(username=unquote(username) or None, password=unquote(password) or None)
    return entry, query


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
        "a dict with 'sentinels' and 'master_name', or a Redis Cluster ({'cluster': [('host', port), ...]} "
        "or a redis+cluster:// URL)"
    )


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


#: Layer options that a ``hosts`` entry's URL cannot carry (redis-py would
#: take them as connection arguments and fail at the first command).
_LAYER_ONLY_OPTIONS = frozenset(URL_OPTIONS) - {
    "socket_timeout",
    "socket_connect_timeout",
    *CONNECTION_URL_OPTIONS,
}


def _shard_from_url(url: str) -> Shard:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    misplaced = sorted({item.partition("=")[0] for item in parts.query.split("&")} & _LAYER_ONLY_OPTIONS)
    if misplaced:
        raise ValueError(
            f"{', '.join(misplaced)} in the hosts entry {url!r} is a layer option: pass it to the layer "
            "as an argument (or use the layer URL form, where the query holds the layer's options)"
        )
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

"""Parsing the ``hosts`` option and layer URLs into shards and layer options."""

from __future__ import annotations

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

    shards, query = split_url(url)
    # ``db`` was consumed with the hosts; the rest are the layer's options.
    query = "&".join(item for item in query.split("&") if item and not item.startswith("db="))
    scheme = url.partition("://")[0].lower()
    options = parse_options(query, URL_OPTIONS, scheme)
    keys = options.pop("symmetric_encryption_keys", None)
    connection = {key: options.pop(key) for key in CONNECTION_URL_OPTIONS if key in options}
    return {
        "hosts": [shard.url if shard.sentinel is None else shard.sentinel for shard in shards],
        "symmetric_encryption_keys": keys.split(",") if keys else None,
        "connection_kwargs": connection or None,
        **options,
    }


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

"""Redis Cluster: the slot map, the hash tags that make each master a shard, and redirections.

Redis refuses a script or a multi-key command whose keys hash to different
slots, so a shard of a cluster layer is one master *and* one hash tag: every
key the layer writes there starts with ``{TAG}``, so a script, a ``BLPOP``
over several queues or an ``UNLINK`` batch always stays in one slot. Each
master's tag is the smallest decimal number whose slot it owns, so every
process that reads the same slot map picks the same tags. The tag, not the
host, is the shard's identity: a failover (a replica taking over the same
slots) moves no name.

The map is read once when the layer is made (that fixes the tags), and read
again, at most every :data:`REFRESH_INTERVAL` seconds, after a connection to
the cluster failed; a ``MOVED`` reply updates one slot at once.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any
from urllib.parse import quote

import redis.crc
import redis.exceptions

from ._health import RedisUnavailable
from ._shards import Shard

SLOTS = 16384
#: Shortest time between two reads of the slot map after failures.
REFRESH_INTERVAL = 0.1
# A master owning a single slot needs about 16,384 tries on average.
_TAG_SEARCH_LIMIT = 1_000_000

Address = tuple[str, int]
Ranges = list[tuple[int, int, Address]]


class ClusterMap:
    """Which master owns each shard's slot now. Shared by a layer's threads and loops."""

    def __init__(self, seeds: list[Address], userinfo: str, options: dict[str, Any]) -> None:
        self._seeds = seeds
        self._userinfo = userinfo  # "user:password@" or ""
        self._options = options
        self._lock = threading.Lock()
        self._ranges: Ranges = []
        self._owners: dict[int, Address] = {}  # a shard's slot -> its master now
        self.stale = False
        self._read_at = 0.0

    def url(self, address: Address) -> str:
        host, port = address
        return f"redis://{self._userinfo}{f'[{host}]' if ':' in host else host}:{port}/0"

    def shards(self) -> list[Shard]:
        """Read the slot map and make one shard per master (raises ``RedisUnavailable``)."""
        self._ranges = self._read()
        assigned = sum(end - start + 1 for start, end, _ in self._ranges)
        if assigned != SLOTS:
            raise RedisUnavailable(f"Redis Cluster is not ready: {assigned} of {SLOTS} slots are assigned")
        shards = []
        for tag, slot in pick_tags(self._ranges):
            self._owners[slot] = owner(self._ranges, slot) or self._seeds[0]  # every slot is assigned
            shards.append(
                Shard(
                    identity=f"cluster:{{{tag}}}",
                    url=self.url(self._seeds[0]),
                    cluster=self,
                    slot=slot,
                    key_tag=f"{{{tag}}}",
                )
            )
        return shards

    def address(self, slot: int, refresh: bool = True) -> Address:
        """Where ``slot`` lives now; with ``refresh``, re-reading the map first (blocking I/O)
        if a failure made it stale."""
        if refresh and self.stale:
            self.refresh()
        return self._owners[slot]

    def failed(self) -> None:
        """A connection to the cluster failed: read the map again before the next one."""
        self.stale = True

    def moved(self, slot: int, address: Address) -> None:
        """A ``MOVED`` reply: the slot lives elsewhere now (an empty host means the same host)."""
        host, port = address
        self._owners[slot] = (host or self._owners[slot][0], port)

    def refresh(self) -> None:
        """Re-read the map if it is stale, at most every ``REFRESH_INTERVAL``; failures keep it stale."""
        with self._lock:
            if not self.stale or time.monotonic() - self._read_at < REFRESH_INTERVAL:
                return
            self._read_at = time.monotonic()
            try:
                ranges = self._read()
            except (RedisUnavailable, ValueError):
                return
            self._ranges = ranges
            for slot in self._owners:
                found = owner(ranges, slot)
                if found is not None:
                    self._owners[slot] = found
            self.stale = False

    def _read(self) -> Ranges:
        known = [address for _, _, address in self._ranges]
        errors = []
        for address in dict.fromkeys([*known, *self._seeds]):
            try:
                return self._read_from(address)
            except redis.exceptions.ResponseError as exc:
                raise ValueError(f"{address[0]}:{address[1]} is not a Redis Cluster node ({exc})") from exc
            except (redis.exceptions.RedisError, OSError) as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
        raise RedisUnavailable(f"Redis Cluster: no node answered CLUSTER SLOTS ({'; '.join(errors)})")

    def _read_from(self, address: Address) -> Ranges:
        pool = Shard(identity="", url=self.url(address)).sync_client(self._options).connection_pool
        try:
            connection = pool.get_connection()
            try:
                connection.send_command("CLUSTER", "SLOTS")
                reply = connection.read_response()
            finally:
                pool.release(connection)
        finally:
            pool.disconnect()
        ranges: Ranges = []
        for start, end, master, *_ in reply:
            host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            # An empty or unknown host means the node we asked.
            ranges.append((int(start), int(end), (address[0] if host in ("", "?") else host, int(master[1]))))
        return ranges


def owner(ranges: Ranges, slot: int) -> Address | None:
    for start, end, address in ranges:
        if start <= slot <= end:
            return address
    return None


def pick_tags(ranges: Ranges) -> list[tuple[str, int]]:
    """One (tag, its slot) per master: the smallest decimal number whose slot the master owns."""
    masters = {address for _, _, address in ranges}
    tags: dict[Address, tuple[str, int]] = {}
    for number in itertools.count():
        if len(tags) == len(masters) or number >= _TAG_SEARCH_LIMIT:
            break
        tag = str(number)
        slot = redis.crc.key_slot(tag.encode())
        master = owner(ranges, slot)
        if master is not None and master not in tags:
            tags[master] = (tag, slot)
    if len(tags) != len(masters):
        raise ValueError("Redis Cluster: found no hash tag for a master that owns almost no slots")
    return sorted(tags.values(), key=lambda found: found[1])


def cluster_shards(entry: dict[str, Any], options: dict[str, Any]) -> list[Shard]:
    """The shards of a ``{"cluster": [...]}`` hosts entry: one per master, read from the cluster."""
    unknown = set(entry) - {"cluster", "password", "username"}
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(sorted(unknown))} in a cluster hosts entry "
            "(known: cluster, password, username)"
        )
    seeds = [_address(node) for node in entry["cluster"] or ()]
    if not seeds:
        raise ValueError("a cluster hosts entry needs at least one node: {'cluster': [('host', port), ...]}")
    username, password = entry.get("username"), entry.get("password")
    userinfo = ""
    if username or password:
        userinfo = f"{quote(username or '', safe='')}:{quote(password or '', safe='')}@"
    return ClusterMap(seeds, userinfo, options).shards()


def _address(node: Any) -> Address:
    if isinstance(node, str):
        host, _, port = node.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"invalid cluster node {node!r}: use 'host:port' or ('host', port)")
        return host.strip("[]"), int(port)
    if isinstance(node, (tuple, list)) and len(node) == 2:
        return str(node[0]), int(node[1])
    raise ValueError(f"invalid cluster node {node!r}: use 'host:port' or ('host', port)")

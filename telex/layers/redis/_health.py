"""Shard health: the one place where Redis failures become :class:`RedisUnavailable`.

Both kinds of connection (``_threads`` and ``_loops``) hand every failure
here: connection errors and timeouts through :meth:`ShardHealth.failed`,
error replies through :func:`reply_error`, which is also the one place that
reads ``NOSCRIPT``, ``READONLY`` and a cluster's redirections. Outage pacing (the backoff of blocking
receives) and the lost-data marker live here too, since they follow a
shard's ups and downs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis.exceptions

logger = logging.getLogger("telex.layers.redis")

# Outage pacing for blocking receives: first pause, and the cap.
BACKOFF_START = 0.05
BACKOFF_CAP = 2.0


class RedisUnavailable(ConnectionError):
    """A Redis shard cannot be reached. The layer reconnects by itself on a later call."""


class ReplicaAnswered(redis.exceptions.ConnectionError):
    """``READONLY``: a Sentinel failover made this server a replica. The connection
    must close, so that the next one asks the sentinels for the new master."""


class Redirected(redis.exceptions.ConnectionError):
    """``MOVED`` or ``ASK``: a cluster node did not run the command, which belongs on ``address``.
    The connections follow it once; unfollowed, it is an outage like any other."""

    def __init__(self, text: str, ask: bool, address: tuple[str, int]) -> None:
        super().__init__(text)
        self.ask = ask
        self.address = address


class ClusterBusy(redis.exceptions.ConnectionError):
    """``CLUSTERDOWN``, ``TRYAGAIN``, ``MASTERDOWN`` or ``LOADING``: a cluster in failover or
    migration did not run the command; an outage until it settles."""


_BUSY = ("CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "LOADING")


#: What a down, restarting or unreachable server raises (redis-py's errors,
#: the wires' own ``WireClosed`` and socket errors, ``ReplicaAnswered``).
UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def reply_error(reply: Any) -> Exception:
    """The exception an error reply stands for.

    ``NOSCRIPT`` (Redis lost its script cache; the script did not run, so
    running it again is safe) is redis-py's ``NoScriptError``: the caller loads
    the script and runs it once more. ``READONLY`` is :class:`ReplicaAnswered`,
    an outage. Anything else is a ``ResponseError``, a bug to surface.
    """
    text = str(reply)
    if text.startswith("NOSCRIPT"):
        return redis.exceptions.NoScriptError(text)
    if text.startswith("READONLY"):
        return ReplicaAnswered(text)
    if text.startswith(("MOVED ", "ASK ")):
        kind, _, where = text.split(" ", 2)
        host, _, port = where.rpartition(":")
        return Redirected(text, kind == "ASK", (host, int(port)))
    if text.startswith(_BUSY):
        return ClusterBusy(text)
    return redis.exceptions.ResponseError(text)


class ShardHealth:
    """Which shards are down, the pause before the next blocking receive, and
    whether a shard lost the layer's data (``check_data_lost``)."""

    def __init__(
        self, hosts: list[str], blocking_timeout: float, on_failure: Callable[[], None] | None = None
    ) -> None:
        self.hosts = hosts
        self._on_failure = on_failure  # a cluster's: re-read the slot map before reconnecting
        self.blocking_timeout = blocking_timeout
        self.down: set[int] = set()  # read on the hot path: ``if health.down: health.up(shard)``
        self._backoff = BACKOFF_START
        self._armed = [False] * len(hosts)

    def failed(self, shard: int, exc: BaseException) -> RedisUnavailable:
        """The error to raise for ``exc`` on ``shard``; logs once when the shard goes down."""
        if isinstance(exc, RedisUnavailable):
            return exc
        if self._on_failure is not None:
            self._on_failure()
        if shard not in self.down:
            self.down.add(shard)
            logger.warning("Redis %s is unavailable (%s); retrying with backoff", self.hosts[shard], exc)
        return RedisUnavailable(f"Redis {self.hosts[shard]} is unavailable: {exc}")

    def up(self, shard: int) -> None:
        """``shard`` answered: log its return once and restart the backoff."""
        if shard in self.down:
            self.down.discard(shard)
            self._backoff = BACKOFF_START
            logger.warning("Redis %s is reachable again", self.hosts[shard])

    def pause(self) -> float:
        """How long a blocking receive sleeps after an outage: doubles up to the cap."""
        pause = min(self._backoff, self.blocking_timeout)
        self._backoff = min(self._backoff * 2, BACKOFF_CAP)
        return pause

    def marker_found(self, shard: int, created: bool) -> bool:
        """Whether ``shard`` lost its data: its marker had to be created again after the first call."""
        lost = created and self._armed[shard]
        if lost:
            logger.warning(
                "Redis %s lost the channel layer's data (restart without persistence, flush or failover); "
                "group memberships are gone",
                self.hosts[shard],
            )
        self._armed[shard] = True
        return lost

    def disarm(self) -> None:
        """After this layer's own ``flush()``: the next check arms again instead of reporting."""
        self._armed = [False] * len(self.hosts)

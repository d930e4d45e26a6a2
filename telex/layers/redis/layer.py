"""The Redis channel layer: one list per queue, one Lua script per step.

Data layout (``docs/redis-layer.md`` explains the choices):

* ``PREFIX q:QUEUE`` — a list of entries ``DEADLINE CHANNEL PAYLOAD`` (see
  ``_scripts``). QUEUE is the channel name, or ``prefix!`` for process-specific
  channels, which share one ordered list per process.
* ``PREFIX g:GROUP`` — a sorted set: member channel → membership deadline.
* ``PREFIX s:KEY`` — ``telex.store`` values; ``PREFIX o:``/``op:``/``ostall`` —
  ``telex.ordering`` state.
* ``PREFIX alive`` — the marker ``check_data_lost`` looks for.
* ``PREFIX x:RANDOM`` — short-lived keys that end one blocked ``BLPOP``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import hiredis
import redis
import redis.exceptions

from ..base import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_PROCESS_LOCAL_CAPACITY,
    TELEX_EXTENSIONS,
    BaseChannelLayer,
    CapacitySpec,
    ChannelFull,
    check_message,
    non_local_name,
)
from ._codec import DEADLINE_DIGITS, Codec, deadline_prefix, split_entry
from ._shards import Shard, ShardRing, shard_from_entry, split_url
from ._wire import SHAS, SOURCES, AsyncWire, SyncWire, WireClosed, is_noscript, is_readonly, pack

__all__ = ["RedisChannelLayer", "RedisUnavailable"]

logger = logging.getLogger("telex.layers.redis")

# redis-py's errors for a server that is down, restarting or unreachable.
_UNAVAILABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

# Outage pacing for blocking receives: first pause, and the cap.
_BACKOFF_START = 0.05
_BACKOFF_CAP = 2.0

# A receive over the same channels is planned once; servers and workers
# listen on a handful of channel lists, request-body readers on one each.
_PLAN_CACHE_SIZE = 2048


# Bumped in every forked child, so a wire made before a fork is never used
# after it; cheaper than asking os.getpid() (a system call) per command.
_forks = [0]
os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))


class RedisUnavailable(ConnectionError):
    """A Redis shard cannot be reached. The layer reconnects by itself on a later call."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Client:
    """A redis-py client for one shard with its scripts registered (EVALSHA, loaded on demand)."""

    __slots__ = ("redis", "scripts")

    def __init__(self, client: Any) -> None:
        self.redis = client
        self.scripts = {name: client.register_script(source) for name, source in SOURCES.items()}


class _LoopState:
    """What the layer holds on one event loop.

    Per shard: redis-py's asyncio client (for the rare commands, and to make
    connections), one pipelined :class:`AsyncWire` shared by every send and
    take, and idle wires kept for ``BLPOP`` (a blocked command holds its
    connection, so each wait has its own). Also the push-backs still running.
    """

    def __init__(self, clients: list[_Client]) -> None:
        self.clients = clients
        self.wires: list[AsyncWire | None] = [None] * len(clients)
        self.connecting: list[asyncio.Future[AsyncWire] | None] = [None] * len(clients)
        self.blocking: list[list[AsyncWire]] = [[] for _ in clients]
        self.pending: set[asyncio.Future[Any]] = set()


class RedisChannelLayer(BaseChannelLayer):
    """An ASGI 1 channel layer on one or more Redis (6.2+) or Valkey servers.

    Keyword names follow Channels 1.x's asgi_redis, so existing settings carry
    over; the storage format does not, so never share a ``prefix`` with it.
    """

    extensions = list(TELEX_EXTENSIONS)

    def __init__(
        self,
        hosts: Iterable[Any] | str | None = None,
        *,
        prefix: str = "telex:",
        expiry: float = 60,
        group_expiry: int = 86400,
        capacity: int = 100,
        channel_capacity: CapacitySpec | None = None,
        process_local_capacity: int = DEFAULT_PROCESS_LOCAL_CAPACITY,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        symmetric_encryption_keys: Iterable[str | bytes] | None = None,
        blocking_timeout: float = 5.0,
        socket_timeout: float = 10.0,
        socket_connect_timeout: float = 5.0,
        connection_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            expiry=expiry,
            group_expiry=group_expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
            process_local_capacity=process_local_capacity,
            max_message_size=max_message_size,
        )
        if blocking_timeout <= 0:
            raise ValueError(f"blocking_timeout must be positive, got {blocking_timeout!r}")
        if socket_timeout <= blocking_timeout:
            # A blocked BLPOP would otherwise be cut off by the client's own timeout.
            raise ValueError(
                f"socket_timeout ({socket_timeout}) must be longer than blocking_timeout ({blocking_timeout})"
            )
        if isinstance(hosts, str):
            hosts = [hosts]
        self.shards: list[Shard] = [shard_from_entry(entry) for entry in hosts or [("localhost", 6379)]]
        identities = [shard.identity for shard in self.shards]
        if len(set(identities)) != len(identities):
            raise ValueError(f"hosts lists the same Redis twice: {identities}")
        self.hosts = identities
        self.prefix = prefix
        self.blocking_timeout = blocking_timeout
        self._options = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            **(connection_kwargs or {}),
        }
        self._codec = Codec(symmetric_encryption_keys)
        self._ring = ShardRing(identities)
        self._expiry_ms = int(expiry * 1000)
        self._ttl_ms = self._expiry_ms + 1000  # queue keys outlive their newest message
        self._group_expiry_ms = int(group_expiry * 1000)
        self._round_robin = itertools.count()
        self._lock = threading.Lock()
        self._sync_clients: list[_Client | None] = [None] * len(self.shards)
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._thread = threading.local()
        self._wire_generation = 0  # close() bumps it: other threads' wires are replaced at next use
        self._plans: dict[tuple[str, ...], tuple[tuple[int, list[str]], ...]] = {}
        self._destinations: dict[str, tuple[str, str, bytes, int, tuple[int, ...]]] = {}
        self._down: set[int] = set()
        self._backoff = _BACKOFF_START
        self._armed = [False] * len(self.shards)
        self._marker_token = self.random_suffix()
        self._messages_count = 0
        self._channel_full_count = 0
        self._channel_counts: dict[str, list[int]] = {}

    @classmethod
    def from_url(cls, url: str) -> RedisChannelLayer:
        """Build a layer from ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://``.

        Query parameters set the options (``?capacity=200&prefix=myapp:``);
        ``symmetric_encryption_keys`` takes a comma-separated list. Several
        shards: ``redis://:password@host1:6379,host2:6379/0``.
        """
        from .. import LayerSpecError, parse_options

        try:
            shards, query = split_url(url)
        except ValueError as exc:
            raise LayerSpecError(str(exc)) from exc
        # ``db`` was consumed with the hosts; the rest are the layer's options.
        query = "&".join(item for item in query.split("&") if item and not item.startswith("db="))
        scheme = url.partition("://")[0].lower()
        options = parse_options(query, _URL_OPTIONS, scheme)
        keys = options.pop("symmetric_encryption_keys", None)
        connection = {key: options.pop(key) for key in _CONNECTION_URL_OPTIONS if key in options}
        hosts = [shard.url if shard.sentinel is None else shard.sentinel for shard in shards]
        try:
            return cls(
                hosts=hosts,
                symmetric_encryption_keys=keys.split(",") if keys else None,
                connection_kwargs=connection or None,
                **options,
            )
        except ValueError as exc:
            raise LayerSpecError(f"{url}: {exc}") from exc

    # -- core API --------------------------------------------------------------

    def send(self, channel: str, message: dict) -> None:
        queue, key, shards, args = self._send_args(channel, message)
        unavailable = None
        for shard in shards:
            try:
                sent = self._eval(shard, "send", [key], args)
            except RedisUnavailable as exc:
                unavailable = exc  # a normal channel may still go to another shard
                continue
            if sent:
                self._count(queue, 0)
                return
        self._refuse_send(channel, queue, args[1], unavailable)

    async def send_async(self, channel: str, message: dict) -> None:
        """``send`` on the running loop's asyncio clients: what the server uses,
        so a send never blocks the reactor and needs no thread."""
        queue, key, shards, args = self._send_args(channel, message)
        state = self._loop_state()
        unavailable = None
        for shard in shards:
            try:
                # Sends issued in the same loop iteration share one write.
                sent = await self._eval_async(state, shard, "send", [key], args)
            except RedisUnavailable as exc:
                unavailable = exc
                continue
            if sent:
                self._count(queue, 0)
                return
        self._refuse_send(channel, queue, args[1], unavailable)

    def _send_args(self, channel: str, message: dict) -> tuple[str, str, Iterable[int], list[Any]]:
        """The queue, its key, the shards to try in turn and the send script's
        arguments (entry, capacity, now, ttl)."""
        queue, key, name, capacity, shards = self._destinations.get(channel) or self._destination(channel)
        payload = self._encode(channel, message)
        now = _now_ms()
        entry = b"%013d" % (now + self._expiry_ms) + name + payload
        return queue, key, shards or self._spread(), [entry, capacity, now, self._ttl_ms]

    def _destination(self, channel: str) -> tuple[str, str, bytes, int, tuple[int, ...]]:
        """Everything a send needs to know about a channel name, worked out once per name.

        (queue, its key, the entry's name part, capacity, its shard or () when
        sends spread over all). Bounded: emptied when full, as reply channels
        come and go.
        """
        self.check_channel_name(channel)
        queue = non_local_name(channel)
        homes = self._shards_of(queue)
        shards = tuple(homes) if len(homes) == 1 else ()
        name = channel.encode("ascii") + b" "
        found = (queue, self._queue_key(queue), name, self.get_capacity(channel), shards)
        if len(self._destinations) >= _PLAN_CACHE_SIZE:
            self._destinations.clear()
        self._destinations[channel] = found
        return found

    def _refuse_send(self, channel: str, queue: str, capacity: int, unavailable: Exception | None) -> None:
        if unavailable is not None:
            raise unavailable
        self._count(queue, 1)
        raise ChannelFull(f"channel {channel!r} is at capacity ({capacity})")

    def receive(self, channels: Iterable[str], block: bool = False) -> tuple[Any, Any]:
        """Take one message; with ``block=True`` wait inside Redis up to ``blocking_timeout``.

        A blocking receive never raises for an outage: it logs, pauses with
        backoff and returns ``(None, None)``, so worker loops survive restarts.
        """
        plan = self._plan(channels)
        try:
            found = self._take(plan, 1)
            if found or not block:
                return found[0] if found else (None, None)
            if len(plan) == 1:
                return self._blpop(*plan[0])
            # Several shards: wait on all at once, on this thread's own loop.
            return self._thread_loop().run_until_complete(self._wait_here(plan))
        except RedisUnavailable:
            if not block:
                raise
            time.sleep(self._next_pause())
            return None, None

    def receive_batch_nowait(self, channels: Iterable[str], max_messages: int = 100) -> list[tuple[str, Any]]:
        """Take up to ``max_messages`` waiting messages without blocking, one round trip per shard.

        For readers that drain a busy queue (an interface server's ``prefix!``).
        """
        if max_messages < 1:
            raise ValueError(f"max_messages must be positive, got {max_messages!r}")
        return self._take(self._plan(channels), max_messages)

    def new_channel(self, pattern: str) -> str:
        # 72 random bits make a clash negligible, so no round trip checks it.
        self.check_new_channel_pattern(pattern)
        return pattern + self.random_suffix()

    # -- asyncio and twisted extensions ---------------------------------------

    async def receive_async(self, channels: Iterable[str]) -> tuple[Any, Any]:
        """Await a message on the running loop; Redis does the waiting (BLPOP).

        Cancelling it never loses a message: whatever was popped when the
        cancellation arrived is pushed back to the head of its queue before
        the next receive on this loop starts.
        """
        found = await self.receive_batch_async(channels, 1)
        return found[0] if found else (None, None)

    async def receive_batch_async(
        self, channels: Iterable[str], max_messages: int = 100
    ) -> list[tuple[str, Any]]:
        """Await up to ``max_messages`` messages: those already waiting, in one
        round trip per shard, or else the first to arrive (BLPOP).

        An empty list after ``blocking_timeout`` or during an outage (logged,
        with backoff), like ``receive_async``'s ``(None, None)``. For a
        reader that drains a busy queue, such as an interface server's
        ``prefix!``: under load one call returns many replies.
        """
        if max_messages < 1:
            raise ValueError(f"max_messages must be positive, got {max_messages!r}")
        plan = self._plan(channels)
        state = self._loop_state()
        if state.pending:
            await asyncio.gather(*state.pending, return_exceptions=True)
        try:
            found = await self._take_async(state, plan, max_messages)
            if found:
                return found
            first = await self._wait(state, plan)
            return [first] if first[0] is not None else []
        except RedisUnavailable:
            await asyncio.sleep(self._next_pause())
            return []

    def receive_twisted(self, channels: Iterable[str]):  # -> Deferred
        """A Deferred firing with ``(channel, message)`` or ``(None, None)``.

        On Twisted's asyncio reactor (what ``telex serve`` runs) this is
        ``receive_async`` on the reactor's loop: no thread per call, and
        cancelling the Deferred cancels the wait without losing a message.
        On other reactors a blocking receive runs in the reactor's thread pool;
        a message it takes after the Deferred was cancelled goes back to the
        head of its channel (with a fresh expiry).
        """
        from twisted.internet import defer, reactor, threads

        if isinstance(channels, str):
            raise TypeError("receive_twisted() takes a list of channel names, not one str")
        names = list(channels)
        self._plan(names)  # name errors surface here, not in the Deferred
        loop = getattr(reactor, "_asyncioEventloop", None)  # set by AsyncioSelectorReactor
        if loop is not None:
            return defer.Deferred.fromFuture(asyncio.ensure_future(self.receive_async(names), loop=loop))
        cancelled = []
        result: defer.Deferred = defer.Deferred(lambda _: cancelled.append(True))

        def deliver(received: tuple[Any, Any]) -> None:
            if not cancelled:
                result.callback(received)
            elif received[0] is not None:
                channel, message = received
                reactor.callInThread(self._push_front, channel, self._codec.seal(self._codec.pack(message)))

        def fail(failure: Any) -> None:
            if not cancelled:
                result.errback(failure)

        threads.deferToThread(self.receive, names, True).addCallbacks(deliver, fail)
        return result

    # -- groups extension ------------------------------------------------------

    def group_add(self, group: str, channel: str) -> None:
        self.check_group_name(group)
        self.check_channel_name(channel)
        shard = self._ring.shard_of(group)
        key = self._key("g:", group)
        with self._errors(shard):
            pipe = self._client(shard).redis.pipeline(transaction=False)
            pipe.zadd(key, {channel: _now_ms() + self._group_expiry_ms})
            pipe.pexpire(key, self._group_expiry_ms + 1000)
            pipe.execute()

    def group_discard(self, group: str, channel: str) -> None:
        self.check_group_name(group)
        self.check_channel_name(channel)
        shard = self._ring.shard_of(group)
        with self._errors(shard):
            self._client(shard).redis.zrem(self._key("g:", group), channel)

    def group_channels(self, group: str) -> list[str]:
        self.check_group_name(group)
        shard = self._ring.shard_of(group)
        members = self._eval(shard, "group_members", [self._key("g:", group)], [_now_ms()])
        return [member.decode("ascii") for member in members]

    def send_group(self, group: str, message: dict) -> None:
        """Send to every member; full members are skipped, as the spec requires.

        One round trip with one shard and no ``channel_capacity`` overrides;
        otherwise one to read the members plus one per shard holding members.
        """
        self.check_group_name(group)
        payload = self._encode(group, message)
        group_shard = self._ring.shard_of(group)
        now = _now_ms()
        deadline = deadline_prefix(now + self._expiry_ms)
        if len(self.shards) == 1 and not self.channel_capacity:
            self._eval(
                0,
                "group_send_local",
                [self._key("g:", group)],
                [
                    now,
                    self._ttl_ms,
                    deadline,
                    payload,
                    self._key("q:", ""),
                    self.capacity,
                    self.process_local_capacity,
                ],
            )
            return
        by_shard: dict[int, tuple[list[str], list[Any]]] = {}
        for channel in self.group_channels(group):
            queue = non_local_name(channel)
            # Normal channels are read from every shard, so any shard will do.
            shard = self._ring.shard_of(queue) if _pinned(queue) else group_shard
            keys, pairs = by_shard.setdefault(shard, ([], []))
            keys.append(self._queue_key(queue))
            pairs += [channel, self.get_capacity(channel)]
        for shard, (keys, pairs) in by_shard.items():
            self._eval(shard, "group_push", keys, [now, self._ttl_ms, deadline, payload, *pairs])

    # -- flush and statistics extensions --------------------------------------

    def flush(self) -> None:
        """Delete this layer's keys (its prefix only) on every shard, using SCAN, never KEYS.

        Other processes' :meth:`check_data_lost` will report the loss, which is right:
        their group memberships are gone.
        """
        for shard in range(len(self.shards)):
            client = self._client(shard).redis
            with self._errors(shard):
                batch = []
                for key in client.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000):
                    batch.append(key)
                    if len(batch) >= 500:
                        client.unlink(*batch)
                        batch = []
                if batch:
                    client.unlink(*batch)
        self._armed = [False] * len(self.shards)

    def global_statistics(self) -> dict[str, Any]:
        """Counts are this process's sends; pending and age are read from every shard (SCAN)."""
        pending, oldest = 0, None
        for shard in range(len(self.shards)):
            client = self._client(shard).redis
            with self._errors(shard):
                keys = list(client.scan_iter(match=_glob_escape(self._key("q:", "")) + "*", count=1000))
                shard_pending, shard_oldest = self._queue_stats(client, keys)
            pending += shard_pending
            if shard_oldest is not None and (oldest is None or shard_oldest < oldest):
                oldest = shard_oldest
        return {
            "messages_count": self._messages_count,
            "messages_pending": pending,
            "messages_max_age": self._age(oldest),
            "channel_full_count": self._channel_full_count,
        }

    def channel_statistics(self, channel: str) -> dict[str, Any]:
        self.check_channel_name(channel)
        queue = non_local_name(channel)
        pending, oldest = 0, None
        for shard in self._shards_of(queue):
            with self._errors(shard):
                shard_pending, shard_oldest = self._queue_stats(
                    self._client(shard).redis, [self._queue_key(queue)]
                )
            pending += shard_pending
            if shard_oldest is not None and (oldest is None or shard_oldest < oldest):
                oldest = shard_oldest
        messages, full = self._channel_counts.get(queue, (0, 0))
        return {
            "messages_count": messages,
            "messages_pending": pending,
            "messages_max_age": self._age(oldest),
            "channel_full_count": full,
        }

    # -- Redis health -----------------------------------------------------------

    def check_data_lost(self) -> bool:
        """True once after any shard lost this layer's data since the previous call.

        The first call arms the check (it writes a marker key per shard); a
        later call that finds a marker gone means Redis restarted without
        persistence, was flushed or failed over to an empty replica: group
        memberships are gone, and a server should close its WebSockets (1012).
        Raises :class:`RedisUnavailable` while a shard is down.
        """
        lost = False
        for shard in range(len(self.shards)):
            with self._errors(shard):
                created = self._client(shard).redis.set(self._key("alive", ""), self._marker_token, nx=True)
            lost |= self._note_marker(shard, bool(created))
        return lost

    async def check_data_lost_async(self) -> bool:
        """:meth:`check_data_lost` on the running loop, for servers on the asyncio reactor."""
        state = self._loop_state()
        lost = False
        for shard in range(len(self.shards)):
            with self._errors(shard):
                created = await state.clients[shard].redis.set(
                    self._key("alive", ""), self._marker_token, nx=True
                )
            lost |= self._note_marker(shard, bool(created))
        return lost

    def close(self) -> None:
        """Close this layer's synchronous connections (async ones close with their loop)."""
        # This thread's wires close now; other threads' (maybe mid-command)
        # are closed and replaced by their own thread at its next command.
        self._wire_generation += 1
        for wire in getattr(self._thread, "wires", None) or ():
            if wire is not None:
                wire.close()
        self._thread.wires = None
        with self._lock:
            clients, self._sync_clients = self._sync_clients, [None] * len(self.shards)
        for client in clients:
            if client is not None:
                # Commands still running in other threads finish; their
                # connections close when the pool is collected.
                client.redis.connection_pool.disconnect(inuse_connections=False)

    # -- telex.store extension ---------------------------------------------------

    def store_get(self, key: str) -> dict | None:
        """The dict saved under ``key``, or None if absent, expired or undecryptable."""
        shard = self._ring.shard_of(key)
        with self._errors(shard):
            raw = self._client(shard).redis.get(self._key("s:", key))
        return None if raw is None else self._codec.decode(raw, key)

    def store_set(self, key: str, value: dict, ttl: float | None = None) -> None:
        """Save ``value`` under ``key`` for ``ttl`` seconds (default: group_expiry)."""
        payload = self._encode(key, value)
        shard = self._ring.shard_of(key)
        milliseconds = max(1, int((self.group_expiry if ttl is None else ttl) * 1000))
        with self._errors(shard):
            self._client(shard).redis.set(self._key("s:", key), payload, px=milliseconds)

    def store_delete(self, key: str) -> None:
        shard = self._ring.shard_of(key)
        with self._errors(shard):
            self._client(shard).redis.delete(self._key("s:", key))

    # -- telex.ordering extension ------------------------------------------------

    def ordering_claim(self, key: str, order: int, channel: str, message: dict) -> str:
        """Atomically (one script): ``"run"``, ``"park"`` (stored) or ``"drop"``."""
        self.check_channel_name(channel)
        payload = self._encode(channel, message)
        shard = self._ring.shard_of(key)
        queue = non_local_name(channel)
        # The requeue happens inside the script when the queue may live on this
        # shard; otherwise the script hands the message back for the caller.
        local = not _pinned(queue) or self._ring.shard_of(queue) == shard
        record = (
            (self._queue_key(queue) if local else "").encode() + b"\n" + channel.encode() + b"\n" + payload
        )
        with self._errors(shard):
            verdict = self._client(shard).scripts["ordering_claim"](
                keys=self._ordering_keys(key),
                args=[order, record, _now_ms(), self._group_expiry_ms, key],
            )
        return verdict.decode()

    def ordering_advance(self, key: str, order: int) -> None:
        """Mark ``order`` done and requeue the next parked message, in one script."""
        shard = self._ring.shard_of(key)
        with self._errors(shard):
            moved = self._client(shard).scripts["ordering_advance"](
                keys=self._ordering_keys(key),
                args=[order, _now_ms(), self._expiry_ms, self._group_expiry_ms, key],
            )
        if moved:
            self._push_front(moved[0].decode(), moved[1])

    def ordering_skip_stalled(self, older_than: float) -> list[tuple[str, int, int]]:
        """Give up on missing messages of sequences stalled over ``older_than`` seconds."""
        skipped = []
        now = _now_ms()
        for shard in range(len(self.shards)):
            with self._errors(shard):
                rows = self._client(shard).scripts["ordering_skip_stalled"](
                    keys=[self._key("ostall", "")],
                    args=[
                        now - int(older_than * 1000),
                        now,
                        self._expiry_ms,
                        self._group_expiry_ms,
                        self.prefix,
                    ],
                )
            for key, expected, resumed, channel, payload in rows:
                if channel:
                    self._push_front(channel.decode(), payload)
                skipped.append((key.decode(), int(expected), int(resumed)))
        return skipped

    # -- receiving internals -------------------------------------------------------

    def _plan(self, channels: Iterable[str]) -> tuple[tuple[int, list[str]], ...]:
        """Which queue keys to read on which shard, for a receive over ``channels``."""
        if isinstance(channels, str):
            raise TypeError("receive() takes a list of channel names, not one str")
        names = tuple(channels)
        plan = self._plans.get(names)
        if plan is not None:
            return plan
        by_shard: dict[int, list[str]] = {}
        for name in names:
            self.check_channel_name(name, receive=True)
            key = self._queue_key(name)
            for shard in self._shards_of(name):
                keys = by_shard.setdefault(shard, [])
                if key not in keys:
                    keys.append(key)
        plan = tuple(by_shard.items())
        if len(self._plans) < _PLAN_CACHE_SIZE:
            self._plans[names] = plan
        return plan

    def _rotated(self, plan: tuple[tuple[int, list[str]], ...]) -> tuple[tuple[int, list[str]], ...]:
        # Start at a different shard each time so no shard is always read first.
        if len(plan) == 1:
            return plan
        start = next(self._round_robin) % len(plan)
        return plan[start:] + plan[:start]

    def _take(self, plan: tuple[tuple[int, list[str]], ...], count: int) -> list[tuple[str, Any]]:
        found: list[tuple[str, Any]] = []
        unavailable = []
        for shard, keys in self._rotated(plan):
            # Bounded: each pass pops at least one entry or finds the queues empty.
            for _ in range(64):
                wanted = count - len(found)
                try:
                    if len(keys) == 1:
                        # Plain LPOP with a count: no script to run (expired entries
                        # are dropped by _decode_all, and counted as taken here).
                        entries = self._call(shard, b"LPOP", keys[0], wanted) or []
                    else:
                        entries = self._eval(shard, "receive", keys, [_now_ms(), wanted])
                except RedisUnavailable as exc:
                    unavailable.append(exc)  # the other shards may still have messages
                    break
                found += self._decode_all(entries)
                if len(found) >= count or len(entries) < wanted:
                    break
            if len(found) >= count:
                break
        if unavailable and not found:
            raise unavailable[0]
        return found

    async def _take_async(
        self, state: _LoopState, plan: tuple[tuple[int, list[str]], ...], count: int
    ) -> list[tuple[str, Any]]:
        found: list[tuple[str, Any]] = []
        for shard, keys in self._rotated(plan):
            for _ in range(64):  # each pass pops at least one entry or finds the queues empty
                wanted = count - len(found)
                if len(keys) == 1:
                    taking = self._command_future(state, shard, "", pack(b"LPOP", keys[0], wanted))
                else:
                    taking = self._eval_future(state, shard, "receive", keys, [_now_ms(), wanted])
                try:
                    entries = await asyncio.shield(taking)
                except asyncio.CancelledError:
                    # Redis may already have popped: give it back before the next receive.
                    self._push_back_when_done(state, self._entries_of(shard, taking))
                    raise
                entries = entries or []  # LPOP's nil: the queue is empty
                found += self._decode_all(entries)
                if len(found) >= count or len(entries) < wanted:
                    break
            if len(found) >= count:
                break
        return found

    async def _entries_of(self, shard: int, taking: asyncio.Future[Any]) -> list[tuple[int, bytes, bytes]]:
        return [(shard, b"", entry) for entry in await taking or ()]

    # -- the asyncio wires -------------------------------------------------------

    async def _eval_async(
        self, state: _LoopState, shard: int, script: str, keys: list[str], args: list[Any]
    ) -> Any:
        return await self._eval_future(state, shard, script, keys, args)

    def _eval_future(
        self, state: _LoopState, shard: int, script: str, keys: list[str], args: list[Any]
    ) -> asyncio.Future[Any]:
        """A future for one script run on the shard's shared, pipelined wire.

        Its command is queued at once, so futures made one after another run
        in Redis in that order. Raises :class:`RedisUnavailable` through the
        future; a missing script (``NOSCRIPT``: it did not run) is loaded and
        run once more.
        """
        return self._command_future(
            state, shard, script, pack(b"EVALSHA", SHAS[script], len(keys), *keys, *args)
        )

    def _command_future(
        self, state: _LoopState, shard: int, script: str, packed: bytes
    ) -> asyncio.Future[Any]:
        """A future for one packed command; ``script`` names the script an EVALSHA runs, or is empty."""
        wire = state.wires[shard]
        loop = asyncio.get_running_loop()
        if wire is not None and wire.lost is None:
            reply = wire.call(packed)
        else:
            reply = loop.create_task(self._call_after_connect(state, shard, packed))
        result = loop.create_future()
        reply.add_done_callback(lambda done: self._settle(state, shard, (script, packed), done, result))
        return result

    async def _call_after_connect(self, state: _LoopState, shard: int, packed: bytes) -> Any:
        return await (await self._command_wire(state, shard)).call(packed)

    def _settle(
        self,
        state: _LoopState,
        shard: int,
        command: tuple[str, bytes],
        done: asyncio.Future[Any],
        result: asyncio.Future[Any],
    ) -> None:
        """Resolve a script's future from its reply (``command``: script name, packed EVALSHA)."""
        script, packed = command
        if result.done():
            return
        if done.cancelled():
            result.cancel()
            return
        exc = done.exception()
        if exc is None:
            reply = done.result()
            if not isinstance(reply, hiredis.ReplyError):
                result.set_result(reply)
                if self._down:
                    self._mark_up(shard)
                return
            if is_noscript(reply) and script:
                # Queued back to back on the same wire: the load runs first.
                wire = state.wires[shard]
                if wire is not None and wire.lost is None:
                    wire.call(pack(b"SCRIPT", b"LOAD", SOURCES[script]))
                    retry = wire.call(packed)
                    again = ("", packed)  # no second load
                    retry.add_done_callback(lambda reply: self._settle(state, shard, again, reply, result))
                    return
            exc = self._reply_error(state, shard, reply)
        if isinstance(exc, (WireClosed, *_UNAVAILABLE)):
            exc = self._unavailable(shard, exc)
        result.set_exception(exc)

    def _reply_error(self, state: _LoopState, shard: int, reply: Exception) -> Exception:
        if is_readonly(reply):
            # A Sentinel failover made this server a replica: reconnect, which
            # asks the sentinels for the new master.
            for wire in (state.wires[shard], *state.blocking[shard]):
                if wire is not None:
                    wire.close()
            return self._unavailable(shard, WireClosed(str(reply)))
        return redis.exceptions.ResponseError(str(reply))

    async def _command_wire(self, state: _LoopState, shard: int) -> AsyncWire:
        wire = state.wires[shard]
        if wire is not None and wire.lost is None:
            return wire
        connecting = state.connecting[shard]
        if connecting is None:
            connecting = state.connecting[shard] = asyncio.ensure_future(self._open_wire(state, shard))
            connecting.add_done_callback(lambda _: state.connecting.__setitem__(shard, None))
        wire = state.wires[shard] = await asyncio.shield(connecting)
        return wire

    async def _open_wire(self, state: _LoopState, shard: int) -> AsyncWire:
        pool = state.clients[shard].redis.connection_pool
        try:
            return await AsyncWire.connect(pool, self._options["socket_timeout"])
        except _UNAVAILABLE as exc:
            raise self._unavailable(shard, exc) from exc

    async def _blocking_wire(self, state: _LoopState, shard: int) -> AsyncWire:
        idle = state.blocking[shard]
        while idle:
            wire = idle.pop()
            if wire.idle:
                return wire
            wire.close()
        return await self._open_wire(state, shard)

    def _release_blocking(self, state: _LoopState, shard: int, wire: AsyncWire) -> None:
        if wire.idle and len(state.blocking[shard]) < 8:
            state.blocking[shard].append(wire)
        else:
            wire.close()

    async def _blpop_reply(self, shard: int, blpop: asyncio.Future[Any]) -> Any:
        try:
            reply = await blpop
        except (WireClosed, *_UNAVAILABLE) as exc:
            raise self._unavailable(shard, exc) from exc
        if isinstance(reply, hiredis.ReplyError):
            raise self._unavailable(shard, WireClosed(str(reply)))
        return reply

    # -- blocking receives -------------------------------------------------------

    def _blpop(self, shard: int, keys: list[str]) -> tuple[Any, Any]:
        deadline = time.monotonic() + self.blocking_timeout
        while (remaining := deadline - time.monotonic()) > 0.001:
            reply = self._call(shard, b"BLPOP", *keys, _blpop_timeout(remaining))
            if reply is None:
                break
            found = self._decode_all([reply[1]])
            if found:
                return found[0]
        return None, None

    async def _wait_here(self, plan: tuple[tuple[int, list[str]], ...]) -> tuple[Any, Any]:
        return await self._wait(self._loop_state(), plan)

    async def _wait(self, state: _LoopState, plan: tuple[tuple[int, list[str]], ...]) -> tuple[Any, Any]:
        """Block on every shard at once with BLPOP; the first message wins, others go back.

        Each BLPOP also watches a fresh key of its own, ``x:RANDOM``: pushing
        to it ends that BLPOP early, so no wait outlives this call and any
        message it popped meanwhile is pushed back before we return.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.blocking_timeout
        while (remaining := deadline - loop.time()) > 0.001:
            waits: dict[asyncio.Future[Any], tuple[int, str, AsyncWire]] = {}
            try:
                for shard, keys in plan:
                    wire = await self._blocking_wire(state, shard)
                    wake_key = self._key("x:", self.random_suffix())
                    timeout = _blpop_timeout(remaining)
                    blpop = wire.call(pack(b"BLPOP", *keys, wake_key, timeout), blocking=timeout)
                    waits[loop.create_task(self._blpop_reply(shard, blpop))] = (shard, wake_key, wire)
            except BaseException:
                if waits:
                    self._push_back_when_done(state, loop.create_task(self._collect(state, waits)))
                raise
            collecting = None
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                collecting = loop.create_task(self._collect(state, waits))
                popped = await asyncio.shield(collecting)
            except asyncio.CancelledError:
                self._push_back_when_done(state, collecting or loop.create_task(self._collect(state, waits)))
                raise
            result = None
            for index, (_, _, entry) in enumerate(popped):
                found = self._decode_all([entry])
                if found:
                    result = found[0]
                    if index + 1 < len(popped):
                        await self._push_back(state, popped[index + 1 :])
                    break
            if result is not None:
                return result
        return None, None

    async def _collect(
        self, state: _LoopState, waits: dict[asyncio.Future[Any], tuple[int, str, AsyncWire]]
    ) -> list[tuple[int, bytes, bytes]]:
        """End every BLPOP of ``waits`` and return what they popped, first finished first."""
        for task, (shard, wake_key, _) in waits.items():
            if not task.done():
                try:
                    wire = await self._command_wire(state, shard)
                    wire.call(pack(b"LPUSH", wake_key, b""))
                    wire.call(pack(b"PEXPIRE", wake_key, 10_000))
                except (RedisUnavailable, WireClosed):
                    pass  # that BLPOP fails on its own connection too
        finished = [task for task in waits if task.done()]
        await asyncio.wait(waits)
        finished += [task for task in waits if task not in finished]
        popped, failure = [], None
        for task in finished:
            shard, wake_key, wire = waits[task]
            self._release_blocking(state, shard, wire)
            if task.exception() is not None:
                failure = task.exception()
                continue
            reply = task.result()
            if reply is not None and reply[0] != wake_key.encode():
                popped.append((shard, reply[0], reply[1]))
        if failure is not None and not popped:
            raise failure
        return popped

    def _push_back_when_done(self, state: _LoopState, task: Any) -> None:
        """After a cancellation: return whatever ``task`` pops to the head of its queue."""

        async def push_back() -> None:
            try:
                popped = await task
            except (RedisUnavailable, asyncio.CancelledError):
                return  # nothing was popped, or it is gone with the connection
            await self._push_back(state, popped)

        pusher = asyncio.ensure_future(push_back())
        state.pending.add(pusher)
        pusher.add_done_callback(state.pending.discard)

    async def _push_back(self, state: _LoopState, popped: list[tuple[int, bytes, bytes]]) -> None:
        # LPUSH restores each message at the head with its original deadline,
        # so FIFO holds for the single reader of a `?` or `!` queue.
        for shard, key, entry in reversed(popped):
            queue_key = key or self._queue_key(non_local_name(split_entry(entry)[1]))
            try:
                await state.clients[shard].redis.lpush(queue_key, entry)
            except _UNAVAILABLE:
                logger.warning("could not return a message to %s after a cancelled receive", queue_key)

    def _decode_all(self, entries: list[bytes]) -> list[tuple[str, Any]]:
        """The live messages among stored entries (``split_entry``'s format, inlined: hot path)."""
        now = _now_ms()
        decode = self._codec.decode
        found = []
        for entry in entries:
            if int(entry[:DEADLINE_DIGITS]) <= now:
                continue  # expired while waiting in the queue or while a BLPOP delivered it
            space = entry.index(b" ", DEADLINE_DIGITS)
            channel = entry[DEADLINE_DIGITS:space].decode("ascii")
            message = decode(entry[space + 1 :], channel)
            if message is not None:
                found.append((channel, message))
        return found

    # -- other internals -------------------------------------------------------------

    def _encode(self, where: str, message: dict) -> bytes:
        """Check types, encode, check the encoded size (before encryption), encrypt."""
        check_message(message)
        packed = self._codec.pack(message)
        self.check_message_size(where, len(packed))
        return self._codec.seal(packed)

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}{name}"

    def _queue_key(self, queue: str) -> str:
        return f"{self.prefix}q:{queue}"

    def _ordering_keys(self, key: str) -> list[str]:
        return [self._key("o:", key), self._key("op:", key), self._key("ostall", "")]

    def _shards_of(self, queue: str) -> Sequence[int]:
        """Shards a queue may live on: its pinned one, or all for a normal channel."""
        if _pinned(queue):
            return (self._ring.shard_of(queue),)
        return range(len(self.shards))

    def _spread(self) -> list[int]:
        """Shards for a normal channel's send: round-robin; a full shard passes to the next."""
        start = next(self._round_robin) % len(self.shards)
        return [(start + offset) % len(self.shards) for offset in range(len(self.shards))]

    def _push_front(self, channel: str, payload: bytes) -> None:
        queue = non_local_name(channel)
        shard = self._ring.shard_of(queue)
        entry = deadline_prefix(_now_ms() + self._expiry_ms) + channel.encode() + b" " + payload
        with self._errors(shard):
            pipe = self._client(shard).redis.pipeline(transaction=False)
            pipe.lpush(self._queue_key(queue), entry)
            pipe.pexpire(self._queue_key(queue), self._ttl_ms)
            pipe.execute()

    def _eval(self, shard: int, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script on this thread's own connection to ``shard`` (the hot path)."""
        return self._on_wire(shard, SyncWire.eval, script, keys, args)

    def _call(self, shard: int, *args: Any) -> Any:
        """One plain command on this thread's own connection to ``shard``."""
        return self._on_wire(shard, SyncWire.call, *args)

    def _on_wire(self, shard: int, method: Any, *args: Any) -> Any:
        try:
            result = method(self._sync_wire(shard), *args)
        except _UNAVAILABLE as exc:
            raise self._unavailable(shard, exc) from exc
        if self._down:
            self._mark_up(shard)
        return result

    def _sync_wire(self, shard: int) -> SyncWire:
        wires = getattr(self._thread, "wires", None)
        if wires is None or wires[shard] is None or wires[shard].stamp != self._wire_stamp():
            # First use in this thread, after close(), or in a forked child
            # (which must not share its parent's sockets). A thread's wires
            # close when the thread ends.
            if wires is None:
                wires = self._thread.wires = [None] * len(self.shards)
            elif wires[shard] is not None and wires[shard].stamp[0] == _forks[0]:
                wires[shard].close()
            wire = wires[shard] = SyncWire(self._client(shard).redis.connection_pool, self._wire_stamp())
            return wire
        return wires[shard]

    def _wire_stamp(self) -> tuple[int, int]:
        return _forks[0], self._wire_generation

    def _client(self, shard: int) -> _Client:
        client = self._sync_clients[shard]
        if client is None:
            with self._lock:
                client = self._sync_clients[shard]
                if client is None:
                    client = self._sync_clients[shard] = _Client(
                        self.shards[shard].sync_client(self._options)
                    )
        return client

    def _loop_state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            clients = [_Client(shard.async_client(self._options)) for shard in self.shards]
            state = self._loops[loop] = _LoopState(clients)
        return state

    def _thread_loop(self) -> asyncio.AbstractEventLoop:
        loop = getattr(self._thread, "loop", None)
        if loop is None:
            loop = self._thread.loop = asyncio.new_event_loop()
        return loop

    @contextlib.contextmanager
    def _errors(self, shard: int) -> Iterator[None]:
        """Turn redis-py's connection errors into :class:`RedisUnavailable` naming the shard."""
        try:
            yield
        except RedisUnavailable:
            raise
        except _UNAVAILABLE as exc:
            raise self._unavailable(shard, exc) from exc
        if self._down:
            self._mark_up(shard)

    def _unavailable(self, shard: int, exc: BaseException) -> RedisUnavailable:
        if shard not in self._down:
            self._down.add(shard)
            logger.warning("Redis %s is unavailable (%s); retrying with backoff", self.hosts[shard], exc)
        return RedisUnavailable(f"Redis {self.hosts[shard]} is unavailable: {exc}")

    def _mark_up(self, shard: int) -> None:
        if shard in self._down:
            self._down.discard(shard)
            self._backoff = _BACKOFF_START
            logger.warning("Redis %s is reachable again", self.hosts[shard])

    def _next_pause(self) -> float:
        pause = min(self._backoff, self.blocking_timeout)
        self._backoff = min(self._backoff * 2, _BACKOFF_CAP)
        return pause

    def _note_marker(self, shard: int, created: bool) -> bool:
        lost = created and self._armed[shard]
        if lost:
            logger.warning(
                "Redis %s lost the channel layer's data (restart without persistence, flush or failover); "
                "group memberships are gone",
                self.hosts[shard],
            )
        self._armed[shard] = True
        return lost

    def _count(self, queue: str, full: int) -> None:
        if full:
            self._channel_full_count += 1
        else:
            self._messages_count += 1
        counts = self._channel_counts.get(queue)
        if counts is None:
            if len(self._channel_counts) >= 10_000:
                return  # per-channel counts for the first 10,000 queues only: bounded memory
            counts = self._channel_counts[queue] = [0, 0]
        counts[full] += 1

    def _queue_stats(self, client: Any, keys: list[str]) -> tuple[int, int | None]:
        pending, oldest = 0, None
        for start in range(0, len(keys), 500):
            pipe = client.pipeline(transaction=False)
            for key in keys[start : start + 500]:
                pipe.llen(key)
                pipe.lindex(key, 0)
            replies = pipe.execute()
            for length, head in zip(replies[::2], replies[1::2], strict=True):
                pending += length
                if head is not None:
                    deadline = split_entry(head)[0]
                    if oldest is None or deadline < oldest:
                        oldest = deadline
        return pending, oldest

    def _age(self, deadline_ms: int | None) -> float:
        if deadline_ms is None:
            return 0.0
        return max(0.0, (_now_ms() - (deadline_ms - self._expiry_ms)) / 1000)

    def __repr__(self) -> str:
        return f"<RedisChannelLayer hosts={self.hosts} prefix={self.prefix!r} expiry={self.expiry}>"


def _pinned(queue: str) -> bool:
    """`!` queues are pinned by their non-local part, `?` channels by their whole name."""
    return "!" in queue or "?" in queue


def _blpop_timeout(seconds: float) -> float:
    # BLPOP's 0 means "forever"; Redis 6 takes fractional seconds.
    return max(round(seconds, 3), 0.01)


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


# Query parameters of a layer URL and their types.
_URL_OPTIONS: dict[str, type] = {
    "prefix": str,
    "expiry": float,
    "group_expiry": int,
    "capacity": int,
    "process_local_capacity": int,
    "max_message_size": int,
    "blocking_timeout": float,
    "socket_timeout": float,
    "socket_connect_timeout": float,
    "symmetric_encryption_keys": str,
    "ssl_cert_reqs": str,
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
}
_CONNECTION_URL_OPTIONS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile")

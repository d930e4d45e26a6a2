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
import functools
import itertools
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from ..base import (
    DEFAULT_GROUP_ENTRY_MEMBERS,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_PROCESS_LOCAL_CAPACITY,
    TELEX_EXTENSIONS,
    BaseChannelLayer,
    CapacitySpec,
    ChannelFull,
    check_message_types,
    non_local_name,
)
from ._codec import (
    Codec,
    channel_field,
    deadline_field,
    frame_entry,
    group_head,
    now_ms,
    parked_record,
    split_entry,
)
from ._health import RedisUnavailable, ShardHealth
from ._loops import LoopConnections
from ._scripts import send_head, send_tail
from ._shards import Shard, ShardRing
from ._take import Opener, Plan
from ._threads import ThreadConnections
from ._urls import layer_arguments, shards_of_hosts

__all__ = ["RedisChannelLayer", "RedisUnavailable"]

# A receive over the same channels is planned once; servers and workers
# listen on a handful of channel lists, request-body readers on one each.
_PLAN_CACHE_SIZE = 2048


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
        group_entry_members: int = DEFAULT_GROUP_ENTRY_MEMBERS,
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
            group_entry_members=group_entry_members,
        )
        if blocking_timeout <= 0:
            raise ValueError(f"blocking_timeout must be positive, got {blocking_timeout!r}")
        if socket_timeout <= blocking_timeout:
            # A blocked BLPOP would otherwise be cut off by the client's own timeout.
            raise ValueError(
                f"socket_timeout ({socket_timeout}) must be longer than blocking_timeout ({blocking_timeout})"
            )
        self._options = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            **(connection_kwargs or {}),
        }
        self.shards: list[Shard] = shards_of_hosts(hosts, self._options)
        identities = [shard.identity for shard in self.shards]
        if len(set(identities)) != len(identities):
            raise ValueError(f"hosts lists the same Redis twice: {identities}")
        self.hosts = identities
        self.prefix = prefix
        # Every key starts with its shard's hash tag on a cluster (``_cluster``), so no script crosses slots.
        self._key_prefixes = [shard.key_tag + prefix for shard in self.shards]
        self.blocking_timeout = blocking_timeout
        self._codec = Codec(symmetric_encryption_keys)
        self._ring = ShardRing(identities)
        self._expiry_ms = int(expiry * 1000)
        self._ttl_ms = self._expiry_ms + 1000  # queue keys outlive their newest message
        self._group_expiry_ms = int(group_expiry * 1000)
        # Separate turns: with one shared counter a process that sends and then
        # receives always started reading at the shard after the one it wrote.
        self._send_turn = itertools.count()
        self._receive_turn = itertools.count()
        cluster = self.shards[0].cluster
        self._health = ShardHealth(identities, blocking_timeout, cluster.failed if cluster else None)
        self._opener = Opener(self._codec, self.losses, self._queue_key)
        self._threads = ThreadConnections(self.shards, self._options, self._health, self._opener)
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopConnections] = (
            weakref.WeakKeyDictionary()
        )
        self._plans: dict[tuple[str, ...], Plan] = {}
        self._destinations: dict[str, _Destination] = {}
        self._marker_token = self.random_suffix()
        self._messages_count = 0
        self._channel_full_count = 0
        self._channel_counts: dict[str, list[int]] = {}

    @classmethod
    def from_url(cls, url: str) -> RedisChannelLayer:
        """Build a layer from ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``
        or ``redis+cluster://``.

        Query parameters set the options (``?capacity=200&prefix=myapp:``);
        ``symmetric_encryption_keys`` takes a comma-separated list. Several
        shards: ``redis://:password@host1:6379,host2:6379/0``.
        """
        from .. import LayerSpecError

        try:
            arguments = layer_arguments(url)
        except LayerSpecError:
            raise
        except ValueError as exc:
            raise LayerSpecError(str(exc)) from exc
        try:
            return cls(**arguments)
        except ValueError as exc:
            raise LayerSpecError(f"{url}: {exc}") from exc

    # -- core API --------------------------------------------------------------

    def send(self, channel: str, message: dict) -> None:
        to, tail = self._send_args(channel, message)
        unavailable = None
        for shard in to.shards or self._spread():
            try:
                sent = self._threads.eval_packed(shard, "send", to.heads[shard] + tail)
            except RedisUnavailable as exc:
                unavailable = exc  # a normal channel may still go to another shard
                continue
            if sent:
                self._count(to.queue, 0)
                return
        self._refuse_send(channel, to, unavailable)

    async def send_async(self, channel: str, message: dict) -> None:
        """``send`` on the running loop's asyncio clients, so a send never
        blocks an event loop and needs no thread."""
        await self._send_in_turn(channel, *self._send_args(channel, message))

    def send_soon(self, channel: str, message: dict) -> asyncio.Future[None]:
        """``send_async`` as a future, without a coroutine: what the server uses
        per message. With one shard to write to (a pinned channel, or one
        server) the send script's reply settles it directly."""
        to, tail = self._send_args(channel, message)
        if len(to.shards) != 1:
            return asyncio.ensure_future(self._send_in_turn(channel, to, tail))
        shard = to.shards[0]
        reply = self._on_loop().eval_packed(shard, "send", to.heads[shard] + tail)
        done: asyncio.Future[None] = reply.get_loop().create_future()
        reply.add_done_callback(functools.partial(self._settle_send, channel, to, done))
        return done

    def _settle_send(
        self, channel: str, to: _Destination, done: asyncio.Future[None], reply: asyncio.Future[Any]
    ) -> None:
        if done.cancelled():
            return
        if reply.cancelled():
            done.cancel()
            return
        unavailable = reply.exception()
        if unavailable is None and reply.result():
            self._count(to.queue, 0)
            done.set_result(None)
            return
        try:
            self._refuse_send(channel, to, unavailable)
        except Exception as refused:
            done.set_exception(refused)

    async def _send_in_turn(self, channel: str, to: _Destination, tail: bytes) -> None:
        connections = self._on_loop()
        unavailable = None
        for shard in to.shards or self._spread():
            try:
                # Sends issued in the same loop iteration share one write.
                sent = await connections.eval_packed(shard, "send", to.heads[shard] + tail)
            except RedisUnavailable as exc:
                unavailable = exc
                continue
            if sent:
                self._count(to.queue, 0)
                return
        self._refuse_send(channel, to, unavailable)

    def _send_args(self, channel: str, message: dict) -> tuple[_Destination, bytes]:
        """Where the message goes, and the end of its packed send script (after ``to.heads[shard]``)."""
        to = self._destinations.get(channel) or self._destination(channel)
        payload = self._encode(channel, message)
        now = now_ms()
        return to, send_tail(now + self._expiry_ms, to.name, payload, now)

    def _destination(self, channel: str) -> _Destination:
        """Everything a send needs to know about a channel name, worked out once per name.

        Bounded: emptied when full, as reply channels come and go.
        """
        self.check_channel_name(channel)
        queue = non_local_name(channel)
        homes = self._shards_of(queue)
        capacity = self.get_capacity(channel)
        found = _Destination(
            queue,
            tuple(
                send_head(self._queue_key(queue, shard), capacity, self._ttl_ms)
                for shard in range(len(self.shards))
            ),
            channel_field(channel),
            capacity,
            tuple(homes) if len(homes) == 1 else (),
        )
        if len(self._destinations) >= _PLAN_CACHE_SIZE:
            self._destinations.clear()
        self._destinations[channel] = found
        return found

    def _refuse_send(self, channel: str, to: _Destination, unavailable: BaseException | None) -> None:
        if unavailable is not None:
            raise unavailable
        self._count(to.queue, 1)
        raise ChannelFull(f"channel {channel!r} is at capacity ({to.capacity})")

    def receive(self, channels: Iterable[str], block: bool = False) -> tuple[Any, Any]:
        """Take one message; with ``block=True`` wait inside Redis up to ``blocking_timeout``.

        A blocking receive never raises for an outage: it logs, pauses with
        backoff and returns ``(None, None)``, so worker loops survive restarts.
        """
        plan = self._plan(channels)
        try:
            found = self._threads.take(self._rotated(plan), 1)
            if found or not block:
                return found[0] if found else (None, None)
            if len(plan) == 1:
                return self._threads.blpop(*plan[0], self.blocking_timeout)
            # Several shards: wait on all at once, on this thread's own loop.
            return self._threads.event_loop().run_until_complete(self._wait_here(plan))
        except RedisUnavailable:
            if not block:
                raise
            time.sleep(self._health.pause())
            return None, None

    def receive_batch_nowait(self, channels: Iterable[str], max_messages: int = 100) -> list[tuple[str, Any]]:
        """Take up to ``max_messages`` waiting messages without blocking, one round trip per shard.

        For readers that drain a busy queue (an interface server's ``prefix!``).
        """
        if max_messages < 1:
            raise ValueError(f"max_messages must be positive, got {max_messages!r}")
        return self._threads.take(self._rotated(self._plan(channels)), max_messages)

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
        connections = self._on_loop()
        if connections.pending:
            await asyncio.gather(*connections.pending, return_exceptions=True)
        try:
            found = await connections.take(self._rotated(plan), max_messages)
            if found:
                return found
            first = await connections.wait(plan, self.blocking_timeout)
            return [first] if first[0] is not None else []
        except RedisUnavailable:
            await asyncio.sleep(self._health.pause())
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
        key = self._key("g:", group, shard)
        self._threads.pipeline(
            shard,
            [
                (b"ZADD", key, now_ms() + self._group_expiry_ms, channel),
                (b"PEXPIRE", key, self._group_expiry_ms + 1000),
            ],
        )

    def group_discard(self, group: str, channel: str) -> None:
        self.check_group_name(group)
        self.check_channel_name(channel)
        shard = self._ring.shard_of(group)
        self._threads.call(shard, b"ZREM", self._key("g:", group, shard), channel)

    def group_channels(self, group: str) -> list[str]:
        self.check_group_name(group)
        shard = self._ring.shard_of(group)
        members = self._threads.eval(shard, "group_members", [self._key("g:", group, shard)], [now_ms()])
        return [member.decode("ascii") for member in members]

    def send_group(self, group: str, message: dict) -> None:
        """Send to every member; full members are skipped (and counted), as the spec requires.

        Members on one ``prefix!`` queue share one entry (per
        ``group_entry_members`` names), so a group costs per server, not
        per socket. One round trip with one shard and no
        ``channel_capacity`` overrides; otherwise one to read the members
        plus one per shard holding members.
        """
        self.check_group_name(group)
        payload = self._encode(group, message)
        now = now_ms()
        deadline = deadline_field(now + self._expiry_ms)
        if len(self.shards) == 1 and not self.channel_capacity:
            missed = self._threads.eval(
                0,
                "group_send_local",
                [self._key("g:", group, 0)],
                [
                    now,
                    self._ttl_ms,
                    deadline,
                    payload,
                    self._key("q:", "", 0),
                    self.capacity,
                    self.process_local_capacity,
                    self.group_entry_members,
                ],
            )
        else:
            missed = 0
            for shard, (keys, triples) in self._group_entries(group).items():
                missed += self._threads.eval(
                    shard, "group_push", keys, [now, self._ttl_ms, deadline, payload, *triples]
                )
        if missed:
            self.losses.lost(missed, f"queues of group {group!r} were full")

    def _group_entries(self, group: str) -> dict[int, tuple[list[str], list[Any]]]:
        """Per shard: the queue keys a group send writes to and, per key, the
        entry's head, the queue's capacity and the members it reaches."""
        group_shard = self._ring.shard_of(group)
        by_shard: dict[int, tuple[list[str], list[Any]]] = {}
        by_prefix: dict[str, list[str]] = {}
        for channel in self.group_channels(group):
            bang = channel.find("!")
            if bang >= 0:
                by_prefix.setdefault(channel[: bang + 1], []).append(channel[bang + 1 :])
                continue
            # Normal channels are read from every shard, so any shard will do.
            shard = self._ring.shard_of(channel) if _pinned(channel) else group_shard
            keys, triples = by_shard.setdefault(shard, ([], []))
            keys.append(self._queue_key(channel, shard))
            triples += [channel_field(channel), self.get_capacity(channel), 1]
        chunk = self.group_entry_members
        for prefix, names in by_prefix.items():
            shard = self._ring.shard_of(prefix)
            keys, triples = by_shard.setdefault(shard, ([], []))
            for start in range(0, len(names), chunk):
                part = names[start : start + chunk]
                keys.append(self._queue_key(prefix, shard))
                triples += [group_head(prefix, part), self.get_capacity(prefix), len(part)]
        return by_shard

    # -- flush and statistics extensions --------------------------------------

    def flush(self) -> None:
        """Delete this layer's keys (its prefix only) on every shard, using SCAN, never KEYS.

        Other processes' :meth:`check_data_lost` will report the loss, which is right:
        their group memberships are gone.
        """
        for shard in range(len(self.shards)):
            batch = []
            for key in self._threads.scan(shard, _glob_escape(self._key_prefixes[shard]) + "*"):
                batch.append(key)
                if len(batch) >= 500:
                    self._threads.call(shard, b"UNLINK", *batch)
                    batch = []
            if batch:
                self._threads.call(shard, b"UNLINK", *batch)
        self._health.disarm()

    def global_statistics(self) -> dict[str, Any]:
        """Counts are this process's sends; pending and age are read from every shard (SCAN)."""
        pending, oldest = 0, None
        for shard in range(len(self.shards)):
            keys = list(self._threads.scan(shard, _glob_escape(self._key("q:", "", shard)) + "*"))
            shard_pending, shard_oldest = self._queue_stats(shard, keys)
            pending += shard_pending
            if shard_oldest is not None and (oldest is None or shard_oldest < oldest):
                oldest = shard_oldest
        return {
            "messages_count": self._messages_count,
            "messages_pending": pending,
            "messages_max_age": self._age(oldest),
            "channel_full_count": self._channel_full_count,
            "group_undelivered_count": self.losses.undelivered,
            "unreadable_entry_count": self.losses.unreadable,
        }

    def channel_statistics(self, channel: str) -> dict[str, Any]:
        self.check_channel_name(channel)
        queue = non_local_name(channel)
        pending, oldest = 0, None
        for shard in self._shards_of(queue):
            shard_pending, shard_oldest = self._queue_stats(shard, [self._queue_key(queue, shard)])
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
            created = self._threads.call(
                shard, b"SET", self._key("alive", "", shard), self._marker_token, b"NX"
            )
            lost |= self._health.marker_found(shard, created is not None)
        return lost

    async def check_data_lost_async(self) -> bool:
        """:meth:`check_data_lost` on the running loop, for servers on the asyncio reactor."""
        connections = self._on_loop()
        lost = False
        for shard in range(len(self.shards)):
            created = await connections.command(
                shard, b"SET", self._key("alive", "", shard), self._marker_token, b"NX"
            )
            lost |= self._health.marker_found(shard, created is not None)
        return lost

    def close(self) -> None:
        """Close this layer's synchronous connections (async ones close with their loop).

        This thread's close now; other threads' (maybe mid-command) are closed
        and replaced by their own thread at its next command.
        """
        self._threads.close()

    # -- telex.store extension ---------------------------------------------------

    def store_get(self, key: str) -> dict | None:
        """The dict saved under ``key``, or None if absent, expired or undecryptable."""
        shard = self._ring.shard_of(key)
        raw = self._threads.call(shard, b"GET", self._key("s:", key, shard))
        return None if raw is None else self._codec.decode(raw, key)

    def store_set(self, key: str, value: dict, ttl: float | None = None) -> None:
        """Save ``value`` under ``key`` for ``ttl`` seconds (default: group_expiry)."""
        payload = self._encode(key, value)
        shard = self._ring.shard_of(key)
        milliseconds = max(1, int((self.group_expiry if ttl is None else ttl) * 1000))
        self._threads.call(shard, b"SET", self._key("s:", key, shard), payload, b"PX", milliseconds)

    def store_delete(self, key: str) -> None:
        shard = self._ring.shard_of(key)
        self._threads.call(shard, b"DEL", self._key("s:", key, shard))

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
        record = parked_record(self._queue_key(queue, shard) if local else "", channel, payload)
        verdict = self._threads.eval(
            shard,
            "ordering_claim",
            self._ordering_keys(key, shard),
            [order, record, now_ms(), self._group_expiry_ms, key],
        )
        return verdict.decode()

    def ordering_advance(self, key: str, order: int) -> None:
        """Mark ``order`` done and requeue the next parked message, in one script."""
        shard = self._ring.shard_of(key)
        moved = self._threads.eval(
            shard,
            "ordering_advance",
            self._ordering_keys(key, shard),
            [order, now_ms(), self._expiry_ms, self._group_expiry_ms, key],
        )
        if moved:
            self._push_front(moved[0].decode(), moved[1])

    def ordering_skip_stalled(self, older_than: float) -> list[tuple[str, int, int]]:
        """Give up on missing messages of sequences stalled over ``older_than`` seconds."""
        skipped = []
        now = now_ms()
        for shard in range(len(self.shards)):
            rows = self._threads.eval(
                shard,
                "ordering_skip_stalled",
                [self._key("ostall", "", shard)],
                [
                    now - int(older_than * 1000),
                    now,
                    self._expiry_ms,
                    self._group_expiry_ms,
                    self._key_prefixes[shard],
                ],
            )
            for key, expected, resumed, channel, payload in rows:
                if channel:
                    self._push_front(channel.decode(), payload)
                skipped.append((key.decode(), int(expected), int(resumed)))
        return skipped

    # -- receiving internals -------------------------------------------------------

    def _plan(self, channels: Iterable[str]) -> Plan:
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
            for shard in self._shards_of(name):
                key = self._queue_key(name, shard)
                keys = by_shard.setdefault(shard, [])
                if key not in keys:
                    keys.append(key)
        plan = tuple(by_shard.items())
        if len(self._plans) < _PLAN_CACHE_SIZE:
            self._plans[names] = plan
        return plan

    def _rotated(self, plan: Plan) -> Plan:
        # Start at a different shard each time so no shard is always read first.
        if len(plan) == 1:
            return plan
        start = next(self._receive_turn) % len(plan)
        return plan[start:] + plan[:start]

    async def _wait_here(self, plan: Plan) -> tuple[Any, Any]:
        return await self._on_loop().wait(plan, self.blocking_timeout)

    # -- other internals -------------------------------------------------------------

    def _encode(self, where: str, message: dict) -> bytes:
        """Check types, encode, check the encoded size (before encryption), encrypt."""
        check_message_types(message)
        packed = self._codec.pack(message)
        self.check_message_size(where, len(packed))
        return self._codec.seal(packed)

    def _key(self, kind: str, name: str, shard: int) -> str:
        return f"{self._key_prefixes[shard]}{kind}{name}"

    def _queue_key(self, queue: str, shard: int) -> str:
        return f"{self._key_prefixes[shard]}q:{queue}"

    def _ordering_keys(self, key: str, shard: int) -> list[str]:
        return [self._key("o:", key, shard), self._key("op:", key, shard), self._key("ostall", "", shard)]

    def _shards_of(self, queue: str) -> Sequence[int]:
        """Shards a queue may live on: its pinned one, or all for a normal channel."""
        if _pinned(queue):
            return (self._ring.shard_of(queue),)
        return range(len(self.shards))

    def _spread(self) -> list[int]:
        """Shards for a normal channel's send: round-robin; a full shard passes to the next."""
        start = next(self._send_turn) % len(self.shards)
        return [(start + offset) % len(self.shards) for offset in range(len(self.shards))]

    def _push_front(self, channel: str, payload: bytes) -> None:
        queue = non_local_name(channel)
        shard = self._ring.shard_of(queue)
        entry = frame_entry(now_ms() + self._expiry_ms, channel_field(channel), payload)
        key = self._queue_key(queue, shard)
        self._threads.pipeline(shard, [(b"LPUSH", key, entry), (b"PEXPIRE", key, self._ttl_ms)])

    def _on_loop(self) -> LoopConnections:
        """This layer's connections on the running event loop, made at its first use there."""
        loop = asyncio.get_running_loop()
        connections = self._loops.get(loop)
        if connections is None:
            connections = self._loops[loop] = LoopConnections(
                self.shards,
                self._options,
                self._health,
                opener=self._opener,
                queue_key=self._queue_key,
                wake_key=lambda shard: self._key("x:", self.random_suffix(), shard),
            )
        return connections

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

    def _queue_stats(self, shard: int, keys: list[str] | list[bytes]) -> tuple[int, int | None]:
        pending, oldest = 0, None
        for start in range(0, len(keys), 500):
            commands = []
            for key in keys[start : start + 500]:
                commands += [(b"LLEN", key), (b"LINDEX", key, 0)]
            replies = self._threads.pipeline(shard, commands)
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
        return max(0.0, (now_ms() - (deadline_ms - self._expiry_ms)) / 1000)

    def __repr__(self) -> str:
        return f"<RedisChannelLayer hosts={self.hosts} prefix={self.prefix!r} expiry={self.expiry}>"


class _Destination:
    """What a send needs to know about one channel name, worked out once per name."""

    __slots__ = ("capacity", "heads", "name", "queue", "shards")

    def __init__(
        self, queue: str, heads: tuple[bytes, ...], name: bytes, capacity: int, shards: tuple[int, ...]
    ) -> None:
        self.queue = queue
        self.heads = heads  # per shard: the packed send script up to the message (_scripts.send_head)
        self.name = name  # the entry's channel part (_codec.channel_field)
        self.capacity = capacity
        self.shards = shards  # its one shard, or () when sends spread over all


def _pinned(queue: str) -> bool:
    """`!` queues are pinned by their non-local part, `?` channels by their whole name."""
    return "!" in queue or "?" in queue


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)

"""Connections used from an event loop: per loop and shard, one pipelined connection.

redis-py's asyncio connection runs each write in ``asyncio.wait_for`` (a task
per command on Python 3.11) on top of its per-command machinery
(``_threads`` says what that costs). Here redis-py only opens connections
(TLS, AUTH/ACL, SELECT, Sentinel discovery); :class:`AsyncWire` then takes
the transport and parses replies with hiredis. Commands issued in one loop
iteration are written with one ``write`` (auto-pipelining) and replies are
matched to callers in order, so concurrent sends share round trips.

:class:`LoopConnections` is what the layer keeps per event loop (as
channels_redis keeps a layer per loop): the shared wires, the idle wires for
``BLPOP`` (a blocked command holds its connection) and the loop-side take,
wait and push-back. Every failure goes to ``_health``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

import hiredis
import redis.exceptions

from ._codec import entry_queue
from ._health import UNAVAILABLE, Redirected, RedisUnavailable, ReplicaAnswered, ShardHealth, reply_error
from ._scripts import SOURCES, blpop_timeout, pack, pack_eval
from ._shards import Shard
from ._take import Opener, Plan, take_steps

logger = logging.getLogger("telex.layers.redis")


class WireClosed(ConnectionError):
    """The connection was lost; replies still owed will never come."""


class AsyncWire(asyncio.Protocol):
    """Pipelined RESP on one asyncio connection; replies resolve futures in order.

    ``call`` never awaits: it queues the packed command and returns a future.
    All commands queued before the loop next runs go out in one ``write``.
    Error replies resolve to the exception (``hiredis.ReplyError``), so one
    caller's error never disturbs the others. A reply missing for
    ``timeout`` seconds (beyond the command's own blocking time) aborts the
    connection, like redis-py's ``socket_timeout``.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        self._reader = hiredis.Reader()
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._outgoing: list[bytes] = []
        self._loop = asyncio.get_running_loop()
        self._watchdog: asyncio.TimerHandle | None = None
        self._writer: Any = None
        self.address: tuple[str, int] | None = None  # a cluster node's, to tell stale wires after MOVED
        self._drain = False  # close once every reply owed has come

    @classmethod
    async def connect(cls, pool: Any, timeout: float, address: tuple[str, int] | None = None) -> AsyncWire:
        """Open a connection with redis-py (handshake, TLS, Sentinel), then take over its transport.

        ``address``: a cluster node's, in place of the pool's host and port.
        """
        where = {} if address is None else {"host": address[0], "port": address[1]}
        connection = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2, **where})
        await connection.connect()
        # redis-py keeps the transport in its StreamWriter; detach it so the
        # Connection object no longer owns (or closes) it. Pinned by
        # tests/test_layer_redis.py::test_redis_py_internals_the_wire_relies_on.
        writer = connection._writer
        connection._writer = connection._reader = None
        wire = cls(timeout)
        wire.address = address
        wire._writer = writer  # a StreamWriter closes its transport when collected
        transport = writer.transport
        transport.set_protocol(wire)
        wire.connection_made(transport)
        return wire

    # -- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader, waiting = self._reader, self._waiting
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            if not waiting:
                self._fail(WireClosed("Redis sent a reply nobody asked for"))
                return
            future, _ = waiting.popleft()
            if not future.done():
                future.set_result(reply)
        if self._drain and not waiting:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(WireClosed(f"connection lost: {exc or 'closed'}"))

    # -- commands -------------------------------------------------------------

    def call(self, packed: bytes, blocking: float = 0.0) -> asyncio.Future[Any]:
        """Queue one packed command; ``blocking`` is how long Redis may hold it (BLPOP)."""
        if self.lost is not None:
            raise self.lost
        future = self._loop.create_future()
        self._waiting.append((future, self._loop.time() + blocking + self.timeout))
        if not self._outgoing:
            self._loop.call_soon(self._flush)
        self._outgoing.append(packed)
        return future

    def _flush(self) -> None:
        if self.lost is not None or not self._outgoing:
            return
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        assert self.transport is not None
        self.transport.write(data)
        if self._watchdog is None:
            self._watchdog = self._loop.call_at(self._waiting[0][1], self._check)

    def _check(self) -> None:
        self._watchdog = None
        if not self._waiting or self.lost is not None:
            return
        deadline = self._waiting[0][1]
        if self._loop.time() >= deadline:
            self._fail(WireClosed(f"no reply from Redis within {self.timeout} s"))
        else:
            self._watchdog = self._loop.call_at(deadline, self._check)

    @property
    def idle(self) -> bool:
        return self.lost is None and not self._waiting

    def close(self) -> None:
        self._fail(WireClosed("closed"))

    def close_when_idle(self) -> None:
        """No new commands will come (MOVED sent them elsewhere): close after the replies owed."""
        self._drain = True
        if not self._waiting:
            self.close()

    def _fail(self, exc: Exception) -> None:
        if self.lost is None:
            self.lost = exc
        if self.transport is not None:
            self.transport.abort()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        waiting, self._waiting = self._waiting, collections.deque()
        self._outgoing.clear()
        for future, _ in waiting:
            if not future.done():
                future.set_exception(self.lost)


class LoopConnections:
    """The layer's connections and work on one event loop (see the module's docstring)."""

    def __init__(
        self,
        shards: list[Shard],
        options: dict[str, Any],
        health: ShardHealth,
        *,
        opener: Opener,
        queue_key: Callable[[str, int], str],
        wake_key: Callable[[int], str],
    ) -> None:
        self._shards = shards
        # redis-py's asyncio clients, only to make connections.
        self._pools = [shard.async_client(options).connection_pool for shard in shards]
        self._timeout = options["socket_timeout"]
        self._health = health
        self._opener = opener
        self._queue_key = queue_key  # a queue name ("prefix!" or a channel) and shard -> its list's key
        self._wake_key = wake_key  # a fresh key on a shard that ends one BLPOP early
        self._wires: list[AsyncWire | None] = [None] * len(shards)
        self._connecting: list[asyncio.Future[AsyncWire] | None] = [None] * len(shards)
        self._blocking: list[list[AsyncWire]] = [[] for _ in shards]
        self.pending: set[asyncio.Future[Any]] = set()  # push-backs still running

    # -- commands ---------------------------------------------------------------

    def eval(self, shard: int, script: str, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """A future for one script run on the shard's shared, pipelined wire.

        Its command is queued at once, so futures made one after another run
        in Redis in that order. Raises :class:`RedisUnavailable` through the
        future; a missing script (``NOSCRIPT``: it did not run) is loaded and
        run once more, on the same wire, so a batch stays in order.
        """
        return self._queue(shard, script, pack_eval(script, keys, args))

    def eval_packed(self, shard: int, script: str, packed: bytes) -> asyncio.Future[Any]:
        """:meth:`eval` for a script whose ``EVALSHA`` is packed already (every send)."""
        return self._queue(shard, script, packed)

    def command(self, shard: int, *args: Any) -> asyncio.Future[Any]:
        """A future for one plain command on the shard's shared wire."""
        return self._queue(shard, "", pack(*args))

    def _queue(self, shard: int, script: str, packed: bytes) -> asyncio.Future[Any]:
        wire = self._wires[shard]
        loop = asyncio.get_running_loop()
        if wire is not None and wire.lost is None:
            reply = wire.call(packed)
        else:
            reply = loop.create_task(self._call_after_connect(shard, packed))
        result = loop.create_future()
        reply.add_done_callback(lambda done: self._settle(shard, (script, packed), done, result))
        return result

    async def _call_after_connect(self, shard: int, packed: bytes) -> Any:
        return await (await self._command_wire(shard)).call(packed)

    def _settle(
        self,
        shard: int,
        command: tuple[str, bytes],
        done: asyncio.Future[Any],
        result: asyncio.Future[Any],
        redirected: bool = False,
    ) -> None:
        """Resolve a command's future from its reply (``command``: the script an EVALSHA runs, or
        empty, and the packed command; ``redirected``: it already followed a MOVED or ASK)."""
        script, packed = command
        exc = None if done.cancelled() else done.exception()  # retrieved even when nobody waits
        if result.done():
            return
        if done.cancelled():
            result.cancel()
            return
        if exc is None:
            reply = done.result()
            if not isinstance(reply, hiredis.ReplyError):
                result.set_result(reply)
                if self._health.down:
                    self._health.up(shard)
                return
            exc = reply_error(reply)
            wire = self._wires[shard]
            if isinstance(exc, Redirected) and not redirected and self._shards[shard].cluster is not None:
                # A cluster's MOVED or ASK: the command did not run; run it where the cluster says.
                self._redirect(shard, command, exc, result)
                return
            if (
                script
                and isinstance(exc, redis.exceptions.NoScriptError)
                and wire is not None
                and wire.lost is None
            ):
                # Queued back to back on the same wire: the load runs first.
                loading = wire.call(pack(b"SCRIPT", b"LOAD", SOURCES[script]))
                # Its outcome is the retry's: a lost wire fails both; retrieve it so asyncio stays quiet.
                loading.add_done_callback(lambda load: load.cancelled() or load.exception())
                retry = wire.call(packed)  # no second load
                retry.add_done_callback(
                    lambda again: self._settle(shard, ("", packed), again, result, redirected)
                )
                return
            if isinstance(exc, ReplicaAnswered):
                for each in (wire, *self._blocking[shard]):
                    if each is not None:
                        each.close()
        if isinstance(exc, UNAVAILABLE):
            exc = self._health.failed(shard, exc)
        result.set_exception(exc)

    def _redirect(
        self, shard: int, command: tuple[str, bytes], redirection: Redirected, result: asyncio.Future[Any]
    ) -> None:
        """Follow a cluster's ``MOVED`` (the slot's new master, from now on) or ``ASK`` (this
        command only, after ``ASKING``) once; the command did not run, so running it there is safe."""
        script, packed = command
        loop = asyncio.get_running_loop()
        target = self._shards[shard]
        assert target.cluster is not None  # only cluster shards are redirected
        if redirection.ask:
            reply = loop.create_task(self._ask(shard, redirection.address, script, packed))
        else:
            target.cluster.moved(target.slot, redirection.address)
            new = target.cluster.address(target.slot, refresh=False)
            wire = self._wires[shard]
            if wire is not None and wire.address != new:
                self._wires[shard] = None  # commands already on it get MOVED too, and follow
                wire.close_when_idle()
            for idle in self._blocking[shard]:
                if idle.address != new:
                    idle.close()  # _blocking_wire drops closed ones
            reply = loop.create_task(self._call_after_connect(shard, packed))
        reply.add_done_callback(lambda done: self._settle(shard, command, done, result, True))

    async def _ask(self, shard: int, address: tuple[str, int], script: str, packed: bytes) -> Any:
        wire = await AsyncWire.connect(self._pools[shard], self._timeout, address)
        try:
            if script:  # that node may not have it yet
                loading = wire.call(pack(b"SCRIPT", b"LOAD", SOURCES[script]))
                loading.add_done_callback(lambda load: load.cancelled() or load.exception())
            wire.call(pack(b"ASKING"))
            return await wire.call(packed)
        finally:
            wire.close()

    # -- taking ---------------------------------------------------------------------

    async def take(self, plan: Plan, count: int) -> list[tuple[str, Any]]:
        """Up to ``count`` waiting messages: ``_take``'s steps on this loop's shared wires."""
        steps = take_steps(plan, count, self._opener)
        try:
            shard, script, args = next(steps)
            while True:
                taking = self.eval(shard, script, *args) if script else self.command(shard, *args)
                try:
                    reply = await asyncio.shield(taking)
                except asyncio.CancelledError:
                    # Redis may already have popped: give it back before the next receive.
                    self.push_back_when_done(self._entries_of(shard, taking))
                    raise
                except RedisUnavailable as exc:
                    shard, script, args = steps.throw(exc)
                else:
                    shard, script, args = steps.send(reply)
        except StopIteration as done:
            return done.value

    async def _entries_of(self, shard: int, taking: asyncio.Future[Any]) -> list[tuple[int, bytes, bytes]]:
        return [(shard, b"", entry) for entry in await taking or ()]

    # -- waiting --------------------------------------------------------------------

    async def wait(self, plan: Plan, timeout: float) -> tuple[Any, Any]:
        """Block on every shard at once with BLPOP; the first message wins, others go back.

        Each BLPOP also watches a fresh key of its own, ``x:RANDOM``: pushing
        to it ends that BLPOP early, so no wait outlives this call and any
        message it popped meanwhile is pushed back before we return.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0.001:
            waits: dict[asyncio.Future[Any], tuple[int, str, AsyncWire]] = {}
            try:
                for shard, keys in plan:
                    wire = await self._blocking_wire(shard)
                    wake_key = self._wake_key(shard)
                    seconds = blpop_timeout(remaining)
                    blpop = wire.call(pack(b"BLPOP", *keys, wake_key, seconds), blocking=seconds)
                    waits[loop.create_task(self._blpop_reply(shard, blpop, wire))] = (shard, wake_key, wire)
            except BaseException:
                if waits:
                    self.push_back_when_done(loop.create_task(self._collect(waits)))
                raise
            collecting = None
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                collecting = loop.create_task(self._collect(waits))
                popped = await asyncio.shield(collecting)
            except asyncio.CancelledError:
                self.push_back_when_done(collecting or loop.create_task(self._collect(waits)))
                raise
            for index, (shard, key, entry) in enumerate(popped):
                found = self._opener.open([entry], (key.decode(),), 1, shard)
                if found:
                    if index + 1 < len(popped):
                        await self.push_back(popped[index + 1 :])
                    return found[0]
        return None, None

    async def _blpop_reply(self, shard: int, blpop: asyncio.Future[Any], wire: AsyncWire) -> Any:
        try:
            reply = await blpop
        except UNAVAILABLE as exc:
            raise self._health.failed(shard, exc) from exc
        if isinstance(reply, hiredis.ReplyError):
            error = reply_error(reply)
            target = self._shards[shard]
            if isinstance(error, Redirected) and not error.ask and target.cluster is not None:
                target.cluster.moved(target.slot, error.address)  # the next wait goes there
            wire.close()
            raise self._health.failed(shard, WireClosed(str(reply)))
        return reply

    async def _collect(
        self, waits: dict[asyncio.Future[Any], tuple[int, str, AsyncWire]]
    ) -> list[tuple[int, bytes, bytes]]:
        """End every BLPOP of ``waits`` and return what they popped, first finished first."""
        for task, (shard, wake_key, _) in waits.items():
            if not task.done():
                try:
                    wire = await self._command_wire(shard)
                    wire.call(pack(b"LPUSH", wake_key, b""))
                    wire.call(pack(b"PEXPIRE", wake_key, 10_000))
                except UNAVAILABLE:
                    pass  # that BLPOP fails on its own connection too
        finished = [task for task in waits if task.done()]
        await asyncio.wait(waits)
        finished += [task for task in waits if task not in finished]
        popped, failure = [], None
        for task in finished:
            shard, wake_key, wire = waits[task]
            self._release_blocking(shard, wire)
            if task.exception() is not None:
                failure = task.exception()
                continue
            reply = task.result()
            if reply is not None and reply[0] != wake_key.encode():
                popped.append((shard, reply[0], reply[1]))
        if failure is not None and not popped:
            raise failure
        return popped

    # -- giving back ----------------------------------------------------------------

    def push_back_when_done(self, task: Any) -> None:
        """After a cancellation: return whatever ``task`` pops to the head of its queue."""

        async def push_back() -> None:
            try:
                popped = await task
            except (RedisUnavailable, asyncio.CancelledError):
                return  # nothing was popped, or it is gone with the connection
            await self.push_back(popped)

        pusher = asyncio.ensure_future(push_back())
        self.pending.add(pusher)
        pusher.add_done_callback(self.pending.discard)

    async def push_back(self, popped: list[tuple[int, bytes, bytes]]) -> None:
        # LPUSH restores each message at the head with its original deadline,
        # so FIFO holds for the single reader of a `?` or `!` queue.
        for shard, key, entry in reversed(popped):
            queue_key = key or self._queue_key(entry_queue(entry), shard)
            try:
                await self.command(shard, b"LPUSH", queue_key, entry)
            except RedisUnavailable:
                logger.warning("could not return a message to %s after a cancelled receive", queue_key)

    # -- the wires ------------------------------------------------------------------

    async def _command_wire(self, shard: int) -> AsyncWire:
        wire = self._wires[shard]
        if wire is not None and wire.lost is None:
            return wire
        connecting = self._connecting[shard]
        if connecting is None:
            connecting = self._connecting[shard] = asyncio.ensure_future(self._open_wire(shard))
            connecting.add_done_callback(lambda _: self._connecting.__setitem__(shard, None))
        wire = self._wires[shard] = await asyncio.shield(connecting)
        return wire  # type: ignore[return-value]  # just opened, so not None

    async def _open_wire(self, shard: int) -> AsyncWire:
        target = self._shards[shard]
        try:
            if target.cluster is None:
                return await AsyncWire.connect(self._pools[shard], self._timeout)
            if target.cluster.stale:
                # Reading the slot map is blocking I/O: not on the loop.
                await asyncio.get_running_loop().run_in_executor(None, target.cluster.refresh)
            address = target.cluster.address(target.slot, refresh=False)
            return await AsyncWire.connect(self._pools[shard], self._timeout, address)
        except UNAVAILABLE as exc:
            raise self._health.failed(shard, exc) from exc

    async def _blocking_wire(self, shard: int) -> AsyncWire:
        idle = self._blocking[shard]
        while idle:
            wire = idle.pop()
            if wire.idle:
                return wire
            wire.close()
        return await self._open_wire(shard)

    def _release_blocking(self, shard: int, wire: AsyncWire) -> None:
        if wire.idle and len(self._blocking[shard]) < 8:
            self._blocking[shard].append(wire)
        else:
            wire.close()

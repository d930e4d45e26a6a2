"""Connections used from threads: each thread has its own connection to each shard.

redis-py's client wraps every command in a pool checkout, a retry helper,
observability hooks and (for scripts) a ``Script`` object: on the development
machine that was more Python per round trip than Redis and the loopback hop
together (``docs/redis-layer.md``, Performance). redis-py still opens every
connection here (TLS, AUTH/ACL, SELECT, Sentinel discovery, client options),
so every ``connection_kwargs`` option keeps working; only the per-command path
is ours: :class:`SyncWire` writes RESP packed by hiredis to the socket and
parses the replies with a hiredis reader.

Every command a thread sends, hot or rare, goes through
:meth:`ThreadConnections.call` (or ``eval``/``pipeline``), which hands any
failure to ``_health``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import hiredis
import redis.exceptions

from ._health import UNAVAILABLE, Redirected, RedisUnavailable, ShardHealth, reply_error
from ._scripts import SOURCES, blpop_timeout, pack, pack_eval
from ._shards import Shard
from ._take import Opener, Plan, take_steps

# Bumped in every forked child, so a wire made before a fork is never used
# after it; cheaper than asking os.getpid() (a system call) per command.
_forks = [0]
os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))

_ASKING = pack(b"ASKING")


class SyncWire:
    """A socket pinned to one thread: RESP written and parsed with hiredis, nothing else.

    redis-py opens (and reopens) the connection, so TLS, AUTH, SELECT and
    Sentinel discovery work; the commands then go straight to its socket.
    Any failure closes the connection and the next call opens a new one;
    nothing is retried here (at most once).
    """

    __slots__ = ("_reader", "_sock", "address", "asking", "conn", "stamp")

    def __init__(self, pool: Any, stamp: tuple[int, int], shard: Shard | None = None) -> None:
        # Built like the pool builds its own, so Sentinel and TLS pools work.
        self.conn = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})
        self.stamp = stamp  # (forks so far in this process, the layer's close() generation)
        # A cluster shard's master address, asked at each connect (it moves on failover).
        self.address: Callable[[], tuple[str, int] | None] | None = (
            None if shard is None or shard.cluster is None else shard.address
        )
        self.asking = False  # precede every command with ASKING (following an ASK redirection)
        self._sock: Any = None
        self._reader: Any = None

    def call(self, *args: Any) -> Any:
        """One command's reply; an error reply is raised as ``_health.reply_error`` maps it."""
        return self.run(hiredis.pack_command(args))

    def run(self, packed: bytes) -> Any:
        """:meth:`call` for a command already packed (the send script's, built per message)."""
        if self.asking:
            return self._replies([packed])[0]
        reply = self._exchange(packed, 1)[0]
        if isinstance(reply, hiredis.ReplyError):
            raise self._error(reply)
        return reply

    def pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Several commands in one write, and their replies; the first error reply is raised."""
        return self._replies([hiredis.pack_command(command) for command in commands])

    def _replies(self, packed: list[bytes]) -> list[Any]:
        if self.asking:
            packed = [each for command in packed for each in (_ASKING, command)]
        replies = self._exchange(b"".join(packed), len(packed))
        if self.asking:
            replies = replies[1::2]
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise self._error(reply)
        return replies

    def _exchange(self, data: bytes, count: int) -> list[Any]:
        sock = self._sock or self._connect()
        reader = self._reader
        replies: list[Any] = []
        try:
            sock.sendall(data)
            while len(replies) < count:
                while (reply := reader.gets()) is False:
                    received = sock.recv(65536)
                    if not received:
                        raise ConnectionResetError("Redis closed the connection")
                    reader.feed(received)
                replies.append(reply)
        except (TimeoutError, BlockingIOError) as exc:
            # BlockingIOError: the kernel's SO_RCVTIMEO/SO_SNDTIMEO ran out.
            self.close()
            raise redis.exceptions.TimeoutError(
                f"no reply from Redis within {self.conn.socket_timeout} s"
            ) from exc
        except (OSError, hiredis.ProtocolError) as exc:
            self.close()
            raise redis.exceptions.ConnectionError(f"connection to Redis lost: {exc}") from exc
        return replies

    def _error(self, reply: Any) -> Exception:
        error = reply_error(reply)
        if isinstance(error, redis.exceptions.ConnectionError) and not (
            isinstance(error, Redirected) and error.ask
        ):
            # READONLY: the next connection asks the sentinels for the master;
            # MOVED, CLUSTERDOWN: it goes where the cluster's slot map says.
            self.close()
        return error

    def eval(self, name: str, packed: bytes) -> Any:
        """Run script ``name``, whose ``EVALSHA`` is ``packed``."""
        try:
            return self.run(packed)
        except redis.exceptions.NoScriptError:
            # Not run, so running it again is safe: load it, then run it.
            return self._replies([pack(b"SCRIPT", b"LOAD", SOURCES[name]), packed])[1]

    def _connect(self) -> Any:
        # Pinned by tests/test_layer_redis.py::test_redis_py_internals_the_wire_relies_on.
        where = None if self.address is None else self.address()
        if where is not None:
            self.conn.host, self.conn.port = where
        self.conn.connect()
        sock = self._sock = self.conn._sock
        timeout = sock.gettimeout()
        if type(sock) is socket.socket and timeout:
            # A Python-level timeout costs a poll() before every send and recv
            # (four system calls per round trip); the kernel enforces the same
            # limit on a blocking socket for two. TLS sockets keep theirs.
            seconds, fraction = divmod(timeout, 1)
            limit = struct.pack("@ll", int(seconds), int(fraction * 1_000_000))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
            sock.settimeout(None)
        self._reader = hiredis.Reader()
        return sock

    def close(self) -> None:
        self._sock = self._reader = None
        self.conn.disconnect()


class ThreadConnections:
    """Each thread's own :class:`SyncWire` per shard, and the thread-side take and wait.

    A thread's wires close when the thread ends; a forked child opens its own;
    :meth:`close` closes the calling thread's at once and has the others
    replaced at their next command (they may be mid-command).
    """

    def __init__(
        self, shards: list[Shard], options: dict[str, Any], health: ShardHealth, opener: Opener
    ) -> None:
        self._shards = shards
        self._opener = opener
        self._options = options
        self._health = health
        self._lock = threading.Lock()
        self._pools: list[Any] = [None] * len(shards)  # redis-py's, only to make connections
        self._local = threading.local()
        self._generation = 0  # close() bumps it
        self._pop_one: dict[str, bytes] = {}  # queue key -> its packed LPOP of one entry

    # -- commands ---------------------------------------------------------------

    def eval(self, shard: int, script: str, keys: list[str], args: list[Any]) -> Any:
        """Run a script."""
        return self.eval_packed(shard, script, pack_eval(script, keys, args))

    def eval_packed(self, shard: int, script: str, packed: bytes) -> Any:
        """Run a script whose ``EVALSHA`` is packed already (the hot path: every send)."""
        try:
            result = self.wire(shard).eval(script, packed)
        except UNAVAILABLE as exc:
            result = self._redirect(shard, exc, lambda wire: wire.eval(script, packed))
        if self._health.down:
            self._health.up(shard)
        return result

    def call(self, shard: int, *args: Any) -> Any:
        """One command's reply."""
        return self.run(shard, hiredis.pack_command(args))

    def run(self, shard: int, packed: bytes) -> Any:
        """One packed command's reply."""
        try:
            result = self.wire(shard).run(packed)
        except UNAVAILABLE as exc:
            result = self._redirect(shard, exc, lambda wire: wire.run(packed))
        if self._health.down:
            self._health.up(shard)
        return result

    def pipeline(self, shard: int, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Several commands in one round trip, and their replies."""
        try:
            result = self.wire(shard).pipeline(commands)
        except UNAVAILABLE as exc:
            result = self._redirect(shard, exc, lambda wire: wire.pipeline(commands))
        if self._health.down:
            self._health.up(shard)
        return result

    def _redirect(self, shard: int, exc: BaseException, run: Callable[[SyncWire], Any]) -> Any:
        """Follow a cluster's ``MOVED`` or ``ASK`` once (the command did not run, so running it
        there is safe); any other failure is the shard's outage."""
        target = self._shards[shard]
        if isinstance(exc, Redirected) and target.cluster is not None:
            try:
                if not exc.ask:
                    target.cluster.moved(target.slot, exc.address)  # the wire closed itself
                    return run(self.wire(shard))
                # ASK: this one command goes to the slot's new node, after ASKING.
                wire = SyncWire(self._pool(shard), (_forks[0], self._generation))
                address = exc.address
                wire.address = lambda: address
                wire.asking = True
                try:
                    return run(wire)
                finally:
                    wire.close()
            except UNAVAILABLE as again:
                exc = again
        raise self._health.failed(shard, exc) from exc

    def scan(self, shard: int, pattern: str) -> Iterator[bytes]:
        """Every key matching ``pattern`` (``SCAN``, never ``KEYS``)."""
        cursor = b"0"
        while True:
            cursor, keys = self.call(shard, b"SCAN", cursor, b"MATCH", pattern, b"COUNT", 1000)
            yield from keys
            if cursor == b"0":
                return

    # -- taking and waiting -------------------------------------------------------

    def take(self, plan: Plan, count: int) -> list[tuple[str, Any]]:
        """Up to ``count`` waiting messages: ``_take``'s steps on this thread's connections."""
        if count == 1 and len(plan) == 1 and len(plan[0][1]) == 1 and not self._opener.held:
            # One queue (a worker's receive): its first step, without the generator.
            shard, keys = plan[0]
            packed = self._pop_one.get(keys[0])
            if packed is None:
                if len(self._pop_one) >= 2048:
                    self._pop_one.clear()  # bounded, as reply channels come and go
                packed = self._pop_one[keys[0]] = pack(b"LPOP", keys[0], 1)
            entries = self.run(shard, packed)
            if entries is None:
                return []
            found = self._opener.open(entries, keys, 1, shard)
            if found:
                return found
            # It was expired or undecryptable: the steps go on popping.
        steps = take_steps(plan, count, self._opener)
        try:
            shard, script, args = next(steps)
            while True:
                try:
                    reply = self.eval(shard, script, *args) if script else self.call(shard, *args)
                except RedisUnavailable as exc:
                    shard, script, args = steps.throw(exc)
                else:
                    shard, script, args = steps.send(reply)
        except StopIteration as done:
            return done.value

    def blpop(self, shard: int, keys: list[str], timeout: float) -> tuple[Any, Any]:
        """Wait up to ``timeout`` seconds inside Redis for one live message on one shard."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0.001:
            reply = self.call(shard, b"BLPOP", *keys, blpop_timeout(remaining))
            if reply is None:
                break
            found = self._opener.open([reply[1]], (reply[0].decode(),), 1, shard)
            if found:
                return found[0]
        return None, None

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """This thread's own event loop, for a blocking receive that waits on several shards at once."""
        loop = getattr(self._local, "loop", None)
        if loop is None:
            loop = self._local.loop = asyncio.new_event_loop()
        return loop

    # -- the wires ----------------------------------------------------------------

    def wire(self, shard: int) -> SyncWire:
        wires = getattr(self._local, "wires", None)
        if wires is None or wires[shard] is None or wires[shard].stamp != (_forks[0], self._generation):
            # First use in this thread, after close(), or in a forked child
            # (which must not share its parent's sockets).
            if wires is None:
                wires = self._local.wires = [None] * len(self._shards)
            elif wires[shard] is not None and wires[shard].stamp[0] == _forks[0]:
                wires[shard].close()
            wire = wires[shard] = SyncWire(
                self._pool(shard), (_forks[0], self._generation), self._shards[shard]
            )
            return wire
        return wires[shard]

    def _pool(self, shard: int) -> Any:
        pool = self._pools[shard]
        if pool is None:
            with self._lock:
                pool = self._pools[shard]
                if pool is None:
                    pool = self._pools[shard] = self._shards[shard].sync_client(self._options).connection_pool
        return pool

    def close(self) -> None:
        self._generation += 1
        for wire in getattr(self._local, "wires", None) or ():
            if wire is not None:
                wire.close()
        self._local.wires = None
        with self._lock:
            pools, self._pools = self._pools, [None] * len(self._shards)
        for pool in pools:
            if pool is not None:
                # Sentinel pools hold connections to the sentinels.
                pool.disconnect(inuse_connections=False)

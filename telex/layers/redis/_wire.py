"""Lean Redis connections for the layer's hot paths (send, take, BLPOP).

redis-py's client wraps every command in a pool checkout, a retry helper,
observability hooks and (for scripts) a ``Script`` object; its asyncio
connection also runs each write in ``asyncio.wait_for`` (a task per command
on Python 3.11). On the development machine that was 60-100 µs of Python per
round trip, more than Redis and the loopback hop together (see
``docs/redis-layer.md``, Performance). redis-py still makes every connection
here (TLS, AUTH/ACL, SELECT, Sentinel discovery, client options), so every
``connection_kwargs`` option keeps working; only the per-command path is ours:

* :class:`SyncWire` — a connection pinned to one thread: commands packed and
  replies parsed by hiredis straight on its socket.
* :class:`AsyncWire` — an :class:`asyncio.Protocol` on the connection's
  transport, parsing replies with hiredis. Commands issued in one loop
  iteration are written with one ``write`` (auto-pipelining) and replies are
  matched to callers in order, so concurrent sends share round trips.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import socket
import struct
from typing import Any

import hiredis
import redis.exceptions

from . import _scripts

SOURCES = {
    "send": _scripts.SEND,
    "receive": _scripts.RECEIVE,
    "group_push": _scripts.GROUP_PUSH,
    "group_send_local": _scripts.GROUP_SEND_LOCAL,
    "group_members": _scripts.GROUP_MEMBERS,
    "ordering_claim": _scripts.ORDERING_CLAIM,
    "ordering_advance": _scripts.ORDERING_ADVANCE,
    "ordering_skip_stalled": _scripts.ORDERING_SKIP_STALLED,
}
SHAS = {name: hashlib.sha1(source.encode()).hexdigest().encode() for name, source in SOURCES.items()}


class SyncWire:
    """A socket pinned to one thread: RESP written and parsed with hiredis, nothing else.

    redis-py opens (and reopens) the connection, so TLS, AUTH, SELECT and
    Sentinel discovery work; the commands then go straight to its socket.
    Any failure closes the connection and the next call opens a new one;
    nothing is retried here (at most once).
    """

    __slots__ = ("_reader", "_sock", "conn", "stamp")

    def __init__(self, pool: Any, stamp: tuple[int, int]) -> None:
        # Built like the pool builds its own, so Sentinel and TLS pools work.
        self.conn = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})
        self.stamp = stamp  # (forks so far in this process, the layer's close() generation)
        self._sock: Any = None
        self._reader: Any = None

    def call(self, *args: Any) -> Any:
        """One command's reply; an error reply is raised as redis-py's ``ResponseError``."""
        sock = self._sock or self._connect()
        reader = self._reader
        try:
            sock.sendall(hiredis.pack_command(args))
            while (reply := reader.gets()) is False:
                data = sock.recv(65536)
                if not data:
                    raise redis.exceptions.ConnectionError("Redis closed the connection")
                reader.feed(data)
        except (TimeoutError, BlockingIOError) as exc:
            # BlockingIOError: the kernel's SO_RCVTIMEO/SO_SNDTIMEO ran out.
            self.close()
            raise redis.exceptions.TimeoutError(
                f"no reply from Redis within {self.conn.socket_timeout} s"
            ) from exc
        except (OSError, hiredis.ProtocolError) as exc:
            self.close()
            raise redis.exceptions.ConnectionError(f"connection to Redis lost: {exc}") from exc
        if isinstance(reply, hiredis.ReplyError):
            if is_readonly(reply):
                # A Sentinel failover made this server a replica: reconnecting
                # asks the sentinels for the new master.
                self.close()
                raise redis.exceptions.ConnectionError(str(reply))
            if str(reply).startswith("NOSCRIPT"):
                raise redis.exceptions.NoScriptError(str(reply))
            raise redis.exceptions.ResponseError(str(reply))
        return reply

    def eval(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return self.call(b"EVALSHA", SHAS[name], len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            # Not run, so running it again is safe: load it once, then retry.
            self.call(b"SCRIPT", b"LOAD", SOURCES[name])
            return self.call(b"EVALSHA", SHAS[name], len(keys), *keys, *args)

    def _connect(self) -> Any:
        # Pinned by tests/test_layer_redis.py::test_redis_py_internals_the_wire_relies_on.
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

    @classmethod
    async def connect(cls, pool: Any, timeout: float) -> AsyncWire:
        """Open a connection with redis-py (handshake, TLS, Sentinel), then take over its transport."""
        connection = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})
        await connection.connect()
        # redis-py keeps the transport in its StreamWriter; detach it so the
        # Connection object no longer owns (or closes) it. Pinned by
        # tests/test_layer_redis.py::test_redis_py_internals_the_wire_relies_on.
        writer = connection._writer
        connection._writer = connection._reader = None
        wire = cls(timeout)
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


def pack(*args: Any) -> bytes:
    """One command in RESP (hiredis's packer: bytes, str, int and float arguments)."""
    return hiredis.pack_command(args)


def is_noscript(reply: Any) -> bool:
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith("NOSCRIPT")


def is_readonly(reply: Any) -> bool:
    """A replica answered: the Sentinel master failed over; reconnect to find the new one."""
    return isinstance(reply, hiredis.ReplyError) and str(reply).startswith("READONLY")

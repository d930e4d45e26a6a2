"""Taking messages: one take over several shards, and the opening of what Redis hands over.

:func:`take_steps` does no I/O: ``_threads`` and ``_loops`` run each command
it yields on their own connections and send the reply back, or throw the
shard's :class:`RedisUnavailable` in. One policy, so the two paths cannot
drift apart again (they had: threads skipped a shard that was down, event
loops gave up at it).

:class:`Opener` turns popped entries into ``(channel, message)`` pairs for
every receive path (takes, ``BLPOP`` on a thread or a loop). A group entry
(one message for many members of one ``prefix!`` queue) is expanded lazily:
what a receive could not return yet is held here, in order, and handed out
before anything newer of that queue. Holding is safe because one process
alone reads a ``prefix!`` queue (spec: Channels and Messages).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Generator, Sequence
from typing import Any

import msgpack

from ..base import DeliveryLosses
from ._codec import DEADLINE_DIGITS, GROUP_FORMAT, GROUP_MARK, Codec, entry_queue, now_ms
from ._health import RedisUnavailable

Plan = tuple[tuple[int, list[str]], ...]
#: ``(shard, script, arguments)``: a script's name with ``(keys, args)``, or
#: ``""`` with a plain command's words.
Step = tuple[int, str, tuple[Any, ...]]


class _Fanout:
    """A group entry being handed out: one message, the member names still owed it."""

    __slots__ = ("deadline", "names", "next", "packed", "prefix")

    def __init__(self, deadline: int, prefix: str, names: list[str], packed: bytes) -> None:
        self.deadline = deadline
        self.prefix = prefix
        self.names = names
        self.next = 0
        self.packed = packed


class Opener:
    """Popped entries to ``(channel, message)`` pairs; the group entries' rest held per queue key."""

    def __init__(self, codec: Codec, losses: DeliveryLosses, queue_key: Callable[[str, int], str]) -> None:
        self._codec = codec
        self._losses = losses
        self._queue_key = queue_key  # a queue name ("prefix!" or a channel) and shard -> its list's key
        self._lock = threading.Lock()  # a layer is shared by threads
        #: queue key -> popped, not yet returned: raw entries and expanding group entries, oldest first.
        self.held: dict[str, deque[Any]] = {}

    def open(self, entries: list[bytes], keys: Sequence[str], room: int, shard: int) -> list[tuple[str, Any]]:
        """Up to ``room`` pairs from ``entries`` (popped from ``keys`` on ``shard``), expired and
        undecryptable ones dropped; what does not fit after a group entry is held."""
        now = now_ms()
        decode = self._codec.decode
        found: list[tuple[str, Any]] = []
        for entry in entries:
            # split_entry, inlined: this runs for every message received.
            if int(entry[:DEADLINE_DIGITS]) <= now:
                if entry[DEADLINE_DIGITS] == GROUP_MARK:
                    self._expired(entry)
                continue  # expired while waiting in the queue or while a BLPOP delivered it
            if entry[DEADLINE_DIGITS] == GROUP_MARK:  # the one extra test an ordinary entry pays
                # Found by identity, off the hot loop (equal entries may repeat).
                index = next(i for i, each in enumerate(entries) if each is entry)
                self._hold(entries[index:], keys[0] if len(keys) == 1 else None, shard)
                return found + self.take_held(keys, room - len(found))
            space = entry.index(b" ", DEADLINE_DIGITS)
            channel = entry[DEADLINE_DIGITS:space].decode("ascii")
            message = decode(entry[space + 1 :], channel)
            if message is not None:
                found.append((channel, message))
        return found

    def take_held(self, keys: Sequence[str], count: int) -> list[tuple[str, Any]]:
        """Up to ``count`` held pairs of ``keys``' queues, in the order their entries were popped."""
        found: list[tuple[str, Any]] = []
        if not self.held or count < 1:
            return found
        now = now_ms()
        with self._lock:
            for key in keys:
                items = self.held.get(key)
                while items and len(found) < count:
                    item = items[0]
                    if type(item) is bytes:
                        items.popleft()
                        if int(item[:DEADLINE_DIGITS]) <= now:
                            if item[DEADLINE_DIGITS] == GROUP_MARK:
                                self._expired(item)
                        elif item[DEADLINE_DIGITS] == GROUP_MARK:
                            fanout = self._fanout(item, key)
                            if fanout is not None:
                                items.appendleft(fanout)
                        else:
                            found += self.open([item], (key,), 1, 0)
                        continue
                    if item.deadline <= now:
                        items.popleft()
                        self._losses.lost(len(item.names) - item.next, "they expired unread")
                        continue
                    start = item.next
                    end = item.next = min(len(item.names), start + count - len(found))
                    prefix, packed = item.prefix, item.packed
                    # Unpacked once per member: each gets a message of its own.
                    found += [
                        (prefix + name, msgpack.unpackb(packed, raw=False)) for name in item.names[start:end]
                    ]
                    if end == len(item.names):
                        items.popleft()
                if items is not None and not items:
                    del self.held[key]
        return found

    def _hold(self, entries: list[bytes], key: str | None, shard: int) -> None:
        with self._lock:
            for entry in entries:
                self.held.setdefault(key or self._queue_key(entry_queue(entry), shard), deque()).append(entry)

    def _fanout(self, entry: bytes, key: str) -> _Fanout | None:
        """A readable group entry's expansion; None (logged, counted) for any other."""
        version = entry[DEADLINE_DIGITS + 1 : DEADLINE_DIGITS + 2]
        if version != GROUP_FORMAT:
            self._losses.refused(version.decode("ascii", "replace"), key)
            return None
        newline = entry.index(b"\n", DEADLINE_DIGITS)
        prefix, *names = entry[DEADLINE_DIGITS + 2 : newline].decode("ascii").split(" ")
        packed = self._codec.unseal(entry[newline + 1 :], prefix)
        if packed is None:
            self._losses.lost(len(names), "no key decrypts their entry")
            return None
        return _Fanout(int(entry[:DEADLINE_DIGITS]), prefix, names, packed)

    def _expired(self, entry: bytes) -> None:
        if entry[DEADLINE_DIGITS + 1 : DEADLINE_DIGITS + 2] != GROUP_FORMAT:
            return  # not ours to count: a newer reader would have
        head = entry[DEADLINE_DIGITS : entry.index(b"\n", DEADLINE_DIGITS)]
        self._losses.lost(head.count(b" "), "they expired unread")


def take_steps(plan: Plan, count: int, opener: Opener) -> Generator[Step, Any, list[tuple[str, Any]]]:
    """The commands of one take, shard after shard in ``plan``'s order; returns up to ``count`` messages.

    Held pairs of the plan's queues come first, with no command at all. A
    shard that is down is skipped: the others may still have messages.
    Only when none was found is its :class:`RedisUnavailable` raised
    (``docs/redis-layer.md``, Outages).
    """
    found: list[tuple[str, Any]] = []
    if opener.held:
        for _, keys in plan:
            found += opener.take_held(keys, count - len(found))
        if len(found) >= count:
            return found
    unavailable = None
    for shard, keys in plan:
        for _ in range(64):  # each pass pops at least one entry or finds the queues empty
            wanted = count - len(found)
            try:
                if len(keys) == 1:
                    # Plain LPOP with a count: no script to run (expired entries
                    # are dropped by the opener, and counted as taken here).
                    entries = (yield shard, "", (b"LPOP", keys[0], wanted)) or []  # nil: the queue is empty
                else:
                    entries = yield shard, "receive", (keys, [now_ms(), wanted])
            except RedisUnavailable as exc:
                unavailable = unavailable or exc
                break
            found += opener.open(entries, keys, wanted, shard)
            if len(found) >= count or len(entries) < wanted:
                break
        if len(found) >= count:
            break
    if unavailable is not None and not found:
        raise unavailable
    return found

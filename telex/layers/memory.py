"""The in-process channel layer: Telex's embedded default.

Everything lives in one process behind one lock. Receivers never poll: a
blocked receiver registers a *waiter* under each channel it listens on, and
the send that makes a message available wakes exactly one waiter — a thread
(``threading.Event``), an asyncio future, or a Twisted Deferred.

Data layout: one FIFO ``deque`` per queue. Normal and single-reader channels
are their own queue; process-specific channels (``prefix!local``) share one
queue per ``prefix!``, which is what the spec's receive and capacity rules
ask for. Each entry carries its deadline, its global sequence number (so a
receive over several channels takes the oldest head first, and a busy channel
cannot starve a quiet one) and its full channel name, or, for a group send,
the members of that ``prefix!`` it reaches (:class:`_Members`): one entry per
receiving process, handed out one member at a time.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from .base import TELEX_EXTENSIONS, BaseChannelLayer, ChannelFull, check_message, copy_message, non_local_name

__all__ = ["InMemoryChannelLayer"]


class _Members:
    """A group entry's members on one ``prefix!`` queue; ``next`` is the first not yet handed out."""

    __slots__ = ("names", "next", "prefix")

    def __init__(self, prefix: str, names: list[str]) -> None:
        self.prefix = prefix
        self.names = names
        self.next = 0


Entry = tuple[float, int, "str | _Members", dict]  # (deadline, sequence, channel or members, message)


class _Waiter:
    """One pending receive, registered under every queue it listens on."""

    __slots__ = ("done", "queues", "wake")

    def __init__(self, queues: tuple[str, ...], wake: Callable[[], None]) -> None:
        self.queues = queues
        self.wake = wake
        self.done = False


class _OrderState:
    __slots__ = ("next_order", "parked", "touched")

    def __init__(self) -> None:
        self.next_order = 0
        self.parked: dict[int, tuple[str, dict, float]] = {}
        self.touched = time.monotonic()


class InMemoryChannelLayer(BaseChannelLayer):
    """A thread-safe, in-process ASGI channel layer.

    Suitable for one process: the embedded ``telex serve --routing`` mode,
    development and tests. Extensions: ``groups``, ``flush``, ``statistics``,
    ``twisted``, ``asyncio``, plus ``telex.store`` and ``telex.ordering``
    used by the consumer toolkit (see ``docs/layers.md``).
    """

    extensions = list(TELEX_EXTENSIONS)

    #: Calls never wait on I/O, so the server may make them on its reactor thread.
    in_process = True

    #: Upper bound on one blocking receive; callers loop (spec allows it).
    blocking_timeout = 5.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._sequence = itertools.count()
        self._queues: dict[str, deque[Entry]] = {}
        self._waiters: dict[str, list[_Waiter]] = {}
        # group -> {channel: deadline}; channel -> {group} for expiry clean-up.
        self._groups: dict[str, dict[str, float]] = {}
        self._memberships: dict[str, set[str]] = {}
        self._store: dict[str, tuple[float, dict]] = {}
        self._ordering: dict[str, _OrderState] = {}
        self._messages_count = 0
        self._channel_full_count = 0
        self._channel_counts: dict[str, list[int]] = {}  # queue -> [messages, full]

    # -- core API --------------------------------------------------------------

    def send(self, channel: str, message: dict) -> None:
        self.check_channel_name(channel)
        size = check_message(message)
        self.check_message_size(channel, size)
        message = copy_message(message)
        queue_name = non_local_name(channel)
        capacity = self.get_capacity(channel)
        with self._lock:
            if not self._append(queue_name, channel, message, capacity, time.monotonic()):
                raise ChannelFull(f"channel {channel!r} is at capacity ({capacity})")

    def receive(self, channels: Iterable[str], block: bool = False) -> tuple[Any, Any]:
        queues = self._check_receive(channels)
        if not block:
            with self._lock:
                return self._pop_oldest(queues)
        # After a wake-up the result may still be (None, None) if another
        # receiver was faster, or after flush(); the spec allows that.
        event = threading.Event()
        with self._lock:
            result = self._pop_oldest(queues)
            if result[0] is not None:
                return result
            waiter = self._register(queues, event.set)
        event.wait(self.blocking_timeout)
        with self._lock:
            self._unregister(waiter)
            return self._pop_oldest(queues)

    def new_channel(self, pattern: str) -> str:
        self.check_new_channel_pattern(pattern)
        while True:
            name = pattern + self.random_suffix()
            with self._lock:
                queue_name = non_local_name(name)
                queue = self._queues.get(queue_name)
                if queue_name.endswith("!") or not queue:
                    return name

    # -- asyncio and twisted extensions ---------------------------------------

    async def receive_async(self, channels: Iterable[str]) -> tuple[Any, Any]:
        """Await a message; wakes at once on a send from any thread."""
        queues = self._check_receive(channels)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        thread = threading.get_ident()

        def wake() -> None:
            if threading.get_ident() == thread:
                # A send on the receiver's own loop (telex serve --asgi, the server's
                # replies): resolved at once, without a trip through the loop's self-pipe.
                _resolve(future)
                return
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # the receiver's loop is closed
                pass

        with self._lock:
            result = self._pop_oldest(queues)
            if result[0] is not None:
                return result
            waiter = self._register(queues, wake)
        # A timer rather than asyncio.wait_for, which costs a loop iteration per wake-up.
        timer = loop.call_later(self.blocking_timeout, _resolve, future)
        try:
            await future
        finally:
            timer.cancel()
            # Popping happens only here, after the wait: a cancelled wait has
            # taken nothing, so cancellation never loses a message.
            with self._lock:
                self._unregister(waiter)
        with self._lock:
            return self._pop_oldest(queues)

    def receive_twisted(self, channels: Iterable[str]):  # -> Deferred
        """A Deferred firing with ``(channel, message)`` or ``(None, None)``.

        The waiter is woken through ``reactor.callFromThread``, so sends from
        worker threads reach a reader on the reactor without any polling.
        Cancelling the Deferred unregisters the waiter; no message is lost.
        """
        from twisted.internet import defer, reactor

        queues = self._check_receive(channels)
        with self._lock:
            result = self._pop_oldest(queues)
        if result[0] is not None:
            return defer.succeed(result)

        state: dict[str, Any] = {}

        def cancel(deferred: defer.Deferred) -> None:
            with self._lock:
                self._unregister(state["waiter"])
            state["timer"].cancel()

        deferred: defer.Deferred = defer.Deferred(cancel)

        def attempt() -> None:
            if deferred.called:
                return
            with self._lock:
                self._unregister(state["waiter"])
                result = self._pop_oldest(queues)
            if state["timer"].active():
                state["timer"].cancel()
            deferred.callback(result)

        with self._lock:
            state["waiter"] = self._register(queues, lambda: reactor.callFromThread(attempt))
        state["timer"] = reactor.callLater(self.blocking_timeout, attempt)
        return deferred

    # -- groups extension ------------------------------------------------------

    def group_add(self, group: str, channel: str) -> None:
        self.check_group_name(group)
        self.check_channel_name(channel)
        with self._lock:
            self._groups.setdefault(group, {})[channel] = time.monotonic() + self.group_expiry
            self._memberships.setdefault(channel, set()).add(group)

    def group_discard(self, group: str, channel: str) -> None:
        self.check_group_name(group)
        self.check_channel_name(channel)
        with self._lock:
            self._remove_member(group, channel)

    def group_channels(self, group: str) -> list[str]:
        self.check_group_name(group)
        with self._lock:
            members = self._groups.get(group)
            if not members:
                return []
            self._expire_members(group, members, time.monotonic())
            return list(members)

    def send_group(self, group: str, message: dict) -> None:
        """Send to every member; full members are skipped (and counted), as the spec requires.

        Members on one ``prefix!`` queue share one entry (per
        ``group_entry_members`` names), as in the Redis layer.
        """
        self.check_group_name(group)
        size = check_message(message)
        self.check_message_size(group, size)
        message = copy_message(message)  # each member gets a copy of its own when it receives
        missed = 0
        by_prefix: dict[str, list[str]] = {}
        for channel in self.group_channels(group):
            bang = channel.find("!")
            if bang >= 0:
                by_prefix.setdefault(channel[: bang + 1], []).append(channel[bang + 1 :])
                continue
            try:
                self.send(channel, message)
            except ChannelFull:
                missed += 1
        chunk = self.group_entry_members
        with self._lock:
            now = time.monotonic()
            for prefix, names in by_prefix.items():
                capacity = self.get_capacity(prefix)
                for start in range(0, len(names), chunk):
                    part = names[start : start + chunk]
                    if not self._append(prefix, _Members(prefix, part), message, capacity, now):
                        missed += len(part)
        if missed:
            self.losses.lost(missed, f"queues of group {group!r} were full")

    # -- flush and statistics extensions --------------------------------------

    def flush(self) -> None:
        with self._lock:
            self._queues.clear()
            self._groups.clear()
            self._memberships.clear()
            self._store.clear()
            self._ordering.clear()
            self._channel_counts.clear()
            waiters = [w for ws in self._waiters.values() for w in ws]
            self._waiters.clear()
        # Blocked receivers return (None, None) at once rather than at timeout.
        for waiter in waiters:
            if not waiter.done:
                waiter.done = True
                waiter.wake()

    def global_statistics(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            pending = 0
            oldest = None
            for queue in self._queues.values():
                self._drop_expired(queue, now)
                pending += len(queue)
                if queue and (oldest is None or queue[0][0] < oldest):
                    oldest = queue[0][0]
            return {
                "messages_count": self._messages_count,
                "messages_pending": pending,
                "messages_max_age": self._age(oldest, now),
                "channel_full_count": self._channel_full_count,
                "group_undelivered_count": self.losses.undelivered,
                "unreadable_entry_count": self.losses.unreadable,
            }

    def channel_statistics(self, channel: str) -> dict[str, Any]:
        self.check_channel_name(channel)
        queue_name = non_local_name(channel)
        with self._lock:
            now = time.monotonic()
            queue = self._queues.get(queue_name) or deque()
            self._drop_expired(queue, now)
            messages, full = self._channel_counts.get(queue_name, (0, 0))
            return {
                "messages_count": messages,
                "messages_pending": len(queue),
                "messages_max_age": self._age(queue[0][0] if queue else None, now),
                "channel_full_count": full,
            }

    # -- telex.store extension (channel sessions) --------------------------------

    def store_get(self, key: str) -> dict | None:
        """The dict saved under ``key``, or None if absent or expired."""
        with self._lock:
            item = self._store.get(key)
            if item is None:
                return None
            if item[0] <= time.monotonic():
                del self._store[key]
                return None
            return copy_message(item[1])

    def store_set(self, key: str, value: dict, ttl: float | None = None) -> None:
        """Save ``value`` under ``key`` for ``ttl`` seconds (default: group_expiry)."""
        check_message(value)
        deadline = time.monotonic() + (self.group_expiry if ttl is None else ttl)
        with self._lock:
            self._store[key] = (deadline, copy_message(value))
            if len(self._store) % 1024 == 0:
                now = time.monotonic()
                for stale in [k for k, (d, _) in self._store.items() if d <= now]:
                    del self._store[stale]

    def store_delete(self, key: str) -> None:
        with self._lock:
            self._store.pop(key, None)

    # -- telex.ordering extension ------------------------------------------------

    def ordering_claim(self, key: str, order: int, channel: str, message: dict) -> str:
        """Atomically decide the fate of message ``order`` of sequence ``key``.

        Returns ``"run"`` if it is the next expected one, ``"park"`` if it was
        stored until its predecessors have run, or ``"drop"`` if its turn has
        already passed (a duplicate, or skipped as stalled).
        """
        with self._lock:
            state = self._order_state(key)
            if order == state.next_order:
                return "run"
            if order < state.next_order:
                return "drop"
            state.parked[order] = (channel, copy_message(message), time.monotonic())
            return "park"

    def ordering_advance(self, key: str, order: int) -> None:
        """Mark ``order`` done; requeue the next parked message, atomically."""
        with self._lock:
            state = self._order_state(key)
            state.next_order = max(state.next_order, order + 1)
            self._requeue_next(state)

    def ordering_skip_stalled(self, older_than: float) -> list[tuple[str, int, int]]:
        """Give up on messages that never arrived (delivery is at-most-once).

        For each sequence whose oldest parked message has waited more than
        ``older_than`` seconds, jump to the lowest parked order and requeue it.
        Returns ``(key, expected_order, resumed_order)`` for each skip.
        """
        skipped = []
        with self._lock:
            now = time.monotonic()
            for key, state in list(self._ordering.items()):
                if not state.parked:
                    if now - state.touched > self.group_expiry:
                        del self._ordering[key]
                    continue
                if now - min(parked[2] for parked in state.parked.values()) < older_than:
                    continue
                lowest = min(state.parked)
                skipped.append((key, state.next_order, lowest))
                state.next_order = lowest
                self._requeue_next(state)
        return skipped

    # -- internals (call with the lock held) -------------------------------------

    def _check_receive(self, channels: Iterable[str]) -> tuple[str, ...]:
        if isinstance(channels, str):
            raise TypeError("receive() takes a list of channel names, not one str")
        names = tuple(channels)
        for name in names:
            self.check_channel_name(name, receive=True)
        return names

    def _append(
        self, queue_name: str, channel: str | _Members, message: dict, capacity: int, now: float
    ) -> bool:
        """Queue one entry unless its queue is at capacity (counted either way)."""
        queue = self._queues.get(queue_name)
        if queue is None:
            queue = self._queues[queue_name] = deque()
        else:
            self._drop_expired(queue, now)
        counts = self._channel_counts.setdefault(queue_name, [0, 0])
        if len(queue) >= capacity:
            self._channel_full_count += 1
            counts[1] += 1
            return False
        queue.append((now + self.expiry, next(self._sequence), channel, message))
        self._messages_count += 1
        counts[0] += 1
        self._wake_one(queue_name)
        return True

    def _pop_oldest(self, queues: tuple[str, ...]) -> tuple[Any, Any]:
        now = time.monotonic()
        best = None
        for name in queues:
            queue = self._queues.get(name)
            if queue:
                self._drop_expired(queue, now)
                if queue and (best is None or queue[0][1] < best[0][1]):
                    best = queue
        if best is None:
            return None, None
        _, _, channel, message = best[0]
        if isinstance(channel, str):
            best.popleft()
            return channel, message
        # A group entry: its next member's copy; the entry leaves with its last member.
        name = channel.names[channel.next]
        channel.next += 1
        if channel.next == len(channel.names):
            best.popleft()
        return channel.prefix + name, copy_message(message)

    def _drop_expired(self, queue: deque[Entry], now: float) -> None:
        # Deadlines grow along the deque (one expiry per layer), so only the
        # head can be expired.
        while queue and queue[0][0] <= now:
            channel = queue.popleft()[2]
            if isinstance(channel, str):
                channels = [channel]
            else:
                channels = [channel.prefix + name for name in channel.names[channel.next :]]
                self.losses.lost(len(channels), "they expired unread")
            # Spec (Groups): an expired message means the listener is gone.
            for name in channels:
                if name in self._memberships:
                    for group in list(self._memberships[name]):
                        self._remove_member(group, name)

    def _remove_member(self, group: str, channel: str) -> None:
        members = self._groups.get(group)
        if members is not None and members.pop(channel, None) is not None and not members:
            del self._groups[group]
        groups = self._memberships.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self._memberships[channel]

    def _expire_members(self, group: str, members: dict[str, float], now: float) -> None:
        for channel in [c for c, deadline in members.items() if deadline <= now]:
            self._remove_member(group, channel)

    def _register(self, queues: tuple[str, ...], wake: Callable[[], None]) -> _Waiter:
        waiter = _Waiter(queues, wake)
        for name in queues:
            self._waiters.setdefault(name, []).append(waiter)
        return waiter

    def _unregister(self, waiter: _Waiter) -> None:
        waiter.done = True
        for name in waiter.queues:
            waiters = self._waiters.get(name)
            if waiters is not None:
                try:
                    waiters.remove(waiter)
                except ValueError:
                    pass
                if not waiters:
                    del self._waiters[name]

    def _wake_one(self, queue_name: str) -> None:
        waiters = self._waiters.get(queue_name)
        if waiters:
            waiter = waiters[0]
            # Claim the waiter on every queue, so a second send wakes another.
            self._unregister(waiter)
            waiter.wake()

    def _order_state(self, key: str) -> _OrderState:
        state = self._ordering.get(key)
        if state is None:
            state = self._ordering[key] = _OrderState()
        state.touched = time.monotonic()
        return state

    def _requeue_next(self, state: _OrderState) -> None:
        parked = state.parked.pop(state.next_order, None)
        if parked is None:
            return
        channel, message, _ = parked
        queue_name = non_local_name(channel)
        # Requeued at the front: it was admitted once already, so capacity is
        # not charged again and it does not wait behind newer messages.
        # Its deadline may not pass the current head's, which keeps deadlines
        # ordered along the deque for _drop_expired.
        queue = self._queues.setdefault(queue_name, deque())
        deadline = queue[0][0] if queue else time.monotonic() + self.expiry
        queue.appendleft((deadline, -1, channel, message))
        self._wake_one(queue_name)

    def _age(self, deadline: float | None, now: float) -> float:
        return 0.0 if deadline is None else max(0.0, now - (deadline - self.expiry))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

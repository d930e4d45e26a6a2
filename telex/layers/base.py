"""The rules every ASGI 1 channel layer shares, kept in one place.

Spec references are to ``asgi.rst``: "Channels and Messages", "Capacity",
"Strings and Unicode" and "Specification Details". Concrete layers
(``memory``, ``redis``) subclass :class:`BaseChannelLayer` and call its
checks on their hot paths; the checks are written to be cheap there.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from re import Pattern
from typing import Any

__all__ = [
    "DEFAULT_GROUP_ENTRY_MEMBERS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_PROCESS_LOCAL_CAPACITY",
    "TELEX_EXTENSIONS",
    "BaseChannelLayer",
    "ChannelFull",
    "DeliveryLosses",
    "MessageTooLarge",
    "check_message",
    "check_message_types",
    "copy_message",
    "loss_metrics",
    "non_local_name",
]


class ChannelFull(Exception):
    """The destination channel is at capacity (spec: Capacity)."""


class MessageTooLarge(Exception):
    """The encoded message is over the layer's size limit."""


#: ``websocket.connect`` and ``websocket.receive`` hold at least this many
#: (unless ``channel_capacity`` names them): a burst of a few hundred
#: handshakes, or a few hundred sockets each with a message in flight, must
#: wait for the workers, not find the channel full at the general default of
#: 100 and be refused (503, close 1013).
DEFAULT_WEBSOCKET_CAPACITY = 1000
_WEBSOCKET_CHANNELS = frozenset(("websocket.connect", "websocket.receive"))

#: The spec asks for at least 1 MB as JSON; a 1 MiB WebSocket frame plus its
#: other keys (reply_channel, path, order) must fit, hence the 64 KiB margin.
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024 + 64 * 1024

#: Every socket of one interface server shares its ``prefix!`` capacity
#: (spec: Capacity), so the general default of 100 would make a group send to
#: a few hundred sockets on one server silently drop most of them.
DEFAULT_PROCESS_LOCAL_CAPACITY = 10_000

#: A group send writes one entry per receiving process (``prefix!``) naming
#: that process's members; past this many names it writes several, so one
#: entry stays bounded (about 16 bytes a name with Telex's reply channels:
#: some 320 KB). Above the sockets one process holds, so that a group send
#: costs one entry per server (docs/benchmarks.md, issue 16's targets).
DEFAULT_GROUP_ENTRY_MEMBERS = 20_000

#: At most one warning per this many seconds about group messages lost.
LOSS_LOG_INTERVAL = 10.0

logger = logging.getLogger("telex.layers")

#: The spec asks for at least 100; Channels 1.x era layers reject 100 and
#: more, so Telex itself keeps its own names well below that.
MAX_NAME_LENGTH = 255

_NAME_CHARS = r"[A-Za-z0-9_.\-]"
# One optional type character, always preceded by a non-empty main name.
_CHANNEL_NAME = re.compile(rf"{_NAME_CHARS}+(?:[?!]{_NAME_CHARS}*)?\Z")
_GROUP_NAME = re.compile(rf"{_NAME_CHARS}+\Z")

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def non_local_name(channel: str) -> str:
    """The part of a process-specific name that capacity and routing use.

    ``"http.response.ab!cd"`` → ``"http.response.ab!"``; other names are
    returned unchanged.
    """
    bang = channel.find("!")
    return channel if bang < 0 else channel[: bang + 1]


def _describe(path: str) -> str:
    return f"message{path}" if path else "message"


class _Invalid(Exception):
    """Raised by :func:`_size_of` and :func:`_check_map` at the first bad item; its path is found later."""


def _size_of(value: Any) -> int:
    """The encoded size of a valid message part; :class:`_Invalid` if anything is not.

    The size approximates a binary (msgpack-like) encoding: payload bytes plus
    a small per-item overhead, which is what both layers actually store. It
    builds no error text on the way down: that is :func:`_explain`'s job, so
    a valid message costs only the walk. Every send walks its message, so
    str and bytes items are sized in their container's loop, not by a call
    of their own.
    """
    kind = type(value)
    if kind is dict:
        size = 5
        for key, item in value.items():
            if type(key) is not str:
                raise _Invalid
            kind = type(item)
            if kind is str:
                # isascii() is O(1) in CPython, so ASCII text costs no encode pass.
                size += len(key) + 10 + (len(item) if item.isascii() else len(item.encode("utf-8")))
            elif kind is bytes:
                size += len(key) + 10 + len(item)
            else:
                size += len(key) + 5 + _size_of(item)
        return size
    if kind is list or kind is tuple:
        size = 5
        for item in value:
            kind = type(item)
            if kind is bytes:
                size += len(item) + 5
            elif kind is str:
                size += (len(item) if item.isascii() else len(item.encode("utf-8"))) + 5
            else:
                size += _size_of(item)
        return size
    if kind is str:
        return (len(value) if value.isascii() else len(value.encode("utf-8"))) + 5
    if kind is bytes:
        return len(value) + 5
    if kind is bool or value is None:
        return 1
    if kind is float or (kind is int and _INT64_MIN <= value <= _INT64_MAX):
        return 9
    raise _Invalid


#: Item types :func:`_check_map` accepts without looking further.
_LEAF_TYPES = frozenset((str, bytes, bool, float, type(None)))


def _check_map(value: dict) -> None:
    """:func:`_size_of`'s checks without the sizes: one set lookup per str, bytes, bool, float or None."""
    for key in value:
        if type(key) is not str:
            raise _Invalid
    _check_items(value.values())


def _check_items(values: Iterable[Any]) -> None:
    for item in values:
        kind = type(item)
        if kind in _LEAF_TYPES:
            continue
        if kind is dict:
            _check_map(item)
        elif kind is list or kind is tuple:
            _check_items(item)
        elif kind is not int or not _INT64_MIN <= item <= _INT64_MAX:
            raise _Invalid


def _explain(value: Any, path: str) -> None:
    """Raise the :class:`TypeError` naming the first item :func:`_size_of` rejected."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(
                    f"{_describe(path)} has a key of type {type(key).__name__} ({key!r}); "
                    "message keys must be str"
                )
            _explain(item, f"{path}[{key!r}]")
    elif kind is list or kind is tuple:
        for index, item in enumerate(value):
            _explain(item, f"{path}[{index}]")
    elif kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise TypeError(f"{_describe(path)} is an integer outside the signed 64-bit range")
    elif kind not in (str, bytes, bool, float) and value is not None:
        raise TypeError(
            f"{_describe(path)} is of type {kind.__name__}, which ASGI messages cannot carry "
            "(allowed: dict, list, tuple, str, bytes, int, float, bool, None)"
        )


def copy_message(value: Any) -> Any:
    """Deep-copy the mutable parts of a checked message (tuples become lists).

    Immutable leaves (str, bytes, numbers) are shared, which is what makes
    copying on send cheap.
    """
    kind = type(value)
    if kind is dict:
        return {key: copy_message(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [copy_message(item) for item in value]
    return value


def check_message(message: Any) -> int:
    """Check that ``message`` is a valid ASGI message; return its size.

    Raises :class:`TypeError` naming the offending key.
    """
    if type(message) is not dict:
        raise TypeError(f"a message must be a dict, not {type(message).__name__}")
    try:
        return _size_of(message)
    except _Invalid:
        _explain(message, "")
        raise AssertionError("_size_of and _explain disagree") from None
    except RecursionError:
        raise TypeError("message is nested too deeply (or contains itself)") from None


def check_message_types(message: Any) -> None:
    """:func:`check_message` for a layer that measures the encoded message instead: no sizes."""
    if type(message) is not dict:
        raise TypeError(f"a message must be a dict, not {type(message).__name__}")
    try:
        _check_map(message)
    except _Invalid:
        _explain(message, "")
        raise AssertionError("_check_map and _explain disagree") from None
    except RecursionError:
        raise TypeError("message is nested too deeply (or contains itself)") from None


#: What Telex's own layers offer: the spec's extensions (``asyncio`` is the name
#: its Extensions list uses) and the two the consumer toolkit needs.
TELEX_EXTENSIONS = ("groups", "flush", "statistics", "twisted", "asyncio", "telex.store", "telex.ordering")


class DeliveryLosses:
    """Group messages a layer could not deliver, counted exactly and logged once per burst.

    Delivery is at-most-once, but never silently less: a member whose queue
    was full, a group entry that expired before it was read, an entry in a
    format this version cannot read. The counts are the layer statistics
    ``group_undelivered_count`` and ``unreadable_entry_count`` and the
    ``telex_layer_group_undelivered_total`` metric of servers and workers.
    """

    def __init__(self, interval: float = LOSS_LOG_INTERVAL) -> None:
        self.undelivered = 0
        self.unreadable = 0
        self.interval = interval
        self._lock = threading.Lock()
        self._undelivered_since = 0
        self._unreadable_since = 0
        self._warned_at = self._refused_at = -interval

    def lost(self, count: int, why: str) -> None:
        """``count`` member messages not delivered, ``why`` in words."""
        with self._lock:
            self.undelivered += count
            self._undelivered_since += count
            now = time.monotonic()
            if now - self._warned_at < self.interval:
                return
            count, self._undelivered_since, self._warned_at = self._undelivered_since, 0, now
        logger.warning(
            "group messages not delivered: %d since the last report, the latest because %s "
            "(layer statistic group_undelivered_count)",
            count,
            why,
        )

    def refused(self, version: str, queue: str) -> None:
        """An entry of a format this version cannot read: dropped, never mis-decoded."""
        with self._lock:
            self.unreadable += 1
            self._unreadable_since += 1
            now = time.monotonic()
            if now - self._refused_at < self.interval:
                return
            count, self._unreadable_since, self._refused_at = self._unreadable_since, 0, now
        logger.error(
            "dropped %d queue entries (latest on %r) in group entry format %r, which this Telex "
            "cannot read: upgrade this process to the Telex version the senders run "
            "(docs/redis-layer.md, Rolling upgrades)",
            count,
            queue,
            version,
        )


#: The metrics servers and workers export from a layer's :class:`DeliveryLosses`.
LOSS_METRICS_HELP = {
    "telex_layer_group_undelivered_total": (
        "counter",
        "Group messages this process's channel layer could not deliver: full queues, expired unread.",
    ),
    "telex_layer_unreadable_entries_total": (
        "counter",
        "Queue entries in a format this Telex cannot read (an upgrade is due), dropped.",
    ),
}


def loss_metrics(layer: Any) -> dict[str, Any]:
    """Gauge readers for :data:`LOSS_METRICS_HELP`; none for a layer that does not count losses."""
    losses = getattr(layer, "losses", None)
    if not isinstance(losses, DeliveryLosses):
        return {}
    return {
        "telex_layer_group_undelivered_total": lambda: losses.undelivered,
        "telex_layer_unreadable_entries_total": lambda: losses.unreadable,
    }


CapacitySpec = Mapping[str | Pattern[str], int] | Iterable[tuple[str | Pattern[str], int]]


class BaseChannelLayer:
    """Name rules, message rules, capacity lookup and the shared attributes.

    Subclasses implement ``send``, ``receive``, ``new_channel`` and the
    extensions they list in ``extensions``.
    """

    ChannelFull = ChannelFull
    MessageTooLarge = MessageTooLarge

    extensions: list[str] = []

    def __init__(
        self,
        *,
        expiry: float = 60,
        group_expiry: int = 86400,
        capacity: int = 100,
        channel_capacity: CapacitySpec | None = None,
        process_local_capacity: int = DEFAULT_PROCESS_LOCAL_CAPACITY,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        group_entry_members: int = DEFAULT_GROUP_ENTRY_MEMBERS,
    ) -> None:
        if expiry <= 0:
            raise ValueError(f"expiry must be positive, got {expiry!r}")
        if group_expiry <= 0:
            raise ValueError(f"group_expiry must be positive, got {group_expiry!r}")
        for name, value in (
            ("capacity", capacity),
            ("process_local_capacity", process_local_capacity),
            ("max_message_size", max_message_size),
            ("group_entry_members", group_entry_members),
        ):
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.expiry = expiry
        self.group_expiry = group_expiry
        self.capacity = capacity
        self.process_local_capacity = process_local_capacity
        self.max_message_size = max_message_size
        self.group_entry_members = group_entry_members
        self.losses = DeliveryLosses()
        self.channel_capacity = self._compile_capacities(channel_capacity)
        self._capacity_cache: dict[str, int] = {}
        self._valid_names: set[str] = set()

    # -- names ---------------------------------------------------------------

    def check_channel_name(self, name: Any, receive: bool = False) -> None:
        """Raise :class:`TypeError` or :class:`ValueError` if ``name`` breaks the spec.

        With ``receive=True``, a process-specific name must end at its ``!``
        (spec: only the part up to and including ``!`` is passed to receive).
        """
        if name in self._valid_names:
            if receive and "!" in name and not name.endswith("!"):
                raise ValueError(
                    f"cannot receive on {name!r}: receive a process-specific channel "
                    "by its name up to and including the '!'"
                )
            return
        if type(name) is not str:
            raise TypeError(f"channel names must be str, not {type(name).__name__}")
        if len(name) > MAX_NAME_LENGTH:
            raise ValueError(
                f"channel name {name[:40]!r}... is {len(name)} characters; the limit is {MAX_NAME_LENGTH}"
            )
        if not _CHANNEL_NAME.match(name):
            raise ValueError(
                f"invalid channel name {name!r}: use ASCII letters, digits, '-', '_' and '.', "
                "with at most one '?' or '!' after a non-empty name"
            )
        if receive and "!" in name and not name.endswith("!"):
            raise ValueError(
                f"cannot receive on {name!r}: receive a process-specific channel "
                "by its name up to and including the '!'"
            )
        # Remember only the names processes listen on repeatedly, so the set
        # stays small: per-request reply channels are checked each time.
        if receive and len(self._valid_names) < 10_000:
            self._valid_names.add(name)

    def check_group_name(self, name: Any) -> None:
        if type(name) is not str:
            raise TypeError(f"group names must be str, not {type(name).__name__}")
        if len(name) > MAX_NAME_LENGTH or not _GROUP_NAME.match(name):
            raise ValueError(
                f"invalid group name {name!r}: use up to {MAX_NAME_LENGTH} ASCII letters, "
                "digits, '-', '_' and '.'"
            )

    def check_new_channel_pattern(self, pattern: Any) -> None:
        if type(pattern) is not str or not pattern.endswith(("?", "!")):
            raise ValueError(f"new_channel() needs a pattern ending in '?' or '!', got {pattern!r}")
        self.check_channel_name(pattern)

    @staticmethod
    def random_suffix() -> str:
        """12 random URL-safe characters (72 bits): short, and unguessable."""
        return secrets.token_urlsafe(9).replace("-", "_")

    # -- messages ------------------------------------------------------------

    def check_message_size(self, channel: str, size: int) -> None:
        if size > self.max_message_size:
            raise MessageTooLarge(
                f"message for {channel!r} is {size} bytes; the layer's limit is {self.max_message_size} bytes"
            )

    # -- capacity ------------------------------------------------------------

    @staticmethod
    def _compile_capacities(spec: CapacitySpec | None) -> list[tuple[Pattern[str], int]]:
        if not spec:
            return []
        items = spec.items() if isinstance(spec, Mapping) else spec
        compiled = []
        for pattern, value in items:
            if type(value) is not int or value < 1:
                raise ValueError(f"channel_capacity[{pattern!r}] must be a positive integer")
            regex = re.compile(fnmatch.translate(pattern)) if isinstance(pattern, str) else pattern
            compiled.append((regex, value))
        return compiled

    def get_capacity(self, channel: str) -> int:
        """Capacity of ``channel``: the first matching override wins.

        Process-specific channels are looked up (and share capacity) by
        their non-local part, as the spec's Capacity section requires.
        """
        key = non_local_name(channel)
        try:
            return self._capacity_cache[key]
        except KeyError:
            pass
        if key.endswith("!"):
            value = self.process_local_capacity
        elif key in _WEBSOCKET_CHANNELS:
            value = max(self.capacity, DEFAULT_WEBSOCKET_CAPACITY)
        else:
            value = self.capacity
        for pattern, override in self.channel_capacity:
            if pattern.match(key):
                value = override
                break
        if len(self._capacity_cache) < 10_000:
            self._capacity_cache[key] = value
        return value

    # -- compatibility -------------------------------------------------------

    def receive_many(self, channels: list[str], block: bool = False) -> tuple[str | None, Any]:
        """Deprecated alias of ``receive``, kept because Channels 1.1.8's worker calls it."""
        return self.receive(channels, block=block)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} expiry={self.expiry} capacity={self.capacity}>"

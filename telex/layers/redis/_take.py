"""One take of the messages waiting over several shards, written once for both kinds of connection.

:func:`take_steps` does no I/O: ``_threads`` and ``_loops`` run each command
it yields on their own connections and send the reply back, or throw the
shard's :class:`RedisUnavailable` in. One policy, so the two paths cannot
drift apart again (they had: threads skipped a shard that was down, event
loops gave up at it).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ._codec import Codec, now_ms
from ._health import RedisUnavailable

Plan = tuple[tuple[int, list[str]], ...]
#: ``(shard, script, arguments)``: a script's name with ``(keys, args)``, or
#: ``""`` with a plain command's words.
Step = tuple[int, str, tuple[Any, ...]]


def take_steps(plan: Plan, count: int, codec: Codec) -> Generator[Step, Any, list[tuple[str, Any]]]:
    """The commands of one take, shard after shard in ``plan``'s order; returns up to ``count`` messages.

    A shard that is down is skipped: the others may still have messages.
    Only when none was found is its :class:`RedisUnavailable` raised
    (``docs/redis-layer.md``, Outages).
    """
    found: list[tuple[str, Any]] = []
    unavailable = None
    for shard, keys in plan:
        for _ in range(64):  # each pass pops at least one entry or finds the queues empty
            wanted = count - len(found)
            try:
                if len(keys) == 1:
                    # Plain LPOP with a count: no script to run (expired entries
                    # are dropped by open_entries, and counted as taken here).
                    entries = (yield shard, "", (b"LPOP", keys[0], wanted)) or []  # nil: the queue is empty
                else:
                    entries = yield shard, "receive", (keys, [now_ms(), wanted])
            except RedisUnavailable as exc:
                unavailable = unavailable or exc
                break
            found += codec.open_entries(entries, now_ms())
            if len(found) >= count or len(entries) < wanted:
                break
        if len(found) >= count:
            break
    if unavailable is not None and not found:
        raise unavailable
    return found

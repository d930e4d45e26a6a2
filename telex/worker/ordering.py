"""``enforce_ordering``: run a socket's messages in their ``order`` (S9).

Built on the layer's ``telex.ordering`` extension (``docs/layers.md``). A
message that is not next is *parked* in the layer, atomically with the check;
when its predecessor's consumer has finished (and its held sends went out),
the advance step requeues it at the front of its channel, atomically too. No
thread waits or spins for a parked message.

Delivery is at-most-once, so a message may never arrive. The worker sweeps
for sequences stalled longer than the ordering timeout, skips the missing
messages, resumes with the lowest parked one and logs the skip.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, overload

from .channels import current_context
from .message import Message

__all__ = ["ORDERING_TIMEOUT", "enforce_ordering", "skip_stalled"]

logger = logging.getLogger("telex.worker")

#: Seconds a parked message waits for a missing predecessor before the gap is
#: skipped. Long enough for a busy worker pool, short against the layer's
#: 60 s message expiry, so the parked messages are still useful.
ORDERING_TIMEOUT = 10.0

#: Ordering keys are namespaced like session keys.
ORDERING_PREFIX = "telex.order:"

Consumer = Callable[..., Any]


@overload
def enforce_ordering(func: Consumer) -> Consumer: ...
@overload
def enforce_ordering(func: None = None, *, slight: bool = False) -> Callable[[Consumer], Consumer]: ...


def enforce_ordering(func: Consumer | None = None, *, slight: bool = False) -> Any:
    """Run every message of one socket in the ``order`` the server gave it.

    Put it on every consumer of the socket (connect, receive, disconnect):
    the sequence starts at ``order`` 0, the connect. ``slight=True`` is
    accepted for code written for older Channels, where it meant "connect
    before receive"; that always holds in Telex (the server forwards frames
    only after the accept, and the accept is held until the connect consumer
    returned and saved its session), so it changes nothing.
    """
    if func is None:
        return lambda inner: enforce_ordering(inner, slight=slight)
    if slight:
        return func

    @functools.wraps(func)
    def inner(message: Message, *args: Any, **kwargs: Any) -> Any:
        order = message.content.get("order")
        reply_channel = message.content.get("reply_channel")
        if type(order) is not int or not isinstance(reply_channel, str):
            raise ValueError(
                f"@enforce_ordering needs messages with an integer 'order' and a 'reply_channel' "
                f"(websocket.*); the message on {message.channel_name!r} lacks them"
            )
        layer = message.channel_layer
        if "telex.ordering" not in getattr(layer, "extensions", ()):
            raise RuntimeError(
                f"@enforce_ordering needs a channel layer with the 'telex.ordering' extension; "
                f"{type(layer).__name__} does not offer it"
            )
        key = ORDERING_PREFIX + reply_channel
        verdict = layer.ordering_claim(key, order, message.channel_name, message.content)
        if verdict == "park":
            logger.debug(
                "parked %s order %d of %s until its predecessors ran", message.channel_name, order, key
            )
            return None
        if verdict == "drop":
            logger.warning(
                "dropped %s order %d of %s: its turn has passed (duplicate or skipped)",
                message.channel_name,
                order,
                reply_channel,
            )
            return None
        advance = functools.partial(layer.ordering_advance, key, order)
        context = current_context()
        if context is None:
            try:
                return func(message, *args, **kwargs)
            finally:
                advance()
        # The next message may run only once this one's held sends are out.
        context.after_flush.append(advance)
        return func(message, *args, **kwargs)

    return inner


def skip_stalled(channel_layer: Any, timeout: float) -> list[tuple[str, int, int]]:
    """Skip gaps older than ``timeout`` seconds; log each. Returns the skips."""
    skipped = channel_layer.ordering_skip_stalled(timeout)
    for key, expected, resumed in skipped:
        logger.warning(
            "ordering: %s waited %g s for message order %d, which never arrived; skipped to order %d",
            key.removeprefix(ORDERING_PREFIX),
            timeout,
            expected,
            resumed,
        )
    return skipped

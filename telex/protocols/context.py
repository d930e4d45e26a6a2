"""What the wire protocols need from the server, as an interface.

Protocols never import ``telex.server``; the server hands them an object
with this shape (``telex.server.server.Server``), so the message flow stays
one-way: socket → protocols → layer … server reply reader → protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from ..server.settings import ServerSettings
    from .proxy import TrustedProxies


#: A response the server gives itself: status, headers, body.
LocalResponse = tuple[int, list[tuple[bytes, bytes]], bytes]


class Sender(Protocol):
    def send(self, channel: str, message: dict) -> Deferred: ...


class AccessLogger(Protocol):
    """``--access-log``: one line per HTTP response and per WebSocket event."""

    def log_http(self, request: Any, duration: float) -> None: ...

    def log_websocket(self, host: str, request: Any, event: str, code: int, duration: float) -> None: ...


class ServerContext(Protocol):
    settings: ServerSettings
    #: Whose X-Forwarded-* headers count (``--proxy-headers-trusted``).
    trusted_proxies: TrustedProxies
    #: The layer's exception types, for telling ChannelFull from other failures.
    channel_full: type[Exception]
    message_too_large: type[Exception]
    #: Seconds the layer keeps a group membership (spec, Persistence): a
    #: WebSocket's default lifetime, so its memberships never silently lapse.
    group_expiry: float
    #: This process's prefix (``telex.response.<random>!``): every reply channel starts with it.
    reply_prefix: str

    #: None without ``--access-log``.
    @property
    def access_log(self) -> AccessLogger | None: ...  # read-only, so a concrete logger class fits

    def new_reply_channel(
        self, handler: Callable[[dict], None], on_lost: Callable[[float], None] | None = None
    ) -> str:
        """A fresh reply channel name whose messages go to ``handler``; ``on_lost``
        hears of a known data loss in the layer (with the monotonic time of the
        check that found it) until the channel is released."""

    def register_reply_channel(self, name: str, handler: Callable[[dict], None]) -> None:
        """Dispatch ``name`` (under this process's reply prefix) to ``handler`` too."""

    def release_reply_channel(self, name: str) -> None:
        """Stop dispatching ``name``; later messages for it are dropped."""

    def new_body_channel(self) -> str:
        """A fresh channel name for one request's body chunks."""

    def make_sender(self) -> Sender:
        """A per-connection sender that keeps that connection's messages in order."""

    def upgrade_websocket(self, request: Any) -> bool:
        """Take over ``request`` as a WebSocket handshake; False if not possible."""

    def local_response(self, request: Any, path: str) -> Deferred[LocalResponse] | None:
        """None if ``path`` is the application's; else the server's own answer
        (health, metrics), which may wait on the layer, so always a Deferred."""

    def count(self, metric: str, amount: int = 1, **labels: str) -> None:
        """Add to a metric (the list is in docs/server.md, Operations)."""

"""Who is at each end of a connection, as ASGI's ``client`` and ``server`` keys say it.

Shared by HTTP requests and WebSocket handshakes: the peer's address, and
the client address and scheme as the nearest trusted proxy reports them
(``--proxy-headers``, see ``proxy.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .proxy import apply_proxy_headers

if TYPE_CHECKING:
    from .context import ServerContext


def address(peer: Any) -> list[Any] | None:
    """``[host, port]`` of a Twisted address; None for unix sockets and other non-IP transports."""
    host = getattr(peer, "host", None)
    port = getattr(peer, "port", None)
    if host is None or port is None:
        return None
    return [host, port]


def client_and_scheme(
    context: ServerContext, request: Any, headers: list[list[bytes]], websocket: bool = False
) -> tuple[list[Any] | None, str]:
    """The ``client`` and ``scheme`` of a request: the socket's, or a trusted proxy's."""
    client = address(request.getClientAddress())
    secure = request.isSecure()
    scheme = ("wss" if secure else "ws") if websocket else ("https" if secure else "http")
    if context.settings.proxy_headers and context.trusted_proxies.trusts(client[0] if client else None):
        client, scheme = apply_proxy_headers(client, scheme, headers, websocket=websocket)
    return client, scheme

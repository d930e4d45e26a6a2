"""Trusted proxy headers: X-Forwarded-For, -Port and -Proto (--proxy-headers)."""

from __future__ import annotations

import ipaddress
from typing import Any


class TrustedProxies:
    """Decides whose proxy headers count: listed addresses and networks, or ``*``."""

    def __init__(self, trusted: list[str]) -> None:
        self.everyone = "*" in trusted
        self.networks = [ipaddress.ip_network(entry, strict=False) for entry in trusted if entry != "*"]

    def trusts(self, host: str | None) -> bool:
        if self.everyone:
            return True
        if host is None:
            return False
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def _first(headers: list[list[bytes]], name: bytes) -> str | None:
    for header_name, value in headers:
        if header_name == name:
            return value.decode("latin-1").split(",")[0].strip() or None
    return None


def apply_proxy_headers(
    client: list[Any] | None, scheme: str, headers: list[list[bytes]], websocket: bool = False
) -> tuple[list[Any] | None, str]:
    """The client address and scheme as the nearest trusted proxy saw them.

    The first X-Forwarded-For entry is the original client (what the proxy
    appended last is its own peer, which is us); X-Forwarded-Proto ``https``
    becomes ``https``/``wss``.
    """
    forwarded_for = _first(headers, b"x-forwarded-for")
    if forwarded_for:
        port_text = _first(headers, b"x-forwarded-port")
        port = int(port_text) if port_text and port_text.isdigit() else 0
        client = [forwarded_for, port]
    proto = _first(headers, b"x-forwarded-proto")
    if proto:
        secure = proto.lower() in ("https", "wss")
        schemes = ("ws", "wss") if websocket else ("http", "https")
        scheme = schemes[secure]
    return client, scheme

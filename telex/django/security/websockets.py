"""Origin checks for ``websocket.connect`` consumers, so pages of other sites cannot open sockets.

``@allowed_hosts_only`` accepts origins whose host matches ``ALLOWED_HOSTS``
(Django's own matching: ``.example.com`` and ``*`` work); anything else,
a missing or non-ASCII ``Origin`` included, closes the handshake with a 403.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.http.request import validate_host

from ..exceptions import DenyConnection

__all__ = ["AllowedHostsOnlyOriginValidator", "BaseOriginValidator", "allowed_hosts_only"]

#: What ``DEBUG`` allows when ``ALLOWED_HOSTS`` is empty (as Channels 1.x did).
DEBUG_HOSTS = ["localhost", "127.0.0.1", "[::1]"]


class BaseOriginValidator:
    """A decorator class for connect consumers; subclasses implement :meth:`validate_origin`."""

    def __init__(self, func: Callable[..., Any]) -> None:
        functools.update_wrapper(self, func)
        self.func = func

    def __call__(self, message: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.validate_origin(message, self.get_origin(message)):
            raise DenyConnection
        return self.func(message, *args, **kwargs)

    def get_header(self, message: Any, name: bytes) -> list[Any]:
        """The rest of the first header named ``name`` (a one-item list: its value); KeyError if none."""
        for header in message.content.get("headers") or ():
            if len(header) > 1 and header[0] == name:
                return list(header[1:])
        raise KeyError(f"no header named {name!r}")

    def get_origin(self, message: Any) -> str:
        """The ``Origin`` header; DenyConnection when it is missing or not ASCII."""
        try:
            return self.get_header(message, b"origin")[0].decode("ascii")
        except (KeyError, IndexError, UnicodeDecodeError, AttributeError):
            raise DenyConnection from None

    def validate_origin(self, message: Any, origin: str) -> bool:
        """True to accept the connection from ``origin``."""
        raise NotImplementedError(f"{type(self).__name__} must implement validate_origin(message, origin)")


class AllowedHostsOnlyOriginValidator(BaseOriginValidator):
    """Accept origins whose host is in ``ALLOWED_HOSTS``."""

    def validate_origin(self, message: Any, origin: str) -> bool:
        allowed_hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not allowed_hosts:
            allowed_hosts = DEBUG_HOSTS
        try:
            hostname = urlparse(origin).hostname
        except ValueError:
            return False
        if not hostname:
            return False
        if ":" in hostname:  # an IPv6 address: ALLOWED_HOSTS spells it in brackets
            hostname = f"[{hostname}]"
        return validate_host(hostname, allowed_hosts)


allowed_hosts_only = AllowedHostsOnlyOriginValidator

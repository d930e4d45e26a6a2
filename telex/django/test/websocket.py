"""``WSClient``: a ``Client`` that speaks WebSocket messages, with cookies, headers and a session.

Messages are shaped as ``telex serve`` sends them (``path``, ``query_string``
as bytes, ``headers`` as ``[name, value]`` byte pairs), so consumers see in
a test what they see behind the server.
"""

from __future__ import annotations

import copy
import json as json_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.http.cookie import SimpleCookie

from .base import Client

__all__ = ["WSClient"]


class WSClient(Client):
    """Run WebSocket consumers with this client's cookies, headers and session.

    The session (``django.contrib.sessions``) is the one ``channel_session``
    keeps for this reply channel; its key goes out as the session cookie
    until the first message is sent, so ``login()`` / ``force_login()``
    before ``websocket.connect`` make ``channel_session_user_from_http``
    find the user. ``ordered=True`` numbers the messages (``order``) for
    ``enforce_ordering``.
    """

    reply_channel_prefix = "websocket.send?"

    def __init__(self, alias: str | None = None, ordered: bool = False) -> None:
        super().__init__(**({} if alias is None else {"alias": alias}))
        self._ordered = ordered
        self._session: Any = None
        self._headers: dict[str, Any] = {}
        self._cookies: dict[str, str] = {}
        self._session_cookie = True
        self.order = 0

    def set_cookie(self, key: str, value: str) -> None:
        self._cookies[key] = value

    def set_header(self, key: str, value: str | bytes) -> None:
        if key.lower() == "cookie":
            raise ValueError("Use set_cookie method for cookie header")
        self._headers[key.lower()] = value

    def get_cookies(self) -> dict[str, str]:
        cookies = dict(self._cookies)
        if self._session_cookie and apps.is_installed("django.contrib.sessions"):
            cookies[settings.SESSION_COOKIE_NAME] = self.session.session_key
        return cookies

    @property
    def headers(self) -> dict[str, Any]:
        """The headers the next message carries, by lower-case name (the cookie header included)."""
        headers = copy.deepcopy(self._headers)
        cookies = self.get_cookies()
        if cookies:
            headers.setdefault("cookie", _encoded_cookies(cookies))
        return headers

    @property
    def session(self) -> Any:
        """This reply channel's session (``django.contrib.sessions`` must be installed)."""
        if not apps.is_installed("django.contrib.sessions"):
            raise OSError("Add django.contrib.sessions to the INSTALLED_APPS to use session")
        if self._session is None:
            from ..sessions import session_for_reply_channel

            self._session = session_for_reply_channel(self.reply_channel)
        return self._session

    def receive(self, json: bool = True, timeout: float = 0) -> Any:  # type: ignore[override]
        """The next reply's ``text``, parsed as JSON unless ``json=False``; other replies whole."""
        content = super().receive(timeout)
        if not content:
            return None
        text = content.get("text")
        if json and isinstance(text, str):
            return json_module.loads(text)
        return content.get("text", content)

    def send(  # type: ignore[override]
        self, to: str, content: dict | None = None, text: Any = None, path: str = "/"
    ) -> None:
        """Send to ``to`` with this client's reply channel, headers and ``path``.

        ``text`` that is not a string is sent as JSON; a query string in
        ``path`` goes to ``query_string`` on ``websocket.connect`` only.
        """
        if to != "websocket.connect":
            path = path.split("?", 1)[0]
        self.channel_layer.send(to, self._get_content(content, text, path))
        self._session_cookie = False

    def _get_content(self, content: dict | None, text: Any, path: str) -> dict:
        content = copy.deepcopy(content or {})
        content.setdefault("reply_channel", self.reply_channel)
        path, _, query_string = path.partition("?")
        content.setdefault("path", path)
        if query_string:
            content.setdefault("query_string", query_string.encode("ascii"))
        content.setdefault("headers", _header_pairs(self.headers))
        if self._ordered:
            if "order" in content:
                raise ValueError('Do not use "order" manually with "ordered=True"')
            content["order"] = self.order
            self.order += 1
        text = text if text is not None else content.get("text")
        if text is not None:
            content["text"] = text if isinstance(text, str) else json_module.dumps(text)
        return content

    def send_and_consume(  # type: ignore[override]  # noqa: PLR0917 (Channels 1.x's signature)
        self,
        channel: str,
        content: dict | None = None,
        text: Any = None,
        path: str = "/",
        fail_on_none: bool = True,
        check_accept: bool = True,
    ) -> Any:
        self.send(channel, content, text, path)
        return self.consume(channel, fail_on_none=fail_on_none, check_accept=check_accept)

    def consume(self, channel: str, fail_on_none: bool = True, check_accept: bool = True) -> Any:  # type: ignore[override]
        """Run the consumer; after ``websocket.connect`` (``check_accept``) the reply must be an accept."""
        result = super().consume(channel, fail_on_none=fail_on_none)
        if channel == "websocket.connect" and check_accept:
            received = self.receive(json=False)
            if received != {"accept": True}:
                raise AssertionError(f"Connection rejected: {received} != '{{accept: True}}'")
        return result

    def login(self, **credentials: Any) -> bool:
        """Log in with ``authenticate(**credentials)``; False if they are refused or the user is inactive."""
        from django.contrib.auth import authenticate

        user = authenticate(**credentials)
        if user is None or not user.is_active or not apps.is_installed("django.contrib.sessions"):
            return False
        self._login(user)
        return True

    def force_login(self, user: Any, backend: str | None = None) -> None:
        user.backend = backend or settings.AUTHENTICATION_BACKENDS[0]
        self._login(user)

    def _login(self, user: Any) -> None:
        from django.contrib.auth import login
        from django.http import HttpRequest

        request = HttpRequest()
        request.session = self.session
        login(request, user)
        self.session.save()


def _encoded_cookies(cookies: dict[str, str]) -> bytes:
    encoder = SimpleCookie()
    for key, value in cookies.items():
        encoder[key] = value
    return encoder.output(header="", sep=";").strip().encode("ascii")


def _header_pairs(headers: dict[str, Any]) -> list[list[bytes]]:
    return [
        [name.encode("ascii"), value if isinstance(value, bytes) else str(value).encode("latin-1")]
        for name, value in headers.items()
    ]

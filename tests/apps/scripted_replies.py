"""A test application whose replies are written by the test: any reply, valid or not.

Served as ``telex serve tests.apps.scripted_replies:channel_layer``. Each request
carries its script in headers, made by :func:`script`:

- ``x-replies``: the messages to send on the reply channel, in order
  (``tests.apps.jsonable`` encoding, so bytes stay bytes);
- ``x-park: NAME``: afterwards keep the reply channel under NAME;
- ``x-to: NAME``: send the messages to the reply channel parked under NAME
  instead, then answer this request ``200 sent``.

With ``x-park`` and ``x-to`` a test holds a response open while another request
on the same connection misbehaves, then finishes the first.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from telex.layers import InMemoryChannelLayer
from tests.apps.jsonable import from_jsonable, to_jsonable

channel_layer = InMemoryChannelLayer()
_parked: dict[str, str] = {}


def script(*messages: dict[str, Any], park: str | None = None, to: str | None = None) -> dict[str, str]:
    """The request headers that make this application send ``messages``."""
    headers = {"x-replies": json.dumps(to_jsonable(list(messages)))}
    if park is not None:
        headers["x-park"] = park
    if to is not None:
        headers["x-to"] = to
    return headers


def _handle(message: dict) -> None:
    headers = {name.decode(): value.decode("latin-1") for name, value in message["headers"]}
    replies = from_jsonable(json.loads(headers.get("x-replies", "[]")))
    target = message["reply_channel"]
    if "x-to" in headers:
        target = _parked.pop(headers["x-to"])
    for reply in replies:
        channel_layer.send(target, reply)
    if "x-park" in headers:
        _parked[headers["x-park"]] = target
    if "x-to" in headers:
        channel_layer.send(message["reply_channel"], {"status": 200, "content": b"sent"})


def _consume() -> None:
    while True:
        channel, message = channel_layer.receive(["http.request"], block=True)
        if channel is not None:
            try:
                _handle(message)
            except Exception as exc:  # keep serving; the test sees a timeout
                print("scripted app error:", repr(exc), flush=True)


threading.Thread(target=_consume, name="scripted-replies", daemon=True).start()

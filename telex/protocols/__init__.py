"""Wire protocols ⇄ ASGI messages: HTTP/1.1 and HTTP/2 (``http``), WebSocket (``websocket``).

Pure message shapes live beside each adapter (``http_messages``,
``websocket_messages``); the adapters take a ``ServerContext`` (``context``)
and never import the server. A regular package on purpose: ``packages = find:``
skips directories without ``__init__.py``, and an installed Telex lacked it.
"""

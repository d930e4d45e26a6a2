"""HTTP/1.1, HTTP/2 and WebSocket connections turned into ASGI 1 messages and back.

A regular package on purpose: ``packages = find:`` in setup.cfg skips
directories without ``__init__.py``, and an installed Telex then lacked this
whole package (only editable installs and the checkout worked).
"""

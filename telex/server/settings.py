"""Every server option, its default and its meaning, in one place.

The CLI maps flags and ``TELEX_*`` environment variables onto
:class:`ServerSettings`; the wire code reads this object and never sees flags.
``docs/server.md`` is the user-facing copy of this table: change both together.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

KIB = 1024
MIB = 1024 * 1024


@dataclass
class ServerSettings:
    # -- where to listen -------------------------------------------------------
    #: Twisted endpoint strings (``tcp:8000:interface=127.0.0.1``, ``unix:/run/t.sock``,
    #: ``ssl:443:privateKey=...``, ``systemd:domain=INET:index=0``). Built by the CLI
    #: from -b/-p, -u, --fd and -e.
    endpoints: list[str] = field(default_factory=list)
    #: File descriptors of already-bound listening sockets to adopt (``--fd``).
    adopt_fds: list[int] = field(default_factory=list)
    #: Endpoint strings served with TLS from the ``ssl_*`` files below: the -b/-p
    #: listener when ``--ssl-certfile`` is given.
    tls_endpoints: list[str] = field(default_factory=list)
    #: Bind TCP listeners with SO_REUSEPORT, so several processes share a port.
    reuse_port: bool = False

    # -- TLS (docs/tls-http2.md) --------------------------------------------------
    #: Server certificate (PEM), optionally followed by its intermediate chain.
    ssl_certfile: str | None = None
    #: Private key (PEM); None: it is in ``ssl_certfile``.
    ssl_keyfile: str | None = None
    #: Password of an encrypted private key.
    ssl_keyfile_password: str | None = None
    #: CA certificates (PEM); when set, clients must present a certificate they signed.
    ssl_ca_certs: str | None = None

    # -- the application side --------------------------------------------------
    #: ``root_path`` put into every request message (like WSGI's SCRIPT_NAME).
    root_path: str = ""
    #: Prefix of this process's reply channels; a random part is appended at start.
    reply_channel_prefix: str = "telex.response."

    # -- proxies -----------------------------------------------------------------
    #: Honour X-Forwarded-For / -Port / -Proto (``--proxy-headers``).
    proxy_headers: bool = False
    #: Peers whose proxy headers are trusted; ``*`` trusts everyone (Daphne 1.x).
    proxy_headers_trusted: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])

    # -- HTTP ----------------------------------------------------------------------
    #: Seconds to wait for the Response message before answering 503 (``-t``).
    http_timeout: float = 120.0
    #: Bodies up to this size travel inline in ``http.request``; larger ones stream
    #: through ``body_channel`` as soon as the headers are in.
    request_body_inline_max: int = 512 * KIB
    #: Size of each Request Body Chunk message on ``body_channel``.
    request_body_chunk_size: int = 256 * KIB
    #: Largest request body accepted (413 beyond it); 0 means no limit.
    max_request_body_size: int = 0
    #: Seconds an idle keep-alive connection is kept open waiting for a request.
    keep_alive_timeout: float = 15.0
    #: Seconds a client has to deliver a complete request head (slow-header defence).
    request_head_timeout: float = 10.0
    #: Most header lines per request (400 beyond it).
    max_headers: int = 100
    #: Most bytes of request line plus headers, and of any single line (400 beyond).
    max_header_bytes: int = 16 * KIB
    #: Most open connections; further ones get a 503 and are closed. 0: no limit.
    max_connections: int = 0
    #: Bytes of response data held for a client that reads slower than the
    #: application writes, beyond the socket buffers.
    max_pending_output: int = 16 * MIB
    #: Seconds a connection may stay over ``max_pending_output`` before it is
    #: closed; at four times the limit it is closed at once.
    slow_client_timeout: float = 30.0
    #: Send ``http.disconnect`` after every request (Daphne 1.x), not only when the
    #: connection closes before its response completed.
    http_disconnect_always: bool = False

    # -- WebSocket -------------------------------------------------------------------
    #: Subprotocols offered (``--ws-protocol``), in order of preference.
    ws_protocols: list[str] = field(default_factory=list)
    #: Seconds to wait for the application's answer to ``websocket.connect`` (403 then).
    websocket_connect_timeout: float = 5.0
    #: Maximum lifetime of a WebSocket in seconds; None: the layer's group_expiry;
    #: -1: never.
    websocket_timeout: float | None = None
    #: Ping idle sockets after this many seconds; 0 disables pings.
    ping_interval: float = 20.0
    #: Close a socket whose ping is unanswered for this many seconds.
    ping_timeout: float = 30.0
    #: Largest incoming message (close 1009 beyond it).
    websocket_max_message_size: int = MIB
    #: Largest incoming frame (close 1009 beyond it).
    websocket_max_frame_size: int = MIB
    #: Offer permessage-deflate.
    websocket_compression: bool = False
    #: Origin allow-list (host names, ``*.example.com`` patterns, or full origins);
    #: empty allows every origin.
    allowed_origins: list[str] = field(default_factory=list)

    # -- lifecycle and operations ------------------------------------------------------
    #: Seconds between checks that the layer still holds its data (layers
    #: offering ``check_data_lost_async``, such as Redis).
    layer_check_interval: float = 5.0
    #: Seconds in-flight HTTP responses get to finish after SIGTERM.
    graceful_timeout: float = 30.0
    #: Path answered by the server itself with layer health; None: off.
    health_path: str | None = None
    #: Path serving Prometheus metrics; None: off.
    metrics_path: str | None = None
    #: Access log destination: a path, ``-`` for stdout, None for none.
    access_log: str | None = None
    #: ``combined`` (plus duration) or ``json``.
    access_log_format: str = "combined"
    #: First-generation threshold of Python's cyclic garbage collector once the
    #: server is listening (the start-up heap is frozen out of collections too);
    #: 0 keeps Python's default. See docs/server.md: it cuts tail latency ~10x.
    gc_threshold: int = 50_000
    #: 0 errors only, 1 info (default), 2 debug and tracebacks, 3 everything.
    verbosity: int = 1

    def replace(self, **changes: Any) -> ServerSettings:
        return dataclasses.replace(self, **changes)

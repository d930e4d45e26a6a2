"""Every server option, its default and its meaning, in one place.

Each field that a user sets is declared with :func:`telex._options.option`:
``telex serve`` builds its flag and ``TELEX_*`` variable from it, so adding an
option is one field here plus its line in ``docs/server.md`` (a test checks
both). The fields without an option are derived by the CLI or internal. They
are listed in the order of ``telex serve --help`` and ``docs/server.md``; the
wire code reads this object and never sees flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .._options import option

KIB = 1024
MIB = 1024 * 1024


@dataclass
class ServerSettings:
    # -- where to listen -------------------------------------------------------
    #: Twisted endpoint strings (``tcp:8000:interface=127.0.0.1``, ``unix:/run/t.sock``,
    #: ``ssl:443:privateKey=...``, ``systemd:domain=INET:index=0``). Built by the CLI
    #: from -b/-p, -u and -e.
    endpoints: list[str] = field(default_factory=list)
    #: File descriptors of already-bound listening sockets to adopt (from ``--fd``).
    adopt_fds: list[int] = field(default_factory=list)
    #: Endpoint strings served with TLS from the ``ssl_*`` files below: the -b/-p
    #: listener when ``--ssl-certfile`` is given.
    tls_endpoints: list[str] = field(default_factory=list)
    #: Bind TCP listeners with SO_REUSEPORT, so several processes share a port.
    reuse_port: bool = option(
        "--reuse-port",
        kind="switch",
        group="where to listen",
        default=False,
        help="bind TCP listeners with SO_REUSEPORT so several Telex processes share one port",
    )

    # -- TLS (docs/tls-http2.md) --------------------------------------------------
    #: Server certificate (PEM), optionally followed by its intermediate chain.
    ssl_certfile: str | None = option(
        "--ssl-certfile",
        group="TLS",
        default=None,
        help="server certificate (PEM), chain after it; turns TLS on",
    )
    #: Private key (PEM); None: it is in ``ssl_certfile``.
    ssl_keyfile: str | None = option(
        "--ssl-keyfile", group="TLS", default=None, help="private key (PEM) (default: in --ssl-certfile)"
    )
    #: Password of an encrypted private key.
    ssl_keyfile_password: str | None = option(
        "--ssl-keyfile-password", group="TLS", default=None, help="password of an encrypted --ssl-keyfile"
    )
    #: CA certificates (PEM); when set, clients must present a certificate they signed.
    ssl_ca_certs: str | None = option(
        "--ssl-ca-certs",
        group="TLS",
        default=None,
        help="CA certificates (PEM): clients must present a certificate they signed",
    )

    # -- the application side --------------------------------------------------
    #: ``root_path`` put into every request message (like WSGI's SCRIPT_NAME).
    root_path: str = option(
        "--root-path",
        group="application",
        default="",
        help="root_path for every request, like WSGI SCRIPT_NAME",
    )
    #: Reach the layer only through its synchronous API, in threads (the
    #: threaded bridge), even when it offers an asyncio or in-process one.
    force_sync: bool = option(
        "--force-sync",
        kind="switch",
        group="application",
        default=False,
        help="talk to the layer through threads with its synchronous API only (foreign layers always do)",
    )
    #: Prefix of this process's reply channels; a random part is appended at start.
    reply_channel_prefix: str = "telex.response."

    # -- HTTP ----------------------------------------------------------------------
    #: Seconds to wait for the Response message before answering 503.
    http_timeout: float = option(
        "-t",
        "--http-timeout",
        kind="seconds",
        group="HTTP",
        default=120.0,
        help="seconds to wait for a response before 503",
    )
    #: Seconds a started response may go without a Response Chunk before the
    #: connection is closed (the response is incomplete); None: ``http_timeout``;
    #: 0: never. Long streams (server-sent events) send keep-alive chunks.
    response_idle_timeout: float | None = option(
        "--response-idle-timeout",
        kind="seconds",
        group="HTTP",
        default=None,
        help="seconds a started response may go without a chunk before closing; 0 = never (default: -t)",
    )
    #: Seconds an idle keep-alive connection is kept open waiting for a request.
    keep_alive_timeout: float = option(
        "--keep-alive-timeout",
        kind="seconds",
        group="HTTP",
        default=15.0,
        help="seconds an idle keep-alive connection stays open",
    )
    #: Seconds a client has to deliver a complete request head (slow-header defence).
    request_head_timeout: float = option(
        "--request-head-timeout",
        kind="seconds",
        group="HTTP",
        default=10.0,
        help="seconds to receive a complete request head",
    )
    #: Most header lines per request (400 beyond it).
    max_headers: int = option(
        "--max-headers",
        kind="int",
        group="HTTP",
        default=100,
        help="most header lines per request (400 beyond)",
    )
    #: Most bytes of request line plus headers, and of any single line (400 beyond).
    max_header_bytes: int = option(
        "--max-header-bytes",
        kind="size",
        group="HTTP",
        default=16 * KIB,
        help="most bytes of request line plus headers (400)",
    )
    #: Bodies up to this size travel inline in ``http.request``; larger ones stream
    #: through ``body_channel`` as soon as the headers are in.
    request_body_inline_max: int = option(
        "--request-body-inline-max",
        kind="size",
        group="HTTP",
        default=512 * KIB,
        help="larger bodies stream via body_channel",
    )
    #: Size of each Request Body Chunk message on ``body_channel``.
    request_body_chunk_size: int = option(
        "--request-body-chunk-size",
        kind="size",
        group="HTTP",
        default=256 * KIB,
        help="bytes per Request Body Chunk message",
    )
    #: Largest request body accepted (413 beyond it); 0 means no limit.
    max_request_body_size: int = option(
        "--max-request-body-size",
        kind="size",
        group="HTTP",
        default=0,
        help="largest request body, 413 beyond; 0 = no limit",
    )
    #: Seconds a request body may take before ``request_body_min_rate`` is
    #: enforced (Apache mod_reqtimeout's ``body=20``); 0: no body deadline.
    request_body_timeout: float = option(
        "--request-body-timeout",
        kind="seconds",
        group="HTTP",
        default=20.0,
        help="seconds a request body may take before --request-body-min-rate applies (408); 0 = never",
    )
    #: Each further ``request_body_min_rate`` bytes of body earn one more second
    #: (Apache's ``MinRate=500``); time the server itself paused reading is not counted.
    request_body_min_rate: int = option(
        "--request-body-min-rate",
        kind="size",
        group="HTTP",
        default=500,
        help="bytes per second a body must average after --request-body-timeout (408 below)",
    )
    #: Most open connections; further ones get a 503 and are closed. 0: no limit.
    max_connections: int = option(
        "--max-connections",
        kind="int",
        group="HTTP",
        default=0,
        help="most open connections, 503 beyond; 0 = no limit",
    )
    #: Bytes of response data held for a client that reads slower than the
    #: application writes, beyond the socket buffers.
    max_pending_output: int = option(
        "--max-pending-output",
        kind="size",
        group="HTTP",
        default=16 * MIB,
        help="bytes held for a slow reader",
    )
    #: Seconds a connection may stay over ``max_pending_output`` before it is
    #: closed; at four times the limit it is closed at once.
    slow_client_timeout: float = option(
        "--slow-client-timeout",
        kind="seconds",
        group="HTTP",
        default=30.0,
        help="seconds over --max-pending-output before closing",
    )
    #: Send ``http.disconnect`` after every request (Daphne 1.x), not only when the
    #: connection closes before its response completed.
    http_disconnect_always: bool = option(
        "--http-disconnect-always",
        kind="switch",
        group="HTTP",
        default=False,
        help="send http.disconnect after every request, as Daphne 1.x did",
    )
    #: Honour X-Forwarded-For / -Port / -Proto.
    proxy_headers: bool = option(
        "--proxy-headers",
        kind="switch",
        group="HTTP",
        default=False,
        help="use X-Forwarded-For/-Port/-Proto",
    )
    #: Peers whose proxy headers are trusted; ``*`` trusts everyone (Daphne 1.x).
    proxy_headers_trusted: list[str] = option(
        "--proxy-headers-trusted",
        kind="list",
        group="HTTP",
        default_factory=lambda: ["127.0.0.1", "::1"],
        help="comma-separated addresses/networks whose proxy headers count; '*' trusts all",
    )

    # -- WebSocket -------------------------------------------------------------------
    #: Maximum lifetime of a WebSocket in seconds; None: the layer's group_expiry;
    #: -1: never. The underscore spelling is Daphne 1.x's.
    websocket_timeout: float | None = option(
        "--websocket-timeout",
        "--websocket_timeout",
        kind="seconds",
        group="WebSocket",
        default=None,
        help="maximum WebSocket lifetime in seconds; -1 never (default: the layer's group_expiry)",
    )
    #: Seconds to wait for the application's answer to ``websocket.connect`` (403 then).
    websocket_connect_timeout: float = option(
        "--websocket-connect-timeout",
        "--websocket_connect_timeout",
        kind="seconds",
        group="WebSocket",
        default=5.0,
        help="seconds to wait for the answer to websocket.connect before 403",
    )
    #: Ping idle sockets after this many seconds; 0 disables pings.
    ping_interval: float = option(
        "--ping-interval",
        kind="seconds",
        group="WebSocket",
        default=20.0,
        help="ping idle WebSockets after this many seconds",
    )
    #: Close a socket whose ping is unanswered for this many seconds.
    ping_timeout: float = option(
        "--ping-timeout",
        kind="seconds",
        group="WebSocket",
        default=30.0,
        help="close a WebSocket whose ping is unanswered this long",
    )
    #: Subprotocols offered, in order of preference.
    ws_protocols: list[str] = option(
        "--ws-protocol",
        kind="several-list",
        group="WebSocket",
        default_factory=list,
        metavar="PROTOCOL",
        help="subprotocols to offer, in order: --ws-protocol a b, or a,b",
    )
    #: Largest incoming message (close 1009 beyond it).
    websocket_max_message_size: int = option(
        "--websocket-max-message-size",
        kind="size",
        group="WebSocket",
        default=MIB,
        help="largest message (close 1009)",
    )
    #: Largest incoming frame (close 1009 beyond it).
    websocket_max_frame_size: int = option(
        "--websocket-max-frame-size",
        kind="size",
        group="WebSocket",
        default=MIB,
        help="largest frame (close 1009)",
    )
    #: Offer permessage-deflate.
    websocket_compression: bool = option(
        "--websocket-compression",
        kind="switch",
        group="WebSocket",
        default=False,
        help="offer permessage-deflate",
    )
    #: Seconds a WebSocket may take to move to another worker (docs/asgi3.md) before close 1012.
    websocket_resume_timeout: float = option(
        "--websocket-resume-timeout",
        kind="seconds",
        group="WebSocket",
        default=30.0,
        help="seconds a WebSocket may take to resume on another worker before close 1012",
    )
    #: Messages held for a WebSocket while it moves to another worker.
    websocket_resume_buffer: int = option(
        "--websocket-resume-buffer",
        kind="int",
        group="WebSocket",
        default=1000,
        help="messages held for a moving WebSocket; the client's are paused beyond it",
    )
    #: Seconds without a heartbeat after which a worker counts as dead and its sockets move.
    worker_heartbeat_timeout: float = option(
        "--worker-heartbeat-timeout",
        kind="seconds",
        group="WebSocket",
        default=5.0,
        help="seconds without a worker's heartbeat before its WebSockets resume elsewhere",
    )
    #: Origin allow-list (host names, ``*.example.com`` patterns, or full origins);
    #: empty allows every origin.
    allowed_origins: list[str] = option(
        "--allowed-origins",
        kind="list",
        group="WebSocket",
        default_factory=list,
        help="comma-separated Origin allow-list (hosts, *.example.com, or full origins); default: all",
    )

    # -- lifecycle and operations ------------------------------------------------------
    #: Seconds in-flight HTTP responses get to finish after SIGTERM.
    graceful_timeout: float = option(
        "--graceful-timeout",
        kind="seconds",
        group="operations",
        default=30.0,
        help="seconds in-flight responses get at shutdown",
    )
    #: Seconds a process told to drain (SIGUSR2: a rolling restart) keeps its
    #: WebSockets open for their clients to leave before closing them with 1001.
    drain_timeout: float = option(
        "--drain-timeout",
        kind="seconds",
        group="operations",
        default=30.0,
        help="at SIGUSR2 (a rolling restart under --workers), seconds open WebSockets get to close "
        "before 1001",
    )
    #: First-generation threshold of Python's cyclic garbage collector once the
    #: server is listening (the start-up heap is frozen out of collections too);
    #: 0 keeps Python's default. See docs/server.md: it cuts tail latency ~10x.
    gc_threshold: int = option(
        "--gc-threshold",
        kind="int",
        group="operations",
        default=50_000,
        help="garbage collector's first threshold once listening (start-up heap frozen); 0 = Python's",
    )
    #: Seconds between checks that the layer still holds its data (layers
    #: offering ``check_data_lost_async``, such as Redis).
    layer_check_interval: float = option(
        "--layer-check-interval",
        kind="seconds",
        group="operations",
        default=5.0,
        help="seconds between checks that the layer kept its data (Redis), and reply-lag refreshes",
    )
    #: Seconds between two summaries while the channel layer is unavailable (docs/deployment.md).
    outage_summary_interval: float = option(
        "--outage-summary-interval",
        kind="seconds",
        group="operations",
        default=60.0,
        help="while the channel layer is unavailable, log a summary with counts this often",
    )
    #: Path answered by the server itself with layer health; None: off.
    health_path: str | None = option(
        "--health-path",
        group="operations",
        default=None,
        help="path answered by the server itself with layer health",
    )
    #: Path serving Prometheus metrics; None: off.
    metrics_path: str | None = option(
        "--metrics-path", group="operations", default=None, help="path serving Prometheus metrics"
    )
    #: Access log destination: a path, ``-`` for stdout, None for none.
    access_log: str | None = option(
        "--access-log", group="operations", default=None, help="access log file, or - for stdout"
    )
    #: ``combined`` (plus duration) or ``json``.
    access_log_format: str = option(
        "--access-log-format",
        group="operations",
        choices=("combined", "json"),
        default="combined",
        help="access log format",
    )

    def replace(self, **changes: Any) -> ServerSettings:
        return dataclasses.replace(self, **changes)

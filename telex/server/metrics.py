"""The server's metrics in Prometheus text format (``--metrics-path``)."""

from __future__ import annotations

from .._metrics import Registry
from ..layers.base import LOSS_METRICS_HELP

HELP = {
    "telex_open_connections": ("gauge", "Open HTTP and WebSocket connections."),
    "telex_open_websockets": ("gauge", "Open WebSocket connections."),
    "telex_http_requests_started_total": ("counter", "HTTP requests sent to the channel layer."),
    "telex_http_responses_total": ("counter", "HTTP responses by status."),
    "telex_http_head_timeouts_total": ("counter", "Connections closed for a slow request head."),
    "telex_http_body_timeouts_total": ("counter", "Requests answered 408 for a body below the minimum rate."),
    "telex_connections_refused_total": ("counter", "Connections refused at --max-connections."),
    "telex_slow_clients_closed_total": ("counter", "Connections closed for unread output."),
    "telex_malformed_replies_total": ("counter", "Reply messages that broke the spec."),
    "telex_response_idle_timeouts_total": (
        "counter",
        "Started responses closed for going --response-idle-timeout without a chunk.",
    ),
    "telex_websocket_messages_in_total": ("counter", "WebSocket messages received from clients."),
    "telex_websocket_messages_out_total": ("counter", "WebSocket messages sent to clients."),
    "telex_layer_errors_total": (
        "counter",
        "Channel layer errors: failed reply reads and failed sends (ChannelFull and MessageTooLarge aside).",
    ),
    **LOSS_METRICS_HELP,
    "telex_replies_dropped_total": ("counter", "Replies for unknown or finished reply channels."),
    "telex_reply_reader_lag_seconds": ("gauge", "Age of the oldest unread reply for this process."),
    "telex_http_request_duration_seconds": (
        "histogram",
        "HTTP requests from the request head to the end of the response, the server's own answers included.",
    ),
    "telex_layer_send_duration_seconds": (
        "histogram",
        "Layer round trips: from handing a message to the channel layer to the layer accepting it.",
    ),
}


class Metrics(Registry):
    """The server's metrics: ``counters`` are counted here; ``gauges`` are
    read when scraped, and so are counters kept elsewhere (the bridge's layer
    errors): HELP gives the type."""

    def __init__(self) -> None:
        super().__init__(HELP)

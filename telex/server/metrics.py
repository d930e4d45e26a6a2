"""Counters and gauges in Prometheus text format (``--metrics-path``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

HELP = {
    "telex_open_connections": ("gauge", "Open HTTP and WebSocket connections."),
    "telex_open_websockets": ("gauge", "Open WebSocket connections."),
    "telex_http_requests_started_total": ("counter", "HTTP requests sent to the channel layer."),
    "telex_http_responses_total": ("counter", "HTTP responses by status."),
    "telex_http_head_timeouts_total": ("counter", "Connections closed for a slow request head."),
    "telex_connections_refused_total": ("counter", "Connections refused at --max-connections."),
    "telex_slow_clients_closed_total": ("counter", "Connections closed for unread output."),
    "telex_malformed_replies_total": ("counter", "Reply messages that broke the spec."),
    "telex_websocket_messages_in_total": ("counter", "WebSocket messages received from clients."),
    "telex_websocket_messages_out_total": ("counter", "WebSocket messages sent to clients."),
    "telex_layer_errors_total": (
        "counter",
        "Channel layer errors: failed reply reads and failed sends (ChannelFull and MessageTooLarge aside).",
    ),
    "telex_replies_dropped_total": ("counter", "Replies for unknown or finished reply channels."),
    "telex_reply_reader_lag_seconds": ("gauge", "Age of the oldest unread reply for this process."),
}


class Metrics:
    """``counters`` are counted here; ``gauges`` are read when scraped, and so
    are counters kept elsewhere (the bridge's layer errors): HELP gives the type."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.gauges: dict[str, Callable[[], float]] = {}

    def count(self, name: str, amount: float = 1, **labels: str) -> None:
        self.counters[(name, tuple(sorted(labels.items())))] += amount

    def render(self) -> bytes:
        lines: list[str] = []
        seen: set[str] = set()
        samples = sorted(self.counters.items()) + [((name, ()), read()) for name, read in self.gauges.items()]
        for (name, labels), value in samples:
            if name not in seen:
                seen.add(name)
                kind, text = HELP.get(name, ("untyped", name))
                lines.append(f"# HELP {name} {text}")
                lines.append(f"# TYPE {name} {kind}")
            label_text = ",".join(f'{key}="{val}"' for key, val in labels)
            lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")
        return ("\n".join(lines) + "\n").encode()

"""Channels 1.x routing: explicit consumers first; other HTTP paths fall through
to Django's views (Channels appends its view consumer at the bottom)."""

from channels.routing import route

from chatproject import consumers

channel_routing = [
    route("http.request", consumers.hello, path=r"^/hello/$"),
    route("http.request", consumers.reply_through_group, path=r"^/group-reply/$"),
    route("websocket.connect", consumers.ws_connect),
    route("websocket.receive", consumers.ws_receive),
    route("websocket.disconnect", consumers.ws_disconnect),
]

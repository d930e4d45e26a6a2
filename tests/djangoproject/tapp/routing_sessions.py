"""Routing of tests/test_django_sessions.py, mounted at /sessions."""

from tapp import consumers_sessions as c
from telex.django.routing import route

channel_routing = [
    route("websocket.connect", c.chan_connect, path=r"^/chan/$"),
    route("websocket.receive", c.chan_receive, path=r"^/chan/$"),
    route("websocket.disconnect", c.chan_disconnect, path=r"^/chan/$"),
    route("websocket.connect", c.user_connect, path=r"^/user/$"),
    route("websocket.receive", c.user_receive, path=r"^/user/$"),
    route("websocket.connect", c.transfer_connect, path=r"^/transfer/$"),
    route("websocket.receive", c.user_receive, path=r"^/transfer/$"),
    route("websocket.connect", c.both_connect, path=r"^/both/$"),
    route("websocket.receive", c.both_receive, path=r"^/both/$"),
    route("http.request", c.whoami, path=r"^/whoami/$"),
    route("websocket.connect", c.order_connect, path=r"^/order/$"),
    route("websocket.receive", c.order_receive, path=r"^/order/$"),
    route("websocket.disconnect", c.order_disconnect, path=r"^/order/$"),
]

"""Routing of tests/test_django_generic.py, mounted at /generic."""

from tapp import consumers_generic as c
from telex.django.routing import route, route_class

channel_routing = [
    route_class(c.Room, path=r"^/room/(?P<room>[a-z]+)/$"),
    c.Counter.as_route(attrs={"channel_session": True}, path=r"^/counter/$"),
    route_class(c.Who, path=r"^/who/$"),
    route_class(c.Demux, path=r"^/demux/$"),
    route("websocket.connect", c.deny, path=r"^/deny/$"),
    route("websocket.connect", c.origin_connect, path=r"^/origin/$"),
]

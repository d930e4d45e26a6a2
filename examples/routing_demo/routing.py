"""S7 Routing: filters on path and method, include with prefix stripping, named
groups as keyword arguments, dotted consumers and class-based consumers."""

from telex.routing import include, route, route_class

from . import consumers

chat_routing = [
    # Inside include(..., path=r"^/chat") this sees "/lobby/" for "/chat/lobby/".
    route_class(consumers.RoomConsumer, path=r"^/(?P<room>[a-z0-9-]+)/$"),
]

channel_routing = [
    route("http.request", consumers.poll_vote, path=r"^/poll/$", method=r"^POST$"),
    route("http.request", "examples.routing_demo.consumers.poll_form", path=r"^/poll/$"),
    route("http.request", consumers.article, path=r"^/articles/(?P<year>[0-9]{4})/$"),
    include(chat_routing, path=r"^/chat"),
    route_class(consumers.JsonEcho, path=r"^/json/$"),
]

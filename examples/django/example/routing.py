"""The project's channel routing (CHANNEL_LAYERS["default"]["ROUTING"]).

HTTP requests nobody routes here go to Django's views (example/urls.py).
"""

from chat.consumers import http_consumer, msg_consumer

from telex.django.routing import include, route

channel_routing = [
    route("http.request", http_consumer, path=r"^/hello/"),
    include("chat.routing.echo_routing", path=r"^/echo/$"),
    include("chat.routing.group_routing", path=r"^/everyone/$"),
    include("chat.routing.room_routing", path=r"^/chat"),
    include("chat.routing.count_routing", path=r"^/count/$"),
    # No socket behind it: chat_receive sends here, and any worker takes it (see README).
    route("chat-messages", msg_consumer),
]

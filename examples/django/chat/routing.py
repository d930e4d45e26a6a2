"""The chat app's routes; example/routing.py includes them under their paths."""

from telex.django.routing import route

from . import consumers

echo_routing = [
    route("websocket.receive", consumers.ws_echo),
]

group_routing = [
    route("websocket.connect", consumers.ws_add),
    route("websocket.receive", consumers.ws_message),
    route("websocket.disconnect", consumers.ws_disconnect),
]

# Included under ^/chat: the path these routes see is the rest, e.g. "/lobby/".
room_routing = [
    route("websocket.connect", consumers.chat_connect, path=r"^/(?P<room>[a-zA-Z0-9_]+)/$"),
    route("websocket.connect", consumers.chat_deny),
    route("websocket.receive", consumers.chat_receive),
    route("websocket.disconnect", consumers.chat_disconnect),
]

count_routing = [
    route("websocket.connect", consumers.count_connect),
    route("websocket.receive", consumers.count_receive),
]

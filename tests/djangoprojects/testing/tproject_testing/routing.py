from chat import consumers

from telex.django.routing import route

channel_routing = [
    route("websocket.connect", consumers.connect, path=r"^/chat/$"),
    route("websocket.receive", consumers.receive, path=r"^/chat/$"),
    route("websocket.receive", consumers.close_with_code, path=r"^/close/$"),
    route("websocket.receive", consumers.store_note, path=r"^/notes/$"),
    route("notes.add", consumers.add_note),
    route("ping", consumers.ping),
]

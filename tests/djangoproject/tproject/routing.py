"""Channel routing of the test project: one list per area of the tests, mounted by path."""

from tapp import consumers

from telex.django.routing import include, route

channel_routing = [
    route("websocket.receive", consumers.echo, path=r"^/echo/$"),
    include("tapp.routing_sessions.channel_routing", path=r"^/sessions"),
    include("tapp.routing_generic.channel_routing", path=r"^/generic"),
    include("tapp.routing_binding.channel_routing", path=r"^/binding"),
    include("tapp.routing_delay.channel_routing"),
]

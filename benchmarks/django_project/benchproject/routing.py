"""No consumers: on both Channels 1.x and telex.django an unrouted ``http.request`` goes to Django's views."""

channel_routing: list = []

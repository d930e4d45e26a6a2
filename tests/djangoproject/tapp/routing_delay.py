"""Routing of the delay tests (tests/test_django_delay.py)."""

from tapp import consumers_delay
from telex.django.routing import route

channel_routing = [route("delay.schedule", consumers_delay.schedule)]

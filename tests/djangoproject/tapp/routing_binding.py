"""Routing of tests/test_django_binding.py, mounted at /binding."""

from tapp import consumers_binding
from telex.django.routing import route_class

channel_routing = [route_class(consumers_binding.NotesDemux, path=r"^/notes/$")]

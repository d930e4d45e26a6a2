"""Testing Channels-style consumers: Channels 1.1.8's ``channels.test`` on Telex.

``ChannelTestCase`` / ``TransactionChannelTestCase`` swap the layers for
in-memory ones, ``Client`` / ``WSClient`` run consumers in the test,
``apply_routes`` replaces the routing, ``ChannelLiveServerTestCase`` runs a
real server and worker. See ``docs/django.md`` (testing).
"""

from .base import ChannelTestCase, Client, TransactionChannelTestCase, apply_routes
from .http import HttpClient
from .liveserver import ChannelLiveServerTestCase
from .websocket import WSClient

__all__ = [
    "ChannelLiveServerTestCase",
    "ChannelTestCase",
    "Client",
    "HttpClient",
    "TransactionChannelTestCase",
    "WSClient",
    "apply_routes",
]

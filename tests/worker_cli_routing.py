"""Routing lists and a layer for the ``telex worker`` process tests."""

from __future__ import annotations

import logging
import time

from telex.layers import InMemoryChannelLayer
from telex.routing import route

bad_regex = [route("http.request", "examples.hello_http.routing.http_consumer", path=r"^/(unclosed")]
bad_import = [route("http.request", "examples.missing_module.consumer")]


def slow(message):
    logging.getLogger("telex.worker").warning("slow consumer started")
    time.sleep(0.5)  # long enough for the test's SIGTERM to arrive while it runs
    logging.getLogger("telex.worker").warning("slow consumer finished")


slow_routing = [route("custom.slow", slow)]


def layer_with_slow_message() -> InMemoryChannelLayer:
    layer = InMemoryChannelLayer()
    layer.send("custom.slow", {})
    return layer

"""Routing and layer for the worker metrics tests (``tests/test_metrics.py``).

The layer is Redis at ``$METRICS_TEST_REDIS`` with room for one message on
``metrics-sink``, so a held send there waits (and retries) until the test
drains it.
"""

from __future__ import annotations

import os

from telex.layers import RedisChannelLayer
from telex.routing import route
from telex.worker import Channel, enforce_ordering, send_response


def layer() -> RedisChannelLayer:
    return RedisChannelLayer(
        hosts=[os.environ["METRICS_TEST_REDIS"]], prefix="metrics-test:", channel_capacity={"metrics-sink": 1}
    )


def hello(message):
    send_response(message, "hello\n")


def boom(message):
    raise RuntimeError("boom, for the exception counter")


def fill(message):
    Channel("metrics-sink").send({"from": "fill"})


@enforce_ordering
def ordered(message):
    pass


channel_routing = [
    route("http.request", boom, path=r"^/boom$"),
    route("http.request", hello),
    route("metrics-fill", fill),
    route("websocket.receive", ordered),
]

"""Test cases with an in-memory layer, a client that runs consumers in-process, and ``apply_routes``.

As in Channels 1.x, a ``ChannelTestCase`` swaps each alias of
``test_channel_aliases`` for a fresh in-memory layer with the same routing,
so what a test sends stays in the test; ``Client`` puts messages on it and
runs the routed consumer in the test's own thread, the way the worker runs
it: its sends are held until it returns, then flushed.
"""

from __future__ import annotations

import copy
import functools
import inspect
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import close_old_connections
from django.test.testcases import TestCase, TransactionTestCase

from ...layers import InMemoryChannelLayer
from ...layers.base import BaseChannelLayer
from ...worker.channels import ConsumerContext, enter_context
from .. import DEFAULT_CHANNEL_LAYER
from ..asgi import ChannelLayerWrapper, channel_layers
from ..channel import Group
from ..exceptions import ChannelSocketException
from ..message import Message
from ..routing import Router, include
from ..signals import CLOSE_CONNECTIONS_UIDS, consumer_finished, consumer_started

__all__ = ["ChannelTestCase", "ChannelTestCaseMixin", "Client", "TransactionChannelTestCase", "apply_routes"]

#: Seconds one blocking receive of a test layer may wait, so ``timeout=`` is kept to within it.
RECEIVE_STEP = 0.05

#: Django 5.1 made ``_pre_setup`` a classmethod (``TransactionTestCase`` runs it from ``setUpClass``).
PRE_SETUP_IS_CLASSMETHOD = isinstance(inspect.getattr_static(TransactionTestCase, "_pre_setup"), classmethod)

#: The receivers of ``telex.django.signals`` that close database connections.
_CONNECTION_RECEIVERS = tuple(zip((consumer_started, consumer_finished), CLOSE_CONNECTIONS_UIDS, strict=True))


def in_memory_layer() -> InMemoryChannelLayer:
    """A fresh in-memory layer whose blocking receives return quickly (for ``timeout=``)."""
    layer = InMemoryChannelLayer()
    layer.blocking_timeout = RECEIVE_STEP
    return layer


def receive(wrapper: Any, channel: str, timeout: float = 0) -> tuple[Any, Any]:
    """One message from ``channel``: what is there now, or the first to arrive within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = wrapper.receive([channel], block=False)
        if found[0] is not None or time.monotonic() >= deadline:
            return found
        # Wakes as soon as a message is sent (another thread's consumer).
        found = wrapper.receive([channel], block=True)
        if found[0] is not None:
            return found


def _routing_of(alias: str) -> Any:
    current = channel_layers.backends.get(alias)
    if current is not None:
        return current.routing
    config = channel_layers.configs.get(alias)
    if isinstance(config, dict) and "ROUTING" in config:
        return config["ROUTING"]
    return channel_layers[alias].routing  # raises the one-line InvalidChannelLayerError


class ChannelTestCaseMixin:
    """Swap the layers of ``test_channel_aliases`` for in-memory ones for each test."""

    #: The aliases to swap; name more to test a project with several layers.
    test_channel_aliases: Sequence[str] = [DEFAULT_CHANNEL_LAYER]

    #: The layers swapped out, put back after each test.
    _old_layers: dict[str, Any]

    if PRE_SETUP_IS_CLASSMETHOD:

        @classmethod
        def _pre_setup(cls) -> None:
            super()._pre_setup()  # type: ignore[misc]
            cls._swap_layers()

    else:

        def _pre_setup(self) -> None:  # type: ignore[misc]  # one of the two, chosen at import
            super()._pre_setup()  # type: ignore[misc]
            self._swap_layers()

    @classmethod
    def _swap_layers(cls) -> None:
        cls._old_layers = {
            alias: channel_layers.set(
                alias, ChannelLayerWrapper(in_memory_layer(), alias, _routing_of(alias))
            )
            for alias in cls.test_channel_aliases
        }

    def _post_teardown(self) -> None:
        for alias, old in type(self)._old_layers.items():
            channel_layers.set(alias, old)
        del type(self)._old_layers
        super()._post_teardown()  # type: ignore[misc]

    def get_next_message(
        self, channel: str, alias: str = DEFAULT_CHANNEL_LAYER, require: bool = False, timeout: float = 0
    ) -> Message | None:
        """The next message sent to ``channel`` in this test, or None.

        ``timeout`` waits up to that many seconds for one (a consumer on
        another thread); ``require`` fails the test when there is none.
        """
        wrapper = channel_layers[alias]
        name, content = receive(wrapper, channel, timeout)
        if name is None:
            if require:
                self.fail(f"Expected a message on channel {channel}, got none")  # type: ignore[attr-defined]
            return None
        return Message(content, name, wrapper.channel_layer)


class ChannelTestCase(ChannelTestCaseMixin, TestCase):
    """Django's ``TestCase`` (a transaction per test) with in-memory channel layers."""


class TransactionChannelTestCase(ChannelTestCaseMixin, TransactionTestCase):
    """Django's ``TransactionTestCase`` (tables flushed after each test) with in-memory channel layers."""


@contextmanager
def _connections_kept() -> Iterator[None]:
    # As Django's test client does around a request: closing the connection
    # would end the test's transaction.
    for signal, uid in _CONNECTION_RECEIVERS:
        signal.disconnect(dispatch_uid=uid)
    try:
        yield
    finally:
        for signal, uid in _CONNECTION_RECEIVERS:
            signal.connect(close_old_connections, dispatch_uid=uid)


def run_consumer(consumer: Callable[..., Any], message: Message, kwargs: dict[str, Any]) -> Any:
    """Run one consumer as the worker does, in this thread; its exceptions reach the test.

    Sends it makes are held until it returns, then sent; a consumer that
    raises has them dropped, as in the worker. A ``ChannelSocketException``
    runs its ``run(message)``, as Channels 1.x's client did.
    """
    reply_channel = message.content.get("reply_channel")
    context = ConsumerContext(
        message.channel_layer, reply_channel if isinstance(reply_channel, str) else None
    )
    with _connections_kept():
        previous = enter_context(context)
        consumer_started.send(sender=Client, environ={})
        try:
            try:
                result = consumer(message, **kwargs)
            except ChannelSocketException as exc:
                result = None
                exc.run(message)
        except BaseException:
            context.outbox.clear()
            raise
        finally:
            enter_context(previous)
            context.flush()
            consumer_finished.send(sender=Client)
    return result


class Client:
    """Send messages with a reply channel of its own and run their consumers in the test.

    ``send(channel, content)`` puts a message on the (test) layer,
    ``consume(channel)`` runs the consumer routed for the next message on
    it, ``receive()`` is the next reply.
    """

    #: What the reply channel's name begins with; the rest is random.
    reply_channel_prefix = "test.reply?"

    def __init__(self, alias: str = DEFAULT_CHANNEL_LAYER) -> None:
        self.alias = alias
        self.reply_channel = self.reply_channel_prefix + BaseChannelLayer.random_suffix()

    @property
    def channel_layer(self) -> ChannelLayerWrapper:
        return channel_layers[self.alias]

    def get_next_message(self, channel: str, timeout: float = 0) -> Message | None:
        name, content = receive(self.channel_layer, channel, timeout)
        if name is None:
            return None
        return Message(content, name, self.channel_layer.channel_layer)

    def get_consumer_by_channel(self, channel: str) -> Callable[..., Any] | None:
        found = self.channel_layer.router.match(channel, {"text": ""})
        return None if found is None else found[0]

    def send(self, to: str, content: dict | None = None) -> None:
        """Send a copy of ``content`` to ``to``, with this client's reply channel."""
        content = copy.deepcopy(content or {})
        content.setdefault("reply_channel", self.reply_channel)
        self.channel_layer.send(to, content)

    def consume(self, channel: str, fail_on_none: bool = True) -> Any:
        """Run the consumer routed for the next message on ``channel``; its return value."""
        message = self.get_next_message(channel)
        if message is None:
            if fail_on_none:
                raise AssertionError(f"No message for channel {channel}")
            return None
        found = self.channel_layer.router.match(channel, message.content)
        if found is None:
            if fail_on_none:
                raise AssertionError(f"Can't find consumer for message {message}")
            return None
        consumer, kwargs, _ = found
        return run_consumer(consumer, message, kwargs)

    def send_and_consume(self, channel: str, content: dict | None = None, fail_on_none: bool = True) -> Any:
        self.send(channel, content)
        return self.consume(channel, fail_on_none=fail_on_none)

    def receive(self, timeout: float = 0) -> dict | None:
        """The content of the next message on the reply channel, or None."""
        message = self.get_next_message(self.reply_channel, timeout)
        return None if message is None else message.content

    def join_group(self, group_name: str) -> None:
        Group(group_name, alias=self.alias).add(self.reply_channel)


class apply_routes:
    """Replace the routing of ``aliases`` inside a ``with`` block, a test or a test class.

    ``routes`` is a route, a routing list, or a list of routing lists (each
    included as is).
    """

    def __init__(self, routes: Any, aliases: Sequence[str] = (DEFAULT_CHANNEL_LAYER,)) -> None:
        self.routes = routes
        self.aliases = list(aliases)
        self._old_routing: list[dict[str, tuple[Any, Router]]] = []

    def _routing(self) -> list[Any]:
        if isinstance(self.routes, list | tuple):
            if self.routes and isinstance(self.routes[0], list | tuple):
                return [include(routes) for routes in self.routes]
            return list(self.routes)
        return [self.routes]

    def enter(self) -> None:
        routing = self._routing()
        router = Router(routing)
        old = {}
        for alias in self.aliases:
            wrapper = channel_layers[alias]
            old[alias] = (wrapper.routing, wrapper.router)
            wrapper.routing, wrapper.router = routing, router
        self._old_routing.append(old)

    def exit(self, *exc: object) -> None:
        for alias, (routing, router) in self._old_routing.pop().items():
            wrapper = channel_layers[alias]
            wrapper.routing, wrapper.router = routing, router

    __enter__ = enter
    __exit__ = exit

    def __call__(self, test: Any) -> Any:
        if isinstance(test, type):
            setup, teardown = test.setUp, test.tearDown  # type: ignore[attr-defined]

            def new_setup(this: Any) -> None:
                self.enter()
                setup(this)

            def new_teardown(this: Any) -> None:
                try:
                    teardown(this)
                finally:
                    self.exit()

            test.setUp, test.tearDown = new_setup, new_teardown  # type: ignore[attr-defined]
            return test

        @functools.wraps(test)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with self:
                return test(*args, **kwargs)

        return inner

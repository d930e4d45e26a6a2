"""``ChannelLiveServerTestCase``: a real Telex server and worker on a loopback port, for each test.

Channels 1.x forked a Daphne process and a worker process on the layer's
``TEST_CONFIG``. Here both run in the test process, on threads: Telex's
server on a reactor thread (started once per process, as a reactor cannot be
restarted) and a ``DjangoWorker``, on a fresh in-memory layer with the
alias's routing. So no Redis is needed, the worker sees the test database,
and the test's own ``Channel``/``Group`` sends reach the live consumers.
"""

from __future__ import annotations

import threading
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test.testcases import TransactionTestCase

from .. import DEFAULT_CHANNEL_LAYER
from ..asgi import ChannelLayerWrapper, channel_layers
from .base import PRE_SETUP_IS_CLASSMETHOD, _routing_of, in_memory_layer

__all__ = ["ChannelLiveServerTestCase"]

#: Seconds to wait for the reactor thread and for the server to listen.
START_TIMEOUT = 10.0

_reactor_lock = threading.Lock()
_reactor_thread: threading.Thread | None = None


def _running_reactor() -> Any:
    """Twisted's reactor, running on a daemon thread of its own (started on first use)."""
    global _reactor_thread
    with _reactor_lock:
        from ...server.reactor import ReactorAlreadyInstalled, install_reactor

        try:
            install_reactor()
        except ReactorAlreadyInstalled as exc:
            raise ImproperlyConfigured(f"ChannelLiveServerTestCase: {exc}") from None
        from twisted.internet import reactor

        if _reactor_thread is None:
            running = threading.Event()
            reactor.callWhenRunning(running.set)
            _reactor_thread = threading.Thread(
                target=reactor.run, kwargs={"installSignalHandlers": False}, name="telex-reactor", daemon=True
            )
            _reactor_thread.start()
            if not running.wait(START_TIMEOUT):
                raise RuntimeError("the Twisted reactor did not start")
    return reactor


class ChannelLiveServerTestCase(TransactionTestCase):
    """Django's ``TransactionTestCase`` plus a live Telex server and worker.

    ``live_server_url`` / ``live_server_ws_url`` are its addresses, for
    Selenium, a browser or a WebSocket client. ``worker_threads`` consumer
    threads run the routing of ``CHANNEL_LAYERS["default"]``; with
    ``serve_static`` (and ``django.contrib.staticfiles`` installed)
    ``/static/`` is served as by ``runserver``.
    """

    host = "127.0.0.1"
    worker_threads = 1
    serve_static = True

    @property
    def live_server_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def live_server_ws_url(self) -> str:
        return f"ws://{self.host}:{self._port}"

    if PRE_SETUP_IS_CLASSMETHOD:

        @classmethod
        def _pre_setup(cls) -> None:
            cls._check_setup()
            super()._pre_setup()
            cls._start()

    else:

        def _pre_setup(self) -> None:  # type: ignore[misc]  # one of the two, chosen at import
            self._check_setup()
            super()._pre_setup()
            self._start()

    @classmethod
    def _check_setup(cls) -> None:
        for connection in connections.all():
            if connection.vendor == "sqlite" and connection.is_in_memory_db():
                raise ImproperlyConfigured(
                    "ChannelLiveServerTestCase can not be used with in memory databases: "
                    "set DATABASES[...]['TEST']['NAME'] to a file"
                )
        if len(channel_layers.configs) > 1:
            raise ImproperlyConfigured(
                "ChannelLiveServerTestCase does not support multiple CHANNEL_LAYERS at this time"
            )

    @classmethod
    def _start(cls) -> None:
        wrapper = ChannelLayerWrapper(
            in_memory_layer(), DEFAULT_CHANNEL_LAYER, _routing_of(DEFAULT_CHANNEL_LAYER)
        )
        cls._old_layer = channel_layers.set(DEFAULT_CHANNEL_LAYER, wrapper)
        try:
            cls._worker = cls._make_worker(wrapper)
            cls._worker.start()
            cls._server = cls._start_server(wrapper.channel_layer)
        except BaseException:
            cls._stop()
            raise

    def _post_teardown(self) -> None:
        type(self)._stop()
        super()._post_teardown()

    @classmethod
    def _make_worker(cls, wrapper: ChannelLayerWrapper) -> Any:
        from ..management import CommandWorker
        from ..staticfiles import StaticFilesConsumer

        static = cls.serve_static and apps.is_installed("django.contrib.staticfiles")
        return CommandWorker(
            wrapper, threads=cls.worker_threads, http_consumer=StaticFilesConsumer() if static else None
        )

    @classmethod
    def _start_server(cls, layer: Any) -> Any:
        reactor = _running_reactor()  # before the server's modules import the default reactor
        from twisted.internet.threads import blockingCallFromThread

        from ...server.run import attach_websocket
        from ...server.server import Server
        from ...server.settings import ServerSettings

        server = Server(ServerSettings(endpoints=[f"tcp:0:interface={cls.host}"]), layer)
        attach_websocket(server)
        blockingCallFromThread(reactor, server.start)
        cls._port = server.ports[0].getHost().port
        return server

    @classmethod
    def _stop(cls) -> None:
        server = getattr(cls, "_server", None)
        if server is not None:
            from twisted.internet.threads import blockingCallFromThread

            def stop() -> Any:
                if server.websocket is not None:
                    server.websocket.close_all(1001)
                return server.stop_listening().addBoth(lambda _: server.stop())

            blockingCallFromThread(_running_reactor(), stop)
            cls._server = None
        worker = getattr(cls, "_worker", None)
        if worker is not None:
            worker.stop()
            cls._worker = None
        if "_old_layer" in cls.__dict__:
            channel_layers.set(DEFAULT_CHANNEL_LAYER, cls._old_layer)
            del cls._old_layer

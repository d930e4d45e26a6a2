"""telex.django's core: CHANNEL_LAYERS as Channels 1.x read it, Channel/Group/Message, the worker's rules."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("django")

from tests.django_setup import setup_django

setup_django()

from django.test import override_settings  # noqa: E402

from telex.django import Channel, Group, channel_layers, route  # noqa: E402
from telex.django.asgi import ChannelLayerManager, InvalidChannelLayerError  # noqa: E402
from telex.django.exceptions import ConsumeLater, DenyConnection, WebsocketCloseException  # noqa: E402
from telex.django.routing import Router  # noqa: E402
from telex.django.signals import consumer_finished, consumer_started  # noqa: E402
from telex.django.worker import DjangoWorker  # noqa: E402
from telex.layers import InMemoryChannelLayer  # noqa: E402
from tests.worker_harness import FakeSocket  # noqa: E402

ROUTING = "tproject.routing.channel_routing"


def layer_for(config: dict) -> object:
    with override_settings(CHANNEL_LAYERS={"default": {**config, "ROUTING": ROUTING}}):
        return ChannelLayerManager()["default"].channel_layer


def error_for(layers: object) -> str:
    with override_settings(CHANNEL_LAYERS=layers), pytest.raises(InvalidChannelLayerError) as raised:
        ChannelLayerManager()["default"]
    return str(raised.value)


# -- CHANNEL_LAYERS -----------------------------------------------------------


def test_old_in_memory_backend_name_selects_telex_in_memory_layer_with_its_config():
    layer = layer_for({"BACKEND": "asgiref.inmemory.ChannelLayer", "CONFIG": {"capacity": 7, "expiry": 30}})
    assert isinstance(layer, InMemoryChannelLayer)
    assert layer.capacity == 7 and layer.expiry == 30


@pytest.mark.parametrize(
    "backend",
    ["asgi_redis.RedisChannelLayer", "asgi_redis.RedisLocalChannelLayer", "telex.layers.RedisChannelLayer"],
)
def test_old_redis_backend_names_select_telex_redis_layer_with_the_same_config_keys(backend):
    pytest.importorskip("redis")
    from telex.layers.redis import RedisChannelLayer

    config = {
        "hosts": [("127.0.0.1", 6390), "redis://127.0.0.1:6391/2"],
        "prefix": "site:",
        "capacity": 50,
        "channel_capacity": {"http.request": 200},
        "group_expiry": 600,
        "expiry": 30,
        "symmetric_encryption_keys": ["k" * 32],
        "stats_prefix": "asgi-meta:",
    }
    layer = layer_for({"BACKEND": backend, "CONFIG": config})
    assert isinstance(layer, RedisChannelLayer)
    assert layer.hosts == ["127.0.0.1:6390/0", "127.0.0.1:6391/2"]
    assert layer.prefix == "site:" and layer.capacity == 50 and layer.group_expiry == 600


def test_old_sentinel_backend_makes_one_shard_per_service():
    pytest.importorskip("redis")
    layer = layer_for(
        {
            "BACKEND": "asgi_redis.RedisSentinelChannelLayer",
            "CONFIG": {"hosts": [("127.0.0.1", 26379)], "services": ["alpha", "beta"]},
        }
    )
    assert layer.hosts == ["sentinel:alpha/0", "sentinel:beta/0"]


def test_no_channel_layers_setting_means_in_memory_and_django_views_only():
    with override_settings():
        from django.conf import settings

        del settings.CHANNEL_LAYERS
        wrapper = ChannelLayerManager()["default"]
    assert isinstance(wrapper.channel_layer, InMemoryChannelLayer)
    assert wrapper.router.channels == []


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        ("redis", "CHANNEL_LAYERS must be a dict of aliases, not str"),
        ({"other": {}}, "CHANNEL_LAYERS has no alias 'default' (it has 'other')"),
        ({"default": {"ROUTING": []}}, "CHANNEL_LAYERS['default'] has no BACKEND"),
        (
            {"default": {"BACKEND": "asgiref.inmemory.ChannelLayer"}},
            "CHANNEL_LAYERS['default'] has no ROUTING",
        ),
        (
            {"default": {"BACKEND": "nowhere.Layer", "ROUTING": []}},
            "CHANNEL_LAYERS['default']: cannot import BACKEND 'nowhere.Layer'",
        ),
        (
            {
                "default": {
                    "BACKEND": "asgiref.inmemory.ChannelLayer",
                    "CONFIG": {"nonsense": 1},
                    "ROUTING": [],
                }
            },
            "CHANNEL_LAYERS['default']: BACKEND 'asgiref.inmemory.ChannelLayer' refused CONFIG",
        ),
        (
            {"default": {"BACKEND": "asgiref.inmemory.ChannelLayer", "ROUTING": "tproject.nowhere.routing"}},
            "CHANNEL_LAYERS['default']['ROUTING']",
        ),
    ],
)
def test_a_misconfigured_channel_layers_is_one_error_naming_the_setting(layers, expected):
    message = error_for(layers)
    assert expected in message
    assert "\n" not in message


def test_test_config_builds_a_second_layer():
    manager = ChannelLayerManager()
    config = {"BACKEND": "asgiref.inmemory.ChannelLayer", "TEST_CONFIG": {"capacity": 3}, "ROUTING": []}
    with override_settings(CHANNEL_LAYERS={"default": config}):
        assert manager.make_test_backend("default").channel_layer.capacity == 3
    with override_settings(CHANNEL_LAYERS={"default": {**config, "TEST_CONFIG": None}}):
        manager.make_test_backend("default")  # None is an empty config
    with override_settings(CHANNEL_LAYERS={"default": {"BACKEND": config["BACKEND"], "ROUTING": []}}):
        with pytest.raises(InvalidChannelLayerError, match="has no TEST_CONFIG"):
            manager.make_test_backend("default")


def test_asgi_module_gives_the_raw_layer_for_telex_serve(monkeypatch):
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)  # asgi.py sets it, as a project's does
    from tproject import asgi

    assert asgi.channel_layer is channel_layers["default"].channel_layer


# -- Channel, Group, Message, routing ------------------------------------------


def test_channel_and_group_take_bytes_names_and_an_alias_and_send_outside_a_consumer_at_once():
    layer = channel_layers["default"].channel_layer
    Channel(b"core.bytes").send({"n": 1})
    assert layer.receive(["core.bytes"]) == ("core.bytes", {"n": 1})
    Group("core-group", alias="default").add(Channel("core.member"))
    Group(b"core-group").send({"n": 2})
    assert layer.receive(["core.member"]) == ("core.member", {"n": 2})
    with pytest.raises(TypeError):
        Channel("core.bytes").send(["not", "a", "dict"])


def test_router_matches_a_channels_1x_message_with_include_and_named_groups():
    from telex.django.message import Message
    from telex.django.routing import include

    def consumer(message, **kwargs):
        pass

    router = Router(
        [include([route("websocket.receive", consumer, path=r"^/(?P<room>\w+)/$")], path=r"^/chat")]
    )
    message = Message(
        {"path": "/chat/lobby/", "reply_channel": "websocket.send.x!y"}, "websocket.receive", None
    )
    assert router.match(message) == (consumer, {"room": "lobby"}, f"{__name__}.{consumer.__qualname__}")
    assert message.channel.name == "websocket.receive" and message.reply_channel.name == "websocket.send.x!y"
    copy = message.copy()
    copy["path"] = "/elsewhere/"
    assert message["path"] == "/chat/lobby/"


# -- the worker ----------------------------------------------------------------


def run_worker(routing, **options):
    layer = InMemoryChannelLayer()
    worker = DjangoWorker(layer, routing, threads=1, **options)
    worker.start()
    return layer, worker


def test_deny_connection_rejects_the_handshake():
    def connect(message):
        raise DenyConnection

    layer, worker = run_worker([route("websocket.connect", connect)])
    try:
        assert FakeSocket(layer).connect() == {"close": True}
    finally:
        worker.stop()


def test_websocket_close_exception_closes_with_its_code():
    def receive(message):
        raise WebsocketCloseException(4001)

    layer, worker = run_worker([route("websocket.receive", receive)])
    try:
        socket = FakeSocket(layer)
        assert socket.connect() == {"accept": True}
        socket.send_text("hi")
        assert socket.receive() == {"close": 4001}
    finally:
        worker.stop()
    with pytest.raises(ValueError, match="invalid close code"):
        WebsocketCloseException(1001)


def test_consume_later_requeues_until_the_retry_limit_then_drops():
    seen = []
    done = threading.Event()

    def later(message):
        seen.append(message.content.get("__retries__", 0))
        if len(seen) == 3:
            done.set()
        raise ConsumeLater

    layer, worker = run_worker([route("core.later", later)], message_retries=2)
    try:
        layer.send("core.later", {"n": 1})
        assert done.wait(5)
    finally:
        worker.stop()
    assert seen == [0, 1, 2]


def test_sends_in_a_consumer_are_held_and_signals_bracket_it():
    events = []

    def started(sender, **kwargs):
        events.append(("started", kwargs.get("environ")))

    def finished(sender, **kwargs):
        events.append(("finished",))

    def consumer(message):
        message.reply_channel.send({"text": "one"})
        prefix = message.reply_channel.name.split("!")[0] + "!"
        events.append(("sent", layer.receive([prefix])))
        Group("g").send({"text": "group"})

    consumer_started.connect(started)
    consumer_finished.connect(finished)
    layer, worker = run_worker([route("websocket.receive", consumer)])
    try:
        socket = FakeSocket(layer)
        assert socket.connect() == {"accept": True}
        socket.send_text("x")
        assert socket.receive() == {"text": "one"}
    finally:
        worker.stop()
        consumer_started.disconnect(started)
        consumer_finished.disconnect(finished)
    assert ("sent", (None, None)) in events  # nothing went out while the consumer ran
    assert events[-1] == ("finished",) and ("started", {}) in events


def test_unrouted_websocket_frames_are_consumed_and_requests_reach_django():
    _layer, worker = run_worker([])
    try:
        assert {"websocket.receive", "websocket.disconnect", "http.request"} <= set(worker.channels)
    finally:
        worker.stop()


def test_worker_takes_an_alias_and_its_routing():
    worker = DjangoWorker("default")
    assert "websocket.receive" in worker.channels
    assert worker.channel_layer is channel_layers["default"].channel_layer


def test_pip_check_is_clean_with_django_and_nothing_of_channels_1_is_installed_or_imported():
    import subprocess
    import sys
    from importlib import metadata

    result = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    installed = {dist.metadata["Name"].lower() for dist in metadata.distributions()}
    assert not installed & {"daphne", "asgi-redis", "asgi_redis"}
    # The test extra holds Channels 4 for telex.channels4 (never Channels 1.x); telex.django
    # must not touch it: importing all of it loads no ``channels`` module.
    if "channels" in installed:
        assert int(metadata.version("channels").split(".")[0]) >= 4
    probe = (
        "import pkgutil, importlib, sys, telex.django as d\n"
        "import django; from django.conf import settings\n"
        "apps = [f'django.contrib.{a}' for a in ('auth', 'contenttypes', 'sessions')]\n"
        "settings.configure(INSTALLED_APPS=[*apps, 'telex.django', 'telex.django.delay'])\n"
        "django.setup()\n"
        "for m in pkgutil.walk_packages(d.__path__, 'telex.django.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n == 'channels' or n.startswith('channels.')))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
    assert int(metadata.version("django").split(".")[0]) >= 4


def test_channels_1x_worker_runs_until_stopped_and_calls_its_callback():
    from telex.django.worker import Worker, WorkerGroup

    seen = []
    ran = threading.Event()

    def consumer(message):
        ran.set()

    from telex.django.asgi import ChannelLayerWrapper

    layer = InMemoryChannelLayer()
    wrapper = ChannelLayerWrapper(layer, "test", [route("core.run", consumer)])
    worker = Worker(wrapper, callback=lambda name, message: seen.append(name), signal_handlers=False)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        layer.send("websocket.receive", {"reply_channel": "websocket.send.a!b", "path": "/", "order": 1})
        assert FakeSocket(layer).connect() == {"accept": True}
    finally:
        worker.stop()
        runner.join(10)
    assert not runner.is_alive() and "websocket.connect" in seen
    assert WorkerGroup(wrapper, signal_handlers=False).threads >= 1

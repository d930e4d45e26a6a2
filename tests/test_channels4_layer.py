"""``telex.channels4``: Channels 4's layer API on Telex's layers, against a real redis-server.

The Channels side runs in child processes (a Channels 4 consumer under
``channels.testing``, another process sending), so this process's Django
settings stay those of the other tests.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("channels")
redis = pytest.importorskip("redis")

from channels.exceptions import ChannelFull  # noqa: E402

from telex.channels4 import RedisChannelLayer, TelexChannelLayer  # noqa: E402
from telex.layers.memory import InMemoryChannelLayer  # noqa: E402


@pytest.fixture
def layer(redis_server):
    made = RedisChannelLayer(hosts=[{"address": redis_server.url}], prefix="c4test:", capacity=5)
    asyncio.run(made.flush())
    yield made
    made.layer.close()


def run_child(source: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_normal_channels_send_receive_and_refuse_when_full(layer):
    async def scenario():
        await layer.send("jobs", {"type": "job", "n": 1})
        assert await layer.receive("jobs") == {"type": "job", "n": 1}
        for n in range(5):
            await layer.send("jobs", {"type": "job", "n": n})
        with pytest.raises(ChannelFull):
            await layer.send("jobs", {"type": "job", "n": 5})
        assert [(await layer.receive("jobs"))["n"] for _ in range(5)] == [0, 1, 2, 3, 4]
        await layer.close()

    asyncio.run(scenario())


def test_process_specific_channels_are_received_by_the_process_that_made_them(layer, redis_server):
    async def scenario():
        mine = [await layer.new_channel() for _ in range(3)]
        assert all(name.startswith(f"specific.{layer.client_prefix}!") for name in mine)
        # Another process sends to each, out of order; each receive gets its own.
        run_child(
            f"""
            import asyncio
            from telex.channels4 import RedisChannelLayer
            other = RedisChannelLayer(hosts=[{redis_server.url!r}], prefix="c4test:")
            async def main():
                for name in {list(reversed(mine))!r}:
                    await other.send(name, {{"type": "hello", "to": name}})
            asyncio.run(main())
            """
        )
        got = await asyncio.gather(*(layer.receive(name) for name in mine))
        assert [message["to"] for message in got] == mine
        with pytest.raises(ValueError, match="not made by this process"):
            await layer.receive("specific.someoneelse!x")
        await layer.close()

    asyncio.run(scenario())


def test_a_cancelled_receive_loses_nothing(layer):
    async def scenario():
        name = await layer.new_channel()
        waiting = asyncio.ensure_future(layer.receive(name))
        await asyncio.sleep(0.05)  # let its reader block in Redis
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await layer.send(name, {"type": "late"})
        assert await asyncio.wait_for(layer.receive(name), 10) == {"type": "late"}
        await layer.close()

    asyncio.run(scenario())


def test_a_group_send_to_members_of_one_process_writes_one_entry(layer, redis_server):
    stats = redis.Redis.from_url(redis_server.url)

    async def scenario():
        members = [await layer.new_channel() for _ in range(200)]
        for name in members:
            await layer.group_add("room", name)
        await layer.group_discard("room", members[0])
        stats.config_resetstat()
        await layer.group_send("room", {"type": "chat.message", "text": "hi"})
        pushes = stats.info("commandstats").get("cmdstat_rpush", {}).get("calls", 0)
        got = await asyncio.wait_for(asyncio.gather(*(layer.receive(name) for name in members[1:])), 20)
        assert all(message == {"type": "chat.message", "text": "hi"} for message in got)
        assert members[0] not in layer.layer.group_channels("room")
        await layer.close()
        return pushes

    assert asyncio.run(scenario()) == 1


def test_sends_from_async_to_sync_use_the_thread_pool_and_arrive(layer):
    from asgiref.sync import async_to_sync

    async def make() -> str:
        return await layer.new_channel()

    async def receive(name: str) -> dict:
        try:
            return await asyncio.wait_for(layer.receive(name), 10)
        finally:
            await layer.close()

    name = asyncio.run(make())
    for n in range(3):  # each call runs on a loop of its own
        async_to_sync(layer.send)(name, {"type": "from.view", "n": n})
    assert asyncio.run(receive(name)) == {"type": "from.view", "n": 0}


def test_the_in_memory_layer_can_back_channels_in_one_process():
    adapter = TelexChannelLayer(InMemoryChannelLayer())

    async def scenario():
        name = await adapter.new_channel()
        await adapter.group_add("g", name)
        await adapter.group_send("g", {"type": "x"})
        assert await asyncio.wait_for(adapter.receive(name), 5) == {"type": "x"}
        await adapter.close()

    asyncio.run(scenario())


CHAT = """
import asyncio, json, sys
import django
from django.conf import settings
settings.configure(
    CHANNEL_LAYERS={"default": {"BACKEND": "telex.channels4.RedisChannelLayer",
                                "CONFIG": {"hosts": [sys.argv[1]], "prefix": "c4chat:"}}},
    INSTALLED_APPS=["channels"],
)
django.setup()
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from asgiref.testing import ApplicationCommunicator  # channels.testing needs Daphne

class Chat(AsyncJsonWebsocketConsumer):
    async def connect(self):
        await self.channel_layer.group_add("room", self.channel_name)
        await self.accept()
    async def disconnect(self, code):
        await self.channel_layer.group_discard("room", self.channel_name)
    async def receive_json(self, content):
        await self.channel_layer.group_send("room", {"type": "chat.message", "text": content["text"]})
    async def chat_message(self, event):
        await self.send_json({"text": event["text"]})

async def main():
    app = Chat.as_asgi()
    scope = {"type": "websocket", "path": "/chat/", "headers": [], "subprotocols": []}
    people = [ApplicationCommunicator(app, dict(scope)) for _ in range(5)]
    for person in people:
        await person.send_input({"type": "websocket.connect"})
        assert (await person.receive_output(10))["type"] == "websocket.accept"
    await people[0].send_input({"type": "websocket.receive", "text": json.dumps({"text": "hello"})})
    got = [json.loads((await person.receive_output(10))["text"]) for person in people]
    for person in people:
        await person.send_input({"type": "websocket.disconnect", "code": 1000})
        await person.wait(10)
    print(json.dumps(got))

asyncio.run(main())
"""


def test_a_channels_4_chat_consumer_broadcasts_through_telex_on_redis(redis_server):
    done = subprocess.run(
        [sys.executable, "-c", CHAT, redis_server.url],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"text": "hello"}] * 5

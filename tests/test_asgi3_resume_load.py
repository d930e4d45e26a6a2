"""A deploy that drops nothing: 1,000 chat sockets while both workers are restarted.

A Channels 4 chat (Django, auth middleware, groups) under two ``telex worker
--asgi`` processes behind one ``telex serve`` on Redis. 1,000 sockets in rooms
of 10 each send one message a second for 60 s; at 20 s and at 40 s a new worker
starts and an old one gets SIGTERM. Counted by the client: every message reaches
every socket of its room, in the order each sender sent them, and no socket
sees a close.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.processes import TelexProcess, TelexServer
from tests.support.ws import ws_url

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CHAT = "tests.apps.asgi3_channels4:application"
SOCKETS = 1000
ROOM = 10
SECONDS = 60
#: Seconds between two messages of one socket.
INTERVAL = 4.0
MESSAGES = int(SECONDS / INTERVAL)
RESTARTS = (20, 40)
#: After the last send, how long every socket may take to get the rest.
DRAIN_TIMEOUT = 60.0


class Tally:
    def __init__(self) -> None:
        self.received = 0
        self.closes: list[str] = []
        self.out_of_order: list[str] = []


async def member(url: str, index: int, room: Room, tally: Tally) -> None:
    async with room.connecting:
        ws = await connect(url, open_timeout=60, ping_interval=None, max_queue=None)
        json.loads(await ws.recv())  # the greeting
    last: dict[int, int] = {}
    expected = ROOM * MESSAGES

    async def receive() -> None:
        got = 0
        try:
            while got < expected:
                message = json.loads(await ws.recv())
                sender, n = message["s"], message["n"]
                if n != last.get(sender, -1) + 1:
                    tally.out_of_order.append(f"socket {index}: {n} from {sender} after {last.get(sender)}")
                last[sender] = n
                got += 1
                tally.received += 1
        except ConnectionClosed as exc:
            tally.closes.append(f"socket {index}: {exc}")

    reader = asyncio.ensure_future(receive())
    try:
        room.connected += 1
        if room.connected == SOCKETS:
            room.start.set()
        await room.start.wait()
        await asyncio.sleep(random.Random(index).random() * INTERVAL)  # spread the sends over each second
        began = time.monotonic()
        for n in range(MESSAGES):
            try:
                await ws.send(json.dumps({"s": index, "n": n}))
            except ConnectionClosed:
                break  # counted by the reader
            await asyncio.sleep(max(0.0, began + (n + 1) * INTERVAL - time.monotonic()))
        await asyncio.wait({reader}, timeout=DRAIN_TIMEOUT)
    finally:
        reader.cancel()
        await ws.close()


class Room:
    def __init__(self) -> None:
        self.connecting = asyncio.Semaphore(50)
        self.connected = 0
        self.start = asyncio.Event()


async def chat_under_restarts(server: TelexServer, spawn, workers: list[TelexProcess]) -> Tally:
    tally, room = Tally(), Room()
    members = [
        asyncio.ensure_future(member(ws_url(server, f"/chat/room{index // ROOM}/"), index, room, tally))
        for index in range(SOCKETS)
    ]
    await asyncio.wait_for(room.start.wait(), 120)
    began = time.monotonic()
    for at in RESTARTS:
        await asyncio.sleep(max(0.0, began + at - time.monotonic()))
        fresh = await asyncio.to_thread(spawn)
        old = workers.pop(0)
        workers.append(fresh)
        old.signal(signal.SIGTERM)
        assert await asyncio.to_thread(old.wait, 60) == 0, old.output[-3000:]
    await asyncio.gather(*members)
    return tally


def test_a_thousand_chat_sockets_lose_nothing_across_two_worker_restarts(redis_server):
    pytest.importorskip("channels")
    url = redis_server.url + "?prefix=resumeload"
    env = {"CHAT_LAYER": redis_server.url, "CHAT_PREFIX": "resumeload"}

    def spawn() -> TelexProcess:
        return TelexProcess(["worker", "--asgi", CHAT, "--layer", url], ready="listening on", env=env).start(
            60
        )

    with TelexServer(url) as server:
        workers = [spawn(), spawn()]
        try:
            tally = asyncio.run(chat_under_restarts(server, spawn, workers))
        finally:
            for worker in workers:
                worker.stop()
    problems = "\n".join(line for line in server.output.splitlines() if "WARNING" in line or "ERROR" in line)
    assert tally.closes == [], problems[:5000]
    assert tally.out_of_order == [], problems[:5000]
    assert tally.received == SOCKETS * ROOM * MESSAGES, problems[:5000]
    assert server.output.count("resumed WebSocket") > 0

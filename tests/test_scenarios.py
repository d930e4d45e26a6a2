"""S1-S9 of SCENARIOS.md end to end: the projects in examples/, real server
and worker processes, real HTTP and WebSocket clients on loopback.

Every scenario runs in both deployments a user has:

* ``embedded`` - ``telex serve --routing examples.<name>.routing:channel_routing``
  (the in-memory layer, consumer threads inside the server);
* ``production`` - ``telex serve redis://...`` with no consumers of its own
  plus separate ``telex worker ROUTING --layer redis://...`` processes, on the
  session's redis-server with a prefix of the deployment's own.

A deployment is shared by the tests of one scenario (module scope); tests that
kill or freeze workers start their own.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator, Sequence

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.support.http import request
from tests.support.processes import TelexProcess, TelexServer
from tests.support.ws import RawClient, frame, handshake_request

MODES = ["embedded", pytest.param("production", marks=pytest.mark.redis)]

#: Lines that mean a consumer or the server failed; no scenario may log one.
FAILURE = re.compile(r"Traceback|raised on channel| ERROR ")


class Deployment:
    """One server and, in production mode, its worker processes."""

    def __init__(self, server: TelexServer, workers: list[TelexProcess], url: str | None) -> None:
        self.server = server
        self.workers = workers
        self.layer_url = url

    def ws(self, path: str = "/", **kwargs) -> ClientConnection:
        return connect(f"ws://127.0.0.1:{self.server.port}{path}", open_timeout=10, **kwargs)

    def worker(self, routing: str, *extra: str) -> TelexProcess:
        """A further ``telex worker`` on this deployment's layer, not started."""
        assert self.layer_url is not None, "workers exist only in production mode"
        return TelexProcess(
            ["worker", routing, "--layer", self.layer_url, *extra], ready="worker listening on"
        )

    def failures(self) -> list[str]:
        return [
            line for process in [self.server, *self.workers] for line in process.lines if FAILURE.search(line)
        ]


@contextlib.contextmanager
def deployed(
    request: pytest.FixtureRequest,
    routing: str,
    *,
    mode: str | None = None,
    threads: int = 1,
    workers: Sequence[Sequence[str]] = ((),),
    env: dict[str, str] | None = None,
) -> Iterator[Deployment]:
    """Start ``routing`` in ``mode`` (default ``request.param``); all processes start at once.

    ``threads`` is the embedded server's ``--threads``; ``workers`` holds the
    extra arguments of each production worker process.
    """
    url = None
    if (mode or request.param) == "embedded":
        server = TelexServer("--routing", routing, "--threads", str(threads), env=env, ready=None)
        worker_processes = []
    else:
        redis = request.getfixturevalue("redis_server")
        url = f"{redis.url}?prefix=scenario-{uuid.uuid4().hex[:12]}"
        server = TelexServer(url, env=env, ready=None)
        worker_processes = [
            TelexProcess(["worker", routing, "--layer", url, *extra], env=env, ready=None)
            for extra in workers
        ]
    # The last start-up line of each: the embedded worker starts after the listening ports.
    ready = {server: r"running \d+ consumer thread" if url is None else "Telex serving with"}
    ready.update((worker, "worker listening on") for worker in worker_processes)
    deployment = Deployment(server, worker_processes, url)
    try:
        for process in ready:
            process.start()
        for process, line in ready.items():
            process.wait_for(line, timeout=30)
        yield deployment
    finally:
        stop_all([*deployment.workers, server])
    assert not deployment.failures(), "\n".join(deployment.failures())


def stop_all(processes: Sequence[TelexProcess]) -> None:
    """SIGTERM every process first, then wait: they shut down in parallel."""
    running = [p for p in processes if p.process is not None and p.process.poll() is None]
    for process in running:
        process.signal(signal.SIGTERM)
    for process in running:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.process.kill()
            process.wait(5)


def receive(socket: ClientConnection, count: int) -> list[str]:
    return [socket.recv(timeout=10) for _ in range(count)]


def receive_until(socket: ClientConnection, last: str, limit: int = 100) -> list[str]:
    """Every message up to and including ``last`` (bounded by ``limit``)."""
    received: list[str] = []
    for _ in range(limit):
        received.append(socket.recv(timeout=10))
        if received[-1] == last:
            return received
    raise AssertionError(f"no {last!r} within {limit} messages: {received}")


def refused_status(deployment: Deployment, path: str, **kwargs) -> int:
    with pytest.raises(InvalidStatus) as refused:
        with deployment.ws(path, **kwargs):
            pass
    return refused.value.response.status_code


# -- S1 Hello, HTTP -----------------------------------------------------------------------


@pytest.fixture(scope="module", params=MODES)
def hello(request):
    with deployed(request, "examples.hello_http.routing:channel_routing") as deployment:
        yield deployment


@pytest.mark.parametrize("path", ["/", "/a/b"])
def test_s1_hello_answers_every_path_with_its_text(hello, path):
    status, headers, body = request(hello.server, "GET", path)
    assert status == 200
    assert body.decode() == f"Hello world! You asked for {path}"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"


def test_s1_hello_shows_the_decoded_path(hello):
    assert request(hello.server, "GET", "/caf%C3%A9")[2].decode() == "Hello world! You asked for /caf\u00e9"


# -- S2 Echo over WebSocket ---------------------------------------------------------------


@pytest.fixture(scope="module", params=MODES)
def echo(request):
    with deployed(request, "examples.echo.routing:channel_routing") as deployment:
        yield deployment


@pytest.mark.parametrize("path", ["/chat/", "/", "/any/where/?x=1"])
def test_s2_echo_sends_the_text_back_on_any_path(echo, path):
    with echo.ws(path) as socket:
        socket.send("hello world")
        assert socket.recv(timeout=10) == "hello world"


def test_s2_echo_sends_binary_frames_back_as_binary(echo):
    with echo.ws("/chat/") as socket:
        socket.send(b"\x00\xffbytes")
        assert socket.recv(timeout=10) == b"\x00\xffbytes"


# -- S3 Group chat ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=MODES)
def chat(request):
    with deployed(
        request, "examples.chat.routing:channel_routing", threads=4, workers=[["--threads", "4"]]
    ) as deployment:
        yield deployment


def test_s3_every_client_receives_every_message_including_its_own(chat):
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(chat.ws("/")) for _ in range(4)]
        # Everyone sends at once: with 4 threads the messages may interleave.
        for index, client in enumerate(clients):
            client.send(f"from {index}")
        expected = sorted(f"[user] from {index}" for index in range(len(clients)))
        for client in clients:
            assert sorted(receive(client, len(clients))) == expected


def test_s3_a_client_that_left_does_not_stop_the_chat(chat):
    with chat.ws("/") as first, chat.ws("/") as second:
        with chat.ws("/") as leaving:
            leaving.send("bye")
            for client in (first, second, leaving):
                assert client.recv(timeout=10) == "[user] bye"
        first.send("still here")
        assert second.recv(timeout=10) == "[user] still here"
        assert first.recv(timeout=10) == "[user] still here"


# -- S4 Production layer and separate workers ---------------------------------------------

PRODUCTION = "examples.production.routing:channel_routing"


@pytest.fixture(scope="module", params=MODES)
def production(request):
    with deployed(request, PRODUCTION, threads=2, workers=[["--threads", "2"]] * 2) as deployment:
        yield deployment


def test_s4_the_production_project_is_the_chat_in_either_deployment(production):
    with production.ws("/") as first, production.ws("/") as second:
        first.send("same project")
        assert first.recv(timeout=10) == "[user] same project"
        assert second.recv(timeout=10) == "[user] same project"


@pytest.fixture
def redis_chat(request):
    """The S4 set-up of the test's own: it kills and freezes its workers."""
    with deployed(request, PRODUCTION, mode="production", workers=[["--threads", "1"]]) as deployment:
        yield deployment


@pytest.mark.redis
def test_s4_restarting_every_worker_keeps_the_open_websockets(redis_chat):
    with redis_chat.ws("/") as first, redis_chat.ws("/") as second:
        first.send("before")
        assert [first.recv(timeout=10), second.recv(timeout=10)] == ["[user] before"] * 2
        (original,) = redis_chat.workers
        original.process.kill()  # no chance to clean up
        original.wait(10)
        # No worker at all now: the message waits in Redis, the sockets stay open.
        second.send("while no worker ran")
        restarted = redis_chat.worker(PRODUCTION)
        redis_chat.workers.append(restarted.start())
        assert [first.recv(timeout=10), second.recv(timeout=10)] == ["[user] while no worker ran"] * 2
        # A graceful restart too (SIGTERM: running consumers finish, exit 0).
        restarted.signal(signal.SIGTERM)
        assert restarted.wait(15) == 0
        redis_chat.workers.append(redis_chat.worker(PRODUCTION).start())
        first.send("after")
        assert [first.recv(timeout=10), second.recv(timeout=10)] == ["[user] after"] * 2


def frozen_round(
    sender: ClientConnection, listener: ClientConnection, frozen: TelexProcess, label: str
) -> list[str]:
    """With ``frozen`` stopped (SIGSTOP), messages flow through the other worker.

    A frozen worker with one thread may already have popped one message (its
    BLPOP was in flight); that one arrives after SIGCONT. Every other one
    proves the other worker ran it. Returns the chat lines of the round.
    """
    messages = [f"{label} {index}" for index in range(6)]
    frozen.signal(signal.SIGSTOP)
    try:
        for text in messages:
            sender.send(text)
        received = receive(listener, len(messages) - 1)
    finally:
        frozen.signal(signal.SIGCONT)
    received += receive(listener, 1)
    expected = sorted(f"[user] {text}" for text in messages)
    assert sorted(received) == expected
    return expected


@pytest.mark.redis
def test_s4_an_added_worker_handles_messages_and_so_does_the_first(redis_chat):
    (first_worker,) = redis_chat.workers  # one thread: see frozen_round
    with redis_chat.ws("/") as sender, redis_chat.ws("/") as listener:
        sender.send("one worker")
        assert listener.recv(timeout=10) == "[user] one worker"
        added = redis_chat.worker(PRODUCTION, "--threads", "1")
        redis_chat.workers.append(added.start())
        expected = ["[user] one worker"]
        expected += frozen_round(sender, listener, first_worker, "the added worker ran")
        expected += frozen_round(sender, listener, added, "the first worker ran")
        assert sorted(receive(sender, len(expected))) == sorted(expected)


# -- S5 Rooms -----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=MODES)
def rooms(request):
    with deployed(
        request, "examples.rooms.routing:channel_routing", threads=3, workers=[["--threads", "3"]]
    ) as deployment:
        yield deployment


def test_s5_two_rooms_never_see_each_others_messages(rooms):
    with contextlib.ExitStack() as stack:
        lobby = [stack.enter_context(rooms.ws("/lobby/")) for _ in range(2)]
        kitchen = [stack.enter_context(rooms.ws("/kitchen/")) for _ in range(2)]
        for index in range(5):
            lobby[index % 2].send(f"lobby {index}")
            kitchen[index % 2].send(f"kitchen {index}")
        # Each room has all its own messages before its "end" is sent; a
        # message leaked into a room would reach its sockets before "end".
        for room, name in ((lobby, "lobby"), (kitchen, "kitchen")):
            expected = {f"{name} {index}" for index in range(5)}
            for socket in room:
                assert set(receive(socket, 5)) == expected
        for room, name in ((lobby, "lobby"), (kitchen, "kitchen")):
            room[0].send(f"end {name}")
            for socket in room:
                assert socket.recv(timeout=10) == f"end {name}"


def test_s5_the_room_is_kept_for_every_later_message_of_the_connection(rooms):
    with rooms.ws("/attic/") as one, rooms.ws("/attic/") as other, rooms.ws("/cellar/") as elsewhere:
        for index in range(3):
            one.send(f"attic {index}")
        expected = [f"attic {index}" for index in range(3)]
        assert sorted(receive(other, 3)) == expected
        elsewhere.send("cellar only")
        assert elsewhere.recv(timeout=10) == "cellar only"
        other.send("end")
        received = receive_until(one, "end")
        assert sorted(received[:-1]) == expected


# -- S6 Who is the user -------------------------------------------------------------------

SECRET = {"TELEX_EXAMPLE_SECRET": "scenario-secret"}


@pytest.fixture(scope="module", params=MODES)
def who(request):
    with deployed(request, "examples.who_is_user.routing:channel_routing", env=SECRET) as deployment:
        yield deployment


def log_in(deployment: Deployment, name: str) -> str:
    status, headers, body = request(deployment.server, "GET", f"/login?name={name}")
    assert status == 200 and body == f"logged in as {name}\n".encode()
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    return cookie.split(";")[0].partition("=")[2]


def test_s6_http_requests_know_the_user_from_the_session_cookie(who):
    session_key = log_in(who, "ann")
    assert (
        request(who.server, "GET", "/", headers={"Cookie": f"sessionid={session_key}"})[2] == b"Hello, ann!\n"
    )
    assert request(who.server, "GET", "/")[2] == b"Hello, anonymous!\n"


def test_s6_the_user_comes_from_the_handshake_cookie_or_session_key_and_stays(who):
    ann, bob = log_in(who, "ann"), log_in(who, "bob")
    by_cookie = who.ws("/", additional_headers={"Cookie": f"theme=dark; sessionid={ann}"})
    by_query = who.ws(f"/?session_key={bob}")
    with by_cookie, by_query:
        # Later messages carry no cookie: the user comes from the channel session.
        by_cookie.send("hi from the cookie")
        by_query.send("hi from the query")
        expected = ["[ann] hi from the cookie", "[bob] hi from the query"]
        assert sorted(receive(by_cookie, 2)) == expected
        assert sorted(receive(by_query, 2)) == expected


@pytest.mark.parametrize(
    "path,headers",
    [("/", {}), ("/?session_key=ann.0000", {}), ("/", {"Cookie": "sessionid=ann.forged"})],
    ids=["anonymous", "forged-session-key", "forged-cookie"],
)
def test_s6_a_socket_without_a_valid_session_is_refused_403(who, path, headers):
    assert refused_status(who, path, additional_headers=headers) == 403


# -- S7 Routing ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=MODES)
def routing(request):
    with deployed(
        request, "examples.routing_demo.routing:channel_routing", threads=2, workers=[["--threads", "2"]]
    ) as deployment:
        yield deployment


@pytest.mark.parametrize(
    "method,path,status,body",
    [
        ("GET", "/poll/", 200, "poll: POST here to vote\n"),  # a dotted-string consumer
        ("PUT", "/poll/", 200, "poll: POST here to vote\n"),  # method=^POST$ filters PUT out
        ("POST", "/poll/", 200, "voted: yes\n"),
        ("GET", "/articles/2017/", 200, "articles of 2017\n"),  # named group as keyword argument
        ("GET", "/articles/17/", 404, "Not Found: /articles/17/"),
        ("GET", "/poll/extra", 404, "Not Found: /poll/extra"),
    ],
)
def test_s7_http_routes_filter_on_path_and_method(routing, method, path, status, body):
    answer = request(routing.server, method, path, body=b"yes" if method != "GET" else None)
    assert answer[0] == status
    assert answer[2].decode().startswith(body)


def test_s7_include_strips_its_prefix_and_passes_the_room_to_a_class_consumer(routing):
    with routing.ws("/chat/lobby/") as lobby, routing.ws("/chat/other/") as other:
        lobby.send("hello")
        assert lobby.recv(timeout=10) == "[lobby] hello"
        # "other" is in group room-other only: its next message is its own.
        other.send("me")
        assert other.recv(timeout=10) == "[other] me"


def test_s7_a_class_based_json_consumer_echoes_json(routing):
    with routing.ws("/json/") as socket:
        socket.send(json.dumps({"a": [1, 2]}))
        assert json.loads(socket.recv(timeout=10)) == {"echo": {"a": [1, 2]}}


# -- S8 Background channel and persistence ------------------------------------------------

BACKGROUND = "examples.background.routing:channel_routing"


@pytest.fixture(scope="module", params=MODES)
def background(request, tmp_path_factory):
    database = tmp_path_factory.mktemp("s8") / "chat.sqlite3"
    # The README's split: the slow channel has a worker of its own.
    workers = [["--only-channels", "chat-messages"], ["--exclude-channels", "chat-messages"]]
    env = {"TELEX_EXAMPLE_DB": str(database)}
    with deployed(request, BACKGROUND, threads=2, workers=workers, env=env) as deployment:
        deployment.database = database
        yield deployment


def test_s8_messages_are_stored_in_sqlite_then_broadcast_to_the_room(background):
    with (
        background.ws("/garden/") as alice,
        background.ws("/garden/") as bob,
        background.ws("/shed/") as carol,
    ):
        for index in range(5):
            alice.send(f"message {index}")
        expected = [f"message {index}" for index in range(5)]
        assert sorted(receive(bob, 5)) == expected
        assert sorted(receive(alice, 5)) == expected
        # Stored before broadcast: every row is there once bob has the messages.
        with contextlib.closing(sqlite3.connect(background.database)) as database:
            rows = database.execute("SELECT room, message FROM messages ORDER BY message").fetchall()
        assert rows == [("garden", text) for text in expected]
        carol.send("end")
        assert carol.recv(timeout=10) == "end"  # the other room saw none of the garden's
    if background.workers:
        only, excluded = background.workers
        assert only.wait_for("worker listening on").string.endswith(
            "listening on chat-messages with 1 thread(s)"
        )
        assert "chat-messages" not in excluded.wait_for("worker listening on").string


# -- S9 Ordering --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=MODES)
def ordering(request):
    workers = [["--threads", "3"]] * 3
    with deployed(
        request, "examples.ordering.routing:channel_routing", threads=8, workers=workers
    ) as deployment:
        yield deployment


def exchange_in_order(sockets: list[ClientConnection], frames: int, window: int) -> list[list[str]]:
    """Send ``frames`` frames on every socket, at most ``window`` unanswered.

    The windows together keep ``websocket.receive`` under the layer's
    capacity (1,000 on Telex's layers; beyond it the server would close a
    socket with 1013), while leaving dozens of frames of one socket in
    flight across the worker threads.
    """
    sent = [0] * len(sockets)
    replies: list[list[str]] = [[] for _ in sockets]
    for _ in range(frames * len(sockets)):
        for index, socket in enumerate(sockets):
            while sent[index] < frames and sent[index] - len(replies[index]) < window:
                sent[index] += 1
                socket.send(f"f{sent[index]}")
        for index, socket in enumerate(sockets):
            if len(replies[index]) < frames:
                replies[index].append(socket.recv(timeout=15))
        if all(len(received) == frames for received in replies):
            return replies
    raise AssertionError("unreachable: every round receives one reply per unfinished socket")


def test_s9_strict_ordering_runs_hundreds_of_frames_of_a_socket_in_order(ordering):
    frames = 300
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(ordering.ws("/")) for _ in range(2)]
        replies = exchange_in_order(sockets, frames, window=45)
    expected = [f"{order} f{order}" for order in range(1, frames + 1)]
    assert replies == [expected] * len(sockets)


@pytest.fixture(scope="module", params=MODES)
def slight(request):
    workers = [["--threads", "4"]] * 2
    with deployed(
        request, "examples.ordering.routing:slight_routing", threads=8, workers=workers
    ) as deployment:
        yield deployment


def test_s9_slight_ordering_runs_connect_before_any_receive(slight):
    # Each client sends its frame with the handshake, before any accept: the
    # most a client can do to overtake its own connect.
    clients = [RawClient(slight.server.port) for _ in range(30)]
    try:
        for client in clients:
            client.send(handshake_request("/", port=slight.server.port) + frame(b"x"))
        for client in clients:
            assert client.read_head().startswith(b"HTTP/1.1 101")
            # A receive run before its connect raises KeyError (no "seen" in the
            # session) and never answers; the deployment also fails on that log line.
            assert client.read_message() == b"connected x"
    finally:
        for client in clients:
            client.close()

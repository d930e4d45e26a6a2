"""examples/django (the Channels 1.x tutorial on telex.django), end to end with real sockets.

Each check runs against both deployments of the README: ``manage.py runserver``
(one process, in-memory layer) and Redis with ``telex serve example.asgi:channel_layer``
and ``manage.py runworker`` processes. The chat page is also driven once in a
headless Chromium. The project's sqlite file is a migrated copy in a temporary
directory (``EXAMPLE_DB``), so the checkout stays clean.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.support.browser import Browser, find_chromium, in_ci
from tests.support.processes import ROOT, TelexProcess, telex_env
from tests.support.redis_server import RedisServer, free_port

EXAMPLE = os.path.join(ROOT, "examples", "django")
PASSWORD = "telex-example-password"
TIMEOUT = 10.0


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=telex_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory) -> str:
    """The README's ``migrate``, and two users, once; each deployment gets a copy."""
    path = str(tmp_path_factory.mktemp("example-db") / "template.sqlite3")
    manage("migrate", "--noinput", env={"EXAMPLE_DB": path})
    users = "; ".join(f"User.objects.create_user({name!r}, password={PASSWORD!r})" for name in ("ann", "bob"))
    manage("shell", "-c", f"from django.contrib.auth.models import User; {users}", env={"EXAMPLE_DB": path})
    return path


@dataclass
class Site:
    port: int
    database: str
    processes: list[TelexProcess]
    redis_url: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def websocket(self, path: str, session_key: str | None = None) -> ClientConnection:
        headers = {"Cookie": f"sessionid={session_key}"} if session_key else None
        return connect(f"ws://127.0.0.1:{self.port}{path}", additional_headers=headers, open_timeout=TIMEOUT)

    def output(self) -> str:
        return "\n\n".join(process.output for process in self.processes)


def listening(port: int) -> str:
    """The server's own line once it accepts connections (the worker logs "listening on" too)."""
    return rf"listening on http://127\.0\.0\.1:{port}\b"


def copy_db(migrated_db: str, tmp_path_factory, name: str) -> str:
    path = str(tmp_path_factory.mktemp(name) / "db.sqlite3")
    shutil.copyfile(migrated_db, path)
    return path


@pytest.fixture(scope="module")
def runserver_site(migrated_db, tmp_path_factory) -> Iterator[Site]:
    database = copy_db(migrated_db, tmp_path_factory, "runserver")
    port = free_port()
    server = TelexProcess(
        ["manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        env={"EXAMPLE_DB": database},
        cwd=EXAMPLE,
        command=[sys.executable],
        ready=listening(port),
    )
    with server:
        yield Site(port, database, [server])


@pytest.fixture(scope="module")
def redis_site(migrated_db, tmp_path_factory) -> Iterator[Site]:
    database = copy_db(migrated_db, tmp_path_factory, "redis")
    port = free_port()
    with RedisServer() as redis:
        env = {"EXAMPLE_DB": database, "REDIS_URL": redis.url}
        # As the README runs it: the interface server from asgi.py, and workers
        # (one only for the background channel, as the Channels docs split them).
        server = TelexProcess(
            ["serve", "example.asgi:channel_layer", "-b", "127.0.0.1", "-p", str(port)],
            env=env,
            cwd=EXAMPLE,
            ready=listening(port),
        )
        workers = [
            TelexProcess(
                ["manage.py", "runworker", *args],
                env=env,
                cwd=EXAMPLE,
                command=[sys.executable],
                ready="running worker against",
            )
            for args in (
                ["--threads", "4", "--exclude-channels", "chat-messages"],
                ["--only-channels", "chat-messages"],
            )
        ]
        with server, workers[0], workers[1]:
            yield Site(port, database, [server, *workers], redis.url)


@pytest.fixture(
    scope="module",
    params=["runserver", pytest.param("redis", marks=pytest.mark.redis)],
)
def site(request) -> Site:
    return request.getfixturevalue(f"{request.param}_site")


def log_in(client: httpx.Client, username: str) -> str:
    """Through Django's login view, as a browser does; the session key."""
    form = client.get("/accounts/login/")
    assert form.status_code == 200, form.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token, form.text
    answer = client.post(
        "/accounts/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1), "next": "/"},
    )
    assert answer.status_code == 200 and answer.url.path == "/", answer.text
    return client.cookies["sessionid"]


def receive_json(socket: ClientConnection) -> dict:
    return json.loads(socket.recv(timeout=TIMEOUT))


def test_the_http_consumer_answers_without_a_view(site):
    response = httpx.get(site.url + "/hello/caf%C3%A9/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.text == "Hello world! You asked for /hello/caf\u00e9/"


def test_other_requests_are_answered_by_django_views(site):
    index = httpx.get(site.url + "/", timeout=TIMEOUT)
    assert index.status_code == 200 and "Log in" in index.text
    assert httpx.get(site.url + "/?room=lobby", timeout=TIMEOUT).headers["location"] == "/chat/lobby/"
    assert httpx.get(site.url + "/nowhere/", timeout=TIMEOUT).status_code == 404


def test_echo_sends_each_frame_back(site):
    with site.websocket("/echo/") as socket:
        for text in ("hello", "caf\u00e9", "x" * 5000):
            socket.send(text)
            assert socket.recv(timeout=TIMEOUT) == text


def test_group_chat_reaches_every_socket(site):
    with site.websocket("/everyone/") as first, site.websocket("/everyone/") as second:
        # One at a time: two sockets' messages may run on two workers in either order.
        for sender, text in ((first, "hi from the first"), (second, "hi from the second")):
            sender.send(text)
            for socket in (first, second):
                assert socket.recv(timeout=TIMEOUT) == f"[user] {text}"


def test_rooms_never_see_each_others_messages(site):
    with (
        site.websocket("/chat/lobby/") as lobby_one,
        site.websocket("/chat/lobby/") as lobby_two,
        site.websocket("/chat/kitchen/") as kitchen,
    ):
        lobby_one.send("in the lobby")
        kitchen.send("in the kitchen")
        for socket in (lobby_one, lobby_two):
            assert receive_json(socket) == {"room": "lobby", "user": "anonymous", "message": "in the lobby"}
        assert receive_json(kitchen) == {"room": "kitchen", "user": "anonymous", "message": "in the kitchen"}
        # The kitchen's message has been delivered; the lobby's next one is the lobby's.
        lobby_two.send("still the lobby")
        for socket in (lobby_one, lobby_two):
            assert receive_json(socket)["message"] == "still the lobby"


def test_a_path_that_is_no_room_is_refused(site):
    with pytest.raises(InvalidStatus) as refused:
        site.websocket("/chat/no-such-room!/").close()
    assert refused.value.response.status_code == 403


def test_after_login_the_socket_knows_the_user_and_the_message_is_saved(site):
    with httpx.Client(base_url=site.url, timeout=TIMEOUT, follow_redirects=True) as client:
        session_key = log_in(client, "ann")
        page = client.get("/chat/ann_room/")
        assert '<strong id="username">ann</strong>' in page.text
        with (
            site.websocket("/chat/ann_room/", session_key) as ann,
            site.websocket("/chat/ann_room/") as guest,
        ):
            ann.send("hello, I am ann")
            expected = {"room": "ann_room", "user": "ann", "message": "hello, I am ann"}
            assert receive_json(ann) == expected
            assert receive_json(guest) == expected
        # The chat-messages consumer saved the row before it broadcast.
        with sqlite3.connect(site.database) as database:
            rows = database.execute(
                "SELECT username, message FROM chat_chatmessage WHERE room = 'ann_room'"
            ).fetchall()
        assert rows == [("ann", "hello, I am ann")]
        assert "hello, I am ann" in client.get("/chat/ann_room/").text  # the page's history


def test_a_sockets_frames_run_in_order_across_worker_threads(site):
    count = 40
    with site.websocket("/count/") as socket:
        for index in range(count):
            socket.send(f"m{index}")
        replies = [socket.recv(timeout=TIMEOUT) for _ in range(count)]
    assert replies == [f"{index + 1} m{index}" for index in range(count)]


@pytest.mark.redis
def test_telex_serve_given_the_redis_url_reaches_the_same_workers(redis_site):
    # The settings keep the layer's default prefix, so the URL names the same channels.
    port = free_port()
    with TelexProcess(
        ["serve", str(redis_site.redis_url), "-b", "127.0.0.1", "-p", str(port)], ready=listening(port)
    ):
        response = httpx.get(f"http://127.0.0.1:{port}/hello/by-url/", timeout=TIMEOUT)
        assert response.text == "Hello world! You asked for /hello/by-url/"
        with connect(f"ws://127.0.0.1:{port}/everyone/", open_timeout=TIMEOUT) as by_url:
            with redis_site.websocket("/everyone/") as by_asgi_module:
                by_url.send("across both servers")
                for socket in (by_url, by_asgi_module):
                    assert socket.recv(timeout=TIMEOUT) == "[user] across both servers"


@pytest.mark.slow
def test_the_chat_page_between_two_browser_tabs_after_logging_in(runserver_site):
    binary = find_chromium()
    if binary is None:
        if in_ci():
            pytest.fail("Chromium is missing in CI: .ci/run should have installed Debian's chromium")
        pytest.skip("Chromium is not installed (Debian package 'chromium'); CI installs it")
    browser = Browser(binary)
    try:
        first = browser.open_tab(runserver_site.url + "/accounts/login/?next=/chat/browser/")
        first.evaluate(
            f"document.getElementById('id_username').value = 'bob';"
            f"document.getElementById('id_password').value = {PASSWORD!r};"
            "document.querySelector('form[action$=\"/login/\"]').submit(); true"
        )
        browser.wait_event("Page.loadEventFired", first.session)
        assert first.evaluate("location.pathname") == "/chat/browser/"
        assert first.evaluate("document.getElementById('username').textContent") == "bob"
        second = browser.open_tab(runserver_site.url + "/chat/browser/")  # the same login cookie
        for tab in (first, second):
            assert tab.wait_for("document.getElementById('status').textContent === 'connected'")
        for tab, text in ((first, "hello from tab one"), (second, "and from tab two")):
            tab.evaluate(
                f"document.getElementById('text').value = {text!r};"
                "document.getElementById('form').requestSubmit(); true"
            )
            seen = (
                "[...document.querySelectorAll('#log .message')]"
                f".some(p => p.textContent === {'bob: ' + text!r})"
            )
            assert first.wait_for(seen) and second.wait_for(seen), runserver_site.output()
    finally:
        browser.close()

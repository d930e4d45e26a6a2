"""Django's views through Telex, end to end: ``telex serve`` on Redis, a Django worker process, real sockets.

The test project is tests/djangoproject (views in tapp/views_http.py). Two
servers share the main worker: a plain one, and one with ``--root-path /app
--proxy-headers``. A second deployment runs with ``DEBUG`` and routes
``http.request`` to ``StaticFilesConsumer``, as ``runserver`` does (and
``/raise/`` to a consumer that raises).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from tests.support.django_deploy import PROJECT, django_env, migrate
from tests.support.processes import TelexProcess, TelexServer, rss_kib

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]


#: The Django worker: the project's settings and routing, on DjangoWorker.
WORKER = """
import logging, os, signal, threading
import django

django.setup()
logging.getLogger("telex").setLevel(logging.INFO)
from telex.django.asgi import channel_layers
from telex.django.worker import DjangoWorker

routing = None
if os.environ.get("TELEX_TEST_STATIC") == "1":
    from telex.django.routing import include, route
    from telex.django.staticfiles import StaticFilesConsumer

    from tapp.consumers_http import raising

    routing = [
        route("http.request", raising, path=r"^/raise/$"),
        route("http.request", StaticFilesConsumer()),
        include("tproject.routing.channel_routing"),
    ]
worker = DjangoWorker(channel_layers["default"], routing, threads=2)
stopping = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopping.set())
worker.start()
print("django worker ready", flush=True)
stopping.wait()
worker.stop()
"""

#: Lines that mean something failed where nothing should have.
TRACEBACK = re.compile(r"Traceback|raised on channel")


class Deployment:
    def __init__(self, servers: list[TelexServer], worker: TelexProcess) -> None:
        self.servers = servers
        self.worker = worker

    @property
    def server(self) -> TelexServer:
        return self.servers[0]

    def tracebacks_since(self, mark: int) -> list[str]:
        return [line for line in self.worker.lines[mark:] if TRACEBACK.search(line)]


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("django-http") / "big.bin"
    with open(path, "wb") as file:
        for index in range(30):
            file.write(bytes([index]) * (1024 * 1024))
    return path


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("django-http-db") / "db.sqlite3")
    migrate(path)
    return path


@pytest.fixture(scope="module")
def deployment(redis_server, database, big_file) -> Iterator[Deployment]:
    with deployed(
        redis_server, database, {"TELEX_TEST_FILE": str(big_file)}, ["--root-path", "/app"]
    ) as found:
        yield found


@pytest.fixture(scope="module")
def debug_deployment(redis_server, database) -> Iterator[Deployment]:
    with deployed(redis_server, database, {"TELEX_TEST_DEBUG": "1", "TELEX_TEST_STATIC": "1"}) as found:
        yield found


class deployed:
    """A Django worker and ``telex serve`` processes (one per extra argument list) on one Redis prefix."""

    def __init__(self, redis_server, database: str, env: dict[str, str], *server_args: list[str]) -> None:
        prefix = f"h1-{uuid.uuid4().hex[:10]}:"
        url = f"{redis_server.url}?prefix={prefix}"
        worker_env = {
            "TELEX_TEST_LAYER": redis_server.url,
            "TELEX_TEST_PREFIX": prefix,
            "TELEX_TEST_DB": database,
        }
        worker_env.update(env)
        self.worker = TelexProcess(
            [], command=[sys.executable, "-c", WORKER], env=django_env(worker_env), ready=None, cwd=PROJECT
        )
        self.servers = [TelexServer(url, ready=None)]
        self.servers += [TelexServer(url, "--proxy-headers", *args, ready=None) for args in server_args]

    def __enter__(self) -> Deployment:
        self.worker.start()
        for server in self.servers:
            server.start()
        self.worker.wait_for("django worker ready", timeout=60)
        for server in self.servers:
            server.wait_for("Telex serving with", timeout=30)
        return Deployment(self.servers, self.worker)

    def __exit__(self, *exc: object) -> None:
        for process in [self.worker, *self.servers]:
            process.stop()


class Client:
    """HTTP/1.1 on one server with a cookie jar, enough for sessions and CSRF."""

    def __init__(self, server: TelexServer) -> None:
        self.server = server
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            content = response.read()
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or ():
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        return response.status, response.headers, content

    def get(self, path: str, **kwargs) -> tuple[int, http.client.HTTPMessage, bytes]:
        return self.request("GET", path, **kwargs)


def wait_for_file(path: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} was not written within {timeout}s"
        time.sleep(0.05)
    return path.read_text()


# -- request.META ------------------------------------------------------------------------


def test_meta_has_client_server_query_and_headers_as_wsgi(deployment):
    connection = http.client.HTTPConnection("127.0.0.1", deployment.server.port, timeout=30)
    connection.connect()
    client_port = connection.sock.getsockname()[1]
    connection.putrequest("POST", "/http/meta/?a=1&b=%C3%A9", skip_accept_encoding=True)
    for name, value in [
        ("X-Multi", "one"),
        ("X-Multi", "two"),
        ("Cookie", "c1=1"),
        ("Cookie", "c2=2"),
        ("Content-Type", "application/json"),
        ("Content-Length", "2"),
    ]:
        connection.putheader(name, value)
    connection.endheaders(b"{}")
    data = json.loads(connection.getresponse().read())
    connection.close()
    meta = data["meta"]
    assert meta["REMOTE_ADDR"] == "127.0.0.1"
    assert meta["REMOTE_PORT"] == str(client_port)
    assert (meta["SERVER_NAME"], meta["SERVER_PORT"]) == ("127.0.0.1", str(deployment.server.port))
    assert meta["REQUEST_METHOD"] == "POST"
    assert meta["QUERY_STRING"] == "a=1&b=%C3%A9"
    assert (meta["SCRIPT_NAME"], meta["PATH_INFO"]) == ("", "/http/meta/")
    assert (meta["CONTENT_TYPE"], meta["CONTENT_LENGTH"]) == ("application/json", "2")
    assert meta["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert data["http"]["HTTP_X_MULTI"] == "one,two"
    assert data["cookies"] == {"c1": "1", "c2": "2"}
    assert data["get"] == {"a": "1", "b": "é"}
    assert data["secure"] is False


def test_root_path_is_script_name_and_proxy_headers_make_the_request_secure(deployment):
    proxied = Client(deployment.servers[1])
    status, _, body = proxied.get(
        "/app/http/meta/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    )
    assert status == 200, body
    data = json.loads(body)
    assert (data["meta"]["SCRIPT_NAME"], data["meta"]["PATH_INFO"]) == ("/app", "/http/meta/")
    assert data["path"] == "/app/http/meta/"
    assert data["meta"]["REMOTE_ADDR"] == "203.0.113.9"
    assert data["secure"] is True
    assert data["absolute"] == f"https://127.0.0.1:{deployment.servers[1].port}/app/http/meta/"
    # CommonMiddleware's slash redirect goes through the script prefix.
    status, headers, _ = proxied.get("/app/http/meta")
    assert (status, headers["Location"]) == (301, "/app/http/meta/")


# -- Django's request handling -------------------------------------------------------------


def test_sessions_and_auth_keep_state_across_requests(deployment):
    client = Client(deployment.server)
    assert [json.loads(client.get("/http/count/")[2])["count"] for _ in range(3)] == [1, 2, 3]
    assert client.get("/http/whoami/")[2] == b"anonymous"
    assert client.get("/http/login/?name=ann")[2] == b"logged in"
    assert client.get("/http/whoami/")[2] == b"ann"
    assert Client(deployment.server).get("/http/whoami/")[2] == b"anonymous"


def test_csrf_protects_posts_and_accepts_the_token(deployment):
    client = Client(deployment.server)
    status, _, token = client.get("/http/form/")
    assert status == 200 and "csrftoken" in client.cookies
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, _ = client.request("POST", "/http/form/", body=b"value=1", headers=form)
    assert status == 403
    body = b"value=2&csrfmiddlewaretoken=" + token
    assert client.request("POST", "/http/form/", body=body, headers=form)[:3:2] == (200, b"posted 2")


def test_messages_framework_carries_a_message_to_the_next_request(deployment):
    client = Client(deployment.server)
    client.get("/http/messages/add/")
    assert client.get("/http/messages/")[2] == b"hello from the messages framework"
    assert client.get("/http/messages/")[2] == b""


def test_unknown_url_is_the_resolvers_404(deployment):
    status, headers, body = Client(deployment.server).get("/http/nowhere/")
    assert status == 404
    assert b"Not Found" in body and headers["Content-Type"].startswith("text/html")


def test_a_raising_view_gets_djangos_500_and_the_worker_goes_on(deployment):
    status, _, body = Client(deployment.server).get("/http/boom/")
    assert status == 500
    assert b"Server Error (500)" in body and b"boom" not in body
    deployment.worker.wait_for("ValueError: boom from a view")
    assert Client(deployment.server).get("/hello/")[0] == 200


def test_a_raising_view_gets_the_technical_500_with_debug(debug_deployment):
    status, _, body = Client(debug_deployment.server).get("/http/boom/")
    assert status == 500
    assert b"ValueError" in body and b"boom from a view" in body


def test_a_raising_consumer_gets_djangos_technical_500_with_debug(debug_deployment):
    status, _, body = Client(debug_deployment.server).get("/raise/")
    assert status == 500
    assert b"ValueError" in body and b"boom from a consumer" in body


def test_async_views_run(deployment):
    assert Client(deployment.server).get("/http/async/")[:3:2] == (200, b"async hello GET")


def test_head_has_the_length_of_get_and_no_body(deployment):
    status, headers, body = Client(deployment.server).request("HEAD", "/hello/")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(len(b"Hello from Django\n"))


def test_cookies_become_set_cookie_headers(deployment):
    _, headers, _ = Client(deployment.server).get("/http/cookies/")
    assert headers.get_all("Set-Cookie") == ["first=1; Path=/", "second=2; HttpOnly; Path=/; SameSite=Lax"]


def test_response_later_sends_nothing_and_lets_another_sender_answer(deployment):
    status, _, body = Client(deployment.server).get("/http/later/")
    assert (status, body) == (202, b"answered later\n")


# -- Bodies --------------------------------------------------------------------------------


def multipart_head(boundary: bytes, size: int) -> tuple[bytes, bytes, int]:
    """The parts before and after a file of ``size`` bytes, and the whole Content-Length."""
    before = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue\r\n'
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    after = b"\r\n--" + boundary + b"--\r\n"
    return before, after, len(before) + size + len(after)


def test_a_100mb_upload_streams_through_the_upload_handlers_in_bounded_memory(deployment):
    pid = deployment.worker.process.pid
    peak_before = rss_kib(pid, "VmHWM")
    size, piece = 100 * 1024 * 1024, bytes(range(256)) * 4096  # 1 MiB
    boundary = b"telexboundary" + uuid.uuid4().hex.encode()
    before, after, length = multipart_head(boundary, size)
    digest = hashlib.sha256()
    with socket.create_connection(("127.0.0.1", deployment.server.port), timeout=60) as sock:
        sock.sendall(
            b"POST /http/upload/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
            b"Content-Length: " + str(length).encode() + b"\r\n\r\n" + before
        )
        for _ in range(size // len(piece)):
            sock.sendall(piece)
            digest.update(piece)
        sock.sendall(after)
        response = read_all(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response[:2000]
    assert json.loads(body) == {
        "size": size,
        "sha256": digest.hexdigest(),
        "on_disk": True,
        "field": "value",
    }
    growth_mib = (rss_kib(pid, "VmHWM") - peak_before) / 1024
    assert growth_mib < 20, f"the worker's peak memory grew by {growth_mib:.0f} MiB for a 100 MiB upload"


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_body_on_the_body_channel_is_read_whole_and_the_memory_limit_applies(deployment):
    client = Client(deployment.server)
    body = os.urandom(2 * 1024 * 1024)
    status, _, content = client.request("POST", "/http/raw/", body=body)
    assert status == 200, content
    assert json.loads(content) == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    # Over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB): Django's 400.
    assert status_of_early_answer(deployment.server, "/http/raw/", 3 * 1024 * 1024) == 400


def status_of_early_answer(server: TelexServer, path: str, size: int) -> int:
    """POST ``size`` bytes while reading: Django answers before the body is in, and the server may
    close the connection under the sending client (so the answer is read as it comes)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        received = bytearray()
        head_done = threading.Event()

        def read() -> None:
            try:
                while b"\r\n\r\n" not in received and (chunk := sock.recv(65536)):
                    received.extend(chunk)
            except OSError:
                pass
            head_done.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n\r\n".encode()
                + os.urandom(size)
            )
        except OSError:  # the server answered and closed first
            pass
        assert head_done.wait(30), "no response head"
    status_line = bytes(received).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 "), bytes(received[:200])
    return int(status_line.split()[1])


def abandon_upload(server: TelexServer, path: str) -> None:
    """Send the head and 1 MiB of a 4 MiB form body, then leave."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {4 * 1024 * 1024}\r\n\r\n".encode()
            + b"a" * (1024 * 1024)
        )


@pytest.mark.parametrize("where", ["view", "middleware"])
def test_a_client_leaving_mid_body_aborts_the_request_quietly(deployment, tmp_path, where):
    mark = len(deployment.worker.lines)
    marker = tmp_path / "aborted"
    path = f"/http/catch/?marker={marker}" if where == "view" else "/http/protected/"
    abandon_upload(deployment.server, path)
    deployment.worker.wait_for("left before its request body was complete", timeout=30)
    if where == "view":
        # The view saw telex.django.exceptions.RequestAborted.
        assert wait_for_file(marker) == "aborted"
    assert Client(deployment.server).get("/hello/")[0] == 200
    assert not deployment.tracebacks_since(mark), "\n".join(deployment.worker.lines[mark:])


# -- Streamed responses ----------------------------------------------------------------------


def test_streaming_responses_arrive_chunked_and_whole(deployment):
    status, headers, body = Client(deployment.server).get("/http/stream/?parts=40&size=100000")
    assert status == 200
    assert headers["Transfer-Encoding"] == "chunked"
    assert body == b"".join(bytes([65 + i % 26]) * 100000 for i in range(40))


def test_async_iterator_streaming_responses_stream(deployment):
    status, _, body = Client(deployment.server).get("/http/stream-async/")
    assert (status, body) == (200, b"part 0\npart 1\npart 2\npart 3\n")


def test_a_large_file_response_arrives_whole(deployment, big_file):
    status, headers, body = Client(deployment.server).get("/http/file/")
    assert status == 200
    assert headers["Content-Disposition"] == 'attachment; filename="big.bin"'
    assert int(headers["Content-Length"]) == big_file.stat().st_size
    assert hashlib.sha256(body).digest() == hashlib.sha256(big_file.read_bytes()).digest()


def test_a_client_leaving_a_streaming_response_stops_it(deployment, tmp_path):
    mark = len(deployment.worker.lines)
    marker = tmp_path / "closed"
    with socket.create_connection(("127.0.0.1", deployment.server.port), timeout=30) as sock:
        sock.sendall(f"GET /http/endless/?marker={marker} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        received = 0
        while received < 1024 * 1024:
            chunk = sock.recv(65536)
            assert chunk, "the stream ended early"
            received += len(chunk)
    # The generator was closed (its finally ran) long before its 64 GiB.
    assert wait_for_file(marker) == "closed"
    deployment.worker.wait_for("left; stopped its response")
    assert Client(deployment.server).get("/hello/")[0] == 200
    assert not deployment.tracebacks_since(mark), "\n".join(deployment.worker.lines[mark:])


# -- Static files (runserver's StaticFilesConsumer) -------------------------------------------


def test_static_files_are_served_from_the_finders_and_the_rest_by_the_views(debug_deployment):
    client = Client(debug_deployment.server)
    assert client.get("/static/tapp/http.txt")[:3:2] == (200, b"static file of the HTTP tests\n")
    status, _, body = client.get("/static/tapp/missing.txt")
    assert status == 404 and b"missing.txt" in body
    assert client.get("/hello/")[:3:2] == (200, b"Hello from Django\n")

"""The test Django project (tests/djangoproject) deployed: ``telex serve`` on Redis, Django workers.

Used by the consumer tests (sessions, generic consumers, binding). Each
deployment has its own Redis prefix and its own SQLite file.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Sequence
from http.cookies import SimpleCookie

from tests.support.processes import ROOT, TelexProcess, TelexServer, telex_env

PROJECT = os.path.join(ROOT, "tests", "djangoproject")

#: A Django worker of the project; TAPP_ONLY / TAPP_EXCLUDE (comma lists) and TAPP_THREADS steer it.
WORKER = """
import os, signal, threading
import django

django.setup()
from telex.django.asgi import channel_layers
from telex.django.worker import DjangoWorker

def names(variable):
    return [name for name in os.environ.get(variable, "").split(",") if name] or None

worker = DjangoWorker(
    channel_layers["default"],
    threads=int(os.environ.get("TAPP_THREADS", "2")),
    only_channels=names("TAPP_ONLY"),
    exclude_channels=names("TAPP_EXCLUDE"),
)
stopping = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stopping.set())
worker.start()
print(f"django worker ready pid={os.getpid()}", flush=True)
stopping.wait()
worker.stop()
"""


def django_env(extra: dict[str, str]) -> dict[str, str]:
    env = telex_env(
        {"PYTHONPATH": ROOT + os.pathsep + PROJECT, "DJANGO_SETTINGS_MODULE": "tproject.settings"}
    )
    env.update(extra)
    return env


def migrate(database: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=PROJECT,
        env=django_env({"TELEX_TEST_DB": database}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


class Deployment:
    """``telex serve`` and Django workers on one Redis prefix and one database.

    ``workers`` is a list of worker options: ``{"only": [...], "exclude": [...], "threads": n}``.
    """

    def __init__(self, redis_url: str, database: str, workers: Sequence[dict]) -> None:
        self.prefix = f"h2-{uuid.uuid4().hex[:10]}:"
        self.env = {
            "TELEX_TEST_LAYER": redis_url,
            "TELEX_TEST_PREFIX": self.prefix,
            "TELEX_TEST_DB": database,
        }
        self.workers = [
            TelexProcess(
                [],
                command=[sys.executable, "-c", WORKER],
                env=django_env(
                    {
                        **self.env,
                        "TAPP_ONLY": ",".join(options.get("only", ())),
                        "TAPP_EXCLUDE": ",".join(options.get("exclude", ())),
                        "TAPP_THREADS": str(options.get("threads", 2)),
                    }
                ),
                ready=None,
                cwd=PROJECT,
            )
            for options in workers
        ]
        self.server = TelexServer(f"{redis_url}?prefix={self.prefix}", ready=None)

    def __enter__(self) -> Deployment:
        for worker in self.workers:
            worker.start()
        self.server.start()
        self.worker_pids = [
            int(worker.wait_for(r"django worker ready pid=(\d+)", timeout=60).group(1))
            for worker in self.workers
        ]
        self.server.wait_for("Telex serving with", timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        for process in [*self.workers, self.server]:
            process.stop()

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.server.port}{path}"

    def run_django(self, code: str) -> str:
        """Run ``code`` in a new process of the project (same layer and database); its stdout."""
        result = subprocess.run(
            [sys.executable, "-c", f"import django\ndjango.setup()\n{code}"],
            cwd=PROJECT,
            env=django_env(self.env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def http_get(self, path: str, session_key: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """GET ``path`` (with the session cookie if given); the status, the cookies set, the body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        try:
            headers = {"Cookie": f"sessionid={session_key}"} if session_key else {}
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        cookies = {}
        for header in response.headers.get_all("Set-Cookie") or ():
            cookies.update({name: morsel.value for name, morsel in SimpleCookie(header).items()})
        return response.status, cookies, body

    def log_in(self, username: str) -> str:
        """The session key of a real login, by Django's ``login()`` in a view of the project."""
        status, cookies, body = self.http_get(f"/http/login/?name={username}")
        assert status == 200 and "sessionid" in cookies, (status, cookies, body)
        return cookies["sessionid"]

    def output(self) -> str:
        return "\n".join(worker.output for worker in self.workers)


def receive_json(socket, timeout: float = 10.0) -> dict:
    """The next frame of a ``websockets`` sync client, decoded."""
    return json.loads(socket.recv(timeout=timeout))

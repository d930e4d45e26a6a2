"""``manage.py runserver`` / ``runworker`` and the app-order check, as real processes.

The project is tests/djangoprojects/commands (settings steered by CMD_*
variables). Start-up is detected from the processes' own output, never by
sleeping; only the reload test polls, with a deadline, while the server's
child process restarts.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.support.processes import ROOT, TelexProcess, telex_env
from tests.support.redis_server import RedisServer, free_port
from tests.support.ws import RawClient, frame, handshake_request

pytest.importorskip("django")

PROJECT = os.path.join(ROOT, "tests", "djangoprojects", "commands")
MANAGE = (sys.executable, "manage.py")


#: The server's own line once it listens (the worker logs "worker listening on" before).
SERVING = r"telex\.server listening on http"


def manage(
    args: list[str], env: dict[str, str] | None = None, cwd: str = PROJECT, ready: str | None = SERVING
) -> TelexProcess:
    return TelexProcess(args, env=env, cwd=cwd, command=MANAGE, ready=ready)


def run_manage(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*MANAGE, *args],
        capture_output=True,
        text=True,
        env=telex_env(env),
        cwd=PROJECT,
        timeout=60,
        check=False,
    )


def get(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, response.read().decode()


def echo(port: int, text: str) -> tuple[bytes, bytes]:
    """A WebSocket round trip on /echo/: the handshake head and the echoed message."""
    client = RawClient(port)
    try:
        client.send(handshake_request("/echo/", (("Sec-WebSocket-Protocol", "chat.v1"),), port=port))
        head = client.read_head()
        client.send(frame(text.encode()))
        return head, client.read_message()
    finally:
        client.close()


def test_runserver_serves_views_websocket_and_static_files():
    port = free_port()
    with manage(["runserver", f"127.0.0.1:{port}", "--noreload"], env={"CMD_DEBUG": "1"}) as server:
        assert server.process is not None
        status, body = get(port, "/hello/")
        assert (status, body) == (200, f"Hello from Django, version 1, pid {server.process.pid}\n")
        assert get(port, "/static/hello.txt") == (200, "static hello\n")
        head, message = echo(port, "hi there")
        assert head.startswith(b"HTTP/1.1 101")
        # CHANNELS_WS_PROTOCOLS is offered.
        assert b"sec-websocket-protocol: chat.v1" in head.lower()
        assert message == b"hi there"
        server.wait_for(r'"GET /hello/ HTTP/1.1" 200')  # the access log
        server.signal(signal.SIGINT)
        assert server.wait(30) == 0
    output = server.output
    assert f"Starting Telex development server at http://127.0.0.1:{port}/" in output
    assert "Channel layer default (telex.layers.memory.InMemoryChannelLayer), 4 worker thread(s)" in output
    assert "Quit the server with CONTROL-C." in output
    assert "Traceback" not in output


def test_runserver_without_debug_serves_no_static_files_unless_insecure():
    port = free_port()
    with manage(["runserver", f"127.0.0.1:{port}", "--noreload", "--nothreading"]) as server:
        with pytest.raises(urllib.error.HTTPError) as caught:
            get(port, "/static/hello.txt")
        assert caught.value.code == 404
        assert "1 worker thread(s)" in server.output
    port = free_port()
    with manage(["runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"]):
        assert get(port, "/static/hello.txt") == (200, "static hello\n")


def test_runserver_restarts_its_child_when_code_changes(tmp_path):
    project = str(tmp_path / "project")
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    # DEBUG makes Django log the reloader's lines.
    with manage(["runserver", f"127.0.0.1:{port}"], env={"CMD_DEBUG": "1"}, cwd=project) as server:
        server.wait_for("Watching for file changes")
        before = get(port, "/hello/")[1]
        assert before.startswith("Hello from Django, version 1, pid ")
        with open(os.path.join(project, "cproject", "version.py"), "w") as file:
            file.write("VERSION = 2\n")
        server.wait_for(r"version\.py changed, reloading", timeout=20)
        deadline = time.monotonic() + 30
        after = None
        while time.monotonic() < deadline:
            try:
                after = get(port, "/hello/")[1]
            except (urllib.error.URLError, ConnectionError):
                after = None  # the new child is not listening yet
            if after is not None and "version 2" in after:
                break
            time.sleep(0.1)
        assert after is not None and after.startswith("Hello from Django, version 2, pid "), server.output
        assert after.split("pid ")[1] != before.split("pid ")[1]  # another child process
        assert server.output.count("Starting Telex development server") == 2
        assert "Traceback" not in server.output


def test_noworker_server_with_a_separate_runworker_over_redis():
    with RedisServer() as redis:
        env = {"CMD_LAYER": redis.url, "CMD_PREFIX": f"cmd-{uuid.uuid4().hex[:8]}:"}
        port = free_port()
        worker = manage(["runworker", "--threads", "2"], env=env, ready="worker listening on")
        with (
            worker,
            manage(["runserver", f"127.0.0.1:{port}", "--noreload", "--noworker"], env=env) as server,
        ):
            assert worker.process is not None
            status, body = get(port, "/hello/")
            # Answered by the runworker process, not the server.
            assert (status, body) == (200, f"Hello from Django, version 1, pid {worker.process.pid}\n")
            assert echo(port, "through redis")[1] == b"through redis"
            assert "no worker (--noworker)" in server.output
            assert worker.output.count("signal worker_process_ready") == 1
            assert worker.output.count("signal worker_ready") == 2  # one per thread
            worker.signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        assert "received SIGTERM" in worker.output
        assert "Traceback" not in worker.output + server.output


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({}, [], "CHANNEL_LAYERS['default']: the in-memory layer cannot be used across processes"),
        ({"CMD_BROKEN": "routing"}, [], "CHANNEL_LAYERS['default']['ROUTING']: "),
        ({"CMD_BROKEN": "backend"}, [], "CHANNEL_LAYERS['default']: cannot import BACKEND 'no_such_package"),
        ({}, ["--layer", "other"], "CHANNEL_LAYERS has no alias 'other'"),
        ({}, ["--threads", "0"], "--threads must be at least 1"),
    ],
)
def test_runworker_start_up_errors_are_one_line(env, args, message):
    result = run_manage(["runworker", *args], env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("CommandError: " + message), result.stderr


def test_runserver_start_up_errors_are_one_line():
    result = run_manage(["runserver", "--noreload", "127.0.0.1:1"], env={"CMD_BROKEN": "routing"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: CHANNEL_LAYERS['default']['ROUTING']: "), result.stderr
    port = free_port()
    with manage(["runserver", f"127.0.0.1:{port}", "--noreload"]):
        taken = run_manage(["runserver", "--noreload", f"127.0.0.1:{port}"])
    assert taken.returncode == 1
    assert f"Error: cannot listen on 127.0.0.1:{port}" in taken.stderr
    assert "Traceback" not in taken.stderr


def test_noasgi_runs_djangos_own_server():
    port = free_port()
    with manage(
        ["runserver", f"127.0.0.1:{port}", "--noreload", "--noasgi"], ready="Starting development server"
    ):
        assert get(port, "/hello/")[1].startswith("Hello from Django, version 1")


def test_check_warns_when_staticfiles_comes_first():
    result = run_manage(["check"], env={"CMD_APP_ORDER": "static-first"})
    assert result.returncode == 0, result.stderr
    assert "(telex.W001) 'django.contrib.staticfiles' comes before 'telex.django'" in result.stderr
    assert "HINT: Move 'telex.django' above 'django.contrib.staticfiles' in INSTALLED_APPS." in result.stderr
    assert "telex.W001" not in run_manage(["check"]).stderr


@pytest.mark.parametrize(("command", "prefix"), [("runworker", "CommandError: "), ("runserver", "Error: ")])
def test_an_unreachable_redis_is_named_at_start(command, prefix):
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    args = [command] if command == "runworker" else [command, "--noreload", f"127.0.0.1:{free_port()}"]
    result = run_manage(args, env={"CMD_LAYER": url})
    assert result.returncode == 1
    # The layer's own warning may come first; the error is the last line.
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{prefix}CHANNEL_LAYERS['default']: channel layer unreachable: "), result.stderr
    assert "Traceback" not in result.stderr


def test_runworker_takes_telex_workers_options_from_the_same_fields():
    from django.core.management.base import CommandParser

    from telex.cli._flags import settings_fields
    from telex.django.management.commands.runworker import WORKER_OPTIONS, Command
    from telex.worker.settings import WorkerSettings

    parser = CommandParser()
    Command().add_arguments(parser)
    actions = {action.dest: action for action in parser._actions}
    for field, declared in settings_fields(WorkerSettings):
        if field.name in WORKER_OPTIONS:
            assert actions[field.name].option_strings == list(declared.flags)
            assert actions[field.name].default == field.default
    # --layer stays Channels 1.x's: an alias of CHANNEL_LAYERS, not a URL.
    assert actions["layer"].default == "default"
    assert parser.parse_args(["--only-channels", "a", "b", "--only-channels", "c"]).only_channels == [
        "a",
        "b",
        "c",
    ]


def test_runworker_reads_telex_worker_variables_and_names_a_bad_one():
    help_text = run_manage(["runworker", "--help"]).stdout
    assert "--ordering-timeout" in help_text and "TELEX_WORKER_THREADS" in help_text
    result = run_manage(["runworker"], env={"TELEX_WORKER_THREADS": "many"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "environment variable TELEX_WORKER_THREADS: expected a whole number, got 'many'" in result.stderr


def test_runserver_takes_telex_serve_options_from_the_server_settings_fields():
    help_text = run_manage(["runserver", "--help"]).stdout
    assert "--health-path HEALTH_PATH" in help_text and "[env TELEX_HEALTH_PATH]" in help_text
    assert (
        "--http_timeout HTTP_TIMEOUT, --http-timeout HTTP_TIMEOUT" in help_text
    )  # Channels 1.x's, unchanged
    port = free_port()
    args = ["runserver", f"127.0.0.1:{port}", "--noreload", "--health-path", "/telex-health"]
    with manage(args, env={"TELEX_METRICS_PATH": "/telex-metrics"}):
        assert get(port, "/telex-health") == (200, '{"status": "ok", "layer": "ok"}\n')
        assert "telex_open_connections" in get(port, "/telex-metrics")[1]


def test_runserver_telex_options_are_checked_as_telex_serve_checks_them():
    result = run_manage(["runserver", "--noreload", f"127.0.0.1:{free_port()}", "--health-path", "health"])
    assert result.returncode == 1
    assert (
        result.stderr.strip() == "Error: --health-path health: a path starts with / (did you mean /health?)"
    )

"""One command-line convention for ``telex serve`` and ``telex worker``, as users meet it.

Real processes, real files and real signals: log levels and the one line
format, variables (``TELEX_*`` for serve, ``TELEX_WORKER_*`` for the worker),
every user mistake as one line alone, the user's own failing line, ASGI 3
applications named, list options that leave the positional argument alone,
the start-up lines, and logging configured from files.
"""

from __future__ import annotations

import json
import re
import signal
import socket

import pytest

from tests.support.http import RAW
from tests.support.processes import TelexProcess, TelexServer, run_telex
from tests.support.redis_server import free_port
from tests.support.waiting import wait_until
from tests.support.ws import RawClient, handshake_request

EMBEDDED = ["--routing", "tests.worker_cli_routing:slow_routing"]
WORKER = ["worker", "tests.worker_cli_routing:slow_routing", "--layer", "memory://"]
#: The one log line format of both commands.
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+ \S")


def _stopped(process: TelexProcess, signum: int = signal.SIGTERM) -> list[str]:
    process.signal(signum)
    assert process.wait(30) == 0, process.output
    wait_until(lambda: not process._collector.is_alive(), timeout=10)
    return process.lines


# -- levels and the line format --------------------------------------------------------------


def test_serve_and_worker_log_in_one_line_format_without_twisted_noise_by_default():
    with TelexServer(*EMBEDDED) as server:
        server.wait_for("press Ctrl")
        served = _stopped(server, signal.SIGINT)
    with TelexProcess(WORKER, ready="press Ctrl") as worker:
        worked = _stopped(worker, signal.SIGINT)
    for line in served + worked:
        assert LINE.match(line), line
    assert not [line for line in served if " twisted " in line], served


def test_verbosity_3_adds_twisted_lines_in_the_same_format():
    with TelexServer(*EMBEDDED, "-v", "3") as server:
        lines = _stopped(server)
    twisted = [line for line in lines if " twisted " in line]
    assert twisted, lines
    assert all(LINE.match(line) for line in lines), lines


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_log_level_overrides_verbosity(command):
    if command == "serve":
        port = free_port()
        process = TelexProcess(
            ["serve", *EMBEDDED, "-p", str(port), "-v", "2", "--log-level", "warning"], ready=None
        )
        process.start()
        wait_until(lambda: _accepts(port), timeout=20)
    else:
        # The worker's memory:// warning is the one line above info.
        process = TelexProcess([*WORKER, "-v", "2", "--log-level", "warning"], ready="memory://")
        process.start()
    lines = _stopped(process)
    assert not [line for line in lines if " INFO " in line or " DEBUG " in line], lines
    assert command == "serve" or " WARNING " in lines[0]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("args", [["serve", *EMBEDDED], WORKER], ids=["serve", "worker"])
def test_log_format_json_writes_one_object_per_line(args):
    process = TelexProcess(
        [*args, "--log-format", "json", "-p", str(free_port())]
        if args[0] == "serve"
        else [*args, "--log-format", "json"],
        ready="press Ctrl",
    )
    with process:
        lines = _stopped(process)
    entries = [json.loads(line) for line in lines]
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    assert any(entry["message"].endswith("to stop") for entry in entries)


@pytest.mark.parametrize("kind", ["json", "ini"])
def test_log_config_from_a_file_is_applied_after_the_flags(tmp_path, kind):
    log_file = tmp_path / "telex.log"
    if kind == "json":
        config = tmp_path / "logging.json"
        config.write_text(
            json.dumps(
                {
                    "version": 1,
                    "formatters": {"json": {"()": "telex._logging.JsonFormatter"}},
                    "handlers": {
                        "file": {
                            "class": "logging.FileHandler",
                            "filename": str(log_file),
                            "formatter": "json",
                        }
                    },
                    "loggers": {"telex": {"handlers": ["file"], "level": "INFO"}},
                }
            )
        )
    else:
        config = tmp_path / "logging.ini"
        config.write_text(
            "[loggers]\nkeys=root,telex\n[handlers]\nkeys=file\n[formatters]\nkeys=plain\n"
            "[logger_root]\nhandlers=\n[logger_telex]\nqualname=telex\nlevel=INFO\nhandlers=file\n"
            f"[handler_file]\nclass=FileHandler\nargs=({str(log_file)!r},)\nformatter=plain\n"
            "[formatter_plain]\nformat=FROM-INI %(name)s %(message)s\n"
        )
    # -v 0 would hide the start-up lines: the file's level wins, being applied last.
    with TelexServer(*EMBEDDED, "-v", "0", "--log-config", str(config), ready=None) as server:
        wait_until(lambda: log_file.exists() and "to stop" in log_file.read_text(), timeout=20)
        _stopped(server)
    text = log_file.read_text()
    if kind == "json":
        assert json.loads(text.splitlines()[0])["logger"].startswith("telex")
    else:
        assert "FROM-INI telex.server listening on http://127.0.0.1:" in text


def test_a_log_config_that_cannot_be_used_is_one_line(tmp_path):
    result = run_telex(["serve", RAW, "--log-config", str(tmp_path / "missing.json")])
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert "--log-config" in result.stderr and "no such file" in result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"version": 1, "handlers": {"x": {"class": "no.such.Handler"}}}')
    result = run_telex(["worker", "x:y", "--layer", "memory://", "--log-config", str(broken)])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"telex worker: error: --log-config {broken}")


# -- variables ---------------------------------------------------------------------------------


def test_every_worker_flag_comes_from_a_telex_worker_variable_and_serves_variables_do_not_reach_it():
    env = {
        "TELEX_LAYER": "memory://",
        "TELEX_WORKER_ROUTING": "tests.worker_cli_routing:slow_routing",
        "TELEX_WORKER_THREADS": "2",
        "TELEX_WORKER_LOG_FORMAT": "json",
        # telex serve's, in the same environment: bad for a worker, and ignored by it.
        "TELEX_THREADS": "not a number",
        "TELEX_VERBOSITY": "0",
    }
    with TelexProcess(["worker"], env=env, ready="press Ctrl") as worker:
        lines = _stopped(worker)
    assert any("on 2 thread(s)" in json.loads(line)["message"] for line in lines), lines


@pytest.mark.parametrize(
    ("args", "variable"),
    [
        (["serve", RAW], "TELEX_PORT"),
        (["serve", "--help"], "TELEX_PORT"),
        (["worker", "x:y"], "TELEX_WORKER_THREADS"),
    ],
)
def test_a_bad_variable_is_a_usage_error_naming_it(args, variable):
    result = run_telex(args, env={variable: "lots"})
    assert result.returncode == 2, result
    assert f"environment variable {variable}: expected a whole number, got 'lots'" in result.stderr
    assert "Traceback" not in result.stderr


def test_telex_help_reads_no_variable():
    result = run_telex(["--help"], env={"TELEX_PORT": "lots", "TELEX_WORKER_THREADS": "x"})
    assert result.returncode == 0 and "serve" in result.stdout and not result.stderr


# -- a user's mistake is one line, alone ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--access-log", "/nonexistent-dir/access.log"],
            "--access-log /nonexistent-dir/access.log: cannot write",
        ),
        (["--access-log-format", "xml"], "argument --access-log-format: invalid choice: 'xml'"),
        (["-e", "tcp:notaport"], "endpoint 'tcp:notaport': ValueError"),
        (["-e", "tcp:70000"], "endpoint 'tcp:70000': port 70000 is not from 0 to 65535"),
        (["-b", "localhost:8000"], "-b localhost:8000: give the port with -p (-b localhost -p 8000)"),
        (["-b", "[::1]:8000"], "-b [::1]:8000: give the port with -p (-b [::1] -p 8000)"),
        (["-p", "70000"], "-p 70000: a port is a number from 0 to 65535"),
        (
            ["--health-path", "healthz"],
            "--health-path healthz: a path starts with / (did you mean /healthz?)",
        ),
        (["--metrics-path", "metrics"], "--metrics-path metrics: a path starts with /"),
        (["-v", "7"], "argument -v/--verbosity: invalid choice: 7"),
    ],
)
def test_a_mistake_in_a_flag_is_one_line_alone(args, line):
    result = run_telex(["serve", RAW, *args])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("telex serve: error: " + line), result.stderr
    assert not [text for text in result.stderr.splitlines() if LINE.match(text)], result.stderr


@pytest.mark.parametrize(
    "command", [["serve", "redis:/localhost"], ["worker", "x:y", "--layer", "redis:/localhost"]]
)
def test_a_layer_url_with_one_slash_asks_did_you_mean(command):
    result = run_telex(command)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"telex {command[0]}: error: 'redis:/localhost': did you mean redis://localhost?"
    )


def test_a_port_in_use_is_one_line_without_shutdown_lines_before_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_telex(["serve", *EMBEDDED, "-p", str(port)])
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(f"telex serve: error: cannot listen on 127.0.0.1:{port}")
    assert "shutting down" not in result.stderr and "worker stopped" not in result.stderr, result.stderr


# -- the user's own code -------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_import_error_shows_the_users_own_failing_line_and_with_v2_their_traceback(tmp_path, command):
    (tmp_path / "myproject.py").write_text("import os\n\nfrom myproject_settings import LAYER  # line 3\n")
    (tmp_path / "myproject_settings.py").write_text("LAYER = 1\nraise KeyError('REDIS_URL')\n")
    env = {"PYTHONPATH": str(tmp_path)}
    args = (
        ["serve", "myproject:layer"]
        if command == "serve"
        else ["worker", "myproject:routing", "--layer", "memory://"]
    )
    quiet = run_telex(args, env=env)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert "KeyError: 'REDIS_URL'" in quiet.stderr
    assert "myproject_settings.py, line 2: raise KeyError('REDIS_URL')" in quiet.stderr
    loud = run_telex([*args, "-v", "2"], env=env)
    assert loud.returncode == 2
    traceback = loud.stderr[loud.stderr.index("Traceback") :]
    assert 'myproject.py", line 3' in traceback and 'myproject_settings.py", line 2' in traceback
    assert "telex" + "/" not in traceback.split("telex " + command + ": error")[0], traceback


def test_an_asgi3_application_is_named_in_one_line(tmp_path):
    (tmp_path / "asgi3app.py").write_text(
        "async def application(scope, receive, send):\n    pass\n\n"
        "class App:\n    async def __call__(self, scope, receive, send):\n        pass\n\napp = App()\n"
    )
    for target in ("asgi3app:application", "asgi3app:app"):
        result = run_telex(["serve", target], env={"PYTHONPATH": str(tmp_path)})
        assert result.returncode == 2 and "TypeError" not in result.stderr
        (line,) = result.stderr.splitlines()
        assert f"'{target}' is an ASGI 3 application" in line and "uvicorn" in line


# -- usage ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_wrong_flag_shows_the_subcommands_usage(command):
    result = run_telex([command, "--bogus", "x:y"])
    assert result.returncode == 2
    assert result.stderr.startswith(f"usage: telex {command} ")
    assert result.stderr.splitlines()[-1] == f"telex {command}: error: unrecognized arguments: --bogus"


@pytest.mark.parametrize("layer_first", [False, True], ids=["ws-protocol a b LAYER", "LAYER ws-protocol a b"])
def test_ws_protocol_takes_several_values_and_leaves_the_layer_alone(redis_server, layer_first):
    protocols = ["--ws-protocol", "alpha", "beta"]
    args = [redis_server.url, *protocols] if layer_first else [*protocols, redis_server.url]
    with TelexServer(*args, *EMBEDDED) as server:
        server.wait_for("RedisChannelLayer")
        client = RawClient(server.port)
        client.send(handshake_request("/", (("Sec-WebSocket-Protocol", "beta"),), server.port))
        head = client.read_head().decode()
        client.close()
    assert head.startswith("HTTP/1.1 101") and "Sec-WebSocket-Protocol: beta" in head, head


def test_worker_globs_leave_the_routing_alone():
    args = ["worker", "--only-channels", "custom.*", "http.*", "tests.worker_cli_routing:slow_routing"]
    with TelexProcess([*args, "--layer", "memory://"], ready="press Ctrl") as worker:
        worker.wait_for(r"listening on .*custom\.slow")
        _stopped(worker)


# -- start-up lines --------------------------------------------------------------------------------


def test_start_up_prints_a_url_a_unix_path_as_text_and_how_to_stop(tmp_path):
    path = tmp_path / "telex.sock"
    with TelexServer(*EMBEDDED, "-u", str(path)) as server:
        server.wait_for("press Ctrl")
        lines = _stopped(server, signal.SIGINT)
    text = "\n".join(lines)
    assert f"listening on http://127.0.0.1:{server.port}/" in text
    assert f"listening on {path} (Unix socket)" in text
    assert "press Ctrl+C (or send SIGTERM) to stop" in text


def test_a_failure_inside_an_installed_library_points_at_no_line():
    # Only the user's own code is quoted: not redis-py's socket call behind an unreachable layer.
    result = run_telex(["serve", f"redis://127.0.0.1:{free_port()}/0"])
    assert result.returncode == 1  # unreachable at start: restarted by supervisors (docs/deployment.md)
    last = result.stderr.splitlines()[-1]
    assert last.startswith("telex serve: error: channel layer unreachable: ") and "(at " not in last, last

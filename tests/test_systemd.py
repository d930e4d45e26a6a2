"""Telex under systemd: the units in deploy/systemd, socket activation, Type=notify.

Socket activation runs through ``systemd-socket-activate`` (Debian's
``systemd`` package), which needs no systemd as PID 1: it binds the socket,
waits for the first connection, then execs Telex with LISTEN_FDS/LISTEN_PID
set, as systemd does for telex.socket. The unit files themselves are checked
with ``systemd-analyze verify``, which also runs without a system manager.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from tests.support.http import RAW, received_message, request
from tests.support.processes import ROOT, TelexProcess, TelexServer, run_telex
from tests.support.redis_server import free_port

UNITS = os.path.join(ROOT, "deploy", "systemd")
SOCKET_ACTIVATE = shutil.which("systemd-socket-activate")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

SERVICES = (
    "telex.socket",
    "telex.service",
    "telex@.service",
    "telex-worker@.service",
    "telex-django-worker@.service",
)

needs_socket_activate = pytest.mark.skipif(
    SOCKET_ACTIVATE is None, reason="systemd-socket-activate not installed (Debian package: systemd)"
)


def unit_entries(name: str) -> dict[str, list[tuple[str, str]]]:
    """``{section: [(key, value), ...]}`` of a unit file (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    with open(os.path.join(UNITS, name)) as unit:
        for line in unit:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                current = sections.setdefault(line.strip("[]"), [])
            else:
                key, _, value = line.partition("=")
                current.append((key.strip(), value.strip()))
    return sections


def unit_value(name: str, section: str, key: str) -> str:
    values = [value for k, value in unit_entries(name)[section] if k == key]
    assert len(values) == 1, (name, key, values)
    return values[0]


def unit_environment(name: str) -> dict[str, str]:
    env = {}
    for key, value in unit_entries(name)["Service"]:
        if key == "Environment":
            for assignment in shlex.split(value):
                variable, _, setting = assignment.partition("=")
                env[variable] = setting
    return env


def service_arguments(name: str) -> list[str]:
    """ExecStart's arguments after the ``telex`` executable."""
    command = shlex.split(unit_value(name, "Service", "ExecStart"))
    assert os.path.basename(command[0]) == "telex", command
    return command[1:]


def test_the_unit_files_pass_systemd_analyze_verify(tmp_path):
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze not installed (Debian package: systemd)")
    for name in SERVICES:
        with open(os.path.join(UNITS, name)) as source:
            # verify insists that ExecStart's program exists on this machine.
            text = source.read().replace("/opt/telex/venv/bin/telex", sys.executable)
            text = text.replace("/opt/telex/venv/bin/python", sys.executable)
        (tmp_path / name).write_text(text)
    units = ["telex.socket", *(name.replace("@", "@1") for name in SERVICES if name != "telex.socket")]
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", *units],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@pytest.mark.parametrize("name", ["telex.service", "telex@.service"])
def test_the_service_units_are_type_notify_with_a_raised_open_file_limit(name):
    assert unit_value(name, "Service", "Type") == "notify"
    assert int(unit_value(name, "Service", "LimitNOFILE")) >= 10_000
    assert service_arguments(name)[:3] == ["serve", "--fd", "3"]
    # Longer than the default --graceful-timeout (30 s), or systemd kills mid-drain.
    assert int(unit_value(name, "Service", "TimeoutStopSec")) > 30
    assert "telex.socket" in unit_value(name, "Unit", "Requires")


def test_the_template_instances_share_the_socket_of_telex_socket():
    assert unit_value("telex@.service", "Service", "Sockets") == "telex.socket"


def socket_activated(port: int, args: list[str], env: dict[str, str], fdname: str | None) -> TelexProcess:
    launcher = [SOCKET_ACTIVATE, "-l", f"127.0.0.1:{port}"]
    # The child gets only the variables named with -E (values from our environment).
    launcher += [f"--setenv={name}" for name in (*env, "PYTHONPATH", "PYTHONUNBUFFERED")]
    if fdname is not None:
        launcher.append(f"--fdname={fdname}")
    # Ready when systemd-socket-activate listens; Telex starts at the first connection.
    process = TelexProcess(
        args, env=env, ready="Listening on", command=[*launcher, sys.executable, "-m", "telex"]
    )
    process.port = port
    return process


@needs_socket_activate
def test_the_service_units_command_serves_on_the_activated_socket():
    port = free_port()
    env = unit_environment("telex.service")
    env["TELEX_LAYER"] = RAW  # the test application instead of Redis
    fdname = unit_value("telex.socket", "Socket", "FileDescriptorName")
    with socket_activated(port, service_arguments("telex.service"), env, fdname) as process:
        assert received_message(process, "/message/activated")["path"] == "/message/activated"
        status, _, _ = request(process, "GET", env["TELEX_HEALTH_PATH"])
        assert status == 200
        process.signal(signal.SIGTERM)
        assert process.wait(15) == 0


@needs_socket_activate
@pytest.mark.parametrize(
    ("endpoint", "fdname"),
    [("systemd:domain=INET:index=0", None), ("systemd:domain=INET:name=http", "http")],
    ids=["index-without-LISTEN_FDNAMES", "name"],
)
def test_twisteds_systemd_endpoint_adopts_the_activated_socket(endpoint, fdname):
    port = free_port()
    with socket_activated(port, ["serve", RAW, "-e", endpoint], {}, fdname) as process:
        status, _, body = request(process, "GET", "/via-systemd-endpoint")
        assert status == 200 and body.endswith(b"/via-systemd-endpoint")


def test_a_systemd_endpoint_without_an_inherited_socket_fails_in_one_line():
    result = run_telex(["serve", RAW, "-e", "systemd:domain=INET:index=0"])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "no such socket passed by systemd" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("namespace", ["path", "abstract"])
def test_ready_and_stopping_are_sent_to_notify_socket(tmp_path, namespace):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        if namespace == "path":
            address = str(tmp_path / "notify")
            notify.bind(address)
        else:
            address = "@telex-test-" + os.urandom(6).hex()
            notify.bind("\0" + address[1:])
        notify.settimeout(15)
        with TelexServer(RAW, env={"NOTIFY_SOCKET": address}, ready=None) as server:
            assert notify.recv(4096) == b"READY=1"
            # Ready means listening: a request is served at once.
            assert request(server, "GET", "/after-ready")[0] == 200
            server.signal(signal.SIGTERM)
            assert notify.recv(4096) == b"STOPPING=1"
            assert server.wait(15) == 0


def test_the_django_worker_unit_runs_runworker_and_outlasts_its_stop_timeout():
    command = shlex.split(unit_value("telex-django-worker@.service", "Service", "ExecStart"))
    assert command[1:3] == ["manage.py", "runworker"]
    # runworker's --stop-timeout is 10 s: systemd must not kill it mid-consumer.
    assert int(unit_value("telex-django-worker@.service", "Service", "TimeoutStopSec")) > 10
    assert unit_value("telex-django-worker@.service", "Service", "KillSignal") == "SIGTERM"


@pytest.mark.parametrize("name", [name for name in SERVICES if name.endswith(".service")])
def test_every_service_is_ordered_after_redis_and_never_stops_restarting(name):
    after = unit_value(name, "Unit", "After").split()
    assert "redis-server.service" in after and "redis.service" in after
    # A Redis slow at boot: the service exits "channel layer unreachable" until it answers;
    # without this, systemd gives up after five starts in ten seconds.
    assert unit_value(name, "Unit", "StartLimitIntervalSec") == "0"
    assert unit_value(name, "Service", "Restart") in ("on-failure", "always")
    assert float(unit_value(name, "Service", "RestartSec")) >= 1


def test_the_worker_unit_runs_telex_worker_and_outlasts_its_stop_timeout(redis_server):
    arguments = service_arguments("telex-worker@.service")
    assert arguments[0] == "worker"
    assert int(unit_value("telex-worker@.service", "Service", "TimeoutStopSec")) > 10
    env = unit_environment("telex-worker@.service")
    env["TELEX_LAYER"] = redis_server.url + "?prefix=unit-worker"
    arguments[1] = "examples.hello_http.routing:channel_routing"  # for myproject's routing
    with TelexProcess(arguments, env=env, ready="worker listening on") as worker:
        with TelexServer(env["TELEX_LAYER"]) as server:
            assert request(server, "GET", "/")[0] == 200
        worker.signal(signal.SIGTERM)
        assert worker.wait(15) == 0

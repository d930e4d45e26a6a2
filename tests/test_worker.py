"""The worker: threads, held sends, failures, defaults, lifecycle and ``telex worker``."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from telex import Channel, Group
from telex.layers import InMemoryChannelLayer
from telex.routing import route
from telex.sessions import channel_session
from telex.worker import RoutingError, Worker
from tests.worker_harness import FakeSocket, http_request, running_worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def failing(message):
    raise RuntimeError("boom in the consumer")


def test_a_consumer_that_raises_is_logged_with_channel_and_traceback_and_the_worker_goes_on(caplog):
    caplog.set_level(logging.ERROR, logger="telex.worker")
    calls = []
    routing = [route("custom.fail", failing), route("custom.ok", lambda message: calls.append(message["n"]))]
    with running_worker(routing, threads=1) as worker:
        worker.channel_layer.send("custom.fail", {"n": 1})
        worker.channel_layer.send("custom.ok", {"n": 2})
        socket = FakeSocket(worker.channel_layer)  # a later message still gets served
        assert socket.connect() == {"accept": True}
    assert calls == [2]
    (record,) = [r for r in caplog.records if r.exc_info]
    assert "on channel custom.fail" in record.getMessage()
    assert "test_worker.failing" in record.getMessage()
    assert "boom in the consumer" in str(record.exc_info[1])


def test_an_http_request_whose_consumer_raised_gets_a_500():
    with running_worker([route("http.request", failing)]) as worker:
        status, _, body = http_request(worker.channel_layer, "/")
    assert status == 500
    assert body == b"500 Internal Server Error\n"


def test_no_500_follows_a_response_already_sent_immediately():
    def consumer(message):
        message.reply_channel.send({"status": 200, "content": b"partial"}, immediately=True)
        raise RuntimeError("after the reply")

    with running_worker([route("http.request", consumer)]) as worker:
        assert http_request(worker.channel_layer, "/")[:1] == (200,)
        socket = FakeSocket(worker.channel_layer)
        assert socket.connect() == {"accept": True}
        assert worker.channel_layer.receive(["http.response.x!"]) == (None, None)


def test_held_sends_of_a_consumer_that_raised_are_discarded():
    def consumer(message):
        message.reply_channel.send({"accept": True})
        raise RuntimeError("before returning")

    with running_worker([route("websocket.connect", consumer)]) as worker:
        socket = FakeSocket(worker.channel_layer)
        # Not the held accept: the worker rejects the socket instead.
        assert socket.connect() == {"close": True}


def test_a_websocket_connect_with_no_route_is_accepted():
    with running_worker([route("websocket.receive", failing)]) as worker:
        assert "websocket.connect" in worker.channels
        assert FakeSocket(worker.channel_layer).connect() == {"accept": True}


def test_an_http_request_that_no_route_matches_gets_a_404():
    with running_worker([route("http.request", failing, path=r"^/only/$")]) as worker:
        status, _, body = http_request(worker.channel_layer, "/elsewhere/")
    assert (status, body) == (404, b"Not Found: /elsewhere/\n")


def test_sends_are_held_until_the_consumer_returns():
    inside = threading.Event()
    release = threading.Event()

    def consumer(message):
        message.reply_channel.send({"text": "one"})
        Group("g").send({"text": "two"})
        inside.set()
        release.wait(5)

    with running_worker([route("websocket.receive", consumer)]) as worker:
        socket = FakeSocket(worker.channel_layer)
        Group("g", channel_layer=worker.channel_layer).add(socket.reply_channel)
        socket.send_text("go")
        assert inside.wait(5)
        assert socket.receive_nothing(0.1)
        release.set()
        assert socket.receive() == {"text": "one"}
        assert socket.receive() == {"text": "two"}


def test_immediately_sends_at_once():
    inside = threading.Event()
    release = threading.Event()

    def consumer(message):
        message.reply_channel.send({"text": "now"}, immediately=True)
        inside.set()
        release.wait(5)

    with running_worker([route("websocket.receive", consumer)]) as worker:
        socket = FakeSocket(worker.channel_layer)
        socket.send_text("go")
        assert socket.receive() == {"text": "now"}
        assert inside.is_set()
        release.set()


def test_held_sends_retry_on_channel_full_and_keep_their_order():
    # Every socket of one server shares the capacity of its "prefix!".
    layer = InMemoryChannelLayer(process_local_capacity=1)

    def consumer(message):
        for index in range(4):
            message.reply_channel.send({"text": str(index)})

    with running_worker([route("websocket.receive", consumer)], layer=layer) as worker:
        socket = FakeSocket(worker.channel_layer)
        socket.send_text("go")
        assert [socket.receive() for _ in range(4)] == [{"text": str(i)} for i in range(4)]


def test_the_session_is_saved_before_the_held_accept_goes_out():
    @channel_session
    def connect(message):
        message.channel_session["ready"] = True
        message.reply_channel.send({"accept": True})

    with running_worker([route("websocket.connect", connect)]) as worker:
        socket = FakeSocket(worker.channel_layer)
        assert socket.connect() == {"accept": True}
        assert worker.channel_layer.store_get("telex.session:" + socket.reply_channel) == {"ready": True}


def test_channel_and_group_inside_a_consumer_use_its_layer():
    def consumer(message):
        Channel("custom.out").send({"from": message.channel})

    with running_worker([route("custom.in", consumer)]) as worker:
        worker.channel_layer.send("custom.in", {})
        received = worker.channel_layer.receive(["custom.out"], block=True)
    assert received == ("custom.out", {"from": "custom.in"})


def test_only_channels_and_exclude_channels_are_globs_over_routed_channels():
    routing = "examples.background.routing:channel_routing"
    only = Worker(InMemoryChannelLayer(), routing, only_channels=["websocket.*"])
    assert only.channels == ["websocket.connect", "websocket.disconnect", "websocket.receive"]
    excluded = Worker(InMemoryChannelLayer(), routing, exclude_channels=["websocket.*", "other"])
    assert excluded.channels == ["chat-messages", "http.request"]  # http.request: the default 404


def test_a_worker_left_with_no_channels_refuses_to_start():
    with pytest.raises(RoutingError, match="no channels to listen on"):
        Worker(InMemoryChannelLayer(), "examples.chat.routing:channel_routing", only_channels=["nothing*"])


def test_routing_errors_raise_when_the_worker_is_built():
    with pytest.raises(RoutingError, match="bad regular expression"):
        Worker(InMemoryChannelLayer(), [route("http.request", failing, path="(")])


def test_stop_lets_running_consumers_finish_and_returns_without_waiting_for_receive_timeouts():
    inside = threading.Event()
    finished = []

    def consumer(message):
        inside.set()
        time.sleep(0.2)  # the consumer's own duration is what is tested
        finished.append(True)

    worker = Worker(InMemoryChannelLayer(), [route("custom.slow", consumer)], threads=4)
    worker.start()
    worker.channel_layer.send("custom.slow", {})
    assert inside.wait(5)
    started = time.monotonic()
    worker.stop(timeout=5)
    assert finished == [True]
    assert not worker.running
    # The idle threads were woken at once, not at the layer's 5 s receive timeout.
    assert time.monotonic() - started < 2


def test_a_worker_imports_no_server_or_protocol_code():
    code = (
        "import sys, telex.worker, telex.routing, telex.sessions, telex.cli.worker\n"
        "loaded = [m for m in sys.modules if m.startswith(('telex.server', 'telex.protocols', 'twisted'))]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), check=True, timeout=30)


# -- telex worker, as a real process ---------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TELEX_LAYER"}
    env["PYTHONPATH"] = ROOT
    env.update(extra)
    return env


def _telex_worker(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "telex", "worker", *args],
        cwd=ROOT,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("routing", "expected"),
    [
        ("examples.nothing:channel_routing", "cannot import module 'examples.nothing'"),
        ("examples.hello_http.routing:nothing", "has no attribute 'nothing'"),
        ("tests.worker_cli_routing:bad_regex", "bad regular expression for path='^/(unclosed'"),
        ("tests.worker_cli_routing:bad_import", "cannot import module 'examples.missing_module'"),
    ],
    ids=["module", "attribute", "regex", "dotted-consumer"],
)
def test_telex_worker_reports_routing_errors_in_one_line_and_exits_non_zero(routing, expected):
    result = _telex_worker(routing, "--layer", "memory://")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("telex worker: error: ")
    assert expected in lines[0]


def test_telex_worker_needs_a_layer_from_the_flag_or_the_environment():
    result = _telex_worker("examples.hello_http.routing:channel_routing")
    assert result.returncode == 2
    assert "no channel layer: pass --layer" in result.stderr
    assert "TELEX_LAYER" in result.stderr


def test_telex_worker_reports_a_bad_layer_in_one_line():
    result = _telex_worker("examples.hello_http.routing:channel_routing", TELEX_LAYER="nope://x")
    assert result.returncode == 2
    assert "unknown channel layer URL scheme 'nope'" in result.stderr.strip()


def test_telex_worker_finishes_running_consumers_on_sigterm_and_exits_0():
    # The layer comes from tests.worker_cli_routing:layer, with one slow
    # message already queued; the worker starts it, then gets SIGTERM.
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "telex",
            "worker",
            "tests.worker_cli_routing:slow_routing",
            "--threads",
            "2",
        ],
        cwd=ROOT,
        env=_env(TELEX_LAYER="tests.worker_cli_routing:layer_with_slow_message"),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "slow consumer started" in line:
                break
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert "slow consumer finished" in output
    assert "received SIGTERM" in output
    assert output.index("received SIGTERM") < output.index("slow consumer finished")

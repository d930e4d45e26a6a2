"""The two supported set-ups with Channels 1.x, each with a real Channels 1.1.8
worker (``manage.py runworker``) and a real redis-server (docs/channels1.md).

A. Telex serving in front of asgi_redis: the Channels 1.x stack with its own
   pins, plus Telex's core installed into it; ``telex serve
   chatproject.asgi:channel_layer`` reaches asgi_redis through the threaded bridge.
B. Channels pointed at Telex's Redis layer: Channels 1.1.8 without asgi_redis,
   plus ``telex[redis]``; ``CHANNEL_LAYERS`` names ``telex.layers.RedisChannelLayer``
   and ``telex serve redis://...`` uses the same Redis and prefix.

Both run against one redis-server at once, with their default prefixes, which
is how the prefix rule is shown to hold. The virtualenvs are built by the
tests themselves, cached outside the repository and keyed by the
requirements and setup.cfg; Telex is reinstalled from the checkout whenever
its source changes, so the installed package, not the checkout, is tested.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import websockets

from tests.support.http import request
from tests.support.installs import cache_root, clean_env, copy_checkout
from tests.support.processes import ROOT, TelexProcess
from tests.support.redis_server import RedisServer, free_port

# Building a virtualenv from a cold pip cache takes most of a minute.
pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.timeout(300)]

PROJECT = os.path.join(ROOT, "tests", "channels1")

# What a Channels 1.x project on asgi_redis holds. autobahn is pinned because
# daphne 1.4.2 admits any autobahn, and autobahn >= 26 requires msgpack >= 1.0:
# pip installs that *beside* msgpack-python 0.5.6 (a different distribution
# name, so its resolver and `pip check` see no conflict), it overwrites the
# shared `msgpack` package, and asgi_redis then fails on every message
# (unpackb() no longer takes `encoding`). 25.10.2 is the newest without it.
STACK_A = (
    "channels==1.1.8",
    "asgiref==1.1.2",
    "asgi_redis==1.4.3",
    "Django==2.1.15",
    "redis==2.10.6",
    "msgpack-python==0.5.6",
    "daphne==1.4.2",
    "autobahn==25.10.2",
)
# No asgi_redis: its redis==2.10.6 pin cannot coexist with telex[redis]'s redis>=5.
STACK_B = ("channels==1.1.8", "asgiref==1.1.2", "Django==2.1.15", "daphne==1.4.2")

# The files a Telex install is built from; a change to any reinstalls it.
TELEX_SOURCES = ("telex", "setup.cfg", "pyproject.toml", "README.md")
BUILD_TIMEOUT = 280.0
# Part of every cache key: bump it when the build steps below change.
RECIPE = 1


def tree_hash(root: Path, names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in names:
        top = root / name
        files = sorted(top.rglob("*")) if top.is_dir() else [top]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@dataclass
class Venv:
    path: Path
    stamp: dict

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = clean_env()
        env["PATH"] = str(self.path / "bin") + os.pathsep + env.get("PATH", "")
        env["VIRTUAL_ENV"] = str(self.path)
        env["PYTHONUNBUFFERED"] = "1"
        env["DJANGO_SETTINGS_MODULE"] = "chatproject.settings"
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [self.python, *args],
            capture_output=True,
            text=True,
            env=self.env({}),
            cwd=PROJECT,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
        return done.stdout

    def freeze(self) -> list[str]:
        return self.run("-m", "pip", "--disable-pip-version-check", "freeze", "--all").splitlines()


def _pip(python: str, *args: str, timeout: float) -> None:
    done = subprocess.run(
        [python, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def ensure_venv(name: str, stack: tuple[str, ...], telex_target: str, checkout: Path) -> Venv:
    """The cached virtualenv ``name``: the stack first, then Telex from ``checkout``.

    Two steps, as a user adds Telex to an environment that already exists; the
    second shows what Telex's own requirements add or change (recorded in the
    stamp). Telex alone is reinstalled when its source changed.
    """
    version = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    setup_cfg = (checkout / "setup.cfg").read_text()
    recipe = json.dumps([RECIPE, version, stack, telex_target, setup_cfg])
    key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}-{version}-{key}"
    stamp_file = path / "telex-tests.json"
    source = tree_hash(checkout, TELEX_SOURCES)
    target = telex_target.format(checkout=checkout)
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest run may be building it
        stamp = json.loads(stamp_file.read_text()) if stamp_file.exists() else None
        if stamp is None:
            for old in root.glob(f"{name}-{version}-*"):
                shutil.rmtree(old, ignore_errors=True)
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=60)
            python = str(path / "bin" / "python")
            _pip(python, "install", *stack, timeout=BUILD_TIMEOUT)
            stack_done = time.monotonic()
            venv = Venv(path, {})
            before = set(venv.freeze())
            _pip(python, "install", target, timeout=BUILD_TIMEOUT)
            after = set(venv.freeze())
            stamp = {
                "stack": list(stack),
                "telex_target": telex_target,
                "seconds": {
                    "venv_and_stack": round(stack_done - started, 1),
                    "telex": round(time.monotonic() - stack_done, 1),
                },
                "telex_added": sorted(after - before),
                "telex_removed": sorted(before - after),
                "telex_source": source,
            }
            stamp_file.write_text(json.dumps(stamp, indent=2))
            print(f"built {path} in {stamp['seconds']}", file=sys.stderr)
        elif stamp["telex_source"] != source:
            python = str(path / "bin" / "python")
            _pip(python, "install", "--no-deps", "--force-reinstall", target, timeout=120)
            stamp["telex_source"] = source
            stamp_file.write_text(json.dumps(stamp, indent=2))
    return Venv(path, stamp)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of what a fresh clone holds, so pip's build leaves nothing in the repository."""
    destination = tmp_path_factory.mktemp("telex-checkout")
    copy_checkout(str(destination))
    return destination


@pytest.fixture(scope="module")
def venv_a(checkout) -> Venv:
    return ensure_venv("channels1-a", STACK_A, "{checkout}", checkout)


@pytest.fixture(scope="module")
def venv_b(checkout) -> Venv:
    return ensure_venv("channels1-b", STACK_B, "{checkout}[redis]", checkout)


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    """One Redis, database 0, for both set-ups at once: only their prefixes keep them apart."""
    with RedisServer() as server:
        yield server


class VenvProcess(TelexProcess):
    """A command of a Channels 1.x virtualenv, run in the Django project's directory."""

    def __init__(self, venv: Venv, command: list[str], ready: str, env: dict[str, str]) -> None:
        super().__init__([], ready=ready, cwd=PROJECT)
        self.command = command
        self.env = venv.env(env)


@dataclass
class SetUp:
    name: str
    server: VenvProcess
    worker: VenvProcess
    port: int


@pytest.fixture(scope="module")
def setup_factory(shared_redis) -> Iterator:
    started: list[VenvProcess] = []

    def start(name: str, venv: Venv, layer: str, telex_layer_spec: str) -> SetUp:
        settings = {
            "CHANNELS1_LAYER": layer,
            "CHANNELS1_REDIS_HOST": shared_redis.host,
            "CHANNELS1_REDIS_PORT": str(shared_redis.port),
        }
        worker = VenvProcess(venv, [venv.python, "manage.py", "runworker"], "Listening on channels", settings)
        started.append(worker)
        worker.start(timeout=60)
        port = free_port()
        server = VenvProcess(
            venv,
            [str(venv.path / "bin" / "telex"), "serve", telex_layer_spec, "-b", "127.0.0.1", "-p", str(port)],
            "listening on",
            settings,
        )
        started.append(server)
        server.start(timeout=60)
        server.port = port
        return SetUp(name, server, worker, port)

    yield start
    for process in reversed(started):
        process.stop()


@pytest.fixture(scope="module")
def setup_a(venv_a, setup_factory) -> SetUp:
    """Telex in front of asgi_redis: the layer object comes from the Django settings."""
    return setup_factory("A", venv_a, "asgi_redis", "chatproject.asgi:channel_layer")


@pytest.fixture(scope="module")
def setup_b(venv_b, setup_factory, shared_redis) -> SetUp:
    """Channels workers on Telex's Redis layer; the server names the same Redis by URL."""
    return setup_factory("B", venv_b, "telex", shared_redis.url)


@pytest.fixture(params=["A", "B"])
def served(request) -> Iterator[SetUp]:
    """Each set-up in turn; a test fails if the server or the worker logged an error meanwhile."""
    setup = request.getfixturevalue("setup_a" if request.param == "A" else "setup_b")
    seen = {process: len(process.lines) for process in (setup.server, setup.worker)}
    yield setup
    for process, start in seen.items():
        new = process.lines[start:]
        assert not [line for line in new if "Traceback" in line or "ERROR" in line], "\n".join(new)


async def _ws_exchange(port: int, path: str, payloads: list[str | bytes]) -> list[str | bytes]:
    async with websockets.connect(f"ws://127.0.0.1:{port}{path}") as ws:
        answers = []
        for payload in payloads:
            await ws.send(payload)
            answers.append(await asyncio.wait_for(ws.recv(), 10))
        return answers


async def _chat(port: int, text: str) -> tuple[str, str]:
    url = f"ws://127.0.0.1:{port}/chat/"
    async with websockets.connect(url) as first, websockets.connect(url) as second:
        await first.send(text)
        return await asyncio.wait_for(first.recv(), 10), await asyncio.wait_for(second.recv(), 10)


# -- the environments ----------------------------------------------------------------------------


def test_core_install_keeps_every_pin_of_a_channels1_environment(venv_a):
    """Telex's core requirements admit the stack's versions: installing it changes none of them."""
    installed = dict(line.split("==", 1) for line in venv_a.freeze() if "==" in line)
    for pin in STACK_A:
        package, version = pin.split("==")
        normalized = {k.lower().replace("_", "-"): v for k, v in installed.items()}
        assert normalized[package.lower().replace("_", "-")] == version, pin
    assert venv_a.stamp["telex_removed"] == []
    added = {line.split("==")[0].split(" @ ")[0].lower() for line in venv_a.stamp["telex_added"]}
    assert "telex" in added
    assert not added & {"msgpack", "redis", "asgiref", "autobahn", "hiredis"}, added
    venv_a.run("-m", "pip", "--disable-pip-version-check", "check")


def test_core_install_imports_from_the_environment_and_leaves_msgpack_python_working(venv_a):
    out = venv_a.run(
        "-c",
        "import json, telex, msgpack, asgi_redis, telex.server.run;"
        "layer = asgi_redis.RedisChannelLayer();"
        "print(json.dumps([telex.__file__, msgpack.version[:2],"
        " layer.deserialize(layer.serialize({'b': b'x', 's': 'y'})) == {'b': b'x', 's': 'y'}]))",
    )
    telex_file, msgpack_version, round_trip = json.loads(out)
    assert "site-packages" in telex_file and not telex_file.startswith(ROOT)
    assert msgpack_version == [0, 5] and round_trip


def test_telex_redis_environment_has_no_asgi_redis_and_is_consistent(venv_b):
    installed = {line.split("==")[0].split(" @ ")[0].lower() for line in venv_b.freeze()}
    assert "asgi-redis" not in installed and "msgpack-python" not in installed
    assert {"telex", "redis", "msgpack", "channels"} <= installed
    venv_b.run("-m", "pip", "--disable-pip-version-check", "check")


# -- both set-ups ---------------------------------------------------------------------------------


def test_server_reaches_each_layer_through_the_expected_bridge(setup_a, setup_b):
    setup_a.server.wait_for("threaded bridge")
    setup_b.server.wait_for("asyncio bridge")
    for setup in (setup_a, setup_b):
        assert request(setup.server, "GET", "/hello/")[0] == 200, setup.name


def test_http_hello_from_a_channels_consumer(served):
    status, headers, body = request(served.server, "GET", "/hello/")
    assert (status, body) == (200, b"Hello from Channels 1.x! You asked for /hello/"), served.worker.output
    assert {name.lower(): value for name, value in headers.items()}["content-type"] == "text/plain"


def test_django_view_reads_method_path_query_and_headers(served):
    status, _, body = request(served.server, "GET", "/request/?q=caf%C3%A9&n=2", headers={"X-Probe": "yes"})
    assert status == 200, body
    seen = json.loads(body)
    assert seen["method"] == "GET" and seen["path"] == "/request/"
    assert seen["query"] == {"q": "café", "n": "2"}
    assert seen["probe_header"] == "yes" and seen["remote_addr"] == "127.0.0.1" and seen["scheme"] == "http"


def test_large_body_reaches_django_through_the_body_channel(served):
    """Over 512 KiB the server streams the body on a `?` channel that Channels' request reads."""
    body = os.urandom(700 * 1024)
    status, _, answer = request(
        served.server, "POST", "/request/", body=body, headers={"Content-Type": "application/octet-stream"}
    )
    assert status == 200, answer
    seen = json.loads(answer)
    assert seen["body_length"] == len(body) and seen["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_groups_deliver_a_reply(served):
    status, _, body = request(served.server, "GET", "/group-reply/")
    assert (status, body) == (200, b"answered through a group"), served.worker.output


def test_websocket_echo(served):
    answers = asyncio.run(_ws_exchange(served.port, "/echo/", ["hello", b"\x00\xffbinary"]))
    assert answers == ["hello", b"\x00\xffbinary"]


def test_websocket_group_chat_reaches_every_member(served):
    text = f"hello from set-up {served.name}"
    assert asyncio.run(_chat(served.port, text)) == (text, text)


# -- the prefix rule ------------------------------------------------------------------------------


def test_default_prefixes_differ(venv_a, venv_b):
    signature = (
        "import inspect, {0};print(inspect.signature({0}.RedisChannelLayer).parameters['prefix'].default)"
    )
    asgi_default = venv_a.run("-c", signature.format("asgi_redis")).strip()
    telex_default = venv_b.run("-c", signature.format("telex.layers")).strip()
    assert (asgi_default, telex_default) == ("asgi:", "telex:")


def test_both_formats_share_one_redis_database_without_sharing_a_key(setup_a, setup_b, shared_redis):
    """With both set-ups live on database 0, every key is under exactly one default prefix."""

    async def hold_chats_open() -> list[str]:
        async with (
            websockets.connect(f"ws://127.0.0.1:{setup_a.port}/chat/") as first,
            websockets.connect(f"ws://127.0.0.1:{setup_b.port}/chat/") as second,
        ):
            # A message round trip on each proves both connections joined their group.
            for ws in (first, second):
                await ws.send("ping")
                assert await asyncio.wait_for(ws.recv(), 10) == "ping"
            client = redis.Redis(host=shared_redis.host, port=shared_redis.port)
            try:
                return [key.decode() for key in client.scan_iter(count=1000)]
            finally:
                client.close()

    keys = asyncio.run(hold_chats_open())
    # asgi_redis writes under two prefixes: `prefix` and `stats_prefix` ("asgi-meta:").
    asgi_keys = [k for k in keys if k.startswith(("asgi:", "asgi-meta:"))]
    telex_keys = [k for k in keys if k.startswith("telex:")]
    assert sorted(asgi_keys + telex_keys) == sorted(keys)
    # asgi_redis names a group's key "%s:group:%s" % (prefix, group): a double colon.
    assert "asgi::group:chat" in asgi_keys and "telex:g:chat" in telex_keys, keys

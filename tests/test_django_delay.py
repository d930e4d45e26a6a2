"""telex.django.delay with real processes: runworker and rundelay on a real redis-server, a sqlite file.

A message to ``asgi.delay`` is stored by ``rundelay`` and arrives on its
target channel once due; stored messages survive a restart of rundelay; a
database that Channels 1.1.8's ``channels.delay`` migrated is adopted with
``migrate telex_delay --fake-initial``, its rows sent.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

pytest.importorskip("django")
pytest.importorskip("redis")

from tests.support.processes import TelexProcess, telex_env

pytestmark = [pytest.mark.redis]

PROJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "djangoproject")
TABLE = "channels.delay_delayedmessage"

#: What ``manage.py migrate`` of Channels 1.1.8 (Django 2.1.15) wrote for
#: ``channels.delay``, read back from ``sqlite_master`` of a real run.
LEGACY_SCHEMA = [
    'CREATE TABLE IF NOT EXISTS "django_migrations" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
    '"app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "applied" datetime NOT NULL)',
    'CREATE TABLE "channels.delay_delayedmessage" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
    '"due_date" datetime NOT NULL, "channel_name" varchar(512) NOT NULL, "content" text NOT NULL)',
    'CREATE INDEX "channels.delay_delayedmessage_due_date_702552e5" '
    'ON "channels.delay_delayedmessage" ("due_date")',
]


@pytest.fixture
def site(tmp_path, redis_server):
    """The test project's environment: its own sqlite file and Redis prefix."""
    prefix = f"delay-{uuid.uuid4().hex[:8]}:"
    env = {
        "TELEX_TEST_DB": str(tmp_path / "db.sqlite3"),
        "TELEX_TEST_LAYER": redis_server.url,
        "TELEX_TEST_PREFIX": prefix,
    }
    from telex.layers.redis import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[redis_server.url], prefix=prefix)
    return env, layer


def manage(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=telex_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def process(env: dict, command: str, ready: str, *args: str) -> TelexProcess:
    return TelexProcess(
        [command, *args], env=env, ready=ready, cwd=PROJECT, command=[sys.executable, "manage.py"]
    )


def rundelay(env: dict, *args: str) -> TelexProcess:
    return process(env, "rundelay", r"listening on asgi\.delay", "--sleep", "0.2", *args)


def wait_for_message(layer, channel: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        name, content = layer.receive([channel], block=True)
        if name is not None:
            return content
    raise AssertionError(f"nothing arrived on {channel} within {timeout} s")


def stored_rows(env: dict) -> list[tuple]:
    with sqlite3.connect(env["TELEX_TEST_DB"]) as db:
        return db.execute(f'SELECT channel_name, content FROM "{TABLE}" ORDER BY id').fetchall()


def wait_for_rows(env: dict, count: int, timeout: float = 10.0) -> list[tuple]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = stored_rows(env)
        if len(rows) == count:
            return rows
        time.sleep(0.05)  # a row in another process's database: nothing to wait on but the file
    raise AssertionError(f"expected {count} stored row(s), found {stored_rows(env)}")


def test_message_to_asgi_delay_arrives_on_its_target_channel_after_the_delay(site):
    env, layer = site
    assert manage(env, "migrate", "-v", "0").returncode == 0
    with process(env, "runworker", "worker listening on"), rundelay(env) as delay:
        layer.send("asgi.delay", {"channel": "delay.target"})  # malformed: logged, dropped
        started = time.monotonic()
        layer.send("delay.schedule", {"target": "delay.target", "n": 1, "delay": 700})
        assert wait_for_message(layer, "delay.target") == {"n": 1}
        assert time.monotonic() - started >= 0.7
        delay.wait_for(r"dropped a message on asgi\.delay: missing key\(s\) content, delay")
    assert stored_rows(env) == []


def test_stored_messages_survive_a_rundelay_restart(site):
    env, layer = site
    assert manage(env, "migrate", "-v", "0").returncode == 0
    first = rundelay(env).start()
    try:
        layer.send("asgi.delay", {"channel": "delay.later", "content": {"kept": True}, "delay": 1500})
        assert wait_for_rows(env, 1) == [("delay.later", '{"kept": true}')]
        first.signal(signal.SIGTERM)
        assert first.wait(15) == 0
    finally:
        first.stop()
    assert layer.receive(["delay.later"], block=False) == (None, None)
    with rundelay(env):
        assert wait_for_message(layer, "delay.later") == {"kept": True}
    assert stored_rows(env) == []


def test_channels_delay_table_is_adopted_with_fake_initial_and_its_rows_sent(site, tmp_path):
    env, layer = site
    with sqlite3.connect(env["TELEX_TEST_DB"]) as db:
        for statement in LEGACY_SCHEMA:
            db.execute(statement)
        db.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES ('channels.delay', '0001_initial', ?)",
            ("2017-06-01 12:00:00",),
        )
        # As Channels' DelayedMessage stored them: UTC datetimes, the content as JSON.
        db.execute(
            f'INSERT INTO "{TABLE}" (due_date, channel_name, content) VALUES (?, ?, ?)',
            ("2017-06-01 12:00:05.000000", "legacy.target", '{"n": 1}'),
        )
        db.execute(
            f'INSERT INTO "{TABLE}" (due_date, channel_name, content) VALUES (?, ?, ?)',
            ("2999-01-01 00:00:00.000000", "legacy.later", '{"n": 2}'),
        )

    plain = manage(env, "migrate", "telex_delay")
    assert plain.returncode != 0 and "already exists" in plain.stderr

    adopted = manage(env, "migrate", "telex_delay", "--fake-initial")
    assert adopted.returncode == 0, adopted.stderr
    assert "0001_initial... FAKED" in adopted.stdout
    assert manage(env, "migrate", "-v", "0").returncode == 0

    with rundelay(env):
        assert wait_for_message(layer, "legacy.target") == {"n": 1}
    assert stored_rows(env) == [("legacy.later", '{"n": 2}')]


@pytest.mark.parametrize(
    ("layer", "args", "migrated", "expected"),
    [
        (
            "memory",
            (),
            True,
            "CommandError: CHANNEL_LAYERS['default']: the in-memory layer cannot be used across processes;",
        ),
        (
            "redis",
            ("--sleep", "0"),
            True,
            "CommandError: --sleep must be a positive number of seconds, got 0.0",
        ),
        ("redis", ("--layer", "other"), True, "CommandError: CHANNEL_LAYERS has no alias 'other'"),
        (
            "redis",
            (),
            False,
            "CommandError: the table 'channels.delay_delayedmessage' of telex.django.delay does not exist: "
            "run 'manage.py migrate telex_delay'",
        ),
    ],
)
def test_rundelay_bad_configuration_is_one_line(site, layer, args, migrated, expected):
    env, _ = site
    if layer == "memory":
        env = {**env, "TELEX_TEST_LAYER": "memory"}
    if migrated:
        assert manage(env, "migrate", "-v", "0").returncode == 0
    result = manage(env, "rundelay", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr

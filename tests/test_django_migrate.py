"""``python -m telex.django.migrate``: on the Channels 1.x project in tests/channels1, then running it.

The command runs as a subprocess on a copy of the project; the migrated
copy is then checked by Django and served end to end (``telex serve`` in
front, ``manage.py runworker`` behind, over a real redis-server).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from telex.django.migrate import rewrite_source
from tests.support.processes import ROOT, TelexProcess, TelexServer, telex_env
from tests.support.redis_server import RedisServer

CHANNELS1 = os.path.join(ROOT, "tests", "channels1")

#: Every line the migration changes in tests/channels1, as (removed, added).
EXPECTED_CHANGES = {
    "chatproject/asgi.py": (
        "from channels.asgi import get_channel_layer",
        "from telex.django.asgi import get_channel_layer",
    ),
    "chatproject/consumers.py": ("from channels import Group", "from telex.django import Group"),
    "chatproject/routing.py": (
        "from channels.routing import route",
        "from telex.django.routing import route",
    ),
    "chatproject/settings.py": ('INSTALLED_APPS = ["channels"]', 'INSTALLED_APPS = ["telex.django"]'),
}


def read(*parts: str) -> str:
    return Path(*parts).read_text()


def migrate(*args: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "telex.django.migrate", *args],
        capture_output=True,
        text=True,
        env=telex_env(),
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.fixture
def project(tmp_path) -> str:
    path = str(tmp_path / "channels1")
    shutil.copytree(CHANNELS1, path, ignore=shutil.ignore_patterns("__pycache__"))
    return path


def diff_lines(diff: str) -> dict[str, list[str]]:
    """Changed lines per file of a unified diff (``-old`` / ``+new``)."""
    files: dict[str, list[str]] = {}
    current = None
    for line in diff.splitlines():
        if line.startswith("+++ b/"):
            current = files.setdefault(line[len("+++ b/") :], [])
        elif line.startswith(("---", "@@")):
            continue
        elif line.startswith(("-", "+")) and current is not None:
            current.append(line)
    return files


def test_check_prints_the_diff_and_writes_nothing(project):
    before = {name: read(project, name) for name in EXPECTED_CHANGES}
    result = migrate(project, "--check")
    assert result.returncode == 1, result.stderr
    assert diff_lines(result.stdout) == {
        name: [f"-{old}", f"+{new}"] for name, (old, new) in EXPECTED_CHANGES.items()
    }
    assert result.stderr.strip() == "4 file(s) would change"
    assert {name: read(project, name) for name in EXPECTED_CHANGES} == before


def test_migration_rewrites_only_what_it_must_and_a_second_run_changes_nothing(project):
    originals = {}
    for directory, _, files in os.walk(project):
        for name in files:
            path = os.path.join(directory, name)
            originals[os.path.relpath(path, project)] = read(path)

    result = migrate(project)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(
        f"rewrote {os.path.join(project, name)}" for name in EXPECTED_CHANGES
    )
    for name, text in originals.items():
        now = read(project, name)
        if name in EXPECTED_CHANGES:
            old, new = EXPECTED_CHANGES[name]
            assert now == text.replace(old, new)
        else:
            assert now == text, name  # docstrings mentioning Channels stay as they were
    # The backend strings stay: telex.django accepts them.
    assert '"asgi_redis.RedisChannelLayer"' in read(project, "chatproject", "settings.py")

    again = migrate(project, "--check")
    assert (again.returncode, again.stdout) == (0, "")
    assert migrate(project).stdout == ""


def test_the_migrated_project_passes_djangos_checks_and_serves(project):
    env = {"PYTHONPATH": ROOT + os.pathsep + project, "CHANNELS1_LAYER": "asgi_redis"}
    assert migrate(project).returncode == 0
    check = subprocess.run(
        [sys.executable, "manage.py", "check"],
        capture_output=True,
        text=True,
        env=telex_env(env),
        cwd=project,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert "System check identified no issues" in check.stdout

    with RedisServer() as redis:
        env["CHANNELS1_REDIS_PORT"] = str(redis.port)
        worker = TelexProcess(
            ["runworker"],
            env=env,
            cwd=project,
            command=(sys.executable, "manage.py"),
            ready="worker listening on",
        )
        with worker, TelexServer("chatproject.asgi:channel_layer", env=env, cwd=project) as server:
            with urllib.request.urlopen(server.url + "/hello/", timeout=10) as response:
                assert response.read() == b"Hello from Channels 1.x! You asked for /hello/"
            # No route: Django's view, through telex.django's view consumer.
            with urllib.request.urlopen(server.url + "/request/?q=1", timeout=10) as response:
                assert b'"query": {"q": "1"}' in response.read()


def test_bad_path_is_one_line_and_exit_2(tmp_path):
    result = migrate(str(tmp_path / "missing"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"telex.django.migrate: error: PATH {str(tmp_path / 'missing')!r} does not exist"
    ]
    assert result.stdout == ""


def test_files_that_are_not_python_3_are_skipped_and_named(tmp_path):
    (tmp_path / "old.py").write_text("print 'channels'\nimport channels\n")
    (tmp_path / "new.py").write_text("import channels\n")
    result = migrate(str(tmp_path))
    assert result.returncode == 0
    assert f"{tmp_path / 'old.py'}: skipped, not Python 3 source" in result.stderr
    assert "1 file(s) changed, 1 skipped" in result.stderr
    assert (tmp_path / "new.py").read_text() == "import telex.django\n"


def rewrite(source: str) -> str:
    return rewrite_source(textwrap.dedent(source)).text


def test_every_import_form_maps_one_to_one():
    assert rewrite(
        """\
        import channels
        import channels.routing, os
        import channels.auth as auth
        from channels import Group as G, Channel, routing
        from  channels . generic.websockets import (
            JsonWebsocketConsumer,  # from channels
        )
        from channels.test import ChannelTestCase
        from channels.delay.models import DelayedMessage
        """
    ) == textwrap.dedent(
        """\
        import telex.django
        import telex.django.routing, os
        import telex.django.auth as auth
        from telex.django import Group as G, Channel, routing
        from  telex.django.generic.websockets import (
            JsonWebsocketConsumer,  # from channels
        )
        from telex.django.test import ChannelTestCase
        from telex.django.delay.models import DelayedMessage
        """
    )


def test_lookalikes_strings_comments_and_relative_imports_are_left_alone():
    source = textwrap.dedent(
        """\
        # import channels
        '''from channels import Group'''
        import channels_redis
        import mychannels.channels
        from channels_redis.core import RedisChannelLayer
        from . import channels
        from .channels import x
        CHANNEL_LAYERS = {"default": {"BACKEND": "asgi_redis.RedisChannelLayer", "ROUTING": "channels.x"}}
        print("channels", channels)
        """
    )
    assert rewrite(source) == source


def test_uses_of_an_imported_package_are_renamed_where_they_refer_to_it():
    assert rewrite(
        """\
        import channels.routing

        def f(channels):
            return channels.x

        def g():
            return channels.Group("x"), channels.routing.route

        class K:
            channels = 1
            value = channels

            def m(self):
                return channels.Channel("a"), [channels for channels in range(3)]
        """
    ) == textwrap.dedent(
        """\
        import telex.django.routing

        def f(channels):
            return channels.x

        def g():
            return telex.django.Group("x"), telex.django.routing.route

        class K:
            channels = 1
            value = channels

            def m(self):
                return telex.django.Channel("a"), [channels for channels in range(3)]
        """
    )


def test_a_package_name_also_assigned_is_left_for_the_user_with_a_warning():
    result = rewrite_source("import channels\nchannels = channels.Channel\n", "x.py")
    assert result.text == "import telex.django\nchannels = channels.Channel\n"
    assert result.warnings == [
        "x.py:2: 'channels' is imported and also assigned here; "
        "its uses were not renamed, change them by hand"
    ]


def test_installed_apps_entries_in_every_form():
    assert rewrite(
        """\
        INSTALLED_APPS = ["channels", 'channels.delay', "channels_redis", "mychannels"]
        INSTALLED_APPS += ("channels.apps.ChannelsConfig",)
        INSTALLED_APPS.append(u"channels.delay.apps.DelayConfig")
        settings.configure(INSTALLED_APPS=["channels"])
        APPS = ["channels"]
        """
    ) == textwrap.dedent(
        """\
        INSTALLED_APPS = ["telex.django", 'telex.django.delay', "channels_redis", "mychannels"]
        INSTALLED_APPS += ("telex.django.apps.TelexDjangoConfig",)
        INSTALLED_APPS.append(u"telex.django.delay.apps.DelayConfig")
        settings.configure(INSTALLED_APPS=["telex.django"])
        APPS = ["channels"]
        """
    )


def test_non_ascii_text_before_a_rewrite_keeps_its_place():
    source = 'NAME = "Zoë"; from channels import Group  # café\n'
    assert rewrite_source(source).text == 'NAME = "Zoë"; from telex.django import Group  # café\n'

"""Data binding of ``telex.django`` end to end: model changes reach sockets; sockets change models.

``telex serve`` on Redis and one Django worker process; the binding and its
demultiplexer are in tests/djangoproject/tapp/consumers_binding.py (Note
changes on the "notes" stream of /binding/notes/). Outbound changes are
made in separate Python processes of the project, as a view or a shell
would make them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from tests.support.django_deploy import Deployment, migrate, receive_json

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("django-binding") / "db.sqlite3")
    migrate(path)
    return path


@pytest.fixture(scope="module")
def deployment(redis_server, database) -> Iterator[Deployment]:
    with Deployment(redis_server.url, database, [{"threads": 2}]) as deployed:
        yield deployed


def note(database: str, pk: int) -> tuple | None:
    with sqlite3.connect(database, timeout=20) as db:
        return db.execute("SELECT title, value, secret FROM tapp_note WHERE id = ?", (pk,)).fetchone()


def change(action: str, pk: int, title: str, value: int) -> dict:
    data = {"title": title, "value": value, "shout": title.upper()}
    return {"stream": "notes", "payload": {"action": action, "pk": pk, "data": data, "model": "tapp.note"}}


def send(socket, payload: dict) -> None:
    socket.send(json.dumps({"stream": "notes", "payload": payload}))


def test_saves_and_deletes_in_another_process_reach_the_group(deployment):
    with connect(deployment.ws_url("/binding/notes/"), open_timeout=10) as socket:
        out = deployment.run_django(
            "from tapp.models import Note\n"
            "a = Note.objects.create(title='first', value=1, secret='not sent')\n"
            "a.value = 2\n"
            "a.save()\n"
            "a.title = 'hidden now'\n"  # in no group (before and after, as pre_save sees it): nothing
            "a.save()\n"
            "b = Note.objects.create(title='second', value=3)\n"
            "print(a.pk, b.pk)\n"
            "a.delete()\n"
            "b.delete()\n"
        )
        first, second = (int(pk) for pk in out.split())
        assert receive_json(socket) == change("create", first, "first", 1)
        assert receive_json(socket) == change("update", first, "first", 2)
        assert receive_json(socket) == change("create", second, "second", 3)
        assert receive_json(socket) == change("delete", second, "second", 3)


def test_inbound_create_update_and_refused_delete_through_the_demultiplexer(deployment, database):
    with connect(deployment.ws_url("/binding/notes/"), open_timeout=10) as socket:
        send(socket, {"action": "create", "data": {"title": "from a socket", "value": 7}})
        created = receive_json(socket)
        pk = created["payload"]["pk"]
        assert created == change("create", pk, "from a socket", 7)
        assert note(database, pk) == ("from a socket", 7, "")

        # "secret" is excluded from the binding: not written from a socket.
        send(socket, {"action": "update", "pk": pk, "data": {"value": 8, "secret": "injected"}})
        assert receive_json(socket) == change("update", pk, "from a socket", 8)
        assert note(database, pk) == ("from a socket", 8, "")

        # Anonymous sockets may not delete (has_permission); frames run in order (strict_ordering),
        # so the next broadcast is the create that follows, and the note is still there.
        send(socket, {"action": "delete", "pk": pk})
        send(socket, {"action": "create", "data": {"title": "after", "value": 9}})
        assert receive_json(socket)["payload"]["data"]["title"] == "after"
        assert note(database, pk) == ("from a socket", 8, "")

    headers = {"Cookie": f"sessionid={deployment.log_in('dora')}"}
    with connect(deployment.ws_url("/binding/notes/"), additional_headers=headers, open_timeout=10) as socket:
        send(socket, {"action": "delete", "pk": pk})
        assert receive_json(socket) == change("delete", pk, "from a socket", 8)
    assert note(database, pk) is None

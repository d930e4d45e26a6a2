"""The tests a Channels 1.x project has, with ``channels`` → ``telex.django`` in the imports."""

import json
import threading
import urllib.request

from django.contrib.auth.models import User

from telex.django import Channel, Group
from telex.django.routing import route
from telex.django.test import (
    ChannelLiveServerTestCase,
    ChannelTestCase,
    Client,
    HttpClient,
    TransactionChannelTestCase,
    WSClient,
    apply_routes,
)

from .models import Note


def shout(message):
    message.reply_channel.send({"text": message.content["text"].upper()})


def held_then_raise(message):
    message.reply_channel.send({"text": "never"})
    raise RuntimeError("consumer failed")


class ChannelTestCaseTests(ChannelTestCase):
    def test_a_send_in_the_test_is_the_next_message_on_its_channel(self):
        Channel("things").send({"n": 1})
        message = self.get_next_message("things", require=True)
        self.assertEqual(message.content, {"n": 1})
        self.assertEqual(message.channel.name, "things")
        self.assertIsNone(self.get_next_message("things"))

    def test_require_fails_the_test_when_nothing_came(self):
        with self.assertRaisesMessage(AssertionError, "Expected a message on channel nothing, got none"):
            self.get_next_message("nothing", require=True)

    def test_timeout_waits_for_a_message_sent_from_another_thread(self):
        sender = threading.Timer(0.05, lambda: Channel("late").send({"late": True}))
        sender.start()
        try:
            self.assertEqual(self.get_next_message("late", require=True, timeout=5).content, {"late": True})
        finally:
            sender.join()

    def test_client_runs_the_routed_consumer_and_receives_its_reply(self):
        client = Client()
        client.send_and_consume("ping", {"n": 7})
        self.assertEqual(client.receive(), {"pong": 7})
        self.assertIsNone(client.receive())

    def test_consumer_writes_in_the_test_transaction_and_its_sends_are_flushed(self):
        Client().send_and_consume("notes.add", {"text": "hello"})
        self.assertEqual(list(Note.objects.values_list("text", flat=True)), ["hello"])
        self.assertEqual(self.get_next_message("notes.added", require=True)["text"], "hello")

    def test_consume_without_a_message_or_a_route_fails(self):
        client = Client()
        with self.assertRaisesMessage(AssertionError, "No message for channel ping"):
            client.consume("ping")
        client.send("unrouted", {})
        with self.assertRaisesMessage(AssertionError, "Can't find consumer"):
            client.consume("unrouted")
        self.assertIsNone(client.consume("ping", fail_on_none=False))

    def test_consumer_exceptions_reach_the_test_and_its_sends_are_dropped(self):
        client = Client()
        with apply_routes([route("boom", held_then_raise)]):
            with self.assertRaisesMessage(RuntimeError, "consumer failed"):
                client.send_and_consume("boom", {})
        self.assertIsNone(client.receive())

    def test_group_membership_through_join_group(self):
        client = Client()
        client.join_group("news")
        Group("news").send({"text": "extra"})
        self.assertEqual(client.receive(), {"text": "extra"})

    def test_get_consumer_by_channel(self):
        from . import consumers

        self.assertIs(Client().get_consumer_by_channel("ping"), consumers.ping)


class WSClientTests(ChannelTestCase):
    def test_connect_is_accepted_and_receive_parses_json(self):
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/chat/")
        client.send_and_consume("websocket.receive", text="hi", path="/chat/")
        self.assertEqual(client.receive(), {"echo": "hi", "path": "/chat/"})

    def test_text_that_is_not_a_string_is_sent_as_json(self):
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/chat/")
        client.send_and_consume("websocket.receive", text={"a": 1}, path="/chat/?x=1")
        self.assertEqual(json.loads(client.receive()["echo"]), {"a": 1})

    def test_receive_without_json_gives_the_text(self):
        client = WSClient()
        client.send_and_consume("websocket.connect", path="/chat/")
        client.send_and_consume("websocket.receive", text="[1]", path="/chat/")
        self.assertEqual(json.loads(client.receive(json=False)), {"echo": "[1]", "path": "/chat/"})

    def test_a_rejected_connect_fails_check_accept(self):
        client = WSClient()
        with apply_routes(
            [route("websocket.connect", lambda message: message.reply_channel.send({"close": True}))]
        ):
            with self.assertRaisesMessage(AssertionError, "Connection rejected"):
                client.send_and_consume("websocket.connect")

    def test_websocket_close_exception_closes_with_its_code(self):
        client = WSClient()
        client.send_and_consume("websocket.receive", text="x", path="/close/")
        self.assertEqual(client.receive(), {"close": 4123})

    def test_connect_carries_path_query_string_headers_and_cookies(self):
        seen = []
        client = WSClient()
        client.set_header("user-agent", "tests")
        client.set_cookie("flavour", "plain")
        with apply_routes([route("websocket.connect", lambda message: seen.append(message.content))]):
            client.send_and_consume("websocket.connect", path="/room/?name=a", check_accept=False)
        content = seen[0]
        self.assertEqual((content["path"], content["query_string"]), ("/room/", b"name=a"))
        headers = dict(map(tuple, content["headers"]))
        self.assertEqual(headers[b"user-agent"], b"tests")
        self.assertIn(b"flavour=plain", headers[b"cookie"])
        self.assertIn(b"sessionid=", headers[b"cookie"])

    def test_ordered_client_numbers_its_messages(self):
        orders = []
        client = WSClient(ordered=True)
        with apply_routes(
            [route("websocket.receive", lambda message: orders.append(message.content["order"]))]
        ):
            for _ in range(3):
                client.send_and_consume("websocket.receive", text="x")
        self.assertEqual(orders, [0, 1, 2])

    def test_force_login_puts_the_user_in_the_session_the_cookie_names(self):
        user = User.objects.create_user("ann", password="pw")
        client = WSClient()
        client.force_login(user)
        self.assertEqual(client.session["_auth_user_id"], str(user.pk))
        self.assertTrue(WSClient().login(username="ann", password="pw"))
        self.assertFalse(WSClient().login(username="ann", password="wrong"))

    def test_http_client_is_the_ws_client(self):
        self.assertIs(HttpClient, WSClient)


@apply_routes([route("shout", shout)])
class ApplyRoutesOnAClassTests(ChannelTestCase):
    def test_the_class_routing_is_used(self):
        client = Client()
        client.send_and_consume("shout", {"text": "quiet"})
        self.assertEqual(client.receive(), {"text": "QUIET"})
        with self.assertRaisesMessage(AssertionError, "Can't find consumer"):
            client.send_and_consume("ping", {})

    @apply_routes([[route("shout", shout)], [route("ping", shout)]])
    def test_lists_of_routing_lists_are_included(self):
        client = Client()
        client.send_and_consume("ping", {"text": "a"})
        self.assertEqual(client.receive(), {"text": "A"})


class TransactionTests(TransactionChannelTestCase):
    def test_consumer_commits_and_the_layer_is_in_memory(self):
        from telex.django import channel_layers
        from telex.layers import InMemoryChannelLayer

        self.assertIsInstance(channel_layers["default"].channel_layer, InMemoryChannelLayer)
        Client().send_and_consume("notes.add", {"text": "committed"})
        self.assertTrue(Note.objects.filter(text="committed").exists())


class LiveServerTests(ChannelLiveServerTestCase):
    def test_django_view_sees_the_test_database(self):
        Note.objects.create(text="live")
        with urllib.request.urlopen(self.live_server_url + "/notes/", timeout=10) as response:
            self.assertEqual(response.read(), b"live")

    def test_websocket_consumer_on_the_live_server(self):
        from websockets.sync.client import connect

        with connect(self.live_server_ws_url + "/notes/", open_timeout=10) as socket:
            socket.send("from the browser")
            self.assertEqual(json.loads(socket.recv(timeout=10)), {"notes": 1})
        self.assertEqual(Note.objects.get().text, "from the browser")

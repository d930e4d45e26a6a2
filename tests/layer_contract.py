"""The ASGI 1 channel layer contract (asgi.rst), one test per rule.

A test module for a concrete layer subclasses :class:`LayerContract` and
provides a ``make_layer`` fixture: a factory taking the layer's keyword
arguments (``expiry``, ``capacity``, ``channel_capacity``, ...) and returning
a fresh, empty layer.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time

import pytest

from telex.layers import ChannelFull, MessageTooLarge
from tests.support.waiting import wait_until


class LayerContract:
    # -- Channels and Messages: names -------------------------------------------

    def test_channel_names_allow_ascii_letters_digits_dash_underscore_period(self, make_layer):
        layer = make_layer()
        layer.send("Aa0-_.z", {"x": 1})
        assert layer.receive(["Aa0-_.z"]) == ("Aa0-_.z", {"x": 1})

    @pytest.mark.parametrize("name", ["", "a b", "a/b", "caf\u00e9", "a:b", "?abc", "!abc", "a*"])
    def test_channel_names_reject_other_characters(self, make_layer, name):
        with pytest.raises(ValueError):
            make_layer().send(name, {})

    @pytest.mark.parametrize("name", ["a?b?c", "a!b!c", "a?b!c", "a!b?c"])
    def test_channel_names_allow_at_most_one_type_character(self, make_layer, name):
        with pytest.raises(ValueError):
            make_layer().send(name, {})

    def test_channel_names_must_be_str(self, make_layer):
        with pytest.raises(TypeError):
            make_layer().send(b"bytes", {})

    def test_names_of_at_least_100_characters_are_allowed(self, make_layer):
        layer = make_layer()
        name = "n" * 150
        layer.send(name, {"ok": True})
        assert layer.receive([name]) == (name, {"ok": True})

    def test_receive_of_process_specific_name_must_end_at_the_bang(self, make_layer):
        with pytest.raises(ValueError, match="up to and including"):
            make_layer().receive(["http.response.abc!local"])

    def test_new_channel_requires_pattern_ending_in_question_or_bang(self, make_layer):
        layer = make_layer()
        for pattern in ("http.request.body", "http.request.body?x", ""):
            with pytest.raises(ValueError):
                layer.new_channel(pattern)

    def test_new_channel_returns_a_fresh_valid_name(self, make_layer):
        layer = make_layer()
        names = {layer.new_channel("http.request.body?") for _ in range(50)}
        assert len(names) == 50
        for name in names:
            assert name.startswith("http.request.body?") and len(name) > len("http.request.body?")
            assert layer.receive([name]) == (None, None)
        bang = layer.new_channel("proc!")
        assert bang.startswith("proc!") and len(bang) > 5

    def test_group_names_allow_no_type_characters(self, make_layer):
        layer = make_layer()
        for name in ("chat?", "chat!x", "a b", ""):
            with pytest.raises(ValueError):
                layer.group_add(name, "somechannel")

    # -- Channels and Messages: message types ---------------------------------

    @pytest.mark.parametrize("message", [[], "text", b"bytes", None, 1])
    def test_message_must_be_a_dict(self, make_layer, message):
        with pytest.raises(TypeError, match="must be a dict"):
            make_layer().send("c", message)

    def test_message_keys_must_be_str_and_the_error_names_the_key(self, make_layer):
        with pytest.raises(TypeError, match=r"message\['outer'\].*key of type int"):
            make_layer().send("c", {"outer": {1: "x"}})

    @pytest.mark.parametrize("bad", [{1, 2}, object(), bytearray(b"x"), 1j])
    def test_message_values_limited_to_the_spec_types(self, make_layer, bad):
        with pytest.raises(TypeError, match=r"message\['list'\]\[1\]"):
            make_layer().send("c", {"list": ["fine", bad]})

    def test_a_message_containing_itself_is_refused_not_crashed_on(self, make_layer):
        looped: dict = {"list": []}
        looped["list"].append(looped)
        with pytest.raises(TypeError, match="nested too deeply"):
            make_layer().send("c", looped)

    def test_integers_limited_to_signed_64_bit(self, make_layer):
        layer = make_layer()
        layer.send("c", {"n": 2**63 - 1, "m": -(2**63)})
        assert layer.receive(["c"]) == ("c", {"n": 2**63 - 1, "m": -(2**63)})
        with pytest.raises(TypeError, match="64-bit"):
            layer.send("c", {"n": 2**63})

    @pytest.mark.parametrize(
        ("bad", "error"),
        [
            ({"l": ["ok", {"k": b"", 1: "x"}]}, r"message\['l'\]\[1\] has a key of type int"),
            ({"l": [[1, 2**64]]}, r"message\['l'\]\[0\]\[1\] is an integer outside"),
            ({"t": (None, {"d": [1.5, {1j}]})}, r"message\['t'\]\[1\]\['d'\]\[1\] is of type set"),
        ],
    )
    def test_items_are_checked_at_every_depth(self, make_layer, bad, error):
        with pytest.raises(TypeError, match=error):
            make_layer().send("c", bad)

    def test_every_spec_type_round_trips_and_bytes_stay_distinct_from_str(self, make_layer):
        layer = make_layer()
        message = {
            "bytes": b"\x00\xffraw",
            "text": "caf\u00e9",
            "int": -5,
            "float": 1.5,
            "bool": True,
            "none": None,
            "list": [b"a", "a", [1, 2]],
            "dict": {"nested": {"deep": b""}},
            "empty_bytes": b"",
            "empty_text": "",
        }
        layer.send("c", message)
        _, received = layer.receive(["c"])
        assert received == message
        assert type(received["bytes"]) is bytes and type(received["text"]) is str
        assert type(received["empty_bytes"]) is bytes and type(received["empty_text"]) is str
        assert type(received["bool"]) is bool

    def test_tuples_arrive_as_lists(self, make_layer):
        layer = make_layer()
        layer.send("c", {"headers": ((b"a", b"b"),)})
        assert layer.receive(["c"]) == ("c", {"headers": [[b"a", b"b"]]})

    def test_messages_are_copied_on_send(self, make_layer):
        layer = make_layer()
        message = {"list": [1], "dict": {"k": "v"}}
        layer.send("c", message)
        message["list"].append(2)
        message["dict"]["k"] = "changed"
        message["new"] = True
        assert layer.receive(["c"]) == ("c", {"list": [1], "dict": {"k": "v"}})

    def test_message_too_large_names_size_and_limit(self, make_layer):
        layer = make_layer(max_message_size=2000)
        with pytest.raises(MessageTooLarge, match=r"\d+ bytes.*limit is 2000 bytes"):
            layer.send("c", {"bytes": b"x" * 3000})
        assert layer.receive(["c"]) == (None, None)

    def test_a_one_mib_websocket_message_fits_the_default_limit(self, make_layer):
        layer = make_layer()
        message = {
            "reply_channel": "websocket.send.abcdef!ghijkl",
            "path": "/chat/",
            "order": 12,
            "bytes": b"\x01" * (1024 * 1024),
            "text": None,
        }
        layer.send("websocket.receive", message)
        assert layer.receive(["websocket.receive"])[1]["bytes"] == message["bytes"]
        layer.send("websocket.receive", dict(message, bytes=None, text="\u00e9" * (512 * 1024)))
        assert len(layer.receive(["websocket.receive"])[1]["text"]) == 512 * 1024

    # -- Specification Details: send / receive ------------------------------

    def test_channels_are_first_in_first_out(self, make_layer):
        layer = make_layer()
        for i in range(20):
            layer.send("fifo", {"i": i})
        assert [layer.receive(["fifo"])[1]["i"] for _ in range(20)] == list(range(20))

    def test_nonblocking_receive_returns_none_none_when_empty(self, make_layer):
        layer = make_layer()
        started = time.monotonic()
        assert layer.receive(["empty"], block=False) == (None, None)
        assert time.monotonic() - started < 1

    def test_process_specific_channels_are_received_by_prefix_in_order(self, make_layer):
        layer = make_layer()
        layer.send("daphne.response.A!one", {"n": 1})
        layer.send("daphne.response.A!two", {"n": 2})
        layer.send("daphne.response.B!one", {"n": 3})
        layer.send("daphne.response.A!one", {"n": 4})
        received = [layer.receive(["daphne.response.A!"]) for _ in range(4)]
        assert received == [
            ("daphne.response.A!one", {"n": 1}),
            ("daphne.response.A!two", {"n": 2}),
            ("daphne.response.A!one", {"n": 4}),
            (None, None),
        ]
        assert layer.receive(["daphne.response.B!"]) == ("daphne.response.B!one", {"n": 3})

    def test_single_reader_channels_are_in_order(self, make_layer):
        layer = make_layer()
        name = layer.new_channel("http.request.body?")
        for i in range(10):
            layer.send(name, {"content": bytes([i])})
        assert [layer.receive([name])[1]["content"] for _ in range(10)] == [bytes([i]) for i in range(10)]

    def test_a_busy_channel_never_starves_a_quiet_one(self, make_layer):
        layer = make_layer(capacity=1000)
        for i in range(200):
            layer.send("busy", {"i": i})
        layer.send("quiet", {"q": True})
        for i in range(200, 400):
            layer.send("busy", {"i": i})
        seen = [layer.receive(["busy", "quiet"])[0] for _ in range(300)]
        assert "quiet" in seen

    def test_no_message_is_delivered_twice_or_lost_with_racing_threads(self, make_layer):
        layer = make_layer(capacity=10_000)
        total, senders, receivers = 2000, 4, 4
        received: list[int] = []
        lock = threading.Lock()
        done = threading.Event()

        def send(start):
            for i in range(start, total, senders):
                layer.send("race", {"i": i})

        def receive():
            while not done.is_set():
                channel, message = layer.receive(["race"], block=True)
                if channel is not None:
                    with lock:
                        received.append(message["i"])
                        if len(received) == total:
                            done.set()

        threads = [threading.Thread(target=receive) for _ in range(receivers)]
        threads += [threading.Thread(target=send, args=(s,)) for s in range(senders)]
        for thread in threads:
            thread.start()
        assert done.wait(60)
        for _ in range(receivers):
            layer.send("race", {"i": -1})  # release receivers still blocked
        for thread in threads:
            thread.join(30)
        received = [i for i in received if i >= 0]
        assert sorted(received) == list(range(total))

    def test_blocking_receive_in_a_thread_is_woken_by_a_send_from_another_thread(self, make_layer):
        layer = make_layer()
        result = []
        ready = threading.Event()

        def receiver():
            ready.set()
            result.append(layer.receive(["wake"], block=True))

        thread = threading.Thread(target=receiver)
        thread.start()
        ready.wait(5)
        layer.send("wake", {"hello": "world"})
        thread.join(10)
        assert result == [("wake", {"hello": "world"})]

    def test_receive_async_is_woken_by_a_send_from_another_thread(self, make_layer):
        layer = make_layer()

        async def main():
            task = asyncio.ensure_future(layer.receive_async(["wake"]))
            await asyncio.sleep(0.05)
            threading.Thread(target=layer.send, args=("wake", {"n": 1})).start()
            return await asyncio.wait_for(task, 10)

        assert asyncio.run(main()) == ("wake", {"n": 1})

    def test_receive_many_is_an_alias_of_receive(self, make_layer):
        layer = make_layer()
        layer.send("c", {"n": 1})
        assert layer.receive_many(["c"], block=True) == ("c", {"n": 1})

    def test_unread_messages_expire(self, make_layer):
        layer = make_layer(expiry=1)
        layer.send("c", {"old": True})
        time.sleep(1.2)
        layer.send("c", {"old": False})
        assert layer.receive(["c"]) == ("c", {"old": False})
        assert layer.receive(["c"]) == (None, None)

    # -- Capacity --------------------------------------------------------------

    def test_channel_full_is_raised_at_capacity(self, make_layer):
        layer = make_layer(capacity=3)
        for i in range(3):
            layer.send("c", {"i": i})
        with pytest.raises(ChannelFull):
            layer.send("c", {"i": 3})
        layer.receive(["c"])
        layer.send("c", {"i": 4})

    def test_exceptions_are_reachable_on_the_layer_object(self, make_layer):
        layer = make_layer(capacity=1)
        assert issubclass(layer.ChannelFull, Exception)
        assert issubclass(layer.MessageTooLarge, Exception)
        layer.send("c", {})
        with pytest.raises(layer.ChannelFull):
            layer.send("c", {})

    def test_channel_capacity_overrides_by_glob(self, make_layer):
        layer = make_layer(capacity=100, channel_capacity={"small.*": 2})
        layer.send("small.one", {})
        layer.send("small.one", {})
        with pytest.raises(ChannelFull):
            layer.send("small.one", {})
        for _ in range(5):
            layer.send("large", {})

    def test_channel_capacity_overrides_by_regex_first_match_wins(self, make_layer):
        layer = make_layer(
            capacity=100,
            channel_capacity=[(re.compile(r"^http\.request$"), 1), ("http.*", 3)],
        )
        layer.send("http.request", {})
        with pytest.raises(ChannelFull):
            layer.send("http.request", {})
        for _ in range(3):
            layer.send("http.disconnect", {})
        with pytest.raises(ChannelFull):
            layer.send("http.disconnect", {})

    def test_process_specific_channels_share_the_capacity_of_their_non_local_part(self, make_layer):
        layer = make_layer(channel_capacity={"proc.*": 2})
        layer.send("proc.a!one", {})
        layer.send("proc.a!two", {})
        with pytest.raises(ChannelFull):
            layer.send("proc.a!three", {})
        layer.send("proc.b!one", {})  # another process's prefix has its own

    def test_process_specific_channels_have_a_large_default_capacity(self, make_layer):
        layer = make_layer(capacity=2)
        assert layer.get_capacity("http.response.x!y") >= 10_000
        for i in range(50):
            layer.send(f"http.response.x!{i}", {})

    def test_websocket_connect_and_receive_hold_at_least_1000_unless_overridden(self, make_layer):
        layer = make_layer(capacity=2)
        for channel in ("websocket.connect", "websocket.receive"):
            assert layer.get_capacity(channel) == 1000
            for i in range(50):
                layer.send(channel, {"n": i})
        assert layer.get_capacity("websocket.disconnect") == 2
        assert make_layer(capacity=5000).get_capacity("websocket.receive") == 5000
        overridden = make_layer(capacity=2, channel_capacity={"websocket.receive": 3})
        assert overridden.get_capacity("websocket.receive") == 3

    # -- Groups ----------------------------------------------------------------

    def test_send_group_reaches_every_member(self, make_layer):
        layer = make_layer()
        for name in ("m1", "m2", "proc!m3"):
            layer.group_add("chat", name)
        layer.send_group("chat", {"text": "hi"})
        assert layer.receive(["m1"]) == ("m1", {"text": "hi"})
        assert layer.receive(["m2"]) == ("m2", {"text": "hi"})
        assert layer.receive(["proc!"]) == ("proc!m3", {"text": "hi"})

    def test_group_add_twice_is_harmless_and_discard_removes(self, make_layer):
        layer = make_layer()
        layer.group_add("g", "a")
        layer.group_add("g", "a")
        layer.group_add("g", "b")
        assert sorted(layer.group_channels("g")) == ["a", "b"]
        layer.group_discard("g", "a")
        layer.group_discard("g", "never-added")
        assert list(layer.group_channels("g")) == ["b"]
        layer.send_group("g", {"n": 1})
        assert layer.receive(["a"]) == (None, None)

    def test_send_group_skips_full_members_and_never_raises_channel_full(self, make_layer):
        layer = make_layer(capacity=1)
        layer.group_add("g", "full")
        layer.group_add("g", "free")
        layer.send("full", {"first": True})
        layer.send_group("g", {"n": 1})
        assert layer.receive(["free"]) == ("free", {"n": 1})
        assert layer.receive(["full"]) == ("full", {"first": True})
        assert layer.receive(["full"]) == (None, None)

    def test_send_group_to_an_empty_group_is_a_no_op(self, make_layer):
        make_layer().send_group("nobody", {"n": 1})

    def test_group_membership_expires_after_group_expiry(self, make_layer):
        layer = make_layer(group_expiry=1)
        layer.group_add("g", "member")
        assert list(layer.group_channels("g")) == ["member"]
        assert wait_until(lambda: list(layer.group_channels("g")) == [], timeout=5)

    def test_group_extensions_are_declared(self, make_layer):
        layer = make_layer()
        for extension in ("groups", "flush", "statistics", "twisted", "asyncio"):
            assert extension in layer.extensions
        assert isinstance(layer.group_expiry, int)

    # -- Groups: one entry per receiving process (issue 16) --------------------

    def test_a_group_send_writes_one_entry_per_process_prefix(self, make_layer):
        layer = make_layer()
        prefixes = ("srv.a!", "srv.b!", "srv.c!")
        for prefix in prefixes:
            for i in range(20):
                layer.group_add("g", f"{prefix}{i}")
        layer.group_add("g", "plain.one")
        layer.group_add("g", "plain.two")
        layer.send_group("g", {"text": "hi"})
        for prefix in prefixes:
            assert layer.channel_statistics(prefix + "0")["messages_pending"] == 1
        assert layer.channel_statistics("plain.one")["messages_pending"] == 1
        for prefix in prefixes:
            received = [layer.receive([prefix]) for _ in range(21)]
            assert sorted(channel for channel, _ in received[:20]) == sorted(
                f"{prefix}{i}" for i in range(20)
            )
            assert all(message == {"text": "hi"} for _, message in received[:20])
            assert received[20] == (None, None)
        assert layer.receive(["plain.one"]) == ("plain.one", {"text": "hi"})
        assert layer.receive(["plain.two"]) == ("plain.two", {"text": "hi"})
        assert layer.global_statistics()["group_undelivered_count"] == 0

    def test_group_members_get_their_copies_in_queue_order(self, make_layer):
        layer = make_layer()
        for name in ("p!m1", "p!m2", "p!m3"):
            layer.group_add("g", name)
        layer.send("p!m2", {"n": "before"})
        layer.send_group("g", {"n": "group", "list": [1]})
        layer.send("p!m1", {"n": "after"})
        received = [layer.receive(["p!"]) for _ in range(6)]
        assert received[0] == ("p!m2", {"n": "before"})
        assert sorted(channel for channel, _ in received[1:4]) == ["p!m1", "p!m2", "p!m3"]
        assert received[4] == ("p!m1", {"n": "after"})
        assert received[5] == (None, None)
        # Each member's message is its own.
        received[1][1]["list"].append(2)
        assert received[2][1] == {"n": "group", "list": [1]}

    def test_a_group_larger_than_process_local_capacity_reaches_everyone(self, make_layer):
        layer = make_layer(process_local_capacity=5, group_entry_members=20)
        for i in range(40):
            layer.group_add("big", f"srv!{i}")
        layer.send_group("big", {"n": 1})
        layer.send_group("big", {"n": 2})
        assert layer.channel_statistics("srv!0")["messages_pending"] == 4
        received = [layer.receive(["srv!"]) for _ in range(80)]
        assert [message["n"] for _, message in received] == [1] * 40 + [2] * 40
        assert sorted(channel for channel, _ in received[:40]) == sorted(f"srv!{i}" for i in range(40))
        assert layer.receive(["srv!"]) == (None, None)
        assert layer.global_statistics()["group_undelivered_count"] == 0

    def test_a_long_member_list_is_split_into_bounded_entries(self, make_layer):
        layer = make_layer(group_entry_members=3)
        for i in range(7):
            layer.group_add("g", f"srv!{i}")
        layer.send_group("g", {"n": 1})
        assert layer.channel_statistics("srv!x")["messages_pending"] == 3
        received = [layer.receive(["srv!"]) for _ in range(8)]
        assert sorted(channel for channel, _ in received[:7]) == sorted(f"srv!{i}" for i in range(7))
        assert received[7] == (None, None)

    def test_members_a_group_send_could_not_reach_are_counted(self, make_layer):
        layer = make_layer(capacity=1, process_local_capacity=1)
        layer.group_add("g", "full")
        layer.group_add("g", "free")
        for i in range(4):
            layer.group_add("g", f"busy!{i}")
        layer.send("full", {})
        layer.send("busy!0", {})
        layer.send_group("g", {"n": 1})
        assert layer.global_statistics()["group_undelivered_count"] == 5  # "full" and busy!'s four
        assert layer.receive(["free"]) == ("free", {"n": 1})

    def test_group_entries_follow_capacity_overrides(self, make_layer):
        layer = make_layer(channel_capacity={"busy*": 1}, group_entry_members=2)
        for i in range(3):
            layer.group_add("g", f"busy!{i}")
            layer.group_add("g", f"idle!{i}")
        layer.send_group("g", {"n": 1})  # busy! takes the first of its two entries only
        assert layer.global_statistics()["group_undelivered_count"] == 1
        assert layer.channel_statistics("idle!x")["messages_pending"] == 2
        assert sorted(channel for channel, _ in [layer.receive(["busy!"]) for _ in range(2)]) == [
            "busy!0",
            "busy!1",
        ]
        assert len([layer.receive(["idle!"]) for _ in range(3)]) == 3
        assert layer.receive(["busy!", "idle!"]) == (None, None)

    def test_group_messages_that_expire_unread_are_counted(self, make_layer):
        layer = make_layer(expiry=0.5)
        for i in range(4):
            layer.group_add("g", f"gone!{i}")
        layer.send_group("g", {"n": 1})
        time.sleep(0.6)
        assert layer.receive(["gone!"]) == (None, None)
        assert layer.global_statistics()["group_undelivered_count"] == 4

    # -- flush and statistics --------------------------------------------------

    def test_flush_removes_messages_and_groups(self, make_layer):
        layer = make_layer()
        layer.send("c", {})
        layer.send("p!x", {})
        layer.group_add("g", "c")
        layer.flush()
        assert layer.receive(["c", "p!"]) == (None, None)
        assert list(layer.group_channels("g")) == []

    def test_statistics_report_the_spec_keys(self, make_layer):
        layer = make_layer(capacity=1)
        layer.send("stats", {})
        with pytest.raises(ChannelFull):
            layer.send("stats", {})
        channel = layer.channel_statistics("stats")
        assert channel["messages_pending"] == 1
        assert channel["channel_full_count"] == 1
        assert channel["messages_count"] >= 1
        assert channel["messages_max_age"] >= 0
        overall = layer.global_statistics()
        assert overall["messages_pending"] >= 1 and overall["channel_full_count"] >= 1

    # -- telex.store and telex.ordering extensions (the toolkit's needs) --------

    def test_store_keeps_a_dict_per_key(self, make_layer):
        layer = make_layer()
        assert layer.store_get("session.x") is None
        layer.store_set("session.x", {"room": "lobby", "raw": b"\x00"})
        assert layer.store_get("session.x") == {"room": "lobby", "raw": b"\x00"}
        layer.store_delete("session.x")
        assert layer.store_get("session.x") is None

    def test_store_entries_expire(self, make_layer):
        layer = make_layer()
        layer.store_set("session.y", {"a": 1}, ttl=1)
        assert wait_until(lambda: layer.store_get("session.y") is None, timeout=5)

    def test_ordering_runs_in_order_parks_early_and_requeues_on_advance(self, make_layer):
        layer = make_layer()
        key = "order.sock1"
        assert layer.ordering_claim(key, 0, "websocket.connect", {"order": 0}) == "run"
        assert layer.ordering_claim(key, 2, "websocket.receive", {"order": 2}) == "park"
        assert layer.ordering_claim(key, 1, "websocket.receive", {"order": 1}) == "park"
        assert layer.receive(["websocket.receive"]) == (None, None)
        layer.ordering_advance(key, 0)
        assert layer.receive(["websocket.receive"]) == ("websocket.receive", {"order": 1})
        assert layer.ordering_claim(key, 1, "websocket.receive", {"order": 1}) == "run"
        layer.ordering_advance(key, 1)
        assert layer.receive(["websocket.receive"]) == ("websocket.receive", {"order": 2})
        assert layer.ordering_claim(key, 0, "websocket.connect", {"order": 0}) == "drop"

    def test_ordering_skips_a_message_that_never_arrives(self, make_layer):
        layer = make_layer()
        key = "order.sock2"
        assert layer.ordering_claim(key, 0, "websocket.connect", {"order": 0}) == "run"
        layer.ordering_advance(key, 0)
        # order 1 is lost in transit; order 2 parks behind it.
        assert layer.ordering_claim(key, 2, "websocket.receive", {"order": 2}) == "park"
        assert layer.ordering_skip_stalled(older_than=60) == []
        time.sleep(0.05)
        assert layer.ordering_skip_stalled(older_than=0.01) == [(key, 1, 2)]
        assert layer.receive(["websocket.receive"]) == ("websocket.receive", {"order": 2})
        assert layer.ordering_claim(key, 2, "websocket.receive", {"order": 2}) == "run"


TWISTED_RECEIVE_SCRIPT = r"""
import sys, threading
from twisted.internet import reactor
from telex.layers import get_channel_layer

layer = get_channel_layer(sys.argv[1])
result = []

def got(value):
    result.append(value)
    reactor.stop()

def start():
    layer.receive_twisted(["wake"]).addCallback(got)
    threading.Timer(0.1, layer.send, args=("wake", {"n": 7})).start()

reactor.callWhenRunning(start)
reactor.callLater(20, reactor.stop)
reactor.run()
print(result)
"""


def run_script(script: str, *args: str, cwd: str) -> str:
    """Run ``script`` in a fresh interpreter (a reactor can run once per process); its stdout."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=True,
    ).stdout


def check_receive_twisted_woken_by_thread(layer_spec: str, cwd: str) -> None:
    """receive_twisted on a real reactor, woken by a send from another thread."""
    output = run_script(TWISTED_RECEIVE_SCRIPT, layer_spec, cwd=cwd)
    assert output.strip() == "[('wake', {'n': 7})]"

"""``telex.protocols.websocket_messages``: the WebSocket message shapes of www.rst, without sockets.

One test per rule, named after it; the section of www.rst is in each group's heading.
The wire behaviour built on these is tested against real servers in ``test_websocket.py``.
"""

from __future__ import annotations

import pytest

from telex.protocols import websocket_messages as msgs

# -- Connection -----------------------------------------------------------------------------------


def _connect(**overrides):
    fields = {
        "reply_channel": "websocket.send.x!y",
        "scheme": "ws",
        "path": "/caf\u00e9",
        "query_string": b"a=%20b",
        "root_path": "/mounted",
        "headers": [[b"x-test", b"yes"]],
        "client": ["127.0.0.1", 5000],
        "server": ["127.0.0.1", 8000],
    }
    return msgs.connect_message(**(fields | overrides))


def test_connect_carries_every_spec_key():
    assert set(_connect()) == {
        "reply_channel",
        "scheme",
        "path",
        "query_string",
        "root_path",
        "headers",
        "client",
        "server",
        "order",
    }


def test_connect_order_is_the_integer_0():
    order = _connect()["order"]
    assert order == 0 and type(order) is int


def test_connect_root_path_is_a_byte_string():
    assert _connect(root_path="/caf\u00e9")["root_path"] == "/caf\u00e9".encode()


def test_connect_passes_path_query_string_and_headers_through():
    message = _connect()
    assert (message["path"], message["query_string"], message["headers"]) == (
        "/caf\u00e9",
        b"a=%20b",
        [[b"x-test", b"yes"]],
    )


# -- Receive --------------------------------------------------------------------------------------


def test_receive_of_a_text_frame_has_text_and_bytes_none():
    message = msgs.receive_message("websocket.send.x!y", "/p", "caf\u00e9".encode(), False, 1)
    assert (message["text"], message["bytes"]) == ("caf\u00e9", None)


def test_receive_of_a_binary_frame_has_bytes_and_text_none():
    message = msgs.receive_message("websocket.send.x!y", "/p", b"\xff\x00", True, 1)
    assert (message["bytes"], message["text"]) == (b"\xff\x00", None)


def test_receive_of_an_empty_frame_is_an_empty_value_not_none():
    assert msgs.receive_message("r", "/p", b"", False, 1)["text"] == ""
    assert msgs.receive_message("r", "/p", b"", True, 1)["bytes"] == b""


def test_receive_carries_reply_channel_path_and_order():
    message = msgs.receive_message("websocket.send.x!y", "/p", b"x", False, 7)
    assert set(message) == {"reply_channel", "path", "bytes", "text", "order"}
    assert (message["reply_channel"], message["path"], message["order"]) == ("websocket.send.x!y", "/p", 7)


# -- Disconnection --------------------------------------------------------------------------------


def test_disconnect_carries_reply_channel_code_path_and_order():
    assert msgs.disconnect_message("websocket.send.x!y", 1001, "/p", 4) == {
        "reply_channel": "websocket.send.x!y",
        "code": 1001,
        "path": "/p",
        "order": 4,
    }


# -- Send/Close/Accept: keys ----------------------------------------------------------------------


def test_bytes_is_a_binary_frame_and_text_a_text_frame():
    assert msgs.parse_reply({"bytes": b"x"}).data == b"x"
    assert msgs.parse_reply({"text": "x"}).data == "x"
    assert msgs.parse_reply({"bytes": None, "text": None}).data is None


def test_empty_bytes_or_text_is_still_a_frame():
    assert msgs.parse_reply({"bytes": b""}).data == b""
    assert msgs.parse_reply({"text": ""}).data == ""


def test_both_bytes_and_text_is_malformed():
    try:
        msgs.parse_reply({"bytes": b"a", "text": "b"})
    except msgs.MalformedWebSocketReply as exc:
        assert "both" in str(exc)
    else:
        raise AssertionError("a message with both bytes and text was accepted")


def test_bytes_must_be_a_byte_string():
    with pytest.raises(msgs.MalformedWebSocketReply, match="'bytes' must be a byte string, got str"):
        msgs.parse_reply({"bytes": "text"})


def test_text_must_be_a_unicode_string():
    with pytest.raises(msgs.MalformedWebSocketReply, match="'text' must be a unicode string, got bytes"):
        msgs.parse_reply({"text": b"bytes"})


def test_accept_must_be_a_bool():
    with pytest.raises(msgs.MalformedWebSocketReply, match="'accept' must be a bool"):
        msgs.parse_reply({"accept": 1})


def test_accept_is_none_when_absent():
    assert msgs.parse_reply({}).accept is None


def test_close_true_is_1000_and_unsendable_codes_become_1000_with_a_note():
    assert msgs.parse_reply({"close": True}).close == 1000
    assert msgs.parse_reply({"close": 4001}).close == 4001
    assert msgs.parse_reply({"close": False}).close is None
    reply = msgs.parse_reply({"close": 1006})
    assert reply.close == 1000 and "1006" in (reply.close_note or "")


@pytest.mark.parametrize("message", [{}, {"close": False}, {"close": None}, {"close": 0}, {"close": -1}])
def test_close_defaults_to_false_and_only_a_positive_integer_is_a_code(message):
    reply = msgs.parse_reply(message)
    assert reply.close is None and reply.close_note is None


@pytest.mark.parametrize("code", [1000, 1001, 1008, 1011, 1013, 3000, 4000, 4999])
def test_a_sendable_close_code_is_sent_as_given(code):
    reply = msgs.parse_reply({"close": code})
    assert reply.close == code and reply.close_note is None


@pytest.mark.parametrize("code", [1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_a_reserved_or_unregistered_close_code_closes_with_1000_and_says_why(code):
    reply = msgs.parse_reply({"close": code})
    assert reply.close == 1000
    assert reply.close_note == (
        f"close code {code} cannot be sent in a close frame (RFC 6455 7.4); closing with 1000"
    )


@pytest.mark.parametrize("close", ["1000", 1000.0, [1000]])
def test_close_must_be_a_bool_or_an_integer(close):
    with pytest.raises(msgs.MalformedWebSocketReply, match="'close' must be a bool or a positive integer"):
        msgs.parse_reply({"close": close})


def test_unknown_keys_are_reported_sorted_and_the_rest_obeyed():
    reply = msgs.parse_reply({"text": "x", "colour": "red", "accept": True, "b": 1})
    assert reply.unknown_keys == ("b", "colour")
    assert (reply.data, reply.accept) == ("x", True)


def test_the_telex_keys_of_an_accept_are_read_not_reported_as_unknown():
    reply = msgs.parse_reply(
        {"accept": True, "telex.receive_channel": "telex.asgi3.Ab3!1f", "telex.subprotocol": "chat"}
    )
    assert (reply.receive_channel, reply.subprotocol, reply.unknown_keys) == (
        "telex.asgi3.Ab3!1f",
        "chat",
        (),
    )


def test_an_accept_may_say_the_socket_can_resume_elsewhere():
    reply = msgs.parse_reply(
        {"accept": True, "telex.receive_channel": "telex.asgi3.Ab3!1f", "telex.resumable": True}
    )
    assert (reply.resumable, reply.unknown_keys) == (True, ())
    assert msgs.parse_reply({"accept": True}).resumable is False
    with pytest.raises(msgs.MalformedWebSocketReply, match=r"'telex\.resumable' must be a bool"):
        msgs.parse_reply({"accept": True, "telex.resumable": "yes"})


@pytest.mark.parametrize(
    "channel", ["websocket.receive", "telex.asgi3!", "!x", "a!b!c", "a?b!c", 5, "a!" + "x" * 300]
)
def test_the_receive_channel_must_be_a_process_specific_channel(channel):
    with pytest.raises(msgs.MalformedWebSocketReply, match="process-specific channel"):
        msgs.parse_reply({"accept": True, "telex.receive_channel": channel})


def test_a_denial_carries_a_checked_response():
    denial = {
        "status": 401,
        "headers": [[b"WWW-Authenticate", b"Bearer"], [b"content-length", b"9"]],
        "content": b"x",
    }
    reply = msgs.parse_reply({"close": True, "telex.denial": denial})
    assert reply.denial == (401, [(b"www-authenticate", b"Bearer"), (b"content-length", b"9")], b"x")
    assert msgs.handshake_decision(reply) == msgs.REJECT


@pytest.mark.parametrize(
    ("denial", "problem"),
    [
        ({"status": 101}, "status must be an integer from 200 to 599"),
        ({"status": "403"}, "status must be an integer from 200 to 599"),
        ({"status": 403, "content": "text"}, "content must be bytes"),
        ({"status": 403, "headers": [[b"x", b"a\r\nb"]]}, "CR, LF or NUL"),
        ([403], "must be a dict"),
    ],
)
def test_a_bad_denial_makes_the_reply_malformed(denial, problem):
    with pytest.raises(msgs.MalformedWebSocketReply, match=problem):
        msgs.parse_reply({"close": True, "telex.denial": denial})


def test_a_denial_without_close_is_malformed():
    with pytest.raises(msgs.MalformedWebSocketReply, match="needs 'close'"):
        msgs.parse_reply({"telex.denial": {"status": 403}})


def test_the_subprotocol_must_be_a_string():
    with pytest.raises(msgs.MalformedWebSocketReply, match=r"'telex\.subprotocol' must be a string"):
        msgs.parse_reply({"accept": True, "telex.subprotocol": ["chat"]})


# -- Send/Close/Accept: while waiting for acceptance ----------------------------------------------


def test_handshake_decision_follows_send_close_accept():
    decide = lambda **message: msgs.handshake_decision(msgs.parse_reply(message))  # noqa: E731
    assert decide(accept=True) == msgs.ACCEPT
    assert decide(accept=False, text="ignored", close=True) == msgs.REJECT
    assert decide(text="hello") == msgs.ACCEPT
    assert decide(bytes=b"x", close=4000) == msgs.ACCEPT
    assert decide(close=True) == msgs.REJECT
    assert decide(close=4000, text="") == msgs.REJECT
    assert decide(accept=True, close=True) == msgs.ACCEPT
    assert decide(text="") == msgs.UNDECIDED
    assert decide() == msgs.UNDECIDED


# -- subprotocols and origins (Telex's handshake options) -----------------------------------------


def test_the_servers_first_supported_subprotocol_the_client_offered_is_chosen():
    assert msgs.choose_subprotocol(["chat.v1", "chat.v2"], ["chat.v2", "chat.v1"]) == "chat.v2"


def test_no_subprotocol_in_common_chooses_none():
    assert msgs.choose_subprotocol(["other"], ["chat.v1"]) is None
    assert msgs.choose_subprotocol([], []) is None


def test_origin_allow_list_matches_hosts_patterns_and_full_origins():
    allowed = ["example.com", "*.trusted.example", "https://exact.example:8443"]
    assert msgs.origin_allowed("https://example.com", allowed)
    assert msgs.origin_allowed("http://a.trusted.example", allowed)
    assert msgs.origin_allowed("https://exact.example:8443", allowed)
    assert not msgs.origin_allowed("https://exact.example", allowed)
    assert not msgs.origin_allowed("https://evil.example", allowed)
    assert not msgs.origin_allowed("null", allowed)
    assert msgs.origin_allowed(None, allowed)  # non-browser clients send none
    assert msgs.origin_allowed("https://anything", [])


def test_origins_compare_case_insensitively_and_ignore_a_trailing_slash():
    assert msgs.origin_allowed("HTTPS://Example.COM", ["example.com"])
    assert msgs.origin_allowed("https://exact.example:8443/", ["HTTPS://EXACT.example:8443"])


def test_a_null_origin_is_allowed_only_when_listed():
    assert msgs.origin_allowed("null", ["null"])
    assert not msgs.origin_allowed("null", ["*"])

"""``telex.protocols.http_messages``: the HTTP message shapes of www.rst, driven without sockets.

One test per rule, named after it; the section of www.rst is in each group's heading.
The wire behaviour built on these is tested against real servers in ``test_http.py``.
"""

from __future__ import annotations

import pytest

from telex.protocols import http_messages as msgs

# -- Request: path and query_string ----------------------------------------------------------


def test_path_has_percent_escapes_decoded_then_utf8_decoded():
    assert msgs.decode_path(b"/caf%C3%A9%20x/%2F") == "/caf\u00e9 x//"


def test_a_path_that_is_not_utf8_after_percent_decoding_is_a_bad_path():
    with pytest.raises(msgs.BadPath, match="not valid UTF-8"):
        msgs.decode_path(b"/bad%FFpath")


def test_query_string_is_the_part_after_the_question_mark_not_url_decoded():
    assert msgs.split_target(b"/a?b=%20c&d") == (b"/a", b"b=%20c&d")


def test_only_the_first_question_mark_ends_the_path():
    assert msgs.split_target(b"/a?b?c") == (b"/a", b"b?c")


def test_a_target_without_a_query_has_an_empty_query_string():
    assert msgs.split_target(b"/a") == (b"/a", b"")


def test_an_absolute_form_target_keeps_only_its_path():
    assert msgs.split_target(b"http://example.com:8080/p/q?x=1") == (b"/p/q", b"x=1")
    assert msgs.split_target(b"https://example.com") == (b"/", b"")


# -- Request: headers ---------------------------------------------------------------------------


def test_header_names_are_lowercased():
    assert msgs.asgi_headers([(b"X-Test", [b"Value"])]) == [[b"x-test", b"Value"]]


def test_header_values_are_kept_exactly():
    assert msgs.asgi_headers([(b"x", [b" Mixed Case, spaces "])]) == [[b"x", b" Mixed Case, spaces "]]


def test_header_order_of_values_and_duplicates_are_preserved():
    raw = [(b"Set-Cookie", [b"a=1", b"b=2"]), (b"Accept", [b"*/*"])]
    assert msgs.asgi_headers(raw) == [[b"set-cookie", b"a=1"], [b"set-cookie", b"b=2"], [b"accept", b"*/*"]]


def test_header_names_containing_underscores_are_dropped():
    raw = [(b"X_Forwarded_For", [b"6.6.6.6"]), (b"X-Real", [b"1"])]
    assert msgs.asgi_headers(raw) == [[b"x-real", b"1"]]


def test_headers_are_lists_of_two_element_lists():
    (pair,) = msgs.asgi_headers([(b"a", [b"1"])])
    assert type(pair) is list and len(pair) == 2


# -- Request ------------------------------------------------------------------------------------


def _request(**overrides):
    fields = {
        "reply_channel": "http.response.x!y",
        "http_version": "1.1",
        "method": b"GET",
        "scheme": "http",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "body": b"",
        "body_channel": None,
        "client": ["127.0.0.1", 5000],
        "server": ["127.0.0.1", 8000],
    }
    return msgs.request_message(**(fields | overrides))


def test_request_carries_every_spec_key():
    assert set(_request()) == {
        "reply_channel",
        "http_version",
        "method",
        "scheme",
        "path",
        "query_string",
        "root_path",
        "headers",
        "body",
        "body_channel",
        "client",
        "server",
    }


def test_request_method_is_an_uppercased_unicode_string():
    assert _request(method=b"get")["method"] == "GET"


def test_request_path_is_decoded_and_query_string_stays_bytes():
    message = _request(raw_path=b"/caf%C3%A9", query_string=b"q=%20")
    assert message["path"] == "/caf\u00e9" and message["query_string"] == b"q=%20"


def test_request_with_an_undecodable_path_raises_bad_path():
    with pytest.raises(msgs.BadPath):
        _request(raw_path=b"/%FF")


def test_request_passes_the_other_keys_through():
    message = _request(root_path="/mounted", body=b"start", body_channel="http.request.body?x")
    assert (message["root_path"], message["body"], message["body_channel"]) == (
        "/mounted",
        b"start",
        "http.request.body?x",
    )
    assert message["client"] == ["127.0.0.1", 5000] and message["server"] == ["127.0.0.1", 8000]


# -- Request Body Chunk -------------------------------------------------------------------------


def test_body_chunk_carries_content_and_more_content_and_is_not_closed():
    assert msgs.body_chunk_message(b"abc", True) == {"content": b"abc", "closed": False, "more_content": True}
    assert msgs.body_chunk_message(b"", False)["more_content"] is False


def test_a_client_leaving_mid_body_is_a_closed_chunk_with_no_more_content():
    assert msgs.BODY_CLOSED_MESSAGE == {"content": b"", "closed": True, "more_content": False}


# -- Disconnect ---------------------------------------------------------------------------------


def test_disconnect_carries_reply_channel_and_path():
    assert msgs.disconnect_message("http.response.x!y", "/caf\u00e9") == {
        "reply_channel": "http.response.x!y",
        "path": "/caf\u00e9",
    }


# -- Response, Response Chunk, Server Push: telling them apart ---------------------------------


def test_a_reply_with_status_is_a_response():
    assert msgs.parse_reply({"status": 200}) == msgs.Response(200, [], b"", False)


def test_a_reply_with_request_is_a_server_push():
    assert msgs.parse_reply({"request": {"path": "/style.css"}}) == msgs.ServerPush({"path": "/style.css"})


def test_any_other_reply_is_a_response_chunk():
    assert msgs.parse_reply({"content": b"x", "more_content": True}) == msgs.ResponseChunk(b"x", True)
    assert msgs.parse_reply({}) == msgs.ResponseChunk(b"", False)


# -- Response -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["200", 200.0, True, 99, 100, 101, 199, 600, 1000, None])
def test_response_status_must_be_a_final_status_from_200_to_599(status):
    with pytest.raises(msgs.MalformedHttpReply, match="status must be an integer from 200 to 599"):
        msgs.parse_reply({"status": status})


def test_response_status_may_be_any_code_from_200_to_599():
    assert msgs.parse_reply({"status": 200}).status == 200
    assert msgs.parse_reply({"status": 599}).status == 599


def test_response_headers_default_to_an_empty_list():
    assert msgs.parse_reply({"status": 204}).headers == []
    assert msgs.parse_reply({"status": 204, "headers": None}).headers == []


def test_response_header_names_are_lowercased_and_order_is_kept():
    reply = msgs.parse_reply({"status": 200, "headers": [[b"X-B", b"2"], (b"x-a", b"1"), [b"X-B", b"3"]]})
    assert reply.headers == [(b"x-b", b"2"), (b"x-a", b"1"), (b"x-b", b"3")]


@pytest.mark.parametrize("headers", [{b"a": b"b"}, b"a: b", [[b"a"]], [[b"a", b"b", b"c"]], [b"ab"]])
def test_response_headers_must_be_a_list_of_name_value_pairs(headers):
    with pytest.raises(msgs.MalformedHttpReply, match="pair"):
        msgs.parse_reply({"status": 200, "headers": headers})


@pytest.mark.parametrize("pair", [["a", b"b"], [b"a", "b"], [b"a", 1]])
def test_response_header_names_and_values_must_be_byte_strings(pair):
    with pytest.raises(msgs.MalformedHttpReply, match="must be bytes"):
        msgs.parse_reply({"status": 200, "headers": [pair]})


@pytest.mark.parametrize("name", [b"", b"bad name", b"x:y", b"caf\xc3\xa9", b"a\r\nb"])
def test_response_header_names_must_be_tokens(name):
    with pytest.raises(msgs.MalformedHttpReply, match="invalid header name"):
        msgs.parse_reply({"status": 200, "headers": [[name, b"v"]]})


@pytest.mark.parametrize("value", [b"1\r\nset-cookie: evil=1", b"a\nb", b"a\rb", b"a\x00b"])
def test_response_header_values_must_not_contain_cr_lf_or_nul(value):
    with pytest.raises(msgs.MalformedHttpReply, match="CR, LF or NUL"):
        msgs.parse_reply({"status": 200, "headers": [[b"x-a", value]]})


def test_response_content_length_is_parsed_and_kept_once():
    reply = msgs.parse_reply(
        {"status": 200, "headers": [[b"Content-Length", b"5"], [b"x-a", b"1"], [b"content-length", b"5, 5"]]}
    )
    assert reply.content_length == 5
    assert reply.headers == [(b"x-a", b"1"), (b"content-length", b"5")]


@pytest.mark.parametrize("values", [[b"5", b"6"], [b"5,6"], [b"-1"], [b"+5"], [b"0x5"], [b""], [b"1" * 19]])
def test_response_content_length_must_be_one_non_negative_integer(values):
    with pytest.raises(msgs.MalformedHttpReply, match="Content-Length"):
        msgs.parse_reply({"status": 200, "headers": [[b"content-length", value] for value in values]})


def test_transfer_encoding_chunked_is_taken_off_the_headers_with_any_content_length():
    reply = msgs.parse_reply(
        {"status": 200, "headers": [[b"Transfer-Encoding", b" Chunked "], [b"content-length", b"3"]]}
    )
    assert (reply.headers, reply.content_length, reply.chunked) == ([], None, True)


@pytest.mark.parametrize("coding", [b"gzip", b"gzip, chunked", b"chunked, chunked", b"identity"])
def test_transfer_codings_other_than_chunked_are_refused(coding):
    with pytest.raises(msgs.MalformedHttpReply, match="no transfer coding but chunked"):
        msgs.parse_reply({"status": 200, "headers": [[b"transfer-encoding", coding]]})


def test_a_204_loses_its_content_length():
    reply = msgs.parse_reply({"status": 204, "headers": [[b"content-length", b"0"]]})
    assert (reply.headers, reply.content_length) == ([], None)


def test_response_content_defaults_to_empty_and_none_is_empty():
    assert msgs.parse_reply({"status": 200}).content == b""
    assert msgs.parse_reply({"status": 200, "content": None}).content == b""


# -- Response and Response Chunk: content and more_content --------------------------------------


@pytest.mark.parametrize("message", [{"status": 200}, {}])
def test_content_must_be_a_byte_string(message):
    with pytest.raises(msgs.MalformedHttpReply, match="content must be bytes, got str"):
        msgs.parse_reply(message | {"content": "text"})


@pytest.mark.parametrize("message", [{"status": 200}, {}])
def test_more_content_defaults_to_false(message):
    assert msgs.parse_reply(message).more_content is False


@pytest.mark.parametrize("more", [1, 0, "yes", None])
def test_more_content_must_be_a_bool(more):
    with pytest.raises(msgs.MalformedHttpReply, match="more_content must be a bool"):
        msgs.parse_reply({"content": b"x", "more_content": more})


# -- Server Push --------------------------------------------------------------------------------


def test_server_push_request_must_be_a_request_message_dict():
    with pytest.raises(msgs.MalformedHttpReply, match="'request' must be a dict"):
        msgs.parse_reply({"request": "/style.css"})


# -- error pages (Telex's own answers, never a traceback) ---------------------------------------


def test_an_error_page_names_the_status_and_its_reason():
    reason, body = msgs.error_page(503, "Too many connections; try again shortly.")
    assert reason == b"Service Unavailable"
    assert b"<title>503 Service Unavailable</title>" in body
    assert b"Too many connections; try again shortly." in body


def test_an_error_page_escapes_the_detail():
    _, body = msgs.error_page(400, "<script>alert(1)</script> & more")
    assert b"<script>" not in body and b"&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in body


def test_a_status_without_a_known_reason_is_called_error():
    assert msgs.error_page(418, "teapot")[0] == b"Error"

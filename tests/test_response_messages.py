"""``telex.worker.http.response_messages``: a worker's response as www.rst's Response and
Response Chunk messages, without a layer.

One test per rule, named after it. Every message built here must also pass the server's own
check of a reply (``telex.protocols.http_messages.parse_reply``).
"""

from __future__ import annotations

import pytest

from telex.protocols import http_messages
from telex.worker import response_messages
from telex.worker.http import CHUNK_SIZE


def test_a_response_is_one_message_when_the_body_fits():
    messages = list(response_messages(b"hello", status=201, headers={"X-Thing": "1"}))
    assert messages == [
        {
            "status": 201,
            "headers": [[b"x-thing", b"1"], [b"content-type", b"text/plain; charset=utf-8"]],
            "content": b"hello",
            "more_content": False,
        }
    ]


def test_a_large_body_is_split_into_response_chunks():
    body = bytes(range(256)) * 4096  # 1 MiB
    messages = list(response_messages(body, chunk_size=300_000))
    assert [len(m["content"]) for m in messages] == [300_000, 300_000, 300_000, 148_576]
    assert [m["more_content"] for m in messages] == [True, True, True, False]
    assert "status" in messages[0] and all("status" not in m for m in messages[1:])
    assert b"".join(m["content"] for m in messages) == body


def test_an_iterator_body_becomes_chunks_and_str_is_utf8():
    messages = list(response_messages(iter(["caf\u00e9", b"", b"!"]), headers=[(b"Content-Type", b"text/x")]))
    assert [m["content"] for m in messages] == [b"caf\xc3\xa9", b"!"]
    assert messages[0]["headers"] == [[b"content-type", b"text/x"]]


def test_an_empty_body_is_one_response():
    assert list(response_messages(b"", status=204, content_type=None)) == [
        {"status": 204, "headers": [], "content": b"", "more_content": False}
    ]


# -- Response: status -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["200", 200.0, True, 99, 101, 199, 600, 1000])
def test_status_must_be_an_integer_http_status_code(status):
    with pytest.raises(ValueError, match="status must be an integer HTTP status code"):
        list(response_messages(b"x", status=status))


def test_status_defaults_to_200():
    assert next(response_messages(b"x"))["status"] == 200


# -- Response: headers ----------------------------------------------------------------------------


def test_header_names_are_lowercased_and_order_is_kept():
    headers = [(b"X-B", b"2"), ("X-A", "1"), (b"x-b", b"3")]
    message = next(response_messages(b"", headers=headers, content_type=None))
    assert message["headers"] == [[b"x-b", b"2"], [b"x-a", b"1"], [b"x-b", b"3"]]


def test_str_header_names_and_values_are_encoded_as_latin_1():
    message = next(response_messages(b"", headers={"X-Caf\u00e9": "na\u00efve"}, content_type=None))
    assert message["headers"] == [[b"x-caf\xe9", b"na\xefve"]]


def test_header_values_keep_their_case():
    message = next(response_messages(b"", headers={"Location": "/Some/Path"}, content_type=None))
    assert message["headers"] == [[b"location", b"/Some/Path"]]


def test_content_type_is_added_last_when_no_header_names_one():
    message = next(response_messages(b"{}", headers={"X-A": "1"}, content_type="application/json"))
    assert message["headers"] == [[b"x-a", b"1"], [b"content-type", b"application/json"]]


def test_a_content_type_header_wins_over_the_content_type_argument():
    message = next(response_messages(b"", headers={"CONTENT-TYPE": "text/html"}, content_type="text/plain"))
    assert message["headers"] == [[b"content-type", b"text/html"]]


def test_content_type_none_adds_no_header():
    assert next(response_messages(b"x", content_type=None))["headers"] == []


# -- Response and Response Chunks: content --------------------------------------------------------


def test_a_str_body_is_utf8_encoded():
    assert next(response_messages("caf\u00e9"))["content"] == b"caf\xc3\xa9"


def test_empty_pieces_of_an_iterator_body_send_no_chunk():
    messages = list(response_messages([b"", b"a", b"", b"b", b""]))
    assert [m["content"] for m in messages] == [b"a", b"b"]


def test_an_iterator_of_empty_pieces_is_one_empty_response():
    messages = list(response_messages(iter([b"", ""]), content_type=None))
    assert messages == [{"status": 200, "headers": [], "content": b"", "more_content": False}]


def test_no_message_carries_more_than_chunk_size_bytes():
    messages = list(response_messages([b"x" * 10, b"y" * 25], chunk_size=8))
    assert [len(m["content"]) for m in messages] == [8, 2, 8, 8, 8, 1]


def test_the_default_chunk_size_is_256_kib():
    assert CHUNK_SIZE == 256 * 1024
    messages = list(response_messages(b"z" * (CHUNK_SIZE + 1)))
    assert [len(m["content"]) for m in messages] == [CHUNK_SIZE, 1]


@pytest.mark.parametrize("chunk_size", [0, -1])
def test_chunk_size_must_be_positive(chunk_size):
    with pytest.raises(ValueError, match="chunk_size must be positive"):
        list(response_messages(b"x", chunk_size=chunk_size))


def test_only_the_last_message_has_more_content_false():
    messages = list(response_messages(iter([b"a", b"b", b"c"])))
    assert [m["more_content"] for m in messages] == [True, True, False]


def test_pieces_are_read_one_ahead_so_a_generator_body_is_never_held_whole():
    produced = []

    def body():
        for piece in (b"a", b"b", b"c"):
            produced.append(piece)
            yield piece

    messages = response_messages(body())
    next(messages)
    assert produced == [b"a", b"b"]


# -- what the server accepts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [b"", b"hello", "caf\u00e9", [b"a" * 300_000, b"b"], iter([b"", b"x", "y"])], ids=repr
)
def test_every_message_is_a_reply_the_server_accepts_response_first_then_chunks(body):
    messages = list(response_messages(body, status=201, headers={"X-A": "1"}))
    replies = [http_messages.parse_reply(message) for message in messages]
    assert isinstance(replies[0], http_messages.Response) and replies[0].status == 201
    assert all(isinstance(reply, http_messages.ResponseChunk) for reply in replies[1:])
    assert [reply.more_content for reply in replies] == [True] * (len(replies) - 1) + [False]

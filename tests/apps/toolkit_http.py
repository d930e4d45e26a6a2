"""Toolkit consumers for HTTP end-to-end tests: bodies and failing consumers."""

import hashlib

from telex.routing import route
from telex.worker.http import RequestAborted, iter_body, send_response

aborted: list[str] = []


def upload(message):
    hasher, size = hashlib.sha256(), 0
    try:
        for piece in iter_body(message, timeout=10):
            hasher.update(piece)
            size += len(piece)
    except RequestAborted as exc:
        aborted.append(str(exc))
        return
    send_response(message, f"{size} {hasher.hexdigest()}")


def aborted_uploads(message):
    send_response(message, "\n".join(aborted))


def fails_midway(message):
    message.reply_channel.send(
        {
            "status": 200,
            "headers": [[b"content-type", b"text/plain"]],
            "content": b"partial",
            "more_content": True,
        },
        immediately=True,
    )
    raise RuntimeError("the consumer broke after starting its response")


routing = [
    route("http.request", upload, path=r"^/upload$"),
    route("http.request", aborted_uploads, path=r"^/aborted$"),
    route("http.request", fails_midway, path=r"^/fails-midway$"),
]

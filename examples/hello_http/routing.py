"""S1 Hello, HTTP: every request gets "Hello world! You asked for <path>"."""

from telex.routing import route
from telex.worker.http import send_response


def http_consumer(message):
    send_response(message, f"Hello world! You asked for {message['path']}")


channel_routing = [route("http.request", http_consumer)]

"""A consumer that asks the delay server for a later message, as a Channels 1.x project does."""

from telex.django import Channel


def schedule(message):
    Channel("asgi.delay").send(
        {"channel": message["target"], "content": {"n": message["n"]}, "delay": message["delay"]}
    )

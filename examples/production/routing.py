"""S4 Production layer and separate workers: the chat of S3, unchanged.

Only the commands change (see README.md): the server runs with the Redis
layer and no worker of its own, and ``telex worker`` processes consume.
"""

from examples.chat.routing import channel_routing

__all__ = ["channel_routing"]

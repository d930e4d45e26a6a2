"""The channel layer object Daphne 1.4.2 is pointed at (``benchpeer.asgi:channel_layer``)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchpeer.settings")

from channels.asgi import get_channel_layer

channel_layer = get_channel_layer()

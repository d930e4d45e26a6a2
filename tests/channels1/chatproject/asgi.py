"""The project's channel layer object, for ``telex serve chatproject.asgi:channel_layer``.

It is the layer Channels builds from ``CHANNEL_LAYERS`` (asgi_redis's object
in set-up A), so the server and the workers share one configuration.
"""

import os

from channels.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
channel_layer = get_channel_layer()

"""The channel layer for interface servers: ``telex serve example.asgi:channel_layer``.

The one line a Channels 1.x project had for ``daphne example.asgi:channel_layer``.
"""

import os

from telex.django.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

channel_layer = get_channel_layer()

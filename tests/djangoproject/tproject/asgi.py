"""``telex serve tproject.asgi:channel_layer``, as a Channels 1.x project's asgi.py."""

import os

from telex.django.asgi import get_channel_layer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tproject.settings")
channel_layer = get_channel_layer()

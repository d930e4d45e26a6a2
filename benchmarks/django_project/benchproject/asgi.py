"""The ASGI entry point for each stack.

``channel_layer`` (ASGI 1) for ``daphne benchproject.asgi:channel_layer``
(Channels 1.x); ``application`` (ASGI 3, Django >= 3.0) for uvicorn.
``telex serve`` takes the Redis URL itself and needs neither.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")

if os.environ.get("BENCH_DJANGO_STACK") == "channels":
    from channels.asgi import get_channel_layer

    channel_layer = get_channel_layer()
elif os.environ.get("BENCH_DJANGO_STACK") == "telex":
    from telex.django.asgi import get_channel_layer

    channel_layer = get_channel_layer()
else:
    from django.core.asgi import get_asgi_application

    application = get_asgi_application()

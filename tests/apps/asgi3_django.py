"""A one-file Django project served by Django's own ASGI handler (``get_asgi_application``).

``/poll/ID/`` is an async view that waits a minute; Django cancels it when the
client leaves (it prints ``django cancelled ID``).
"""

from __future__ import annotations

import asyncio

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="telex-tests-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


async def hello(request, name):
    return JsonResponse(
        {"name": name, "method": request.method, "q": request.GET.get("q"), "path": request.path}
    )


def echo(request):  # a sync view: Django runs it in a thread
    return HttpResponse(request.body[::-1], content_type="application/octet-stream")


async def poll(request, ident):
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        print(f"django cancelled {ident}", flush=True)
        raise
    return HttpResponse(b"nothing new")


urlpatterns = [path("hello/<str:name>/", hello), path("echo/", echo), path("poll/<str:ident>/", poll)]

application = get_asgi_application()

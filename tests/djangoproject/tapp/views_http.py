"""Views of tests/test_django_http.py: what a request looks like to Django, and responses of every kind."""

import asyncio
import hashlib
import os
import threading

from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.views.decorators.csrf import csrf_exempt

from telex.django.exceptions import RequestAborted, ResponseLater
from telex.worker.http import response_messages


@csrf_exempt
def meta(request):
    keys = [
        "REMOTE_ADDR",
        "REMOTE_PORT",
        "SERVER_NAME",
        "SERVER_PORT",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "REQUEST_METHOD",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "SERVER_PROTOCOL",
    ]
    return JsonResponse(
        {
            "meta": {key: request.META.get(key) for key in keys},
            "http": {key: value for key, value in request.META.items() if key.startswith("HTTP_")},
            "path": request.path,
            "path_info": request.path_info,
            "secure": request.is_secure(),
            "absolute": request.build_absolute_uri(),
            "get": request.GET.dict(),
            "cookies": request.COOKIES,
        }
    )


def count(request):
    request.session["count"] = request.session.get("count", 0) + 1
    return JsonResponse({"count": request.session["count"]})


def log_in(request):
    user, _ = get_user_model().objects.get_or_create(username=request.GET["name"])
    login(request, user)
    return HttpResponse("logged in")


def whoami(request):
    return HttpResponse(request.user.username if request.user.is_authenticated else "anonymous")


def form(request):
    if request.method == "POST":
        return HttpResponse(f"posted {request.POST['value']}")
    return HttpResponse(get_token(request))


def add_message(request):
    messages.info(request, "hello from the messages framework")
    return HttpResponse("added")


def read_messages(request):
    return HttpResponse("\n".join(str(message) for message in messages.get_messages(request)))


def boom(request):
    raise ValueError("boom from a view")


async def hello_async(request):
    await asyncio.sleep(0)
    return HttpResponse(f"async hello {request.method}")


@csrf_exempt
def upload(request):
    """Hash the uploaded file chunk by chunk, so only the upload handlers hold it."""
    upload = request.FILES["file"]
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    return JsonResponse(
        {
            "size": upload.size,
            "sha256": digest.hexdigest(),
            "on_disk": hasattr(upload, "temporary_file_path"),
            "field": request.POST.get("field"),
        }
    )


@csrf_exempt
def raw_body(request):
    return JsonResponse({"size": len(request.body), "sha256": hashlib.sha256(request.body).hexdigest()})


@csrf_exempt
def read_and_catch(request):
    """Reads the body and catches the abort, as a view may: it still sends nothing."""
    try:
        request.read()
    except RequestAborted:
        marker = request.GET.get("marker")
        if marker:
            with open(marker, "w") as file:
                file.write("aborted")
        raise
    return HttpResponse("read")


def protected_post(request):
    """CSRF middleware reads request.POST before this runs."""
    return HttpResponse("never reached when the body is aborted")


def stream(request):
    parts = int(request.GET.get("parts", "5"))
    size = int(request.GET.get("size", "10"))
    return StreamingHttpResponse(
        (bytes([65 + i % 26]) * size for i in range(parts)), content_type="text/plain"
    )


def endless(request):
    """Streams until the client leaves; writes a marker file when the worker stops it."""
    marker = request.GET["marker"]

    def parts():
        try:
            for _ in range(1_000_000):
                yield b"x" * 65536
        finally:
            with open(marker, "w") as file:
                file.write("closed")

    return StreamingHttpResponse(parts(), content_type="application/octet-stream")


async def stream_async(request):
    async def parts():
        for index in range(4):
            await asyncio.sleep(0)
            yield f"part {index}\n"

    return StreamingHttpResponse(parts(), content_type="text/plain")


def file(request):
    return FileResponse(open(os.environ["TELEX_TEST_FILE"], "rb"), as_attachment=True, filename="big.bin")


def cookies(request):
    response = HttpResponse("cookies")
    response.set_cookie("first", "1")
    response.set_cookie("second", "2", httponly=True, samesite="Lax")
    return response


def later(request):
    """Hands the reply channel to another thread and raises ResponseLater, as a view may."""
    reply_channel, layer = request.message.reply_channel.name, request.message.channel_layer

    def respond():
        for message in response_messages("answered later\n", status=202):
            layer.send(reply_channel, message)

    threading.Thread(target=respond).start()
    raise ResponseLater()

import os

from django.http import HttpResponse

from cproject.version import VERSION


def hello(request):
    """Says which code version and which process answered (runworker or runserver)."""
    return HttpResponse(
        f"Hello from Django, version {VERSION}, pid {os.getpid()}\n", content_type="text/plain"
    )

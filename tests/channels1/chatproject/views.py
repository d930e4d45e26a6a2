"""A Django view that reports what Channels' AsgiRequest made of Telex's message."""

import hashlib

from django.http import JsonResponse


def describe_request(request):
    body = request.body
    return JsonResponse(
        {
            "method": request.method,
            "path": request.path,
            "query": request.GET.dict(),
            "probe_header": request.META.get("HTTP_X_PROBE"),
            "content_type": request.META.get("CONTENT_TYPE"),
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "remote_addr": request.META.get("REMOTE_ADDR"),
            "scheme": request.scheme,
        }
    )

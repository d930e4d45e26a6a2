"""The one measured view: reads the request's session and user, as most pages of a site do."""

from django.http import HttpResponse


def visits(request):
    # One SELECT on django_session (the cookie names a stored session); the
    # session is not modified, so no write and no Set-Cookie.
    count = request.session.get("visits", 0)
    user = request.user.get_username() if request.user.is_authenticated else "anonymous"
    return HttpResponse(f"visits={count} user={user}\n", content_type="text/plain")

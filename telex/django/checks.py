"""System checks of telex.django (``manage.py check``; runserver runs them too)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Tags, Warning, register

__all__ = ["check_app_order"]

TELEX = "telex.django"
STATICFILES = "django.contrib.staticfiles"


@register(Tags.compatibility)
def check_app_order(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """telex.django must come before staticfiles in INSTALLED_APPS.

    Django takes ``runserver`` from the first app that defines one, and
    staticfiles defines one: placed first, it would silently run Django's
    WSGI server, without WebSockets or consumers. Channels 1.x patched
    staticfiles' command instead; a warning keeps Django untouched.
    """
    names = [config.name for config in apps.get_app_configs()]
    if TELEX not in names or STATICFILES not in names or names.index(TELEX) < names.index(STATICFILES):
        return []
    return [
        Warning(
            f"{STATICFILES!r} comes before {TELEX!r} in INSTALLED_APPS, so 'manage.py runserver' "
            "is Django's own (WSGI: no WebSockets, no consumers).",
            hint=f"Move {TELEX!r} above {STATICFILES!r} in INSTALLED_APPS.",
            obj="settings.INSTALLED_APPS",
            id="telex.W001",
        )
    ]

"""Django, set up once in the test process with the test project's settings.

In-process Django tests import :func:`setup_django`; tests that need other
settings run Django in a subprocess instead (settings load once per process).
"""

from __future__ import annotations

import os
import sys
import tempfile

PROJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "djangoproject")


def setup_django() -> None:
    import django
    from django.conf import settings

    if settings.configured:
        return
    if PROJECT not in sys.path:
        sys.path.insert(0, PROJECT)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tproject.settings"
    os.environ.setdefault(
        "TELEX_TEST_DB", os.path.join(tempfile.mkdtemp(prefix="telex-django-"), "db.sqlite3")
    )
    django.setup()

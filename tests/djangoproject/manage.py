#!/usr/bin/env python
"""The Django project of the telex.django tests (``manage.py runserver``/``runworker``)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)

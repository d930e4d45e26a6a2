#!/usr/bin/env python
"""A Channels 1.x-style project whose own tests use ``telex.django.test`` (run by Django's runner)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tproject_testing.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)

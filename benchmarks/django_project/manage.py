#!/usr/bin/env python
"""The benchmark project's ``manage.py``; the stack comes from ``BENCH_DJANGO_STACK`` (see settings)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
